#include "euphoria/core/clock.hpp"

#include <condition_variable>
#include <mutex>

namespace euphoria::core {

bool SystemClock::sleep_for(duration d, api::CancelToken* cancel) {
    std::mutex m;
    std::condition_variable cv;
    bool woken = false;
    // Subscribed before taking `m`: the callback takes `m` (see CancelToken's rule).
    api::CancelSubscription sub(cancel, [&] {
        std::lock_guard lock(m);
        woken = true;
        cv.notify_all();
    });
    std::unique_lock lock(m);
    cv.wait_for(lock, d, [&] { return woken; });
    return !woken;
}

void SystemClock::wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                             time_point deadline) {
    if (deadline == time_point::max()) {
        cv.wait(lock);
    } else {
        cv.wait_until(lock, deadline);
    }
}

}  // namespace euphoria::core
