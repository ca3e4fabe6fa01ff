#pragma once
// The fleet's shared call budget, as Lua scripts that run inside Redis.
//
// Each script is one atomic step and reads the time with redis.call('TIME'), so the
// hosts' clocks never matter. Keys (all under the hash tag {TENANT}, so a cluster
// keeps them on one node):
//   holders  ZSET  ticket -> lease expiry (ms, Redis time): the calls in flight
//   queue    ZSET  ticket -> ticket: who waits, in ticket order
//   queue_at ZSET  ticket -> expiry of the wait, refreshed by every poll
//   ticket   the INCR counter that hands out tickets
//   budget   HASH  window (float), epoch, streak, resume_at: the learned budget and
//                  the pause after "exceeded", fleet-wide
//   channel  pub/sub: a release wakes the waiters
// Nothing in them names the key, a recording or a byte of one: tickets are numbers.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "euphoria/core/redis/connection.hpp"

namespace euphoria::core::redis {

struct LeaseKeys {
    std::string holders, queue, queue_at, ticket, budget, channel;
    static LeaseKeys for_tenant(const std::string& tenant);
};

// A Lua script run by EVALSHA, or by EVAL when Redis lost it (NOSCRIPT: a restart,
// SCRIPT FLUSH), which also loads it again.
class Script {
public:
    explicit Script(std::string text);
    Reply run(Connection& c, const std::vector<std::string_view>& keys,
              const std::vector<std::string_view>& args) const;
    const std::string& sha1() const noexcept { return sha1_; }

private:
    std::string text_;
    std::string sha1_;
};

struct Acquired {
    bool granted = false;
    std::string ticket;  // the waiter's ticket; when granted, the lease's name too
    unsigned limit = 0;  // the fleet's budget when asked: min(floor(window), cap)
    std::uint64_t epoch = 0;
};

enum class Verdict { none, admitted, exceeded };

struct Released {
    bool was_held = false;  // false: the lease had lapsed (expired and reclaimed)
    unsigned limit = 0;
};

struct LeaseTimes {
    std::chrono::milliseconds lease{15000};
    std::chrono::milliseconds waiter_ttl{3000};
    // Every key expires after this long without a use, so an idle tenant leaves nothing.
    std::chrono::milliseconds idle{600000};
    // The fleet-wide pause after "exceeded": base, doubling per halving in a row, up to max.
    std::chrono::milliseconds pause_base{250};
    std::chrono::milliseconds pause_max{8000};
};

class LeaseScripts {
public:
    LeaseScripts();
    // Reclaims expired leases and waits, then grants a lease if `ticket` (empty:
    // take a new one) is among the first (limit - holders) waiters, and the fleet is
    // not pausing after "exceeded".
    Acquired acquire(Connection& c, const LeaseKeys& k, std::string_view ticket, unsigned cap,
                     const LeaseTimes& t) const;
    // Pushes the lease's expiry one lease time on; false when it had lapsed.
    bool renew(Connection& c, const LeaseKeys& k, std::string_view ticket, const LeaseTimes& t) const;
    // Gives the lease back, and tells the fleet's budget what the call met
    // (`epoch`: the one acquire() reported), then wakes the waiters.
    Released release(Connection& c, const LeaseKeys& k, std::string_view ticket, Verdict v,
                     std::uint64_t epoch, unsigned cap, const LeaseTimes& t) const;
    // A waiter gives up its place (cancelled).
    void forget(Connection& c, const LeaseKeys& k, std::string_view ticket) const;

private:
    Script acquire_, renew_, release_, forget_;
};

}  // namespace euphoria::core::redis
