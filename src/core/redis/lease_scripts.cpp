#include "euphoria/core/redis/lease_scripts.hpp"

#include <openssl/evp.h>

#include <array>
#include <memory>

namespace euphoria::core::redis {

namespace {

// Redis time in milliseconds: the only clock the scripts trust.
constexpr std::string_view now_ms = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
)lua";

// KEYS: holders, queue, queue_at, ticket, budget
// ARGV: ticket ('' for a new one), lease ms, waiter ttl ms, cap, idle ms
constexpr std::string_view acquire_lua = R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, m in ipairs(stale) do
  redis.call('ZREM', KEYS[2], m)
  redis.call('ZREM', KEYS[3], m)
end
local ticket = ARGV[1]
if ticket == '' then ticket = tostring(redis.call('INCR', KEYS[4])) end
local cap = tonumber(ARGV[4])
local w = tonumber(redis.call('HGET', KEYS[5], 'window')) or cap
local epoch = tonumber(redis.call('HGET', KEYS[5], 'epoch')) or 0
local limit = math.max(1, math.min(cap, math.floor(w)))
redis.call('ZADD', KEYS[2], 'NX', tonumber(ticket), ticket)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ticket)
local held = redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], ticket)
local resume = tonumber(redis.call('HGET', KEYS[5], 'resume_at')) or 0
local granted = 0
if held + rank < limit and now >= resume then
  redis.call('ZREM', KEYS[2], ticket)
  redis.call('ZREM', KEYS[3], ticket)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ticket)
  granted = 1
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return {granted, ticket, limit, epoch}
)lua";

// KEYS: holders; ARGV: ticket, lease ms, idle ms
constexpr std::string_view renew_lua = R"lua(
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return 0 end
if tonumber(s) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
)lua";

// KEYS: holders, budget; ARGV: ticket, verdict, epoch, cap, idle ms, channel,
// pause base ms, pause max ms.
// The window moves as CallBudget's does (halved once per epoch on "exceeded", +1/w
// per admitted call up to the cap), only fleet-wide; so does the pause after
// "exceeded" (doubling with each halving in a row), during which no lease is granted.
constexpr std::string_view release_lua = R"lua(
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local held = 0
if s then
  redis.call('ZREM', KEYS[1], ARGV[1])
  if tonumber(s) > now then held = 1 end
end
local cap = tonumber(ARGV[4])
local w = tonumber(redis.call('HGET', KEYS[2], 'window')) or cap
local epoch = tonumber(redis.call('HGET', KEYS[2], 'epoch')) or 0
local streak = tonumber(redis.call('HGET', KEYS[2], 'streak')) or 0
local resume = tonumber(redis.call('HGET', KEYS[2], 'resume_at')) or 0
local v = ARGV[2]
if v == 'exceeded' then
  if tonumber(ARGV[3]) == epoch then
    w = math.max(1, math.floor(w / 2))
    epoch = epoch + 1
    streak = streak + 1
    local pause = math.min(tonumber(ARGV[8]), tonumber(ARGV[7]) * 2 ^ (streak - 1))
    resume = math.max(resume, now + pause)
  end
elseif v == 'admitted' then
  streak = 0
  if w < cap then
    local before = math.floor(w)
    w = math.min(cap, w + 1 / w)
    if math.floor(w) ~= before then epoch = epoch + 1 end
  end
end
if v ~= 'none' then
  redis.call('HSET', KEYS[2], 'window', tostring(w), 'epoch', tostring(epoch),
             'streak', tostring(streak), 'resume_at', tostring(resume))
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
redis.call('PUBLISH', ARGV[6], 'r')
return {held, math.max(1, math.min(cap, math.floor(w)))}
)lua";

// KEYS: queue, queue_at; ARGV: ticket, channel
constexpr std::string_view forget_lua = R"lua(
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'f')
return 1
)lua";

std::string sha1_hex(const std::string& text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned len = 0;
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), text.data(), text.size()) != 1 ||
        EVP_DigestFinal_ex(ctx.get(), md.data(), &len) != 1) {
        throw std::runtime_error("SHA-1 of a Lua script failed");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

std::string timed(std::string_view body) { return std::string(now_ms) + std::string(body); }

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()); }

unsigned as_unsigned(const Reply& r) {
    const auto v = r.as_integer();
    return v < 0 ? 0u : static_cast<unsigned>(v);
}

}  // namespace

LeaseKeys LeaseKeys::for_tenant(const std::string& tenant) {
    const std::string p = "euphoriafs:{" + tenant + "}:";
    return {p + "holders", p + "queue", p + "queue_at", p + "ticket", p + "budget", p + "wake"};
}

Script::Script(std::string text) : text_(std::move(text)), sha1_(sha1_hex(text_)) {}

Reply Script::run(Connection& c, const std::vector<std::string_view>& keys,
                  const std::vector<std::string_view>& args) const {
    const std::string nkeys = std::to_string(keys.size());
    std::vector<std::string_view> argv{"EVALSHA", sha1_, nkeys};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    try {
        return c.command(argv);
    } catch (const ReplyError& e) {
        if (std::string_view(e.what()).substr(0, 8) != "NOSCRIPT") throw;
    }
    argv[0] = "EVAL";
    argv[1] = text_;
    return c.command(argv);
}

LeaseScripts::LeaseScripts()
    : acquire_(timed(acquire_lua)), renew_(timed(renew_lua)), release_(timed(release_lua)),
      forget_(std::string(forget_lua)) {}

Acquired LeaseScripts::acquire(Connection& c, const LeaseKeys& k, std::string_view ticket,
                               unsigned cap, const LeaseTimes& t) const {
    const std::string cap_s = std::to_string(cap);
    const auto r = acquire_.run(c, {k.holders, k.queue, k.queue_at, k.ticket, k.budget},
                                {ticket, ms(t.lease), ms(t.waiter_ttl), cap_s, ms(t.idle)});
    Acquired a;
    a.granted = r.at(0).as_integer() == 1;
    a.ticket = r.at(1).text;
    a.limit = as_unsigned(r.at(2));
    a.epoch = static_cast<std::uint64_t>(r.at(3).as_integer());
    if (a.ticket.empty()) throw ReplyError("Redis: acquire returned no ticket");
    return a;
}

bool LeaseScripts::renew(Connection& c, const LeaseKeys& k, std::string_view ticket,
                         const LeaseTimes& t) const {
    return renew_.run(c, {k.holders}, {ticket, ms(t.lease), ms(t.idle)}).as_integer() == 1;
}

Released LeaseScripts::release(Connection& c, const LeaseKeys& k, std::string_view ticket,
                               Verdict v, std::uint64_t epoch, unsigned cap,
                               const LeaseTimes& t) const {
    const char* verdict = v == Verdict::admitted ? "admitted" : v == Verdict::exceeded ? "exceeded" : "none";
    const std::string epoch_s = std::to_string(epoch);
    const std::string cap_s = std::to_string(cap);
    const auto r = release_.run(c, {k.holders, k.budget},
                                {ticket, verdict, epoch_s, cap_s, ms(t.idle), k.channel,
                                 ms(t.pause_base), ms(t.pause_max)});
    return {r.at(0).as_integer() == 1, as_unsigned(r.at(1))};
}

void LeaseScripts::forget(Connection& c, const LeaseKeys& k, std::string_view ticket) const {
    forget_.run(c, {k.queue, k.queue_at}, {ticket, k.channel});
}

}  // namespace euphoria::core::redis
