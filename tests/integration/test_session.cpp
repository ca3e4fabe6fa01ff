// The FUSE session's constructor on a real mount: a throw after the mount must leave
// neither the mount nor signal handlers that point at the freed session. Needs root
// and /dev/fuse, as the end-to-end tests do.

#include "catch_compat.hpp"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <string>

#include "euphoria/core/filesystem.hpp"
#include "euphoria/fuse/session.hpp"
#include "fetcher_rig.hpp"

using namespace euphoria;

namespace {

// Whether /proc/self/mountinfo lists `dir` as a mount point (field 5).
bool is_mount_point(const std::string& dir) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        std::size_t pos = 0;
        for (int field = 0; field < 4 && pos != std::string::npos; ++field) pos = line.find(' ', pos + 1);
        if (pos == std::string::npos) continue;
        const auto end = line.find(' ', pos + 1);
        if (line.substr(pos + 1, end - pos - 1) == dir) return true;
    }
    return false;
}

void (*sigterm_handler())(int) {
    struct sigaction now {};
    sigaction(SIGTERM, nullptr, &now);
    return now.sa_handler;
}

// libfuse installs its handlers only over SIG_DFL, and Catch2 has its own: put the
// default back for the test, and Catch2's after.
class DefaultSigterm {
public:
    DefaultSigterm() {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGTERM, &dfl, &saved_);
    }
    ~DefaultSigterm() { sigaction(SIGTERM, &saved_, nullptr); }
    DefaultSigterm(const DefaultSigterm&) = delete;
    DefaultSigterm& operator=(const DefaultSigterm&) = delete;

private:
    struct sigaction saved_ {};
};

}  // namespace

TEST_CASE("a throw after the mount unmounts and restores the signal handlers", "[session]") {
    REQUIRE(::geteuid() == 0);  // mounting needs root, as in CI
    REQUIRE(::access("/dev/fuse", R_OK | W_OK) == 0);
    DefaultSigterm dfl;
    test::Rig rig;
    test::TempDir mountpoint;
    core::Filesystem fs(*rig.fetcher, *rig.cache, rig.stats, rig.clock, core::Ownership{0, 0, 022});
    REQUIRE(sigterm_handler() == SIG_DFL);
    REQUIRE_FALSE(is_mount_point(mountpoint.path()));

    fuse::SessionOptions so;
    so.mountpoint = mountpoint.path();
    so.fsname = "session-test";
    so.passthrough = false;
    bool was_mounted = false;
    bool had_handler = false;
    so.after_mount = [&] {
        was_mounted = is_mount_point(mountpoint.path());
        had_handler = sigterm_handler() != SIG_DFL;
        throw std::runtime_error("injected after the mount");
    };
    REQUIRE_THROWS_WITH(fuse::Session(fs, rig.stats, rig.logger, so), "injected after the mount");
    // The throw came from inside: the mount and the handlers were there.
    CHECK(was_mounted);
    CHECK(had_handler);
    CHECK_FALSE(is_mount_point(mountpoint.path()));
    CHECK(sigterm_handler() == SIG_DFL);
}

TEST_CASE("a session that mounts unmounts when destroyed", "[session]") {
    REQUIRE(::geteuid() == 0);
    DefaultSigterm dfl;
    test::Rig rig;
    test::TempDir mountpoint;
    core::Filesystem fs(*rig.fetcher, *rig.cache, rig.stats, rig.clock, core::Ownership{0, 0, 022});
    fuse::SessionOptions so;
    so.mountpoint = mountpoint.path();
    so.fsname = "session-test";
    so.passthrough = false;
    {
        fuse::Session session(fs, rig.stats, rig.logger, so);
        CHECK(is_mount_point(mountpoint.path()));
        CHECK(sigterm_handler() != SIG_DFL);
    }
    CHECK_FALSE(is_mount_point(mountpoint.path()));
    CHECK(sigterm_handler() == SIG_DFL);
}
