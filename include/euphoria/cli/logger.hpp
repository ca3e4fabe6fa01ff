#pragma once
// Foreground: stderr. Daemon: syslog/journald as "mount.euphoria".

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "euphoria/core/log.hpp"

namespace euphoria::cli {

// A log record made safe to print: recording names and server texts come from
// outside, and must never forge a line or reorder a terminal's display. Printable
// ASCII and well-formed UTF-8 pass unchanged, except:
//   backslash                                  -> \\ (doubled)
//   C0 controls (00-1f), DEL (7f)              -> \xNN
//   bytes that are not well-formed UTF-8       -> \xNN, one per byte
//   C1 controls (U+0080-U+009F), U+2028, U+2029 and the Bidi_Control characters
//   (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)  -> \u{XXXX}
// so the result is one line, is valid UTF-8, and can be read back unambiguously.
std::string escape_for_log(std::string_view s);

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
