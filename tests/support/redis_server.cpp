#include "redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "euphoria/core/redis/connection.hpp"
#include "euphoria/core/unique_fd.hpp"

extern char** environ;

namespace euphoria::test {

namespace {

// A port nobody listens on now: the kernel's pick for a socket bound to port 0.
int free_port() {
    const core::UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        throw std::runtime_error("no free port");
    }
    return ntohs(a.sin_port);
}

}  // namespace

std::string redis_server_binary() {
    for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
        if (::access(p, X_OK) == 0) return p;
    }
    return {};
}

RedisServer::RedisServer(std::string password) : password_(std::move(password)) {
    if (redis_server_binary().empty()) throw std::runtime_error("redis-server is not installed");
    port_ = free_port();
    start();
}

RedisServer::~RedisServer() { stop(); }

core::redis::Address RedisServer::address() const {
    core::redis::Address a;
    a.host = "127.0.0.1";
    a.port = port_;
    return a;
}

void RedisServer::start() {
    std::vector<std::string> args{redis_server_binary(), "--port", std::to_string(port_),
                                  "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                  "--dir", dir_.path(), "--daemonize", "no", "--loglevel",
                                  "warning"};
    if (!password_.empty()) {
        args.emplace_back("--requirepass");
        args.push_back(password_);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start redis-server");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            core::redis::Connection c(address(), api::Secret(password_), std::chrono::milliseconds(500));
            c.command({"PING"});
            return;
        } catch (const std::exception&) {
        }
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("redis-server exited during start-up");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("redis-server did not answer in 30 s");
}

void RedisServer::stop() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
}

}  // namespace euphoria::test
