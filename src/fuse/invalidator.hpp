#pragma once
// Tells the kernel to drop what it holds of an inode, on a thread of its own.
//
// fuse_lowlevel_notify_inval_inode drops the inode's page cache, and the kernel locks
// each page to do it. A page is locked while the kernel waits for our answer to a
// read of it, and that answer may wait for a download's retry or a pin's release,
// which run on the Fetcher's timekeeping thread. Calling the kernel from that thread
// could therefore wait on itself; here only this thread ever waits. (Only the
// attributes are dropped, which takes no page lock: the pages the kernel holds are
// bytes we served, right whatever the size. The thread stays as a second line.)

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>

struct fuse_session;

namespace euphoria::fuse {

class Invalidator {
public:
    explicit Invalidator(fuse_session* session);
    ~Invalidator();  // stop()s
    // Waits for what it is telling the kernel now, and ends: inodes still queued, or
    // queued later, are left, since the mount is going away. Must come before the
    // session closes its device. Idempotent.
    void stop();
    Invalidator(const Invalidator&) = delete;
    Invalidator& operator=(const Invalidator&) = delete;

    // Queues `ino`; never blocks on the kernel. An inode queued twice is told once.
    void invalidate(std::uint64_t ino);

private:
    void run();

    fuse_session* const session_;
    // Guards queue_ and stopping_. A leaf lock: the kernel is never called under it.
    std::mutex mutex_;
    std::condition_variable wake_;
    std::set<std::uint64_t> queue_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once the members above exist
};

}  // namespace euphoria::fuse
