#pragma once
// Turns a name into a cached recording. Concurrent requests for one name share one
// upstream call, and a fixed pool of workers, fed first in first out, bounds the
// calls in flight for the whole mount: the API allows three per tenant.
//
// Built like CVMFS's Fetcher(cache, download, throttle): every collaborator is passed
// in, so tests drive it with a fake client and a fake clock.

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "euphoria/api/client.hpp"
#include "euphoria/core/cache.hpp"
#include "euphoria/core/clock.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/names.hpp"
#include "euphoria/core/retry.hpp"
#include "euphoria/core/stats.hpp"

namespace euphoria::core {

// NAME_MAX, as statfs reports it: longer names are refused before any call.
inline constexpr std::size_t max_name_bytes = 255;

struct FetcherConfig {
    unsigned max_concurrent = 3;
    std::chrono::seconds ttl{30};
    RetryPolicy retry;
    BuilderLimits builder;
    NamePolicy names;
};

struct FetchResult {
    int error = 0;  // 0, or the errno for the caller
    CachedRecording recording;
    // With ENOENT: how long the kernel may keep the negative entry.
    Clock::time_point negative_until{};
    std::string message;  // why, for the log; never holds the key
};

class Fetcher {
public:
    Fetcher(api::Client& client, ContentCache& cache, Clock& clock, Stats& stats,
            Logger& logger, FetcherConfig config, Jitter jitter = default_jitter());
    ~Fetcher();
    Fetcher(const Fetcher&) = delete;
    Fetcher& operator=(const Fetcher&) = delete;

    // Blocks until the recording is cached or failed, or `cancel` fires (EINTR). An
    // interrupted caller leaves a shared download running for the others.
    FetchResult get(const std::string& name, api::CancelToken* cancel);

    const FetcherConfig& config() const noexcept { return config_; }

private:
    struct Job;
    void work();
    FetchResult download(Job& job);
    void abandon(const std::shared_ptr<Job>& job);  // requires mutex_

    api::Client& client_;
    ContentCache& cache_;
    Clock& clock_;
    Stats& stats_;
    Logger& logger_;
    const FetcherConfig config_;
    const Jitter jitter_;

    // Guards jobs_, queue_, stopping_ and every Job's waiters/done/result. Lock order:
    // mutex_, then ContentCache's mutex. Never held across an upstream call, and never
    // held while (un)subscribing to a CancelToken whose callback takes it.
    std::mutex mutex_;
    std::condition_variable queue_cv_;
    std::unordered_map<std::string, std::shared_ptr<Job>> jobs_;  // queued or running
    std::deque<std::shared_ptr<Job>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

}  // namespace euphoria::core
