#pragma once
// libfuse 3.14 (Debian 12) cannot tell the kernel three things we need it to know:
//  - lookups in one folder may run in parallel (FUSE_PARALLEL_DIROPS; libfuse 3.17),
//  - this server opens files in passthrough mode (FUSE_PASSTHROUGH; libfuse 3.16),
//  - which backing file an open uses (FOPEN_PASSTHROUGH and a backing id; 3.16).
// It does let a program carry the device traffic itself (fuse_session_custom_io).
// The session routes every request and reply through this class. It notes the INIT
// and OPEN requests by their unique ids and amends exactly their replies. All other
// bytes pass through untouched.

#include <sys/types.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "euphoria/core/stats.hpp"
#include "euphoria/fuse/backing_files.hpp"
#include "euphoria/fuse/kernel_abi.hpp"

namespace euphoria::fuse {


class ReplyAmender {
public:
    // Sets stats.passthrough to 1 once the kernel agrees to passthrough.
    ReplyAmender(PassthroughWish wish, core::Stats& stats) : wish_(wish), stats_(stats) {}

    // A request as read from the device. Never throws: it runs inside libfuse.
    void saw_request(const void* data, std::size_t size) noexcept;

    // The open reply whose file handle is `fh` must carry this backing id. Call it
    // before replying; withdraw() afterwards, with the ticket this returns, removes
    // the promise if the reply did not use it, and says so. The ticket matters: once
    // the reply is out, the handle can be released and its address reused by another
    // open with a promise of its own.
    std::uint64_t promise_backing(std::uint64_t fh, int backing_id);
    bool withdraw(std::uint64_t fh, std::uint64_t ticket) noexcept;

    // A reply, amended if it answers a noted request. `out` holds the iovecs to send
    // and `storage` any replaced payload; both must live until the write. Returns
    // the number of iovecs in `out`, or 0 when the reply goes out as it came.
    // Exposed so tests can check the bytes.
    struct Amended {
        std::array<iovec, 4> iov{};
        union {
            abi::InitOut init;
            abi::OpenOut open;
        } storage{};
    };
    int amend(const iovec* iov, int count, Amended& out) noexcept;

    // amend() then writev(2); keeps writev's errno, which libfuse reads.
    ssize_t write_reply(int fd, const iovec* iov, int count) noexcept;

    // True once the kernel has agreed to passthrough opens on this connection.
    bool passthrough_active() const noexcept { return passthrough_active_.load(); }

    // Requests whose replies are still to be looked at; 0 when the mount is idle.
    std::size_t awaited() const noexcept { return awaited_.load(); }

private:
    enum class Noted { nothing, init, open };
    Noted take(std::uint64_t unique) noexcept;
    void amend_init(abi::InitOut& reply) noexcept;
    bool amend_open(abi::OpenOut& reply) noexcept;

    const PassthroughWish wish_;
    core::Stats& stats_;
    std::atomic<bool> passthrough_active_{false};
    // Lets the hot path (read replies) skip the lock when nothing is awaited.
    std::atomic<std::size_t> awaited_{0};

    std::mutex mutex_;  // guards everything below; a leaf lock, held for a lookup only
    std::uint64_t init_unique_ = 0;
    std::uint64_t init_offered_ = 0;  // the kernel's INIT flags, flags2 in the top half
    bool init_awaited_ = false;
    std::unordered_set<std::uint64_t> open_uniques_;
    struct Promise {
        int backing_id;
        std::uint64_t ticket;
    };
    std::unordered_map<std::uint64_t, Promise> promised_;  // by fh
    std::uint64_t next_ticket_ = 1;
};

}  // namespace euphoria::fuse
