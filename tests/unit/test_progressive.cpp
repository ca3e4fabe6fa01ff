// Progressive reads in the core: a content is readable while it arrives. Readers wait
// for their own range, wake on progress, and see a failure as EIO, never as an early
// end. A retry continues the stream when its bytes agree with what arrived.

#include "catch_compat.hpp"

#include <fcntl.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "euphoria/api/error.hpp"
#include "euphoria/core/content.hpp"
#include "euphoria/core/filesystem.hpp"
#include "fetcher_rig.hpp"

using namespace euphoria;
using namespace euphoria::test;

namespace {

// A builder as the Fetcher makes one, writing into `dir`, with what it published.
struct BuilderRig {
    TempDir dir;
    std::shared_ptr<core::ByteBudget> memory;
    std::shared_ptr<core::ByteBudget> disk = std::make_shared<core::ByteBudget>(64 << 20);
    std::shared_ptr<const core::Content> published;
    int publications = 0;
    std::unique_ptr<core::ContentBuilder> builder;

    explicit BuilderRig(std::uint64_t memory_max = 1 << 20, std::uint64_t memory_cap = 16 << 20)
        : memory(std::make_shared<core::ByteBudget>(memory_cap)) {
        core::BuilderLimits limits{dir.path(), memory_max, memory, disk};
        builder = std::make_unique<core::ContentBuilder>(
            limits, [this](std::uint64_t n) { return memory->try_reserve(n); },
            [this](std::uint64_t n) { return disk->try_reserve(n); },
            [this](std::shared_ptr<const core::Content> c) {
                published = std::move(c);
                ++publications;
            });
    }
    void write(const std::string& bytes, std::size_t from, std::size_t to) {
        builder->write({reinterpret_cast<const std::byte*>(bytes.data() + from), to - from});
    }
};

// Records the one answer a when_ready() gives.
struct Answer {
    std::mutex m;
    std::condition_variable cv;
    std::optional<int> error;
    core::Content::Ready ready() {
        return [this](int e) {
            std::lock_guard lock(m);
            error = e;
            cv.notify_all();
        };
    }
    bool given() {
        std::lock_guard lock(m);
        return error.has_value();
    }
    // The answer, or -1 after 10 s. No Catch2 assertion: readers' threads call it.
    int wait() {
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, 10s, [&] { return error.has_value(); })) return -1;
        return *error;
    }
};

// The failed job is done with: a caller from now on starts a new download.
bool eventually_idle(Rig& rig) {
    return eventually([&] { return rig.stats.in_flight.load() == 0 && rig.stats.queued.load() == 0; });
}

std::string read_range(const core::Content& c, std::uint64_t off, std::size_t n) {
    std::string out(n, '\0');
    const long got = c.read(out.data(), n, off);
    REQUIRE(got == static_cast<long>(n));
    return out;
}

}  // namespace

TEST_CASE("a content is published at its RIFF size and read while it grows", "[core][progressive]") {
    for (const bool disk : {false, true}) {
        DYNAMIC_SECTION((disk ? "disk tier" : "memory tier")) {
            BuilderRig b(disk ? 1024 : 1 << 20);
            const auto bytes = riff_of(100000);
            b.builder->reset();
            b.write(bytes, 0, 4);
            CHECK(b.publications == 0);  // the size is not known yet
            b.write(bytes, 4, 4096);
            REQUIRE(b.publications == 1);
            const auto& c = *b.published;
            CHECK(c.size() == 100000);
            CHECK_FALSE(c.complete());
            CHECK(c.on_disk() == disk);
            // Neither the fast paths nor passthrough may see a file still growing.
            CHECK(c.data() == nullptr);
            CHECK(c.fd() == -1);
            CHECK(read_range(c, 0, 4096) == bytes.substr(0, 4096));

            Answer early, late, whole;
            CHECK(c.when_ready(4096, early.ready()) == 0);  // there already: at once
            CHECK(early.error == 0);
            CHECK(c.when_ready(60000, late.ready()) != 0);
            CHECK(c.when_ready(core::Content::whole, whole.ready()) != 0);
            b.write(bytes, 4096, 59999);
            CHECK_FALSE(late.given());  // one byte short of its range
            b.write(bytes, 59999, 60000);
            CHECK(late.wait() == 0);
            CHECK(read_range(c, 50000, 10000) == bytes.substr(50000, 10000));
            b.write(bytes, 60000, 100000);
            CHECK_FALSE(whole.given());  // every byte, but not yet complete
            b.builder->complete();
            auto done = b.builder->take();
            CHECK(done.get() == &c);  // readers already hold the final content
            b.builder->finish();
            CHECK(whole.wait() == 0);
            CHECK(c.complete());
            CHECK((c.data() != nullptr) == !disk);
            CHECK((c.fd() >= 0) == disk);
            CHECK(read_all(c) == bytes);
        }
    }
}

TEST_CASE("an implausible RIFF size is not published: readers wait for the end", "[core][progressive]") {
    auto with_riff = [](std::uint32_t riff, std::size_t total) {
        std::string s = bytes_of(total, 'q');
        s.replace(0, 4, "RIFF");
        for (int i = 0; i < 4; ++i) s[4 + i] = static_cast<char>((riff >> (8 * i)) & 0xff);
        return s;
    };
    const std::uint64_t plausible_max = 64 << 20;  // BuilderRig's disk tier
    struct Case {
        const char* what;
        std::uint32_t riff;
    };
    for (const auto& c : {Case{"0xFFFFFFFF", 0xFFFFFFFFu}, Case{"under 44 bytes", 35},
                          Case{"0 bytes", 0},
                          Case{"past the sane bound", static_cast<std::uint32_t>(plausible_max)}}) {
        DYNAMIC_SECTION(c.what) {
            BuilderRig b;
            const auto bytes = with_riff(c.riff, 5000);
            b.write(bytes, 0, bytes.size());
            CHECK(b.publications == 0);
            b.builder->complete();
            auto content = b.builder->take();
            b.builder->finish();
            CHECK(content->size() == 5000);  // the bytes that came, as before
            CHECK(read_all(*content) == bytes);
        }
    }
    SECTION("the smallest WAV and the sane bound itself are believed") {
        BuilderRig b;
        b.write(with_riff(36, 44), 0, 8);
        CHECK(b.publications == 1);
        CHECK(b.published->size() == 44);
        BuilderRig big;
        big.write(with_riff(static_cast<std::uint32_t>(plausible_max - 8), 16), 0, 8);
        CHECK(big.publications == 1);
    }
    SECTION("no RIFF header at all") {
        BuilderRig b;
        b.write(bytes_of(3000, 'x'), 0, 3000);
        CHECK(b.publications == 0);
    }
}

TEST_CASE("a failure wakes every reader with EIO and frees the bytes", "[core][progressive]") {
    BuilderRig b(1024);  // the disk tier: a cache file to remove
    const auto bytes = riff_of(50000);
    b.write(bytes, 0, 20000);
    REQUIRE(b.published);
    auto content = b.published;
    Answer past, cancelled;
    REQUIRE(content->when_ready(30000, past.ready()) != 0);
    const auto id = content->when_ready(40000, cancelled.ready());
    REQUIRE(id != 0);
    CHECK(content->cancel_ready(id));
    CHECK_FALSE(content->cancel_ready(id));
    CHECK(b.dir.file_count() == 1);
    b.builder->fail();
    CHECK(past.wait() == EIO);
    CHECK_FALSE(cancelled.given());
    CHECK(content->failed());
    CHECK_FALSE(content->complete());
    // Bytes that arrived are not served either: the recording is not whole.
    char buf[16];
    CHECK(content->read(buf, sizeof buf, 0) == -EIO);
    Answer later;
    CHECK(content->when_ready(10, later.ready()) == 0);
    CHECK(later.error == EIO);
    CHECK(b.dir.file_count() == 0);
    CHECK(b.disk->used() == 0);
}

TEST_CASE("a retry continues the stream when it repeats the same bytes", "[core][progressive]") {
    for (const bool disk : {false, true}) {
        DYNAMIC_SECTION((disk ? "disk tier" : "memory tier")) {
            BuilderRig b(disk ? 1024 : 1 << 20);
            const auto bytes = riff_of(80000);
            b.builder->reset();
            b.write(bytes, 0, 32000);  // 40%, then the connection drops
            auto content = b.published;
            REQUIRE(content);
            Answer reader;
            REQUIRE(content->when_ready(70000, reader.ready()) != 0);
            b.builder->reset();  // the retry starts from the first byte
            b.write(bytes, 0, 10000);
            CHECK(content->arrived() == 32000);  // a repeat adds nothing
            b.write(bytes, 10000, 80000);
            CHECK(reader.wait() == 0);
            b.builder->complete();
            CHECK(b.builder->take() == content);
            b.builder->finish();
            CHECK(b.publications == 1);
            CHECK(read_all(*content) == bytes);
        }
    }
}

TEST_CASE("a retry whose bytes differ fails the content, never mixing two versions", "[core][progressive]") {
    BuilderRig b;
    const auto bytes = riff_of(80000);
    b.write(bytes, 0, 32000);
    auto content = b.published;
    REQUIRE(content);
    Answer reader;
    REQUIRE(content->when_ready(50000, reader.ready()) != 0);
    b.builder->reset();
    auto other = bytes;
    other[20000] = static_cast<char>(other[20000] ^ 1);
    try {
        b.write(other, 0, 30000);
        FAIL("a differing retry was accepted");
    } catch (const api::ApiError& e) {
        CHECK(e.error_number() == EIO);
    }
    b.builder->fail();  // what the Fetcher does with the error
    CHECK(reader.wait() == EIO);
    CHECK(content->failed());
}

TEST_CASE("the stream ends short of its announced size: EIO, not a short file", "[core][progressive]") {
    BuilderRig b;
    const auto bytes = riff_of(80000);
    b.write(bytes, 0, 60000);
    auto content = b.published;
    REQUIRE(content);
    Answer reader;
    REQUIRE(content->when_ready(70000, reader.ready()) != 0);
    b.builder->complete();  // the reply itself was well formed
    CHECK_THROWS_AS(b.builder->take(), api::ApiError);
    b.builder.reset();  // a builder that was not taken fails its content
    CHECK(reader.wait() == EIO);
    CHECK(content->failed());
}

TEST_CASE("a stream longer than announced completes at its real size", "[core][progressive]") {
    BuilderRig b;
    auto bytes = riff_of(80000);
    bytes += bytes_of(5000, 'z');
    b.write(bytes, 0, 40000);
    auto content = b.published;
    REQUIRE(content);
    CHECK(content->size() == 80000);
    b.write(bytes, 40000, bytes.size());
    b.builder->complete();
    b.builder->take();
    b.builder->finish();
    CHECK(content->size() == 85000);
    CHECK(read_all(*content) == bytes);
}

TEST_CASE("a growing content that must move to disk keeps serving its readers", "[core][progressive]") {
    // Room in memory for the header's claim only later: the first bytes stay in
    // memory, then the budget runs out and the rest goes to a cache file.
    BuilderRig b(1 << 20, 64 << 10);
    const auto bytes = riff_of(300000);
    b.write(bytes, 0, 50000);
    auto content = b.published;
    REQUIRE(content);
    CHECK_FALSE(content->on_disk());
    CHECK(read_range(*content, 1000, 40000) == bytes.substr(1000, 40000));
    b.write(bytes, 50000, 200000);
    CHECK(content->on_disk());
    CHECK(read_range(*content, 1000, 150000) == bytes.substr(1000, 150000));
    b.write(bytes, 200000, bytes.size());
    b.builder->complete();
    b.builder->take();
    b.builder->finish();
    CHECK(read_all(*content) == bytes);
    CHECK(b.memory->used() == 0);
}

TEST_CASE("readers on many threads wait for their ranges while one thread writes", "[core][progressive][threads]") {
    for (const bool disk : {false, true}) {
        DYNAMIC_SECTION((disk ? "disk tier" : "memory tier")) {
            BuilderRig b(disk ? 1024 : 4 << 20);
            const auto bytes = riff_of(2 << 20);
            b.write(bytes, 0, 8);
            auto content = b.published;
            REQUIRE(content);
            std::atomic<int> wrong{0};
            std::atomic<int> served{0};
            std::vector<std::thread> readers;
            for (int t = 0; t < 4; ++t) {
                readers.emplace_back([&, t] {
                    std::mt19937 rng(static_cast<unsigned>(t));
                    for (int i = 0; i < 50; ++i) {
                        const std::uint64_t off = rng() % (bytes.size() - 4096);
                        const std::size_t n = 1 + rng() % 4096;
                        Answer a;
                        content->when_ready(off + n, a.ready());
                        if (a.wait() != 0) {
                            ++wrong;
                            continue;
                        }
                        std::string got(n, '\0');
                        if (content->read(got.data(), n, off) != static_cast<long>(n) ||
                            got != bytes.substr(off, n)) {
                            ++wrong;
                        }
                        ++served;
                    }
                });
            }
            for (std::size_t off = 8; off < bytes.size(); off += 4096) {
                b.write(bytes, off, std::min(bytes.size(), off + 4096));
            }
            b.builder->complete();
            b.builder->take();
            b.builder->finish();
            for (auto& r : readers) r.join();
            CHECK(wrong == 0);
            CHECK(served == 200);
        }
    }
}

TEST_CASE("the Fetcher answers once the size is known, and joins later callers to the download",
          "[core][progressive][fetcher]") {
    Rig rig;
    const auto bytes = riff_of(200000);
    rig.client.script("long.WAV", {FakeReply::ok(bytes)});
    rig.client.hold_after_first_chunk();
    auto first = rig.fetcher->get("long.WAV", nullptr, core::Fetcher::Until::answered);
    REQUIRE(first.error == 0);
    const auto& content = first.recording.content;
    CHECK(content->size() == 200000);
    CHECK_FALSE(content->complete());
    CHECK(content->arrived() == 4096);
    CHECK(read_range(*content, 0, 4096) == bytes.substr(0, 4096));
    CHECK(rig.stats.early_replies == 1);
    // A second caller during the download gets the same growing content at once.
    auto second = rig.fetcher->get("long.WAV", nullptr, core::Fetcher::Until::answered);
    REQUIRE(second.error == 0);
    CHECK(second.recording.content == content);
    Answer end;
    REQUIRE(content->when_ready(core::Content::whole, end.ready()) != 0);
    rig.client.release();
    CHECK(end.wait() == 0);
    CHECK(read_all(*content) == bytes);
    CHECK(rig.client.calls("long.WAV") == 1);
    // The cache has it now.
    CHECK(rig.get("long.WAV").recording.content == content);
    CHECK(rig.client.calls("long.WAV") == 1);
}

TEST_CASE("a transfer cut after 40% is retried and continues for its readers", "[core][progressive][fetcher]") {
    Rig rig;
    const auto bytes = riff_of(100000);
    rig.client.script("cut.WAV", {FakeReply::cut(bytes, 40000), FakeReply::ok(bytes)});
    rig.client.hold_after_first_chunk();
    auto early = rig.fetcher->get("cut.WAV", nullptr, core::Fetcher::Until::answered);
    REQUIRE(early.error == 0);
    const auto content = early.recording.content;
    Answer reader;
    REQUIRE(content->when_ready(90000, reader.ready()) != 0);
    rig.client.release();
    CHECK(reader.wait() == 0);
    auto whole = rig.get("cut.WAV");
    REQUIRE(whole.error == 0);
    CHECK(whole.recording.content == content);
    CHECK(read_all(*content) == bytes);
    CHECK(rig.client.calls("cut.WAV") == 2);
    CHECK(rig.stats.retries == 1);
}

TEST_CASE("a transfer cut on every try gives EIO past the cut, caches nothing, and recovers",
          "[core][progressive][fetcher]") {
    Rig rig;  // 3 retries
    const auto bytes = riff_of(100000);
    rig.client.script("flaky.WAV", {FakeReply::cut(bytes, 40000)});
    rig.client.hold_after_first_chunk();
    auto early = rig.fetcher->get("flaky.WAV", nullptr, core::Fetcher::Until::answered);
    REQUIRE(early.error == 0);
    const auto content = early.recording.content;
    Answer before_cut, past_cut;
    content->when_ready(30000, before_cut.ready());
    REQUIRE(content->when_ready(60000, past_cut.ready()) != 0);
    rig.client.release();
    CHECK(before_cut.wait() == 0);
    CHECK(past_cut.wait() == EIO);
    CHECK(content->failed());
    CHECK(rig.client.calls("flaky.WAV") == 4);  // the call and its 3 retries
    // Not cached: the next fetch asks again, and once the fault is gone it is whole.
    REQUIRE(eventually_idle(rig));
    rig.client.script("flaky.WAV", {FakeReply::ok(bytes)});
    auto again = rig.get("flaky.WAV");
    REQUIRE(again.error == 0);
    CHECK(again.recording.content != content);
    CHECK(read_all(*again.recording.content) == bytes);
    CHECK(rig.client.calls("flaky.WAV") == 5);
}

TEST_CASE("a lookup is answered with the announced size, and reads wait only for their range",
          "[core][progressive][fs]") {
    Rig rig;
    core::Filesystem fs(*rig.fetcher, *rig.cache, rig.stats, rig.clock, core::Ownership{});
    const auto bytes = riff_of(300000);
    rig.client.script("talk.WAV", {FakeReply::ok(bytes)});
    rig.client.hold_after_first_chunk();
    auto p = std::make_shared<std::promise<core::EntryAnswer>>();
    fs.lookup(core::root_ino, "talk.WAV", 7, [p](const core::EntryAnswer& a) {
        p->set_value(a);
        return true;
    });
    const auto e = p->get_future().get();
    REQUIRE(e.error == 0);
    CHECK(e.attr.st_size == 300000);
    auto o = std::make_shared<std::promise<core::OpenAnswer>>();
    fs.open(e.ino, O_RDONLY, [o](core::OpenAnswer&& a) {
        o->set_value(std::move(a));
        return true;
    });
    auto opened = o->get_future().get();
    REQUIRE(opened.error == 0);
    const auto content = opened.recording.content;
    CHECK_FALSE(content->complete());

    Answer head, tail, interrupted;
    CHECK(fs.wait_readable(content, 4096, head.ready()) == 0);
    CHECK(head.error == 0);
    const auto tail_id = fs.wait_readable(content, 300000, tail.ready());
    const auto gone = fs.wait_readable(content, 250000, interrupted.ready());
    REQUIRE(tail_id != 0);
    REQUIRE(gone != 0);
    CHECK(fs.cancel(gone));  // an interrupt
    CHECK_FALSE(fs.cancel(gone));
    CHECK(rig.stats.waiting_reads == 2);
    rig.client.release();
    CHECK(tail.wait() == 0);
    CHECK_FALSE(interrupted.given());
    CHECK(read_all(*content) == bytes);
    rig.fetcher->shutdown();
}

TEST_CASE("an open after the download its lookup was let into failed fetches again, not ESTALE",
          "[core][progressive][fs]") {
    Rig rig([](core::FetcherConfig& c) { c.retry.retries = 0; });
    core::Filesystem fs(*rig.fetcher, *rig.cache, rig.stats, rig.clock, core::Ownership{});
    // No call time in the name: every download is a new version (its own mtime).
    const auto bytes = riff_of(100000);
    rig.client.script("plain.WAV", {FakeReply::cut(bytes, 40000), FakeReply::ok(bytes)});
    rig.client.hold_after_first_chunk();
    auto p = std::make_shared<std::promise<core::EntryAnswer>>();
    fs.lookup(core::root_ino, "plain.WAV", 7, [p](const core::EntryAnswer& a) {
        p->set_value(a);
        return true;
    });
    const auto e = p->get_future().get();
    REQUIRE(e.error == 0);
    rig.client.release();
    REQUIRE(eventually_idle(rig));
    rig.clock.advance(1s);  // within the lookup's open window
    auto o = std::make_shared<std::promise<core::OpenAnswer>>();
    fs.open(e.ino, O_RDONLY, [o](core::OpenAnswer&& a) {
        o->set_value(std::move(a));
        return true;
    });
    // Nothing of the failure was kept: the open fetches again, and the same size is
    // the same recording, though this name gives each download its own mtime.
    const auto reopened = o->get_future().get();
    REQUIRE(reopened.error == 0);
    CHECK(rig.client.calls("plain.WAV") == 2);
    Answer whole;
    reopened.recording.content->when_ready(core::Content::whole, whole.ready());
    CHECK(whole.wait() == 0);
    CHECK(read_all(*reopened.recording.content) == bytes);
    // A new lookup sees the new download's version.
    auto again = std::make_shared<std::promise<core::EntryAnswer>>();
    fs.lookup(core::root_ino, "plain.WAV", 7, [again](const core::EntryAnswer& a) {
        again->set_value(a);
        return true;
    });
    const auto e2 = again->get_future().get();
    REQUIRE(e2.error == 0);
    CHECK(e2.ino != e.ino);
    REQUIRE(eventually_idle(rig));
    CHECK(rig.client.calls("plain.WAV") == 2);  // from the cache
    rig.fetcher->shutdown();
}

TEST_CASE("a download whose waiter was interrupted is no orphan once a reader joins it published",
          "[core][progressive][fetcher][review]") {
    Rig rig([](core::FetcherConfig& c) { c.interrupt_grace = 5s; });
    const auto bytes = riff_of(100000);
    rig.client.script("orphan.WAV", {FakeReply::ok(bytes)});
    rig.client.hold();
    rig.client.hold_after_first_chunk();
    api::CancelToken cancel;
    auto first = std::async(std::launch::async, [&] {
        return rig.fetcher->get("orphan.WAV", &cancel, core::Fetcher::Until::answered);
    });
    REQUIRE(rig.client.wait_blocked(1));
    cancel.cancel();  // Ctrl-C before any byte: the job is an orphan for the grace
    CHECK(first.get().error == EINTR);
    rig.client.release_start();  // the header arrives: published, nobody waiting
    for (int i = 0; i < 5000 && rig.stats.early_replies.load() == 0; ++i) std::this_thread::sleep_for(1ms);
    REQUIRE(rig.stats.early_replies.load() == 1);
    // The program's retry joins the published download at once.
    auto again = rig.fetcher->get("orphan.WAV", nullptr, core::Fetcher::Until::answered);
    REQUIRE(again.error == 0);
    const auto content = again.recording.content;
    rig.clock.advance(6s);  // past the grace: it must not be cancelled now
    std::this_thread::sleep_for(50ms);  // the timekeeper looks at the clock each ms
    rig.client.release();
    Answer end;
    content->when_ready(core::Content::whole, end.ready());
    CHECK(end.wait() == 0);
    CHECK(read_all(*content) == bytes);
    CHECK(rig.client.calls("orphan.WAV") == 1);
}

TEST_CASE("a retry of a download nobody read yet starts afresh", "[core][progressive][review]") {
    BuilderRig b;
    auto wrong = bytes_of(3000, 'w');  // no RIFF header: never published
    b.write(wrong, 0, 2000);
    REQUIRE(b.publications == 0);
    b.builder->reset();
    const auto right = bytes_of(3000, 'r');
    b.write(right, 0, right.size());  // different bytes: fine, nobody saw the first
    b.builder->complete();
    auto content = b.builder->take();
    b.builder->finish();
    CHECK(read_all(*content) == right);
}

TEST_CASE("a failed content never reads as complete", "[core][progressive][review]") {
    std::shared_ptr<const core::Content> content;
    {
        BuilderRig b;
        b.write(riff_of(50000), 0, 10000);
        content = b.published;
        REQUIRE(content);
        b.builder->fail();
    }  // the builder's destructor after fail()
    CHECK(content->failed());
    CHECK_FALSE(content->complete());
    CHECK(content->data() == nullptr);
    CHECK(content->fd() == -1);
}

TEST_CASE("a spill to disk that fails leaves no cache file", "[core][progressive][review]") {
    TempDir dir;
    auto memory = std::make_shared<core::ByteBudget>(1 << 20);
    auto disk = std::make_shared<core::ByteBudget>(1000);  // smaller than what must move
    core::BuilderLimits limits{dir.path(), 4096, memory, disk};
    core::ContentBuilder builder(
        limits, [&](std::uint64_t n) { return memory->try_reserve(n); },
        [&](std::uint64_t n) { return disk->try_reserve(n); });
    const auto bytes = bytes_of(8000, 's');  // no RIFF header: memory until 4096
    builder.write({reinterpret_cast<const std::byte*>(bytes.data()), 3000});
    CHECK_THROWS_AS(builder.write({reinterpret_cast<const std::byte*>(bytes.data() + 3000), 3000}),
                    api::ApiError);
    CHECK(dir.file_count() == 0);
    CHECK(disk->used() == 0);
}

TEST_CASE("readdir lists a recording that a lookup answered while it still arrives",
          "[core][progressive][fs]") {
    Rig rig;
    core::Filesystem fs(*rig.fetcher, *rig.cache, rig.stats, rig.clock, core::Ownership{});
    rig.client.script("arriving.WAV", {FakeReply::ok(riff_of(100000))});
    rig.client.hold_after_first_chunk();
    auto p = std::make_shared<std::promise<core::EntryAnswer>>();
    fs.lookup(core::root_ino, "arriving.WAV", 7, [p](const core::EntryAnswer& a) {
        p->set_value(a);
        return true;
    });
    const auto e = p->get_future().get();
    REQUIRE(e.error == 0);
    int error = -1;
    auto listed = fs.readdir(core::root_ino, error);
    REQUIRE(error == 0);
    std::vector<std::string> names;
    for (const auto& d : listed) names.push_back(d.name);
    CHECK(names == std::vector<std::string>{".", "..", "arriving.WAV"});
    CHECK(listed.back().ino == e.ino);
    rig.client.release();
    REQUIRE(eventually_idle(rig));
    names.clear();
    for (const auto& d : fs.readdir(core::root_ino, error)) names.push_back(d.name);
    CHECK(names == std::vector<std::string>{".", "..", "arriving.WAV"});  // once, from the cache
    rig.fetcher->shutdown();
}

TEST_CASE("a full tenant on the retry of a published download keeps its readers",
          "[core][progressive][fetcher][budget]") {
    Rig rig;
    const auto bytes = riff_of(100000);
    const auto busy = FakeReply::fail(EAGAIN, api::ErrorKind::busy);
    rig.client.script("busy.WAV", {FakeReply::cut(bytes, 40000), busy, FakeReply::ok(bytes)});
    rig.client.hold_after_first_chunk();
    auto early = rig.fetcher->get("busy.WAV", nullptr, core::Fetcher::Until::answered);
    REQUIRE(early.error == 0);
    const auto content = early.recording.content;
    Answer before_cut, past_cut;
    content->when_ready(30000, before_cut.ready());
    REQUIRE(content->when_ready(90000, past_cut.ready()) != 0);
    rig.client.release();
    CHECK(before_cut.wait() == 0);
    REQUIRE(eventually([&] { return rig.stats.exceeded_replies == 1; }));
    // The tenant's pause: the readers wait, with the bytes they had.
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(past_cut.given());
    CHECK_FALSE(content->failed());
    CHECK(read_range(*content, 0, 30000) == bytes.substr(0, 30000));
    // A later open joins the same download.
    auto joined = rig.fetcher->get("busy.WAV", nullptr, core::Fetcher::Until::answered);
    REQUIRE(joined.error == 0);
    CHECK(joined.recording.content == content);
    rig.clock.advance(1s);
    CHECK(past_cut.wait() == 0);
    auto whole = rig.get("busy.WAV");
    REQUIRE(whole.error == 0);
    CHECK(whole.recording.content == content);
    CHECK(read_all(*content) == bytes);
    CHECK(rig.client.calls("busy.WAV") == 3);
}

TEST_CASE("readers of a published download get EIO once the tenant stays full for busy_timeout",
          "[core][progressive][fetcher][budget]") {
    Rig rig([](core::FetcherConfig& c) { c.busy_timeout = 10s; });
    const auto bytes = riff_of(100000);
    rig.client.script("full.WAV", {FakeReply::cut(bytes, 40000),
                                   FakeReply::fail(EAGAIN, api::ErrorKind::busy)});
    rig.client.hold_after_first_chunk();
    auto early = rig.fetcher->get("full.WAV", nullptr, core::Fetcher::Until::answered);
    REQUIRE(early.error == 0);
    const auto content = early.recording.content;
    Answer past_cut;
    REQUIRE(content->when_ready(90000, past_cut.ready()) != 0);
    rig.client.release();
    REQUIRE(eventually([&] { return rig.stats.exceeded_replies == 1; }));
    for (int i = 0; i < 9; ++i) {
        rig.clock.advance(1s);
        std::this_thread::sleep_for(3ms);
    }
    CHECK_FALSE(past_cut.given());
    const auto calls_before = rig.client.calls("full.WAV");
    CHECK(calls_before >= 3);  // the cut one, then busy replies, paused each time
    rig.clock.advance(2s);
    CHECK(past_cut.wait() == EIO);
    CHECK(content->failed());
    // Nothing cached; once the tenant has room, a new open downloads afresh.
    REQUIRE(eventually_idle(rig));
    rig.client.script("full.WAV", {FakeReply::ok(bytes)});
    rig.clock.advance(10s);  // past the mount's pause after the last busy reply
    auto again = rig.get("full.WAV");
    REQUIRE(again.error == 0);
    CHECK(again.recording.content != content);
    CHECK(read_all(*again.recording.content) == bytes);
}
