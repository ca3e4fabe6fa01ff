#pragma once
// The tenant's call budget, shared by every mount of it through Redis (-o redis=URL).
//
// Before each upstream call the Fetcher's thread takes a lease (LeaseScripts): it
// waits in ticket order, woken by pub/sub when a lease is given back, polling as a
// fallback. A keeper thread renews the leases in use every third of a lease time,
// reads the wake-ups, and reconnects with backoff.
//
// A lease that lapsed (Redis restarted, this host stalled) never cuts its call short:
// it is counted (lease_lapses) and the next call takes a fresh one. While Redis is
// unreachable the mount works on a local share of `fallback` calls, says so once,
// and rejoins the shared budget when Redis answers again.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "euphoria/api/secret.hpp"
#include "euphoria/core/call_gate.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/redis/address.hpp"
#include "euphoria/core/redis/connection.hpp"
#include "euphoria/core/redis/lease_scripts.hpp"
#include "euphoria/core/stats.hpp"

namespace euphoria::core::redis {

struct SharedBudgetConfig {
    Address address;
    api::Secret password;
    std::string tenant;
    unsigned max_concurrent = 3;
    unsigned fallback = 1;  // calls in flight while Redis is unreachable
    LeaseTimes times;
    // How long enter() waits for a lease (or a fallback place) before it gives up
    // with EAGAIN: the mount's busy_timeout (0: one try). None: until cancelled.
    std::optional<std::chrono::milliseconds> wait_limit;
    // How often a waiter asks again when no wake-up came.
    std::chrono::milliseconds poll{250};
    // Connect and command timeout: a hung Redis costs a call this long, then fallback.
    std::chrono::milliseconds timeout{1000};
    // How long after its call a lease is given back. The API frees its slot only once
    // it has sent the last byte, a moment after we read it: a lease given back at once
    // lets another host's call meet the slot still counted ("exceeded").
    std::chrono::milliseconds settle{20};
    std::chrono::milliseconds reconnect_min{250};
    std::chrono::milliseconds reconnect_max{5000};
};

class SharedBudget final : public CallGate {
public:
    // Connects at once; an unreachable Redis is no error (fallback, then reconnect),
    // but a refused password is: it throws ReplyError, so the mount fails with it.
    SharedBudget(SharedBudgetConfig config, Stats& stats, Logger& logger);
    ~SharedBudget() override;
    SharedBudget(const SharedBudget&) = delete;
    SharedBudget& operator=(const SharedBudget&) = delete;

    CallPass enter(api::CancelToken& cancel) override;
    bool connected() const noexcept { return connected_.load(); }

private:
    struct Held {
        std::string ticket;  // empty: a fallback pass, not a lease
        std::uint64_t epoch = 0;
        std::uint64_t generation = 0;  // the connection it was leased on
        bool lapsed = false;           // renewal found it gone (counted then)
    };
    void leave(std::uint64_t id, CallVerdict verdict) noexcept override;
    void release(const Held& h, Verdict v) noexcept;  // gives a lease back now
    void keep();  // the keeper thread
    void settle();  // the releaser thread: gives leases back once settled
    // Run under command_mutex_ with a live connection; false (and fallback) when
    // the connection failed. Never throws ConnectionError.
    template <class F>
    bool with_redis(F&& f);
    void lost(const std::string& why);  // requires command_mutex_
    void renew_all();
    bool reconnect(std::string* why = nullptr);  // `why` it failed, for the log
    std::optional<CallPass> try_fallback();

    const SharedBudgetConfig config_;
    const LeaseKeys keys_;
    const LeaseScripts scripts_;
    Stats& stats_;
    Logger& logger_;
    std::atomic<bool> connected_{false};

    // Guards command_ and generation_. Held for one command at a time (bounded by
    // config_.timeout). Never nested with mutex_, either way round: a cancel callback or
    // a waiter must never wait behind a Redis command.
    std::mutex command_mutex_;
    std::optional<Connection> command_;
    std::uint64_t generation_ = 0;
    // The keeper thread's alone (the constructor's before it starts): pub/sub only.
    std::optional<Connection> subscriber_;

    // Guards everything below. Never held across a Redis command.
    mutable std::mutex mutex_;
    std::condition_variable cv_;  // a wake-up, a pass given back, reconnect, cancel, stop
    std::unordered_map<std::uint64_t, Held> held_;
    std::uint64_t next_id_ = 1;
    unsigned fallback_in_use_ = 0;
    std::uint64_t wakes_ = 0;  // pub/sub messages seen
    struct Settling {
        std::chrono::steady_clock::time_point due;
        Held held;
        Verdict verdict;
    };
    std::deque<Settling> settling_;  // in due order: one settle time after each call
    bool stopping_ = false;
    // Last: started once everything above exists.
    std::thread keeper_;
    std::thread releaser_;
};

}  // namespace euphoria::core::redis
