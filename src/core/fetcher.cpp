#include "euphoria/core/fetcher.hpp"

#include <algorithm>
#include <cerrno>
#include <optional>

#include "euphoria/api/error.hpp"
#include "euphoria/api/request.hpp"

namespace euphoria::core {

struct Fetcher::Job {
    std::string name;
    // Fired when nobody has wanted the job for interrupt_grace, or at shutdown: stops
    // a transfer mid-way or a backoff sleep. Thread-safe on its own.
    api::CancelToken cancel;
    // The fields below are guarded by Fetcher::mutex_.
    std::vector<Waiter> waiters;
    Clock::time_point enqueued{};
    std::optional<Clock::time_point> orphaned_at;  // when the last waiter left
    bool running = false;
};

namespace {

FetchResult failure(int err, std::string message) {
    FetchResult r;
    r.error = err;
    r.message = std::move(message);
    return r;
}

// Thrown through run_with_retries, which retries only ApiErrors: a full tenant is not
// a failure of this call, and must not use up its retries.
struct TenantFull {};

// Kinds that the API itself answered: the call had a slot.
bool admitted_by(api::ErrorKind kind) {
    switch (kind) {
    case api::ErrorKind::auth:
    case api::ErrorKind::not_found:
    case api::ErrorKind::server:
    case api::ErrorKind::rejected:
    case api::ErrorKind::other_error:
    case api::ErrorKind::malformed:
        return true;
    default:
        return false;
    }
}

template <class Duration>
long long millis(Duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

Fetcher::Fetcher(api::Client& client, ContentCache& cache, Clock& clock, Stats& stats,
                 Logger& logger, FetcherConfig config, Jitter jitter)
    : client_(client), cache_(cache), clock_(clock), stats_(stats), logger_(logger),
      config_(std::move(config)), jitter_(std::move(jitter)),
      budget_(std::max(1u, config_.max_concurrent), config_.busy_backoff) {
    stats_.budget.store(budget_.window());
    const unsigned n = std::max(1u, config_.max_concurrent);
    threads_.reserve(n + 1);
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
    threads_.emplace_back([this] { keep_time(); });
}

Fetcher::~Fetcher() { shutdown(); }

void Fetcher::shutdown() {
    std::vector<Waiter> waiters;
    std::vector<JobPtr> jobs;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        for (auto& [name, job] : jobs_) {
            for (auto& w : job->waiters) waiters.push_back(std::move(w));
            job->waiters.clear();
            jobs.push_back(job);
        }
        jobs_.clear();
        queue_.clear();
        waits_.clear();
        stats_.pending.store(0);
        stats_.queued.store(0);
    }
    cv_.notify_all();
    for (auto& job : jobs) job->cancel.cancel();
    for (auto& w : waiters) {
        stats_.count_error(ESHUTDOWN);
        w.done(failure(ESHUTDOWN, "unmounting"));
    }
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
}

FetchResult Fetcher::from_cache(const std::string& name, Clock::time_point now, bool& answered) {
    answered = true;
    auto found = cache_.find(name, now);
    switch (found.hit) {
    case ContentCache::Hit::memory:
    case ContentCache::Hit::disk: {
        auto& counter = found.hit == ContentCache::Hit::memory ? stats_.memory_hits : stats_.disk_hits;
        counter.fetch_add(1, std::memory_order_relaxed);
        FetchResult r;
        r.recording = std::move(found.recording);
        return r;
    }
    case ContentCache::Hit::negative: {
        stats_.negative_hits.fetch_add(1, std::memory_order_relaxed);
        stats_.count_error(ENOENT);
        auto r = failure(ENOENT, "no such recording (cached)");
        r.negative = true;
        r.negative_until = found.negative_until;
        return r;
    }
    case ContentCache::Hit::none:
        break;
    }
    answered = false;
    return {};
}

WaitId Fetcher::fetch(const std::string& name, Completion done) {
    const auto now = clock_.now();
    auto answer = [&](FetchResult r) {
        done(std::move(r));
        return WaitId{0};
    };
    if (name.size() > max_name_bytes) {
        stats_.count_error(ENAMETOOLONG);
        return answer(failure(ENAMETOOLONG, "name longer than 255 bytes"));
    }
    if (!config_.names.may_fetch(name)) {
        stats_.negative_hits.fetch_add(1, std::memory_order_relaxed);
        auto r = failure(ENOENT, "name is not fetched (dot-name or name_pattern)");
        r.negative = true;
        r.negative_until = now + config_.ttl;
        return answer(std::move(r));
    }
    try {
        api::validate_file_name(name);
    } catch (const api::ApiError& e) {
        stats_.count_error(e.error_number());
        return answer(failure(e.error_number(), e.what()));
    }

    std::unique_lock lock(mutex_);
    bool answered = false;
    auto cached = from_cache(name, now, answered);
    if (answered) {
        lock.unlock();
        return answer(std::move(cached));
    }
    if (stopping_) {
        lock.unlock();
        stats_.count_error(ESHUTDOWN);
        return answer(failure(ESHUTDOWN, "unmounting"));
    }
    if (waits_.size() >= config_.max_pending) {
        lock.unlock();
        stats_.count_error(EAGAIN);
        return answer(failure(EAGAIN, "too many requests waiting (max_pending)"));
    }
    JobPtr job;
    if (auto it = jobs_.find(name); it != jobs_.end()) {
        job = it->second;
        job->orphaned_at.reset();
        stats_.coalesced_waits.fetch_add(1, std::memory_order_relaxed);
    } else {
        job = std::make_shared<Job>();
        job->name = name;
        job->enqueued = now;
        jobs_.emplace(name, job);
        queue_.push_back(job);
        stats_.queued.store(queue_.size());
    }
    const WaitId id = next_wait_++;
    job->waiters.push_back({id, std::move(done)});
    waits_.emplace(id, job);
    stats_.pending.store(waits_.size());
    lock.unlock();
    cv_.notify_all();
    return id;
}

bool Fetcher::cancel_wait(WaitId id) {
    JobPtr cancel_now;
    {
        std::lock_guard lock(mutex_);
        auto it = waits_.find(id);
        if (it == waits_.end()) return false;
        auto job = it->second;
        waits_.erase(it);
        stats_.pending.store(waits_.size());
        auto& ws = job->waiters;
        ws.erase(std::remove_if(ws.begin(), ws.end(), [id](const Waiter& w) { return w.id == id; }),
                 ws.end());
        if (ws.empty()) {
            job->orphaned_at = clock_.now();
            if (config_.interrupt_grace.count() <= 0) {
                forget_job(job);
                if (job->running) cancel_now = job;
            }
        }
    }
    cv_.notify_all();
    stats_.count_error(EINTR);
    if (cancel_now) cancel_now->cancel.cancel();
    return true;
}

FetchResult Fetcher::get(const std::string& name, api::CancelToken* cancel) {
    std::mutex m;
    std::condition_variable cv;
    std::optional<FetchResult> out;
    const WaitId id = fetch(name, [&](FetchResult r) {
        std::lock_guard lock(m);
        out = std::move(r);
        cv.notify_all();
    });
    if (id == 0) return std::move(*out);
    // Subscribed before taking `m`: the callback takes it (CancelToken's rule).
    api::CancelSubscription wake(cancel, [&] {
        std::lock_guard lock(m);
        cv.notify_all();
    });
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return out || (cancel && cancel->cancelled()); });
    if (!out) {
        lock.unlock();
        if (cancel_wait(id)) return failure(EINTR, "interrupted");
        lock.lock();
        cv.wait(lock, [&] { return out.has_value(); });  // it is running right now
    }
    return std::move(*out);
}

void Fetcher::forget_job(const JobPtr& job) {
    if (auto it = jobs_.find(job->name); it != jobs_.end() && it->second == job) jobs_.erase(it);
    if (!job->running) {
        if (auto q = std::find(queue_.begin(), queue_.end(), job); q != queue_.end()) {
            queue_.erase(q);
            stats_.queued.store(queue_.size());
        }
    }
}

std::vector<Fetcher::Waiter> Fetcher::finish(const JobPtr& job) {
    forget_job(job);
    std::vector<Waiter> out;
    out.swap(job->waiters);
    for (const auto& w : out) waits_.erase(w.id);
    stats_.pending.store(waits_.size());
    return out;
}

bool Fetcher::may_start(Clock::time_point now) const {
    return !stopping_ && !queue_.empty() && running_ < budget_.window() && now >= budget_.resume_at();
}

Clock::time_point Fetcher::next_deadline() const {
    auto next = Clock::time_point::max();
    const auto busy_since = budget_.busy_since();
    for (const auto& [name, job] : jobs_) {
        if (job->waiters.empty() && job->orphaned_at) {
            next = std::min(next, *job->orphaned_at + config_.interrupt_grace);
        } else if (busy_since && !job->running) {
            next = std::min(next, std::max(job->enqueued, *busy_since) + config_.busy_timeout);
        }
    }
    return next;
}

Fetcher::Due Fetcher::expire(Clock::time_point now) {
    Due due;
    const auto busy_since = budget_.busy_since();
    std::vector<JobPtr> jobs;
    jobs.reserve(jobs_.size());
    for (const auto& [name, job] : jobs_) jobs.push_back(job);
    for (const auto& job : jobs) {
        if (job->waiters.empty() && job->orphaned_at) {
            if (now < *job->orphaned_at + config_.interrupt_grace) continue;
            forget_job(job);
            // A running one is cancelled by the caller, outside mutex_.
            if (job->running) due.cancels.push_back(job);
            continue;
        }
        if (!busy_since || job->running) continue;
        if (now < std::max(job->enqueued, *busy_since) + config_.busy_timeout) continue;
        auto result = failure(EAGAIN, "the tenant's API slots stayed busy for busy_timeout (" +
                                          std::to_string(millis(config_.busy_timeout)) + " ms)");
        logger_.log(LogLevel::warning, "gave up on " + job->name + ": " + result.message);
        for (auto& w : finish(job)) {
            stats_.count_error(EAGAIN);
            due.answers.emplace_back(std::move(w.done), result);
        }
    }
    return due;
}

void Fetcher::keep_time() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        auto due = expire(clock_.now());
        if (!due.answers.empty() || !due.cancels.empty()) {
            lock.unlock();
            for (auto& job : due.cancels) job->cancel.cancel();
            for (auto& [done, result] : due.answers) done(std::move(result));
            lock.lock();
            continue;
        }
        clock_.wait_until(cv_, lock, next_deadline());
    }
}

void Fetcher::work() {
    std::unique_lock lock(mutex_);
    for (;;) {
        if (stopping_) return;
        const auto now = clock_.now();
        if (!may_start(now)) {
            const bool paused = !queue_.empty() && running_ < budget_.window();
            clock_.wait_until(cv_, lock, paused ? budget_.resume_at() : Clock::time_point::max());
            continue;
        }
        JobPtr job = std::move(queue_.front());
        queue_.pop_front();
        job->running = true;
        ++running_;
        const auto epoch = budget_.epoch();
        stats_.queued.store(queue_.size());
        stats_.in_flight.store(running_);
        lock.unlock();

        FetchResult result;
        bool admitted = false;
        Outcome outcome = Outcome::finished;
        try {
            outcome = download(*job, result, admitted);
        } catch (...) {
            result = failure(EIO, "internal error");
        }

        lock.lock();
        --running_;
        job->running = false;
        stats_.in_flight.store(running_);
        std::vector<Waiter> waiters;
        if (outcome == Outcome::busy) {
            stats_.exceeded_replies.fetch_add(1, std::memory_order_relaxed);
            const auto at = clock_.now();
            budget_.on_exceeded(epoch, at, jitter_ ? jitter_() : 0.5);
            const bool wanted = jobs_.count(job->name) && jobs_.at(job->name) == job;
            if (wanted && at < std::max(job->enqueued, *budget_.busy_since()) + config_.busy_timeout) {
                queue_.push_front(job);  // keeps its place: first in, first out
                stats_.queued.store(queue_.size());
            } else if (wanted) {
                result = failure(EAGAIN, "the tenant's API slots stayed busy for busy_timeout (" +
                                             std::to_string(millis(config_.busy_timeout)) + " ms)");
                logger_.log(LogLevel::warning, "gave up on " + job->name + ": " + result.message);
                waiters = finish(job);
            }
        } else {
            if (admitted) budget_.on_admitted();
            waiters = finish(job);
        }
        stats_.budget.store(budget_.window());
        lock.unlock();
        cv_.notify_all();
        if (result.error) {
            for (std::size_t i = 0; i < waiters.size(); ++i) stats_.count_error(result.error);
        }
        // The last waiter takes the result itself: this thread must not keep the bytes
        // alive (and counted in their budget) after every caller let go of them.
        if (!waiters.empty()) {
            for (std::size_t i = 0; i + 1 < waiters.size(); ++i) waiters[i].done(result);
            waiters.back().done(std::move(result));
        }
        result = {};
        lock.lock();
    }
}

Fetcher::Outcome Fetcher::download(Job& job, FetchResult& out, bool& admitted) {
    admitted = false;
    const auto started = clock_.now();
    const auto wall_started = clock_.wall_now();
    ContentBuilder builder(
        config_.builder, [this](std::uint64_t bytes) { return cache_.reserve_memory(bytes); },
        [this](std::uint64_t bytes) { return cache_.reserve_disk(bytes); });
    auto elapsed_ms = [&] { return std::to_string(millis(clock_.now() - started)) + " ms"; };
    try {
        run_with_retries(
            config_.retry, clock_, jitter_, job.cancel,
            [&] {
                stats_.upstream_calls.fetch_add(1, std::memory_order_relaxed);
                try {
                    client_.download(job.name, builder, job.cancel);
                } catch (const api::ApiError& e) {
                    if (e.kind() == api::ErrorKind::busy) throw TenantFull{};
                    throw;
                }
            },
            [&](const api::ApiError& e, unsigned retry, std::chrono::milliseconds delay) {
                stats_.retries.fetch_add(1, std::memory_order_relaxed);
                logger_.log(LogLevel::warning,
                            "call for " + job.name + " failed (" + e.what() + "); retry " +
                                std::to_string(retry + 1) + " in " +
                                std::to_string(delay.count()) + " ms");
            });
        FetchResult r;
        r.recording.content = builder.take();
        // The API's rule is about data once returned: the TTL starts now, not when
        // the call did, so a slow download is never stale on arrival.
        const auto arrived = clock_.now();
        r.recording.expires_at = arrived + config_.ttl;
        const auto call_time = call_time_from_name(job.name);
        r.recording.mtime =
            call_time ? std::chrono::system_clock::from_time_t(*call_time) : wall_started;
        const auto size = r.recording.content->size();
        stats_.bytes_fetched.fetch_add(size, std::memory_order_relaxed);
        cache_.insert(job.name, r.recording, arrived);
        logger_.log(LogLevel::info, "fetched " + job.name + ": " + std::to_string(size) +
                                        " bytes in " + elapsed_ms() + ", ok" +
                                        (r.recording.content->on_disk() ? " (disk)" : ""));
        out = std::move(r);
        admitted = true;
        return Outcome::finished;
    } catch (const TenantFull&) {
        logger_.log(LogLevel::info, "call for " + job.name + ": the tenant is full (" +
                                        "Concurrent API Calls Exceeded); waiting");
        return Outcome::busy;
    } catch (const api::ApiError& e) {
        int err = e.error_number();
        // A fault of ours (the cache folder, the disk) is no answer about the
        // recording: never ENOENT or EACCES, never cached. A full cache keeps ENOSPC.
        if (e.kind() == api::ErrorKind::local && err != ENOSPC) err = EIO;
        auto r = failure(err, e.what());
        if (e.kind() == api::ErrorKind::not_found) {
            r.negative = true;
            r.negative_until = clock_.now() + config_.ttl;
            cache_.insert_negative(job.name, r.negative_until);
        }
        admitted = admitted_by(e.kind());
        const bool quiet = e.kind() == api::ErrorKind::not_found ||
                           e.kind() == api::ErrorKind::cancelled;
        logger_.log(quiet ? LogLevel::info : LogLevel::error,
                    "fetched " + job.name + ": 0 bytes in " + elapsed_ms() + ", " +
                        api::describe_errno(err) + ": " + e.what());
        out = std::move(r);
        return Outcome::finished;
    } catch (const std::exception& e) {
        logger_.log(LogLevel::error, "fetch of " + job.name + " failed: " + e.what());
        out = failure(EIO, e.what());
        return Outcome::finished;
    }
}

}  // namespace euphoria::core
