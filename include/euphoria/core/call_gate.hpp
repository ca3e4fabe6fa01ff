#pragma once
// Where an upstream call asks whether it may start, besides the mount's own budget.
//
// The Fetcher's CallBudget knows only what this mount has in flight. A fleet of
// mounts of one tenant shares the tenant's slots, so each call also passes a gate:
// OpenGate lets every call through (a lone mount), redis::SharedBudget takes a lease
// from Redis. enter() may wait on the network, so it runs only on the Fetcher's own
// threads, never on a FUSE callback thread.

#include <cstdint>
#include <utility>

#include "euphoria/api/cancel.hpp"

namespace euphoria::core {

// What the call met, for a budget shared with other hosts.
enum class CallVerdict { unknown, admitted, exceeded };

class CallGate;

// The right to make one call; gives it back when destroyed.
class CallPass {
public:
    CallPass() noexcept = default;
    CallPass(CallGate* gate, std::uint64_t id) noexcept : gate_(gate), id_(id) {}
    ~CallPass() { reset(); }
    CallPass(CallPass&& other) noexcept
        : gate_(std::exchange(other.gate_, nullptr)), id_(other.id_), verdict_(other.verdict_) {}
    CallPass& operator=(CallPass&& other) noexcept {
        if (this != &other) {
            reset();
            gate_ = std::exchange(other.gate_, nullptr);
            id_ = other.id_;
            verdict_ = other.verdict_;
        }
        return *this;
    }
    CallPass(const CallPass&) = delete;
    CallPass& operator=(const CallPass&) = delete;

    void set_verdict(CallVerdict v) noexcept { verdict_ = v; }
    void reset() noexcept;

private:
    CallGate* gate_ = nullptr;
    std::uint64_t id_ = 0;
    CallVerdict verdict_ = CallVerdict::unknown;
};

class CallGate {
public:
    virtual ~CallGate() = default;
    // Blocks until one more call may start. Throws a cancelled api::ApiError when
    // `cancel` fires first, and a busy one (EAGAIN) when the gate stayed shut for its
    // wait limit: the readers' patience (busy_timeout) is spent, so the Fetcher
    // answers EAGAIN and does not retry. Never call it from a FUSE callback.
    virtual CallPass enter(api::CancelToken& cancel) = 0;

protected:
    friend class CallPass;
    virtual void leave(std::uint64_t id, CallVerdict verdict) noexcept = 0;
};

// A lone mount: only its own CallBudget limits it.
class OpenGate final : public CallGate {
public:
    CallPass enter(api::CancelToken&) override { return {}; }

private:
    void leave(std::uint64_t, CallVerdict) noexcept override {}
};

inline void CallPass::reset() noexcept {
    if (gate_) std::exchange(gate_, nullptr)->leave(id_, verdict_);
}

}  // namespace euphoria::core
