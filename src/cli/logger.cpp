#include "euphoria/cli/logger.hpp"

#include <syslog.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace euphoria::cli {

namespace {

void append_byte_escape(std::string& out, unsigned char c) {
    static const char digits[] = "0123456789abcdef";
    out += "\\x";
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
}

void append_code_point_escape(std::string& out, char32_t cp) {
    char buf[16];
    (void)std::snprintf(buf, sizeof buf, "\\u{%04X}", static_cast<unsigned>(cp));
    out += buf;
}

// Code points a terminal or a log viewer acts on rather than shows: C1 controls
// (U+0085 NEL among them), the line and paragraph separators, and every Bidi_Control
// character (marks, embeddings, overrides, isolates), which reorder what follows.
bool is_hidden_control(char32_t cp) {
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
           cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

bool is_continuation(unsigned char c) { return (c & 0xc0) == 0x80; }

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no
// surrogates, nothing past U+10FFFF) and its code point; 0 if it is not one.
std::size_t utf8_sequence(std::string_view s, std::size_t i, char32_t& cp) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char lead = byte(0);
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
    if (lead >= 0xc2 && lead <= 0xdf) {
        n = 2;
        cp = lead & 0x1f;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        n = 3;
        cp = lead & 0x0f;
        if (lead == 0xe0) lo = 0xa0;  // overlong below U+0800
        if (lead == 0xed) hi = 0x9f;  // U+D800..U+DFFF, surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        n = 4;
        cp = lead & 0x07;
        if (lead == 0xf0) lo = 0x90;  // overlong below U+10000
        if (lead == 0xf4) hi = 0x8f;  // past U+10FFFF
    } else {
        return 0;
    }
    if (s.size() - i < n) return 0;
    if (byte(1) < lo || byte(1) > hi) return 0;
    cp = (cp << 6) | (byte(1) & 0x3f);
    for (std::size_t k = 2; k < n; ++k) {
        if (!is_continuation(byte(k))) return 0;
        cp = (cp << 6) | (byte(k) & 0x3f);
    }
    return n;
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

std::string escape_for_log(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                append_byte_escape(out, c);
            } else if (c == '\\') {
                out += "\\\\";
            } else {
                out.push_back(static_cast<char>(c));
            }
            ++i;
            continue;
        }
        char32_t cp = 0;
        const std::size_t n = utf8_sequence(s, i, cp);
        if (n == 0) {
            append_byte_escape(out, c);  // not UTF-8: this byte alone, then resync
            ++i;
        } else if (is_hidden_control(cp)) {
            append_code_point_escape(out, cp);
            i += n;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

void StderrLogger::log(core::LogLevel level, std::string_view message) {
    if (level == core::LogLevel::debug && !debug_) return;
    const auto line = escape_for_log(message);
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
    ::syslog(priority, "%s", escape_for_log(message).c_str());
}

}  // namespace euphoria::cli
