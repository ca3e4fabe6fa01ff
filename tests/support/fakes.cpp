#include "fakes.hpp"

#include <cerrno>

namespace euphoria::test {

using namespace std::chrono_literals;

FakeClock::time_point FakeClock::now() {
    std::lock_guard lock(mutex_);
    return now_;
}

std::chrono::system_clock::time_point FakeClock::wall_now() {
    std::lock_guard lock(mutex_);
    return wall_;
}

bool FakeClock::sleep_for(duration d, api::CancelToken* cancel) {
    if (cancel && cancel->cancelled()) return false;
    std::lock_guard lock(mutex_);
    sleeps_.push_back(d);
    now_ += d;
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
    return true;
}

void FakeClock::wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                           time_point deadline) {
    if (deadline != time_point::max() && now() >= deadline) return;
    cv.wait_for(lock, 1ms);
}

void FakeClock::advance(duration d) {
    std::lock_guard lock(mutex_);
    now_ += d;
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
}

std::vector<FakeClock::duration> FakeClock::sleeps() const {
    std::lock_guard lock(mutex_);
    return sleeps_;
}

void FakeClient::script(const std::string& name, std::vector<FakeReply> replies) {
    std::lock_guard lock(mutex_);
    script_[name] = {replies.begin(), replies.end()};
}

void FakeClient::hold() {
    std::lock_guard lock(mutex_);
    held_ = true;
}

void FakeClient::hold_after_first_chunk() {
    std::lock_guard lock(mutex_);
    held_midway_ = true;
}

void FakeClient::release() {
    std::lock_guard lock(mutex_);
    held_ = false;
    held_midway_ = false;
    cv_.notify_all();
}

void FakeClient::release_start() {
    std::lock_guard lock(mutex_);
    held_ = false;
    cv_.notify_all();
}

bool FakeClient::wait_blocked(int n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 5s, [&] { return blocked_ >= n; });
}

std::size_t FakeClient::list(const api::ListingQuery& query, const api::RecordHandler& on_record,
                             api::CancelToken& cancel) {
    {
        api::CancelSubscription wake(&cancel, [this] {
            std::lock_guard lock(mutex_);
            cv_.notify_all();
        });
        std::unique_lock lock(mutex_);
        ++calls_[list_key];
        order_.push_back(list_key);
        max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
        ++blocked_;
        cv_.notify_all();
        cv_.wait(lock, [&] { return !held_ || cancel.cancelled(); });
        --blocked_;
        --in_flight_;
        if (cancel.cancelled()) throw api::ApiError(EINTR, api::ErrorKind::cancelled, "cancelled");
    }
    if (!lister) return Client::list(query, on_record, cancel);
    return lister(query, on_record);
}

std::string FakeClient::download_by_id(const std::string& unique_id, api::Sink& sink,
                                       api::CancelToken& cancel) {
    const auto it = by_id.find(unique_id);
    if (it == by_id.end()) throw api::ApiError(ENOENT, api::ErrorKind::not_found, "File Not Found");
    download(it->second, sink, cancel);
    return it->second;
}

void FakeClient::download(const std::string& name, api::Sink& sink, api::CancelToken& cancel) {
    FakeReply reply;
    {
        // The cancel callback takes mutex_, so subscribe before locking it.
        api::CancelSubscription wake(&cancel, [this] {
            std::lock_guard lock(mutex_);
            cv_.notify_all();
        });
        std::unique_lock lock(mutex_);
        ++calls_[name];
        order_.push_back(name);
        max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
        ++blocked_;
        cv_.notify_all();
        cv_.wait(lock, [&] { return !held_ || cancel.cancelled(); });
        --blocked_;
        --in_flight_;
        if (cancel.cancelled()) throw api::ApiError(EINTR, api::ErrorKind::cancelled, "cancelled");
        auto& queue = script_[name];
        if (queue.empty()) {
            reply = FakeReply::fail(ENOENT, api::ErrorKind::not_found);
        } else {
            reply = queue.front();
            if (queue.size() > 1) queue.pop_front();
        }
    }
    sink.reset();
    if (reply.err && !reply.cut_after) throw api::ApiError(reply.err, reply.kind, "scripted failure");
    // Several writes, so the sink's chunking is exercised.
    std::size_t off = 0;
    const std::size_t end = reply.cut_after ? std::min(reply.cut_after, reply.bytes.size()) : reply.bytes.size();
    while (off < end) {
        const auto n = std::min<std::size_t>(4096, end - off);
        sink.write({reinterpret_cast<const std::byte*>(reply.bytes.data() + off), n});
        off += n;
        if (off == n) {
            api::CancelSubscription wake(&cancel, [this] {
                std::lock_guard lock(mutex_);
                cv_.notify_all();
            });
            std::unique_lock lock(mutex_);
            if (held_midway_) {
                ++blocked_;
                cv_.notify_all();
                cv_.wait(lock, [&] { return !held_midway_ || cancel.cancelled(); });
                --blocked_;
            }
            if (cancel.cancelled()) throw api::ApiError(EINTR, api::ErrorKind::cancelled, "cancelled");
        }
    }
    if (reply.cut_after) throw api::ApiError(reply.err, reply.kind, "scripted cut mid-transfer");
    sink.complete();
}

int FakeClient::calls(const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = calls_.find(name);
    return it == calls_.end() ? 0 : it->second;
}

int FakeClient::total_calls() const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(order_.size());
}

int FakeClient::max_in_flight() const {
    std::lock_guard lock(mutex_);
    return max_in_flight_;
}

std::vector<std::string> FakeClient::call_order() const {
    std::lock_guard lock(mutex_);
    return order_;
}

}  // namespace euphoria::test
