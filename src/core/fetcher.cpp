#include "euphoria/core/fetcher.hpp"

#include <algorithm>
#include <cerrno>
#include <optional>
#include <span>

#include "euphoria/api/error.hpp"
#include "euphoria/api/request.hpp"
#include "euphoria/core/md5.hpp"

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
    // Set once the size is known and readers may open the growing content: later
    // fetches are answered with it at once. Cleared if the download fails.
    std::optional<CachedRecording> published;
    // A published download that met a full tenant on a retry waits in the queue with
    // its builder: its readers keep the bytes they have, and the next attempt is
    // checked against them. Given up, and its readers answered EIO, once the tenant
    // stays full for busy_timeout after kept_since.
    std::unique_ptr<ContentBuilder> kept;
    std::optional<Clock::time_point> kept_since;
    bool running = false;
    Call call;  // set for a job that is not a download by name
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

// The gate (a fleet's shared budget) stayed shut for busy_timeout: the readers'
// patience is spent, so neither a retry nor a requeue, but EAGAIN. Not an ApiError,
// which run_with_retries would retry.
struct GateShut {
    std::string why;
};

CallPass enter_gate(CallGate& gate, api::CancelToken& cancel) {
    try {
        return gate.enter(cancel);
    } catch (const api::ApiError& e) {
        if (e.kind() == api::ErrorKind::busy) throw GateShut{e.what()};
        throw;
    }
}

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

// One upstream call under `pass`, which learns what the call met. A full tenant
// becomes TenantFull, as the queue expects.
template <class F>
void call_through(CallPass& pass, F&& call) {
    try {
        call();
    } catch (const api::ApiError& e) {
        if (e.kind() == api::ErrorKind::busy) {
            pass.set_verdict(CallVerdict::exceeded);
            throw TenantFull{};
        }
        if (admitted_by(e.kind())) pass.set_verdict(CallVerdict::admitted);
        throw;
    }
    pass.set_verdict(CallVerdict::admitted);
}

template <class Duration>
long long millis(Duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// The mount-wide pause after "exceeded", never longer than half a caller's
// patience: a caller who arrives during a pause must see the mount try again before
// it gives up with EAGAIN, even when the tenant was freed meanwhile.
RetryPolicy pause_within_patience(RetryPolicy backoff, std::chrono::milliseconds busy_timeout) {
    const auto half = std::max(std::chrono::milliseconds(1), busy_timeout / 2);
    backoff.max_delay = std::min(backoff.max_delay, half);
    backoff.base_delay = std::min(backoff.base_delay, backoff.max_delay);
    return backoff;
}

}  // namespace

Fetcher::Fetcher(api::Client& client, ContentCache& cache, Clock& clock, Stats& stats,
                 Logger& logger, FetcherConfig config, Jitter jitter, CallGate* gate,
                 SharedCache* shared)
    : client_(client), cache_(cache), clock_(clock), stats_(stats), logger_(logger),
      config_(std::move(config)), jitter_(std::move(jitter)), gate_(gate ? *gate : open_gate_),
      shared_(shared),
      budget_(std::max(1u, config_.max_concurrent),
              pause_within_patience(config_.busy_backoff, config_.busy_timeout)) {
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
    std::multimap<Clock::time_point, std::function<void()>> timers;
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
        timers.swap(timers_);  // dropped unrun: nothing happens after shutdown
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

void Fetcher::schedule(Clock::time_point when, std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        timers_.emplace(when, std::move(task));
    }
    cv_.notify_all();
}

void Fetcher::run(Due& due) {
    for (auto& job : due.cancels) job->cancel.cancel();
    for (auto& [done, result] : due.answers) done(std::move(result));
    for (auto& task : due.tasks) task();
    for (auto& line : due.warnings) logger_.log(LogLevel::warning, line);
    due.dropped.clear();  // fails their contents: EIO to the readers still waiting
    due = {};
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

    // Allocated before anything is shared, so that a bad_alloc leaves no trace.
    auto fresh = std::make_shared<Job>();
    fresh->name = name;
    fresh->enqueued = now;
    fresh->waiters.reserve(1);

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
    auto found = jobs_.find(name);
    const bool joining = found != jobs_.end();
    // Answered at once, so before max_pending: it adds no waiter.
    if (joining && found->second->published && !found->second->published->content->failed()) {
        // Wanted again: a job whose last waiter was interrupted is no orphan now.
        found->second->orphaned_at.reset();
        FetchResult r;
        r.recording = *found->second->published;
        stats_.coalesced_waits.fetch_add(1, std::memory_order_relaxed);
        lock.unlock();
        return answer(std::move(r));
    }
    return enqueue(lock, fresh, done, now);
}

WaitId Fetcher::call(const std::string& key, Call call, Completion done) {
    const auto now = clock_.now();
    auto fresh = std::make_shared<Job>();
    // No recording name holds a control character (XML cannot carry one): this key
    // never meets a download's job.
    fresh->name = "\x01" + key;
    fresh->call = std::move(call);
    fresh->enqueued = now;
    fresh->waiters.reserve(1);
    std::unique_lock lock(mutex_);
    if (stopping_) {
        lock.unlock();
        stats_.count_error(ESHUTDOWN);
        done(failure(ESHUTDOWN, "unmounting"));
        return 0;
    }
    return enqueue(lock, fresh, done, now);
}

WaitId Fetcher::enqueue(std::unique_lock<std::mutex>& lock, const JobPtr& fresh, Completion& done,
                        Clock::time_point now) {
    const std::string& name = fresh->name;
    auto found = jobs_.find(name);
    const bool joining = found != jobs_.end();
    if (waits_.size() >= config_.max_pending) {
        lock.unlock();
        stats_.count_error(EAGAIN);
        done(failure(EAGAIN, "too many requests waiting (max_pending)"));
        return 0;
    }
    const WaitId id = next_wait_++;
    JobPtr job = joining ? found->second : fresh;
    waits_.emplace(id, job);
    try {
        job->waiters.push_back({id, std::move(done), now});
        if (!joining) {
            jobs_.emplace(name, job);
            try {
                queue_.push_back(job);
            } catch (...) {
                jobs_.erase(name);
                throw;
            }
        }
    } catch (...) {
        if (!job->waiters.empty() && job->waiters.back().id == id) job->waiters.pop_back();
        waits_.erase(id);
        throw;
    }
    if (joining) {
        job->orphaned_at.reset();
        stats_.coalesced_waits.fetch_add(1, std::memory_order_relaxed);
    }
    stats_.queued.store(queue_.size());
    stats_.pending.store(waits_.size());
    lock.unlock();
    cv_.notify_all();
    return id;
}

bool Fetcher::cancel_wait(WaitId id) {
    JobPtr cancel_now;
    Completion dropped;  // destroyed outside mutex_
    {
        std::lock_guard lock(mutex_);
        auto it = waits_.find(id);
        if (it == waits_.end()) return false;
        auto job = it->second;
        waits_.erase(it);
        stats_.pending.store(waits_.size());
        auto& ws = job->waiters;
        auto w = std::find_if(ws.begin(), ws.end(), [id](const Waiter& x) { return x.id == id; });
        if (w != ws.end()) {
            dropped = std::move(w->done);
            ws.erase(w);
        }
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

FetchResult Fetcher::get(const std::string& name, api::CancelToken* cancel, Until until) {
    auto r = first_answer(name, cancel);
    if (until == Until::answered || r.error || !r.recording.content) return r;
    std::mutex m;
    std::condition_variable cv;
    std::optional<int> done;
    api::CancelSubscription wake(cancel, [&] {
        std::lock_guard lock(m);
        cv.notify_all();
    });
    const auto& content = *r.recording.content;
    const auto id = content.when_ready(Content::whole, [&](int error) {
        std::lock_guard lock(m);
        done = error;
        cv.notify_all();
    });
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done || (cancel && cancel->cancelled()); });
    if (!done) {
        lock.unlock();
        if (content.cancel_ready(id)) return failure(EINTR, "interrupted");
        lock.lock();
        cv.wait(lock, [&] { return done.has_value(); });
    }
    if (*done) return failure(*done, "the download failed");
    return r;
}

FetchResult Fetcher::first_answer(const std::string& name, api::CancelToken* cancel) {
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
    auto next = timers_.empty() ? Clock::time_point::max() : timers_.begin()->first;
    const auto busy_since = budget_.busy_since();
    for (const auto& [name, job] : jobs_) {
        if (job->waiters.empty() && job->orphaned_at) {
            next = std::min(next, *job->orphaned_at + config_.interrupt_grace);
        } else if (busy_since && !job->running) {
            for (const auto& w : job->waiters) {
                next = std::min(next, std::max(w.joined, *busy_since) + config_.busy_timeout);
            }
            if (const auto at = kept_deadline(*job)) next = std::min(next, *at);
        }
    }
    return next;
}

std::optional<Clock::time_point> Fetcher::kept_deadline(const Job& job) const {
    const auto busy_since = budget_.busy_since();
    if (!job.kept || !job.kept_since || !busy_since) return std::nullopt;
    return std::max(*job.kept_since, *busy_since) + config_.busy_timeout;
}

bool Fetcher::give_up_kept(const JobPtr& job, Clock::time_point now, Due& due) {
    const auto deadline = kept_deadline(*job);
    if (!deadline || now < *deadline) return false;
    forget_job(job);
    job->published.reset();
    due.dropped.push_back(std::move(job->kept));
    due.warnings.push_back("gave up on " + job->name + " for its readers: the tenant's API slots "
                           "stayed busy for busy_timeout (" +
                           std::to_string(millis(config_.busy_timeout)) + " ms)");
    return true;
}

bool Fetcher::lose_patience(Job& job, Clock::time_point now, Due& due) {
    const auto busy_since = budget_.busy_since();
    if (!busy_since || job.waiters.empty()) return false;
    const std::string why = "the tenant's API slots stayed busy for busy_timeout (" +
                            std::to_string(millis(config_.busy_timeout)) + " ms)";
    auto& ws = job.waiters;
    auto keep = std::stable_partition(ws.begin(), ws.end(), [&](const Waiter& w) {
        return now < std::max(w.joined, *busy_since) + config_.busy_timeout;
    });
    if (keep == ws.end()) return false;
    const auto lost = static_cast<std::size_t>(ws.end() - keep);
    for (auto w = keep; w != ws.end(); ++w) {
        waits_.erase(w->id);
        stats_.count_error(EAGAIN);
        due.answers.emplace_back(std::move(w->done), failure(EAGAIN, why));
    }
    ws.erase(keep, ws.end());
    stats_.pending.store(waits_.size());
    due.warnings.push_back("gave up on " + job.name + " for " + std::to_string(lost) +
                           " caller(s): " + why);
    return ws.empty();
}

Fetcher::Due Fetcher::expire(Clock::time_point now) {
    Due due;
    while (!timers_.empty() && timers_.begin()->first <= now) {
        due.tasks.push_back(std::move(timers_.begin()->second));
        timers_.erase(timers_.begin());
    }
    std::vector<JobPtr> jobs;
    jobs.reserve(jobs_.size());
    for (const auto& [name, job] : jobs_) jobs.push_back(job);
    for (const auto& job : jobs) {
        if (job->waiters.empty() && job->orphaned_at) {
            if (now < *job->orphaned_at + config_.interrupt_grace) continue;
            forget_job(job);
            if (job->kept) due.dropped.push_back(std::move(job->kept));
            // A running one is cancelled outside mutex_.
            if (job->running) due.cancels.push_back(job);
            continue;
        }
        if (job->running) continue;
        if (give_up_kept(job, now, due)) continue;
        // Every caller ran out of patience: nobody wants the job any more.
        if (lose_patience(*job, now, due)) forget_job(job);
    }
    return due;
}

void Fetcher::keep_time() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        auto due = expire(clock_.now());
        if (!due.empty()) {
            lock.unlock();
            run(due);
            lock.lock();
            continue;
        }
        clock_.wait_until(cv_, lock, next_deadline());
    }
}

void Fetcher::note_admission() {
    {
        std::lock_guard lock(mutex_);
        budget_.on_admitted();
        stats_.budget.store(budget_.window());
    }
    cv_.notify_all();
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
        std::unique_ptr<ContentBuilder> finished;  // its destructor finishes the content
        try {
            outcome = job->call ? run_call(*job, result, admitted)
                                : download(*job, result, admitted, finished);
        } catch (...) {
            result = failure(EIO, "internal error");
        }

        lock.lock();
        --running_;
        job->running = false;
        std::vector<Waiter> waiters;
        Due due;
        if (outcome == Outcome::busy) {
            stats_.exceeded_replies.fetch_add(1, std::memory_order_relaxed);
            const auto at = clock_.now();
            budget_.on_exceeded(epoch, at, jitter_ ? jitter_() : 0.5);
            const auto it = jobs_.find(job->name);
            const bool wanted = it != jobs_.end() && it->second == job;
            if (finished) {
                job->kept = std::move(finished);
                if (!job->kept_since) job->kept_since = at;
            }
            if (!wanted) {
                job->published.reset();
                if (job->kept) due.dropped.push_back(std::move(job->kept));
            } else if (!give_up_kept(job, at, due)) {
                if (lose_patience(*job, at, due) && !job->kept) {
                    forget_job(job);
                } else {
                    queue_.push_front(job);  // keeps its place: first in, first out
                    stats_.queued.store(queue_.size());
                }
            }
        } else {
            if (admitted) budget_.on_admitted();
            waiters = finish(job);
        }
        stats_.budget.store(budget_.window());
        lock.unlock();
        cv_.notify_all();
        run(due);
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
        waiters.clear();
        // Last: whoever sees the content complete finds the job gone, and this
        // thread holding none of its bytes.
        finished.reset();
        lock.lock();
        // Only now: a download counts as in flight until its readers see it complete.
        stats_.in_flight.store(running_);
    }
}

namespace {

// Tells the Fetcher once per attempt that audio is arriving: the call holds a slot
// and the tenant serves us, so the window may grow and patience stops counting,
// however long the transfer then takes.
class AdmissionSink final : public api::Sink {
public:
    AdmissionSink(api::Sink& inner, std::function<void()> on_admitted)
        : inner_(inner), on_admitted_(std::move(on_admitted)) {}
    void reset() override {
        reported_ = false;
        inner_.reset();
    }
    void write(std::span<const std::byte> bytes) override {
        report();
        inner_.write(bytes);
    }
    void complete() override {
        report();
        inner_.complete();
    }
    bool reported() const noexcept { return reported_; }

private:
    void report() {
        if (reported_) return;
        reported_ = true;
        on_admitted_();
    }
    api::Sink& inner_;
    std::function<void()> on_admitted_;
    bool reported_ = false;
};

// A look()'s claim is given up however the download ends.
class ClaimRelease {
public:
    ClaimRelease(SharedCache* cache, std::shared_ptr<const std::string> claim)
        : cache_(cache), claim_(std::move(claim)) {}
    ~ClaimRelease() {
        if (cache_) cache_->release(*claim_);
    }
    ClaimRelease(const ClaimRelease&) = delete;
    ClaimRelease& operator=(const ClaimRelease&) = delete;

private:
    SharedCache* cache_;
    std::shared_ptr<const std::string> claim_;
};

std::chrono::milliseconds millis_left(Clock::time_point until, Clock::time_point now) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
}

}  // namespace

Fetcher::Outcome Fetcher::download(Job& job, FetchResult& out, bool& admitted,
                                   std::unique_ptr<ContentBuilder>& finished) {
    admitted = false;
    const auto started = clock_.now();
    const auto wall_started = clock_.wall_now();
    const auto call_time = call_time_from_name(job.name);
    // A listing's word on the call time keeps a listed file's mtime, so its inode
    // stays the one the day folder gave out.
    const auto hint = hints_ ? hints_(job.name) : std::nullopt;
    const auto mtime = call_time ? std::chrono::system_clock::from_time_t(*call_time)
                       : hint && hint->call_time ? *hint->call_time
                                                 : wall_started;
    std::unique_ptr<ContentBuilder> made;
    {
        std::lock_guard lock(mutex_);
        made = std::move(job.kept);
    }
    // A kept builder's job looked at the fleet's cache on its first attempt.
    const bool first_attempt = !made;
    // This download's claim on the name in the fleet's cache, once look() took it.
    // Shared with the published callback, which a kept builder may outlive us with.
    auto claim_token = std::make_shared<std::string>();
    if (!made) {
        // With verify=md5 no reader may see a byte before the whole download matched
        // the listing's MD5, so such a download answers nobody early.
        ContentBuilder::Published published;
        if (!(config_.verify_md5 && hint && !hint->md5.empty())) {
            published = [this, &job, mtime, claim_token](std::shared_ptr<const Content> content) {
                // Hosts waiting for this download need not wait for its end to learn
                // that it will not be shared.
                if (shared_ && content->size() > shared_->max_bytes()) {
                    shared_->unshare(job.name, *claim_token, config_.ttl);
                }
                publish(job, std::move(content), mtime);
            };
        }
        made = std::make_unique<ContentBuilder>(
            config_.builder, [this](std::uint64_t bytes) { return cache_.reserve_memory(bytes); },
            [this](std::uint64_t bytes) { return cache_.reserve_disk(bytes); }, std::move(published));
    }
    ContentBuilder& builder = *made;
    std::uint64_t announced = 0;  // the size readers were told, if they were let in
    AdmissionSink admission_sink(builder, [this] { note_admission(); });
    const std::string want_md5 = hint ? hint->md5 : std::string();
    Md5Sink sink(admission_sink, !want_md5.empty());
    auto elapsed_ms = [&] { return std::to_string(millis(clock_.now() - started)) + " ms"; };
    auto check_md5 = [&](const std::string& got) {
        if (want_md5.empty() || got == want_md5) return;
        stats_.md5_mismatches.fetch_add(1, std::memory_order_relaxed);
        logger_.log(LogLevel::warning,
                    "fetched " + job.name + ": MD5 " + got + " is not the listing's " + want_md5);
        // Not retried: the API answered, and would answer the same.
        if (config_.verify_md5) {
            throw api::ApiError(EIO, api::ErrorKind::malformed,
                                "MD5 differs from the listing's (verify=md5)");
        }
    };
    std::optional<ClaimRelease> claim;
    SharedCache::Lookup fleet;
    try {
        if (shared_ && first_attempt) {
            fleet = shared_->look(job.name, job.cancel);
            *claim_token = fleet.claim;
            claim.emplace(shared_, claim_token);
        }
        if (fleet.found == SharedCache::Found::negative) {
            throw api::ApiError(ENOENT, api::ErrorKind::not_found,
                                "no such recording (another host's answer)");
        }
        if (fleet.found == SharedCache::Found::recording) {
            // Another host's download, authenticated: into the tiers like any other.
            Md5Sink hit(builder, !want_md5.empty());
            hit.write(std::as_bytes(std::span(fleet.bytes)));
            api::wipe_string(fleet.bytes);
            hit.complete();
            check_md5(hit.hex());
        } else {
        run_with_retries(
            config_.retry, clock_, jitter_, job.cancel,
            [&] {
                {
                    // On this Fetcher thread, never a FUSE one: it may wait for the fleet.
                    CallPass pass = enter_gate(gate_, job.cancel);
                    stats_.upstream_calls.fetch_add(1, std::memory_order_relaxed);
                    call_through(pass, [&] { client_.download(job.name, sink, job.cancel); });
                }
                check_md5(sink.hex());
            },
            [&](const api::ApiError& e, unsigned retry, std::chrono::milliseconds delay) {
                stats_.retries.fetch_add(1, std::memory_order_relaxed);
                logger_.log(LogLevel::warning,
                            "call for " + job.name + " failed (" + e.what() + "); retry " +
                                std::to_string(retry + 1) + " in " +
                                std::to_string(delay.count()) + " ms");
            });
        }
        const bool from_fleet = fleet.found == SharedCache::Found::recording;
        FetchResult r;
        announced = builder.announced();
        r.recording.content = builder.take();
        // The API's rule is about data once returned: the TTL starts now, not when
        // the call did, so a slow download is never stale on arrival.
        const auto arrived = clock_.now();
        // Another host's download keeps the 30 seconds counted from its own reply.
        r.recording.expires_at = arrived + (from_fleet ? std::min<std::chrono::milliseconds>(
                                                             fleet.left, config_.ttl)
                                                       : std::chrono::milliseconds(config_.ttl));
        r.recording.mtime = mtime;
        const auto size = r.recording.content->size();
        if (!from_fleet) stats_.bytes_fetched.fetch_add(size, std::memory_order_relaxed);
        cache_.insert(job.name, r.recording, arrived);
        if (shared_ && !from_fleet) {
            shared_->store(job.name, *r.recording.content, millis_left(r.recording.expires_at, arrived));
        }
        {
            // From now on the cache answers for the name, not the growing content.
            std::lock_guard lock(mutex_);
            job.published.reset();
        }
        // Readers see it complete once the job is done with (work()).
        finished = std::move(made);
        if (announced && size != announced) {
            // Only longer: a shorter one failed in take(). The kernel must learn it.
            logger_.log(LogLevel::warning, "fetched " + job.name + ": " + std::to_string(size) +
                                               " bytes, not the " + std::to_string(announced) +
                                               " its header announced");
            if (resized_) resized_(job.name, announced, r.recording);
        }
        logger_.log(LogLevel::info, "fetched " + job.name + ": " + std::to_string(size) +
                                        " bytes in " + elapsed_ms() + ", ok" +
                                        (r.recording.content->on_disk() ? " (disk)" : "") +
                                        (from_fleet ? " (from the fleet's cache)" : ""));
        out = std::move(r);
        // Another host's download used no slot of ours: the window learns nothing.
        admitted = !from_fleet && !admission_sink.reported();
        return Outcome::finished;
    } catch (const TenantFull&) {
        if (builder.published()) {
            finished = std::move(made);  // its readers wait for the next attempt
        } else {
            unpublish(job, builder, EIO);
        }
        logger_.log(LogLevel::info, "call for " + job.name + ": the tenant is full (" +
                                        "Concurrent API Calls Exceeded); waiting");
        return Outcome::busy;
    } catch (const GateShut& shut) {
        unpublish(job, builder, EIO);
        logger_.log(LogLevel::warning, "fetched " + job.name + ": 0 bytes in " + elapsed_ms() +
                                           ", EAGAIN: " + shut.why);
        out = failure(EAGAIN, shut.why);
        return Outcome::finished;
    } catch (const api::ApiError& e) {
        int err = e.error_number();
        // A fault of ours (the cache folder, the disk) is no answer about the
        // recording: never ENOENT or EACCES, never cached. A full cache keeps ENOSPC.
        if (e.kind() == api::ErrorKind::local && err != ENOSPC) err = EIO;
        // Readers of what arrived: EIO, as for any recording cut short, but a full
        // cache says so.
        unpublish(job, builder, err == ENOSPC ? ENOSPC : EIO);
        auto r = failure(err, e.what());
        if (e.kind() == api::ErrorKind::not_found) {
            r.negative = true;
            r.negative_until = clock_.now() + config_.ttl;
            const auto now = clock_.now();
            if (fleet.found == SharedCache::Found::negative) {
                r.negative_until = now + std::min<std::chrono::milliseconds>(fleet.left, config_.ttl);
            }
            cache_.insert_negative(job.name, r.negative_until);
            if (shared_ && fleet.found != SharedCache::Found::negative) {
                shared_->store_negative(job.name, millis_left(r.negative_until, now));
            }
        }
        // Another host's answer used no slot of ours.
        admitted = admitted_by(e.kind()) && !admission_sink.reported() &&
                   fleet.found != SharedCache::Found::negative;
        const bool quiet = e.kind() == api::ErrorKind::not_found ||
                           e.kind() == api::ErrorKind::cancelled;
        logger_.log(quiet ? LogLevel::info : LogLevel::error,
                    "fetched " + job.name + ": 0 bytes in " + elapsed_ms() + ", " +
                        api::describe_errno(err) + ": " + e.what());
        out = std::move(r);
        return Outcome::finished;
    } catch (const std::exception& e) {
        unpublish(job, builder, EIO);
        logger_.log(LogLevel::error, "fetch of " + job.name + " failed: " + e.what());
        out = failure(EIO, e.what());
        return Outcome::finished;
    }
}

Fetcher::Outcome Fetcher::run_call(Job& job, FetchResult& out, bool& admitted) {
    admitted = false;
    class Runner final : public CallRunner {
    public:
        Runner(Fetcher& f, Job& j) : f_(f), job_(j) {}
        void once(const std::function<void()>& attempt) override {
            run_with_retries(
                f_.config_.retry, f_.clock_, f_.jitter_, job_.cancel,
                [&] {
                    CallPass pass = enter_gate(f_.gate_, job_.cancel);
                    f_.stats_.upstream_calls.fetch_add(1, std::memory_order_relaxed);
                    call_through(pass, attempt);
                },
                [&](const api::ApiError& e, unsigned retry, std::chrono::milliseconds delay) {
                    f_.stats_.retries.fetch_add(1, std::memory_order_relaxed);
                    f_.logger_.log(LogLevel::warning,
                                   "call for " + job_.name.substr(1) + " failed (" + e.what() +
                                       "); retry " + std::to_string(retry + 1) + " in " +
                                       std::to_string(delay.count()) + " ms");
                });
            // The call had a slot: the window may grow, as after any answer.
            f_.note_admission();
        }

    private:
        Fetcher& f_;
        Job& job_;
    };
    Runner runner(*this, job);
    try {
        job.call(runner, job.cancel);
        out = FetchResult{};
        return Outcome::finished;
    } catch (const TenantFull&) {
        logger_.log(LogLevel::info, "call for " + job.name.substr(1) +
                                        ": the tenant is full (Concurrent API Calls Exceeded); waiting");
        return Outcome::busy;
    } catch (const GateShut& shut) {
        out = failure(EAGAIN, shut.why);
        return Outcome::finished;
    } catch (const api::ApiError& e) {
        int err = e.error_number();
        if (e.kind() == api::ErrorKind::local && err != ENOSPC) err = EIO;
        out = failure(err, e.what());
        admitted = admitted_by(e.kind());
        return Outcome::finished;
    } catch (const std::bad_alloc&) {
        out = failure(ENOMEM, "out of memory");
        return Outcome::finished;
    } catch (const std::exception& e) {
        out = failure(EIO, e.what());
        return Outcome::finished;
    }
}

std::vector<std::pair<std::string, CachedRecording>> Fetcher::arriving() const {
    std::vector<std::pair<std::string, CachedRecording>> out;
    std::lock_guard lock(mutex_);
    for (const auto& [name, job] : jobs_) {
        if (job->published && !job->published->content->failed()) out.emplace_back(name, *job->published);
    }
    return out;
}

void Fetcher::publish(Job& job, std::shared_ptr<const Content> content,
                      std::chrono::system_clock::time_point mtime) noexcept {
    std::vector<Waiter> waiters;
    FetchResult r;
    try {
        r.recording.content = std::move(content);
        // Provisional: the entry's TTL counts from the end of the download.
        r.recording.expires_at = clock_.now() + config_.ttl;
        r.recording.mtime = mtime;
        std::lock_guard lock(mutex_);
        job.published = r.recording;
        waiters.swap(job.waiters);
        for (const auto& w : waiters) waits_.erase(w.id);
        stats_.pending.store(waits_.size());
    } catch (...) {
        return;  // out of memory: the waiters are answered at the end, as before
    }
    stats_.early_replies.fetch_add(1, std::memory_order_relaxed);
    for (auto& w : waiters) w.done(r);
}

void Fetcher::unpublish(Job& job, ContentBuilder& builder, int error) noexcept {
    builder.fail(error);
    std::lock_guard lock(mutex_);
    job.published.reset();
}

}  // namespace euphoria::core
