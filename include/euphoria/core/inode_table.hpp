#pragma once
// Names <-> inode numbers, with the kernel's lookup counts. The root is inode 1.
//
// An inode stands for one version of a recording: when a name comes back with a
// different size or call time, it gets a new inode. Open handles keep the old one,
// whose attributes stay as they were, so the kernel never cuts a reader short.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "euphoria/core/cache.hpp"

namespace euphoria::core {

using Ino = std::uint64_t;
inline constexpr Ino root_ino = 1;

struct InodeInfo {
    std::string name;
    std::uint64_t size = 0;
    std::chrono::system_clock::time_point mtime{};
    Clock::time_point expires_at{};  // of the recording last seen for it
};

class InodeTable {
public:
    // How long the recording a lookup answered stays pinned for the open that
    // follows it. open(2) is a lookup and then an open; with cache_ttl=0, or a TTL
    // that ran out during the download, the cache no longer has the recording when
    // the open comes, and fetching it again would cost a call and, for a name
    // without a call time, a new version and ESTALE.
    static constexpr std::chrono::seconds open_window{2};
    // Inodes that readdir handed out and no lookup took, kept at most: the kernel
    // never uses them, so they are dropped oldest first.
    static constexpr std::size_t max_unreferenced = 4096;

    // The inode for this version of `name`. `lookup` counts a kernel reference,
    // which forget() later returns, and pins `recording` for open_window from `now`.
    Ino acquire(const std::string& name, const CachedRecording& recording, bool lookup,
                Clock::time_point now);
    std::optional<InodeInfo> find(Ino ino) const;
    // The recording the inode's last lookup answered, if that was less than
    // open_window before `now`.
    std::optional<CachedRecording> recent(Ino ino, Clock::time_point now);
    void forget(Ino ino, std::uint64_t count);

    // Whether `content` is what this inode last served, so the kernel's page cache
    // of it is still right (keep_cache). Records `content` as served.
    bool same_as_last_served(Ino ino, const std::shared_ptr<const Content>& content);

    std::size_t size() const;

private:
    struct Node {
        InodeInfo info;
        std::uint64_t lookups = 0;
        std::weak_ptr<const Content> served;
        CachedRecording recent;  // pinned until recent_until
        Clock::time_point recent_until{};
    };
    void erase(Ino ino);                    // requires mutex_
    void unpin_expired(Clock::time_point now);  // requires mutex_

    // Guards everything below. Leaf lock.
    mutable std::mutex mutex_;
    std::unordered_map<Ino, Node> nodes_;
    std::unordered_map<std::string, Ino> by_name_;  // the current version of each name
    std::deque<std::pair<Clock::time_point, Ino>> pins_;  // in pinning order
    std::deque<Ino> unreferenced_;  // made by readdir, oldest first; may be stale
    Ino next_ = root_ino + 1;
};

}  // namespace euphoria::core
