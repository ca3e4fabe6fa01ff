#include "euphoria/core/time_zone.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace euphoria::core {

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    // Howard Hinnant's algorithm: years start in March, so leap days come last.
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

CivilDate civil_from_days(std::int64_t z) noexcept {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {y + (m <= 2), m, d};
}

namespace {

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
    static constexpr std::array<unsigned, 12> days{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

bool digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int to_int(std::string_view s) {
    int v = 0;
    for (char c : s) v = v * 10 + (c - '0');
    return v;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// A POSIX TZ text being read left to right.
struct Reader {
    std::string_view s;
    std::size_t i = 0;
    bool done() const { return i >= s.size(); }
    char peek() const { return done() ? '\0' : s[i]; }

    bool name() {
        if (peek() == '<') {
            const auto close = s.find('>', i);
            if (close == std::string_view::npos || close - i < 4) return false;
            i = close + 1;
            return true;
        }
        const auto start = i;
        while (!done() && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) ++i;
        return i - start >= 3;
    }
    std::optional<int> number(int max) {
        const auto start = i;
        while (!done() && s[i] >= '0' && s[i] <= '9' && i - start < 3) ++i;
        if (i == start) return std::nullopt;
        const int v = to_int(s.substr(start, i - start));
        if (v > max) return std::nullopt;
        return v;
    }
    // [+-]hh[:mm[:ss]], hours up to 167 (RFC 8536's extension for rule times).
    std::optional<std::int32_t> hms() {
        int sign = 1;
        if (peek() == '+' || peek() == '-') sign = s[i++] == '-' ? -1 : 1;
        const auto h = number(167);
        if (!h) return std::nullopt;
        std::int32_t total = *h * 3600;
        for (int part = 0; part < 2 && peek() == ':'; ++part) {
            ++i;
            const auto v = number(59);
            if (!v) return std::nullopt;
            total += part == 0 ? *v * 60 : *v;
        }
        return sign * total;
    }
    std::optional<PosixRule::When> when() {
        PosixRule::When w;
        if (peek() == 'M') {
            ++i;
            w.kind = PosixRule::When::Kind::month_week_day;
            const auto m = number(12);
            if (!m || *m < 1 || peek() != '.') return std::nullopt;
            ++i;
            const auto wk = number(5);
            if (!wk || *wk < 1 || peek() != '.') return std::nullopt;
            ++i;
            const auto d = number(6);
            if (!d) return std::nullopt;
            w.month = *m;
            w.week = *wk;
            w.day = *d;
        } else if (peek() == 'J') {
            ++i;
            w.kind = PosixRule::When::Kind::julian_no_leap;
            const auto d = number(365);
            if (!d || *d < 1) return std::nullopt;
            w.day = *d;
        } else {
            w.kind = PosixRule::When::Kind::julian_zero;
            const auto d = number(365);
            if (!d) return std::nullopt;
            w.day = *d;
        }
        if (peek() == '/') {
            ++i;
            const auto t = hms();
            if (!t) return std::nullopt;
            w.time = *t;
        }
        return w;
    }
};

// Local midnight of the rule's day in `year`, as local seconds since the epoch.
Seconds day_start(const PosixRule::When& w, std::int64_t year) {
    using Kind = PosixRule::When::Kind;
    std::int64_t days = 0;
    switch (w.kind) {
    case Kind::julian_no_leap: {
        // Day 1..365, February 29th never counted.
        days = days_from_civil(year, 1, 1) + w.day - 1;
        if (is_leap(year) && w.day >= 60) ++days;
        break;
    }
    case Kind::julian_zero:
        days = days_from_civil(year, 1, 1) + w.day;
        break;
    case Kind::month_week_day: {
        const auto first = days_from_civil(year, static_cast<unsigned>(w.month), 1);
        const auto first_weekday = static_cast<int>(((first % 7) + 7 + 4) % 7);  // 1970-01-01: Thursday
        int mday = 1 + (w.day - first_weekday + 7) % 7 + (w.week - 1) * 7;
        const auto last = static_cast<int>(days_in_month(year, static_cast<unsigned>(w.month)));
        while (mday > last) mday -= 7;
        days = first + mday - 1;
        break;
    }
    }
    return days * 86400;
}

}  // namespace

std::optional<PosixRule> PosixRule::parse(std::string_view text) {
    Reader r{text};
    PosixRule rule;
    if (!r.name()) return std::nullopt;
    const auto std_off = r.hms();
    if (!std_off) return std::nullopt;
    rule.std_offset_ = -*std_off;  // POSIX counts west positive
    if (r.done()) return rule;
    if (!r.name()) return std::nullopt;
    rule.dst_offset_ = rule.std_offset_ + 3600;
    if (r.peek() != ',' && !r.done()) {
        const auto dst_off = r.hms();
        if (!dst_off) return std::nullopt;
        rule.dst_offset_ = -*dst_off;
    }
    if (r.done()) {
        // No rule: POSIX leaves it to the implementation; glibc uses the US rule.
        rule.start_ = {When::Kind::month_week_day, 0, 3, 2, 7200};
        rule.end_ = {When::Kind::month_week_day, 0, 11, 1, 7200};
        return rule;
    }
    if (r.peek() != ',') return std::nullopt;
    ++r.i;
    const auto start = r.when();
    if (!start || r.peek() != ',') return std::nullopt;
    ++r.i;
    const auto end = r.when();
    if (!end || !r.done()) return std::nullopt;
    rule.start_ = *start;
    rule.end_ = *end;
    return rule;
}

std::int32_t PosixRule::offset_at(Seconds utc) const {
    if (!dst_offset_) return std_offset_;
    const auto year = civil_from_days(floor_div(utc + std_offset_, 86400)).year;
    // The transitions of the year `utc` falls in, and of the years either side, so
    // that a rule straddling New Year is read right.
    for (std::int64_t y = year + 1; y >= year - 1; --y) {
        const Seconds start = day_start(start_, y) + start_.time - std_offset_;
        const Seconds end = day_start(end_, y) + end_.time - *dst_offset_;
        if (start < end) {
            if (utc >= end) return std_offset_;
            if (utc >= start) return *dst_offset_;
        } else {
            // Southern hemisphere: daylight time spans New Year.
            if (utc >= start) return *dst_offset_;
            if (utc >= end) return std_offset_;
        }
    }
    return std_offset_;
}

namespace {

std::int64_t be(std::string_view b, std::size_t at, int n) {
    std::uint64_t v = 0;
    for (int k = 0; k < n; ++k) v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<std::size_t>(k)]);
    if (n == 4) return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
    return static_cast<std::int64_t>(v);
}

[[noreturn]] void bad(const std::string& why) { throw std::invalid_argument("not a usable TZif file: " + why); }

}  // namespace

TimeZone TimeZone::from_tzif(std::string_view b) {
    auto header = [&](std::size_t at) {
        if (b.size() < at + 44 || b.substr(at, 4) != "TZif") bad("no TZif header");
        std::array<std::int64_t, 6> counts{};
        for (std::size_t k = 0; k < 6; ++k) {
            counts[k] = be(b, at + 20 + 4 * k, 4);
            if (counts[k] < 0 || counts[k] > 1000000) bad("implausible counts");
        }
        return counts;  // isut, isstd, leap, time, type, char
    };
    auto c = header(0);
    if (b[4] < '2') bad("version 1 has no 64-bit data");
    const auto block1 = static_cast<std::size_t>(c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0]);
    std::size_t at = 44 + block1;
    c = header(at);
    at += 44;
    const auto timecnt = static_cast<std::size_t>(c[3]);
    const auto typecnt = static_cast<std::size_t>(c[4]);
    const std::size_t need = timecnt * 9 + typecnt * 6 + static_cast<std::size_t>(c[5]) +
                             static_cast<std::size_t>(c[2]) * 12 + static_cast<std::size_t>(c[1] + c[0]);
    if (typecnt == 0 || b.size() < at + need) bad("truncated");
    TimeZone z;
    for (std::size_t k = 0; k < timecnt; ++k) z.transitions_.push_back(be(b, at + 8 * k, 8));
    if (!std::is_sorted(z.transitions_.begin(), z.transitions_.end())) bad("unsorted transitions");
    at += 8 * timecnt;
    for (std::size_t k = 0; k < timecnt; ++k) {
        const auto t = static_cast<std::uint8_t>(b[at + k]);
        if (t >= typecnt) bad("bad type index");
        z.type_of_.push_back(t);
    }
    at += timecnt;
    for (std::size_t k = 0; k < typecnt; ++k) {
        z.type_offset_.push_back(static_cast<std::int32_t>(be(b, at + 6 * k, 4)));
    }
    at += need - timecnt * 9;
    if (at < b.size() && b[at] == '\n') {
        const auto end = b.find('\n', at + 1);
        if (end != std::string_view::npos && end > at + 1) {
            z.footer_ = PosixRule::parse(b.substr(at + 1, end - at - 1));
        }
    }
    return z;
}

TimeZone TimeZone::utc() {
    TimeZone z;
    z.name_ = "UTC";
    z.type_offset_.push_back(0);
    return z;
}

TimeZone TimeZone::load(const std::string& name, const std::string& zoneinfo) {
    std::string path = "/etc/localtime";
    if (!name.empty()) {
        // A zone name is a relative path under zoneinfo: never anything outside it.
        const bool unsafe = name.front() == '/' || name.find("..") != std::string::npos ||
                            name.size() > 255 ||
                            name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                   "0123456789/_+-") != std::string::npos;
        if (unsafe) throw std::invalid_argument("not a time zone name: " + name);
        path = zoneinfo + "/" + name;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::invalid_argument("unknown time zone " + (name.empty() ? path : name));
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    TimeZone z = from_tzif(bytes);
    z.name_ = name.empty() ? "local" : name;
    return z;
}

std::int32_t TimeZone::offset_at(Seconds utc) const {
    if (transitions_.empty() || utc < transitions_.front()) {
        if (transitions_.empty() && footer_) return footer_->offset_at(utc);
        return type_offset_.front();
    }
    if (utc >= transitions_.back() && footer_) return footer_->offset_at(utc);
    const auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc);
    const auto k = static_cast<std::size_t>(it - transitions_.begin()) - 1;
    return type_offset_[type_of_[k]];
}

Seconds TimeZone::to_utc(Seconds local) const {
    const Seconds guess = local - offset_at(local);
    const Seconds utc = local - offset_at(guess);
    const std::int32_t there = offset_at(utc);
    if (utc + there == local) return utc;
    // A reading in a gap (the clock jumped over it). Of the two offsets either side,
    // the one from before the jump is the smaller and gives the later instant, which
    // lands after the jump, as mktime(3) reads it. West of Greenwich the guess above
    // gives the earlier one: 00:30 in a gap at midnight would be 23:30 the day before.
    return std::max(utc, local - there);
}

std::optional<std::int64_t> parse_day(std::string_view t) {
    if (t.size() != 10 || t[4] != '-' || t[7] != '-') return std::nullopt;
    if (!digits(t.substr(0, 4)) || !digits(t.substr(5, 2)) || !digits(t.substr(8, 2))) return std::nullopt;
    const int y = to_int(t.substr(0, 4));
    const auto m = static_cast<unsigned>(to_int(t.substr(5, 2)));
    const auto d = static_cast<unsigned>(to_int(t.substr(8, 2)));
    if (y < 1000 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return std::nullopt;
    return days_from_civil(y, m, d);
}

std::string format_day(std::int64_t days) {
    const auto c = civil_from_days(days);
    char buf[32];
    static_cast<void>(std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(c.year), c.month, c.day));
    return buf;
}

}  // namespace euphoria::core
