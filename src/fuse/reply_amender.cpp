#include "euphoria/fuse/reply_amender.hpp"

#include <sys/uio.h>

#include <cerrno>
#include <cstring>

namespace euphoria::fuse {

void ReplyAmender::saw_request(const void* data, std::size_t size) noexcept {
    if (size < sizeof(fuse_in_header)) return;
    fuse_in_header in;
    std::memcpy(&in, data, sizeof in);
    // Without passthrough no open reply needs amending, so none is noted.
    if (in.opcode != FUSE_INIT && !(in.opcode == FUSE_OPEN && wish_.wanted)) return;
    try {
        std::lock_guard lock(mutex_);
        if (in.opcode == FUSE_OPEN) {
            if (open_uniques_.insert(in.unique).second) awaited_.fetch_add(1);
            return;
        }
        fuse_init_in init{};
        std::memcpy(&init, static_cast<const char*>(data) + sizeof in,
                    std::min(sizeof init, size - sizeof in));
        init_offered_ = init.flags;
        if (init.flags & FUSE_INIT_EXT) init_offered_ |= std::uint64_t{init.flags2} << 32;
        init_unique_ = in.unique;
        if (!init_awaited_) awaited_.fetch_add(1);
        init_awaited_ = true;
    } catch (...) {
        // Out of memory noting an open: its reply goes out unamended, as a cached open.
    }
}

std::uint64_t ReplyAmender::promise_backing(std::uint64_t fh, int backing_id) {
    std::lock_guard lock(mutex_);
    const auto ticket = next_ticket_++;
    promised_.insert_or_assign(fh, Promise{backing_id, ticket});
    return ticket;
}

bool ReplyAmender::withdraw(std::uint64_t fh, std::uint64_t ticket) noexcept {
    std::lock_guard lock(mutex_);
    const auto it = promised_.find(fh);
    if (it == promised_.end() || it->second.ticket != ticket) return false;
    promised_.erase(it);
    return true;
}

ReplyAmender::Noted ReplyAmender::take(std::uint64_t unique) noexcept {
    if (awaited_.load() == 0) return Noted::nothing;
    std::lock_guard lock(mutex_);
    if (init_awaited_ && unique == init_unique_) {
        init_awaited_ = false;
        awaited_.fetch_sub(1);
        return Noted::init;
    }
    if (open_uniques_.erase(unique) > 0) {
        awaited_.fetch_sub(1);
        return Noted::open;
    }
    return Noted::nothing;
}

void ReplyAmender::amend_init(abi::InitOut& reply) noexcept {
    std::uint64_t offered = 0;
    {
        std::lock_guard lock(mutex_);
        offered = init_offered_;
    }
    if (offered & FUSE_PARALLEL_DIROPS) reply.flags |= FUSE_PARALLEL_DIROPS;
    // The kernel refuses passthrough beside a writeback cache; we never ask for one.
    if (wish_.wanted && (offered & FUSE_INIT_EXT) && (offered & abi::passthrough) &&
        !(reply.flags & FUSE_WRITEBACK_CACHE)) {
        reply.flags |= FUSE_INIT_EXT;
        reply.flags2 |= static_cast<std::uint32_t>(abi::passthrough >> 32);
        reply.max_stack_depth = wish_.stack_depth;
        passthrough_active_.store(true);
        stats_.passthrough.store(1);
    }
}

bool ReplyAmender::amend_open(abi::OpenOut& reply) noexcept {
    std::lock_guard lock(mutex_);
    const auto it = promised_.find(reply.fh);
    if (it == promised_.end()) return false;
    // The kernel fails a passthrough open that carries any other flag (keep_cache
    // among them) with EIO: the page cache those flags steer is not used.
    reply.open_flags = (reply.open_flags & abi::fopen_passthrough_mask) | abi::fopen_passthrough;
    reply.backing_id = it->second.backing_id;
    promised_.erase(it);
    return true;
}

int ReplyAmender::amend(const iovec* iov, int count, Amended& out) noexcept {
    // libfuse sends the header alone in iov[0]: alone for an error, followed by a
    // fixed-size reply in iov[1] for a success.
    if (count < 1 || iov[0].iov_len != sizeof(fuse_out_header)) return 0;
    fuse_out_header header;
    std::memcpy(&header, iov[0].iov_base, sizeof header);
    // Taken whatever the reply, so a failed open is forgotten like any other.
    const Noted noted = take(header.unique);
    if (noted == Noted::nothing || header.error != 0) return 0;
    if (count < 2 || count > static_cast<int>(out.iov.size())) return 0;

    for (int i = 0; i < count; ++i) out.iov[static_cast<std::size_t>(i)] = iov[i];
    if (noted == Noted::init) {
        // A short INIT reply (protocol < 7.23) has no room for the newer fields.
        if (iov[1].iov_len != sizeof(abi::InitOut)) return 0;
        std::memcpy(&out.storage.init, iov[1].iov_base, sizeof(abi::InitOut));
        amend_init(out.storage.init);
        out.iov[1].iov_base = &out.storage.init;
        return count;
    }
    if (iov[1].iov_len != sizeof(abi::OpenOut)) return 0;
    std::memcpy(&out.storage.open, iov[1].iov_base, sizeof(abi::OpenOut));
    if (!amend_open(out.storage.open)) return 0;  // a cached open
    out.iov[1].iov_base = &out.storage.open;
    return count;
}

ssize_t ReplyAmender::write_reply(int fd, const iovec* iov, int count) noexcept {
    // Every read reply comes through here: no scratch space unless a reply is due.
    if (awaited_.load() == 0) return ::writev(fd, iov, count);
    Amended amended;
    const int n = amend(iov, count, amended);
    if (n > 0) return ::writev(fd, amended.iov.data(), n);
    return ::writev(fd, iov, count);
}

}  // namespace euphoria::fuse
