#include "euphoria/core/cache.hpp"

#include <algorithm>

namespace euphoria::core {

ContentCache::ContentCache(CacheLimits limits, std::shared_ptr<DiskBudget> disk_budget)
    : limits_(limits), disk_budget_(std::move(disk_budget)) {}

ContentCache::~ContentCache() { clear(); }

std::list<std::string>& ContentCache::lru_for(const Slot& slot) {
    return slot.recording.content->on_disk() ? disk_lru_ : memory_lru_;
}

void ContentCache::erase(Map::iterator it) {
    auto& content = it->second.recording.content;
    if (content->on_disk()) {
        // The name goes now; an open handle keeps reading through its descriptor.
        std::const_pointer_cast<Content>(content)->unlink();
    } else {
        memory_bytes_ -= content->size();
    }
    lru_for(it->second).erase(it->second.lru);
    entries_.erase(it);
}

void ContentCache::purge_expired(Clock::time_point now) {
    for (auto it = entries_.begin(); it != entries_.end();) {
        auto next = std::next(it);
        if (it->second.recording.expires_at <= now) erase(it);
        it = next;
    }
    while (!negative_order_.empty()) {
        auto found = negative_.find(negative_order_.front());
        if (found != negative_.end() && found->second > now) break;
        if (found != negative_.end()) negative_.erase(found);
        negative_order_.pop_front();
    }
}

ContentCache::Found ContentCache::find(const std::string& name, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    purge_expired(now);
    Found found;
    if (auto it = entries_.find(name); it != entries_.end()) {
        auto& lru = lru_for(it->second);
        lru.splice(lru.begin(), lru, it->second.lru);
        found.recording = it->second.recording;
        found.hit = found.recording.content->on_disk() ? Hit::disk : Hit::memory;
    } else if (auto neg = negative_.find(name); neg != negative_.end()) {
        found.hit = Hit::negative;
        found.negative_until = neg->second;
    }
    return found;
}

void ContentCache::insert(const std::string& name, CachedRecording recording,
                          Clock::time_point now) {
    std::lock_guard lock(mutex_);
    purge_expired(now);
    if (recording.expires_at <= now) return;
    if (auto it = entries_.find(name); it != entries_.end()) erase(it);
    negative_.erase(name);
    const bool on_disk = recording.content->on_disk();
    const auto size = recording.content->size();
    if (!on_disk) {
        if (size > limits_.memory_cap) return;
        while (memory_bytes_ + size > limits_.memory_cap && !memory_lru_.empty()) {
            erase(entries_.find(memory_lru_.back()));
        }
        memory_bytes_ += size;
    }
    auto& lru = on_disk ? disk_lru_ : memory_lru_;
    lru.push_front(name);
    entries_.emplace(name, Slot{std::move(recording), lru.begin()});
}

void ContentCache::insert_negative(const std::string& name, Clock::time_point until) {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(name); it != entries_.end()) erase(it);
    // The order list may hold stale duplicates; purge_expired skips them.
    while (negative_.size() >= limits_.negative_cap && !negative_order_.empty()) {
        negative_.erase(negative_order_.front());
        negative_order_.pop_front();
    }
    negative_[name] = until;
    negative_order_.push_back(name);
}

bool ContentCache::reserve_disk(std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    while (!disk_budget_->try_reserve(bytes)) {
        if (disk_lru_.empty()) return false;
        // Pinned files free their space only on the last close, so this may take
        // several evictions, or fail.
        erase(entries_.find(disk_lru_.back()));
    }
    return true;
}

std::vector<std::pair<std::string, CachedRecording>> ContentCache::list(Clock::time_point now) {
    std::lock_guard lock(mutex_);
    purge_expired(now);
    std::vector<std::pair<std::string, CachedRecording>> out;
    out.reserve(entries_.size());
    for (const auto& [name, slot] : entries_) out.emplace_back(name, slot.recording);
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
}

void ContentCache::clear() {
    std::lock_guard lock(mutex_);
    while (!entries_.empty()) erase(entries_.begin());
    negative_.clear();
    negative_order_.clear();
}

std::uint64_t ContentCache::memory_bytes() const {
    std::lock_guard lock(mutex_);
    return memory_bytes_;
}

std::size_t ContentCache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace euphoria::core
