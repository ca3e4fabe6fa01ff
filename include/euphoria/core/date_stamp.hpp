#pragma once
// A listing's DateStamp. Nothing public fixes its format, so both shapes public
// clients have seen are read: ISO 8601 ("2020-10-23T16:10:21", a space for the T,
// an optional fraction and an optional Z or offset) and the .NET US default
// ("10/23/2020 4:10:21 PM").

#include <optional>
#include <string_view>

#include "euphoria/core/time_zone.hpp"

namespace euphoria::core {

struct DateStamp {
    Seconds local = 0;                   // the wall-clock reading, as if UTC
    std::optional<std::int32_t> offset;  // east of UTC, when the stamp gave one
    // The instant: by the stamp's own offset, else read in `zone`.
    Seconds instant(const TimeZone& zone) const { return offset ? local - *offset : zone.to_utc(local); }
};

// Empty for anything else.
std::optional<DateStamp> parse_date_stamp(std::string_view text);

}  // namespace euphoria::core
