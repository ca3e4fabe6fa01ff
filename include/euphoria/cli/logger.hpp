#pragma once
// Foreground: stderr. Daemon: syslog/journald as "mount.euphoria".

#include <memory>
#include <mutex>

#include "euphoria/core/log.hpp"

namespace euphoria::cli {

class StderrLogger final : public core::Logger {
public:
    explicit StderrLogger(bool debug) : debug_(debug) {}
    void log(core::LogLevel level, std::string_view message) override;

private:
    bool debug_;
    std::mutex mutex_;  // one line at a time. Leaf lock.
};

class SyslogLogger final : public core::Logger {
public:
    explicit SyslogLogger(bool debug);
    ~SyslogLogger() override;
    void log(core::LogLevel level, std::string_view message) override;

private:
    bool debug_;
};

}  // namespace euphoria::cli
