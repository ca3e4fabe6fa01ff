#include "euphoria/core/fetcher.hpp"

#include <cerrno>
#include <cstring>

#include "euphoria/api/error.hpp"
#include "euphoria/api/request.hpp"

namespace euphoria::core {

struct Fetcher::Job {
    std::string name;
    // Fired when nobody waits any more, or at shutdown: stops a queued job before it
    // starts, a transfer mid-way, or a backoff sleep.
    api::CancelToken cancel;
    std::condition_variable done_cv;
    int waiters = 0;
    bool done = false;
    FetchResult result;
};

Fetcher::Fetcher(api::Client& client, ContentCache& cache, Clock& clock, Stats& stats,
                 Logger& logger, FetcherConfig config, Jitter jitter)
    : client_(client), cache_(cache), clock_(clock), stats_(stats), logger_(logger),
      config_(std::move(config)), jitter_(std::move(jitter)) {
    const unsigned n = std::max(1u, config_.max_concurrent);
    workers_.reserve(n);
    for (unsigned i = 0; i < n; ++i) workers_.emplace_back([this] { work(); });
}

Fetcher::~Fetcher() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        for (auto& [name, job] : jobs_) job->cancel.cancel();
    }
    queue_cv_.notify_all();
    for (auto& t : workers_) t.join();
    std::lock_guard lock(mutex_);
    for (auto& job : queue_) {
        job->done = true;
        job->result.error = ESHUTDOWN;
        job->done_cv.notify_all();
    }
}

namespace {

FetchResult failure(int err, std::string message) {
    FetchResult r;
    r.error = err;
    r.message = std::move(message);
    return r;
}

}  // namespace

FetchResult Fetcher::get(const std::string& name, api::CancelToken* cancel) {
    const auto now = clock_.now();
    if (name.size() > max_name_bytes) {
        stats_.count_error(ENAMETOOLONG);
        return failure(ENAMETOOLONG, "name longer than 255 bytes");
    }
    if (!config_.names.may_fetch(name)) {
        stats_.negative_hits.fetch_add(1, std::memory_order_relaxed);
        auto r = failure(ENOENT, "name is not fetched (dot-name or name_pattern)");
        r.negative_until = now + config_.ttl;
        return r;
    }
    try {
        api::validate_file_name(name);
    } catch (const api::ApiError& e) {
        stats_.count_error(e.error_number());
        return failure(e.error_number(), e.what());
    }

    std::shared_ptr<Job> job;
    {
        std::lock_guard lock(mutex_);
        auto found = cache_.find(name, now);
        switch (found.hit) {
        case ContentCache::Hit::memory:
        case ContentCache::Hit::disk: {
            auto& counter = found.hit == ContentCache::Hit::memory ? stats_.memory_hits
                                                                   : stats_.disk_hits;
            counter.fetch_add(1, std::memory_order_relaxed);
            FetchResult r;
            r.recording = std::move(found.recording);
            return r;
        }
        case ContentCache::Hit::negative: {
            stats_.negative_hits.fetch_add(1, std::memory_order_relaxed);
            stats_.count_error(ENOENT);
            auto r = failure(ENOENT, "no such recording (cached)");
            r.negative_until = found.negative_until;
            return r;
        }
        case ContentCache::Hit::none:
            break;
        }
        if (stopping_) return failure(ESHUTDOWN, "unmounting");
        if (auto it = jobs_.find(name); it != jobs_.end()) {
            job = it->second;
            stats_.coalesced_waits.fetch_add(1, std::memory_order_relaxed);
        } else {
            job = std::make_shared<Job>();
            job->name = name;
            jobs_.emplace(name, job);
            queue_.push_back(job);
            stats_.queued.store(queue_.size());
            queue_cv_.notify_one();
        }
        ++job->waiters;
    }

    // Subscribed outside mutex_, because the callback takes it.
    api::CancelSubscription wake(cancel, [this, job] {
        std::lock_guard lock(mutex_);
        job->done_cv.notify_all();
    });
    std::unique_lock lock(mutex_);
    job->done_cv.wait(lock, [&] { return job->done || (cancel && cancel->cancelled()); });
    --job->waiters;
    if (!job->done) {
        if (job->waiters == 0) abandon(job);
        stats_.count_error(EINTR);
        return failure(EINTR, "interrupted");
    }
    if (job->result.error) stats_.count_error(job->result.error);
    return job->result;
}

void Fetcher::abandon(const std::shared_ptr<Job>& job) {
    // Nobody wants it any more: free the slot, and let the next caller start afresh.
    if (auto it = jobs_.find(job->name); it != jobs_.end() && it->second == job) jobs_.erase(it);
    job->cancel.cancel();
}

void Fetcher::work() {
    std::unique_lock lock(mutex_);
    for (;;) {
        queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        auto job = std::move(queue_.front());
        queue_.pop_front();
        stats_.queued.store(queue_.size());
        if (job->cancel.cancelled()) {
            job->done = true;
            job->result = failure(EINTR, "abandoned while queued");
            continue;
        }
        stats_.in_flight.fetch_add(1);
        lock.unlock();
        FetchResult result = download(*job);
        lock.lock();
        stats_.in_flight.fetch_sub(1);
        if (auto it = jobs_.find(job->name); it != jobs_.end() && it->second == job) {
            jobs_.erase(it);
        }
        job->result = std::move(result);
        job->done = true;
        job->done_cv.notify_all();
    }
}

FetchResult Fetcher::download(Job& job) {
    const auto started = clock_.now();
    const auto wall_started = clock_.wall_now();
    ContentBuilder builder(config_.builder,
                           [this](std::uint64_t bytes) { return cache_.reserve_disk(bytes); });
    auto elapsed_ms = [&] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - started)
            .count();
    };
    try {
        run_with_retries(
            config_.retry, clock_, jitter_, job.cancel,
            [&] {
                stats_.upstream_calls.fetch_add(1, std::memory_order_relaxed);
                client_.download(job.name, builder, job.cancel);
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
        r.recording.expires_at = started + config_.ttl;
        const auto call_time = call_time_from_name(job.name);
        r.recording.mtime =
            call_time ? std::chrono::system_clock::from_time_t(*call_time) : wall_started;
        const auto size = r.recording.content->size();
        stats_.bytes_fetched.fetch_add(size, std::memory_order_relaxed);
        cache_.insert(job.name, r.recording, clock_.now());
        logger_.log(LogLevel::info, "fetched " + job.name + ": " + std::to_string(size) +
                                        " bytes in " + std::to_string(elapsed_ms()) +
                                        " ms, ok" + (r.recording.content->on_disk() ? " (disk)" : ""));
        return r;
    } catch (const api::ApiError& e) {
        auto r = failure(e.error_number(), e.what());
        if (e.kind() == api::ErrorKind::not_found) {
            r.negative_until = started + config_.ttl;
            cache_.insert_negative(job.name, r.negative_until);
        }
        const bool quiet = e.kind() == api::ErrorKind::not_found ||
                           e.kind() == api::ErrorKind::cancelled;
        logger_.log(quiet ? LogLevel::info : LogLevel::error,
                    "fetched " + job.name + ": 0 bytes in " + std::to_string(elapsed_ms()) +
                        " ms, " + api::describe_errno(e.error_number()) + ": " + e.what());
        return r;
    } catch (const std::exception& e) {
        logger_.log(LogLevel::error, "fetch of " + job.name + " failed: " + e.what());
        return failure(EIO, e.what());
    }
}

}  // namespace euphoria::core
