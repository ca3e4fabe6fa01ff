#pragma once
// When to try a transient failure again. Exponential backoff with jitter, so that
// clients that failed together do not retry together, and an overall time budget, so
// that "fail forever" ends in bounded time.

#include <chrono>
#include <functional>
#include <random>

#include "euphoria/api/error.hpp"
#include "euphoria/core/clock.hpp"

namespace euphoria::core {

struct RetryPolicy {
    unsigned retries = 3;
    std::chrono::milliseconds base_delay{250};
    std::chrono::milliseconds max_delay{4000};
    // No new attempt starts once this much time has passed since the first.
    std::chrono::milliseconds budget{60000};

    // Backoff before retry number `retry` (0-based): half fixed, half random, so the
    // delay grows and never collapses to zero. `unit` is uniform in [0, 1).
    std::chrono::milliseconds delay(unsigned retry, double unit) const;
};

// Source of jitter; injectable so tests are deterministic.
using Jitter = std::function<double()>;
Jitter default_jitter();

// Called before each backoff sleep, for the log.
using RetryObserver = std::function<void(const api::ApiError&, unsigned retry,
                                         std::chrono::milliseconds delay)>;

// Runs `attempt` until it returns, throws a non-transient ApiError, retries run out or
// the budget is spent. The last error is rethrown. Throws a cancelled ApiError when
// `cancel` fires during a backoff.
void run_with_retries(const RetryPolicy& policy, Clock& clock, const Jitter& jitter,
                      api::CancelToken& cancel, const std::function<void()>& attempt,
                      const RetryObserver& observer = {});

}  // namespace euphoria::core
