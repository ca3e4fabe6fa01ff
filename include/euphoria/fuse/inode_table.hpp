#pragma once
// Names <-> inode numbers, with the kernel's lookup counts. The root is inode 1.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "euphoria/core/content.hpp"

namespace euphoria::fuse {

using Ino = std::uint64_t;
inline constexpr Ino root_ino = 1;

class InodeTable {
public:
    // The inode for `name`, made on first use. `lookup` counts a kernel reference,
    // which forget() later returns.
    Ino acquire(const std::string& name, bool lookup);
    std::optional<std::string> name_of(Ino ino) const;
    void forget(Ino ino, std::uint64_t count);

    // Whether `content` is what this inode last served, so the kernel's page cache
    // of it is still right (keep_cache). Records `content` as served.
    bool same_as_last_served(Ino ino, const std::shared_ptr<const core::Content>& content);

    std::size_t size() const;

private:
    struct Node {
        std::string name;
        std::uint64_t lookups = 0;
        std::weak_ptr<const core::Content> served;
    };
    // Guards everything below. Leaf lock.
    mutable std::mutex mutex_;
    std::unordered_map<Ino, Node> nodes_;
    std::unordered_map<std::string, Ino> by_name_;
    Ino next_ = root_ino + 1;
};

}  // namespace euphoria::fuse
