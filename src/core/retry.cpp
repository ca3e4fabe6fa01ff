#include "euphoria/core/retry.hpp"

#include <algorithm>
#include <cerrno>
#include <memory>
#include <mutex>

namespace euphoria::core {

std::chrono::milliseconds RetryPolicy::delay(unsigned retry, double unit) const {
    using ms = std::chrono::milliseconds;
    const auto shift = std::min(retry, 20u);
    const auto capped = std::min<long long>(base_delay.count() << shift, max_delay.count());
    const auto half = capped / 2;
    return ms(half + static_cast<long long>(unit * static_cast<double>(capped - half)));
}

Jitter default_jitter() {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    auto mutex = std::make_shared<std::mutex>();
    return [engine, mutex] {
        std::lock_guard lock(*mutex);
        return std::uniform_real_distribution<double>(0.0, 1.0)(*engine);
    };
}

void run_with_retries(const RetryPolicy& policy, Clock& clock, const Jitter& jitter,
                      api::CancelToken& cancel, const std::function<void()>& attempt,
                      const RetryObserver& observer) {
    const auto started = clock.now();
    for (unsigned retry = 0;; ++retry) {
        try {
            attempt();
            return;
        } catch (const api::ApiError& e) {
            if (!e.transient() || retry >= policy.retries) throw;
            const auto wait = policy.delay(retry, jitter ? jitter() : 0.5);
            if (clock.now() - started + wait > policy.budget) throw;
            if (observer) observer(e, retry, wait);
            if (!clock.sleep_for(wait, &cancel)) {
                throw api::ApiError(EINTR, api::ErrorKind::cancelled, "cancelled");
            }
        }
    }
}

}  // namespace euphoria::core
