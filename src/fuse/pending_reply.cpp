#include "pending_reply.hpp"

#include <cerrno>

namespace euphoria::fuse {

bool PendingReply::arm() {
    fuse_req_interrupt_func(req_, &PendingReply::on_interrupt, this);
    {
        std::lock_guard lock(mutex_);
        registering_ = false;
        if (!interrupted_early_) return true;
    }
    // Through take(): it unregisters under the request's lock, so a second
    // INTERRUPT already inside libfuse finishes with this object before it goes.
    if (take()) fuse_reply_err(req_, EINTR);
    return false;
}

void PendingReply::set_wait(core::WaitId id) {
    bool cancel = false;
    {
        std::lock_guard lock(mutex_);
        wait_ = id;
        cancel = cancelled_ && id != 0;
    }
    if (cancel) fs_.cancel(id);
}

bool PendingReply::take() {
    if (claimed_.exchange(true)) return false;
    fuse_req_interrupt_func(req_, nullptr, nullptr);
    return true;
}

void PendingReply::cancel_wait() {
    core::WaitId id = 0;
    {
        std::lock_guard lock(mutex_);
        cancelled_ = true;
        id = wait_;
    }
    if (id != 0) fs_.cancel(id);
}

void PendingReply::on_interrupt(fuse_req_t req, void* data) {
    auto* pending = static_cast<PendingReply*>(data);
    {
        std::lock_guard lock(pending->mutex_);
        if (pending->registering_) {
            pending->interrupted_early_ = true;
            return;
        }
    }
    // Alive here: until this function returns, a completion that claimed waits in
    // take(), and one that did not claim has not yet dropped its reference.
    auto self = pending->shared_from_this();
    if (self->claimed_.exchange(true)) return;
    try {
        fuse_reply_err(req, EINTR);
        // The download goes on for the grace period; a retried lookup joins it.
        self->cancel_wait();
    } catch (...) {
    }
}

}  // namespace euphoria::fuse
