// The fleet's shared budget against a real redis-server (started here, on a free
// port, without persistence): the Lua scripts' leases, ticket order, renewal and
// learned budget, then SharedBudget's waits, fallback and rejoin.
//
// Expiry is tested by moving a score into the past with ZADD, not by sleeping: the
// scripts compare scores with redis.call('TIME'), so this is what expiry is.

#include <chrono>
#include <future>
#include <thread>

#include "catch_compat.hpp"
#include "euphoria/api/error.hpp"
#include "euphoria/core/redis/lease_scripts.hpp"
#include "euphoria/core/redis/shared_budget.hpp"
#include "have_redis.hpp"
#include "redis_server.hpp"

using namespace euphoria;
using core::redis::Connection;
using core::redis::LeaseKeys;
using core::redis::LeaseScripts;
using core::redis::LeaseTimes;
using core::redis::Verdict;
using namespace std::chrono_literals;
using test::have_redis;

namespace {

struct Rig {
    test::RedisServer server;
    Connection c{server.address(), api::Secret(), 2000ms};
    LeaseKeys keys = LeaseKeys::for_tenant("demo");
    LeaseScripts scripts;
    LeaseTimes times;

    long long redis_ms() {
        const auto t = c.command({"TIME"});
        return std::stoll(t.at(0).text) * 1000 + std::stoll(t.at(1).text) / 1000;
    }
    void expire_lease(const std::string& ticket) { c.command({"ZADD", keys.holders, "1", ticket}); }
    long long held() { return c.command({"ZCARD", keys.holders}).as_integer(); }
};

// Polls `condition` for at most 20 s: for what happens on other threads.
template <class F>
bool eventually(F&& condition) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return condition();
}

}  // namespace

TEST_CASE("leases: at most the limit, expired ones reclaimed on acquire", "[redis]") {
    if (!have_redis()) return;
    Rig r;
    std::vector<std::string> tickets;
    for (int i = 0; i < 3; ++i) {
        const auto a = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
        REQUIRE(a.granted);
        CHECK(a.limit == 3);
        tickets.push_back(a.ticket);
    }
    CHECK(r.held() == 3);
    // The lease's expiry is Redis's time plus one lease.
    const auto score = std::stoll(r.c.command({"ZSCORE", r.keys.holders, tickets[0]}).text);
    const auto now = r.redis_ms();
    CHECK(score > now + 14000);
    CHECK(score <= now + 15000);

    const auto fourth = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    CHECK_FALSE(fourth.granted);
    // A holder killed with SIGKILL renews nothing: once its lease is past, the next
    // acquire reclaims it.
    r.expire_lease(tickets[1]);
    const auto again = r.scripts.acquire(r.c, r.keys, fourth.ticket, 3, r.times);
    CHECK(again.granted);
    CHECK(again.ticket == fourth.ticket);
    CHECK(r.held() == 3);
    CHECK(r.c.command({"ZSCORE", r.keys.holders, tickets[1]}).is_nil());
}

TEST_CASE("leases: waiters are served in ticket order, and a silent one expires", "[redis]") {
    if (!have_redis()) return;
    Rig r;
    std::vector<std::string> held;
    for (int i = 0; i < 3; ++i) held.push_back(r.scripts.acquire(r.c, r.keys, "", 3, r.times).ticket);
    const auto first = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    const auto second = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    REQUIRE_FALSE(first.granted);
    REQUIRE_FALSE(second.granted);
    CHECK(std::stoll(first.ticket) < std::stoll(second.ticket));

    const auto released = r.scripts.release(r.c, r.keys, held[0], Verdict::none, 0, 3, r.times);
    CHECK(released.was_held);
    // The later ticket asks first, and is still behind the earlier one.
    CHECK_FALSE(r.scripts.acquire(r.c, r.keys, second.ticket, 3, r.times).granted);
    CHECK(r.scripts.acquire(r.c, r.keys, first.ticket, 3, r.times).granted);
    CHECK_FALSE(r.scripts.acquire(r.c, r.keys, second.ticket, 3, r.times).granted);

    SECTION("a waiter that stops asking loses its place") {
        const auto third = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
        REQUIRE_FALSE(third.granted);
        r.scripts.release(r.c, r.keys, held[1], Verdict::none, 0, 3, r.times);
        // `second` went away (its host died): its wait expires instead of blocking
        // `third` for ever.
        r.c.command({"ZADD", r.keys.queue_at, "1", second.ticket});
        CHECK(r.scripts.acquire(r.c, r.keys, third.ticket, 3, r.times).granted);
    }
    SECTION("a waiter that gives up frees its place at once") {
        const auto third = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
        r.scripts.release(r.c, r.keys, held[1], Verdict::none, 0, 3, r.times);
        r.scripts.forget(r.c, r.keys, second.ticket);
        CHECK(r.scripts.acquire(r.c, r.keys, third.ticket, 3, r.times).granted);
    }
}

TEST_CASE("leases: renewal keeps a lease, a lapsed one is reported", "[redis]") {
    if (!have_redis()) return;
    Rig r;
    const auto a = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    REQUIRE(a.granted);
    r.c.command({"ZADD", r.keys.holders, std::to_string(r.redis_ms() + 1000), a.ticket});
    CHECK(r.scripts.renew(r.c, r.keys, a.ticket, r.times));
    const auto score = std::stoll(r.c.command({"ZSCORE", r.keys.holders, a.ticket}).text);
    CHECK(score > r.redis_ms() + 14000);

    r.expire_lease(a.ticket);
    CHECK_FALSE(r.scripts.renew(r.c, r.keys, a.ticket, r.times));
    CHECK(r.held() == 0);
    CHECK_FALSE(r.scripts.release(r.c, r.keys, a.ticket, Verdict::admitted, a.epoch, 3, r.times).was_held);

    const auto b = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    r.expire_lease(b.ticket);
    // Past its time but not reclaimed yet: still a lapse.
    CHECK_FALSE(r.scripts.release(r.c, r.keys, b.ticket, Verdict::none, b.epoch, 3, r.times).was_held);
}

TEST_CASE("leases: the learned budget is the fleet's", "[redis]") {
    if (!have_redis()) return;
    Rig r;
    const auto a = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    const auto b = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    REQUIRE(a.epoch == b.epoch);
    // Two calls that started together met "exceeded": one halving, not two.
    CHECK(r.scripts.release(r.c, r.keys, a.ticket, Verdict::exceeded, a.epoch, 3, r.times).limit == 1);
    CHECK(r.scripts.release(r.c, r.keys, b.ticket, Verdict::exceeded, b.epoch, 3, r.times).limit == 1);
    // The whole fleet pauses (250 ms after one halving)...
    const auto resume = std::stoll(r.c.command({"HGET", r.keys.budget, "resume_at"}).text);
    CHECK(resume > r.redis_ms() - 1000);
    CHECK(resume <= r.redis_ms() + 250);
    r.c.command({"HSET", r.keys.budget, "resume_at", std::to_string(r.redis_ms() + 60000)});
    const auto paused = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    CHECK_FALSE(paused.granted);
    r.scripts.forget(r.c, r.keys, paused.ticket);
    // ...and then another host gets one slot only.
    r.c.command({"HSET", r.keys.budget, "resume_at", "0"});
    const auto c1 = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    CHECK(c1.granted);
    CHECK(c1.limit == 1);
    CHECK_FALSE(r.scripts.acquire(r.c, r.keys, "", 3, r.times).granted);
    // Successes raise it again: 1 -> 2 -> 2.5 -> 2.9 -> 3.2 (capped at 3).
    CHECK(r.scripts.release(r.c, r.keys, c1.ticket, Verdict::admitted, c1.epoch, 3, r.times).limit == 2);
    unsigned limit = 0;
    for (int i = 0; i < 3; ++i) {
        const auto d = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
        REQUIRE(d.granted);
        limit = r.scripts.release(r.c, r.keys, d.ticket, Verdict::admitted, d.epoch, 3, r.times).limit;
    }
    CHECK(limit == 3);
    CHECK(r.c.command({"HGET", r.keys.budget, "window"}).text == "3");
}

TEST_CASE("leases: a flushed script is loaded again (NOSCRIPT)", "[redis]") {
    if (!have_redis()) return;
    Rig r;
    CHECK(r.scripts.acquire(r.c, r.keys, "", 3, r.times).granted);
    r.c.command({"SCRIPT", "FLUSH"});
    CHECK(r.scripts.acquire(r.c, r.keys, "", 3, r.times).granted);
    CHECK(r.held() == 2);
}

TEST_CASE("leases: keys carry the tenant's hash tag and expire when idle", "[redis]") {
    if (!have_redis()) return;
    Rig r;
    const auto a = r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    r.scripts.release(r.c, r.keys, a.ticket, Verdict::admitted, a.epoch, 3, r.times);
    r.scripts.acquire(r.c, r.keys, "", 3, r.times);
    const auto keys = r.c.command({"KEYS", "*"});
    REQUIRE_FALSE(keys.elements.empty());
    for (const auto& k : keys.elements) {
        CHECK_THAT(k.text, Catch::StartsWith("euphoriafs:{demo}:"));
        const auto ttl = r.c.command({"PTTL", k.text}).as_integer();
        CHECK(ttl > 0);
        CHECK(ttl <= 600000);
    }
}

namespace {

struct Counting final : core::Logger {
    std::mutex m;
    std::vector<std::string> warnings;
    void log(core::LogLevel level, std::string_view message) override {
        std::lock_guard lock(m);
        if (level == core::LogLevel::warning) warnings.emplace_back(message);
    }
    std::size_t count() {
        std::lock_guard lock(m);
        return warnings.size();
    }
};

core::redis::SharedBudgetConfig budget_config(const test::RedisServer& s) {
    core::redis::SharedBudgetConfig c;
    c.address = s.address();
    c.tenant = "demo";
    c.max_concurrent = 3;
    c.fallback = 1;
    c.poll = 50ms;
    c.reconnect_min = 20ms;
    c.reconnect_max = 200ms;
    return c;
}

}  // namespace

TEST_CASE("shared budget: a fourth call waits for a release, across two mounts", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    core::Stats stats_a, stats_b;
    Counting log;
    core::redis::SharedBudget host_a(budget_config(server), stats_a, log);
    core::redis::SharedBudget host_b(budget_config(server), stats_b, log);
    REQUIRE(host_a.connected());
    CHECK(stats_a.redis_connected == 1);
    api::CancelToken cancel;
    std::vector<core::CallPass> passes;
    passes.push_back(host_a.enter(cancel));
    passes.push_back(host_b.enter(cancel));
    passes.push_back(host_a.enter(cancel));
    auto fourth = std::async(std::launch::async, [&] { return host_b.enter(cancel); });
    REQUIRE(eventually([&] { return stats_b.lease_waits == 1; }));
    CHECK(fourth.wait_for(0ms) == std::future_status::timeout);
    passes[0].set_verdict(core::CallVerdict::admitted);
    passes[0].reset();
    auto got = fourth.get();  // woken by the release
    CHECK(stats_a.lease_lapses == 0);
    CHECK(stats_b.redis_fallback_calls == 0);

    SECTION("a cancelled waiter gives up at once, and its place") {
        api::CancelToken other;
        auto waiting = std::async(std::launch::async, [&] { return host_a.enter(other); });
        REQUIRE(eventually([&] { return stats_a.lease_waits == 1; }));
        other.cancel();
        CHECK_THROWS_AS(waiting.get(), api::ApiError);
        test::RedisServer* s = &server;
        Connection c(s->address(), api::Secret(), 1000ms);
        CHECK(c.command({"ZCARD", LeaseKeys::for_tenant("demo").queue}).as_integer() == 0);
    }
    SECTION("Redis gone: the fallback share; back: the shared budget") {
        server.stop();
        // The leases in use go on; new calls get the local share of one.
        auto one = host_a.enter(cancel);
        CHECK(stats_a.redis_fallback_calls == 1);
        CHECK(stats_a.redis_connected == 0);
        auto second = std::async(std::launch::async, [&] { return host_a.enter(cancel); });
        CHECK(second.wait_for(200ms) == std::future_status::timeout);
        one.reset();
        auto two = second.get();
        CHECK(stats_a.redis_fallback_calls == 2);
        two.reset();
        const auto warned = log.count();
        CHECK(warned >= 1);
        server.start();
        REQUIRE(eventually([&] { return host_a.connected(); }));
        CHECK(stats_a.redis_connected == 1);
        auto shared = host_a.enter(cancel);
        CHECK(stats_a.redis_fallback_calls == 2);
        // Leases from before the restart are gone: counted, not cut short.
        passes.clear();
        got.reset();
        // Given back one settle time later, on the releaser thread.
        CHECK(eventually([&] { return stats_a.lease_lapses + stats_b.lease_lapses >= 1; }));
    }
}

TEST_CASE("shared budget: a waiter past busy_timeout gives up with EAGAIN, and its place", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    core::Stats stats;
    Counting log;
    auto cfg = budget_config(server);
    cfg.wait_limit = 300ms;
    core::redis::SharedBudget host(cfg, stats, log);
    REQUIRE(host.connected());
    api::CancelToken cancel;
    std::vector<core::CallPass> passes;
    for (int i = 0; i < 3; ++i) passes.push_back(host.enter(cancel));
    const auto began = std::chrono::steady_clock::now();
    auto fourth = std::async(std::launch::async, [&] { return host.enter(cancel); });
    REQUIRE(fourth.wait_for(20s) == std::future_status::ready);
    try {
        fourth.get();
        FAIL("expected EAGAIN");
    } catch (const api::ApiError& e) {
        CHECK(e.error_number() == EAGAIN);
        CHECK(e.kind() == api::ErrorKind::busy);
        CHECK_THAT(std::string(e.what()), Catch::Contains("busy_timeout (300 ms)"));
    }
    CHECK(std::chrono::steady_clock::now() - began >= 300ms);
    CHECK(stats.lease_waits == 1);
    Connection c(server.address(), api::Secret(), 1000ms);
    CHECK(c.command({"ZCARD", LeaseKeys::for_tenant("demo").queue}).as_integer() == 0);
    // A free slot is taken at once, limit or not.
    passes.pop_back();
    REQUIRE(eventually([&] { return c.command({"ZCARD", LeaseKeys::for_tenant("demo").holders}).as_integer() == 2; }));
    auto again = host.enter(cancel);
    CHECK(stats.lease_waits == 1);
}

TEST_CASE("shared budget: unreachable at mount, then joins", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    const auto cfg = budget_config(server);
    server.stop();
    core::Stats stats;
    Counting log;
    core::redis::SharedBudget host(cfg, stats, log);
    CHECK_FALSE(host.connected());
    CHECK(log.count() == 1);
    api::CancelToken cancel;
    { auto p = host.enter(cancel); }
    CHECK(stats.redis_fallback_calls == 1);
    server.start();
    REQUIRE(eventually([&] { return host.connected(); }));
    { auto p = host.enter(cancel); }
    CHECK(stats.redis_fallback_calls == 1);
    CHECK(log.count() == 1);  // one warning for the outage, none per retry
}

TEST_CASE("shared budget: a wrong password fails at once", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server("s3cret");
    core::Stats stats;
    Counting log;
    auto cfg = budget_config(server);
    cfg.password = api::Secret("wrong");
    CHECK_THROWS_AS(core::redis::SharedBudget(cfg, stats, log), core::redis::ReplyError);
    cfg.password = api::Secret("s3cret");
    core::redis::SharedBudget ok(cfg, stats, log);
    CHECK(ok.connected());
}

TEST_CASE("shared budget: a lease is given back one settle time after its call", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    core::Stats stats;
    Counting log;
    Connection c(server.address(), api::Secret(), 1000ms);
    const auto holders = LeaseKeys::for_tenant("demo").holders;
    {
        auto cfg = budget_config(server);
        cfg.settle = std::chrono::hours(1);  // never, unless the budget goes away first
        core::redis::SharedBudget host(cfg, stats, log);
        api::CancelToken cancel;
        auto pass = host.enter(cancel);
        pass.set_verdict(core::CallVerdict::admitted);
        pass.reset();
        // The API may still count the slot: so does the fleet, for now.
        CHECK(c.command({"ZCARD", holders}).as_integer() == 1);
    }
    // Unmounting gives back at once whatever is still settling.
    CHECK(c.command({"ZCARD", holders}).as_integer() == 0);
    CHECK(stats.lease_lapses == 0);
}

TEST_CASE("shared budget: a long call's lease is renewed, not lapsed", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    core::Stats stats;
    Counting log;
    Connection c(server.address(), api::Secret(), 1000ms);
    const auto holders = LeaseKeys::for_tenant("demo").holders;
    auto cfg = budget_config(server);
    cfg.times.lease = 2s;  // renewed every 667 ms
    core::redis::SharedBudget host(cfg, stats, log);
    api::CancelToken cancel;
    auto pass = host.enter(cancel);
    const auto ticket = c.command({"ZRANGE", holders, "0", "-1"}).at(0).text;
    const auto first = std::stoll(c.command({"ZSCORE", holders, ticket}).text);
    // A call of more than two lease times.
    std::this_thread::sleep_for(4500ms);
    const auto later = std::stoll(c.command({"ZSCORE", holders, ticket}).text);
    const auto t = c.command({"TIME"});
    const auto now = std::stoll(t.at(0).text) * 1000 + std::stoll(t.at(1).text) / 1000;
    CHECK(later > first + 2000);  // pushed on, more than once
    CHECK(later > now);           // and alive now
    pass.reset();
    REQUIRE(eventually([&] { return c.command({"ZCARD", holders}).as_integer() == 0; }));
    CHECK(stats.lease_lapses == 0);
}
