#include "euphoria/core/call_budget.hpp"

#include <algorithm>
#include <cmath>

namespace euphoria::core {

CallBudget::CallBudget(unsigned cap, RetryPolicy backoff)
    : cap_(std::max(1u, cap)), backoff_(backoff), window_(static_cast<double>(cap_)) {}

unsigned CallBudget::window() const noexcept {
    return std::clamp(static_cast<unsigned>(std::floor(window_)), 1u, cap_);
}

void CallBudget::on_exceeded(std::uint64_t started_epoch, Clock::time_point now, double unit) {
    if (!busy_since_) busy_since_ = now;
    if (started_epoch != epoch_) {
        // Already answered by a decrease this call did not see: only make sure the
        // pause still covers it.
        resume_at_ = std::max(resume_at_, now + backoff_.delay(consecutive_ ? consecutive_ - 1 : 0, unit));
        return;
    }
    window_ = std::max(1.0, std::floor(window_ / 2));
    ++epoch_;
    resume_at_ = std::max(resume_at_, now + backoff_.delay(consecutive_, unit));
    ++consecutive_;
}

void CallBudget::on_admitted() {
    busy_since_.reset();
    consecutive_ = 0;
    const double before = window_;
    window_ = std::min(static_cast<double>(cap_), window_ + 1.0 / window_);
    if (std::floor(window_) != std::floor(before)) ++epoch_;
}

}  // namespace euphoria::core
