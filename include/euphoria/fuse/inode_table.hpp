#pragma once
// Names <-> inode numbers, with the kernel's lookup counts. The root is inode 1.
//
// An inode stands for one version of a recording: when a name comes back with a
// different size or call time, it gets a new inode. Open handles keep the old one,
// whose attributes stay as they were, so the kernel never cuts a reader short.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "euphoria/core/cache.hpp"

namespace euphoria::fuse {

using Ino = std::uint64_t;
inline constexpr Ino root_ino = 1;

struct InodeInfo {
    std::string name;
    std::uint64_t size = 0;
    std::chrono::system_clock::time_point mtime{};
    core::Clock::time_point expires_at{};  // of the recording last seen for it
};

class InodeTable {
public:
    // The inode for this version of `name`. `lookup` counts a kernel reference,
    // which forget() later returns.
    Ino acquire(const std::string& name, const core::CachedRecording& recording, bool lookup);
    std::optional<InodeInfo> find(Ino ino) const;
    void forget(Ino ino, std::uint64_t count);

    // Whether `content` is what this inode last served, so the kernel's page cache
    // of it is still right (keep_cache). Records `content` as served.
    bool same_as_last_served(Ino ino, const std::shared_ptr<const core::Content>& content);

    std::size_t size() const;

private:
    struct Node {
        InodeInfo info;
        std::uint64_t lookups = 0;
        std::weak_ptr<const core::Content> served;
    };
    // Guards everything below. Leaf lock.
    mutable std::mutex mutex_;
    std::unordered_map<Ino, Node> nodes_;
    std::unordered_map<std::string, Ino> by_name_;  // the current version of each name
    Ino next_ = root_ino + 1;
};

}  // namespace euphoria::fuse
