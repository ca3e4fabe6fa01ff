#include "euphoria/api/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

namespace euphoria::api {

namespace {

// The most the consumer takes at once. Handing back room in steps, rather than a
// whole ring's worth at a time, keeps the producer (and so the socket) moving while
// the consumer works.
constexpr std::size_t max_take = std::size_t{512} << 10;
// TLS hands libcurl one record (16 KiB) at a time. Waking the consumer for each would
// cost two context switches per 12 KiB decoded; it waits for this much instead, or
// for `linger` once anything is there, so a slow link still sees its first bytes at
// once.
constexpr std::size_t min_take = std::size_t{128} << 10;
constexpr auto linger = std::chrono::milliseconds(1);

}  // namespace

ByteStage::ByteStage(Consumer consume, StopHook on_failure, std::size_t capacity)
    : capacity_(std::max<std::size_t>(capacity, 1)),
      batch_(std::min(min_take, capacity_)),
      ring_(std::make_unique_for_overwrite<char[]>(capacity_)),
      consume_(std::move(consume)),
      on_failure_(std::move(on_failure)),
      thread_([this] { run(); }) {}

ByteStage::~ByteStage() {
    abandon();
    if (thread_.joinable()) thread_.join();
}

bool ByteStage::push(const char* data, std::size_t size) {
    while (size > 0) {
        std::uint64_t head = 0;
        std::size_t n = 0;
        {
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [&] { return stopped() || head_ - tail_ < capacity_; });
            if (stopped()) return false;
            head = head_;
            const auto at = static_cast<std::size_t>(head % capacity_);
            const auto room = capacity_ - static_cast<std::size_t>(head_ - tail_);
            n = std::min({size, room, capacity_ - at});
        }
        // Outside the lock: [head, head + n) is free room only the producer writes.
        std::memcpy(ring_.get() + head % capacity_, data, n);
        bool wake = false;
        {
            std::lock_guard lock(mutex_);
            const auto before = head - tail_;
            head_ = head + n;
            // The consumer sleeps without a timeout only on an empty ring, and lingers
            // otherwise until a batch is there.
            wake = before == 0 || (before < batch_ && head_ - tail_ >= batch_);
        }
        if (wake) changed_.notify_all();
        data += n;
        size -= n;
    }
    return true;
}

std::exception_ptr ByteStage::finish() noexcept {
    {
        std::lock_guard lock(mutex_);
        ended_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
    // The thread is gone: nothing else touches failure_ now.
    return failure_;
}

void ByteStage::abandon() noexcept {
    {
        std::lock_guard lock(mutex_);
        abandoned_ = true;
    }
    changed_.notify_all();
}

void ByteStage::run() noexcept {
    try {
        while (true) {
            std::uint64_t tail = 0;
            std::size_t n = 0;
            {
                std::unique_lock lock(mutex_);
                changed_.wait(lock, [&] { return abandoned_ || ended_ || head_ != tail_; });
                changed_.wait_for(lock, linger, [&] {
                    return abandoned_ || ended_ || head_ - tail_ >= batch_;
                });
                if (abandoned_ || head_ == tail_) return;  // abandoned, or ended and drained
                tail = tail_;
                const auto at = static_cast<std::size_t>(tail % capacity_);
                n = std::min({static_cast<std::size_t>(head_ - tail_), capacity_ - at, max_take});
            }
            // Outside the lock: [tail, tail + n) was pushed, and only the consumer reads it.
            consume_(ring_.get() + tail % capacity_, n);
            {
                std::lock_guard lock(mutex_);
                tail_ = tail + n;
            }
            changed_.notify_all();
        }
    } catch (...) {
        {
            std::lock_guard lock(mutex_);
            failure_ = std::current_exception();
            failed_flag_.store(true, std::memory_order_release);
        }
        changed_.notify_all();
        try {
            if (on_failure_) on_failure_();
        } catch (...) {  // NOLINT(bugprone-empty-catch): a wake-up hint, nothing to report
        }
    }
}

}  // namespace euphoria::api
