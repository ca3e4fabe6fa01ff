// The Fetcher passes every upstream call through its CallGate (a fleet's shared
// budget), on its own threads: a fetch() never waits for the gate, each call tells
// the gate what it met, and a cancelled job stops waiting at the gate.

#include <condition_variable>
#include <future>
#include <mutex>
#include <vector>

#include "euphoria/api/error.hpp"
#include "euphoria/core/call_gate.hpp"
#include "fetcher_rig.hpp"

using namespace euphoria;
using namespace euphoria::test;

namespace {

// Records what passes; while closed, enter() blocks (honouring cancel) until opened.
class FakeGate final : public core::CallGate {
public:
    core::CallPass enter(api::CancelToken& cancel) override {
        api::CancelSubscription wake(&cancel, [this] {
            std::lock_guard lock(m_);
            cv_.notify_all();
        });
        std::unique_lock lock(m_);
        ++waiting_;
        cv_.notify_all();
        cv_.wait(lock, [&] { return open_ || shut_ || cancel.cancelled(); });
        --waiting_;
        if (!open_ && shut_) {
            ++refused_;
            throw api::ApiError(EAGAIN, api::ErrorKind::busy, "the fleet stayed busy");
        }
        if (!open_) {
            ++cancelled_;
            throw api::ApiError(EINTR, api::ErrorKind::cancelled, "cancelled");
        }
        ++entered_;
        return core::CallPass(this, next_++);
    }
    void set_open(bool open) {
        std::lock_guard lock(m_);
        open_ = open;
        cv_.notify_all();
    }
    // Closed for good: each enter() gives up at once, as at the end of its wait limit.
    void shut() {
        std::lock_guard lock(m_);
        open_ = false;
        shut_ = true;
        cv_.notify_all();
    }
    int refused() {
        std::lock_guard lock(m_);
        return refused_;
    }
    int waiting() {
        std::lock_guard lock(m_);
        return waiting_;
    }
    int entered() {
        std::lock_guard lock(m_);
        return entered_;
    }
    int cancelled() {
        std::lock_guard lock(m_);
        return cancelled_;
    }
    std::vector<core::CallVerdict> verdicts() {
        std::lock_guard lock(m_);
        return verdicts_;
    }

private:
    void leave(std::uint64_t, core::CallVerdict v) noexcept override {
        std::lock_guard lock(m_);
        verdicts_.push_back(v);
    }
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = true;
    bool shut_ = false;
    int waiting_ = 0, entered_ = 0, cancelled_ = 0, refused_ = 0;
    std::uint64_t next_ = 1;
    std::vector<core::CallVerdict> verdicts_;
};

struct GatedRig {
    TempDir dir;
    FakeClient client;
    FakeClock clock;
    core::Stats stats;
    core::NullLogger logger;
    FakeGate gate;
    std::shared_ptr<core::ByteBudget> memory = std::make_shared<core::ByteBudget>(1 << 20);
    std::shared_ptr<core::ByteBudget> disk = std::make_shared<core::ByteBudget>(8 << 20);
    core::ContentCache cache{core::CacheLimits{}, memory, disk};
    std::unique_ptr<core::Fetcher> fetcher;

    explicit GatedRig(unsigned retries = 0) {
        core::FetcherConfig config;
        config.retry.retries = retries;
        config.interrupt_grace = 0ms;
        config.builder = {dir.path(), 256 << 10, memory, disk};
        fetcher = std::make_unique<core::Fetcher>(client, cache, clock, stats, logger, config,
                                                  [] { return 0.5; }, &gate);
    }
    ~GatedRig() { fetcher.reset(); }
};

}  // namespace

TEST_CASE("every upstream call passes the gate and tells it what it met", "[core][gate]") {
    GatedRig rig;
    rig.client.script("ok", {FakeReply::ok("abc")});
    rig.client.script("gone", {FakeReply::fail(ENOENT, api::ErrorKind::not_found)});
    rig.client.script("full", {FakeReply::fail(EAGAIN, api::ErrorKind::busy), FakeReply::ok("f")});
    CHECK(rig.fetcher->get("ok", nullptr).error == 0);
    CHECK(rig.fetcher->get("gone", nullptr).error == ENOENT);
    using V = core::CallVerdict;
    CHECK(rig.gate.verdicts() == std::vector<V>{V::admitted, V::admitted});

    std::promise<core::FetchResult> full;
    rig.fetcher->fetch("full", [&](core::FetchResult r) { full.set_value(std::move(r)); });
    REQUIRE(eventually([&] { return rig.stats.exceeded_replies == 1; }));
    rig.clock.advance(1s);  // past the mount's own pause
    CHECK(full.get_future().get().error == 0);
    CHECK(rig.gate.verdicts() == std::vector<V>{V::admitted, V::admitted, V::exceeded, V::admitted});
    CHECK(rig.gate.entered() == rig.client.total_calls());
}

TEST_CASE("a fetch never waits for the gate, and a cancelled job leaves it", "[core][gate]") {
    GatedRig rig;
    rig.client.script("slow", {FakeReply::ok("s")});
    rig.gate.set_open(false);
    bool answered = false;
    const auto id = rig.fetcher->fetch("slow", [&](core::FetchResult) { answered = true; });
    // fetch() returned with the job queued: the wait happens on a Fetcher thread.
    CHECK(id != 0);
    REQUIRE(eventually([&] { return rig.gate.waiting() == 1; }));
    CHECK(rig.client.total_calls() == 0);
    // The reader is interrupted; with no grace the job is cancelled, and its thread
    // stops waiting at the gate without making the call.
    CHECK(rig.fetcher->cancel_wait(id));
    REQUIRE(eventually([&] { return rig.gate.cancelled() == 1; }));
    CHECK(rig.client.total_calls() == 0);
    CHECK_FALSE(answered);
    // The gate opens: the next fetch goes through.
    rig.gate.set_open(true);
    CHECK(rig.fetcher->get("slow", nullptr).error == 0);
    CHECK(rig.client.total_calls() == 1);
}

TEST_CASE("a gate shut past its wait limit is EAGAIN, with no call and no retry", "[core][gate]") {
    GatedRig rig(3);
    rig.client.script("waits", {FakeReply::ok("w")});
    rig.gate.shut();
    const auto r = rig.fetcher->get("waits", nullptr);
    CHECK(r.error == EAGAIN);
    CHECK_THAT(r.message, Catch::Contains("the fleet stayed busy"));
    CHECK(rig.gate.refused() == 1);  // the readers' patience is spent: not retried
    CHECK(rig.stats.retries == 0);
    CHECK(rig.stats.exceeded_replies == 0);  // no API reply said so
    CHECK(rig.client.total_calls() == 0);
    // Not cached as an answer: once the gate opens, the name is fetched.
    rig.gate.set_open(true);
    CHECK(rig.fetcher->get("waits", nullptr).error == 0);
    CHECK(rig.client.total_calls() == 1);
}
