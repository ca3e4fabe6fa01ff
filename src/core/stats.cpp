#include "euphoria/core/stats.hpp"

#include <cerrno>
#include <cstring>

namespace euphoria::core {

static_assert(Stats::tracked_errnos[0] == EACCES && Stats::tracked_errnos[1] == ENOENT &&
              Stats::tracked_errnos[2] == EAGAIN && Stats::tracked_errnos[3] == EIO &&
              Stats::tracked_errnos[4] == EPROTO && Stats::tracked_errnos[5] == ETIMEDOUT &&
              Stats::tracked_errnos[6] == EINTR && Stats::tracked_errnos[7] == ENOSPC &&
              Stats::tracked_errnos[8] == EINVAL);

void Stats::count_error(int err) noexcept {
    for (std::size_t i = 0; i < tracked_errnos.size(); ++i) {
        if (tracked_errnos[i] == err) {
            errors[i].fetch_add(1, std::memory_order_relaxed);
            return;
        }
    }
    errors.back().fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::pair<std::string, std::uint64_t>> Stats::snapshot() const {
    static constexpr const char* errno_names[] = {"eacces", "enoent", "eagain",    "eio",
                                                  "eproto", "etimedout", "eintr", "enospc",
                                                  "einval"};
    std::vector<std::pair<std::string, std::uint64_t>> out{
        {"upstream_calls", upstream_calls.load()},
        {"coalesced_waits", coalesced_waits.load()},
        {"hits_memory", memory_hits.load()},
        {"hits_disk", disk_hits.load()},
        {"hits_negative", negative_hits.load()},
        {"bytes_fetched", bytes_fetched.load()},
        {"retries", retries.load()},
        {"in_flight", in_flight.load()},
        {"queued", queued.load()},
        {"passthrough", passthrough.load()},
        {"passthrough_opens", passthrough_opens.load()},
        {"read_requests", read_requests.load()},
        {"exceeded_replies", exceeded_replies.load()},
        {"budget", budget.load()},
        {"pending", pending.load()},
        {"early_replies", early_replies.load()},
        {"waiting_reads", waiting_reads.load()},
        {"md5_mismatches", md5_mismatches.load()},
        {"listings", listings.load()},
        {"redis_connected", redis_connected.load()},
        {"redis_fallback_calls", redis_fallback_calls.load()},
        {"lease_waits", lease_waits.load()},
        {"lease_lapses", lease_lapses.load()},
        {"shared_budget", shared_budget.load()},
        {"redis_cache_hits", redis_cache_hits.load()},
        {"redis_cache_waits", redis_cache_waits.load()},
        {"redis_cache_stores", redis_cache_stores.load()},
        {"redis_cache_rejects", redis_cache_rejects.load()},
    };
    for (std::size_t i = 0; i < tracked_errnos.size(); ++i) {
        out.emplace_back(std::string("errors_") + errno_names[i], errors[i].load());
    }
    out.emplace_back("errors_other", errors.back().load());
    return out;
}

}  // namespace euphoria::core
