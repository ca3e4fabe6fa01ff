#pragma once
// Lets one thread stop work that another thread is blocked in: a transfer, a queue
// wait, a backoff sleep. FUSE interrupts end up here.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace euphoria::api {

class CancelToken {
public:
    using Callback = std::function<void()>;

    void cancel();
    bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

    // Runs `wake` on cancel(), or at once if already cancelled. The callback must be
    // cheap and must not call back into this token. Returns an id for unsubscribe().
    std::uint64_t subscribe(Callback wake);
    void unsubscribe(std::uint64_t id);

private:
    std::atomic<bool> cancelled_{false};
    // Guards callbacks_ and next_id_, and is held while callbacks run. Lock order: a
    // callback may take a waiter's mutex, so never subscribe or unsubscribe while
    // holding a mutex that a callback takes.
    std::mutex mutex_;
    std::map<std::uint64_t, Callback> callbacks_;
    std::uint64_t next_id_ = 1;
};

// RAII subscription, so a waiter can never leave a dangling callback behind.
class CancelSubscription {
public:
    CancelSubscription(CancelToken* token, CancelToken::Callback wake)
        : token_(token), id_(token ? token->subscribe(std::move(wake)) : 0) {}
    ~CancelSubscription() {
        if (token_) token_->unsubscribe(id_);
    }
    CancelSubscription(const CancelSubscription&) = delete;
    CancelSubscription& operator=(const CancelSubscription&) = delete;

private:
    CancelToken* token_;
    std::uint64_t id_;
};

}  // namespace euphoria::api
