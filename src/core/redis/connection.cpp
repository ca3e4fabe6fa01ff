#include "euphoria/core/redis/connection.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/time.h>

#include <cerrno>

#include "tls.hpp"

namespace euphoria::core::redis {

namespace {

struct FreeReply {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, FreeReply>;

timeval to_timeval(std::chrono::milliseconds d) {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
    return tv;
}

Reply convert(const redisReply& r) {
    Reply out;
    switch (r.type) {
    case REDIS_REPLY_INTEGER:
        out.type = Reply::Type::integer;
        out.integer = r.integer;
        break;
    case REDIS_REPLY_STRING:
        out.type = Reply::Type::string;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_STATUS:
        out.type = Reply::Type::status;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_ARRAY:
        out.type = Reply::Type::array;
        out.elements.reserve(r.elements);
        for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(convert(*r.element[i]));
        break;
    case REDIS_REPLY_ERROR:
        throw ReplyError(std::string(r.str, r.len));
    default:  // nil, and RESP3's kinds, which RESP2 (our only protocol) never sends
        break;
    }
    return out;
}

std::string context_error(const redisContext* c, const std::string& what) {
    if (!c) return what + ": out of memory";
    return what + ": " + (c->errstr[0] ? std::string(c->errstr) : "connection lost");
}

}  // namespace

long long Reply::as_integer() const {
    if (type == Type::integer) return integer;
    if (type == Type::string || type == Type::status) {
        try {
            return std::stoll(text);
        } catch (const std::exception&) {
        }
    }
    throw ReplyError("Redis: expected an integer reply");
}

const Reply& Reply::at(std::size_t i) const {
    if (type != Type::array || i >= elements.size()) throw ReplyError("Redis: unexpected reply shape");
    return elements[i];
}

void Connection::Free::operator()(redisContext* c) const noexcept { redisFree(c); }

Connection::Connection(const Address& address, const api::Secret& password,
                       std::chrono::milliseconds timeout) {
    const auto tv = to_timeval(timeout);
    redisContext* c = address.is_unix() ? redisConnectUnixWithTimeout(address.unix_path.c_str(), tv)
                                        : redisConnectWithTimeout(address.host.c_str(), address.port, tv);
    context_.reset(c);
    if (!c || c->err) throw ConnectionError(context_error(c, "cannot connect to " + address.describe()));
    if (redisSetTimeout(c, tv) != REDIS_OK) throw ConnectionError(context_error(c, "Redis timeout"));
    // After the timeout, which bounds the handshake too.
    if (address.tls) start_tls(*c, address);
    if (!password.empty()) command({"AUTH", password.reveal()});
    if (address.db) {
        const std::string db = std::to_string(address.db);
        command({"SELECT", db});
    }
}

Connection::~Connection() = default;
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;

int Connection::fd() const noexcept { return context_ ? context_->fd : -1; }

void Connection::send(const std::vector<std::string_view>& args) {
    if (!context_ || context_->err) throw ConnectionError(context_error(context_.get(), "Redis"));
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(),
                               lens.data()) != REDIS_OK) {
        throw ConnectionError(context_error(context_.get(), "Redis"));
    }
    int done = 0;
    while (!done) {
        if (redisBufferWrite(context_.get(), &done) != REDIS_OK) {
            throw ConnectionError(context_error(context_.get(), "Redis"));
        }
    }
}

Reply Connection::command(const std::vector<std::string_view>& args) {
    send(args);
    void* raw = nullptr;
    if (redisGetReply(context_.get(), &raw) != REDIS_OK || !raw) {
        throw ConnectionError(context_error(context_.get(), "Redis"));
    }
    const ReplyPtr reply(static_cast<redisReply*>(raw));
    return convert(*reply);
}

std::optional<Reply> Connection::poll_reply(std::chrono::milliseconds wait) {
    if (!context_ || context_->err) throw ConnectionError(context_error(context_.get(), "Redis"));
    auto buffered = [&]() -> std::optional<Reply> {
        void* raw = nullptr;
        if (redisReaderGetReply(context_->reader, &raw) != REDIS_OK) {
            throw ConnectionError("Redis: protocol error");
        }
        if (!raw) return std::nullopt;
        const ReplyPtr reply(static_cast<redisReply*>(raw));
        return convert(*reply);
    };
    if (auto r = buffered()) return r;
    pollfd p{context_->fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(wait.count()));
    if (n < 0 && errno == EINTR) return std::nullopt;
    if (n <= 0) return std::nullopt;
    // Readable, or hung up: a read tells which (hiredis marks EOF as an error).
    if (redisBufferRead(context_.get()) != REDIS_OK) {
        throw ConnectionError(context_error(context_.get(), "Redis"));
    }
    return buffered();
}

}  // namespace euphoria::core::redis
