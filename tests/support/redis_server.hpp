#pragma once
// Runs Debian's redis-server for a test: 127.0.0.1 on a free port, no persistence
// (--save '' --appendonly no), in a private folder; killed when the test ends.

#include <sys/types.h>

#include <string>

#include "euphoria/core/redis/address.hpp"
#include "temp_dir.hpp"

namespace euphoria::test {

// Where redis-server is, or empty. In CI (CI=true) a missing one fails the test.
std::string redis_server_binary();

class RedisServer {
public:
    // `password`: requirepass, or none when empty.
    explicit RedisServer(std::string password = {});
    ~RedisServer();
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    core::redis::Address address() const;
    int port() const noexcept { return port_; }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
    // Stops it (SIGKILL: every lease and script is gone), and starts it again on the
    // same port.
    void stop();
    void start();

private:
    TempDir dir_;
    std::string password_;
    int port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace euphoria::test
