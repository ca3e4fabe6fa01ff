#pragma once
// One blocking connection to Redis, through hiredis (0.14 on Debian 12, 1.x on 13).
//
// Owns its redisContext and every reply (RAII); a connection whose socket failed or
// timed out is dead for good (hiredis keeps the error in the context), so callers
// drop it and connect again. Not thread-safe: one thread at a time, or a mutex.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "euphoria/api/secret.hpp"
#include "euphoria/core/redis/address.hpp"

struct redisContext;
struct redisReply;

namespace euphoria::core::redis {

// The connection is unusable (refused, reset, timed out, protocol): reconnect.
class ConnectionError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Redis answered with an error reply (-ERR, -NOSCRIPT, -NOAUTH...): the connection
// itself is fine.
class ReplyError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A reply, copied out of hiredis's tree so that it outlives nothing of hiredis's.
struct Reply {
    enum class Type { nil, integer, string, status, array };
    Type type = Type::nil;
    long long integer = 0;
    std::string text;  // string or status
    std::vector<Reply> elements;

    bool is_nil() const noexcept { return type == Type::nil; }
    // The integer, also from a string reply; throws ReplyError for anything else.
    long long as_integer() const;
    const Reply& at(std::size_t i) const;
};

class Connection {
public:
    // Connects, then AUTH (when a password is given) and SELECT. Throws
    // ConnectionError, or ReplyError (wrong password).
    Connection(const Address& address, const api::Secret& password,
               std::chrono::milliseconds timeout);
    ~Connection();
    Connection(Connection&&) noexcept;
    Connection& operator=(Connection&&) noexcept;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // One command. Throws ConnectionError (the connection is dead) or ReplyError.
    Reply command(const std::vector<std::string_view>& args);
    // Sends without reading a reply (SUBSCRIBE).
    void send(const std::vector<std::string_view>& args);
    // A reply already read into hiredis's buffer, or, when `wait` allows, one that
    // arrives within it; empty if none came. For a subscribed connection.
    std::optional<Reply> poll_reply(std::chrono::milliseconds wait);
    // The socket, for poll(2) by a subscriber.
    int fd() const noexcept;

private:
    struct Free {
        void operator()(redisContext* c) const noexcept;
    };
    std::unique_ptr<redisContext, Free> context_;
};

}  // namespace euphoria::core::redis
