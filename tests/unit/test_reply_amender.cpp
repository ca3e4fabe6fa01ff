// FUSE passthrough on libfuse 3.14/3.15, without a mount: the INIT and OPEN reply
// amendments on the wire. (libfuse 3.16+ has the API, and this is not built there.)

#include "catch_compat.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "euphoria/fuse/reply_amender.hpp"

using namespace euphoria;
using fuse::ReplyAmender;
namespace abi = fuse::abi;

namespace {

std::vector<char> request(std::uint32_t opcode, std::uint64_t unique, const void* body = nullptr,
                          std::size_t body_size = 0) {
    fuse_in_header in{};
    in.len = static_cast<std::uint32_t>(sizeof in + body_size);
    in.opcode = opcode;
    in.unique = unique;
    std::vector<char> buf(sizeof in + body_size);
    std::memcpy(buf.data(), &in, sizeof in);
    if (body_size) std::memcpy(buf.data() + sizeof in, body, body_size);
    return buf;
}

std::vector<char> init_request(std::uint64_t unique, std::uint64_t offered) {
    fuse_init_in init{};
    init.major = 7;
    init.minor = 40;
    init.flags = static_cast<std::uint32_t>(offered);
    init.flags2 = static_cast<std::uint32_t>(offered >> 32);
    return request(FUSE_INIT, unique, &init, sizeof init);
}

// A reply as libfuse hands it to writev: the header alone, then the payload.
template <class Payload>
struct Reply {
    fuse_out_header header{};
    Payload payload{};
    iovec iov[2]{};
    Reply(std::uint64_t unique, int error = 0) {
        header.unique = unique;
        header.error = error;
        header.len = sizeof header + sizeof payload;
        iov[0] = {&header, sizeof header};
        iov[1] = {&payload, sizeof payload};
    }
};

template <class Payload>
Payload payload_of(const ReplyAmender::Amended& a) {
    Payload p;
    REQUIRE(a.iov[1].iov_len == sizeof p);
    std::memcpy(&p, a.iov[1].iov_base, sizeof p);
    return p;
}

constexpr std::uint64_t offered_all = FUSE_INIT_EXT | FUSE_PARALLEL_DIROPS | abi::passthrough;
constexpr fuse::PassthroughWish wish{true, 1};

}  // namespace

TEST_CASE("INIT: the kernel's offers of parallel lookups and passthrough are accepted") {
    core::Stats stats;
    ReplyAmender amender(wish, stats);
    auto req = init_request(2, offered_all);
    amender.saw_request(req.data(), req.size());
    REQUIRE_FALSE(amender.passthrough_active());
    CHECK(amender.awaited() == 1);

    Reply<abi::InitOut> reply(2);
    reply.payload.major = 7;
    reply.payload.minor = 38;
    reply.payload.max_write = 1 << 20;
    reply.payload.flags = FUSE_ASYNC_READ;
    ReplyAmender::Amended out;
    REQUIRE(amender.amend(reply.iov, 2, out) == 2);
    const auto init = payload_of<abi::InitOut>(out);
    CHECK(init.flags == (FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_INIT_EXT));
    CHECK(init.flags2 == (abi::passthrough >> 32));
    CHECK(init.max_stack_depth == 1);
    CHECK(init.max_write == 1u << 20);
    CHECK(init.minor == 38);
    CHECK(amender.passthrough_active());
    CHECK(stats.passthrough == 1);
    CHECK(amender.awaited() == 0);
    // libfuse's own buffer is left as it was.
    CHECK(reply.payload.flags == FUSE_ASYNC_READ);
    CHECK(std::memcmp(out.iov[0].iov_base, &reply.header, sizeof reply.header) == 0);
}

// One INIT exchange with a fresh amender: the reply as sent (unamended if so).
struct Negotiated {
    core::Stats stats;
    std::optional<ReplyAmender> amender;
    abi::InitOut sent{};
    bool amended = false;
    Negotiated(fuse::PassthroughWish w, std::uint64_t offered, int error = 0) {
        amender.emplace(w, stats);
        auto req = init_request(2, offered);
        amender->saw_request(req.data(), req.size());
        Reply<abi::InitOut> reply(2, error);
        ReplyAmender::Amended out;
        amended = amender->amend(reply.iov, 2, out) == 2;
        sent = amended ? payload_of<abi::InitOut>(out) : reply.payload;
    }
};

TEST_CASE("INIT: nothing is claimed that the kernel did not offer or the user refused") {
    SECTION("an older kernel: no passthrough offered") {
        Negotiated n(wish, FUSE_INIT_EXT | FUSE_PARALLEL_DIROPS);
        CHECK(n.sent.flags == FUSE_PARALLEL_DIROPS);
        CHECK(n.sent.flags2 == 0);
        CHECK(n.sent.max_stack_depth == 0);
        CHECK_FALSE(n.amender->passthrough_active());
        CHECK(n.stats.passthrough == 0);
    }
    SECTION("a cache folder on overlayfs asks for depth 2") {
        Negotiated n(fuse::PassthroughWish{true, 2}, offered_all);
        CHECK(n.sent.max_stack_depth == 2);
        CHECK(n.amender->passthrough_active());
    }
    SECTION("-o nopassthrough, or no CAP_SYS_ADMIN") {
        Negotiated n(fuse::PassthroughWish{false, 1}, offered_all);
        CHECK(n.sent.flags == FUSE_PARALLEL_DIROPS);
        CHECK(n.sent.flags2 == 0);
        CHECK_FALSE(n.amender->passthrough_active());
    }
    SECTION("passthrough bit without FUSE_INIT_EXT means nothing") {
        Negotiated n(wish, FUSE_PARALLEL_DIROPS | abi::passthrough);
        CHECK(n.sent.flags2 == 0);
        CHECK_FALSE(n.amender->passthrough_active());
    }
    SECTION("a failed INIT is passed on untouched") {
        Negotiated n(wish, offered_all, -EPROTO);
        CHECK_FALSE(n.amended);
        CHECK_FALSE(n.amender->passthrough_active());
    }
}

TEST_CASE("OPEN: only the promised reply to a noted open gets a backing id") {
    core::Stats stats;
    ReplyAmender amender(wish, stats);
    auto open = request(FUSE_OPEN, 8);
    amender.saw_request(open.data(), open.size());
    const std::uint64_t fh = 0x5555'0000'1230;
    const auto ticket = amender.promise_backing(fh, 3);

    SECTION("a reply to another request with the same shape is not touched") {
        Reply<abi::OpenOut> other(10);
        other.payload.fh = fh;
        ReplyAmender::Amended out;
        CHECK(amender.amend(other.iov, 2, out) == 0);
    }

    Reply<abi::OpenOut> reply(8);
    reply.payload.fh = fh;
    reply.payload.open_flags = FOPEN_KEEP_CACHE;
    ReplyAmender::Amended out;
    REQUIRE(amender.amend(reply.iov, 2, out) == 2);
    const auto o = payload_of<abi::OpenOut>(out);
    CHECK(o.fh == fh);
    CHECK(o.backing_id == 3);
    // The kernel fails a passthrough open carrying keep_cache with EIO.
    CHECK(o.open_flags == abi::fopen_passthrough);
    CHECK_FALSE(amender.withdraw(fh, ticket));  // used up
    CHECK(amender.awaited() == 0);

    // Each noted open is amended once: a stray second reply is not.
    ReplyAmender::Amended again;
    CHECK(amender.amend(reply.iov, 2, again) == 0);
}

TEST_CASE("OPEN: an open without a promise, or a failed one, goes out as it came") {
    core::Stats stats;
    ReplyAmender amender(wish, stats);
    auto open = request(FUSE_OPEN, 8);
    amender.saw_request(open.data(), open.size());

    SECTION("no promise: cached open, bytes unchanged") {
        Reply<abi::OpenOut> reply(8);
        reply.payload.fh = 42;
        reply.payload.open_flags = FOPEN_KEEP_CACHE;
        ReplyAmender::Amended out;
        CHECK(amender.amend(reply.iov, 2, out) == 0);
    }
    SECTION("an error reply, a header alone as libfuse sends it, keeps the promise") {
        const auto ticket = amender.promise_backing(42, 7);
        Reply<abi::OpenOut> reply(8, -ENOENT);
        reply.header.len = sizeof reply.header;
        ReplyAmender::Amended out;
        CHECK(amender.amend(reply.iov, 1, out) == 0);
        CHECK(amender.withdraw(42, ticket));
        // ...and the open is forgotten: a later reply with that unique is not amended.
        CHECK(amender.awaited() == 0);
        amender.promise_backing(42, 7);
        Reply<abi::OpenOut> late(8);
        late.payload.fh = 42;
        CHECK(amender.amend(late.iov, 2, out) == 0);
    }
}

TEST_CASE("OPEN: a withdrawn ticket never removes a later promise for a reused handle") {
    core::Stats stats;
    ReplyAmender amender(wish, stats);
    const auto first = amender.promise_backing(77, 1);
    // The first open's reply went out unamended; its handle was released, and the
    // same address now belongs to another open with its own promise.
    const auto second = amender.promise_backing(77, 2);
    CHECK_FALSE(amender.withdraw(77, first));
    CHECK(amender.withdraw(77, second));
}

TEST_CASE("OPEN: without passthrough, opens are not even noted") {
    core::Stats stats;
    ReplyAmender amender(fuse::PassthroughWish{false, 1}, stats);
    auto open = request(FUSE_OPEN, 8);
    amender.saw_request(open.data(), open.size());
    CHECK(amender.awaited() == 0);
}

TEST_CASE("Many threads noting opens and replying leave nothing behind") {
    core::Stats stats;
    ReplyAmender amender(wish, stats);
    std::vector<std::thread> threads;
    std::atomic<int> amended{0};
    std::atomic<int> wrong{0};  // Catch2 2.x assertions are not thread-safe: count here
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (std::uint64_t i = 0; i < 2000; ++i) {
                const std::uint64_t unique = (i * 4 + static_cast<std::uint64_t>(t)) * 2 + 2;
                const std::uint64_t fh = unique * 16;
                auto open = request(FUSE_OPEN, unique);
                amender.saw_request(open.data(), open.size());
                const bool promise = i % 2 == 0;
                const auto ticket = promise ? amender.promise_backing(fh, 9) : 0;
                Reply<abi::OpenOut> reply(unique, i % 7 == 0 ? -ENOENT : 0);
                reply.payload.fh = fh;
                ReplyAmender::Amended out;
                const int n = amender.amend(reply.iov, i % 7 == 0 ? 1 : 2, out);
                if (n > 0) {
                    abi::OpenOut o;
                    std::memcpy(&o, out.iov[1].iov_base, sizeof o);
                    if (o.backing_id != 9) wrong.fetch_add(1);
                    amended.fetch_add(1);
                }
                if (promise && amender.withdraw(fh, ticket) != (n == 0)) wrong.fetch_add(1);
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(wrong == 0);
    CHECK(amender.awaited() == 0);
    // Even i: 1000 per thread, of which the i % 7 == 0 ones failed (143 per thread).
    CHECK(amended == 4 * (1000 - 143));
}

TEST_CASE("Malformed traffic is ignored, never read past its end") {
    core::Stats stats;
    ReplyAmender amender(wish, stats);
    char tiny[8] = {};
    amender.saw_request(tiny, sizeof tiny);
    // An INIT cut short after the header: the missing offers count as none.
    auto req = init_request(2, offered_all);
    amender.saw_request(req.data(), sizeof(fuse_in_header) + 4);
    Reply<abi::InitOut> reply(2);
    ReplyAmender::Amended out;
    REQUIRE(amender.amend(reply.iov, 2, out) == 2);
    CHECK_FALSE(amender.passthrough_active());
    // A header-only reply has nothing to amend.
    fuse_out_header h{};
    iovec one{&h, sizeof h};
    CHECK(amender.amend(&one, 1, out) == 0);
}

TEST_CASE("write_reply writes the amended bytes and keeps writev's errno") {
    core::Stats stats;
    ReplyAmender amender(wish, stats);
    auto open = request(FUSE_OPEN, 8);
    amender.saw_request(open.data(), open.size());
    amender.promise_backing(99, 5);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    Reply<abi::OpenOut> reply(8);
    reply.payload.fh = 99;
    REQUIRE(amender.write_reply(fds[1], reply.iov, 2) == static_cast<ssize_t>(reply.header.len));
    char buf[64];
    REQUIRE(::read(fds[0], buf, sizeof buf) == static_cast<ssize_t>(reply.header.len));
    abi::OpenOut o;
    std::memcpy(&o, buf + sizeof(fuse_out_header), sizeof o);
    CHECK(o.backing_id == 5);
    CHECK(o.open_flags == abi::fopen_passthrough);
    ::close(fds[0]);
    ::close(fds[1]);

    errno = 0;
    CHECK(amender.write_reply(fds[1], reply.iov, 2) == -1);
    CHECK(errno == EBADF);
}
