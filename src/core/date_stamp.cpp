#include "euphoria/core/date_stamp.hpp"

#include <cctype>

namespace euphoria::core {

namespace {

struct Cursor {
    std::string_view s;
    std::size_t i = 0;
    bool done() const { return i >= s.size(); }
    bool take(char c) {
        if (done() || s[i] != c) return false;
        ++i;
        return true;
    }
    // `min`..`max` digits.
    std::optional<int> number(std::size_t min, std::size_t max) {
        const auto start = i;
        int v = 0;
        while (!done() && i - start < max && std::isdigit(static_cast<unsigned char>(s[i]))) {
            v = v * 10 + (s[i++] - '0');
        }
        if (i - start < min) return std::nullopt;
        return v;
    }
};

bool valid(int y, int mo, int d, int h, int mi, int sec) {
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return false;
    const auto days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    return civil_from_days(days).day == static_cast<unsigned>(d);
}

struct TimeOfDay {
    int hour = 0;
    int minute = 0;
    int second = 0;
    bool has_seconds = false;
};

// H:MM or H:MM:SS, with `hour_digits` or 2 digits in the hour.
std::optional<TimeOfDay> time_of_day(Cursor& c, std::size_t hour_digits) {
    TimeOfDay t;
    const auto h = c.number(hour_digits, 2);
    if (!h || !c.take(':')) return std::nullopt;
    const auto mi = c.number(2, 2);
    if (!mi) return std::nullopt;
    t.hour = *h;
    t.minute = *mi;
    if (c.take(':')) {
        const auto s = c.number(2, 2);
        if (!s) return std::nullopt;
        t.second = *s;
        t.has_seconds = true;
    }
    return t;
}

Seconds combine(int y, int mo, int d, int h, int mi, int sec) {
    return days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
           Seconds{h} * 3600 + Seconds{mi} * 60 + sec;
}

std::optional<DateStamp> iso(std::string_view text) {
    Cursor c{text};
    const auto y = c.number(4, 4);
    if (!y || !c.take('-')) return std::nullopt;
    const auto mo = c.number(2, 2);
    if (!mo || !c.take('-')) return std::nullopt;
    const auto d = c.number(2, 2);
    if (!d || !(c.take('T') || c.take(' '))) return std::nullopt;
    const auto t = time_of_day(c, 2);
    if (!t) return std::nullopt;
    if (t->has_seconds && (c.take('.') || c.take(','))) {
        if (!c.number(1, 9)) return std::nullopt;
        while (!c.done() && std::isdigit(static_cast<unsigned char>(c.s[c.i]))) ++c.i;
    }
    if (!valid(*y, *mo, *d, t->hour, t->minute, t->second)) return std::nullopt;
    DateStamp out{combine(*y, *mo, *d, t->hour, t->minute, t->second), std::nullopt};
    if (c.done()) return out;
    if (c.take('Z')) {
        out.offset = 0;
    } else {
        int sign = 0;
        if (c.take('+')) sign = 1;
        else if (c.take('-')) sign = -1;
        else return std::nullopt;
        const auto oh = c.number(2, 2);
        if (!oh || *oh > 14) return std::nullopt;
        c.take(':');
        int om = 0;
        if (!c.done()) {
            const auto m = c.number(2, 2);
            if (!m || *m > 59) return std::nullopt;
            om = *m;
        }
        out.offset = sign * (*oh * 3600 + om * 60);
    }
    if (!c.done()) return std::nullopt;
    return out;
}

std::optional<DateStamp> us(std::string_view text) {
    Cursor c{text};
    const auto mo = c.number(1, 2);
    if (!mo || !c.take('/')) return std::nullopt;
    const auto d = c.number(1, 2);
    if (!d || !c.take('/')) return std::nullopt;
    const auto y = c.number(4, 4);
    if (!y || !c.take(' ')) return std::nullopt;
    const auto t = time_of_day(c, 1);
    if (!t || !c.take(' ')) return std::nullopt;
    const auto rest = text.substr(c.i);
    int hour = t->hour;
    if (hour < 1 || hour > 12) return std::nullopt;
    if (rest == "AM" || rest == "am") {
        if (hour == 12) hour = 0;
    } else if (rest == "PM" || rest == "pm") {
        if (hour != 12) hour += 12;
    } else {
        return std::nullopt;
    }
    if (!valid(*y, *mo, *d, hour, t->minute, t->second)) return std::nullopt;
    return DateStamp{combine(*y, *mo, *d, hour, t->minute, t->second), std::nullopt};
}

}  // namespace

std::optional<DateStamp> parse_date_stamp(std::string_view text) {
    if (text.size() > 64) return std::nullopt;
    if (auto r = iso(text)) return r;
    return us(text);
}

}  // namespace euphoria::core
