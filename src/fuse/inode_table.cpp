#include "euphoria/fuse/inode_table.hpp"

namespace euphoria::fuse {

Ino InodeTable::acquire(const std::string& name, const core::CachedRecording& recording,
                        bool lookup) {
    std::lock_guard lock(mutex_);
    const auto size = recording.content->size();
    auto current = by_name_.find(name);
    Node* node = nullptr;
    if (current != by_name_.end()) {
        node = &nodes_.at(current->second);
        if (node->info.size != size || node->info.mtime != recording.mtime) node = nullptr;
    }
    Ino ino = 0;
    if (node) {
        ino = current->second;
    } else {
        ino = next_++;
        node = &nodes_[ino];
        node->info.name = name;
        node->info.size = size;
        node->info.mtime = recording.mtime;
        by_name_[name] = ino;
    }
    node->info.expires_at = recording.expires_at;
    if (lookup) ++node->lookups;
    return ino;
}

std::optional<InodeInfo> InodeTable::find(Ino ino) const {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return std::nullopt;
    return it->second.info;
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
        if (auto cur = by_name_.find(node.info.name); cur != by_name_.end() && cur->second == ino) {
            by_name_.erase(cur);
        }
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
