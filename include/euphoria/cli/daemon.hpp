#pragma once
// Daemonizing the mount(8) way: the parent returns only once the mount is live, or
// with the child's error and exit code, so `mount` and systemd see the real outcome.

#include <string>

#include "euphoria/core/unique_fd.hpp"

namespace euphoria::cli {

class Daemon {
public:
    // Forks. The parent waits for the child's report and exits with it; only the
    // child returns.
    static Daemon detach();
    Daemon(Daemon&&) noexcept = default;
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // The mount is live: the parent exits 0, and stdio goes to /dev/null.
    void ready();
    // The parent prints `message` and exits with `exit_code`.
    void failed(int exit_code, const std::string& message);

private:
    explicit Daemon(core::UniqueFd fd) : fd_(std::move(fd)) {}
    core::UniqueFd fd_;  // write end of the report pipe; closed once reported
};

}  // namespace euphoria::cli
