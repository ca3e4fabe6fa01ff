#pragma once
// Counters for operators, read while mounted (as extended attributes of the root),
// the way CVMFS exposes hitrate and nioerr.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace euphoria::core {

struct Stats {
    std::atomic<std::uint64_t> upstream_calls{0};
    std::atomic<std::uint64_t> coalesced_waits{0};
    std::atomic<std::uint64_t> memory_hits{0};
    std::atomic<std::uint64_t> disk_hits{0};
    std::atomic<std::uint64_t> negative_hits{0};
    std::atomic<std::uint64_t> bytes_fetched{0};
    std::atomic<std::uint64_t> in_flight{0};
    std::atomic<std::uint64_t> queued{0};
    std::atomic<std::uint64_t> retries{0};
    std::atomic<std::uint64_t> passthrough{0};  // 1 while the kernel may read cache files itself
    std::atomic<std::uint64_t> passthrough_opens{0};  // opens the kernel serves from our cache file
    std::atomic<std::uint64_t> read_requests{0};      // reads the kernel asked the daemon for
    std::atomic<std::uint64_t> exceeded_replies{0};   // "Concurrent API Calls Exceeded" seen
    std::atomic<std::uint64_t> budget{0};   // calls the mount may have in flight now (learned)
    std::atomic<std::uint64_t> pending{0};  // requests waiting for a download
    std::atomic<std::uint64_t> early_replies{0};  // downloads opened to readers before their end
    std::atomic<std::uint64_t> waiting_reads{0};  // reads that waited for their range to arrive
    std::atomic<std::uint64_t> md5_mismatches{0};  // downloads whose MD5 is not the listing's
    std::atomic<std::uint64_t> listings{0};        // day listings fetched (each one or more calls)
    // The fleet's shared budget (-o redis=URL); all 0 without it.
    std::atomic<std::uint64_t> redis_connected{0};       // 1 while Redis answers
    std::atomic<std::uint64_t> redis_fallback_calls{0};  // calls made on the local share
    std::atomic<std::uint64_t> lease_waits{0};           // calls that waited for a lease
    std::atomic<std::uint64_t> lease_lapses{0};          // leases gone before their call ended
    std::atomic<std::uint64_t> shared_budget{0};         // the fleet's budget last seen
    // The fleet's shared cache (-o redis_cache); all 0 without it.
    std::atomic<std::uint64_t> redis_cache_hits{0};     // answers another host downloaded
    std::atomic<std::uint64_t> redis_cache_waits{0};    // looks that waited for another host
    std::atomic<std::uint64_t> redis_cache_stores{0};   // recordings this host shared
    std::atomic<std::uint64_t> redis_cache_rejects{0};  // values that failed authentication

    // Errors handed to callers, by errno; the last slot counts any other errno.
    static constexpr std::array<int, 9> tracked_errnos{13, 2, 11, 5, 71, 110, 4, 28, 22};
    std::array<std::atomic<std::uint64_t>, tracked_errnos.size() + 1> errors{};

    void count_error(int err) noexcept;
    // name -> decimal value, for listing. Names are stable: scripts read them.
    std::vector<std::pair<std::string, std::uint64_t>> snapshot() const;
};

}  // namespace euphoria::core
