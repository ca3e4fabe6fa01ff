// The pcm/ view's core (issue 15): PcmViews over originals built byte by byte, with a
// manual executor, so every step of a decode happens when the test says; and the
// Filesystem's pcm/ tree over the fake client.

#include "catch_compat.hpp"

#include <fcntl.h>

#include <algorithm>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "euphoria/core/filesystem.hpp"
#include "euphoria/core/pcm_view.hpp"
#include "fetcher_rig.hpp"
#include "wav_testing.hpp"

using namespace euphoria;
using namespace euphoria::test;

namespace {

// Runs posted tasks only when told: the test sees every state between two steps.
class ManualExecutor {
public:
    core::Executor executor() {
        return [this](std::function<void()> task) {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(task));
        };
    }
    // Runs tasks, and those they post, until none is left; returns how many ran.
    std::size_t run() {
        std::size_t n = 0;
        for (;;) {
            std::function<void()> task;
            {
                std::lock_guard lock(mutex_);
                if (tasks_.empty()) return n;
                task = std::move(tasks_.front());
                tasks_.pop_front();
            }
            task();
            ++n;
        }
    }
    std::size_t pending() {
        std::lock_guard lock(mutex_);
        return tasks_.size();
    }

private:
    std::mutex mutex_;
    std::deque<std::function<void()>> tasks_;
};

// A G.711 or 16-bit PCM original of `data` bytes, a LIST chunk after its data.
Bytes g711(std::uint16_t format, std::size_t data, std::uint16_t channels = 1, std::uint16_t bits = 8) {
    Bytes samples(data);
    for (std::size_t i = 0; i < data; ++i) samples[i] = static_cast<std::byte>((i * 37 + 11) & 0xFFU);
    WavBuilder w;
    // IMA ADPCM's 4-bit samples come in 256-byte blocks.
    const auto align = static_cast<std::uint16_t>(bits >= 8 ? channels * bits / 8 : 256);
    w.riff(static_cast<std::uint32_t>(4 + 24 + 8 + data + (data & 1) + 8 + 4))
        .fmt(format, channels, 8000, align, bits)
        .chunk("data", static_cast<std::uint32_t>(data))
        .append(as_span(samples));
    if (data & 1) w.fill(1, 0);
    w.chunk("LIST", 4).tag("INFO");
    return w.bytes();
}

// What the decoder library makes of a whole original: the view's expected bytes.
std::string expected_view(const Bytes& original) {
    const auto p = core::probe_pcm_view(as_span(original), original.size());
    REQUIRE(p.status == core::PcmStatus::ok);
    std::string out;
    core::PcmDecoder d(p.layout);
    d.feed(as_span(original), [&out](std::span<const std::byte> b) {
        out.append(reinterpret_cast<const char*>(b.data()), b.size());
    });
    REQUIRE(out.size() == p.layout.output_size);
    return out;
}

std::string bytes_of_content(const core::Content& c) {
    std::string out(c.size(), '\0');
    REQUIRE(c.read(out.data(), out.size(), 0) == static_cast<long>(c.size()));
    return out;
}

struct ViewRig {
    TempDir dir;
    FakeClock clock;
    core::NullLogger logger;
    std::shared_ptr<core::ByteBudget> memory = std::make_shared<core::ByteBudget>(4 << 20);
    std::shared_ptr<core::ByteBudget> disk = std::make_shared<core::ByteBudget>(16 << 20);
    core::ContentCache cache{core::CacheLimits{}, memory, disk};
    core::BuilderLimits limits;
    ManualExecutor exec;
    std::optional<core::PcmViews> views;

    explicit ViewRig(std::uint64_t memory_max = 1 << 20) {
        limits = {dir.path(), memory_max, memory, disk};
        views.emplace(cache, clock, logger, limits, exec.executor());
    }
    ~ViewRig() { views->shutdown(); }
    ViewRig(const ViewRig&) = delete;
    ViewRig& operator=(const ViewRig&) = delete;
};

// An original as a download grows it: written piece by piece, readable meanwhile.
struct Original {
    ViewRig& rig;
    std::shared_ptr<const core::Content> content;
    core::ContentBuilder builder;
    Bytes bytes;
    std::size_t written = 0;

    Original(ViewRig& r, Bytes b)
        : rig(r),
          builder(r.limits, [&r](std::uint64_t n) { return r.cache.reserve_memory(n); },
                  [&r](std::uint64_t n) { return r.cache.reserve_disk(n); },
                  [this](std::shared_ptr<const core::Content> c) { content = std::move(c); }),
          bytes(std::move(b)) {}
    void write_to(std::size_t end) {
        builder.write(std::span<const std::byte>(bytes).subspan(written, end - written));
        written = end;
    }
    void complete() {
        write_to(bytes.size());
        builder.complete();
        content = builder.take();
        builder.finish();
    }
    core::CachedRecording recording() const {
        return {content, rig.clock.now() + 30s, std::chrono::system_clock::from_time_t(1600000000)};
    }
};

struct Asked {
    std::shared_ptr<std::optional<core::PcmViewAnswer>> answer =
        std::make_shared<std::optional<core::PcmViewAnswer>>();
    core::PcmViews::Done done() {
        return [a = answer](core::PcmViewAnswer v) { *a = std::move(v); };
    }
    bool answered() const { return answer->has_value(); }
    const core::PcmViewAnswer& get() const { return **answer; }
};

}  // namespace

TEST_CASE("pcm view: the size comes from the header before any decoding, and readers wait for their range only",
          "[core][pcm]") {
    ViewRig rig;
    const auto bytes = g711(core::wav_format_alaw, 5001);
    const auto expected = expected_view(bytes);
    Original o(rig, bytes);
    o.write_to(20);  // the RIFF size: the download is published
    REQUIRE(o.content);
    Asked asked;
    rig.views->view("a.WAV", o.recording(), asked.done());
    rig.exec.run();
    CHECK_FALSE(asked.answered());  // the fmt chunk has not arrived

    o.write_to(44);  // the data chunk's header: the view's size is known
    CHECK(rig.exec.run() > 0);
    REQUIRE(asked.answered());
    const auto& a = asked.get();
    REQUIRE(a.error == 0);
    CHECK(a.source_format == "alaw");
    const auto view = a.view.content;
    CHECK(view->size() == 44 + 2 * 5001);
    CHECK(view->size() == expected.size());
    CHECK(view->arrived() == 44);  // the header, and no sample yet
    CHECK(a.view.mtime == o.recording().mtime);
    CHECK(a.view.expires_at == o.recording().expires_at);

    // A reader of the first 1000 samples is answered once they are decoded, not later.
    int ready = -1;
    view->when_ready(44 + 2 * 1000, [&ready](int e) { ready = e; });
    o.write_to(44 + 999);
    rig.exec.run();
    CHECK(ready == -1);
    CHECK(view->arrived() == 44 + 2 * 999);
    o.write_to(44 + 1000);
    rig.exec.run();
    CHECK(ready == 0);
    std::string head(2000, '\0');
    CHECK(view->read(head.data(), head.size(), 44) == 2000);
    CHECK(head == expected.substr(44, 2000));

    // All the data, but the original is not complete (its LIST chunk is to come):
    // the view is not complete either, nor cached.
    o.write_to(44 + 5001);
    rig.exec.run();
    CHECK(view->arrived() == view->size());
    CHECK_FALSE(view->complete());
    CHECK(rig.cache.find("pcm/a.WAV", rig.clock.now()).hit == core::ContentCache::Hit::none);
    o.complete();
    rig.exec.run();
    REQUIRE(view->complete());
    CHECK(view->error() == 0);
    CHECK(bytes_of_content(*view) == expected);
    const auto cached = rig.cache.find("pcm/a.WAV", rig.clock.now());
    REQUIRE(cached.hit == core::ContentCache::Hit::memory);
    CHECK(cached.recording.content == view);
    CHECK(rig.views->source_format("a.WAV") == "alaw");
}

TEST_CASE("pcm view: askers of one original share one decode, and later ones get it at once", "[core][pcm]") {
    ViewRig rig;
    const auto bytes = g711(core::wav_format_mulaw, 3000);
    Original o(rig, bytes);
    o.write_to(10);
    Asked first;
    Asked second;
    rig.views->view("u.WAV", o.recording(), first.done());
    rig.views->view("u.WAV", o.recording(), second.done());
    o.write_to(1000);
    rig.exec.run();
    REQUIRE(first.answered());
    REQUIRE(second.answered());
    REQUIRE(first.get().error == 0);
    CHECK(first.get().view.content == second.get().view.content);
    o.complete();
    rig.exec.run();
    REQUIRE(first.get().view.content->complete());
    CHECK(bytes_of_content(*first.get().view.content) == expected_view(bytes));

    // No task at all: the known view.
    Asked third;
    rig.views->view("u.WAV", o.recording(), third.done());
    REQUIRE(third.answered());
    CHECK(rig.exec.pending() == 0);
    CHECK(third.get().view.content == first.get().view.content);

    // Once nobody holds the view (evicted, or never cached with cache_ttl=0), the
    // original's next asker gets a new decode, not an error.
    *first.answer = std::nullopt;
    *second.answer = std::nullopt;
    *third.answer = std::nullopt;
    rig.cache.clear();
    Asked after;
    rig.views->view("u.WAV", o.recording(), after.done());
    rig.exec.run();
    REQUIRE(after.answered());
    REQUIRE(after.get().error == 0);
    REQUIRE(after.get().view.content->complete());
    CHECK(bytes_of_content(*after.get().view.content) == expected_view(bytes));

    // Another version of the original is another view.
    Original o2(rig, g711(core::wav_format_mulaw, 3002));
    o2.complete();
    Asked fourth;
    rig.views->view("u.WAV", o2.recording(), fourth.done());
    CHECK_FALSE(fourth.answered());  // decoded on the executor, never by the asker
    rig.exec.run();
    REQUIRE(fourth.answered());
    REQUIRE(fourth.get().error == 0);
    CHECK(fourth.get().view.content != after.get().view.content);
    CHECK(fourth.get().view.content->size() == 44 + 2 * 3002);
}

TEST_CASE("pcm view: a failed original is EIO in its view, which is not cached", "[core][pcm]") {
    ViewRig rig;
    const auto bytes = g711(core::wav_format_alaw, 4000);
    auto o = std::make_unique<Original>(rig, bytes);
    o->write_to(2000);
    Asked asked;
    rig.views->view("f.WAV", o->recording(), asked.done());
    rig.exec.run();
    REQUIRE(asked.answered());
    REQUIRE(asked.get().error == 0);
    const auto view = asked.get().view.content;
    int ready = -1;
    view->when_ready(core::Content::whole, [&ready](int e) { ready = e; });
    rig.exec.run();
    CHECK(ready == -1);
    o->builder.fail(EIO);
    rig.exec.run();
    CHECK(ready == EIO);
    CHECK(view->error() == EIO);
    CHECK(rig.cache.find("pcm/f.WAV", rig.clock.now()).hit == core::ContentCache::Hit::none);
    o.reset();

    // The next download's view is a fresh decode.
    Original again(rig, bytes);
    again.complete();
    Asked retry;
    rig.views->view("f.WAV", again.recording(), retry.done());
    rig.exec.run();
    REQUIRE(retry.answered());
    REQUIRE(retry.get().error == 0);
    CHECK(retry.get().view.content != view);
    REQUIRE(retry.get().view.content->complete());
    CHECK(bytes_of_content(*retry.get().view.content) == expected_view(bytes));

    // Asked about an original that failed already: EIO at once.
    Original dead(rig, bytes);
    dead.write_to(100);
    dead.builder.fail(EIO);
    Asked late;
    rig.views->view("d.WAV", dead.recording(), late.done());
    REQUIRE(late.answered());
    CHECK(late.get().error == EIO);
}

TEST_CASE("pcm view: other formats are EOPNOTSUPP and malformed originals EIO, never a view", "[core][pcm]") {
    ViewRig rig;
    struct Case {
        const char* name;
        Bytes bytes;
        int error;
    };
    Bytes garbage(200, std::byte{0x41});
    const char riff[] = "RIFF\xC0\0\0\0WAVEjunk";
    for (std::size_t i = 0; i < 16; ++i) garbage[i] = static_cast<std::byte>(riff[i]);
    Bytes cut = g711(core::wav_format_alaw, 100);
    cut.resize(30);
    cut[4] = std::byte{22};  // a RIFF size that matches: the header itself is cut
    cut[5] = cut[6] = cut[7] = std::byte{0};
    std::vector<Case> cases{{"stereo.WAV", g711(core::wav_format_pcm, 400, 2, 16), EOPNOTSUPP},
                            {"adpcm.WAV", g711(0x0011, 400, 1, 4), EOPNOTSUPP},
                            {"garbage.WAV", garbage, EIO},
                            {"cut.WAV", cut, EIO}};
    for (auto& c : cases) {
        SECTION(c.name) {
            Original o(rig, c.bytes);
            o.complete();
            Asked asked;
            rig.views->view(c.name, o.recording(), asked.done());
            rig.exec.run();
            REQUIRE(asked.answered());
            CHECK(asked.get().error == c.error);
            CHECK_FALSE(asked.get().view.content);
            CHECK(rig.cache.find(std::string("pcm/") + c.name, rig.clock.now()).hit == core::ContentCache::Hit::none);
        }
    }
}

TEST_CASE("pcm view: a view past the memory limit is written to the disk tier from its first byte", "[core][pcm]") {
    ViewRig rig(64 << 10);  // larger than 64 KiB goes to disk
    const auto bytes = g711(core::wav_format_mulaw, 40000);  // 40 KB in memory, an 80 KB view
    Original o(rig, bytes);
    o.complete();
    CHECK_FALSE(o.content->on_disk());
    Asked asked;
    // The asker is answered with the size before any sample is decoded, even though
    // the whole original is there.
    std::uint64_t arrived_when_answered = 0;
    rig.views->view("big.WAV", o.recording(), [&arrived_when_answered, a = asked.answer](core::PcmViewAnswer v) {
        if (v.view.content) arrived_when_answered = v.view.content->arrived();
        *a = std::move(v);
    });
    rig.exec.run();
    REQUIRE(asked.answered());
    REQUIRE(asked.get().error == 0);
    const auto& view = asked.get().view.content;
    CHECK(arrived_when_answered == 44);
    REQUIRE(view->complete());
    CHECK(view->on_disk());
    CHECK(rig.memory->used() < 64 << 10);  // the original only, never the view
    CHECK(bytes_of_content(*view) == expected_view(bytes));
    CHECK(rig.cache.find("pcm/big.WAV", rig.clock.now()).hit == core::ContentCache::Hit::disk);
}

namespace {

// The Filesystem with the pcm/ view on a real decode thread, over the fake client.
struct PcmFsRig {
    Rig rig;
    core::TaskThread thread;
    core::PcmViews views{*rig.cache, rig.clock, rig.logger, rig.fetcher->config().builder, thread.executor()};
    core::Filesystem fs{*rig.fetcher, *rig.cache, rig.stats, rig.clock, core::Ownership{}};
    PcmFsRig() { fs.enable_pcm(views); }
    ~PcmFsRig() {
        rig.fetcher->shutdown();
        thread.shutdown();
        views.shutdown();
    }
    PcmFsRig(const PcmFsRig&) = delete;
    PcmFsRig& operator=(const PcmFsRig&) = delete;

    core::EntryAnswer lookup(core::Ino parent, const std::string& name) {
        auto p = std::make_shared<std::promise<core::EntryAnswer>>();
        auto f = p->get_future();
        fs.lookup(parent, name, 100, [p](const core::EntryAnswer& a) {
            p->set_value(a);
            return true;
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
    static int whole(const std::shared_ptr<const core::Content>& c) {
        auto p = std::make_shared<std::promise<int>>();
        auto f = p->get_future();
        c->when_ready(core::Content::whole, [p](int e) { p->set_value(e); });
        return f.get();
    }
};

std::string as_string(const Bytes& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

}  // namespace

TEST_CASE("pcm view through the Filesystem: pcm/NAME and NAME cost one call, with the view's size, mtime and xattr",
          "[core][pcm][fs]") {
    PcmFsRig f;
    const auto bytes = g711(core::wav_format_alaw, 3001);
    const std::string name = "pbx4-1600000000.1-x.WAV";
    f.rig.client.script(name, {FakeReply::ok(as_string(bytes))});
    f.rig.client.script("pbx4-1600000000.1-adpcm.WAV", {FakeReply::ok(as_string(g711(0x0011, 400, 1, 4)))});

    const auto dir = f.lookup(core::root_ino, "pcm");
    REQUIRE(dir.error == 0);
    CHECK(dir.ino == core::Filesystem::pcm_ino);
    CHECK(S_ISDIR(dir.attr.st_mode));
    CHECK(f.fs.getattr(dir.ino).error == 0);

    const auto v = f.lookup(dir.ino, name);
    REQUIRE(v.error == 0);
    CHECK(v.attr.st_size == 44 + 2 * 3001);
    CHECK(v.attr.st_mtime == 1600000000);
    CHECK(f.fs.getattr(v.ino).attr.st_size == v.attr.st_size);
    auto o = f.open(v.ino);
    REQUIRE(o.error == 0);
    REQUIRE(PcmFsRig::whole(o.recording.content) == 0);
    CHECK(read_all(*o.recording.content) == expected_view(bytes));

    const auto orig = f.lookup(core::root_ino, name);
    REQUIRE(orig.error == 0);
    CHECK(orig.ino != v.ino);
    CHECK(orig.attr.st_size == static_cast<off_t>(bytes.size()));
    auto oo = f.open(orig.ino);
    REQUIRE(oo.error == 0);
    CHECK(read_all(*oo.recording.content) == as_string(bytes));
    CHECK(f.rig.client.calls(name) == 1);

    int error = -1;
    CHECK(f.fs.getxattr(v.ino, "user.euphoria.source_format", error) == "alaw");
    CHECK(error == 0);
    CHECK(f.fs.listxattr(v.ino) == std::string("user.euphoria.source_format\0", 28));
    f.fs.getxattr(orig.ino, "user.euphoria.source_format", error);
    CHECK(error == ENODATA);

    // The root lists pcm/, not the cached view; pcm/ lists the recording.
    int derr = -1;
    const auto root = f.fs.readdir(core::root_ino, derr);
    CHECK(std::count_if(root.begin(), root.end(), [](const core::DirEntry& e) { return e.name == "pcm"; }) == 1);
    CHECK(std::none_of(root.begin(), root.end(), [](const core::DirEntry& e) { return e.name.find('/') != std::string::npos; }));

    // A format without a view: the lookup fails, the original does not.
    const auto bad = f.lookup(dir.ino, "pbx4-1600000000.1-adpcm.WAV");
    CHECK(bad.error == EOPNOTSUPP);
    CHECK(f.lookup(core::root_ino, "pbx4-1600000000.1-adpcm.WAV").error == 0);
    CHECK(f.rig.client.calls("pbx4-1600000000.1-adpcm.WAV") == 1);
}

TEST_CASE("pcm view: an original that ends longer than its RIFF header said fails its view", "[core][pcm]") {
    ViewRig rig;
    auto bytes = g711(core::wav_format_alaw, 4000);
    // A RIFF size 1000 bytes short: readers were told the shorter size.
    const auto riff = static_cast<std::uint32_t>(bytes.size() - 8 - 1000);
    for (int i = 0; i < 4; ++i) bytes[4 + i] = static_cast<std::byte>((riff >> (8 * i)) & 0xFFU);
    Original o(rig, bytes);
    o.write_to(100);
    Asked asked;
    rig.views->view("long.WAV", o.recording(), asked.done());
    rig.exec.run();
    REQUIRE(asked.answered());
    REQUIRE(asked.get().error == 0);
    const auto view = asked.get().view.content;
    CHECK(view->size() < 44 + 2 * 4000);  // planned on the announced size
    o.complete();
    rig.exec.run();
    CHECK(o.content->size() == bytes.size());
    CHECK(view->error() == EIO);
    CHECK(rig.cache.find("pcm/long.WAV", rig.clock.now()).hit == core::ContentCache::Hit::none);
    // The next look-up, at the real size, is a whole view.
    Asked again;
    rig.views->view("long.WAV", o.recording(), again.done());
    rig.exec.run();
    REQUIRE(again.answered());
    REQUIRE(again.get().error == 0);
    CHECK(again.get().view.content->size() == 44 + 2 * 4000);
    CHECK(bytes_of_content(*again.get().view.content) == expected_view(bytes));
}
