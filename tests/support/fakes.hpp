#pragma once
// Test doubles for the core: a clock that moves only when told, and a client that
// answers from a script and can hold a call open until the test releases it.

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "euphoria/api/client.hpp"
#include "euphoria/api/error.hpp"
#include "euphoria/core/clock.hpp"

namespace euphoria::test {

class FakeClock final : public core::Clock {
public:
    time_point now() override;
    std::chrono::system_clock::time_point wall_now() override;
    // Advances time instead of waiting, and records the request.
    bool sleep_for(duration d, api::CancelToken* cancel) override;
    // Time moves only by advance(), so this waits a real millisecond at a time and
    // lets the caller look at now() again.
    void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                    time_point deadline) override;
    void advance(duration d);
    std::vector<duration> sleeps() const;

private:
    mutable std::mutex mutex_;
    time_point now_{std::chrono::hours(1000)};
    std::chrono::system_clock::time_point wall_{std::chrono::seconds(1700000000)};
    std::vector<duration> sleeps_;
};

// One scripted answer: bytes, or an error.
struct FakeReply {
    std::string bytes;
    int err = 0;
    api::ErrorKind kind = api::ErrorKind::not_found;
    std::size_t cut_after = 0;  // > 0: the transfer fails (err, kind) after these bytes
    static FakeReply ok(std::string b) { return {std::move(b), 0, {}}; }
    static FakeReply fail(int e, api::ErrorKind k) { return {{}, e, k}; }
    // The first `at` bytes of `b`, then the connection drops.
    static FakeReply cut(std::string b, std::size_t at) {
        return {std::move(b), ECONNRESET, api::ErrorKind::network, at};
    }
};

class FakeClient final : public api::Client {
public:
    void download(const std::string& name, api::Sink& sink, api::CancelToken& cancel) override;
    // Counted under list_key in calls(); honours hold(); answered by `lister`.
    std::size_t list(const api::ListingQuery& query, const api::RecordHandler& on_record,
                     api::CancelToken& cancel) override;
    static constexpr const char* list_key = "(list)";
    // by_id[ID] names the recording that ID's download answers with: it plays that
    // name's script, counted under the name. An id not in it is "File Not Found".
    std::string download_by_id(const std::string& unique_id, api::Sink& sink,
                               api::CancelToken& cancel) override;
    std::map<std::string, std::string> by_id;  // set before use
    // Set before any call; by default a listing is EOPNOTSUPP.
    std::function<std::size_t(const api::ListingQuery&, const api::RecordHandler&)> lister;

    // Replies are consumed in order; the last one repeats.
    void script(const std::string& name, std::vector<FakeReply> replies);
    // While held, calls block (honouring cancel) until release().
    void hold();
    // Like hold(), but each call first writes its first chunk: a transfer the API
    // has started serving.
    void hold_after_first_chunk();
    void release();
    // Lets held calls start their transfer; hold_after_first_chunk() still applies.
    void release_start();
    // Waits until `n` calls are blocked in hold(); false after 5 s.
    bool wait_blocked(int n);

    int calls(const std::string& name) const;
    int total_calls() const;
    int max_in_flight() const;
    std::vector<std::string> call_order() const;

private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::map<std::string, std::deque<FakeReply>> script_;
    std::map<std::string, int> calls_;
    std::vector<std::string> order_;
    bool held_ = false;
    bool held_midway_ = false;
    int blocked_ = 0;
    int in_flight_ = 0;
    int max_in_flight_ = 0;
};

}  // namespace euphoria::test
