#pragma once
// One FUSE request whose reply comes later, from whichever happens first: the
// completion of its work (on a Fetcher thread), or a FUSE_INTERRUPT.
//
// The rules come from libfuse's locking. An interrupt function runs under the
// request's lock; fuse_req_interrupt_func() takes that lock too, and so waits for a
// running interrupt function. Replying frees the request, unless an interrupt
// function is running, which holds a reference until it returns. Hence:
// - exactly one side claims the reply (an atomic flag);
// - the completion, having claimed, unregisters the interrupt function (which waits
//   for a running one) and only then replies;
// - the interrupt function replies EINTR itself and takes back the wait, but never
//   when it runs inside fuse_req_interrupt_func() at registration (the request was
//   interrupted before we saw it): replying there would free the lock that
//   registration still holds. arm() replies for it instead, once registration is over.

#include <fuse3/fuse_lowlevel.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "euphoria/core/filesystem.hpp"

namespace euphoria::fuse {

class PendingReply : public std::enable_shared_from_this<PendingReply> {
public:
    static std::shared_ptr<PendingReply> create(fuse_req_t req, core::Filesystem& fs) {
        return std::shared_ptr<PendingReply>(new PendingReply(req, fs));
    }
    PendingReply(const PendingReply&) = delete;
    PendingReply& operator=(const PendingReply&) = delete;

    // Registers for interrupts. False: the request was interrupted already, and has
    // been answered with EINTR; start no work for it.
    bool arm();
    // The wait that an interrupt must take back.
    void set_wait(core::WaitId id);
    // For the completion: true if it is now the one to reply (interrupts are then
    // off for this request); false if an interrupt answered it already.
    bool take();

    fuse_req_t req() const noexcept { return req_; }

private:
    PendingReply(fuse_req_t req, core::Filesystem& fs) : req_(req), fs_(fs) {}
    static void on_interrupt(fuse_req_t req, void* data);
    void cancel_wait();

    const fuse_req_t req_;
    core::Filesystem& fs_;
    std::atomic<bool> claimed_{false};
    // Guards the fields below. Leaf lock: nothing is called while it is held.
    std::mutex mutex_;
    bool registering_ = true;
    bool interrupted_early_ = false;
    bool cancelled_ = false;
    core::WaitId wait_ = 0;
};

}  // namespace euphoria::fuse
