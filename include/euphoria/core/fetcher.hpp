#pragma once
// Turns a name into a cached recording, without ever making its caller wait.
//
// fetch() answers a cache hit at once; otherwise it registers a completion and
// returns. The completion runs later on one of the Fetcher's own threads, so the FUSE
// threads that asked are free at once for reads, releases and interrupts.
//
// Concurrent requests for one name share one download (a job). Jobs wait in one
// first-in, first-out queue for a call slot. How many slots the mount may use is
// learned from the tenant (CallBudget): "Concurrent API Calls Exceeded" means someone
// else holds the tenant's slots, so the job goes back to the head of the queue, the
// whole mount pauses and lowers its window, and callers wait up to busy_timeout
// before they get EAGAIN. Real failures are retried by the RetryPolicy, as before.
//
// A job whose last waiter gave up (a FUSE interrupt) keeps going for
// interrupt_grace, so that the reader's retry joins it instead of starting afresh.
//
// Built like CVMFS's Fetcher(cache, download, throttle): every collaborator is passed
// in, so tests drive it with a fake client and a fake clock.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "euphoria/api/client.hpp"
#include "euphoria/core/cache.hpp"
#include "euphoria/core/call_budget.hpp"
#include "euphoria/core/call_gate.hpp"
#include "euphoria/core/clock.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/names.hpp"
#include "euphoria/core/retry.hpp"
#include "euphoria/core/shared_cache.hpp"
#include "euphoria/core/stats.hpp"

namespace euphoria::core {

// NAME_MAX, as statfs reports it: longer names are refused before any call.
inline constexpr std::size_t max_name_bytes = 255;

struct FetcherConfig {
    unsigned max_concurrent = 3;
    std::chrono::seconds ttl{30};
    RetryPolicy retry;
    // The mount-wide pause after "Concurrent API Calls Exceeded", by how many came in
    // a row; only its delay() is used. Never longer than half of busy_timeout.
    RetryPolicy busy_backoff{0, std::chrono::milliseconds(250), std::chrono::milliseconds(8000),
                             std::chrono::milliseconds(0)};
    // How long a caller waits while the tenant is full before EAGAIN.
    std::chrono::milliseconds busy_timeout{60000};
    // How long a download nobody waits for any more keeps going.
    std::chrono::milliseconds interrupt_grace{5000};
    // Requests that may wait for downloads at once; past it, EAGAIN at once.
    std::size_t max_pending = 1024;
    BuilderLimits builder;
    NamePolicy names;
    // verify=md5: a download whose bytes disagree with the listing's MD5 is EIO, and
    // not cached. Without it the mismatch is only logged and counted.
    bool verify_md5 = false;
};

// What a day listing said of a name, for its download.
struct ListedHint {
    std::optional<std::chrono::system_clock::time_point> call_time;
    std::string md5;  // lower-case hex, empty when the listing gave none
};

// Runs one upstream call of a job that is not a download by name.
class CallRunner {
public:
    virtual ~CallRunner() = default;
    // `attempt` is one call, retried as a download's would be. A "Concurrent API
    // Calls Exceeded" puts the whole job back at the head of the queue: the job runs
    // again later, and must keep whatever progress it wants to keep itself.
    virtual void once(const std::function<void()>& attempt) = 0;
};
// A job's calls, through `runner`. Throws ApiError for the waiters' answer.
using Call = std::function<void(CallRunner& runner, api::CancelToken& cancel)>;

struct FetchResult {
    int error = 0;  // 0, or the errno for the caller
    // The API said there is no such recording: the kernel may keep a negative entry
    // until negative_until. Never set for a local fault or a transient failure.
    bool negative = false;
    CachedRecording recording;
    Clock::time_point negative_until{};
    std::string message;  // why, for the log; never holds the key
};

// Names one registered wait, for cancel_wait(). 0: none (answered at once).
using WaitId = std::uint64_t;
// Called exactly once per fetch(), unless cancel_wait() took it back. Runs without
// any Fetcher lock held; must not throw.
using Completion = std::function<void(FetchResult)>;

class Fetcher {
public:
    // `gate`, when given, is passed by every upstream call besides the mount's own
    // budget (a fleet's shared budget); it must outlive the Fetcher. Its waits run on
    // the Fetcher's threads only. `shared`, when given, is the fleet's cache: a
    // download first looks there (and may wait there for another host's download of
    // the name, holding one of the mount's call slots meanwhile), and gives it what it
    // brought. It must outlive the Fetcher too.
    Fetcher(api::Client& client, ContentCache& cache, Clock& clock, Stats& stats,
            Logger& logger, FetcherConfig config, Jitter jitter = default_jitter(),
            CallGate* gate = nullptr, SharedCache* shared = nullptr);
    ~Fetcher();  // shutdown()
    Fetcher(const Fetcher&) = delete;
    Fetcher& operator=(const Fetcher&) = delete;

    // Calls `done` before returning for anything the cache or the name alone
    // answers, and returns 0. Otherwise `done` runs later, on a Fetcher thread.
    WaitId fetch(const std::string& name, Completion done);
    // Runs `call` as a job of the same queue as downloads (the same call budget,
    // patience, retries and interrupt grace). Concurrent calls with one `key` share
    // one run: `call` of a joining caller is dropped. `done` gets error 0 or the
    // call's errno, with the same rules as fetch().
    WaitId call(const std::string& key, Call call, Completion done);
    // The caller gave up: its completion will not run, and it no longer counts as a
    // waiter. False when the completion already ran or is running.
    bool cancel_wait(WaitId id);

    // fetch() and a wait for it; `cancel` firing gives EINTR. For tests and tools,
    // never for a FUSE callback. By default it also waits for the whole download
    // (EIO if it fails after the answer); Until::answered returns with the first
    // answer, which may be a content still growing.
    enum class Until { answered, whole };
    FetchResult get(const std::string& name, api::CancelToken* cancel, Until until = Until::whole);

    // Runs `task` on the Fetcher's timekeeping thread once the clock reads `when`
    // (never after shutdown()). For work that must happen on time even when the
    // mount is idle, such as releasing a pin. `task` must not throw.
    void schedule(Clock::time_point when, std::function<void()> task);

    // Cancels every download, answers every waiter with ESHUTDOWN and stops the
    // threads. Later fetches answer ESHUTDOWN. Idempotent. Whatever completions and
    // scheduled tasks touch must outlive this call.
    void shutdown();

    const FetcherConfig& config() const noexcept { return config_; }
    // For a Call's own upstream calls (through its CallRunner).
    api::Client& client() noexcept { return client_; }
    ContentCache& cache() noexcept { return cache_; }

    // The downloads that readers were let into and that are still arriving, for
    // readdir: not yet in the cache, yet already answered to a stat.
    std::vector<std::pair<std::string, CachedRecording>> arriving() const;

    // Told when a download that readers were let into early ended longer than its
    // header announced. Runs on the thread that finished it, after the cache has the
    // real size. Set once, before the first fetch().
    using Resized = std::function<void(const std::string& name, std::uint64_t announced,
                                       const CachedRecording& real)>;
    void on_resized(Resized listener) { resized_ = std::move(listener); }

    // Where a download asks what a listing said of its name (call time, MD5). Runs
    // with no Fetcher lock held. Set once, before the first fetch().
    using Hints = std::function<std::optional<ListedHint>(const std::string& name)>;
    void on_hints(Hints hints) { hints_ = std::move(hints); }

private:
    struct Job;
    using JobPtr = std::shared_ptr<Job>;
    struct Waiter {
        WaitId id;
        Completion done;
        Clock::time_point joined;  // its patience counts from here, or the busy episode
    };
    enum class Outcome { finished, busy };

    void work();
    void keep_time();
    // What is left to do once mutex_ is released.
    struct Due {
        std::vector<std::pair<Completion, FetchResult>> answers;
        std::vector<JobPtr> cancels;  // running jobs nobody wants any more
        std::vector<std::function<void()>> tasks;
        std::vector<std::string> warnings;  // for the log
        // Kept builders given up on: destroying one fails its content, which runs
        // its readers' callbacks, so it happens in run(), without mutex_.
        std::vector<std::unique_ptr<ContentBuilder>> dropped;
        bool empty() const {
            return answers.empty() && cancels.empty() && tasks.empty() && warnings.empty() &&
                   dropped.empty();
        }
    };
    void run(Due& due);  // without mutex_
    // Requires mutex_. Fails waiters past their patience, drops queued jobs (or
    // returns running ones to cancel) that nobody has wanted for interrupt_grace, and
    // takes the scheduled tasks that are due.
    Due expire(Clock::time_point now);
    // Requires mutex_: moves the waiters of a queued `job` whose patience ran out
    // into `due`; true when the job has no waiter left because of it.
    bool lose_patience(Job& job, Clock::time_point now, Due& due);
    void note_admission();  // an upstream call got a slot: the window grows
    Clock::time_point next_deadline() const;  // requires mutex_
    bool may_start(Clock::time_point now) const;  // requires mutex_
    // Requires mutex_: removes the job from jobs_ and queue_, hands back its waiters.
    std::vector<Waiter> finish(const JobPtr& job);
    void forget_job(const JobPtr& job);  // requires mutex_
    // Requires mutex_: a queued job's kept builder whose readers waited out
    // busy_timeout goes to `due`, and so does the job. True if it went.
    bool give_up_kept(const JobPtr& job, Clock::time_point now, Due& due);
    std::optional<Clock::time_point> kept_deadline(const Job& job) const;  // requires mutex_
    // One job's calls, retries included. `admitted`: the API answered without any
    // audio (the call had a slot, and nothing reported it yet).
    // `finished`: on success, the builder whose finish() lets readers see the end;
    // on Outcome::busy, a published builder to keep for the next attempt (or none).
    Outcome download(Job& job, FetchResult& result, bool& admitted,
                     std::unique_ptr<ContentBuilder>& finished);
    Outcome run_call(Job& job, FetchResult& result, bool& admitted);
    // Requires `lock` on mutex_: joins the job for `fresh->name`, or queues `fresh`.
    WaitId enqueue(std::unique_lock<std::mutex>& lock, const JobPtr& fresh, Completion& done,
                   Clock::time_point now);
    // The size is known: answers the job's waiters with the growing content.
    void publish(Job& job, std::shared_ptr<const Content> content,
                 std::chrono::system_clock::time_point mtime) noexcept;
    // The download failed: readers of the growing content get `error`.
    void unpublish(Job& job, ContentBuilder& builder, int error) noexcept;
    FetchResult first_answer(const std::string& name, api::CancelToken* cancel);
    FetchResult from_cache(const std::string& name, Clock::time_point now, bool& answered);

    api::Client& client_;
    ContentCache& cache_;
    Clock& clock_;
    Stats& stats_;
    Logger& logger_;
    const FetcherConfig config_;
    const Jitter jitter_;
    OpenGate open_gate_;
    CallGate& gate_;  // open_gate_, or the one given
    SharedCache* const shared_;

    // Guards everything below, and every Job's fields but its CancelToken.
    // Lock order: mutex_, then ContentCache's mutex. Never held across an upstream
    // call, while a completion runs, or while cancelling a job's token (the client's
    // cancel callback may take its own locks).
    mutable std::mutex mutex_;
    std::condition_variable cv_;  // queue, budget, deadlines or stopping changed
    std::unordered_map<std::string, JobPtr> jobs_;  // queued or running, by name
    std::deque<JobPtr> queue_;
    std::unordered_map<WaitId, JobPtr> waits_;  // every registered waiter's job
    std::multimap<Clock::time_point, std::function<void()>> timers_;
    CallBudget budget_;
    unsigned running_ = 0;
    WaitId next_wait_ = 1;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
    Resized resized_;  // set before any fetch, read-only after
    Hints hints_;      // the same
};

}  // namespace euphoria::core
