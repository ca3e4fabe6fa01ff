// The TZif reader against glibc's localtime_r, with TZ set, as the oracle: the same
// offsets at many instants, inside the transition table and past it (the footer
// rule), for zones with half-hour offsets, southern daylight time and none at all.

#include "catch_compat.hpp"

#include <cstdlib>
#include <ctime>
#include <string>

#include "euphoria/core/date_stamp.hpp"
#include "euphoria/core/time_zone.hpp"

using namespace euphoria;
using core::Seconds;

namespace {

// Sets TZ for this test only; the daemon never does this. Catch2 runs the tests on one
// thread, and no Fetcher of another test is alive here, so changing the environment
// races nothing (hence the NOLINTs).
class TzScope {
public:
    explicit TzScope(const std::string& zone) {
        const char* old = std::getenv("TZ");  // NOLINT(concurrency-mt-unsafe)
        had_ = old != nullptr;
        if (had_) saved_ = old;
        ::setenv("TZ", (":" + zone).c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
        ::tzset();                                // NOLINT(concurrency-mt-unsafe)
    }
    ~TzScope() {
        if (had_) {
            ::setenv("TZ", saved_.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
        } else {
            ::unsetenv("TZ");  // NOLINT(concurrency-mt-unsafe)
        }
        ::tzset();  // NOLINT(concurrency-mt-unsafe)
    }
    TzScope(const TzScope&) = delete;
    TzScope& operator=(const TzScope&) = delete;

private:
    std::string saved_;
    bool had_ = false;
};

long glibc_offset(Seconds t) {
    const auto tt = static_cast<std::time_t>(t);
    std::tm tm{};
    REQUIRE(::localtime_r(&tt, &tm) != nullptr);
    return tm.tm_gmtoff;
}

}  // namespace

TEST_CASE("TZif offsets agree with glibc localtime_r") {
    for (const std::string zone : {"Europe/Paris", "America/New_York", "Australia/Lord_Howe",
                                   "Asia/Kolkata", "UTC", "America/Sao_Paulo", "Pacific/Chatham",
                                   "Africa/Casablanca", "America/Nuuk"}) {
        INFO(zone);
        const auto tz = core::TimeZone::load(zone);
        TzScope scope(zone);
        int checked = 0;
        // 1975 to 2080 in steps just off whole hours, so transitions are crossed
        // from every side; past 2037 only the footer rule answers.
        for (Seconds t = 157766400; t < 3471292800; t += 86400 * 3 + 3607) {
            INFO(t);
            REQUIRE(tz.offset_at(t) == glibc_offset(t));
            ++checked;
        }
        // Either side of each instant around this year's transitions, to the second.
        for (Seconds t = 1774000000; t < 1774000000 + 366 * 86400; t += 1800) {
            REQUIRE(tz.offset_at(t) == glibc_offset(t));
        }
        CHECK(checked > 10000);
    }
}

TEST_CASE("local wall-clock readings convert back to instants") {
    const auto tz = core::TimeZone::load("Europe/Paris");
    // 2020-10-23 18:10:21 in Paris is 16:10:21 UTC (CEST).
    const Seconds local = core::days_from_civil(2020, 10, 23) * 86400 + 18 * 3600 + 10 * 60 + 21;
    CHECK(tz.to_utc(local) == 1603469421);
    // January: CET.
    const Seconds winter = core::days_from_civil(2021, 1, 10) * 86400 + 12 * 3600;
    CHECK(tz.to_utc(winter) == winter - 3600);
}

TEST_CASE("a reading in a gap at midnight stays on its day") {
    // Beirut sprang from 2020-03-29 00:00 (+2) to 01:00 (+3): 00:30 never happened.
    const auto tz = core::TimeZone::load("Asia/Beirut");
    const auto local_day = [&tz](Seconds t) { return (t + tz.offset_at(t)) / 86400; };
    const auto day = core::days_from_civil(2020, 3, 29);
    const Seconds gap = day * 86400 + 30 * 60;
    const Seconds utc = tz.to_utc(gap);
    CHECK(utc == gap - 2 * 3600);  // read with the offset from before the jump, as mktime does
    CHECK(local_day(utc) == day);
    // Either side of the gap reads as itself.
    const Seconds before = (day - 1) * 86400 + 23 * 3600 + 59 * 60;
    const Seconds after = day * 86400 + 3600 + 60;
    CHECK(tz.to_utc(before) == before - 2 * 3600);
    CHECK(tz.to_utc(after) == after - 3 * 3600);
    // The day itself starts at the first instant that reads as it: 01:00 (+3).
    CHECK(tz.to_utc(day * 86400) == day * 86400 - 2 * 3600);
    CHECK(local_day(tz.to_utc(day * 86400)) == day);
}

TEST_CASE("a reading in a gap at midnight stays on its day, west of Greenwich too") {
    // Havana sprang from 2020-03-08 00:00 (-5) to 01:00 (-4).
    const auto tz = core::TimeZone::load("America/Havana");
    const auto local_day = [&tz](Seconds t) { const Seconds l = t + tz.offset_at(t); return l / 86400 - (l % 86400 < 0 ? 1 : 0); };
    const auto day = core::days_from_civil(2020, 3, 8);
    const Seconds gap = day * 86400 + 30 * 60;
    CHECK(tz.to_utc(gap) == gap + 5 * 3600);
    CHECK(local_day(tz.to_utc(gap)) == day);
    CHECK(local_day(tz.to_utc(day * 86400)) == day);
    CHECK(tz.to_utc(day * 86400 + 3600) == day * 86400 + 3600 + 4 * 3600);
    CHECK(tz.to_utc(day * 86400 - 60) == day * 86400 - 60 + 5 * 3600);
}

TEST_CASE("unsafe or unknown zone names are refused") {
    CHECK_THROWS(core::TimeZone::load("../../etc/passwd"));
    CHECK_THROWS(core::TimeZone::load("/etc/localtime"));
    CHECK_THROWS(core::TimeZone::load("No/Such_Zone"));
    CHECK_THROWS(core::TimeZone::from_tzif("TZif2 not really"));
    CHECK_THROWS(core::TimeZone::from_tzif(""));
}

TEST_CASE("POSIX rules of the footer") {
    auto rule = core::PosixRule::parse("CET-1CEST,M3.5.0,M10.5.0/3");
    REQUIRE(rule);
    CHECK(rule->offset_at(1603469421) == 7200);   // October 2020, before the change
    CHECK(rule->offset_at(1610000000) == 3600);   // January 2021
    auto fixed = core::PosixRule::parse("<+0530>-5:30");
    REQUIRE(fixed);
    CHECK(fixed->offset_at(0) == 19800);
    auto south = core::PosixRule::parse("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
    REQUIRE(south);
    CHECK(south->offset_at(1610000000) == 39600);  // January: daylight time
    CHECK(south->offset_at(1593000000) == 37800);  // June
    CHECK_FALSE(core::PosixRule::parse(""));
    CHECK_FALSE(core::PosixRule::parse("CET-1CEST,M13.5.0,M10.5.0"));
    CHECK_FALSE(core::PosixRule::parse("X1"));
}

TEST_CASE("days convert both ways") {
    CHECK(core::days_from_civil(1970, 1, 1) == 0);
    CHECK(core::parse_day("2020-10-23") == core::days_from_civil(2020, 10, 23));
    CHECK(core::format_day(core::days_from_civil(2020, 2, 29)) == "2020-02-29");
    for (std::int64_t d = -1000; d < 200000; d += 37) {
        const auto c = core::civil_from_days(d);
        REQUIRE(core::days_from_civil(c.year, c.month, c.day) == d);
    }
    CHECK_FALSE(core::parse_day("2021-02-29"));
    CHECK_FALSE(core::parse_day("2020-13-01"));
    CHECK_FALSE(core::parse_day("2020-1-01"));
    CHECK_FALSE(core::parse_day("by-id"));
    CHECK_FALSE(core::parse_day("2020-10-23x"));
}

TEST_CASE("DateStamps in ISO 8601 and the US format") {
    const auto utc = core::TimeZone::utc();
    const auto paris = core::TimeZone::load("Europe/Paris");
    auto at = [&](const char* text, const core::TimeZone& zone) {
        auto s = core::parse_date_stamp(text);
        REQUIRE(s);
        return s->instant(zone);
    };
    CHECK(at("2020-10-23T16:10:21", utc) == 1603469421);
    CHECK(at("2020-10-23 16:10:21", utc) == 1603469421);
    CHECK(at("2020-10-23T16:10:21.1234567", utc) == 1603469421);
    CHECK(at("2020-10-23T16:10:21Z", paris) == 1603469421);
    CHECK(at("2020-10-23T18:10:21+02:00", utc) == 1603469421);
    CHECK(at("2020-10-23T11:10:21-0500", utc) == 1603469421);
    CHECK(at("2020-10-23 18:10:21", paris) == 1603469421);
    CHECK(at("10/23/2020 4:10:21 PM", utc) == 1603469421);
    CHECK(at("10/23/2020 12:00:00 AM", utc) == 1603411200);
    CHECK(at("10/23/2020 12:00:00 PM", utc) == 1603454400);
    // Seconds may be left out in both forms.
    CHECK(at("2020-10-23T16:10", utc) == 1603469400);
    CHECK(at("10/23/2020 4:10 PM", utc) == 1603469400);
    for (const char* bad : {"", "2020-10-23", "2020-02-30 10:00:00", "13/01/2020 1:00:00 PM",
                            "10/23/2020 13:00:00 PM", "2020-10-23T16:10:21+15:00", "yesterday",
                            "2020-10-23T16:10:21 junk", "2020-10-23T16:10.5",
                            "10/23/2020 4:1 PM", "2020-10-23T6:10:21"}) {
        INFO(bad);
        CHECK_FALSE(core::parse_date_stamp(bad));
    }
}
