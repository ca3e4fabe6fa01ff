// The fleet's shared cache from the Fetcher's side (a fake SharedCache), and the
// cipher that keeps it safe on a Redis others can reach. Against a real
// redis-server: tests/integration/test_redis_cache.cpp.

#include <cerrno>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "euphoria/core/redis/cache_cipher.hpp"
#include "euphoria/core/shared_cache.hpp"
#include "fetcher_rig.hpp"

using namespace euphoria;
using core::SharedCache;
using core::redis::CacheCipher;
using test::Rig;
using namespace std::chrono_literals;

namespace {

// Answers look() from `answer` and records every call the Fetcher makes.
class FakeSharedCache final : public SharedCache {
public:
    Lookup answer;  // for names not in by_name
    std::map<std::string, Lookup> by_name;
    std::uint64_t max = 1 << 20;

    Lookup look(const std::string& name, api::CancelToken&) override {
        std::lock_guard lock(m);
        log.push_back("look " + name);
        auto it = by_name.find(name);
        Lookup out = it != by_name.end() ? it->second : answer;
        if (out.found == Found::miss) out.claim = "claim-of-" + name;
        return out;
    }
    void store(const std::string& name, const core::Content& content, std::chrono::milliseconds left) noexcept override {
        std::lock_guard lock(m);
        log.push_back("store " + name);
        stored = test::read_all(content);
        stored_left = left;
    }
    void store_negative(const std::string& name, std::chrono::milliseconds left) noexcept override {
        std::lock_guard lock(m);
        log.push_back("negative " + name);
        stored_left = left;
    }
    void unshare(const std::string& name, const std::string& claim, std::chrono::milliseconds) noexcept override {
        std::lock_guard lock(m);
        log.push_back("unshare " + name + " " + claim);
    }
    void release(const std::string& claim) noexcept override {
        if (claim.empty()) return;  // as RedisCache: a look that took no claim
        std::lock_guard lock(m);
        log.push_back("release " + claim);
    }
    std::uint64_t max_bytes() const noexcept override { return max; }

    std::vector<std::string> calls() {
        std::lock_guard lock(m);
        return log;
    }

    std::mutex m;
    std::vector<std::string> log;
    std::string stored;
    std::chrono::milliseconds stored_left{0};
};

}  // namespace

TEST_CASE("shared cache: a recording another host downloaded costs no call", "[shared]") {
    FakeSharedCache shared;
    shared.answer.found = SharedCache::Found::recording;
    shared.answer.bytes = test::riff_of(5000);
    shared.answer.left = 12s;
    Rig r(shared);
    const auto t0 = r.clock.now();
    auto got = r.get("a.wav");
    REQUIRE(got.error == 0);
    CHECK(test::read_all(*got.recording.content) == test::riff_of(5000));
    CHECK(r.client.total_calls() == 0);
    CHECK(r.stats.upstream_calls.load() == 0);
    CHECK(r.stats.bytes_fetched.load() == 0);
    // The API's 30 seconds count from the other host's reply, not from now.
    REQUIRE(test::eventually([&] { return !r.fetcher->arriving().size(); }));
    CHECK(r.cache->find("a.wav", t0).recording.expires_at == t0 + 12s);
    // A hit is not looked up, stored or claimed again.
    CHECK(shared.calls() == std::vector<std::string>{"look a.wav"});
    // And the local tiers have it: the next open asks nobody.
    CHECK(r.get("a.wav").error == 0);
    CHECK(shared.calls().size() == 1);
    CHECK(r.stats.memory_hits.load() == 1);
}

TEST_CASE("shared cache: another host's ENOENT is a negative entry, without a call", "[shared]") {
    FakeSharedCache shared;
    shared.answer.found = SharedCache::Found::negative;
    shared.answer.left = 7s;
    Rig r(shared);
    const auto t0 = r.clock.now();
    auto got = r.get("gone.wav");
    CHECK(got.error == ENOENT);
    CHECK(got.negative);
    CHECK(got.negative_until == t0 + 7s);
    CHECK(r.client.total_calls() == 0);
    // Not told back to the fleet: it came from there.
    CHECK(shared.calls() == std::vector<std::string>{"look gone.wav"});
    CHECK(r.stats.budget.load() == 3);
}

TEST_CASE("shared cache: hits teach the mount's window nothing", "[shared]") {
    FakeSharedCache shared;
    for (int i = 0; i < 4; ++i) {
        shared.by_name[test::name_of(i)].found = SharedCache::Found::recording;
        shared.by_name[test::name_of(i)].bytes = test::riff_of(100);
        shared.by_name[test::name_of(i)].left = 20s;
    }
    Rig r(shared, [](core::FetcherConfig& c) { c.retry.retries = 0; });
    r.client.script("busy.wav", {test::FakeReply::fail(EAGAIN, api::ErrorKind::busy),
                                 test::FakeReply::ok(test::riff_of(100))});
    auto busy = std::async(std::launch::async, [&] { return r.get("busy.wav"); });
    REQUIRE(test::eventually([&] { return r.stats.exceeded_replies.load() == 1; }));
    r.clock.advance(1s);
    REQUIRE(busy.get().error == 0);
    // Halved to 1 by the "exceeded", then 2 after the call that got through.
    REQUIRE(r.stats.budget.load() == 2);
    // Were hits admissions, four would take it to 3 (2 -> 2.5 -> 2.9 -> 3).
    for (int i = 0; i < 4; ++i) REQUIRE(r.get(test::name_of(i)).error == 0);
    CHECK(r.client.total_calls() == 2);
    CHECK(r.stats.budget.load() == 2);
}

TEST_CASE("shared cache: a miss is downloaded, shared for its 30 seconds, then released", "[shared]") {
    FakeSharedCache shared;
    Rig r(shared);
    r.client.script("b.wav", {test::FakeReply::ok(test::riff_of(3000))});
    auto got = r.get("b.wav");
    REQUIRE(got.error == 0);
    CHECK(r.client.calls("b.wav") == 1);
    CHECK(shared.calls() == std::vector<std::string>{"look b.wav", "store b.wav", "release claim-of-b.wav"});
    CHECK(shared.stored == test::riff_of(3000));
    CHECK(shared.stored_left == 30s);
}

TEST_CASE("shared cache: the API's ENOENT is shared; other failures only release", "[shared]") {
    FakeSharedCache shared;
    Rig r(shared);
    r.client.script("none.wav", {test::FakeReply::fail(ENOENT, api::ErrorKind::not_found)});
    r.client.script("denied.wav", {test::FakeReply::fail(EACCES, api::ErrorKind::auth)});
    CHECK(r.get("none.wav").error == ENOENT);
    CHECK(r.get("denied.wav").error == EACCES);
    CHECK(shared.calls() == std::vector<std::string>{"look none.wav", "negative none.wav",
                                                     "release claim-of-none.wav", "look denied.wav",
                                                     "release claim-of-denied.wav"});
    CHECK(shared.stored_left == 30s);
}

TEST_CASE("shared cache: a recording past max_bytes is unshared once its header tells", "[shared]") {
    FakeSharedCache shared;
    shared.max = 1000;
    Rig r(shared);
    r.client.script("big.wav", {test::FakeReply::ok(test::riff_of(4000))});
    auto got = r.get("big.wav");
    REQUIRE(got.error == 0);
    const auto calls = shared.calls();
    REQUIRE(calls.size() >= 3);
    CHECK(calls.front() == "look big.wav");
    // With this download's own claim, which the end of the download gives up too.
    CHECK(calls[1] == "unshare big.wav claim-of-big.wav");
    CHECK(calls.back() == "release claim-of-big.wav");
}

TEST_CASE("cache cipher: sealed values open only under their own context and key", "[shared]") {
    const CacheCipher a(api::Secret("key-one"), "demo");
    const std::string plain = test::bytes_of(3000, 'p');
    const auto sealed = a.seal("chunk x 0", plain);
    CHECK(sealed.size() == plain.size() + CacheCipher::overhead);
    CHECK(sealed.find(plain.substr(0, 16)) == std::string::npos);
    CHECK(a.open("chunk x 0", sealed) == plain);
    // Another place, another key, a flipped bit, a cut: all rejected.
    CHECK_FALSE(a.open("chunk x 1", sealed));
    CHECK_FALSE(CacheCipher(api::Secret("key-two"), "demo").open("chunk x 0", sealed));
    CHECK_FALSE(CacheCipher(api::Secret("key-one"), "other").open("chunk x 0", sealed));
    for (std::size_t at : {std::size_t{0}, std::size_t{20}, sealed.size() - 1}) {
        auto bad = sealed;
        bad[at] = static_cast<char>(bad[at] ^ 1);
        CHECK_FALSE(a.open("chunk x 0", bad));
    }
    CHECK_FALSE(a.open("chunk x 0", sealed.substr(0, sealed.size() - 1)));
    CHECK_FALSE(a.open("chunk x 0", ""));
    // Two seals of one value differ (a fresh nonce each).
    CHECK(a.seal("chunk x 0", plain) != sealed);
    CHECK(a.open("e", a.seal("e", "")) == std::string());
}

TEST_CASE("cache cipher: names are one HMAC per key and tenant", "[shared]") {
    const CacheCipher a(api::Secret("key-one"), "demo");
    const auto id = a.name_id("20240101-120000-100-200.wav");
    CHECK(id.size() == 64);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(CacheCipher(api::Secret("key-one"), "demo").name_id("20240101-120000-100-200.wav") == id);
    CHECK(a.name_id("20240101-120000-100-201.wav") != id);
    CHECK(CacheCipher(api::Secret("key-two"), "demo").name_id("20240101-120000-100-200.wav") != id);
    CHECK(CacheCipher::random_hex(16).size() == 32);
    CHECK(CacheCipher::random_hex(16) != CacheCipher::random_hex(16));
}
