#pragma once
// A time zone read from a TZif file (RFC 8536), for `timezone=Area/City`. g++ 12's
// libstdc++ has no std::chrono::locate_zone, and setting TZ in a threaded daemon
// would race every localtime_r, so the core reads the zoneinfo itself: the v2+
// 64-bit transition table, and the POSIX TZ footer rule for instants past it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace euphoria::core {

// Seconds since 1970-01-01 (UTC, or a local wall clock read as if it were UTC).
using Seconds = std::int64_t;

// A POSIX TZ rule such as "CET-1CEST,M3.5.0,M10.5.0/3" (the TZif footer).
class PosixRule {
public:
    // Empty for text that is not a rule we can follow.
    static std::optional<PosixRule> parse(std::string_view text);
    // Offset from UTC (east positive) at `utc`.
    std::int32_t offset_at(Seconds utc) const;

    struct When {
        enum class Kind { julian_no_leap, julian_zero, month_week_day } kind{};
        int day = 0, month = 0, week = 0;
        std::int32_t time = 7200;  // seconds after local midnight; may be negative or > 24 h
    };

private:
    std::int32_t std_offset_ = 0;
    std::optional<std::int32_t> dst_offset_;  // none: no daylight saving time
    When start_{}, end_{};
};

class TimeZone {
public:
    // Reads /usr/share/zoneinfo/NAME, or /etc/localtime for an empty name. Throws
    // std::invalid_argument for an unsafe name, a missing file or a file that is not
    // TZif version 2 or later.
    static TimeZone load(const std::string& name, const std::string& zoneinfo = "/usr/share/zoneinfo");
    // From a TZif file's bytes; throws std::invalid_argument when they are not one.
    static TimeZone from_tzif(std::string_view bytes);
    static TimeZone utc();

    // Offset from UTC in seconds (east positive) at instant `utc`.
    std::int32_t offset_at(Seconds utc) const;
    // The instant a local wall-clock reading stands for. In an overlap, one of the
    // instants the clock could mean; in a gap, the reading taken with the offset from
    // before the gap (as mktime(3) does), which lands after it.
    Seconds to_utc(Seconds local) const;
    const std::string& name() const noexcept { return name_; }

private:
    std::string name_;
    std::vector<Seconds> transitions_;       // ascending
    std::vector<std::uint8_t> type_of_;      // per transition
    std::vector<std::int32_t> type_offset_;  // per local time type
    std::optional<PosixRule> footer_;
};

// Proleptic Gregorian calendar, day 0 = 1970-01-01.
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day) noexcept;
struct CivilDate {
    std::int64_t year;
    unsigned month, day;
};
CivilDate civil_from_days(std::int64_t days) noexcept;
// "YYYY-MM-DD" exactly (a real date, years 1000-9999); empty otherwise.
std::optional<std::int64_t> parse_day(std::string_view text);
std::string format_day(std::int64_t days);

}  // namespace euphoria::core
