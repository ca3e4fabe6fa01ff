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
#include <vector>
#include <sys/types.h>
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
    // A day listing gave it out: its size is the listing's FileSize until a
    // download says otherwise (the download wins).
    bool listed = false;
};

class InodeTable {
public:
    // How long the recording a lookup answered stays pinned for what follows it in
    // the same program: `cp` is a stat, then an open whose path walk looks the name
    // up again, then an fstat and reads. With cache_ttl=0 the cache keeps nothing,
    // and fetching again would cost a call and, for a name without a call time, a
    // new version: cp would see the file "replaced while being copied".
    static constexpr std::chrono::seconds open_window{2};

    // How a lookup's answer is pinned. `strong` only for a recording the cache did
    // not keep (cache_ttl=0): otherwise the cache's reference is the one that counts,
    // and a pin must not keep an expired cache file open.
    enum class Pin { none, weak, strong };
    // Inodes that readdir handed out and no lookup took, kept at most: the kernel
    // never uses them, so they are dropped oldest first.
    static constexpr std::size_t max_unreferenced = 4096;

    // The inode for this version of `name`. `lookup` counts a kernel reference,
    // which forget() later returns. `pin` pins `recording` for open_window from
    // `now`, for program `pid`.
    Ino acquire(const std::string& name, const CachedRecording& recording, bool lookup,
                Clock::time_point now, Pin pin = Pin::none, pid_t pid = 0);
    // The same for a file a day listing names: its size and call time come from the
    // listing, with no download. The same version as a download's inode when both
    // agree, so one recording read by either path has one inode.
    Ino acquire_listed(const std::string& name, std::uint64_t size,
                       std::chrono::system_clock::time_point mtime, Clock::time_point expires_at,
                       bool lookup, Clock::time_point now);
    std::optional<InodeInfo> find(Ino ino) const;
    // The recording pinned for the inode, if still alive and pinned less than
    // open_window before `now`.
    std::optional<CachedRecording> recent(Ino ino, Clock::time_point now);
    // The same for the current version of `name`, only for the program it was
    // pinned for: another program's lookup is a later lookup, and asks again.
    std::optional<CachedRecording> recent_for(const std::string& name, pid_t pid,
                                              Clock::time_point now);
    void forget(Ino ino, std::uint64_t count, Clock::time_point now);
    // The inode's pin of `content` stops keeping it alive (the cache has it now).
    void weaken_pin(Ino ino, const Content* content);
    // The version of `name` announced at `announced` bytes turned out to have
    // `real`: its inodes keep their numbers with the real size. Returns them. More
    // than one when a lookup saw the real size first and made a new inode.
    std::vector<Ino> resize(const std::string& name, std::uint64_t announced,
                            std::chrono::system_clock::time_point mtime, std::uint64_t real);
    // Drops the pins that ended by `now`. Every call above does it too; this is for
    // a timer, so that an idle mount lets go of them on time.
    void release_pins(Clock::time_point now);

    // Whether `content` is what this inode last served, so the kernel's page cache
    // of it is still right (keep_cache). Records `content` as served.
    bool same_as_last_served(Ino ino, const std::shared_ptr<const Content>& content);

    std::size_t size() const;
    // The kernel's references to `ino` (0 for an unknown one).
    std::uint64_t lookups(Ino ino) const;

private:
    struct Node {
        InodeInfo info;
        std::uint64_t lookups = 0;
        std::weak_ptr<const Content> served;
        // Pinned until recent_until; `strong` holds it, `weak` only watches it.
        std::shared_ptr<const Content> recent_strong;
        std::weak_ptr<const Content> recent_weak;
        Clock::time_point recent_expires{};
        Clock::time_point recent_until{};
        pid_t recent_pid = 0;
        bool forgotten = false;  // no kernel reference left; kept until the pin ends
        // The FileSize a listing gave this version, kept when a download corrects
        // info.size: the next listing of the same wrong size finds the corrected
        // version, so rsync's quick check sees the real size, not the listing's.
        std::optional<std::uint64_t> listed_size;
    };
    std::optional<CachedRecording> pinned(const Node& node, Clock::time_point now) const;
    void erase(Ino ino);                    // requires mutex_
    // A node made without a lookup: queued, and the oldest such past the bound that
    // the kernel never looked up goes.
    void add_unreferenced(Ino ino);         // requires mutex_
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
