#include "euphoria/fuse/backing_files.hpp"

#include <linux/capability.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "euphoria/api/error.hpp"
#include "euphoria/fuse/kernel_abi.hpp"

namespace euphoria::fuse {

bool may_register_backing_files() noexcept {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
    if (::syscall(SYS_capget, &header, data) != 0) return false;
    return (data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN)) != 0;
}

std::uint32_t backing_stack_depth(const std::string& dir) noexcept {
    struct statfs fs {};
    if (::statfs(dir.c_str(), &fs) != 0) return 1;
    return fs.f_type == OVERLAYFS_SUPER_MAGIC || fs.f_type == ECRYPTFS_SUPER_MAGIC
               ? abi::max_stack_depth
               : 1;
}

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

int BackingFiles::acquire(BackingDevice& device, Ino ino,
                          const std::shared_ptr<const core::Content>& content) {
    const int content_fd = content ? content->fd() : -1;
    std::unique_lock lock(mutex_);
    auto& inode = inodes_[ino];
    if (inode.opens > 0) {
        ++inode.opens;
        return inode.backing_id;
    }
    inode.opens = 1;
    inode.backing_id = 0;
    if (content_fd < 0 || disabled_) return 0;
    const int id = device.open_backing(content_fd);
    if (id > 0) {
        inode.backing_id = id;
        inode.registered = content;
        return id;
    }
    // EPERM: not CAP_SYS_ADMIN. ELOOP: the cache folder is stacked too deep.
    // Neither changes while mounted, so stop asking. Anything else (EMFILE) may pass.
    const int err = -id;
    const bool for_good =
        err == EPERM || err == ELOOP || err == EOPNOTSUPP || err == ENOTTY || err == EINVAL;
    if (for_good) {
        disabled_ = true;
        stats_.passthrough.store(0);
    }
    lock.unlock();
    try {
        if (for_good) {
            log_.log(core::LogLevel::warning, "FUSE passthrough unavailable (" +
                                                  api::describe_errno(err) +
                                                  "); reads go through the daemon");
        } else {
            log_.log(core::LogLevel::debug,
                     "FUSE passthrough refused for one open: " + api::describe_errno(err));
        }
    } catch (...) {
        // The open is counted: it must not fail for want of a log line.
    }
    return 0;
}

void BackingFiles::release(BackingDevice& device, Ino ino, int backing_id) noexcept {
    std::lock_guard lock(mutex_);
    const auto it = inodes_.find(ino);
    if (it == inodes_.end() || it->second.backing_id != backing_id) return;
    if (--it->second.opens > 0) return;
    // Only now: the kernel looks the id up while it handles our open reply, so an
    // id closed as soon as the reply is written can fail that open with EIO.
    if (backing_id > 0) device.close_backing(backing_id);
    inodes_.erase(it);
}

std::size_t BackingFiles::inodes_open() const {
    std::lock_guard lock(mutex_);
    return inodes_.size();
}

}  // namespace euphoria::fuse
