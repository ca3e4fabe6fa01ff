#include "euphoria/core/redis/shared_cache.hpp"

#include <algorithm>
#include <sstream>
#include <string_view>
#include <vector>

namespace euphoria::core::redis {

namespace {

// Taking a claim (KEYS[2]) answers 1; finding a host's claim 0; finding one planted by
// someone without the key -1: no host sets a claim without an expiry, or past the
// longest lease.
constexpr std::string_view take_claim_function = R"(
local function take_claim(k)
  if redis.call('SET', k, ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
  local t = redis.call('PTTL', k)
  if t == -1 or t > tonumber(ARGV[3]) then return -1 end
  return 0
end
)";

// One step: the entry (KEYS[1]), its time left and Redis's clock, or, when there is no
// entry, the claim. Apart, a host could find no entry, then no claim either, because
// the claimant stored and released in between, and download it a second time. GET's
// nil is false here, which stays a nil reply in the table. Milliseconds since the
// epoch fit a Lua number exactly.
constexpr std::string_view look_lua = R"(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', KEYS[1])
if v then return {v, redis.call('PTTL', KEYS[1]), now, 0} end
return {false, -2, now, take_claim(KEYS[2])}
)";
// The claim alone: for a host that found an entry it could not use.
constexpr std::string_view take_claim_lua = "return take_claim(KEYS[1])\n";

constexpr const char* drop_claim_lua = R"(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)";
constexpr const char* renew_claim_lua = R"(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
)";

constexpr std::string_view version = "v1";

// Redis's clock, as the leases use it: an entry's sealed expiry must mean the same on
// every host, whatever their clocks say.
long long redis_ms(Connection& c) {
    const auto t = c.command({"TIME"});
    return t.at(0).as_integer() * 1000 + t.at(1).as_integer() / 1000;
}

// What a reader takes: whatever a host with the key shared, up to redis_cache_max's
// own bound, so hosts with different redis_cache_max still share.
constexpr std::uint64_t largest_entry = 1ull << 30;

std::string entry_context(const std::string& id) { return "entry " + id; }
std::string chunk_context(const std::string& id, const std::string& entry, std::size_t i) {
    return "chunk " + id + " " + entry + " " + std::to_string(i);
}

void expect_ok(const Reply& r, const char* what) {
    if (r.type != Reply::Type::status || r.text != "OK") {
        throw ReplyError(std::string(what) + " was not stored");
    }
}

}  // namespace

RedisCache::RedisCache(RedisCacheConfig config, const CacheCipher& cipher, Stats& stats, Logger& logger)
    : config_(std::move(config)), cipher_(cipher),
      prefix_("euphoriafs:{" + config_.tenant + "}:"), stats_(stats), logger_(logger),
      look_(std::string(take_claim_function) + std::string(look_lua)),
      take_claim_(std::string(take_claim_function) + std::string(take_claim_lua)), drop_claim_(drop_claim_lua),
      renew_claim_(renew_claim_lua),
      keeper_([this] { keep(); }) {}

RedisCache::~RedisCache() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (keeper_.joinable()) keeper_.join();
}

void RedisCache::warn(const std::string& what) noexcept {
    try {
        logger_.log(LogLevel::warning, "shared cache: " + what);
    } catch (...) {  // out of memory: the line is lost, nothing else
    }
}

template <class F>
bool RedisCache::with_redis(F&& f) noexcept {
    std::lock_guard lock(command_mutex_);
    const auto now = std::chrono::steady_clock::now();
    try {
        if (!conn_) {
            if (now < retry_at_) return false;
            // Any failure to connect, a refused password too, waits before the next try.
            retry_at_ = now + config_.reconnect;
            conn_.emplace(config_.address, config_.password, config_.timeout);
            if (down_) logger_.log(LogLevel::info, "shared cache: Redis answers again");
            down_ = false;
        }
        f(*conn_);
        return true;
    } catch (const ConnectionError& e) {
        conn_.reset();
        if (!down_) {
            warn(std::string("Redis unreachable (") + e.what() + "); downloading without it until it answers");
        }
        down_ = true;
    } catch (const ReplyError& e) {
        // An error reply (a full Redis, a wrong password, a cluster redirect): this
        // one step goes without the shared cache; the connection is sound.
        warn(e.what());
    } catch (const std::exception& e) {
        // Out of memory, or libcrypto: the connection may be mid-transaction, so it
        // goes, and the next step starts afresh.
        conn_.reset();
        warn(e.what());
    } catch (...) {
        conn_.reset();
    }
    return false;
}

void RedisCache::reject(const std::string& what) {
    stats_.redis_cache_rejects.fetch_add(1, std::memory_order_relaxed);
    logger_.log(LogLevel::warning, "shared cache: rejected " + what +
                                       " that does not open under the tenant's key; downloading");
}

std::optional<SharedCache::Lookup> RedisCache::open_entry(Connection& c, const std::string& id,
                                                          const std::string& value, long long pttl,
                                                          long long now_ms) {
    auto plain = cipher_.open(entry_context(id), value);
    if (!plain) {
        reject("an entry");
        return std::nullopt;
    }
    std::istringstream in(*plain);
    std::string v, kind;
    in >> v >> kind;
    Lookup out;
    std::uint64_t size = 0;
    std::size_t chunks = 0;
    std::string entry;
    long long expires = 0;
    if (kind == "recording") {
        in >> size >> chunks >> entry >> expires;
    } else {
        in >> expires;
    }
    // Sealed by a host with the key, so a bad one is a bug or another version: not
    // counted as tampering.
    if (!in || v != version) return std::nullopt;
    // An old entry played back with a new PX: its sealed expiry, on Redis's clock,
    // gives it away. A genuine one never outlives it (its PX ends there), but for the
    // moment between the TIME and the SET that sealed it.
    if (pttl <= 0 || now_ms > expires + config_.replay_slack.count()) {
        reject("a replayed entry");
        return std::nullopt;
    }
    out.left = std::chrono::milliseconds(std::max(1LL, std::min(pttl, expires - now_ms)));
    if (kind == "negative") {
        out.found = Found::negative;
        return out;
    }
    if (kind == "unshared") return out;  // a miss that no host claims
    if (kind != "recording" || size > largest_entry) return std::nullopt;
    out.found = Found::recording;
    out.bytes.reserve(size);
    for (std::size_t i = 0; i < chunks; ++i) {
        const auto r = c.command({"GET", key(id) + ":" + entry + ":" + std::to_string(i)});
        if (r.is_nil()) {  // evicted: a miss, not tampering
            api::wipe_string(out.bytes);
            return std::nullopt;
        }
        auto piece = cipher_.open(chunk_context(id, entry, i), r.text);
        if (!piece) {
            api::wipe_string(out.bytes);
            reject("a chunk");
            return std::nullopt;
        }
        if (out.bytes.size() + piece->size() > size) {
            api::wipe_string(*piece);
            break;
        }
        out.bytes += *piece;
        api::wipe_string(*piece);
    }
    if (out.bytes.size() != size) {
        api::wipe_string(out.bytes);
        reject("an entry whose chunks do not add up");
        return std::nullopt;
    }
    return out;
}

RedisCache::Step RedisCache::look_once(Connection& c, const std::string& id, const std::string& token,
                                       Lookup& out) {
    const std::string claim_px = std::to_string(config_.claim.count());
    const std::string longest = std::to_string(config_.longest_claim.count());
    const auto got = look_.run(c, {key(id), claim_key(id)}, {token, claim_px, longest});
    long long taken = got.at(3).as_integer();
    if (!got.at(0).is_nil()) {
        if (auto entry = open_entry(c, id, got.at(0).text, got.at(1).as_integer(), got.at(2).as_integer())) {
            // Too large to share: every host downloads it, none waits for another.
            if (entry->found == Found::miss) return Step::skip;
            out = std::move(*entry);
            return Step::answered;
        }
        // Rejected or evicted: this host downloads it, and its claim makes the rest
        // of the fleet wait for that one download.
        taken = take_claim_.run(c, {claim_key(id)}, {token, claim_px, longest}).as_integer();
    }
    if (taken == 0) return Step::wait;
    if (taken < 0) {
        warn("a claim without the expiry any host sets; downloading without waiting for it");
        return Step::skip;
    }
    std::lock_guard lock(mutex_);
    claims_[token] = id;
    out.claim = token;
    return Step::claimed;
}

SharedCache::Lookup RedisCache::look(const std::string& name, api::CancelToken& cancel) {
    Lookup out;
    try {
        const std::string id = cipher_.name_id(name);
        const std::string token = CacheCipher::random_hex(16);
        const auto deadline = std::chrono::steady_clock::now() + config_.wait_limit;
        bool waited = false;
        while (!cancel.cancelled()) {
            Step step = Step::skip;
            if (!with_redis([&](Connection& c) { step = look_once(c, id, token, out); })) return {};
            if (step == Step::answered) {
                stats_.redis_cache_hits.fetch_add(1, std::memory_order_relaxed);
                return out;
            }
            if (step == Step::claimed) return out;
            if (step != Step::wait) return {};
            if (!waited) {
                waited = true;
                stats_.redis_cache_waits.fetch_add(1, std::memory_order_relaxed);
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                logger_.log(LogLevel::warning, "shared cache: another host's download of " + name +
                                                   " is taking too long; downloading it here");
                return {};
            }
            // Short polls: the claimant's result appears within one of them.
            std::unique_lock lock(mutex_);
            cv_.wait_for(lock, config_.poll, [&] { return stopping_ || cancel.cancelled(); });
            if (stopping_) return {};
        }
    } catch (const std::exception& e) {
        warn(e.what());
    }
    return {};
}

void RedisCache::store(const std::string& name, const Content& content,
                       std::chrono::milliseconds left) noexcept {
    // Called before readers see the content complete, but with every byte there.
    if (left.count() <= 0 || content.failed() || content.arrived() != content.size()) return;
    if (content.size() > config_.max_bytes) {
        unshare(name, {}, left);
        return;
    }
    try {
        const std::string id = cipher_.name_id(name);
        const std::string entry = CacheCipher::random_hex(12);
        const std::uint64_t size = content.size();
        const std::size_t chunks = (size + config_.chunk_bytes - 1) / config_.chunk_bytes;
        const std::string px = std::to_string(left.count());
        const bool stored = with_redis([&](Connection& c) {
            std::ostringstream meta;
            meta << version << " recording " << size << " " << chunks << " " << entry << " "
                 << redis_ms(c) + left.count();
            // One chunk sealed at a time: memory stays at a chunk, not a recording.
            std::string plain(config_.chunk_bytes, '\0');
            c.command({"MULTI"});
            try {
                for (std::size_t i = 0; i < chunks; ++i) {
                    const std::uint64_t at = i * config_.chunk_bytes;
                    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(config_.chunk_bytes, size - at));
                    if (content.read(plain.data(), want, at) != static_cast<long>(want)) {
                        throw ReplyError("the cached recording could not be read back");
                    }
                    const auto sealed = cipher_.seal(chunk_context(id, entry, i), std::string_view(plain.data(), want));
                    c.command({"SET", key(id) + ":" + entry + ":" + std::to_string(i), sealed, "PX", px});
                }
                c.command({"SET", key(id), cipher_.seal(entry_context(id), meta.str()), "PX", px});
            } catch (...) {
                // Whatever failed, the connection must not stay mid-transaction.
                api::wipe_string(plain);
                c.command({"DISCARD"});
                throw;
            }
            api::wipe_string(plain);
            const auto done = c.command({"EXEC"});
            // EXEC answers each queued command; any error in it means a part is missing.
            if (done.type != Reply::Type::array || done.elements.size() != chunks + 1) {
                throw ReplyError("the shared cache's transaction was aborted");
            }
            for (const auto& r : done.elements) expect_ok(r, "a chunk");
        });
        if (stored) stats_.redis_cache_stores.fetch_add(1, std::memory_order_relaxed);
    } catch (const std::exception& e) {
        warn(e.what());
    }
}

void RedisCache::put_marker(const std::string& name, const std::string& kind,
                            std::chrono::milliseconds left) {
    if (left.count() <= 0) return;
    const std::string id = cipher_.name_id(name);
    with_redis([&](Connection& c) {
        const std::string plain =
            std::string(version) + " " + kind + " " + std::to_string(redis_ms(c) + left.count());
        expect_ok(c.command({"SET", key(id), cipher_.seal(entry_context(id), plain), "PX",
                             std::to_string(left.count())}),
                  "an entry");
    });
}

void RedisCache::store_negative(const std::string& name, std::chrono::milliseconds left) noexcept {
    try {
        put_marker(name, "negative", left);
    } catch (const std::exception& e) {
        warn(e.what());
    }
}

void RedisCache::unshare(const std::string& name, const std::string& claim,
                         std::chrono::milliseconds left) noexcept {
    try {
        put_marker(name, "unshared", left);
    } catch (const std::exception& e) {
        warn(e.what());
    }
    release(claim);
}

void RedisCache::release(const std::string& claim) noexcept {
    if (claim.empty()) return;
    try {
        std::string id;
        {
            std::lock_guard lock(mutex_);
            auto it = claims_.find(claim);
            if (it == claims_.end()) return;  // given up already (unshare)
            id = std::move(it->second);
            claims_.erase(it);
        }
        with_redis([&](Connection& c) { drop_claim_.run(c, {claim_key(id)}, {claim}); });
    } catch (const std::exception& e) {
        warn(e.what());
    }
}

void RedisCache::keep() {
    const auto every = std::max(std::chrono::milliseconds(1), config_.claim / 3);
    const std::string px = std::to_string(config_.claim.count());
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        cv_.wait_for(lock, every, [&] { return stopping_; });
        if (stopping_ || claims_.empty()) continue;
        try {
            const auto held = claims_;
            lock.unlock();
            with_redis([&](Connection& c) {
                for (const auto& [token, id] : held) renew_claim_.run(c, {claim_key(id)}, {token, px});
            });
        } catch (...) {  // out of memory: the claims lapse, and other hosts download
        }
        if (!lock.owns_lock()) lock.lock();
    }
}

}  // namespace euphoria::core::redis
