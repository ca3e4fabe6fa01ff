#pragma once

namespace euphoria::cli {

// mount(8) helper exit codes.
inline constexpr int exit_ok = 0;
inline constexpr int exit_usage = 1;
inline constexpr int exit_mount_failure = 32;

// The whole helper: parse, check, probe, daemonize, mount, serve, clean up.
int run(int argc, const char* const* argv);

}  // namespace euphoria::cli
