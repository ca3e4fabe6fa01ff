#include "euphoria/core/cache.hpp"

#include <algorithm>

namespace euphoria::core {

ContentCache::ContentCache(CacheLimits limits, std::shared_ptr<ByteBudget> memory_budget,
                           std::shared_ptr<ByteBudget> disk_budget)
    : limits_(limits), memory_budget_(std::move(memory_budget)),
      disk_budget_(std::move(disk_budget)) {}

ContentCache::~ContentCache() { clear(); }

std::list<std::string>& ContentCache::lru_for(const Slot& slot) {
    return slot.recording.content->on_disk() ? disk_lru_ : memory_lru_;
}

void ContentCache::erase(Map::iterator it) {
    auto& content = it->second.recording.content;
    if (content->on_disk()) {
        // The name goes now; an open handle keeps reading through its descriptor.
        std::const_pointer_cast<Content>(content)->unlink();
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
        // Expired, or a stale duplicate whose name was erased: either way this
        // front says nothing about the entries behind it.
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
    } else if (auto neg = negative_.find(name); neg != negative_.end() && neg->second > now) {
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
    auto& lru = recording.content->on_disk() ? disk_lru_ : memory_lru_;
    lru.push_front(name);
    entries_.emplace(name, Slot{std::move(recording), lru.begin()});
}

void ContentCache::insert_negative(const std::string& name, Clock::time_point until) {
    std::lock_guard lock(mutex_);
    if (negative_order_.size() >= 2 * limits_.negative_cap) {
        // Only stale duplicates can make the order list outgrow the map: rebuild it.
        std::list<std::string> live;
        for (const auto& n : negative_order_) {
            if (negative_.count(n)) live.push_back(n);
        }
        negative_order_.swap(live);
    }
    if (auto it = entries_.find(name); it != entries_.end()) erase(it);
    // The order list may hold stale duplicates; purge_expired skips them.
    while (negative_.size() >= limits_.negative_cap && !negative_order_.empty()) {
        negative_.erase(negative_order_.front());
        negative_order_.pop_front();
    }
    negative_[name] = until;
    negative_order_.push_back(name);
}

bool ContentCache::reserve(ByteBudget& budget, std::list<std::string>& lru, std::uint64_t bytes) {
    if (budget.try_reserve(bytes)) return true;
    std::lock_guard lock(mutex_);
    // Evicting what open files or downloads still hold frees nothing: if the entries
    // that only the cache holds cannot make room, keep them all.
    std::uint64_t freeable = 0;
    for (const auto& name : lru) {
        const auto& content = entries_.at(name).recording.content;
        if (content.use_count() == 1) freeable += content->size();
    }
    if (budget.used() + bytes > budget.cap() + freeable) return false;
    while (!budget.try_reserve(bytes)) {
        if (lru.empty()) return false;
        // Pinned contents free their bytes only on the last close, so this may take
        // several evictions, or fail.
        erase(entries_.find(lru.back()));
    }
    return true;
}

bool ContentCache::reserve_disk(std::uint64_t bytes) { return reserve(*disk_budget_, disk_lru_, bytes); }

bool ContentCache::reserve_memory(std::uint64_t bytes) {
    return reserve(*memory_budget_, memory_lru_, bytes);
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

std::uint64_t ContentCache::memory_bytes() const { return memory_budget_->used(); }

std::size_t ContentCache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace euphoria::core
