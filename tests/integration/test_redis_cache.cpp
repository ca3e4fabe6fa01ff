// The fleet's shared cache against a real redis-server: two "hosts" (a Fetcher and a
// RedisCache each, with their own fake API) on one Redis. One download serves both,
// a host waits for another's download rather than making its own, and what sits in
// Redis opens for nobody without the API key.

#include <future>
#include <thread>

#include "catch_compat.hpp"
#include "euphoria/core/redis/shared_cache.hpp"
#include "fetcher_rig.hpp"
#include "have_redis.hpp"
#include "redis_server.hpp"

using namespace euphoria;
using core::redis::CacheCipher;
using core::redis::Connection;
using core::redis::RedisCache;
using core::redis::RedisCacheConfig;
using test::FakeReply;
using test::Rig;
using namespace std::chrono_literals;
using test::have_redis;

namespace {

const api::Secret api_key("the-tenant-api-key");

// One host: its own stats, cache and fake API, the fleet's Redis.
struct Host {
    core::Stats stats;
    core::NullLogger logger;
    RedisCache shared;
    Rig rig;
    Host(const test::RedisServer& server, std::uint64_t max = 32 << 20, const api::Secret& key = api_key,
         std::chrono::seconds ttl = 30s, std::chrono::milliseconds wait_limit = 60s)
        : shared(config(server, max, wait_limit), CacheCipher(key, "demo"), stats, logger),
          rig(shared, [ttl](core::FetcherConfig& c) { c.ttl = ttl; }) {}
    static RedisCacheConfig config(const test::RedisServer& server, std::uint64_t max,
                                   std::chrono::milliseconds wait_limit) {
        RedisCacheConfig c;
        c.address = server.address();
        c.tenant = "demo";
        c.max_bytes = max;
        c.chunk_bytes = 4096;  // several chunks for small test recordings
        c.claim = 3s;
        c.wait_limit = wait_limit;
        return c;
    }
};

std::string big_recording() { return test::riff_of(10000); }  // three chunks of 4 KiB

std::vector<std::string> keys(Connection& c) {
    std::vector<std::string> out;
    for (const auto& k : c.command({"KEYS", "*"}).elements) out.push_back(k.text);
    return out;
}

// The keys expire (PX) within a few seconds.
bool eventually_gone(Connection& c) {
    for (int i = 0; i < 100; ++i) {
        if (keys(c).empty()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

}  // namespace

TEST_CASE("redis cache: two hosts, one call; Redis holds neither name nor bytes nor key", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    Host a(server), b(server);
    const std::string name = "20240101-120000-100-200.wav";
    a.rig.client.script(name, {FakeReply::ok(big_recording())});
    b.rig.client.script(name, {FakeReply::ok(test::riff_of(10000))});

    auto first = a.rig.get(name);
    REQUIRE(first.error == 0);
    CHECK(a.stats.redis_cache_stores.load() == 1);
    auto second = b.rig.get(name);
    REQUIRE(second.error == 0);
    CHECK(test::read_all(*second.recording.content) == big_recording());
    CHECK(a.rig.client.calls(name) == 1);
    CHECK(b.rig.client.total_calls() == 0);
    CHECK(b.stats.redis_cache_hits.load() == 1);

    Connection c(server.address(), api::Secret(), 2000ms);
    const auto all = keys(c);
    // The entry and its three chunks; the claim is gone once the entry is there.
    CHECK(all.size() == 4);
    const auto id = CacheCipher(api_key, "demo").name_id(name);
    for (const auto& k : all) {
        CHECK(k.rfind("euphoriafs:{demo}:cache:" + id, 0) == 0);
        CHECK(k.find(name) == std::string::npos);
        const auto value = c.command({"GET", k}).text;
        CHECK(value.find(big_recording().substr(200, 32)) == std::string::npos);
        CHECK(value.find("RIFF") == std::string::npos);
        CHECK(value.find(name) == std::string::npos);
        CHECK(value.find(api_key.reveal()) == std::string::npos);
        // What is left of the API's 30 seconds, never more.
        const auto pttl = c.command({"PTTL", k}).as_integer();
        CHECK(pttl > 0);
        CHECK(pttl <= 30000);
    }
    // A host whose own redis_cache_max is smaller still takes what others shared.
    Host small(server, 1000);
    REQUIRE(small.rig.get(name).error == 0);
    CHECK(small.rig.client.total_calls() == 0);
    CHECK(small.stats.redis_cache_hits.load() == 1);

    // A host with another key shares nothing with this fleet.
    Host other(server, 32 << 20, api::Secret("another-key"));
    other.rig.client.script(name, {FakeReply::ok(big_recording())});
    CHECK(other.rig.get(name).error == 0);
    CHECK(other.rig.client.calls(name) == 1);
    CHECK(other.stats.redis_cache_rejects.load() == 0);
}

TEST_CASE("redis cache: a host waits for another's download instead of calling", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    Host a(server), b(server);
    const std::string name = "waited.wav";
    a.rig.client.script(name, {FakeReply::ok(big_recording())});
    b.rig.client.script(name, {FakeReply::ok(big_recording())});
    a.rig.client.hold();
    auto from_a = std::async(std::launch::async, [&] { return a.rig.get(name); });
    REQUIRE(a.rig.client.wait_blocked(1));
    auto from_b = std::async(std::launch::async, [&] { return b.rig.get(name); });
    REQUIRE(test::eventually([&] { return b.stats.redis_cache_waits.load() == 1; }));
    std::this_thread::sleep_for(200ms);
    CHECK(b.rig.client.total_calls() == 0);
    a.rig.client.release();
    REQUIRE(from_a.get().error == 0);
    auto got = from_b.get();
    REQUIRE(got.error == 0);
    CHECK(test::read_all(*got.recording.content) == big_recording());
    CHECK(b.rig.client.total_calls() == 0);
    CHECK(a.rig.client.calls(name) == 1);
}

TEST_CASE("redis cache: a claimant that vanishes or fails leaves the name to the next host", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    Host b(server);
    Connection c(server.address(), api::Secret(), 2000ms);
    const std::string name = "orphan.wav";
    const auto id = CacheCipher(api_key, "demo").name_id(name);
    // A claim nobody renews (its host was killed): it lapses, then b downloads.
    c.command({"SET", "euphoriafs:{demo}:claim:" + id, "dead-host", "PX", "600"});
    b.rig.client.script(name, {FakeReply::ok(big_recording())});
    auto got = b.rig.get(name);
    REQUIRE(got.error == 0);
    CHECK(b.stats.redis_cache_waits.load() == 1);
    CHECK(b.rig.client.calls(name) == 1);

    // Claims planted by a client without the key: one with no expiry, which no host
    // sets, is not waited for; one that looks like a host's delays a host by
    // wait_limit at most.
    Host patient(server, 32 << 20, api_key, 30s, 500ms);
    const CacheCipher cipher(api_key, "demo");
    c.command({"SET", "euphoriafs:{demo}:claim:" + cipher.name_id("forever.wav"), "x"});
    c.command({"SET", "euphoriafs:{demo}:claim:" + cipher.name_id("held.wav"), "x", "PX", "290000"});
    patient.rig.client.script("forever.wav", {FakeReply::ok(big_recording())});
    patient.rig.client.script("held.wav", {FakeReply::ok(big_recording())});
    REQUIRE(patient.rig.get("forever.wav").error == 0);
    CHECK(patient.rig.client.calls("forever.wav") == 1);
    CHECK(patient.stats.redis_cache_waits.load() == 0);
    const auto started = std::chrono::steady_clock::now();
    REQUIRE(patient.rig.get("held.wav").error == 0);
    CHECK(std::chrono::steady_clock::now() - started >= 500ms);
    CHECK(patient.rig.client.calls("held.wav") == 1);
    CHECK(patient.stats.redis_cache_waits.load() == 1);

    // A failed download (EACCES) drops its claim at once: the next host does not wait.
    Host a(server), d(server);
    a.rig.client.script("denied.wav", {FakeReply::fail(EACCES, api::ErrorKind::auth)});
    d.rig.client.script("denied.wav", {FakeReply::ok(big_recording())});
    CHECK(a.rig.get("denied.wav").error == EACCES);
    CHECK(d.rig.get("denied.wav").error == 0);
    CHECK(d.stats.redis_cache_waits.load() == 0);
    CHECK(d.rig.client.calls("denied.wav") == 1);
}

TEST_CASE("redis cache: ENOENT is shared, a large recording is not", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    Host a(server, 8000), b(server, 8000);
    a.rig.client.script("none.wav", {FakeReply::fail(ENOENT, api::ErrorKind::not_found)});
    CHECK(a.rig.get("none.wav").error == ENOENT);
    auto neg = b.rig.get("none.wav");
    CHECK(neg.error == ENOENT);
    CHECK(neg.negative);
    CHECK(b.rig.client.total_calls() == 0);

    // 10000 bytes against a max of 8000: marked unshared from its header, so the
    // second host downloads at once instead of waiting for the first.
    a.rig.client.script("big.wav", {FakeReply::ok(big_recording())});
    b.rig.client.script("big.wav", {FakeReply::ok(big_recording())});
    a.rig.client.hold_after_first_chunk();
    auto from_a = std::async(std::launch::async, [&] { return a.rig.fetcher->get("big.wav", nullptr, core::Fetcher::Until::answered); });
    REQUIRE(a.rig.client.wait_blocked(1));
    auto got = b.rig.get("big.wav");
    REQUIRE(got.error == 0);
    CHECK(b.rig.client.calls("big.wav") == 1);
    CHECK(b.stats.redis_cache_waits.load() == 0);
    a.rig.client.release();
    CHECK(from_a.get().error == 0);
    CHECK(a.stats.redis_cache_stores.load() == 0);
    CHECK(b.stats.redis_cache_stores.load() == 0);
}

TEST_CASE("redis cache: a tampered value is rejected, counted and fetched again", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    Connection c(server.address(), api::Secret(), 2000ms);
    const std::string name = "tampered.wav";
    const auto id = CacheCipher(api_key, "demo").name_id(name);
    const std::string entry_key = "euphoriafs:{demo}:cache:" + id;
    auto share = [&] {
        Host a(server);
        a.rig.client.script(name, {FakeReply::ok(big_recording())});
        REQUIRE(a.rig.get(name).error == 0);
        REQUIRE(a.stats.redis_cache_stores.load() == 1);
    };
    auto read_again = [&] {
        Host b(server);
        b.rig.client.script(name, {FakeReply::ok(big_recording())});
        auto got = b.rig.get(name);
        REQUIRE(got.error == 0);
        CHECK(test::read_all(*got.recording.content) == big_recording());
        CHECK(b.rig.client.calls(name) == 1);
        CHECK(b.stats.redis_cache_rejects.load() == 1);
        CHECK(b.stats.redis_cache_stores.load() == 1);  // the good copy replaces it
    };
    SECTION("a flipped byte in a chunk") {
        share();
        std::string chunk;
        for (const auto& k : keys(c)) {
            if (k != entry_key) chunk = k;
        }
        REQUIRE_FALSE(chunk.empty());
        auto value = c.command({"GET", chunk}).text;
        value[40] = static_cast<char>(value[40] ^ 0x20);
        c.command({"SET", chunk, value, "KEEPTTL"});
        read_again();
    }
    SECTION("a planted entry") {
        c.command({"SET", entry_key, std::string(80, 'x'), "PX", "20000"});
        read_again();
    }
    SECTION("a genuine entry played back after its time, with a new PX") {
        // Shared for one second; once it is gone, its sealed values come back.
        std::vector<std::pair<std::string, std::string>> saved;
        {
            Host a(server, 32 << 20, api_key, 1s);
            a.rig.client.script(name, {FakeReply::ok(big_recording())});
            REQUIRE(a.rig.get(name).error == 0);
            for (const auto& k : keys(c)) saved.emplace_back(k, c.command({"GET", k}).text);
        }
        REQUIRE(saved.size() == 4);
        REQUIRE(eventually_gone(c));
        // Past the slack for the moment between sealing and storing, too.
        std::this_thread::sleep_for(1200ms);
        for (const auto& [k, v] : saved) c.command({"SET", k, v, "PX", "20000"});
        read_again();
    }
    SECTION("an entry moved from another name") {
        share();
        const auto other = CacheCipher(api_key, "demo").name_id("another.wav");
        c.command({"COPY", entry_key, "euphoriafs:{demo}:cache:" + other});
        Host b(server);
        b.rig.client.script("another.wav", {FakeReply::ok(test::riff_of(500))});
        auto got = b.rig.get("another.wav");
        REQUIRE(got.error == 0);
        CHECK(test::read_all(*got.recording.content) == test::riff_of(500));
        CHECK(b.stats.redis_cache_rejects.load() == 1);
    }
}

TEST_CASE("redis cache: an unreachable Redis is a miss, never an error", "[redis]") {
    if (!have_redis()) return;
    test::RedisServer server;
    Host a(server);
    server.stop();
    a.rig.client.script("x.wav", {FakeReply::ok(big_recording())});
    auto got = a.rig.get("x.wav");
    REQUIRE(got.error == 0);
    CHECK(a.rig.client.calls("x.wav") == 1);
    server.start();
}
