#include "euphoria/fuse/inode_table.hpp"

namespace euphoria::fuse {

Ino InodeTable::acquire(const std::string& name, bool lookup) {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = by_name_.try_emplace(name, next_);
    if (inserted) nodes_.emplace(next_++, Node{name, 0, {}});
    if (lookup) ++nodes_.at(it->second).lookups;
    return it->second;
}

std::optional<std::string> InodeTable::name_of(Ino ino) const {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return std::nullopt;
    return it->second.name;
}

void InodeTable::forget(Ino ino, std::uint64_t count) {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;
    auto& node = it->second;
    node.lookups = count >= node.lookups ? 0 : node.lookups - count;
    // Inodes readdir handed out without a lookup stay; they cost a few bytes each and
    // the kernel may still look them up by number.
    if (node.lookups == 0 && count > 0) {
        by_name_.erase(node.name);
        nodes_.erase(it);
    }
}

bool InodeTable::same_as_last_served(Ino ino, const std::shared_ptr<const core::Content>& content) {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return false;
    const bool same = it->second.served.lock() == content;
    it->second.served = content;
    return same;
}

std::size_t InodeTable::size() const {
    std::lock_guard lock(mutex_);
    return nodes_.size();
}

}  // namespace euphoria::fuse
