#include "euphoria/fuse/filesystem.hpp"

#include <fcntl.h>

#include <cerrno>

namespace euphoria::fuse {

namespace {

timespec to_timespec(std::chrono::system_clock::time_point t) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns.count() / 1000000000);
    ts.tv_nsec = static_cast<long>(ns.count() % 1000000000);
    return ts;
}

}  // namespace

Filesystem::Filesystem(core::Fetcher& fetcher, core::ContentCache& cache, core::Stats& stats,
                       core::Clock& clock, Ownership owner)
    : fetcher_(fetcher), cache_(cache), stats_(stats), clock_(clock), owner_(owner),
      mounted_at_(clock.wall_now()) {}

double Filesystem::seconds_left(core::Clock::time_point until) {
    const auto left = until - clock_.now();
    return left.count() <= 0 ? 0.0 : std::chrono::duration<double>(left).count();
}

struct stat Filesystem::root_attr() const {
    struct stat st {};
    st.st_ino = root_ino;
    st.st_mode = S_IFDIR | (0555 & ~owner_.umask);
    st.st_nlink = 2;
    st.st_uid = owner_.uid;
    st.st_gid = owner_.gid;
    st.st_atim = st.st_mtim = st.st_ctim = to_timespec(mounted_at_);
    st.st_blksize = 1 << 20;
    return st;
}

struct stat Filesystem::file_attr(Ino ino, const InodeInfo& info) const {
    struct stat st {};
    st.st_ino = ino;
    st.st_mode = S_IFREG | (0444 & ~owner_.umask);
    st.st_nlink = 1;
    st.st_uid = owner_.uid;
    st.st_gid = owner_.gid;
    st.st_size = static_cast<off_t>(info.size);
    st.st_blocks = (st.st_size + 511) / 512;
    st.st_blksize = 1 << 20;
    st.st_atim = st.st_mtim = st.st_ctim = to_timespec(info.mtime);
    return st;
}

EntryAnswer Filesystem::do_lookup(Ino parent, const std::string& name, api::CancelToken* cancel) {
    EntryAnswer a;
    if (parent != root_ino) {
        a.error = ENOENT;
        return a;
    }
    auto r = fetcher_.get(name, cancel);
    if (r.error == ENOENT) {
        // A negative entry: the kernel answers repeats itself until the TTL ends.
        a.timeout = seconds_left(r.negative_until);
        return a;
    }
    if (r.error) {
        a.error = r.error;
        return a;
    }
    a.ino = inodes_.acquire(name, r.recording, true);
    a.attr = file_attr(a.ino, InodeInfo{name, r.recording.content->size(), r.recording.mtime,
                                        r.recording.expires_at});
    // Never longer than the data may be cached: the kernel asks again after that.
    a.timeout = seconds_left(r.recording.expires_at);
    return a;
}

EntryAnswer Filesystem::do_getattr(Ino ino) {
    EntryAnswer a;
    a.ino = ino;
    if (ino == root_ino) {
        a.attr = root_attr();
        a.timeout = 1.0;
        return a;
    }
    auto info = inodes_.find(ino);
    if (!info) {
        a.error = ENOENT;
        return a;
    }
    a.attr = file_attr(ino, *info);
    a.timeout = seconds_left(info->expires_at);
    return a;
}

OpenAnswer Filesystem::do_open(Ino ino, int flags, api::CancelToken* cancel) {
    OpenAnswer a;
    if (ino == root_ino) {
        a.error = EISDIR;
        return a;
    }
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND))) {
        a.error = EROFS;
        return a;
    }
    auto info = inodes_.find(ino);
    if (!info) {
        a.error = ENOENT;
        return a;
    }
    // Through the cache: an expired entry is fetched again here.
    auto r = fetcher_.get(info->name, cancel);
    if (r.error) {
        a.error = r.error;
        return a;
    }
    if (r.recording.content->size() != info->size || r.recording.mtime != info->mtime) {
        // A new version under this inode's name: ESTALE makes the kernel look the
        // name up again, which gives the new version its own inode.
        a.error = ESTALE;
        return a;
    }
    a.recording = r.recording;
    a.keep_cache = inodes_.same_as_last_served(ino, a.recording.content);
    return a;
}

std::vector<DirEntry> Filesystem::do_readdir(Ino ino, int& error) {
    std::vector<DirEntry> out;
    if (ino != root_ino) {
        error = ENOTDIR;
        return out;
    }
    error = 0;
    out.push_back({".", root_ino, S_IFDIR});
    out.push_back({"..", root_ino, S_IFDIR});
    for (auto& [name, rec] : cache_.list(clock_.now())) {
        out.push_back({name, inodes_.acquire(name, rec, false), S_IFREG});
    }
    return out;
}

std::string Filesystem::do_getxattr(Ino ino, const std::string& name, int& error) {
    error = 0;
    if (ino == root_ino && name.rfind(xattr_prefix, 0) == 0) {
        const auto key = name.substr(std::char_traits<char>::length(xattr_prefix));
        for (const auto& [k, v] : stats_.snapshot()) {
            if (k == key) return std::to_string(v);
        }
    }
    error = ENODATA;
    return {};
}

std::string Filesystem::do_listxattr(Ino ino) {
    std::string list;
    if (ino != root_ino) return list;
    for (const auto& [k, v] : stats_.snapshot()) {
        list += xattr_prefix;
        list += k;
        list.push_back('\0');
    }
    return list;
}

}  // namespace euphoria::fuse
