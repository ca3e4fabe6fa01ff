#pragma once
// The fleet's shared 30-second cache in Redis (-o redis=URL,redis_cache).
//
// Keys, under the tenant's hash tag like the budget's ("ID" is CacheCipher::name_id):
//   cache:ID               sealed entry: a recording (its size, chunk count and
//                          entry id), a negative answer, or "not shared" (too large)
//   cache:ID:ENTRY:N       sealed chunk N (at most 1 MiB) of that entry
//   claim:ID               random token of the host downloading the name (SET NX PX)
// Every value is sealed under a context naming its key, so nothing can be moved
// from one name, entry or chunk to another. All of an entry is written in one
// MULTI/EXEC with PX set to what is left of the API's 30 seconds.
//
// A host that finds a claim polls until the entry appears or the claim goes (the
// claimant failed or vanished: its claim expires one claim time after its last
// renewal), then claims the name itself.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "euphoria/api/secret.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/redis/address.hpp"
#include "euphoria/core/redis/cache_cipher.hpp"
#include "euphoria/core/redis/connection.hpp"
#include "euphoria/core/redis/lease_scripts.hpp"
#include "euphoria/core/shared_cache.hpp"
#include "euphoria/core/stats.hpp"

namespace euphoria::core::redis {

struct RedisCacheConfig {
    Address address;
    api::Secret password;
    std::string tenant;
    std::uint64_t max_bytes = 32ull << 20;  // larger recordings are not shared
    std::size_t chunk_bytes = 1 << 20;
    // A claim lapses this long after its last renewal; renewed every third of it.
    std::chrono::milliseconds claim{15000};
    // A claim with no expiry, or one further off than any mount sets (redis_lease is
    // at most 300 s), was planted by someone without the key: not waited for.
    std::chrono::milliseconds longest_claim{300000};
    // How long a host waits for another's download at most: past it, it downloads.
    std::chrono::milliseconds wait_limit{60000};
    std::chrono::milliseconds poll{50};
    std::chrono::milliseconds timeout{1000};
    // After a failed connect, the shared cache is skipped (a miss) this long.
    std::chrono::milliseconds reconnect{1000};
    // An entry whose sealed expiry (Redis's clock) is further past than this is a
    // replay, not an entry: rejected, whatever its PX says.
    std::chrono::milliseconds replay_slack{1000};
};

class RedisCache final : public SharedCache {
public:
    // Connects lazily: an unreachable Redis at mount is a miss for every look.
    RedisCache(RedisCacheConfig config, const CacheCipher& cipher, Stats& stats, Logger& logger);
    ~RedisCache() override;
    RedisCache(const RedisCache&) = delete;
    RedisCache& operator=(const RedisCache&) = delete;

    Lookup look(const std::string& name, api::CancelToken& cancel) override;
    void store(const std::string& name, const Content& content,
               std::chrono::milliseconds left) noexcept override;
    void store_negative(const std::string& name, std::chrono::milliseconds left) noexcept override;
    void unshare(const std::string& name, const std::string& claim,
                 std::chrono::milliseconds left) noexcept override;
    void release(const std::string& claim) noexcept override;
    std::uint64_t max_bytes() const noexcept override { return config_.max_bytes; }

private:
    enum class Step { answered, claimed, wait, skip };
    // One look at Redis, under command_mutex_: the entry, or the claim taken, or
    // another host's claim (wait), or nothing to share (skip).
    Step look_once(Connection& c, const std::string& id, const std::string& token, Lookup& out);
    // The sealed entry `value` with `pttl` left; none (and counted) when it does not
    // open or does not add up.
    std::optional<Lookup> open_entry(Connection& c, const std::string& id, const std::string& value,
                                     long long pttl, long long now_ms);
    void put_marker(const std::string& name, const std::string& kind, std::chrono::milliseconds left);
    void reject(const std::string& what);
    // Runs `f` with a live connection under command_mutex_; false when there is none,
    // or it failed (then dropped, and skipped for config_.reconnect).
    template <class F>
    bool with_redis(F&& f) noexcept;
    void keep();  // renews this host's claims

    std::string key(const std::string& id) const { return prefix_ + "cache:" + id; }
    std::string claim_key(const std::string& id) const { return prefix_ + "claim:" + id; }

    const RedisCacheConfig config_;
    const CacheCipher cipher_;
    const std::string prefix_;
    Stats& stats_;
    Logger& logger_;
    void warn(const std::string& what) noexcept;  // never throws, even out of memory

    const Script look_, take_claim_, drop_claim_, renew_claim_;

    // Guards conn_, retry_at_ and down_. Held for a bounded run of commands (each
    // bounded by config_.timeout). Lock order: command_mutex_, then mutex_.
    std::mutex command_mutex_;
    std::optional<Connection> conn_;
    std::chrono::steady_clock::time_point retry_at_{};
    bool down_ = false;  // warned once, until a connect succeeds

    // Guards claims_ and stopping_.
    std::mutex mutex_;
    std::condition_variable cv_;
    std::unordered_map<std::string, std::string> claims_;  // token -> name id, held by us
    bool stopping_ = false;
    std::thread keeper_;  // last: started once the rest exists
};

}  // namespace euphoria::core::redis
