#pragma once
// How many upstream calls this mount may have in flight, learned from the tenant.
//
// The API's three slots belong to the tenant, not to us: the PBX portal, other
// integrations and other hosts use them too. "Concurrent API Calls Exceeded" is the
// only signal we get, so it is treated as congestion, the way TCP treats a loss:
// the window halves (multiplicative decrease, never below 1) and the whole mount
// pauses for a jittered, exponentially growing delay; every call that comes back
// without it grows the window by 1/window (additive increase, at most the cap).
//
// Not thread-safe: the Fetcher calls it under its own mutex.

#include <chrono>
#include <cstdint>
#include <optional>

#include "euphoria/core/clock.hpp"
#include "euphoria/core/retry.hpp"

namespace euphoria::core {

class CallBudget {
public:
    // `backoff` gives the pause after the n-th "exceeded" in a row (its delay()).
    CallBudget(unsigned cap, RetryPolicy backoff);

    // Calls that may be in flight now: floor(window), between 1 and the cap.
    unsigned window() const noexcept;
    // An epoch names one setting of the window. A call records it when it starts, so
    // that several calls that all started before one decrease cost one halving, not
    // one each (TCP's "once per round trip").
    std::uint64_t epoch() const noexcept { return epoch_; }
    // No call may start before this.
    Clock::time_point resume_at() const noexcept { return resume_at_; }
    // Since when the tenant has been answering "exceeded" without a success in
    // between; empty while calls succeed.
    std::optional<Clock::time_point> busy_since() const noexcept { return busy_since_; }

    // A call that started in `started_epoch` was told the tenant is full. `unit` is
    // uniform in [0, 1), for the jitter.
    void on_exceeded(std::uint64_t started_epoch, Clock::time_point now, double unit);
    // A call got a slot (whatever it then answered).
    void on_admitted();

private:
    const unsigned cap_;
    const RetryPolicy backoff_;
    double window_;
    std::uint64_t epoch_ = 0;
    unsigned consecutive_ = 0;  // halvings since the last admitted call
    Clock::time_point resume_at_{};
    std::optional<Clock::time_point> busy_since_;
};

}  // namespace euphoria::core
