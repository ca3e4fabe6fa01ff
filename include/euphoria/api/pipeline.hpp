#pragma once
// Overlaps a download's two halves on two cores. The thread that runs libcurl (TLS
// receive) copies the body into a bounded ring; a stage thread takes it from there
// and runs the consumer (parse, base64 decode, Sink::write). A full ring blocks the
// receiving thread, so a slow sink slows the server down through TCP instead of
// growing memory.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace euphoria::api {

class ByteStage {
public:
    // Runs on the stage thread, with the bytes in order, in pieces of any size. It may
    // throw: the stage stops, and finish() hands the exception back.
    using Consumer = std::function<void(const char* data, std::size_t size)>;
    // Runs on the stage thread once, right after the consumer threw, so that a
    // producer waiting for something else (a socket) looks at failed() at once. Must
    // be cheap and thread-safe; an exception from it is dropped.
    using StopHook = std::function<void()>;

    // Four times the most the consumer takes at once, so the producer has room while
    // it works. More buys no speed (the consumer outruns TLS), and each download
    // pays it in resident memory, outside mem_cache_size.
    static constexpr std::size_t default_capacity = std::size_t{2} << 20;

    // Starts the stage thread (std::system_error if it cannot).
    explicit ByteStage(Consumer consume, StopHook on_failure = {},
                       std::size_t capacity = default_capacity);
    // Abandons whatever was not consumed yet and joins the thread.
    ~ByteStage();
    ByteStage(const ByteStage&) = delete;
    ByteStage& operator=(const ByteStage&) = delete;

    // Producer side, one thread. Copies all of `data` in, waiting while the ring is
    // full. False if the stage stopped first (the consumer threw, or abandon()): the
    // producer should stop, and finish() says why.
    bool push(const char* data, std::size_t size);

    // Producer side: no more bytes. Waits until the consumer has taken every byte
    // pushed (or the stage stopped), joins the thread, and returns the consumer's
    // exception, if any. Everything the consumer did happens before it returns. Never
    // throws. After abandon(), returns at once with nothing for the bytes dropped.
    std::exception_ptr finish() noexcept;

    // From any thread, also from a CancelToken callback: stops the stage as soon as
    // the consumer's current piece is done, and wakes a producer blocked in push() or
    // finish(). Unconsumed bytes are dropped.
    void abandon() noexcept;

    // The consumer threw. Lock-free, for a producer's poll loop.
    bool failed() const noexcept { return failed_flag_.load(std::memory_order_acquire); }

private:
    void run() noexcept;
    bool stopped() const noexcept { return abandoned_ || failure_ != nullptr; }

    const std::size_t capacity_;
    const std::size_t batch_;  // what the consumer waits for, a little, before it takes
    const std::unique_ptr<char[]> ring_;
    Consumer consume_;
    StopHook on_failure_;

    // Guards every member below it but failed_flag_. A leaf lock: nothing else is
    // taken under it and no callback runs under it. CancelToken callbacks take it
    // (abandon()) while their token's lock is held, which is the only order.
    std::mutex mutex_;
    std::condition_variable changed_;  // bytes pushed or consumed, end, stop
    // Byte counts since the start; the ring holds [tail_, head_). The producer fills
    // ring_ past head_ and the consumer reads it below head_ outside the lock: each
    // range belongs to one side until the counter moves under the lock.
    std::uint64_t head_ = 0;
    std::uint64_t tail_ = 0;
    bool ended_ = false;      // finish() was called
    bool abandoned_ = false;  // abandon() was called
    std::exception_ptr failure_;
    std::atomic<bool> failed_flag_{false};

    std::thread thread_;  // last: starts once everything above exists
};

}  // namespace euphoria::api
