// ByteStage: the bounded ring between a download's receiving thread and its stage
// thread. Run under TSan as well (the tsan stage runs every unit test).

#include "catch_compat.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "euphoria/api/cancel.hpp"
#include "euphoria/api/error.hpp"
#include "euphoria/api/pipeline.hpp"

using euphoria::api::ApiError;
using euphoria::api::ByteStage;
using euphoria::api::CancelSubscription;
using euphoria::api::CancelToken;
using euphoria::api::ErrorKind;
using namespace std::chrono_literals;

namespace {

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    std::minstd_rand gen(7);
    for (auto& c : s) c = static_cast<char>(gen());
    return s;
}

// Holds the consumer until opened, so a test can fill the ring on purpose.
class Gate {
public:
    void open() {
        {
            std::lock_guard lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return open_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

}  // namespace

TEST_CASE("a stage hands every byte over in order, across the ring's wrap", "[pipeline]") {
    const std::string input = pattern(1 << 20);
    for (const std::size_t capacity : {std::size_t{1}, std::size_t{1000}, std::size_t{65536},
                                       ByteStage::default_capacity}) {
        INFO("capacity " << capacity);
        std::string output;
        ByteStage stage([&](const char* data, std::size_t size) { output.append(data, size); },
                        {}, capacity);
        std::minstd_rand gen(static_cast<unsigned>(capacity));
        std::size_t at = 0;
        while (at < input.size()) {
            const std::size_t n = std::min<std::size_t>(input.size() - at, gen() % 40000);
            REQUIRE(stage.push(input.data() + at, n));
            at += n;
        }
        CHECK(stage.finish() == nullptr);
        // finish() joined the stage: its writes are visible here without a lock.
        CHECK(output == input);
    }
}

TEST_CASE("a stage with nothing pushed finishes at once", "[pipeline]") {
    int calls = 0;
    ByteStage stage([&](const char*, std::size_t) { ++calls; });
    CHECK(stage.finish() == nullptr);
    CHECK(calls == 0);
}

TEST_CASE("a consumer's error stops the producer and comes back from finish", "[pipeline]") {
    std::atomic<int> hooks{0};
    std::size_t taken = 0;
    ByteStage stage(
        [&](const char*, std::size_t size) {
            taken += size;
            if (taken > 100000) throw ApiError(ENOSPC, ErrorKind::local, "the cache is full");
        },
        [&] { hooks.fetch_add(1); }, 4096);
    const std::string piece(1000, 'x');
    bool accepted = true;
    // The ring holds 4 KiB: the producer sees the stop within a few pushes of it.
    for (int i = 0; i < 10000 && accepted; ++i) accepted = stage.push(piece.data(), piece.size());
    CHECK_FALSE(accepted);
    CHECK(stage.failed());
    const std::exception_ptr error = stage.finish();
    REQUIRE(error != nullptr);
    try {
        std::rethrow_exception(error);
    } catch (const ApiError& e) {
        CHECK(e.error_number() == ENOSPC);
    }
    CHECK(hooks.load() == 1);
    CHECK_FALSE(stage.push(piece.data(), piece.size()));
}

TEST_CASE("an error after the last push still comes back from finish", "[pipeline]") {
    ByteStage stage([](const char*, std::size_t) { throw std::runtime_error("late"); });
    REQUIRE(stage.push("abc", 3));
    const std::exception_ptr error = stage.finish();
    REQUIRE(error != nullptr);
    CHECK_THROWS_WITH(std::rethrow_exception(error), "late");
}

TEST_CASE("cancel wakes a producer blocked on a full ring", "[pipeline][cancel]") {
    Gate gate;
    std::atomic<std::size_t> consumed{0};
    CancelToken cancel;
    std::promise<bool> pushed;
    auto result = pushed.get_future();
    {
        ByteStage stage(
            [&](const char*, std::size_t size) {
                gate.wait();
                consumed.fetch_add(size);
            },
            {}, 1024);
        CancelSubscription abandon(&cancel, [&] { stage.abandon(); });
        std::thread producer([&] {
            const std::string big(1 << 20, 'y');  // far more than the ring holds
            pushed.set_value(stage.push(big.data(), big.size()));
        });
        // The producer is stuck: the consumer holds its first piece, the ring is full.
        CHECK(result.wait_for(200ms) == std::future_status::timeout);
        const auto cancelled_at = std::chrono::steady_clock::now();
        cancel.cancel();
        REQUIRE(result.wait_for(5s) == std::future_status::ready);
        CHECK(std::chrono::steady_clock::now() - cancelled_at < 1s);
        CHECK_FALSE(result.get());
        producer.join();
        gate.open();  // the consumer finishes its piece and sees the stop
        CHECK(stage.finish() == nullptr);
    }
    // At most the piece the consumer held when the stage stopped.
    CHECK(consumed.load() <= 1024);
}

TEST_CASE("abandon wakes a producer waiting in finish for a slow consumer", "[pipeline][cancel]") {
    std::atomic<bool> stop{false};
    std::atomic<int> pieces{0};
    ByteStage stage(
        [&](const char*, std::size_t) {
            pieces.fetch_add(1);
            std::this_thread::sleep_for(20ms);
        },
        {}, 1);  // one byte per piece: 1000 bytes take 20 s to drain
    const std::string bytes(1000, 'z');
    std::thread producer([&] {
        (void)stage.push(bytes.data(), bytes.size());
        stop.store(true);
    });
    std::this_thread::sleep_for(100ms);
    stage.abandon();
    producer.join();
    const auto started = std::chrono::steady_clock::now();
    CHECK(stage.finish() == nullptr);
    CHECK(std::chrono::steady_clock::now() - started < 1s);
    CHECK(stop.load());
    CHECK(pieces.load() < 1000);
}

TEST_CASE("destroying a stage mid-stream joins its thread", "[pipeline]") {
    std::atomic<std::size_t> consumed{0};
    {
        ByteStage stage([&](const char*, std::size_t size) {
            consumed.fetch_add(size);
            std::this_thread::sleep_for(1ms);
        }, {}, 100);
        const std::string bytes(50, 'w');
        REQUIRE(stage.push(bytes.data(), bytes.size()));
    }
    // The destructor abandoned and joined: nothing runs after it, so this is stable.
    const std::size_t after = consumed.load();
    std::this_thread::sleep_for(20ms);
    CHECK(consumed.load() == after);
}
