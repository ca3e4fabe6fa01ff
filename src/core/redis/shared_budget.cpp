#include "euphoria/core/redis/shared_budget.hpp"

#include <algorithm>
#include <cerrno>

#include "euphoria/api/error.hpp"

namespace euphoria::core::redis {

namespace {

using Steady = std::chrono::steady_clock;

api::ApiError cancelled() { return api::ApiError(EINTR, api::ErrorKind::cancelled, "cancelled"); }

bool is_message(const Reply& r) {
    return r.type == Reply::Type::array && !r.elements.empty() && r.elements[0].text == "message";
}

}  // namespace

SharedBudget::SharedBudget(SharedBudgetConfig config, Stats& stats, Logger& logger)
    : config_(std::move(config)), keys_(LeaseKeys::for_tenant(config_.tenant)), stats_(stats),
      logger_(logger) {
    stats_.redis_connected.store(0);
    stats_.shared_budget.store(config_.max_concurrent);
    // A wrong password throws (ReplyError) out of here: the mount fails with it.
    std::string why;
    if (!reconnect(&why)) {
        logger_.log(LogLevel::warning, "Redis at " + config_.address.describe() +
                                           " is unreachable (" + why + "): working on a local share of " +
                                           std::to_string(config_.fallback) +
                                           " call(s) until it answers");
    }
    keeper_ = std::thread([this] { keep(); });
    releaser_ = std::thread([this] { settle(); });
}

SharedBudget::~SharedBudget() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    // The releaser first: it gives back at once what is still settling, if Redis
    // answers.
    if (releaser_.joinable()) releaser_.join();
    if (keeper_.joinable()) keeper_.join();
}

template <class F>
bool SharedBudget::with_redis(F&& f) {
    std::lock_guard lock(command_mutex_);
    if (!command_) return false;
    try {
        f(*command_, generation_);
        return true;
    } catch (const std::exception& e) {
        lost(e.what());
        return false;
    }
}

void SharedBudget::lost(const std::string& why) {
    command_.reset();
    if (connected_.exchange(false)) {
        stats_.redis_connected.store(0);
        logger_.log(LogLevel::warning, "Redis at " + config_.address.describe() + ": " + why +
                                           "; working on a local share of " +
                                           std::to_string(config_.fallback) +
                                           " call(s) until it answers again");
    }
    cv_.notify_all();
}

bool SharedBudget::reconnect(std::string* why) {
    std::optional<Connection> command;
    std::optional<Connection> subscriber;
    try {
        command.emplace(config_.address, config_.password, config_.timeout);
        subscriber.emplace(config_.address, config_.password, config_.timeout);
        // Subscribed before any lease is asked for: no release goes unheard.
        subscriber->command({"SUBSCRIBE", keys_.channel});
    } catch (const ConnectionError& e) {
        if (why) *why = e.what();
        return false;
    }
    subscriber_ = std::move(subscriber);
    {
        std::lock_guard lock(command_mutex_);
        command_ = std::move(command);
        ++generation_;
        connected_.store(true);
    }
    stats_.redis_connected.store(1);
    cv_.notify_all();
    return true;
}

std::optional<CallPass> SharedBudget::try_fallback() {
    std::lock_guard lock(mutex_);
    if (fallback_in_use_ >= config_.fallback) return std::nullopt;
    ++fallback_in_use_;
    const auto id = next_id_++;
    held_.emplace(id, Held{});
    stats_.redis_fallback_calls.fetch_add(1, std::memory_order_relaxed);
    return CallPass(this, id);
}

CallPass SharedBudget::enter(api::CancelToken& cancel) {
    // Subscribed before taking mutex_: the callback takes it (CancelToken's rule).
    const api::CancelSubscription wake(&cancel, [this] {
        std::lock_guard lock(mutex_);
        cv_.notify_all();
    });
    std::string ticket;
    std::uint64_t ticket_generation = 0;
    bool counted = false;
    const auto began = Steady::now();
    auto give_up = [&] {
        if (!ticket.empty()) {
            with_redis([&](Connection& c, std::uint64_t generation) {
                if (generation == ticket_generation) scripts_.forget(c, keys_, ticket);
            });
        }
        return cancelled();
    };
    bool tried = false;  // a limit of 0 still gets one try
    auto out_of_patience = [&] {
        return tried && config_.wait_limit && Steady::now() - began >= *config_.wait_limit;
    };
    for (;;) {
        std::uint64_t seen = 0;
        bool stop = false;
        {
            std::lock_guard lock(mutex_);
            stop = stopping_ || cancel.cancelled();
            seen = wakes_;
        }
        // Outside mutex_: giving the place back is a Redis command.
        if (stop) throw give_up();
        if (out_of_patience()) {
            give_up();
            throw api::ApiError(EAGAIN, api::ErrorKind::busy,
                                "the fleet's API slots stayed busy for busy_timeout (" +
                                    std::to_string(config_.wait_limit->count()) + " ms)");
        }
        tried = true;
        if (connected_) {
            std::optional<Acquired> got;
            std::uint64_t got_generation = 0;
            with_redis([&](Connection& c, std::uint64_t generation) {
                // A ticket of an earlier connection may name someone else's now.
                if (generation != ticket_generation) ticket.clear();
                got = scripts_.acquire(c, keys_, ticket, config_.max_concurrent, config_.times);
                got_generation = generation;
            });
            if (got) {
                ticket = got->ticket;
                ticket_generation = got_generation;
                stats_.shared_budget.store(got->limit);
                std::unique_lock lock(mutex_);
                if (got->granted) {
                    const auto id = next_id_++;
                    held_.emplace(id, Held{got->ticket, got->epoch, got_generation, false});
                    return CallPass(this, id);
                }
                if (!counted) {
                    stats_.lease_waits.fetch_add(1, std::memory_order_relaxed);
                    counted = true;
                }
                cv_.wait_for(lock, config_.poll, [&] {
                    return stopping_ || wakes_ != seen || cancel.cancelled() || !connected_;
                });
                continue;
            }
            ticket.clear();
        }
        if (auto pass = try_fallback()) return std::move(*pass);
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, config_.poll, [&] {
            return stopping_ || cancel.cancelled() || connected_ ||
                   fallback_in_use_ < config_.fallback;
        });
    }
}

void SharedBudget::leave(std::uint64_t id, CallVerdict verdict) noexcept {
    const Verdict v = verdict == CallVerdict::admitted   ? Verdict::admitted
                      : verdict == CallVerdict::exceeded ? Verdict::exceeded
                                                         : Verdict::none;
    try {
        std::unique_lock lock(mutex_);
        const auto it = held_.find(id);
        if (it == held_.end()) return;
        Held h = std::move(it->second);
        held_.erase(it);
        if (h.ticket.empty()) {
            --fallback_in_use_;
            cv_.notify_all();
            return;
        }
        if (config_.settle.count() > 0 && !stopping_) {
            settling_.push_back({Steady::now() + config_.settle, std::move(h), v});
            cv_.notify_all();
            return;
        }
        lock.unlock();
        release(h, v);
    } catch (...) {
        // Out of memory on a destructor's path: the lease expires on its own.
    }
}

void SharedBudget::release(const Held& h, Verdict v) noexcept {
    try {
        bool lapsed = h.lapsed;
        with_redis([&](Connection& c, std::uint64_t generation) {
            // Another connection (Redis restarted): the lease is gone, and its ticket
            // may name another host's lease by now.
            if (generation != h.generation) {
                lapsed = true;
                return;
            }
            const auto r = scripts_.release(c, keys_, h.ticket, v, h.epoch, config_.max_concurrent,
                                            config_.times);
            if (!r.was_held) lapsed = true;
            stats_.shared_budget.store(r.limit);
        });
        if (lapsed) {
            stats_.lease_lapses.fetch_add(1, std::memory_order_relaxed);
            logger_.log(LogLevel::info, "a Redis lease lapsed during its call; the call went on, "
                                        "the next one takes a fresh lease");
        }
    } catch (...) {
        // As in leave().
    }
}

void SharedBudget::settle() {
    std::unique_lock lock(mutex_);
    for (;;) {
        if (!settling_.empty() && (stopping_ || settling_.front().due <= Steady::now())) {
            const Settling s = std::move(settling_.front());
            settling_.pop_front();
            lock.unlock();
            release(s.held, s.verdict);
            lock.lock();
            continue;
        }
        if (stopping_) return;  // and nothing left to give back
        if (settling_.empty()) {
            cv_.wait(lock);
        } else {
            cv_.wait_until(lock, settling_.front().due);
        }
    }
}

void SharedBudget::renew_all() {
    std::vector<std::pair<std::uint64_t, Held>> leases;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [id, h] : held_) {
            if (!h.ticket.empty() && !h.lapsed) leases.emplace_back(id, h);
        }
    }
    for (const auto& lease : leases) {
        // Named, not bound: clang before 16 cannot capture a structured binding.
        const std::uint64_t id = lease.first;
        const Held& h = lease.second;
        bool kept = true;
        const bool asked = with_redis([&](Connection& c, std::uint64_t generation) {
            kept = generation == h.generation && scripts_.renew(c, keys_, h.ticket, config_.times);
        });
        if (!asked || kept) continue;
        std::lock_guard lock(mutex_);
        if (const auto it = held_.find(id); it != held_.end()) it->second.lapsed = true;
    }
}

void SharedBudget::keep() {
    const auto renew_every = std::max(std::chrono::milliseconds(1), config_.times.lease / 3);
    auto next_renew = Steady::now() + renew_every;
    auto backoff = config_.reconnect_min;
    auto next_try = Steady::now() + backoff;
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
        }
        auto now = Steady::now();
        if (!connected_) {
            subscriber_.reset();
            if (now >= next_try) {
                bool ok = false;
                try {
                    ok = reconnect();
                } catch (const std::exception& e) {
                    ok = false;
                    logger_.log(LogLevel::warning, "Redis at " + config_.address.describe() +
                                                       " refused us: " + e.what());
                }
                if (ok) {
                    logger_.log(LogLevel::info, "Redis at " + config_.address.describe() +
                                                    " answers: the shared budget is back");
                    backoff = config_.reconnect_min;
                    next_renew = Steady::now() + renew_every;
                } else {
                    next_try = Steady::now() + backoff;
                    backoff = std::min(config_.reconnect_max, backoff * 2);
                }
            }
        }
        now = Steady::now();
        if (connected_ && now >= next_renew) {
            renew_all();
            next_renew = Steady::now() + renew_every;
        }
        if (connected_ && subscriber_) {
            const auto until_renew =
                std::chrono::duration_cast<std::chrono::milliseconds>(next_renew - Steady::now());
            const auto wait = std::clamp(until_renew, std::chrono::milliseconds(0), config_.poll);
            try {
                if (auto r = subscriber_->poll_reply(wait); r && is_message(*r)) {
                    std::lock_guard lock(mutex_);
                    ++wakes_;
                    cv_.notify_all();
                }
            } catch (const std::exception& e) {
                subscriber_.reset();
                std::lock_guard lock(command_mutex_);
                lost(e.what());
            }
            continue;
        }
        if (connected_) {
            // Connected but not subscribed: never happens after reconnect(); poll.
            std::lock_guard lock(command_mutex_);
            lost("no subscription");
            continue;
        }
        std::unique_lock lock(mutex_);
        const auto until = std::min(next_try, Steady::now() + config_.poll);
        cv_.wait_until(lock, until, [&] { return stopping_; });
    }
}

}  // namespace euphoria::core::redis
