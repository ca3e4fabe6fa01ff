#include "euphoria/core/inode_table.hpp"

#include <algorithm>

namespace euphoria::core {

Ino InodeTable::acquire(const std::string& name, const CachedRecording& recording, bool lookup,
                        Clock::time_point now, Pin pin, pid_t pid) {
    std::lock_guard lock(mutex_);
    unpin_expired(now);
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
        if (!lookup) add_unreferenced(ino);
    }
    node->info.expires_at = recording.expires_at;
    if (lookup) {
        ++node->lookups;
        node->forgotten = false;
    }
    if (pin != Pin::none) {
        node->recent_strong = pin == Pin::strong ? recording.content : nullptr;
        node->recent_weak = recording.content;
        node->recent_expires = recording.expires_at;
        node->recent_until = now + open_window;
        node->recent_pid = pid;
        pins_.emplace_back(node->recent_until, ino);
    }
    return ino;
}

Ino InodeTable::acquire_listed(const std::string& name, std::uint64_t size,
                               std::chrono::system_clock::time_point mtime,
                               Clock::time_point expires_at, bool lookup, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    unpin_expired(now);
    auto current = by_name_.find(name);
    Ino ino = 0;
    Node* node = nullptr;
    if (current != by_name_.end()) {
        node = &nodes_.at(current->second);
        // A download's size wins over the listing's: the one that corrected the
        // listing before, or a fresh download of the name at the root.
        const bool same_size = node->info.size == size || node->listed_size == size ||
                               (!node->info.listed && node->info.expires_at > now);
        if (!same_size || node->info.mtime != mtime) node = nullptr;
    }
    if (node) {
        ino = current->second;
        // What a download already said stays: the listing's word is older news.
        node->info.expires_at = std::max(node->info.expires_at, expires_at);
    } else {
        ino = next_++;
        node = &nodes_[ino];
        node->info = InodeInfo{name, size, mtime, expires_at, true};
        node->listed_size = size;
        by_name_[name] = ino;
        if (!lookup) add_unreferenced(ino);
    }
    if (lookup) {
        ++node->lookups;
        node->forgotten = false;
    }
    return ino;
}

void InodeTable::add_unreferenced(Ino ino) {
    unreferenced_.push_back(ino);
    while (unreferenced_.size() > max_unreferenced) {
        const Ino old = unreferenced_.front();
        unreferenced_.pop_front();
        if (auto it = nodes_.find(old); it != nodes_.end() && it->second.lookups == 0) erase(old);
    }
}

void InodeTable::unpin_expired(Clock::time_point now) {
    while (!pins_.empty() && pins_.front().first <= now) {
        const Ino ino = pins_.front().second;
        pins_.pop_front();
        if (auto it = nodes_.find(ino); it != nodes_.end() && it->second.recent_until <= now) {
            it->second.recent_strong.reset();
            it->second.recent_weak.reset();
            // Forgotten while pinned: kept only for the pin.
            if (it->second.lookups == 0 && it->second.forgotten) erase(ino);
        }
    }
}

void InodeTable::release_pins(Clock::time_point now) {
    std::lock_guard lock(mutex_);
    unpin_expired(now);
}

std::optional<InodeInfo> InodeTable::find(Ino ino) const {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return std::nullopt;
    return it->second.info;
}

std::optional<CachedRecording> InodeTable::pinned(const Node& node, Clock::time_point now) const {
    if (node.recent_until <= now) return std::nullopt;
    auto content = node.recent_weak.lock();
    if (!content) return std::nullopt;
    return CachedRecording{std::move(content), node.recent_expires, node.info.mtime};
}

std::optional<CachedRecording> InodeTable::recent(Ino ino, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    unpin_expired(now);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return std::nullopt;
    return pinned(it->second, now);
}

std::optional<CachedRecording> InodeTable::recent_for(const std::string& name, pid_t pid,
                                                      Clock::time_point now) {
    std::lock_guard lock(mutex_);
    unpin_expired(now);
    auto cur = by_name_.find(name);
    if (cur == by_name_.end()) return std::nullopt;
    const auto& node = nodes_.at(cur->second);
    if (node.recent_pid != pid) return std::nullopt;
    return pinned(node, now);
}

void InodeTable::erase(Ino ino) {
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;
    if (auto cur = by_name_.find(it->second.info.name); cur != by_name_.end() && cur->second == ino) {
        by_name_.erase(cur);
    }
    nodes_.erase(it);
}

void InodeTable::forget(Ino ino, std::uint64_t count, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    unpin_expired(now);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;
    auto& node = it->second;
    node.lookups = count >= node.lookups ? 0 : node.lookups - count;
    if (node.lookups > 0 || count == 0) return;
    // A revalidating lookup that returns a new inode is dropped by the kernel, which
    // forgets it and looks the name up again at once: that lookup must find the pin.
    if (node.recent_until > now) {
        node.forgotten = true;
        return;
    }
    erase(ino);
}

bool InodeTable::same_as_last_served(Ino ino, const std::shared_ptr<const Content>& content) {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return false;
    const bool same = it->second.served.lock() == content;
    it->second.served = content;
    return same;
}

std::uint64_t InodeTable::lookups(Ino ino) const {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    return it == nodes_.end() ? 0 : it->second.lookups;
}

std::size_t InodeTable::size() const {
    std::lock_guard lock(mutex_);
    return nodes_.size();
}

void InodeTable::weaken_pin(Ino ino, const Content* content) {
    std::shared_ptr<const Content> dropped;  // freed outside mutex_
    std::lock_guard lock(mutex_);
    const auto it = nodes_.find(ino);
    if (it != nodes_.end() && it->second.recent_strong.get() == content) {
        dropped = std::move(it->second.recent_strong);
    }
}

std::vector<Ino> InodeTable::resize(const std::string& name, std::uint64_t announced,
                                    std::chrono::system_clock::time_point mtime, std::uint64_t real) {
    std::vector<Ino> resized;
    std::lock_guard lock(mutex_);
    for (auto& [ino, node] : nodes_) {
        if (node.info.name == name && node.info.size == announced && node.info.mtime == mtime) {
            node.info.size = real;
            resized.push_back(ino);
        }
    }
    return resized;
}

}  // namespace euphoria::core
