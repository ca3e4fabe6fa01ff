#pragma once
// The two cache tiers and the negative cache. Entries live for the TTL from the start
// of their fetch; each tier evicts least recently used first. Evicting an entry only
// drops the cache's reference: open handles keep their bytes.

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "euphoria/core/clock.hpp"
#include "euphoria/core/content.hpp"

namespace euphoria::core {

struct CachedRecording {
    std::shared_ptr<const Content> content;
    Clock::time_point expires_at{};
    std::chrono::system_clock::time_point mtime{};
};

struct CacheLimits {
    std::uint64_t memory_cap = 64ull << 20;
    std::size_t negative_cap = 65536;  // bounds memory under a flood of misses
};

class ContentCache {
public:
    enum class Hit { none, memory, disk, negative };
    struct Found {
        Hit hit = Hit::none;
        CachedRecording recording;          // memory or disk hit
        Clock::time_point negative_until{};  // negative hit
    };

    ContentCache(CacheLimits limits, std::shared_ptr<DiskBudget> disk_budget);
    ~ContentCache();

    // Drops what has expired by `now`, then looks `name` up and marks it used.
    Found find(const std::string& name, Clock::time_point now);
    // Memory entries past the memory cap evict the least recently used first.
    void insert(const std::string& name, CachedRecording recording, Clock::time_point now);
    void insert_negative(const std::string& name, Clock::time_point until);
    // Frees disk space for a download in progress by evicting disk entries, least
    // recently used first, and reserves `bytes` of the budget. False: no room.
    bool reserve_disk(std::uint64_t bytes);
    // Live (unexpired) recordings, for readdir.
    std::vector<std::pair<std::string, CachedRecording>> list(Clock::time_point now);
    // Forgets everything and unlinks every cache file (unmount, purge).
    void clear();

    std::uint64_t memory_bytes() const;
    std::size_t size() const;

private:
    struct Slot {
        CachedRecording recording;
        std::list<std::string>::iterator lru;  // in memory_lru_ or disk_lru_
    };
    using Map = std::unordered_map<std::string, Slot>;

    void erase(Map::iterator it);           // requires mutex_
    void purge_expired(Clock::time_point now);  // requires mutex_
    std::list<std::string>& lru_for(const Slot& slot);

    const CacheLimits limits_;
    const std::shared_ptr<DiskBudget> disk_budget_;
    // Guards everything below. Leaf lock: taken after Fetcher's mutex, never before.
    mutable std::mutex mutex_;
    Map entries_;
    std::list<std::string> memory_lru_;  // front is most recently used
    std::list<std::string> disk_lru_;
    std::uint64_t memory_bytes_ = 0;
    std::unordered_map<std::string, Clock::time_point> negative_;
    std::list<std::string> negative_order_;  // oldest first, to bound negative_
};

}  // namespace euphoria::core
