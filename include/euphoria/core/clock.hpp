#pragma once
// Time as the core sees it. Injected, so tests can expire a 30-second cache and run a
// backoff schedule without waiting.

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "euphoria/api/cancel.hpp"

namespace euphoria::core {

class Clock {
public:
    using time_point = std::chrono::steady_clock::time_point;
    using duration = std::chrono::steady_clock::duration;

    virtual ~Clock() = default;
    virtual time_point now() = 0;
    virtual std::chrono::system_clock::time_point wall_now() = 0;
    // Returns false when `cancel` fired before the time was up.
    virtual bool sleep_for(duration d, api::CancelToken* cancel) = 0;
    // Waits on `cv` (with `lock` held) until notified or until this clock reads
    // `deadline`; may return early. time_point::max() waits for a notification only.
    virtual void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                            time_point deadline) = 0;
};

class SystemClock final : public Clock {
public:
    time_point now() override { return std::chrono::steady_clock::now(); }
    std::chrono::system_clock::time_point wall_now() override {
        return std::chrono::system_clock::now();
    }
    bool sleep_for(duration d, api::CancelToken* cancel) override;
    void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                    time_point deadline) override;
};

}  // namespace euphoria::core
