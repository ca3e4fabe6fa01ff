#pragma once
// The libfuse lowlevel session: mounts, runs the multi-threaded loop, unmounts.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "euphoria/core/log.hpp"
#include "euphoria/core/stats.hpp"
#include "euphoria/core/filesystem.hpp"

struct fuse_session;

namespace euphoria::fuse {

struct Glue;         // the callbacks' view of the session (src/fuse/glue.hpp)
class Invalidator;  // src/fuse/invalidator.hpp

struct SessionOptions {
    std::string mountpoint;
    std::string fsname;  // shown by mount(8) and df as the source, e.g. "euphoria:acme"
    bool allow_other = false;
    bool debug = false;
    std::string extra_mount_options;  // ",nosuid,nodev" as passed by mount(8)
    unsigned max_threads = 16;
    // Let the kernel read disk-cached recordings straight from the cache file when it
    // can (Linux 6.9+, CAP_SYS_ADMIN). Off: every read goes through the daemon.
    bool passthrough = true;
    std::string backing_dir;  // the disk cache folder, whose stacking depth counts
    // Runs last in the constructor, with the mount made. A test seam: nothing real
    // fails there, yet the cleanup that a throw from that point needs must be tested.
    std::function<void()> after_mount;
};

class Session {
public:
    // Creates the session and mounts it. Throws std::runtime_error with the reason.
    Session(core::Filesystem& fs, core::Stats& stats, core::Logger& log, SessionOptions options);
    ~Session();  // unmounts
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Serves requests until unmounted or a signal (SIGTERM, SIGINT, SIGHUP) arrives.
    // Returns 0 on a clean end.
    int run();
    // Ends run() from another thread.
    void stop();

private:
    void teardown() noexcept;  // removes the signal handlers, unmounts

    struct SessionDeleter {
        void operator()(fuse_session* se) const noexcept;
    };
    SessionOptions options_;
    // Declared before session_: libfuse uses it until fuse_session_destroy returns.
    std::unique_ptr<Glue> glue_;
    std::unique_ptr<fuse_session, SessionDeleter> session_;
    // Stopped by teardown(), before the unmount.
    std::shared_ptr<Invalidator> invalidator_;
    bool signals_set_ = false;
    bool mounted_ = false;
};

}  // namespace euphoria::fuse
