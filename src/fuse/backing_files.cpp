#include "euphoria/fuse/backing_files.hpp"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "euphoria/api/error.hpp"
#include "euphoria/fuse/kernel_abi.hpp"

namespace euphoria::fuse {

int FuseDeviceBacking::open_backing(int fd) noexcept {
    abi::BackingMap map{};
    map.fd = fd;
    const int id = ::ioctl(device_fd_, abi::backing_open_ioctl, &map);
    return id > 0 ? id : -errno;
}

void FuseDeviceBacking::close_backing(int backing_id) noexcept {
    auto id = static_cast<std::uint32_t>(backing_id);
    ::ioctl(device_fd_, abi::backing_close_ioctl, &id);
}

int BackingFiles::acquire(Ino ino, int content_fd) {
    std::lock_guard lock(mutex_);
    auto& inode = inodes_[ino];
    if (inode.opens > 0) {
        ++inode.opens;
        return inode.backing_id;
    }
    inode.opens = 1;
    inode.backing_id = 0;
    if (content_fd < 0 || disabled_) return 0;
    const int id = device_.open_backing(content_fd);
    if (id > 0) {
        inode.backing_id = id;
        return id;
    }
    // EPERM: not CAP_SYS_ADMIN. ELOOP: the cache folder is stacked too deep.
    // Neither changes while mounted, so stop asking. Anything else (EMFILE) may pass.
    const int err = -id;
    if (err == EPERM || err == ELOOP || err == EOPNOTSUPP || err == ENOTTY || err == EINVAL) {
        disabled_ = true;
        log_.log(core::LogLevel::warning,
                 "FUSE passthrough unavailable (" + api::describe_errno(err) +
                     "); reads go through the daemon");
    } else {
        log_.log(core::LogLevel::debug,
                 "FUSE passthrough refused for one open: " + api::describe_errno(err));
    }
    return 0;
}

void BackingFiles::release(Ino ino, int backing_id) noexcept {
    std::lock_guard lock(mutex_);
    const auto it = inodes_.find(ino);
    if (it == inodes_.end() || it->second.backing_id != backing_id) return;
    if (--it->second.opens > 0) return;
    // Only now: the kernel looks the id up while it handles our open reply, so an
    // id closed as soon as the reply is written can fail that open with EIO.
    if (backing_id > 0) device_.close_backing(backing_id);
    inodes_.erase(it);
}

std::size_t BackingFiles::inodes_open() const {
    std::lock_guard lock(mutex_);
    return inodes_.size();
}

}  // namespace euphoria::fuse
