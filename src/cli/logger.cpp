#include "euphoria/cli/logger.hpp"

#include <syslog.h>

#include <cstdio>
#include <string>

namespace euphoria::cli {

namespace {

// Recording names and server texts come from outside: keep one record one line.
std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) {
            char hex[5];
            (void)std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return out;
}

const char* label(core::LogLevel level) {
    switch (level) {
    case core::LogLevel::debug: return "debug";
    case core::LogLevel::info: return "info";
    case core::LogLevel::warning: return "warning";
    case core::LogLevel::error: return "error";
    }
    return "";
}

}  // namespace

void StderrLogger::log(core::LogLevel level, std::string_view message) {
    if (level == core::LogLevel::debug && !debug_) return;
    const auto line = printable(message);
    std::lock_guard lock(mutex_);
    (void)std::fprintf(stderr, "mount.euphoria: %s: %s\n", label(level), line.c_str());
}

SyslogLogger::SyslogLogger(bool debug) : debug_(debug) {
    ::openlog("mount.euphoria", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

SyslogLogger::~SyslogLogger() { ::closelog(); }

void SyslogLogger::log(core::LogLevel level, std::string_view message) {
    if (level == core::LogLevel::debug && !debug_) return;
    int priority = LOG_INFO;
    switch (level) {
    case core::LogLevel::debug: priority = LOG_DEBUG; break;
    case core::LogLevel::info: priority = LOG_INFO; break;
    case core::LogLevel::warning: priority = LOG_WARNING; break;
    case core::LogLevel::error: priority = LOG_ERR; break;
    }
    ::syslog(priority, "%s", printable(message).c_str());
}

}  // namespace euphoria::cli
