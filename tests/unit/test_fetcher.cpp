// The filesystem core, driven without a mount: a fake client, a fake clock.

#include "catch_compat.hpp"

#include <atomic>
#include <cerrno>
#include <future>
#include <thread>

#include "fetcher_rig.hpp"

using namespace euphoria;
using namespace std::chrono_literals;
using test::FakeReply;
using test::Rig;
using test::bytes_of;
using test::read_all;
using test::riff_of;


TEST_CASE("a fetched recording is served from memory within the TTL", "[core]") {
    Rig rig;
    rig.client.script("a.WAV", {FakeReply::ok(bytes_of(1000, 'a'))});
    auto first = rig.get("a.WAV");
    REQUIRE(first.error == 0);
    CHECK(read_all(*first.recording.content) == bytes_of(1000, 'a'));
    CHECK_FALSE(first.recording.content->on_disk());
    rig.clock.advance(29s);
    auto second = rig.get("a.WAV");
    REQUIRE(second.error == 0);
    CHECK(second.recording.content == first.recording.content);
    CHECK(rig.client.calls("a.WAV") == 1);
    CHECK(rig.stats.memory_hits == 1);
}

TEST_CASE("an entry expires after the TTL and is fetched again", "[core][ttl]") {
    Rig rig;
    rig.client.script("a.WAV", {FakeReply::ok("one"), FakeReply::ok("two")});
    REQUIRE(read_all(*rig.get("a.WAV").recording.content) == "one");
    rig.clock.advance(30s);
    auto again = rig.get("a.WAV");
    REQUIRE(again.error == 0);
    CHECK(read_all(*again.recording.content) == "two");
    CHECK(rig.client.calls("a.WAV") == 2);
}

TEST_CASE("mtime comes from the call time in the name, else the fetch time", "[core]") {
    Rig rig;
    rig.client.script("pbx4-1603469421.1196632-77.WAV", {FakeReply::ok("x")});
    rig.client.script("plain.WAV", {FakeReply::ok("y")});
    auto named = rig.get("pbx4-1603469421.1196632-77.WAV");
    CHECK(std::chrono::system_clock::to_time_t(named.recording.mtime) == 1603469421);
    auto plain = rig.get("plain.WAV");
    CHECK(plain.recording.mtime == rig.clock.wall_now());
}

TEST_CASE("a missing recording is cached negatively for the TTL", "[core][negative]") {
    Rig rig;
    rig.client.script("gone.WAV", {FakeReply::fail(ENOENT, api::ErrorKind::not_found)});
    for (int i = 0; i < 3; ++i) {
        auto r = rig.get("gone.WAV");
        CHECK(r.error == ENOENT);
        CHECK(r.negative_until == rig.clock.now() + 30s - std::chrono::seconds(i));
        rig.clock.advance(1s);
    }
    CHECK(rig.client.calls("gone.WAV") == 1);
    CHECK(rig.stats.negative_hits == 2);
    rig.clock.advance(28s);
    CHECK(rig.get("gone.WAV").error == ENOENT);
    CHECK(rig.client.calls("gone.WAV") == 2);
}

TEST_CASE("transient and permission failures are never cached", "[core][negative]") {
    Rig rig;
    SECTION("EACCES") {
        rig.client.script("a.WAV", {FakeReply::fail(EACCES, api::ErrorKind::auth),
                                    FakeReply::ok("fine")});
        CHECK(rig.get("a.WAV").error == EACCES);
        CHECK(rig.get("a.WAV").error == 0);
        CHECK(rig.client.calls("a.WAV") == 2);
    }
    SECTION("EIO after retries run out") {
        rig.client.script("a.WAV", {FakeReply::fail(EIO, api::ErrorKind::server)});
        CHECK(rig.get("a.WAV").error == EIO);
        CHECK(rig.client.calls("a.WAV") == 4);  // one call and three retries
        rig.client.script("a.WAV", {FakeReply::ok("fine")});
        CHECK(rig.get("a.WAV").error == 0);
        CHECK(rig.client.calls("a.WAV") == 5);
    }
}

TEST_CASE("dot-names and names outside the pattern never go upstream", "[core][names]") {
    Rig rig(3, 1 << 20, 256 << 10, 8 << 20, "pbx*.WAV");
    for (const char* name : {".hidden", ".DS_Store", "._x.WAV", ".Trash-0", "notes.txt"}) {
        CHECK(rig.get(name).error == ENOENT);
    }
    CHECK(rig.client.total_calls() == 0);
}

TEST_CASE("names XML cannot carry are refused with EINVAL", "[core][names]") {
    Rig rig;
    CHECK(rig.get(std::string(256, 'n')).error == ENAMETOOLONG);
    rig.client.script(std::string(255, 'n'), {FakeReply::ok("x")});
    CHECK(rig.get(std::string(255, 'n')).error == 0);
    CHECK(rig.client.total_calls() == 1);
    CHECK(rig.get(std::string("bad\x01name.WAV")).error == EINVAL);
    CHECK(rig.get(std::string("bad\xff\xfe.WAV")).error == EINVAL);
    CHECK(rig.client.total_calls() == 1);
}

TEST_CASE("concurrent requests for one name share one call and one result", "[core][coalesce]") {
    Rig rig;
    SECTION("bytes") {
        rig.client.script("a.WAV", {FakeReply::ok(bytes_of(5000, 'q'))});
    }
    SECTION("an errno") {
        rig.client.script("a.WAV", {FakeReply::fail(EACCES, api::ErrorKind::auth)});
    }
    rig.client.hold();
    std::vector<std::future<core::FetchResult>> waiters;
    for (int i = 0; i < 8; ++i) {
        waiters.push_back(std::async(std::launch::async, [&] { return rig.get("a.WAV"); }));
    }
    REQUIRE(rig.client.wait_blocked(1));
    // Every waiter has joined before the call is released.
    for (int i = 0; i < 500 && rig.stats.coalesced_waits < 7; ++i) std::this_thread::sleep_for(2ms);
    REQUIRE(rig.stats.coalesced_waits == 7);
    rig.client.release();
    std::vector<core::FetchResult> results;
    for (auto& w : waiters) results.push_back(w.get());
    CHECK(rig.client.calls("a.WAV") == 1);
    for (auto& r : results) {
        CHECK(r.error == results.front().error);
        CHECK(r.recording.content == results.front().recording.content);
    }
}

namespace {

// Starts get(name) on its own thread once the previous ones are running or queued, so
// the queue order is known.
std::vector<std::future<core::FetchResult>> start_in_order(Rig& rig, int count, int slots) {
    std::vector<std::future<core::FetchResult>> waiters;
    for (int i = 0; i < count; ++i) {
        rig.client.script(test::name_of(static_cast<std::size_t>(i)), {FakeReply::ok("x")});
        waiters.push_back(
            std::async(std::launch::async, [&rig, i] { return rig.get(test::name_of(static_cast<std::size_t>(i))); }));
        if (i < slots) {
            REQUIRE(rig.client.wait_blocked(i + 1));
        } else {
            const auto want = static_cast<unsigned>(i + 1 - slots);
            for (int k = 0; k < 1000 && rig.stats.queued < want; ++k) std::this_thread::sleep_for(1ms);
            REQUIRE(rig.stats.queued == want);
        }
    }
    return waiters;
}

}  // namespace

TEST_CASE("the throttle caps calls in flight", "[core][throttle]") {
    Rig rig(3);
    rig.client.hold();
    auto waiters = start_in_order(rig, 9, 3);
    CHECK(rig.stats.in_flight == 3);
    CHECK(rig.stats.queued == 6);
    CHECK(rig.client.total_calls() == 3);
    rig.client.release();
    for (auto& w : waiters) CHECK(w.get().error == 0);
    CHECK(rig.client.max_in_flight() == 3);
    CHECK(rig.client.total_calls() == 9);
}

TEST_CASE("the throttle serves its queue first in, first out", "[core][throttle]") {
    // One slot, so the order of calls is exactly the order of leaving the queue.
    Rig rig(1);
    rig.client.hold();
    auto waiters = start_in_order(rig, 7, 1);
    rig.client.release();
    for (auto& w : waiters) CHECK(w.get().error == 0);
    CHECK(rig.client.call_order() ==
          std::vector<std::string>{"n0", "n1", "n2", "n3", "n4", "n5", "n6"});
}

TEST_CASE("without a grace period an interrupted queued job never runs", "[core][interrupt]") {
    Rig rig(1, 1 << 20, 256 << 10, 8 << 20, "*", [](core::FetcherConfig& c) {
        c.interrupt_grace = 0ms;
    });
    rig.client.script("slow.WAV", {FakeReply::ok("slow")});
    rig.client.script("queued.WAV", {FakeReply::ok("queued")});
    rig.client.hold();
    auto slow = std::async(std::launch::async, [&] { return rig.get("slow.WAV"); });
    REQUIRE(rig.client.wait_blocked(1));

    api::CancelToken cancel;
    auto queued = std::async(std::launch::async, [&] { return rig.get("queued.WAV", &cancel); });
    for (int k = 0; k < 1000 && rig.stats.queued < 1; ++k) std::this_thread::sleep_for(1ms);
    REQUIRE(rig.stats.queued == 1);
    cancel.cancel();
    REQUIRE(queued.wait_for(2s) == std::future_status::ready);
    CHECK(queued.get().error == EINTR);

    rig.client.release();
    CHECK(slow.get().error == 0);
    // The abandoned job never reached the API, and a new request starts afresh.
    CHECK(rig.client.calls("queued.WAV") == 0);
    CHECK(rig.get("queued.WAV").error == 0);
    CHECK(rig.client.calls("queued.WAV") == 1);
}

TEST_CASE("an interrupted waiter does not cancel a download others wait for", "[core][interrupt]") {
    Rig rig;
    rig.client.script("a.WAV", {FakeReply::ok("shared")});
    rig.client.hold();
    api::CancelToken cancel;
    auto impatient = std::async(std::launch::async, [&] { return rig.get("a.WAV", &cancel); });
    REQUIRE(rig.client.wait_blocked(1));
    auto patient = std::async(std::launch::async, [&] { return rig.get("a.WAV"); });
    for (int k = 0; k < 1000 && rig.stats.coalesced_waits < 1; ++k) std::this_thread::sleep_for(1ms);
    cancel.cancel();
    CHECK(impatient.get().error == EINTR);
    rig.client.release();
    auto r = patient.get();
    REQUIRE(r.error == 0);
    CHECK(read_all(*r.recording.content) == "shared");
    CHECK(rig.client.calls("a.WAV") == 1);
}

TEST_CASE("without a grace period the last waiter leaving cancels the transfer", "[core][interrupt]") {
    Rig rig([](core::FetcherConfig& c) { c.interrupt_grace = 0ms; });
    rig.client.script("a.WAV", {FakeReply::ok("x")});
    rig.client.hold();
    api::CancelToken cancel;
    auto waiter = std::async(std::launch::async, [&] { return rig.get("a.WAV", &cancel); });
    REQUIRE(rig.client.wait_blocked(1));
    cancel.cancel();
    CHECK(waiter.get().error == EINTR);
    // The fake's call sees the job's own token fire and returns.
    for (int k = 0; k < 1000 && rig.stats.in_flight > 0; ++k) std::this_thread::sleep_for(1ms);
    CHECK(rig.stats.in_flight == 0);
    rig.client.release();
}

TEST_CASE("large recordings go to disk, 0600, and open handles pin them", "[core][disk]") {
    Rig rig(3, 1 << 20, 64 << 10, 8 << 20);
    const auto big = riff_of(1 << 20);
    rig.client.script("big.WAV", {FakeReply::ok(big), FakeReply::ok(riff_of(1 << 19))});
    auto r = rig.get("big.WAV");
    REQUIRE(r.error == 0);
    REQUIRE(r.recording.content->on_disk());
    REQUIRE(rig.dir.file_count() == 1);
    for (const auto& e : std::filesystem::directory_iterator(rig.dir.path())) {
        const auto perms = e.status().permissions() & std::filesystem::perms::all;
        CHECK(perms == (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    }
    CHECK(rig.budget->used() == big.size());

    // Expiry and a refetch take the file's name; the handle still reads its bytes.
    rig.clock.advance(31s);
    auto newer = rig.get("big.WAV");
    REQUIRE(newer.error == 0);
    CHECK(newer.recording.content->size() == (1u << 19));
    CHECK(read_all(*r.recording.content) == big);
    CHECK(rig.dir.file_count() == 1);
    r = {};  // the last close
    CHECK(rig.budget->used() == (1u << 19));
}

TEST_CASE("memory tier evicts least recently used past its cap", "[core][lru]") {
    Rig rig(3, 3000, 2000, 8 << 20);
    for (const char* n : {"a", "b", "c"}) rig.client.script(n, {FakeReply::ok(bytes_of(1000, n[0]))});
    auto a = rig.get("a");
    rig.get("b");
    rig.get("a");  // a is now more recent than b
    rig.get("c");
    CHECK(rig.cache->memory_bytes() == 3000);
    rig.client.script("d", {FakeReply::ok(bytes_of(1000, 'd'))});
    rig.get("d");  // evicts b
    CHECK(rig.cache->memory_bytes() == 3000);
    rig.get("a");
    rig.get("c");
    rig.get("b");
    CHECK(rig.client.calls("a") == 1);
    CHECK(rig.client.calls("c") == 1);
    CHECK(rig.client.calls("b") == 2);
    // Evicted but pinned: the handle still reads.
    CHECK(read_all(*a.recording.content) == bytes_of(1000, 'a'));
}

TEST_CASE("disk tier evicts least recently used to make room", "[core][lru][disk]") {
    Rig rig(3, 1 << 20, 1024, 3 * 100000);
    for (const char* n : {"a", "b", "c", "d"}) rig.client.script(n, {FakeReply::ok(riff_of(100000))});
    rig.get("a");
    rig.get("b");
    rig.get("c");
    rig.get("a");  // b is now the oldest
    CHECK(rig.dir.file_count() == 3);
    rig.get("d");
    CHECK(rig.dir.file_count() == 3);
    rig.get("a");
    rig.get("c");
    CHECK(rig.client.calls("a") == 1);
    CHECK(rig.client.calls("c") == 1);
    rig.get("b");
    CHECK(rig.client.calls("b") == 2);
}

TEST_CASE("a recording larger than the disk cache fails cleanly", "[core][disk]") {
    Rig rig(3, 1 << 20, 1024, 50000);
    rig.client.script("huge", {FakeReply::ok(riff_of(100000))});
    rig.client.script("small", {FakeReply::ok(riff_of(20000))});
    auto r = rig.get("huge");
    CHECK(r.error == ENOSPC);
    CHECK(rig.dir.file_count() == 0);
    CHECK(rig.budget->used() == 0);
    CHECK(rig.get("small").error == 0);
    // Not cached as a failure: the next try asks again.
    CHECK(rig.get("huge").error == ENOSPC);
    CHECK(rig.client.calls("huge") == 2);
}

TEST_CASE("a recording without a RIFF header spills to disk past the memory limit", "[core][disk]") {
    Rig rig(3, 1 << 20, 10000, 8 << 20);
    rig.client.script("raw", {FakeReply::ok(bytes_of(50000, 'z'))});
    auto r = rig.get("raw");
    REQUIRE(r.error == 0);
    CHECK(r.recording.content->on_disk());
    CHECK(read_all(*r.recording.content) == bytes_of(50000, 'z'));
}

TEST_CASE("clearing the cache removes every file", "[core][disk]") {
    Rig rig(3, 1 << 20, 1024, 8 << 20);
    rig.client.script("a", {FakeReply::ok(riff_of(5000))});
    rig.client.script("b", {FakeReply::ok(riff_of(5000))});
    rig.get("a");
    rig.get("b");
    CHECK(rig.dir.file_count() == 2);
    rig.cache->clear();
    CHECK(rig.dir.file_count() == 0);
}

TEST_CASE("readdir lists live entries only", "[core]") {
    Rig rig;
    rig.client.script("a", {FakeReply::ok("1")});
    rig.client.script("b", {FakeReply::ok("2")});
    rig.get("a");
    rig.clock.advance(20s);
    rig.get("b");
    auto names = rig.cache->list(rig.clock.now());
    CHECK(names.size() == 2);
    rig.clock.advance(15s);
    names = rig.cache->list(rig.clock.now());
    REQUIRE(names.size() == 1);
    CHECK(names[0].first == "b");
}
