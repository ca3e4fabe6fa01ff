#pragma once
// What each FUSE request means, computed without touching fuse_req_t: the glue in
// session.cpp decodes arguments, calls one do_* here and replies. Modelled on
// libfuse's passthrough_hp.cc, which splits do_lookup from sfs_lookup the same way.

#include <sys/stat.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "euphoria/core/fetcher.hpp"
#include "euphoria/fuse/inode_table.hpp"

namespace euphoria::fuse {

struct Ownership {
    uid_t uid = 0;
    gid_t gid = 0;
    mode_t umask = 0;
};

struct EntryAnswer {
    int error = 0;
    Ino ino = 0;  // 0 with ENOENT: a negative entry the kernel may keep
    struct stat attr {};
    double timeout = 0;  // entry and attribute timeout, seconds
};

struct OpenAnswer {
    int error = 0;
    core::CachedRecording recording;  // what the handle pins until release
    bool keep_cache = false;
};

struct DirEntry {
    std::string name;
    Ino ino;
    mode_t mode;
};

class Filesystem {
public:
    Filesystem(core::Fetcher& fetcher, core::ContentCache& cache, core::Stats& stats,
               core::Clock& clock, Ownership owner);

    EntryAnswer do_lookup(Ino parent, const std::string& name, api::CancelToken* cancel);
    // Never calls upstream: an inode's attributes are those of the version it stands
    // for. A player calling fstat on a file it holds past the TTL costs nothing.
    EntryAnswer do_getattr(Ino ino);
    OpenAnswer do_open(Ino ino, int flags, api::CancelToken* cancel);
    void do_forget(Ino ino, std::uint64_t count) { inodes_.forget(ino, count); }
    std::vector<DirEntry> do_readdir(Ino ino, int& error);
    // Root xattrs: the counters. Returns the value, or sets error (ENODATA...).
    std::string do_getxattr(Ino ino, const std::string& name, int& error);
    std::string do_listxattr(Ino ino);

    static constexpr const char* xattr_prefix = "user.euphoria.";

private:
    struct stat root_attr() const;
    struct stat file_attr(Ino ino, const InodeInfo& info) const;
    double seconds_left(core::Clock::time_point until);

    core::Fetcher& fetcher_;
    core::ContentCache& cache_;
    core::Stats& stats_;
    core::Clock& clock_;
    const Ownership owner_;
    const std::chrono::system_clock::time_point mounted_at_;
    InodeTable inodes_;
};

}  // namespace euphoria::fuse
