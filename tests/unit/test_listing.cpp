// Day listings: records placed on days by their call time in the mount's zone, paging
// that stays right whatever page the server honours, the TTL cache, shared calls, and
// the download's MD5 check against the listing.

#include <future>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>

#include "euphoria/core/filesystem.hpp"
#include "euphoria/core/listing.hpp"
#include "euphoria/core/md5.hpp"
#include "fetcher_rig.hpp"
#include "wav_testing.hpp"

using namespace euphoria;
using namespace euphoria::test;
using api::RecordField;

namespace {

struct ServerRecord {
    ServerRecord(std::string n, core::Seconds t, std::string sz = "100", std::string del = "0",
                 std::string st = "", std::string m = "")
        : name(std::move(n)), utc(t), size(std::move(sz)), deleted(std::move(del)),
          stamp(std::move(st)), md5(std::move(m)) {}
    std::string name;
    core::Seconds utc;  // the call time
    std::string size;
    std::string deleted;
    std::string stamp;  // DateStamp; default: ISO in UTC
    std::string md5;
};

// A server that lists `records` (all dates alike), honouring at most `cap` per page.
struct FakeServer {
    std::vector<ServerRecord> records;
    std::size_t cap = 0;
    bool ignores_start_at = false;  // every page is the first
    std::vector<api::ListingQuery> queries;
    std::mutex mutex;

    std::size_t list(const api::ListingQuery& q, const api::RecordHandler& on_record) {
        {
            std::lock_guard lock(mutex);
            queries.push_back(q);
        }
        std::size_t page = q.page_size;
        if (cap) page = std::min(page, cap);
        std::size_t n = 0;
        const std::size_t from = ignores_start_at ? 0 : q.start_at;
        for (std::size_t i = from; i < records.size() && n < page; ++i, ++n) {
            const auto& r = records[i];
            api::ListedRecord rec;
            rec[RecordField::file_name] = r.name;
            rec[RecordField::file_size] = r.size;
            rec[RecordField::is_deleted] = r.deleted;
            rec[RecordField::md5] = r.md5;
            rec[RecordField::unique_id] = "u" + std::to_string(i);
            rec[RecordField::direction] = "Inbound";
            if (!r.stamp.empty()) {
                rec[RecordField::date_stamp] = r.stamp;
            } else {
                const auto days = r.utc / 86400;
                const auto c = core::civil_from_days(days);
                const auto s = r.utc % 86400;
                char buf[64];
                static_cast<void>(std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u %02lld:%02lld:%02lldZ",
                                                static_cast<long long>(c.year), c.month, c.day,
                                                static_cast<long long>(s / 3600),
                                                static_cast<long long>(s / 60 % 60),
                                                static_cast<long long>(s % 60)));
                rec[RecordField::date_stamp] = buf;
            }
            on_record(rec);
        }
        return n;
    }
};

struct ListingRig {
    Rig rig;
    FakeServer server;
    std::unique_ptr<core::Listings> listings;

    explicit ListingRig(const std::string& zone = "Europe/Paris", std::uint64_t page = 500,
                        const Rig::Tweak& tweak = {})
        : rig(tweak) {
        rig.client.lister = [this](const api::ListingQuery& q, const api::RecordHandler& h) {
            return server.list(q, h);
        };
        core::ListingConfig config;
        config.page_size = page;
        listings = std::make_unique<core::Listings>(rig.client, *rig.fetcher, rig.clock, rig.stats,
                                                    rig.logger, core::TimeZone::load(zone), config);
    }
    ~ListingRig() { rig.fetcher->shutdown(); }

    core::DayListing list(const std::string& day) {
        std::promise<core::DayListing> promise;
        listings->list(*core::parse_day(day), [&](core::DayListing l) { promise.set_value(std::move(l)); });
        return promise.get_future().get();
    }
    int calls() const { return rig.client.calls(FakeClient::list_key); }
};

std::vector<std::string> names_of(const core::DayListing& l) {
    std::vector<std::string> out;
    for (const auto& f : *l.files) out.push_back(f.name);
    return out;
}

// 2020-10-23 21:30 and 22:30 UTC: 23:30 and 00:30 in Paris (CEST, +2).
constexpr core::Seconds late_utc = 1603488600;
constexpr core::Seconds early_utc = 1603492200;

}  // namespace

TEST_CASE("a call lands on the day of its call time in the mount's zone") {
    ListingRig r("Europe/Paris");
    r.server.records = {{"late.WAV", late_utc}, {"early.WAV", early_utc},
                        {"other.WAV", late_utc - 3 * 86400}};
    auto d23 = r.list("2020-10-23");
    REQUIRE(d23.error == 0);
    CHECK(names_of(d23) == std::vector<std::string>{"late.WAV"});
    auto d24 = r.list("2020-10-24");
    CHECK(names_of(d24) == std::vector<std::string>{"early.WAV"});
    // Wide enough for any server zone, one more day for an exclusive EndDate. (The
    // fake lists every date, 3 records a page; each listing then checks that a page
    // of the most seen so far is not a cap.)
    REQUIRE(r.server.queries.size() == 4);
    CHECK(r.server.queries[0].start_date == "2020-10-22");
    CHECK(r.server.queries[0].end_date == "2020-10-25");
    const auto& f = d23.files->front();
    CHECK(f.call_time == std::chrono::system_clock::time_point(std::chrono::seconds(late_utc)));
    CHECK(f.size == 100);

    // In New York both calls are on the 23rd.
    ListingRig ny("America/New_York");
    ny.server.records = r.server.records;
    CHECK(names_of(ny.list("2020-10-23")) == std::vector<std::string>{"early.WAV", "late.WAV"});
}

TEST_CASE("a name's epoch wins over the DateStamp, and DateStamps are read in the zone") {
    ListingRig r("Europe/Paris");
    // The epoch says 2020-10-23 16:10:21 UTC; the stamp lies.
    r.server.records = {{"pbx4-1603469421.1196632-1001.WAV", 0, "100", "0", "1/1/2001 1:00:00 AM"},
                        {"us.WAV", 0, "100", "0", "10/23/2020 11:30:00 PM"},
                        {"iso.WAV", 0, "100", "0", "2020-10-24T00:30:00.250"},
                        {"none.WAV", 0, "100", "0", "whenever"}};
    CHECK(names_of(r.list("2020-10-23")) ==
          std::vector<std::string>{"pbx4-1603469421.1196632-1001.WAV", "us.WAV"});
    CHECK(names_of(r.list("2020-10-24")) == std::vector<std::string>{"iso.WAV"});
}

TEST_CASE("deleted records and names nobody could read are not listed") {
    ListingRig r("UTC");
    r.server.records = {{"a.WAV", late_utc, "1", "1"},  {"b.WAV", late_utc, "1", "0"},
                        {"c.WAV", late_utc, "1", ""},   {"../x", late_utc},
                        {".hidden", late_utc},          {"d/e", late_utc},
                        {"", late_utc},                 {std::string(300, 'n'), late_utc},
                        {"f.WAV", late_utc, "1", "True"}};
    CHECK(names_of(r.list("2020-10-23")) == std::vector<std::string>{"b.WAV", "c.WAV"});
}

TEST_CASE("paging with startAt under a server cap smaller than the page asked") {
    ListingRig r("UTC", 1000);
    for (int i = 0; i < 1200; ++i) r.server.records.push_back({name_of(i) + ".WAV", late_utc + i});
    r.server.cap = 500;
    auto l = r.list("2020-10-23");
    REQUIRE(l.error == 0);
    CHECK(l.files->size() == 1200);
    // 500, 500, 200: the short page is the last; no call to learn it.
    CHECK(r.calls() == 3);
    REQUIRE(r.server.queries.size() == 3);
    CHECK(r.server.queries[1].start_at == 500);
    CHECK(r.server.queries[2].start_at == 1000);
    CHECK(r.server.queries[0].page_size == 1000);

    // The cap is learned: a later day that fits in one capped page costs one call.
    r.server.records.clear();
    for (int i = 0; i < 40; ++i) r.server.records.push_back({name_of(i) + ".WAV", late_utc + 86400 + i});
    r.server.queries.clear();
    CHECK(r.list("2020-10-24").files->size() == 40);
    CHECK(r.server.queries.size() == 1);
}

TEST_CASE("a server that honours the page costs no call past the last short page") {
    ListingRig r("UTC", 500);
    for (int i = 0; i < 1200; ++i) r.server.records.push_back({name_of(i) + ".WAV", late_utc + i});
    CHECK(r.list("2020-10-23").files->size() == 1200);
    CHECK(r.calls() == 3);  // 500, 500, 200: shorter than the pages before it
    // A full page showed the server honours 500: a day of 40 is one call.
    r.server.records.clear();
    for (int i = 0; i < 40; ++i) r.server.records.push_back({name_of(i) + ".WAV", late_utc + 86400 + i});
    r.server.queries.clear();
    CHECK(r.list("2020-10-24").files->size() == 40);
    CHECK(r.server.queries.size() == 1);
}

TEST_CASE("a page cap lowered after it was learned is found again") {
    ListingRig r("UTC", 1000);
    for (int i = 0; i < 1200; ++i) r.server.records.push_back({name_of(i) + ".WAV", late_utc + i});
    r.server.cap = 500;
    REQUIRE(r.list("2020-10-23").files->size() == 1200);  // learns 500

    // The server now gives 200 a page. While 500 is trusted a page of 200 looks like
    // the last; once the knowledge has aged, one more call shows it was not.
    r.server.cap = 200;
    r.server.records.clear();
    for (int i = 0; i < 600; ++i) r.server.records.push_back({name_of(i) + ".WAV", late_utc + 86400 + i});
    CHECK(r.list("2020-10-24").files->size() == 200);
    r.rig.clock.advance(core::Listings::cap_relearn + 1s);
    r.server.queries.clear();
    auto l = r.list("2020-10-24");
    REQUIRE(l.error == 0);
    CHECK(l.files->size() == 600);
    CHECK(r.server.queries.size() == 4);  // 200, 200 (the cap is 200 now), 200, 0

    // And 200 is what is trusted now: a day of 150 is one call.
    r.server.records.erase(r.server.records.begin() + 150, r.server.records.end());
    r.rig.clock.advance(31s);
    r.server.queries.clear();
    CHECK(r.list("2020-10-24").files->size() == 150);
    CHECK(r.server.queries.size() == 1);
}

TEST_CASE("a server that ignores startAt is not paged for ever") {
    ListingRig r("UTC", 500);
    for (int i = 0; i < 1200; ++i) r.server.records.push_back({name_of(i) + ".WAV", late_utc + i});
    r.server.ignores_start_at = true;
    auto l = r.list("2020-10-23");
    REQUIRE(l.error == 0);
    CHECK(l.files->size() == 500);  // all that such a server can give
    CHECK(r.calls() == 2);          // the second page showed the first one again
}

TEST_CASE("a page as full as asked is followed by one more") {
    ListingRig r("UTC", 500);
    for (int i = 0; i < 1000; ++i) r.server.records.push_back({name_of(i) + ".WAV", late_utc + i});
    CHECK(r.list("2020-10-23").files->size() == 1000);
    CHECK(r.calls() == 3);  // 500, 500, 0
}

TEST_CASE("a first page shorter than asked is checked once, since it may be a cap") {
    ListingRig r("UTC", 500);
    for (int i = 0; i < 300; ++i) r.server.records.push_back({name_of(i) + ".WAV", late_utc + i});
    r.server.cap = 100;
    CHECK(r.list("2020-10-23").files->size() == 300);
    CHECK(r.calls() == 4);  // 100, 100, 100, 0
}

TEST_CASE("listings are cached for the TTL") {
    ListingRig r("UTC");
    r.server.records = {{"a.WAV", late_utc}};
    r.list("2020-10-23");
    const int first = r.calls();
    r.list("2020-10-23");
    CHECK(r.calls() == first);
    r.rig.clock.advance(31s);
    r.server.records.push_back({"b.WAV", late_utc});
    CHECK(names_of(r.list("2020-10-23")) == std::vector<std::string>{"a.WAV", "b.WAV"});
    CHECK(r.calls() > first);
}

TEST_CASE("concurrent listings of one day share their calls") {
    ListingRig r("UTC");
    r.server.records = {{"a.WAV", late_utc}};
    r.rig.client.hold();
    std::vector<std::promise<core::DayListing>> promises(5);
    for (auto& p : promises) {
        r.listings->list(*core::parse_day("2020-10-23"), [&p](core::DayListing l) { p.set_value(std::move(l)); });
    }
    REQUIRE(r.rig.client.wait_blocked(1));
    r.rig.client.release();
    for (auto& p : promises) CHECK(p.get_future().get().files->size() == 1);
    CHECK(r.calls() == 2);  // one page, and the check that it was not a cap
    CHECK(r.rig.stats.coalesced_waits.load() == 4);
}

TEST_CASE("listing errors reach the folder, and are not cached") {
    ListingRig r("UTC");
    int err = EACCES;
    r.rig.client.lister = [&](const api::ListingQuery&, const api::RecordHandler&) -> std::size_t {
        if (err == EACCES) throw api::ApiError(EACCES, api::ErrorKind::auth, "Permission Denied");
        throw api::ApiError(EOPNOTSUPP, api::ErrorKind::rejected, "Action Name Not Found");
    };
    CHECK(r.list("2020-10-23").error == EACCES);
    err = EOPNOTSUPP;
    CHECK(r.list("2020-10-23").error == EOPNOTSUPP);
    CHECK(r.calls() == 2);
}

TEST_CASE("a page that fails half-way is retried whole, and a transient error retried") {
    ListingRig r("UTC", 2);
    r.server.records = {{"a.WAV", late_utc}, {"b.WAV", late_utc}, {"c.WAV", late_utc}};
    int failures = 1;
    r.rig.client.lister = [&](const api::ListingQuery& q, const api::RecordHandler& h) -> std::size_t {
        if (q.start_at == 2 && failures-- > 0) {
            api::ListedRecord rec;
            rec[RecordField::file_name] = "bogus.WAV";
            rec[RecordField::date_stamp] = "2020-10-23 12:00:00";
            h(rec);
            throw api::ApiError(EIO, api::ErrorKind::network, "reset");
        }
        return r.server.list(q, h);
    };
    auto l = r.list("2020-10-23");
    REQUIRE(l.error == 0);
    CHECK(names_of(l) == std::vector<std::string>{"a.WAV", "b.WAV", "c.WAV"});
    CHECK(r.rig.stats.retries.load() == 1);
}

TEST_CASE("find() tells the download what the listing said") {
    ListingRig r("UTC");
    r.server.records = {{"a.WAV", late_utc, "4096", "0", "", "0123456789ABCDEF0123456789abcdef"},
                        {"b.WAV", late_utc, "1", "0", "", "not-an-md5"}};
    r.list("2020-10-23");
    auto a = r.listings->find("a.WAV");
    REQUIRE(a);
    CHECK(a->md5 == "0123456789abcdef0123456789abcdef");
    CHECK(a->size == 4096);
    CHECK(a->unique_id == "u0");
    CHECK(r.listings->find("b.WAV")->md5.empty());
    CHECK_FALSE(r.listings->find("c.WAV"));
    r.rig.clock.advance(60s);
    CHECK(r.listings->find("a.WAV"));  // still known after the TTL
}

TEST_CASE("MD5 of a download is checked against the listing's") {
    const std::string bytes = bytes_of(5000, 'm');
    core::Md5 md5;
    md5.update(std::as_bytes(std::span(bytes.data(), bytes.size())));
    const std::string good = md5.hex();
    CHECK(good.size() == 32);

    for (const bool verify : {false, true}) {
        Rig rig([verify](core::FetcherConfig& c) { c.verify_md5 = verify; });
        std::string listed = "00000000000000000000000000000000";
        rig.fetcher->on_hints([&listed](const std::string& name) -> std::optional<core::ListedHint> {
            if (name != "x.WAV") return std::nullopt;
            return core::ListedHint{std::chrono::system_clock::time_point(std::chrono::seconds(1603488600)), listed};
        });
        rig.client.script("x.WAV", {FakeReply::ok(bytes)});
        auto r = rig.get("x.WAV");
        CHECK(rig.stats.md5_mismatches.load() == 1);
        if (verify) {
            CHECK(r.error == EIO);
            // Not cached: the next read asks again.
            listed = good;
            auto again = rig.get("x.WAV");
            CHECK(again.error == 0);
            CHECK(rig.client.calls("x.WAV") == 2);
        } else {
            REQUIRE(r.error == 0);
            CHECK(read_all(*r.recording.content) == bytes);
            // The listing's call time is the mtime of a name without an epoch.
            CHECK(r.recording.mtime == std::chrono::system_clock::time_point(std::chrono::seconds(1603488600)));
        }
        rig.fetcher->shutdown();
    }
    // A matching MD5 is no mismatch.
    Rig rig([](core::FetcherConfig& c) { c.verify_md5 = true; });
    rig.fetcher->on_hints([&good](const std::string&) -> std::optional<core::ListedHint> {
        return core::ListedHint{std::nullopt, good};
    });
    rig.client.script("y.WAV", {FakeReply::ok(bytes)});
    CHECK(rig.get("y.WAV").error == 0);
    CHECK(rig.stats.md5_mismatches.load() == 0);
    rig.fetcher->shutdown();
}

namespace {

template <class T>
struct Waited {
    std::shared_ptr<std::promise<T>> p = std::make_shared<std::promise<T>>();
    T get() { return p->get_future().get(); }
};

core::EntryAnswer lookup(core::Filesystem& fs, core::Ino parent, const std::string& name) {
    Waited<core::EntryAnswer> w;
    fs.lookup(parent, name, 1, [p = w.p](const core::EntryAnswer& a) {
        p->set_value(a);
        return true;
    });
    return w.get();
}

}  // namespace

TEST_CASE("day folders through the Filesystem: lookups, entries, xattrs, and the download wins",
          "[core][listing][fs]") {
    ListingRig r("UTC");
    const std::string bytes = bytes_of(5000, 'd');
    r.server.records = {{"a.WAV", late_utc, "6000", "0", "", "0123456789abcdef0123456789abcdef"},
                        {"b.WAV", late_utc + 1, "5000"}, {"c.WAV", late_utc + 2, "7000"},
                        {"d.WAV", late_utc + 3, "3000"}};
    r.rig.client.script("a.WAV", {FakeReply::ok(bytes)});
    r.rig.client.script("d.WAV", {FakeReply::ok(bytes)});
    r.rig.client.script("c.WAV", {FakeReply::ok(bytes_of(4000, 'c'))});
    core::Filesystem fs(*r.rig.fetcher, *r.rig.cache, r.rig.stats, r.rig.clock, core::Ownership{});
    std::vector<core::Ino> invalidated;
    std::mutex m;
    fs.on_invalidate([&](core::Ino ino) {
        std::lock_guard lock(m);
        invalidated.push_back(ino);
    });
    fs.enable_listing(*r.listings, r.rig.logger);

    // The root: a day is a folder, found without a call; by-id too.
    const auto day = lookup(fs, core::root_ino, "2020-10-23");
    REQUIRE(day.error == 0);
    CHECK(S_ISDIR(day.attr.st_mode));
    CHECK(day.ino == core::Filesystem::day_ino(*core::parse_day("2020-10-23")));
    CHECK(S_ISDIR(lookup(fs, core::root_ino, core::Filesystem::by_id_name).attr.st_mode));
    CHECK(r.calls() == 0);
    int error = 0;
    const auto root = fs.readdir(core::root_ino, error);
    CHECK(std::count_if(root.begin(), root.end(), [](const core::DirEntry& e) { return S_ISDIR(e.mode); }) ==
          2 + 1 + 31);

    // A file of the day: the listing's size and call time, no download.
    const auto a = lookup(fs, day.ino, "a.WAV");
    REQUIRE(a.error == 0);
    CHECK(a.attr.st_size == 6000);
    CHECK(a.attr.st_mtime == late_utc);
    CHECK((a.attr.st_mode & 0777) == 0444);
    CHECK(r.rig.client.calls("a.WAV") == 0);
    const auto missing = lookup(fs, day.ino, "zzz.WAV");
    CHECK(missing.error == 0);
    CHECK(missing.ino == 0);  // a negative entry
    CHECK(fs.getxattr(a.ino, "user.euphoria.md5", error) == "0123456789abcdef0123456789abcdef");
    CHECK(error == 0);
    CHECK(fs.getxattr(a.ino, "user.euphoria.direction", error) == "Inbound");
    fs.getxattr(a.ino, "user.euphoria.note", error);
    CHECK(error == ENODATA);
    // Namespaces the mount has none of, as a local filesystem without them answers.
    for (const char* name : {"security.selinux", "system.posix_acl_access", "trusted.x", "user"}) {
        fs.getxattr(a.ino, name, error);
        CHECK(error == EOPNOTSUPP);
        fs.getxattr(core::root_ino, name, error);
        CHECK(error == EOPNOTSUPP);
    }
    fs.getxattr(core::root_ino, "user.other", error);
    CHECK(error == ENODATA);

    Waited<std::vector<core::DirEntry>> entries;
    fs.opendir(day.ino, [p = entries.p](int err, std::vector<core::DirEntry>&& e) {
        REQUIRE(err == 0);
        p->set_value(std::move(e));
        return true;
    });
    const auto listed = entries.get();
    REQUIRE(listed.size() == 6);
    CHECK(listed[2].name == "a.WAV");
    CHECK(fs.plus_entry(listed[2]).ino == a.ino);
    CHECK(fs.plus_entry(listed[0]).ino == 0);  // "." goes out without a lookup

    // Opening it downloads by name: 5000 bytes, not 6000. The same inode, resized.
    Waited<core::OpenAnswer> opened;
    fs.open(a.ino, O_RDONLY, [p = opened.p](core::OpenAnswer&& o) {
        p->set_value(std::move(o));
        return true;
    });
    const auto o = opened.get();
    REQUIRE(o.error == 0);
    CHECK(o.recording.content->size() == 5000);
    // Shorter too: through the page cache, the kernel would pad the short read with
    // zeros up to its larger size while the invalidation races it.
    CHECK(o.direct_io);
    CHECK(fs.getattr(a.ino).attr.st_size == 5000);
    for (int i = 0; i < 500; ++i) {
        {
            std::lock_guard lock(m);
            if (!invalidated.empty()) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    {
        std::lock_guard lock(m);
        CHECK(invalidated == std::vector<core::Ino>{a.ino});
    }
    // The root's lookup of the name is the same download: a cache hit.
    CHECK(lookup(fs, core::root_ino, "a.WAV").ino == a.ino);
    CHECK(r.rig.client.calls("a.WAV") == 1);
    // The listing's wrong size does not come back with the next look at the day:
    // the corrected version stays, so rsync's quick check sees 5000 every time.
    const auto again = lookup(fs, day.ino, "a.WAV");
    CHECK(again.ino == a.ino);
    CHECK(again.attr.st_size == 5000);
    CHECK(fs.plus_entry(listed[2]).attr.st_size == 5000);
    // Downloaded at the root first: the listing's 7000 does not replace its 4000.
    const auto c_root = lookup(fs, core::root_ino, "c.WAV");
    REQUIRE(c_root.error == 0);
    CHECK(c_root.attr.st_size == 4000);
    const auto c_day = lookup(fs, day.ino, "c.WAV");
    CHECK(c_day.ino == c_root.ino);
    CHECK(c_day.attr.st_size == 4000);
    CHECK(r.rig.client.calls("c.WAV") == 1);

    // Longer than listed: until the kernel hears of it, its size would cut reads
    // short, so the open that finds it out reads through the daemon.
    const auto d = lookup(fs, day.ino, "d.WAV");
    REQUIRE(d.attr.st_size == 3000);
    const auto open_d = [&] {
        Waited<core::OpenAnswer> w;
        fs.open(d.ino, O_RDONLY, [p = w.p](core::OpenAnswer&& answer) {
            p->set_value(std::move(answer));
            return true;
        });
        return w.get();
    };
    const auto od = open_d();
    REQUIRE(od.error == 0);
    CHECK(od.recording.content->size() == 5000);
    CHECK(od.direct_io);
    {
        std::lock_guard lock(m);
        CHECK(std::count(invalidated.begin(), invalidated.end(), d.ino) == 1);  // told at once
    }
    CHECK(fs.getattr(d.ino).attr.st_size == 5000);
    r.rig.fetcher->shutdown();
}

TEST_CASE("an API without GetCallRecordings is EOPNOTSUPP, logged once") {
    struct CountingLogger final : core::Logger {
        std::mutex m;
        int unsupported = 0;
        void log(core::LogLevel, std::string_view message) override {
            std::lock_guard lock(m);
            if (message.find("Action Name Not Found") != std::string_view::npos) ++unsupported;
        }
    } logger;
    ListingRig r("UTC");
    r.rig.client.lister = [](const api::ListingQuery&, const api::RecordHandler&) -> std::size_t {
        throw api::ApiError(EOPNOTSUPP, api::ErrorKind::rejected, "Action Name Not Found");
    };
    const core::ListingConfig config;
    core::Listings listings(r.rig.client, *r.rig.fetcher, r.rig.clock, r.rig.stats, logger,
                            core::TimeZone::utc(), config);
    for (const char* day : {"2020-10-23", "2020-10-24", "2020-10-23"}) {
        std::promise<core::DayListing> p;
        listings.list(*core::parse_day(day), [&p](core::DayListing l) { p.set_value(std::move(l)); });
        CHECK(p.get_future().get().error == EOPNOTSUPP);
    }
    CHECK(r.calls() == 3);  // an error is not cached
    std::lock_guard lock(logger.m);
    CHECK(logger.unsupported == 1);
}

TEST_CASE("with verify=md5 a listed download answers nobody before its MD5 is checked",
          "[core][listing][progressive]") {
    const auto bytes = riff_of(100000);
    for (const bool verify : {false, true}) {
        Rig rig([verify](core::FetcherConfig& c) { c.verify_md5 = verify; });
        rig.fetcher->on_hints([](const std::string&) -> std::optional<core::ListedHint> {
            return core::ListedHint{std::nullopt, "00000000000000000000000000000000"};
        });
        rig.client.script("v.WAV", {FakeReply::ok(bytes)});
        rig.client.hold_after_first_chunk();
        auto answer = std::async(std::launch::async, [&] {
            return rig.fetcher->get("v.WAV", nullptr, core::Fetcher::Until::answered);
        });
        if (!verify) {
            // Without verify the RIFF header lets readers in while the rest is held.
            REQUIRE(answer.wait_for(5s) == std::future_status::ready);
            CHECK(answer.get().error == 0);
            CHECK(rig.stats.early_replies.load() == 1);
            rig.client.release();
        } else {
            std::this_thread::sleep_for(50ms);
            CHECK(answer.wait_for(0s) == std::future_status::timeout);
            rig.client.release();
            REQUIRE(answer.wait_for(5s) == std::future_status::ready);
            CHECK(answer.get().error == EIO);
            CHECK(rig.stats.early_replies.load() == 0);
        }
        rig.fetcher->shutdown();
    }
}

TEST_CASE("by-id with cache_ttl=0: following the link is no second call", "[core][listing][fs]") {
    ListingRig r("UTC", 500, [](core::FetcherConfig& c) { c.ttl = 0s; });
    const std::string bytes = bytes_of(3000, 'i');
    const std::string name = "pbx4-1606000000.1196632-1001.WAV";
    r.rig.client.by_id["1606000000.1196632"] = name;
    r.rig.client.script(name, {FakeReply::ok(bytes), FakeReply::ok(bytes)});
    core::Filesystem fs(*r.rig.fetcher, *r.rig.cache, r.rig.stats, r.rig.clock, core::Ownership{});
    fs.enable_listing(*r.listings, r.rig.logger);

    const auto link = lookup(fs, core::Filesystem::by_id_ino, "1606000000.1196632");
    REQUIRE(link.error == 0);
    REQUIRE(link.ino != 0);
    int error = 0;
    CHECK(fs.readlink(link.ino, error) == "../" + name);
    CHECK(error == 0);
    // The program that read the link looks its target up: the same download.
    const auto target = lookup(fs, core::root_ino, name);
    REQUIRE(target.error == 0);
    CHECK(target.attr.st_size == 3000);
    CHECK(r.rig.client.calls(name) == 1);
    // Only for that program, and only for the open window: nothing is cached.
    r.rig.clock.advance(core::InodeTable::open_window + 1s);
    CHECK(lookup(fs, core::root_ino, name).error == 0);
    CHECK(r.rig.client.calls(name) == 2);
    // Before fs goes: the pin's release is a Fetcher timer that calls into it (TSan
    // caught the timer running while fs was destroyed).
    r.rig.fetcher->shutdown();
}

TEST_CASE("pcm/ day folders through the Filesystem: the day's names, the view's size and the listing's xattrs",
          "[core][listing][pcm][fs]") {
    ListingRig r("UTC");
    WavBuilder w;
    w.riff(4 + 24 + 8 + 3000).fmt(core::wav_format_alaw, 1, 8000, 1, 8).chunk("data", 3000).fill(3000, 0xD5);
    const std::string bytes(reinterpret_cast<const char*>(w.bytes().data()), w.size());
    r.server.records = {{"a.WAV", late_utc, std::to_string(bytes.size()), "0", "", "0123456789abcdef0123456789abcdef"}};
    r.rig.client.script("a.WAV", {FakeReply::ok(bytes)});
    core::TaskThread thread;
    core::PcmViews views(*r.rig.cache, r.rig.clock, r.rig.logger, r.rig.fetcher->config().builder,
                         thread.executor());
    core::Filesystem fs(*r.rig.fetcher, *r.rig.cache, r.rig.stats, r.rig.clock, core::Ownership{});
    fs.enable_listing(*r.listings, r.rig.logger);
    fs.enable_pcm(views);

    const auto pcm = lookup(fs, core::root_ino, "pcm");
    REQUIRE(pcm.error == 0);
    CHECK(pcm.ino == core::Filesystem::pcm_ino);
    const auto day = lookup(fs, pcm.ino, "2020-10-23");
    REQUIRE(day.error == 0);
    CHECK(S_ISDIR(day.attr.st_mode));
    CHECK(day.ino == core::Filesystem::pcm_day_ino(*core::parse_day("2020-10-23")));
    CHECK(day.ino != core::Filesystem::day_ino(*core::parse_day("2020-10-23")));
    CHECK(r.calls() == 0);
    // The root's by-id/ has no view, and its name never goes upstream.
    CHECK(lookup(fs, pcm.ino, core::Filesystem::by_id_name).error == ENOENT);
    CHECK(r.rig.client.total_calls() == 0);

    Waited<std::vector<core::DirEntry>> entries;
    fs.opendir(day.ino, [p = entries.p](int err, std::vector<core::DirEntry>&& e) {
        REQUIRE(err == 0);
        p->set_value(std::move(e));
        return true;
    });
    const auto listed = entries.get();
    REQUIRE(listed.size() == 3);
    CHECK(listed[1].ino == core::Filesystem::pcm_ino);  // ".."
    CHECK(listed[2].name == "a.WAV");
    CHECK(fs.plus_entry(listed[2]).ino == 0);  // no size before its header: no lookup
    CHECK(r.rig.client.calls("a.WAV") == 0);

    const auto missing = lookup(fs, day.ino, "zzz.WAV");
    CHECK(missing.error == 0);
    CHECK(missing.ino == 0);  // not on the day: negative, with no call
    CHECK(r.rig.client.calls("zzz.WAV") == 0);

    const auto a = lookup(fs, day.ino, "a.WAV");
    REQUIRE(a.error == 0);
    CHECK(a.attr.st_size == 44 + 2 * 3000);
    CHECK(a.attr.st_mtime == late_utc);
    CHECK(lookup(fs, pcm.ino, "a.WAV").ino == a.ino);  // pcm/NAME is the same inode
    int error = -1;
    CHECK(fs.getxattr(a.ino, "user.euphoria.md5", error) == "0123456789abcdef0123456789abcdef");
    CHECK(error == 0);
    CHECK(fs.getxattr(a.ino, "user.euphoria.source_format", error) == "alaw");
    CHECK(error == 0);
    const auto names = fs.listxattr(a.ino);
    CHECK(names.find(std::string("user.euphoria.md5\0", 18)) != std::string::npos);
    CHECK(names.find(std::string("user.euphoria.source_format\0", 28)) != std::string::npos);
    CHECK(r.rig.client.calls("a.WAV") == 1);

    r.rig.fetcher->shutdown();
    thread.shutdown();
    views.shutdown();
}
