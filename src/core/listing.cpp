#include "euphoria/core/listing.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <unordered_map>

#include "euphoria/api/error.hpp"
#include "euphoria/core/date_stamp.hpp"
#include "euphoria/core/names.hpp"

namespace euphoria::core {

namespace {

using api::RecordField;

// The widest UTC offsets in use: a day in our zone falls on server dates within
// these of its own ends, whatever the server's zone.
constexpr Seconds west_most = Seconds{-12} * 3600;
constexpr Seconds east_most = Seconds{14} * 3600;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

std::int64_t local_day(Seconds t, const TimeZone& zone) { return floor_div(t + zone.offset_at(t), 86400); }

bool deleted(const std::string& flag) {
    return !(flag.empty() || flag == "0" || flag == "false" || flag == "False" || flag == "FALSE");
}

std::optional<std::uint64_t> whole_number(const std::string& text) {
    std::uint64_t v = 0;
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
    return v;
}

std::string md5_of(const std::string& text) {
    if (text.size() != 32) return {};
    std::string out;
    for (char c : text) {
        if (!std::isxdigit(static_cast<unsigned char>(c))) return {};
        out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return out;
}

// A name the mount could serve: one path component, fetchable, NAME_MAX at most.
bool servable(const std::string& name, const NamePolicy& names) {
    return !name.empty() && name.size() <= max_name_bytes && name != "." && name != ".." &&
           name.find('/') == std::string::npos && name.find('\0') == std::string::npos &&
           names.may_fetch(name);
}

}  // namespace

std::optional<Seconds> record_call_time(const api::ListedRecord& record, const TimeZone& zone) {
    if (const auto t = call_time_from_name(record[RecordField::file_name])) return static_cast<Seconds>(*t);
    if (const auto stamp = parse_date_stamp(record[RecordField::date_stamp])) return stamp->instant(zone);
    return std::nullopt;
}

struct Listings::Progress {
    std::string start_date, end_date;
    std::uint64_t start_at = 0;
    unsigned calls = 0;
    std::string first_name;  // the first page's first record, of any day
    std::uint64_t last_page = 0;  // records in the page before this one
    std::uint64_t most = 0;       // the fullest page of this listing so far
    std::uint64_t skipped = 0;  // records with no call time or no servable name
    std::unordered_map<std::string, ListedFile> files;
    Clock::time_point started{};
};

Listings::Listings(api::Client& client, Fetcher& fetcher, Clock& clock, Stats& stats, Logger& logger,
                   TimeZone zone, ListingConfig config)
    : client_(client), fetcher_(fetcher), clock_(clock), stats_(stats), logger_(logger),
      zone_(std::move(zone)), config_(std::move(config)) {}

std::int64_t Listings::today() {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(clock_.wall_now().time_since_epoch());
    return local_day(now.count(), zone_);
}

std::optional<DayListing> Listings::cached(std::int64_t day, Clock::time_point now) const {
    std::lock_guard lock(mutex_);
    const auto it = days_.find(day);
    if (it == days_.end() || it->second.expires_at <= now) return std::nullopt;
    return DayListing{0, it->second.files, it->second.expires_at, {}};
}

WaitId Listings::list(std::int64_t day, ListingDone done) {
    if (auto hit = cached(day, clock_.now())) {
        done(std::move(*hit));
        return 0;
    }
    auto progress = std::make_shared<Progress>();
    return fetcher_.call(
        "listing of " + format_day(day),
        [this, day, progress](CallRunner& runner, api::CancelToken& cancel) {
            run(day, *progress, runner, cancel);
        },
        [this, day, done = std::move(done)](const FetchResult& r) {
            DayListing answer;
            if (r.error) {
                answer.error = r.error;
                answer.message = r.message;
                bool tell = true;
                if (r.error == EOPNOTSUPP) {
                    std::lock_guard lock(mutex_);
                    tell = !told_unsupported_;
                    told_unsupported_ = true;
                }
                if (tell) {
                    logger_.log(LogLevel::error, "listing of " + format_day(day) + ": " +
                                                     api::describe_errno(r.error) + ": " + r.message);
                }
                done(std::move(answer));
                return;
            }
            {
                // The job that ran for this caller (its own or a shared one) kept it.
                std::lock_guard lock(mutex_);
                const auto it = days_.find(day);
                if (it != days_.end()) answer = DayListing{0, it->second.files, it->second.expires_at, {}};
            }
            if (!answer.files) {
                answer.error = EAGAIN;
                answer.message = "the listing was dropped before it was answered";
            }
            done(std::move(answer));
        });
}

void Listings::run(std::int64_t day, Progress& p, CallRunner& runner, api::CancelToken& cancel) {
    if (p.start_date.empty()) {
        const Seconds first = zone_.to_utc(day * 86400);
        const Seconds last = zone_.to_utc((day + 1) * 86400) - 1;
        p.start_date = format_day(floor_div(first + west_most, 86400));
        // One more day: nothing public says whether EndDate is inclusive.
        p.end_date = format_day(floor_div(last + east_most, 86400) + 1);
        p.started = clock_.now();
    }
    for (;;) {
        api::ListingQuery query{p.start_date, p.end_date, config_.page_size, p.start_at};
        std::vector<ListedFile> page;
        std::uint64_t skipped = 0;
        std::size_t n = 0;
        std::string page_first;
        runner.once([&] {
            page.clear();
            skipped = 0;
            page_first.clear();
            n = client_.list(
                query,
                [&](const api::ListedRecord& rec) {
                    if (page_first.empty()) page_first = rec[RecordField::file_name];
                    if (deleted(rec[RecordField::is_deleted])) return;
                    const auto t = record_call_time(rec, zone_);
                    const auto& name = rec[RecordField::file_name];
                    if (!t || !servable(name, config_.names)) {
                        ++skipped;
                        return;
                    }
                    if (local_day(*t, zone_) != day) return;
                    ListedFile f;
                    f.name = name;
                    f.size = whole_number(rec[RecordField::file_size]).value_or(0);
                    f.call_time = std::chrono::system_clock::time_point(std::chrono::seconds(*t));
                    f.md5 = md5_of(rec[RecordField::md5]);
                    f.unique_id = rec[RecordField::unique_id];
                    f.direction = rec[RecordField::direction];
                    f.source = rec[RecordField::source];
                    f.destination = rec[RecordField::destination];
                    f.note = rec[RecordField::note];
                    page.push_back(std::move(f));
                },
                cancel);
        });
        // Only a whole page counts: a reply that failed half-way is retried whole.
        if (p.calls == 0) {
            p.first_name = page_first;
        } else if (n > 0 && !page_first.empty() && page_first == p.first_name) {
            // The first page again: a server that ignores startAt would be paged
            // for ever. What came so far is all there is to have.
            logger_.log(LogLevel::warning, "listing " + format_day(day) + ": page " +
                                               std::to_string(p.calls + 1) +
                                               " repeats the first (startAt ignored?); "
                                               "stopping with what the first pages gave");
            break;
        }
        ++p.calls;
        p.skipped += skipped;
        for (auto& f : page) p.files.insert_or_assign(f.name, std::move(f));
        p.start_at += n;
        // The server may cap a page below what was asked, and nothing says what it
        // honours but its pages. A page shorter than asked is the last only when it
        // holds fewer than a page has lately been seen to hold; otherwise one more
        // call tells. What a page holds is learned from those calls: a short page
        // followed by records is exactly the cap (which may have dropped), one
        // followed by nothing a floor. The knowledge ages, so that a cap lowered
        // after it was learned costs at most `cap_relearn` of listings that stop
        // early, and then one extra call.
        const auto now = clock_.now();
        std::uint64_t known = 0;
        {
            std::lock_guard lock(mutex_);
            const bool fresh = cap_seen_ && now - *cap_seen_ < cap_relearn;
            const std::uint64_t prev = p.last_page;
            if (n >= config_.page_size) {
                // As full as asked: the server honours the page, whatever it was.
                page_cap_ = config_.page_size;
                cap_seen_ = now;
            } else if (p.calls > 1 && prev < config_.page_size) {
                if (n > 0 || !fresh || page_cap_ < prev) page_cap_ = prev;
                cap_seen_ = now;
            }
            if (cap_seen_ && now - *cap_seen_ < cap_relearn) known = page_cap_;
        }
        p.last_page = n;
        // Fewer than an earlier page of this listing held is the last page too.
        const bool last = n == 0 || (n < config_.page_size && (n < known || n < p.most));
        p.most = std::max(p.most, n);
        if (last) break;
    }
    auto files = std::make_shared<DayFiles>();
    files->reserve(p.files.size());
    for (auto& [name, f] : p.files) files->push_back(std::move(f));
    std::sort(files->begin(), files->end(), [](const ListedFile& a, const ListedFile& b) { return a.name < b.name; });
    const auto now = clock_.now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - p.started).count();
    stats_.listings.fetch_add(1, std::memory_order_relaxed);
    logger_.log(LogLevel::info, "listed " + format_day(day) + ": " + std::to_string(files->size()) +
                                    " recordings in " + std::to_string(p.calls) + " call(s), " +
                                    std::to_string(ms) + " ms" +
                                    (p.skipped ? ", " + std::to_string(p.skipped) +
                                                     " record(s) without a usable name or call time"
                                               : std::string()));
    keep(day, std::move(files), now + config_.ttl);
}

void Listings::keep(std::int64_t day, std::shared_ptr<const DayFiles> files, Clock::time_point expires) {
    std::lock_guard lock(mutex_);
    auto& kept = days_[day];
    kept = Kept{std::move(files), expires, next_serial_++};
    while (days_.size() > max_days_kept) {
        auto oldest = std::min_element(days_.begin(), days_.end(), [](const auto& a, const auto& b) {
            return a.second.serial < b.second.serial;
        });
        days_.erase(oldest);
    }
}

std::optional<ListedFile> Listings::find(const std::string& name) const {
    std::lock_guard lock(mutex_);
    const Kept* best = nullptr;
    const ListedFile* found = nullptr;
    for (const auto& [day, kept] : days_) {
        if (!kept.files) continue;
        const auto it = std::lower_bound(kept.files->begin(), kept.files->end(), name,
                                         [](const ListedFile& f, const std::string& n) { return f.name < n; });
        if (it != kept.files->end() && it->name == name && (!best || kept.serial > best->serial)) {
            best = &kept;
            found = &*it;
        }
    }
    if (!found) return std::nullopt;
    return *found;
}

}  // namespace euphoria::core
