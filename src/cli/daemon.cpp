#include "euphoria/cli/daemon.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace euphoria::cli {

namespace {

void write_all(int fd, const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        const auto n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace

Daemon Daemon::detach() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    }
    core::UniqueFd read_end(fds[0]);
    core::UniqueFd write_end(fds[1]);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        read_end.reset();
        ::setsid();
        return Daemon(std::move(write_end));
    }
    write_end.reset();
    // Report format: one byte of exit code, then the message.
    std::string report;
    char buf[512];
    for (;;) {
        const auto n = ::read(read_end.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        report.append(buf, static_cast<std::size_t>(n));
    }
    read_end.reset();
    if (report.empty()) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        (void)std::fprintf(stderr, "mount.euphoria: the daemon died before the mount was ready\n");
        ::_exit(32);
    }
    const int code = static_cast<unsigned char>(report[0]);
    if (report.size() > 1) (void)std::fprintf(stderr, "%s\n", report.c_str() + 1);
    if (code != 0) ::waitpid(pid, nullptr, 0);
    ::_exit(code);
}

void Daemon::ready() {
    if (!fd_) return;
    write_all(fd_.get(), std::string(1, '\0'));
    fd_.reset();
    core::UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (null) {
        ::dup2(null.get(), STDIN_FILENO);
        ::dup2(null.get(), STDOUT_FILENO);
        ::dup2(null.get(), STDERR_FILENO);
    }
    if (::chdir("/") != 0) {
        // Not fatal: it only keeps a folder busy.
    }
}

void Daemon::failed(int exit_code, const std::string& message) {
    if (!fd_) return;
    write_all(fd_.get(), std::string(1, static_cast<char>(exit_code)) + message);
    fd_.reset();
}

}  // namespace euphoria::cli
