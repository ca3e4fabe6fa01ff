#include "invalidator.hpp"

#include <fuse3/fuse_lowlevel.h>

#include <vector>

namespace euphoria::fuse {

Invalidator::Invalidator(fuse_session* session) : session_(session), thread_([this] { run(); }) {}

Invalidator::~Invalidator() { stop(); }

void Invalidator::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void Invalidator::invalidate(std::uint64_t ino) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        queue_.insert(ino);
    }
    wake_.notify_one();
}

void Invalidator::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        std::vector<std::uint64_t> batch(queue_.begin(), queue_.end());
        queue_.clear();
        lock.unlock();
        // A negative offset: the attributes only. ENOENT only says the kernel has
        // forgotten the inode: nothing to drop.
        for (const auto ino : batch) fuse_lowlevel_notify_inval_inode(session_, ino, -1, 0);
        lock.lock();
    }
}

}  // namespace euphoria::fuse
