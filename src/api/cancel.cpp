#include "euphoria/api/cancel.hpp"

namespace euphoria::api {

void CancelToken::cancel() {
    // Callbacks run under the lock so that unsubscribe() returning means the callback
    // is not running and never will: its captures may then be destroyed safely.
    std::lock_guard lock(mutex_);
    if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
    for (auto& [id, cb] : callbacks_) cb();
}

std::uint64_t CancelToken::subscribe(Callback wake) {
    std::unique_lock lock(mutex_);
    if (cancelled()) {
        lock.unlock();
        wake();
        return 0;
    }
    auto id = next_id_++;
    callbacks_.emplace(id, std::move(wake));
    return id;
}

void CancelToken::unsubscribe(std::uint64_t id) {
    if (id == 0) return;
    std::lock_guard lock(mutex_);
    callbacks_.erase(id);
}

}  // namespace euphoria::api
