#pragma once
// The two cache tiers and the negative cache. Entries live for the TTL from the moment
// their reply finished arriving (the API lets returned data be cached for 30 s); each
// tier evicts least recently used first. Evicting an entry only drops the cache's
// reference: open handles keep their bytes, and those bytes still count in the tier's
// ByteBudget until the last handle lets go.

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

    ContentCache(CacheLimits limits, std::shared_ptr<ByteBudget> memory_budget,
                 std::shared_ptr<ByteBudget> disk_budget);
    ~ContentCache();

    // Drops what has expired by `now`, then looks `name` up and marks it used.
    Found find(const std::string& name, Clock::time_point now);
    // Keeps `recording` until it expires or is evicted. Its bytes were counted in
    // their tier's budget while they arrived.
    void insert(const std::string& name, CachedRecording recording, Clock::time_point now);
    void insert_negative(const std::string& name, Clock::time_point until);
    // Frees disk space for a download in progress by evicting disk entries, least
    // recently used first, and reserves `bytes` of the budget. False: no room.
    bool reserve_disk(std::uint64_t bytes);
    // The same for the memory tier, evicting memory entries.
    bool reserve_memory(std::uint64_t bytes);
    // Live (unexpired) recordings, for readdir.
    std::vector<std::pair<std::string, CachedRecording>> list(Clock::time_point now);
    // Forgets everything and unlinks every cache file (unmount, purge).
    void clear();

    // Every recording byte held in memory: cached, pinned by open files, or arriving.
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
    bool reserve(ByteBudget& budget, std::list<std::string>& lru, std::uint64_t bytes);
    std::list<std::string>& lru_for(const Slot& slot);

    const CacheLimits limits_;
    const std::shared_ptr<ByteBudget> memory_budget_;
    const std::shared_ptr<ByteBudget> disk_budget_;
    // Guards everything below. Taken after Fetcher's mutex, never before; under it,
    // eviction takes a Content's (leaf) mutex to unlink its file.
    mutable std::mutex mutex_;
    Map entries_;
    std::list<std::string> memory_lru_;  // front is most recently used
    std::list<std::string> disk_lru_;
    std::unordered_map<std::string, Clock::time_point> negative_;
    // Names in the order they were made negative, which is also the order they
    // expire in (the TTL is one length for all, counted from insertion). May hold
    // stale duplicates of names that were made negative again or erased.
    std::list<std::string> negative_order_;
};

}  // namespace euphoria::core
