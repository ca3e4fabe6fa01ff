#pragma once
// Which opens the kernel may serve straight from our disk-cache file (FUSE
// passthrough), bypassing both the daemon and the FUSE page cache.
//
// The kernel's rule for one inode (fs/fuse/iomode.c): its open files are either all
// cached or all passthrough, and the passthrough ones share one backing file.
// Breaking the rule fails open(2) with EIO. One inode here is one version of a
// recording, so every backing file an inode could get holds the same bytes. Each
// open therefore follows the mode of the inode's files already open, and the first
// open decides.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "euphoria/core/content.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/stats.hpp"
#include "euphoria/core/inode_table.hpp"

namespace euphoria::fuse {

using core::Ino;

// The kernel registers backing files only for CAP_SYS_ADMIN. Without it there is no
// point in asking for passthrough at INIT, which would cost the mount its stacking
// depth for nothing.
bool may_register_backing_files() noexcept;

// The FUSE mount's stack depth to ask for at INIT: one more than the depth of the
// filesystem holding `dir`, the cache folder. That is 1 on a plain filesystem, and 2
// (the kernel's maximum) when `dir` is on overlayfs, a container's root. Each level
// taken is one fewer for filesystems stacked on the mount itself.
std::uint32_t backing_stack_depth(const std::string& dir) noexcept;

struct PassthroughWish {
    bool wanted = false;           // the user allows it and we may register backing files
    std::uint32_t stack_depth = 1;  // see backing_stack_depth()
};

// Registers backing files with the kernel: ioctls on /dev/fuse (libfuse 3.14), or
// libfuse's fuse_passthrough_open() for one request (3.16+); faked in tests.
class BackingDevice {
public:
    virtual ~BackingDevice() = default;
    // Returns a backing id > 0, or -errno.
    virtual int open_backing(int fd) noexcept = 0;
    virtual void close_backing(int backing_id) noexcept = 0;
};

// The real one: ioctls on the session's /dev/fuse descriptor (CAP_SYS_ADMIN needed).
class FuseDeviceBacking final : public BackingDevice {
public:
    explicit FuseDeviceBacking(int device_fd) : device_fd_(device_fd) {}
    int open_backing(int fd) noexcept override;
    void close_backing(int backing_id) noexcept override;

private:
    int device_fd_;
};

class BackingFiles {
public:
    // Sets stats.passthrough to 0 if the kernel refuses backing files for good.
    BackingFiles(core::Logger& log, core::Stats& stats) : log_(log), stats_(stats) {}

    // For an open of `ino` whose bytes are `content` (in memory: no backing file).
    // Returns the backing id the open reply must carry, or 0 for a cached open.
    // Every call that returns needs a matching release() with what it returned; a
    // call that throws (bad_alloc) counted nothing.
    //
    // The record keeps the content it registered until the last release: the kernel
    // reads that file through the id, so its bytes must stay counted in the disk
    // budget even when later opens of the inode came from a re-fetch.
    int acquire(BackingDevice& device, Ino ino, const std::shared_ptr<const core::Content>& content);
    void release(BackingDevice& device, Ino ino, int backing_id) noexcept;

    std::size_t inodes_open() const;

private:
    struct Inode {
        int backing_id = 0;  // 0: the open files are cached ones
        unsigned opens = 0;
        std::shared_ptr<const core::Content> registered;  // behind backing_id
    };
    core::Logger& log_;
    core::Stats& stats_;
    // Guards inodes_ and disabled_. Held across the ioctl, so two first opens of one
    // inode cannot register two backing files. A leaf lock.
    mutable std::mutex mutex_;
    std::unordered_map<Ino, Inode> inodes_;
    bool disabled_ = false;  // the kernel said passthrough cannot work here
};

}  // namespace euphoria::fuse
