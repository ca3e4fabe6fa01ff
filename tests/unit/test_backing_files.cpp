// FUSE passthrough without a mount: the kernel's one-mode-per-inode rule that
// BackingFiles must follow, whichever way backing files are registered.

#include "catch_compat.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "euphoria/core/content.hpp"
#include "euphoria/fuse/backing_files.hpp"
#include "temp_dir.hpp"

using namespace euphoria;

namespace {

class FakeDevice final : public fuse::BackingDevice {
public:
    int open_backing(int fd) noexcept override {
        opened.fetch_add(1);
        last_fd = fd;
        if (fail_with) return -fail_with;
        const int id = next_id.fetch_add(1);
        live.fetch_add(1);
        return id;
    }
    void close_backing(int) noexcept override {
        closed.fetch_add(1);
        live.fetch_sub(1);
    }
    std::atomic<int> opened{0}, closed{0}, live{0}, next_id{1};
    int last_fd = -1;
    int fail_with = 0;
};

class CapturingLogger final : public core::Logger {
public:
    void log(core::LogLevel level, std::string_view message) override {
        std::lock_guard lock(mutex);
        lines.emplace_back(std::to_string(static_cast<int>(level)) + " " + std::string(message));
    }
    std::mutex mutex;
    std::vector<std::string> lines;
};

// A finished recording of one byte: in a cache file under `dir`, or in memory for
// tag -1. Other tags only say "on disk": each call makes a fresh content.
std::shared_ptr<const core::Content> make_content(const std::string& dir, int tag) {
    core::BuilderLimits limits{dir, tag < 0 ? 1024u : 0u, std::make_shared<core::ByteBudget>(1 << 20),
                               std::make_shared<core::ByteBudget>(1 << 20)};
    core::ContentBuilder builder(
        limits, [&](std::uint64_t n) { return limits.memory_budget->try_reserve(n); },
        [&](std::uint64_t n) { return limits.disk_budget->try_reserve(n); });
    const std::byte one{1};
    builder.write({&one, 1});
    builder.complete();
    return builder.take();
}

// A BackingFiles on a fake kernel device, with what it logs and counts.
struct BackingFixture {
    test::TempDir dir;
    std::shared_ptr<const core::Content> content(int tag) const { return make_content(dir.path(), tag); }
    FakeDevice device;
    CapturingLogger log;
    core::Stats stats;
    fuse::BackingFiles files{log, stats};
};

}  // namespace

TEST_CASE_METHOD(BackingFixture, "BackingFiles: an inode's passthrough opens share one backing file") {
    const auto first = content(10);
    REQUIRE(first->fd() >= 0);
    const int a = files.acquire(device, 2, first);
    CHECK(a == 1);
    CHECK(device.last_fd == first->fd());
    // A re-fetch put the same version in a new cache file: it still gets the first.
    CHECK(files.acquire(device, 2, content(11)) == a);
    CHECK(device.opened == 1);
    // Another inode gets its own.
    const int b = files.acquire(device, 3, content(12));
    CHECK(b == 2);
    files.release(device, 2, a);
    CHECK(device.closed == 0);
    files.release(device, 2, a);
    CHECK(device.closed == 1);
    files.release(device, 3, b);
    CHECK(device.live == 0);
    CHECK(files.inodes_open() == 0);
    // All closed: the next open registers afresh.
    CHECK(files.acquire(device, 2, content(13)) == 3);
    files.release(device, 2, 3);
    CHECK(device.live == 0);
}

TEST_CASE_METHOD(BackingFixture, "BackingFiles: an inode with a cached open stays cached until all close") {
    CHECK(files.acquire(device, 2, content(-1)) == 0);  // content in the memory tier
    CHECK(files.acquire(device, 2, content(10)) == 0);  // now on disk, but the kernel forbids mixing
    CHECK(device.opened == 0);
    files.release(device, 2, 0);
    files.release(device, 2, 0);
    CHECK(files.inodes_open() == 0);
    CHECK(files.acquire(device, 2, content(10)) == 1);
    // A memory-tier copy of a passthrough inode follows the inode: same bytes.
    CHECK(files.acquire(device, 2, content(-1)) == 1);
    files.release(device, 2, 1);
    files.release(device, 2, 1);
    CHECK(device.live == 0);
    // A release that does not match what acquire gave is ignored, not miscounted.
    files.release(device, 5, 9);
    CHECK(device.closed == 1);
}

TEST_CASE_METHOD(BackingFixture, "BackingFiles: a kernel refusal falls back to cached opens") {

    SECTION("EPERM (not CAP_SYS_ADMIN) stops asking, with one warning") {
        device.fail_with = EPERM;
        CHECK(files.acquire(device, 2, content(10)) == 0);
        CHECK(files.acquire(device, 3, content(11)) == 0);
        CHECK(device.opened == 1);
        REQUIRE(log.lines.size() == 1);
        CHECK(log.lines[0].find("passthrough unavailable") != std::string::npos);
        CHECK(log.lines[0].find("not permitted") != std::string::npos);
        CHECK(stats.passthrough == 0);
        files.release(device, 2, 0);
        files.release(device, 3, 0);
        CHECK(device.closed == 0);
    }
    SECTION("ELOOP (a cache folder stacked too deep) stops asking too") {
        device.fail_with = ELOOP;
        CHECK(files.acquire(device, 2, content(10)) == 0);
        device.fail_with = 0;
        CHECK(files.acquire(device, 3, content(11)) == 0);
        CHECK(device.opened == 1);
    }
    SECTION("EMFILE is passing: the next inode tries again") {
        stats.passthrough = 1;
        device.fail_with = EMFILE;
        CHECK(files.acquire(device, 2, content(10)) == 0);
        device.fail_with = 0;
        CHECK(files.acquire(device, 3, content(11)) == 1);
        // The refused inode stays cached while its cached open lives.
        CHECK(files.acquire(device, 2, content(12)) == 0);
        CHECK(device.opened == 2);
        CHECK(stats.passthrough == 1);
    }
}

TEST_CASE_METHOD(BackingFixture, "BackingFiles: concurrent opens and closes of one inode never leak or double-close") {
    std::vector<std::thread> threads;
    const auto in_memory = content(-1);
    const auto on_disk = content(10);
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 2000; ++i) {
                const int id = files.acquire(device, 7, (t + i) % 3 == 0 ? in_memory : on_disk);
                files.release(device, 7, id);
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(files.inodes_open() == 0);
    CHECK(device.live == 0);
    CHECK(device.opened == device.closed);
}

TEST_CASE("The stacking depth asked for follows the cache folder's filesystem") {
    // /proc is not stacked; a folder that does not exist gives the safe minimum.
    CHECK(fuse::backing_stack_depth("/proc") == 1);
    CHECK(fuse::backing_stack_depth("/nonexistent/euphoria") == 1);
}

TEST_CASE("CAP_SYS_ADMIN is read as /proc/self/status reports it") {
    std::ifstream status("/proc/self/status");
    std::string line;
    unsigned long long eff = 0;
    while (std::getline(status, line)) {
        if (line.rfind("CapEff:", 0) == 0) eff = std::stoull(line.substr(7), nullptr, 16);
    }
    CHECK(fuse::may_register_backing_files() == ((eff >> 21) & 1));
}

TEST_CASE_METHOD(BackingFixture, "BackingFiles: the registered file stays alive until the last release") {
    auto first = content(10);
    std::weak_ptr<const core::Content> watch = first;
    const int id = files.acquire(device, 2, first);
    REQUIRE(id > 0);
    // A re-fetch of the same version: the second open shares the first's backing id.
    CHECK(files.acquire(device, 2, content(11)) == id);
    first.reset();  // the first handle's own reference, and the cache's, are gone
    CHECK_FALSE(watch.expired());  // the kernel still reads it through the id
    files.release(device, 2, id);
    CHECK_FALSE(watch.expired());
    files.release(device, 2, id);
    CHECK(watch.expired());
    CHECK(device.live == 0);
}
