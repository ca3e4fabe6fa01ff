#pragma once
// Where the core reports what it did. The CLI decides whether that is stderr or
// syslog; tests capture it to prove the key never shows up.

#include <string_view>

namespace euphoria::core {

enum class LogLevel { debug, info, warning, error };

class Logger {
public:
    virtual ~Logger() = default;
    virtual void log(LogLevel level, std::string_view message) = 0;
};

class NullLogger final : public Logger {
public:
    void log(LogLevel, std::string_view) override {}
};

}  // namespace euphoria::core
