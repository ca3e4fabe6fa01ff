// Sharing the tenant: asynchronous completion, the learned budget, patience, the
// interrupt grace window, the TTL counted from the reply, shutdown, and the defects
// found in review. A fake client and a fake clock: nothing here waits for real time
// beyond a poll.

#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <future>
#include <thread>

#include "euphoria/core/call_budget.hpp"
#include "euphoria/core/filesystem.hpp"
#include "fetcher_rig.hpp"

using namespace euphoria;
using namespace std::chrono_literals;
using test::eventually;
using test::bytes_of;
using test::FakeReply;
using test::read_all;
using test::riff_of;
using test::Rig;

namespace {

// A fetch whose completion lands in a promise. The completion owns what it touches:
// it may still be returning on its thread after the test has moved on.
struct Async {
    struct State {
        std::promise<core::FetchResult> promise;
        std::atomic<std::thread::id> thread{};
    };
    std::shared_ptr<State> state = std::make_shared<State>();
    std::future<core::FetchResult> future = state->promise.get_future();
    core::WaitId id = 0;

    void start(core::Fetcher& f, const std::string& name) {
        id = f.fetch(name, [s = state](core::FetchResult r) {
            s->thread = std::this_thread::get_id();
            s->promise.set_value(std::move(r));
        });
    }
    std::thread::id thread() const { return state->thread; }
    bool ready() { return future.wait_for(0ms) == std::future_status::ready; }
};

core::RetryPolicy backoff() {
    return {0, 250ms, 8000ms, 0ms};
}

}  // namespace

TEST_CASE("the call budget halves on exceeded and climbs back additively", "[core][budget]") {
    const auto t0 = core::Clock::time_point(1000s);
    core::CallBudget b(3, backoff());
    CHECK(b.window() == 3);
    CHECK_FALSE(b.busy_since());

    const auto e0 = b.epoch();
    b.on_exceeded(e0, t0, 0.0);
    CHECK(b.window() == 1);  // floor(3 / 2)
    CHECK(b.busy_since() == t0);
    CHECK(b.resume_at() == t0 + 125ms);  // half of 250 ms, no jitter

    // Two more calls that started before the decrease: one halving for all of them.
    b.on_exceeded(e0, t0 + 1ms, 0.0);
    b.on_exceeded(e0, t0 + 2ms, 0.0);
    CHECK(b.window() == 1);

    // A call started after it: the pause doubles, the window stays at its floor.
    b.on_exceeded(b.epoch(), t0 + 200ms, 0.0);
    CHECK(b.window() == 1);
    CHECK(b.resume_at() == t0 + 200ms + 250ms);
    b.on_exceeded(b.epoch(), t0 + 500ms, 0.99);
    CHECK(b.resume_at() > t0 + 500ms + 500ms);
    CHECK(b.resume_at() < t0 + 500ms + 1000ms);
    CHECK(b.busy_since() == t0);

    // Successes: 1 -> 2 -> 2.5 -> 2.9 -> 3.24 (capped at 3).
    b.on_admitted();
    CHECK_FALSE(b.busy_since());
    CHECK(b.window() == 2);
    b.on_admitted();
    CHECK(b.window() == 2);
    b.on_admitted();
    CHECK(b.window() == 2);
    b.on_admitted();
    CHECK(b.window() == 3);
    for (int i = 0; i < 10; ++i) b.on_admitted();
    CHECK(b.window() == 3);

    // After a success the pause starts small again.
    b.on_exceeded(b.epoch(), t0 + 10s, 0.0);
    CHECK(b.resume_at() == t0 + 10s + 125ms);
}

TEST_CASE("a lookup that needs a download completes later, on another thread", "[core][async]") {
    Rig rig;
    rig.client.script("a.WAV", {FakeReply::ok("bytes")});
    rig.client.hold();
    Async a;
    a.start(*rig.fetcher, "a.WAV");
    CHECK(a.id != 0);
    REQUIRE(rig.client.wait_blocked(1));
    CHECK_FALSE(a.ready());
    CHECK(rig.stats.pending == 1);
    rig.client.release();
    auto r = a.future.get();
    REQUIRE(r.error == 0);
    CHECK(read_all(*r.recording.content) == "bytes");
    CHECK(a.thread() != std::this_thread::get_id());
    CHECK(rig.stats.pending == 0);

    // A hit is answered before fetch() returns, on the caller's thread.
    Async hit;
    hit.start(*rig.fetcher, "a.WAV");
    CHECK(hit.id == 0);
    REQUIRE(hit.ready());
    CHECK(hit.thread() == std::this_thread::get_id());
    CHECK(hit.future.get().recording.content == r.recording.content);
}

TEST_CASE("past max_pending a request gets EAGAIN at once", "[core][async]") {
    Rig rig([](core::FetcherConfig& c) { c.max_pending = 2; });
    rig.client.hold();
    Async a, b, c;
    a.start(*rig.fetcher, "a");
    b.start(*rig.fetcher, "a");  // a waiter too, though it shares the job
    c.start(*rig.fetcher, "c");
    REQUIRE(c.ready());
    CHECK(c.id == 0);
    CHECK(c.future.get().error == EAGAIN);
    CHECK(rig.stats.errors[2] == 1);  // EAGAIN
    rig.client.script("a", {FakeReply::ok("x")});
    rig.client.release();
    CHECK(a.future.get().error == 0);
    CHECK(b.future.get().error == 0);
    CHECK(rig.client.calls("c") == 0);
}

TEST_CASE("a full tenant is waited out, mount-wide, without using retries", "[core][budget]") {
    Rig rig([](core::FetcherConfig& c) { c.retry.retries = 0; });
    const auto busy = FakeReply::fail(EAGAIN, api::ErrorKind::busy);
    rig.client.script("a", {busy, busy, FakeReply::ok("a")});
    rig.client.script("b", {FakeReply::ok("b")});
    Async a;
    a.start(*rig.fetcher, "a");
    REQUIRE(eventually([&] { return rig.stats.exceeded_replies == 1; }));
    CHECK(rig.stats.budget == 1);
    // The whole mount pauses: a new name does not go upstream during the backoff.
    Async b;
    b.start(*rig.fetcher, "b");
    std::this_thread::sleep_for(20ms);
    CHECK(rig.client.total_calls() == 1);
    CHECK_FALSE(a.ready());

    rig.clock.advance(126ms);  // past the first pause (125 ms at jitter 0.5 is 187)
    rig.clock.advance(100ms);
    REQUIRE(eventually([&] { return rig.stats.exceeded_replies == 2; }));
    // First in, first out: "a" went back to the head, so "b" still waits.
    CHECK(rig.client.calls("b") == 0);
    rig.clock.advance(1s);
    auto r = a.future.get();
    REQUIRE(r.error == 0);
    CHECK(read_all(*r.recording.content) == "a");
    CHECK(b.future.get().error == 0);
    CHECK(rig.client.call_order() == std::vector<std::string>{"a", "a", "a", "b"});
    CHECK(rig.stats.retries == 0);
    CHECK(rig.stats.exceeded_replies == 2);
    // Two admitted calls since: 1 -> 2 -> 2.5.
    CHECK(rig.stats.budget == 2);
}

TEST_CASE("a caller waits up to busy_timeout, then gets EAGAIN", "[core][budget]") {
    Rig rig([](core::FetcherConfig& c) { c.busy_timeout = 10s; });
    rig.client.script("a", {FakeReply::fail(EAGAIN, api::ErrorKind::busy)});
    rig.client.script("q", {FakeReply::ok("q")});
    Async a, q;
    a.start(*rig.fetcher, "a");
    REQUIRE(eventually([&] { return rig.stats.exceeded_replies == 1; }));
    q.start(*rig.fetcher, "q");  // queued behind "a"
    for (int i = 0; i < 9; ++i) {
        rig.clock.advance(1s);
        std::this_thread::sleep_for(3ms);
    }
    CHECK_FALSE(a.ready());
    CHECK_FALSE(q.ready());
    const auto calls_before = rig.client.calls("a");
    CHECK(calls_before >= 2);   // it kept asking, paused each time
    CHECK(calls_before <= 6);   // 125, 250, 500, 1000, 2000, 4000 ms: no hammering
    rig.clock.advance(2s);
    REQUIRE(a.future.wait_for(5s) == std::future_status::ready);
    CHECK(a.future.get().error == EAGAIN);
    // The caller queued behind it shares the episode's patience.
    REQUIRE(q.future.wait_for(5s) == std::future_status::ready);
    CHECK(q.future.get().error == EAGAIN);
    CHECK(rig.client.calls("q") == 0);
    CHECK_FALSE(rig.cache->find("a", rig.clock.now()).hit != core::ContentCache::Hit::none);
}

TEST_CASE("busy_timeout=0 gives EAGAIN on the first exceeded reply", "[core][budget]") {
    Rig rig([](core::FetcherConfig& c) { c.busy_timeout = 0ms; });
    rig.client.script("a", {FakeReply::fail(EAGAIN, api::ErrorKind::busy), FakeReply::ok("fine")});
    CHECK(rig.get("a").error == EAGAIN);
    CHECK(rig.client.calls("a") == 1);
}

TEST_CASE("an interrupted download goes on for the grace period and is joined", "[core][grace]") {
    Rig rig;
    rig.client.script("a", {FakeReply::ok("once")});
    rig.client.hold();
    std::atomic<bool> first_called{false};
    const auto id = rig.fetcher->fetch("a", [&](core::FetchResult) { first_called = true; });
    REQUIRE(rig.client.wait_blocked(1));
    CHECK(rig.fetcher->cancel_wait(id));
    CHECK_FALSE(rig.fetcher->cancel_wait(id));
    CHECK(rig.stats.errors[6] == 1);  // EINTR
    rig.clock.advance(4s);
    std::this_thread::sleep_for(10ms);
    // Not cancelled: the retry joins it.
    Async retry;
    retry.start(*rig.fetcher, "a");
    CHECK(retry.id != 0);
    rig.clock.advance(10s);  // long past the grace, but it has a waiter again
    std::this_thread::sleep_for(10ms);
    rig.client.release();
    auto r = retry.future.get();
    REQUIRE(r.error == 0);
    CHECK(read_all(*r.recording.content) == "once");
    CHECK(rig.client.calls("a") == 1);
    CHECK_FALSE(first_called);
}

TEST_CASE("a download nobody wants is cached if it ends within the grace", "[core][grace]") {
    Rig rig;
    rig.client.script("a", {FakeReply::ok("kept")});
    rig.client.hold();
    const auto id = rig.fetcher->fetch("a", [](core::FetchResult) { FAIL("called after cancel"); });
    REQUIRE(rig.client.wait_blocked(1));
    REQUIRE(rig.fetcher->cancel_wait(id));
    rig.client.release();
    REQUIRE(eventually([&] { return rig.stats.in_flight == 0 && rig.stats.bytes_fetched == 4; }));
    auto r = rig.get("a");
    REQUIRE(r.error == 0);
    CHECK(rig.client.calls("a") == 1);
    CHECK(rig.stats.memory_hits == 1);
}

TEST_CASE("after the grace period an unwanted download is cancelled", "[core][grace]") {
    Rig rig([](core::FetcherConfig& c) { c.interrupt_grace = 3s; });
    rig.client.script("a", {FakeReply::ok("x")});
    rig.client.script("b", {FakeReply::ok("y")});
    rig.client.hold();
    const auto running = rig.fetcher->fetch("a", [](core::FetchResult) {});
    REQUIRE(rig.client.wait_blocked(1));
    REQUIRE(rig.fetcher->cancel_wait(running));
    rig.clock.advance(2s);
    std::this_thread::sleep_for(10ms);
    CHECK(rig.stats.in_flight == 1);
    rig.clock.advance(2s);
    REQUIRE(eventually([&] { return rig.stats.in_flight == 0; }));
    CHECK(rig.stats.pending == 0);
    rig.client.release();
    // The slot is free, and the name starts afresh.
    CHECK(rig.get("a").error == 0);
    CHECK(rig.client.calls("a") == 2);
}

TEST_CASE("a queued job nobody wants never reaches the API", "[core][grace]") {
    Rig rig(1, 1 << 20, 256 << 10, 8 << 20, "*", [](core::FetcherConfig& c) {
        c.interrupt_grace = 1s;
    });
    rig.client.script("slow", {FakeReply::ok("s")});
    rig.client.script("queued", {FakeReply::ok("q")});
    rig.client.hold();
    Async slow;
    slow.start(*rig.fetcher, "slow");
    REQUIRE(rig.client.wait_blocked(1));
    const auto id = rig.fetcher->fetch("queued", [](core::FetchResult) {});
    REQUIRE(rig.fetcher->cancel_wait(id));
    rig.clock.advance(2s);
    REQUIRE(eventually([&] { return rig.stats.queued == 0; }));
    rig.client.release();
    CHECK(slow.future.get().error == 0);
    std::this_thread::sleep_for(10ms);
    CHECK(rig.client.calls("queued") == 0);
}

TEST_CASE("the TTL counts from the moment the reply finished", "[core][ttl]") {
    Rig rig;
    rig.client.script("a", {FakeReply::ok("one"), FakeReply::ok("two")});
    rig.client.hold();
    Async a;
    a.start(*rig.fetcher, "a");
    REQUIRE(rig.client.wait_blocked(1));
    rig.clock.advance(45s);  // a download slower than the TTL
    rig.client.release();
    auto r = a.future.get();
    REQUIRE(r.error == 0);
    CHECK(r.recording.expires_at == rig.clock.now() + 30s);
    rig.clock.advance(29s);
    CHECK(read_all(*rig.get("a").recording.content) == "one");
    CHECK(rig.client.calls("a") == 1);
    rig.clock.advance(1s);
    CHECK(read_all(*rig.get("a").recording.content) == "two");

    // Negative entries too.
    rig.client.script("gone", {FakeReply::fail(ENOENT, api::ErrorKind::not_found)});
    rig.client.hold();
    Async g;
    g.start(*rig.fetcher, "gone");
    REQUIRE(rig.client.wait_blocked(1));
    rig.clock.advance(40s);
    rig.client.release();
    auto n = g.future.get();
    CHECK(n.negative);
    CHECK(n.negative_until == rig.clock.now() + 30s);
}

TEST_CASE("cache_ttl=0 keeps nothing for later lookups", "[core][ttl]") {
    Rig rig([](core::FetcherConfig& c) { c.ttl = 0s; });
    rig.client.script("a", {FakeReply::ok("x")});
    CHECK(rig.get("a").error == 0);
    CHECK(rig.get("a").error == 0);
    CHECK(rig.client.calls("a") == 2);
    rig.client.script("gone", {FakeReply::fail(ENOENT, api::ErrorKind::not_found)});
    CHECK(rig.get("gone").error == ENOENT);
    CHECK(rig.get("gone").error == ENOENT);
    CHECK(rig.client.calls("gone") == 2);
}

TEST_CASE("shutdown answers every waiter and cancels every call", "[core][shutdown]") {
    Rig rig(1);
    rig.client.hold();
    Async running, joined, queued;
    running.start(*rig.fetcher, "a");
    REQUIRE(rig.client.wait_blocked(1));
    joined.start(*rig.fetcher, "a");
    queued.start(*rig.fetcher, "b");
    rig.fetcher->shutdown();
    for (auto* w : {&running, &joined, &queued}) {
        REQUIRE(w->ready());
        CHECK(w->future.get().error == ESHUTDOWN);
    }
    CHECK(rig.stats.in_flight == 0);
    CHECK(rig.client.calls("b") == 0);
    CHECK(rig.get("c").error == ESHUTDOWN);
    rig.fetcher->shutdown();  // idempotent
}

TEST_CASE("a RIFF size of 0xFFFFFFFF does not reserve or evict the disk tier", "[core][disk][review]") {
    Rig rig(3, 1 << 20, 1024, 1 << 20);
    rig.client.script("kept", {FakeReply::ok(riff_of(600000))});
    REQUIRE(rig.get("kept").error == 0);
    auto liar = riff_of(100000);
    liar.replace(4, 4, std::string(4, '\xff'));
    rig.client.script("liar", {FakeReply::ok(liar)});
    rig.client.hold();
    Async l;
    l.start(*rig.fetcher, "liar");
    REQUIRE(rig.client.wait_blocked(1));
    CHECK(rig.budget->used() == 600000);  // nothing reserved for the claim
    rig.client.release();
    auto r = l.future.get();
    REQUIRE(r.error == 0);
    CHECK(read_all(*r.recording.content) == liar);
    CHECK(rig.budget->used() == 700000);
    CHECK(rig.cache->find("kept", rig.clock.now()).hit == core::ContentCache::Hit::disk);
}

TEST_CASE("mem_cache_size counts pinned and evicted contents; past it, disk", "[core][lru][review]") {
    Rig rig(3, 2500, 2000, 8 << 20);
    for (const char* n : {"a", "b", "c"}) rig.client.script(n, {FakeReply::ok(bytes_of(1000, n[0]))});
    auto a = rig.get("a");
    auto b = rig.get("b");
    CHECK(rig.memory->used() == 2000);
    // Evicting a and b frees nothing while they are held: c goes to disk.
    auto c = rig.get("c");
    REQUIRE(c.error == 0);
    CHECK(c.recording.content->on_disk());
    CHECK(rig.memory->used() <= 2500);
    CHECK(read_all(*a.recording.content) == bytes_of(1000, 'a'));
    // Evicting them could not have made room, so they were kept: still cached.
    CHECK(rig.cache->find("a", rig.clock.now()).hit == core::ContentCache::Hit::memory);
    a = {};
    b = {};
    CHECK(rig.memory->used() == 2000);
    rig.cache->clear();
    CHECK(rig.memory->used() == 0);
    CHECK(rig.cache->memory_bytes() == 0);
}

TEST_CASE("an expired negative entry is never served", "[core][negative][review]") {
    auto memory = std::make_shared<core::ByteBudget>(1 << 20);
    auto disk = std::make_shared<core::ByteBudget>(1 << 20);
    core::ContentCache cache(core::CacheLimits{}, memory, disk);
    const auto t0 = core::Clock::time_point(1000s);
    cache.insert_negative("long", t0 + 30s);
    cache.insert_negative("short", t0 + 5s);  // inserted later, expires sooner
    CHECK(cache.find("short", t0 + 1s).hit == core::ContentCache::Hit::negative);
    CHECK(cache.find("short", t0 + 6s).hit == core::ContentCache::Hit::none);
    CHECK(cache.find("long", t0 + 6s).hit == core::ContentCache::Hit::negative);
}

TEST_CASE("a local fault is EIO and never a negative entry", "[core][negative][review]") {
    Rig rig(3, 1 << 20, 1024, 8 << 20);
    // The cache folder is gone: creating a cache file fails with ENOENT.
    std::filesystem::remove_all(rig.dir.path());
    rig.client.script("big", {FakeReply::ok(riff_of(50000))});
    auto r = rig.get("big");
    CHECK(r.error == EIO);
    CHECK_FALSE(r.negative);
    CHECK(rig.cache->find("big", rig.clock.now()).hit == core::ContentCache::Hit::none);
    CHECK(rig.get("big").error == EIO);
    CHECK(rig.client.calls("big") == 2);
    std::filesystem::create_directory(rig.dir.path());
}

namespace {

struct FsRig {
    Rig rig;
    core::Filesystem fs{*rig.fetcher, *rig.cache, rig.stats, rig.clock, core::Ownership{}};
    explicit FsRig(const Rig::Tweak& tweak = {}) : rig(tweak) {}
    // The Fetcher's threads call into the Filesystem: they stop before it goes.
    ~FsRig() { rig.fetcher->shutdown(); }
    FsRig(const FsRig&) = delete;
    FsRig& operator=(const FsRig&) = delete;

    // The reply may still be returning on the completing thread when get() wakes,
    // so it owns what it touches.
    core::EntryAnswer lookup(const std::string& name, bool delivered = true, pid_t pid = 100) {
        auto p = std::make_shared<std::promise<core::EntryAnswer>>();
        auto f = p->get_future();
        fs.lookup(core::root_ino, name, pid, [p, delivered](const core::EntryAnswer& a) {
            p->set_value(a);
            return delivered;
        });
        return f.get();
    }
    core::OpenAnswer open(core::Ino ino) {
        auto p = std::make_shared<std::promise<core::OpenAnswer>>();
        auto f = p->get_future();
        fs.open(ino, O_RDONLY, [p](core::OpenAnswer&& a) {
            p->set_value(std::move(a));
            return true;
        });
        return f.get();
    }
};

}  // namespace

TEST_CASE("with cache_ttl=0 a lookup and its open share one download", "[core][ttl][fs]") {
    FsRig f([](core::FetcherConfig& c) { c.ttl = 0s; });
    f.rig.client.script("plain.WAV", {FakeReply::ok("v1"), FakeReply::ok("v2-longer")});
    auto e = f.lookup("plain.WAV");
    REQUIRE(e.error == 0);
    CHECK(e.timeout == 0.0);
    auto o = f.open(e.ino);
    REQUIRE(o.error == 0);
    CHECK(read_all(*o.recording.content) == "v1");
    CHECK(f.rig.client.calls("plain.WAV") == 1);

    // Long after, an open of the old inode fetches, sees another version: ESTALE,
    // and the kernel's new lookup gives it a new inode whose open needs no call.
    f.rig.clock.advance(core::InodeTable::open_window + 1s);
    CHECK(f.open(e.ino).error == ESTALE);
    auto e2 = f.lookup("plain.WAV");
    REQUIRE(e2.error == 0);
    CHECK(e2.ino != e.ino);
    auto o2 = f.open(e2.ino);
    REQUIRE(o2.error == 0);
    CHECK(f.rig.client.calls("plain.WAV") == 3);
}

TEST_CASE("a lookup whose reply did not reach the kernel takes no reference", "[core][fs][review]") {
    FsRig f;
    f.rig.client.script("a", {FakeReply::ok("x")});
    auto e = f.lookup("a", false);
    REQUIRE(e.ino != 0);
    // The undo runs once the reply has returned false, on the completing thread.
    CHECK(eventually([&] { return f.fs.inodes().lookups(e.ino) == 0; }));
    auto kept = f.lookup("a");
    CHECK(eventually([&] { return f.fs.inodes().lookups(kept.ino) == 1; }));
    f.fs.forget(kept.ino, 1);
    CHECK(f.fs.inodes().lookups(kept.ino) == 0);
    // Kept only while pinned, then gone.
    f.rig.clock.advance(core::InodeTable::open_window);
    f.fs.forget(kept.ino, 0);
    CHECK(f.fs.inodes().size() == 0);
}

TEST_CASE("inodes that readdir made and nobody looked up are bounded", "[core][fs][review]") {
    FsRig f;
    const auto n = core::InodeTable::max_unreferenced + 100;
    for (std::size_t i = 0; i < n; ++i) {
        f.rig.client.script(test::name_of(i), {FakeReply::ok("x")});
        REQUIRE(f.rig.get(test::name_of(i)).error == 0);
    }
    int error = -1;
    auto entries = f.fs.readdir(core::root_ino, error);
    REQUIRE(error == 0);
    CHECK(entries.size() == n + 2);
    CHECK(f.fs.inodes().size() == core::InodeTable::max_unreferenced);
    // A name looked up after all keeps its reference through any number of readdirs.
    auto e = f.lookup("n0");
    f.fs.readdir(core::root_ino, error);
    f.fs.readdir(core::root_ino, error);
    CHECK(f.fs.getattr(e.ino).error == 0);
}

TEST_CASE("with cache_ttl=0 one program's repeat lookups share its download; another's ask again",
          "[core][ttl][fs]") {
    FsRig f([](core::FetcherConfig& c) { c.ttl = 0s; });
    f.rig.client.script("plain.WAV", {FakeReply::ok("v1"), FakeReply::ok("v2-longer")});
    // cp: stat, then the open's path walk looks the name up again.
    auto stat = f.lookup("plain.WAV", true, 100);
    auto walk = f.lookup("plain.WAV", true, 100);
    REQUIRE(walk.error == 0);
    CHECK(walk.ino == stat.ino);
    CHECK(f.rig.client.calls("plain.WAV") == 1);
    auto o = f.open(walk.ino);
    REQUIRE(o.error == 0);
    CHECK(read_all(*o.recording.content) == "v1");
    // A later cp is another program: not kept for it.
    auto other = f.lookup("plain.WAV", true, 200);
    REQUIRE(other.error == 0);
    CHECK(f.rig.client.calls("plain.WAV") == 2);
    CHECK(other.ino != stat.ino);
    // And the first program's pin ends with the window.
    f.rig.clock.advance(core::InodeTable::open_window);
    f.lookup("plain.WAV", true, 100);
    CHECK(f.rig.client.calls("plain.WAV") == 3);
}

TEST_CASE("a pin never keeps a recording the cache let go of", "[core][fs][review]") {
    FsRig f;
    f.rig.client.script("big", {FakeReply::ok(riff_of(400 << 10))});  // the disk tier
    auto e = f.lookup("big");
    REQUIRE(e.error == 0);
    auto o = f.open(e.ino);
    REQUIRE(o.error == 0);
    REQUIRE(o.recording.content->on_disk());
    std::weak_ptr<const core::Content> watch = o.recording.content;
    o = {};
    // The lookup was answered once the size was known: let the download end first.
    REQUIRE(eventually([&] { return f.rig.stats.in_flight.load() == 0; }));
    f.rig.cache->clear();  // expiry or eviction, within the open window
    // The completing thread may still be returning from the lookup's reply.
    CHECK(eventually([&] { return watch.expired(); }));
    CHECK(f.rig.budget->used() == 0);
    CHECK(f.rig.dir.file_count() == 0);
}

TEST_CASE("a forgotten inode lives on while pinned, for the kernel's lookup that follows",
          "[core][ttl][fs]") {
    FsRig f([](core::FetcherConfig& c) { c.ttl = 0s; });
    f.rig.client.script("plain.WAV", {FakeReply::ok("v1")});
    auto first = f.lookup("plain.WAV", true, 7);
    // The kernel drops a revalidation's answer, forgets it, and looks up again.
    f.fs.forget(first.ino, 1);
    auto again = f.lookup("plain.WAV", true, 7);
    CHECK(again.ino == first.ino);
    CHECK(f.rig.client.calls("plain.WAV") == 1);
    CHECK(f.fs.inodes().lookups(first.ino) == 1);
}

TEST_CASE("patience stops counting once the tenant serves us", "[core][budget][review]") {
    Rig rig(1, 1 << 20, 256 << 10, 8 << 20, "*", [](core::FetcherConfig& c) { c.busy_timeout = 10s; });
    rig.client.script("a", {FakeReply::fail(EAGAIN, api::ErrorKind::busy), FakeReply::ok("long")});
    rig.client.script("q", {FakeReply::ok("q")});
    Async a, q;
    a.start(*rig.fetcher, "a");
    REQUIRE(eventually([&] { return rig.stats.exceeded_replies == 1; }));
    q.start(*rig.fetcher, "q");  // waits behind "a": the window is 1
    rig.client.hold_after_first_chunk();
    rig.clock.advance(1s);
    REQUIRE(rig.client.wait_blocked(1));  // "a" again: admitted, audio streaming
    // A transfer far longer than busy_timeout: the tenant serves us all along.
    rig.clock.advance(30s);
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(q.ready());
    rig.client.release();
    REQUIRE(a.future.wait_for(5s) == std::future_status::ready);
    CHECK(a.future.get().error == 0);
    REQUIRE(q.future.wait_for(5s) == std::future_status::ready);
    CHECK(q.future.get().error == 0);
}

TEST_CASE("each caller's patience counts from when it asked", "[core][budget][review]") {
    Rig rig([](core::FetcherConfig& c) { c.busy_timeout = 10s; });
    rig.client.script("a", {FakeReply::fail(EAGAIN, api::ErrorKind::busy)});
    Async early, late;
    early.start(*rig.fetcher, "a");
    REQUIRE(eventually([&] { return rig.stats.exceeded_replies == 1; }));
    rig.clock.advance(8s);
    late.start(*rig.fetcher, "a");  // joins the same job, 8 s later
    rig.clock.advance(3s);
    REQUIRE(early.future.wait_for(5s) == std::future_status::ready);
    CHECK(early.future.get().error == EAGAIN);
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(late.ready());
    rig.clock.advance(8s);
    REQUIRE(late.future.wait_for(5s) == std::future_status::ready);
    CHECK(late.future.get().error == EAGAIN);
}

TEST_CASE("with cache_ttl=0 a pin is let go on time on an idle mount", "[core][ttl][fs][review]") {
    FsRig f([](core::FetcherConfig& c) { c.ttl = 0s; });
    f.rig.client.script("big", {FakeReply::ok(riff_of(400 << 10))});
    auto e = f.lookup("big");
    REQUIRE(e.error == 0);
    CHECK(eventually([&] { return f.rig.budget->used() == (400u << 10); }));
    f.rig.clock.advance(core::InodeTable::open_window);
    // Nothing else happens on the mount: the timer alone releases the bytes.
    CHECK(eventually([&] { return f.rig.budget->used() == 0; }));
    CHECK(f.rig.dir.file_count() == 0);
}

TEST_CASE("keep_cache only when the kernel's cached pages are of the same bytes", "[core][fs]") {
    FsRig f;
    f.rig.client.script("pbx4-1603469421.1196632-k.WAV", {FakeReply::ok("same"), FakeReply::ok("same")});
    auto e = f.lookup("pbx4-1603469421.1196632-k.WAV");
    REQUIRE(e.error == 0);
    auto first = f.open(e.ino);
    REQUIRE(first.error == 0);
    CHECK_FALSE(first.keep_cache);  // nothing served yet: the kernel has no pages
    auto second = f.open(e.ino);
    CHECK(second.keep_cache);  // the very same content
    // A re-fetch of the same version (same size and call time) keeps the inode but
    // is another download: the kernel's pages must be dropped once.
    f.rig.clock.advance(31s);
    auto again = f.lookup("pbx4-1603469421.1196632-k.WAV");
    CHECK(again.ino == e.ino);
    CHECK(f.rig.client.calls("pbx4-1603469421.1196632-k.WAV") == 2);
    auto third = f.open(e.ino);
    REQUIRE(third.error == 0);
    CHECK_FALSE(third.keep_cache);
    CHECK(f.open(e.ino).keep_cache);
}
