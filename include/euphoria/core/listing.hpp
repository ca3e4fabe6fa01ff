#pragma once
// Day folders: which recordings a GetCallRecordings listing puts on a day, in the
// mount's time zone. A day's listing runs as one Fetcher job (the call budget, the
// retries and "exceeded" learning of downloads), pages with startAt, and is cached
// for the TTL; concurrent listings of one day share that job.
//
// The server's zone is unknown, so a day is asked for as the range of server dates
// it can fall on under any UTC offset (-12 h to +14 h), one day more in case EndDate
// is exclusive, and each record is placed by its own call time.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "euphoria/api/client.hpp"
#include "euphoria/core/clock.hpp"
#include "euphoria/core/fetcher.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/stats.hpp"
#include "euphoria/core/time_zone.hpp"

namespace euphoria::core {

struct ListedFile {
    std::string name;
    std::uint64_t size = 0;  // FileSize
    std::chrono::system_clock::time_point call_time{};
    std::string md5;  // lower-case hex, or empty
    std::string unique_id, direction, source, destination, note;
};

using DayFiles = std::vector<ListedFile>;  // sorted by name, one entry per name

struct DayListing {
    int error = 0;  // 0, or the errno for the folder
    std::shared_ptr<const DayFiles> files;
    Clock::time_point expires_at{};
    std::string message;
};
using ListingDone = std::function<void(DayListing)>;

struct ListingConfig {
    std::uint64_t page_size = 500;  // listing_page
    std::chrono::seconds ttl{30};
    unsigned days = 31;  // listing_days: day folders the root shows
    NamePolicy names;    // a listed name nobody could fetch is not listed
};

class Listings {
public:
    Listings(api::Client& client, Fetcher& fetcher, Clock& clock, Stats& stats, Logger& logger,
             TimeZone zone, ListingConfig config);

    // Calls `done` at once (returning 0) for a listing in the cache; otherwise later,
    // on a Fetcher thread, returning the wait to cancel through Fetcher::cancel_wait.
    WaitId list(std::int64_t day, ListingDone done);
    // What the most recent listings said of `name`, expired or not (kept for the
    // last few days listed): the download checks its MD5 and keeps its call time.
    std::optional<ListedFile> find(const std::string& name) const;
    // Today, in the mount's zone.
    std::int64_t today();
    const ListingConfig& config() const noexcept { return config_; }
    const TimeZone& zone() const noexcept { return zone_; }

    // Listings kept, at most, for find(): a 20,000-recording day is a few MB.
    static constexpr std::size_t max_days_kept = 8;
    // How long a learned page cap is trusted without a call that checks it.
    static constexpr std::chrono::minutes cap_relearn{10};

private:
    struct Progress;  // a listing job's pages so far, kept across "exceeded"
    void run(std::int64_t day, Progress& progress, CallRunner& runner, api::CancelToken& cancel);
    void keep(std::int64_t day, std::shared_ptr<const DayFiles> files, Clock::time_point expires);
    std::optional<DayListing> cached(std::int64_t day, Clock::time_point now) const;

    api::Client& client_;
    Fetcher& fetcher_;
    Clock& clock_;
    Stats& stats_;
    Logger& logger_;
    const TimeZone zone_;
    const ListingConfig config_;

    // Guards everything below. A leaf lock: never held while calling the Fetcher, the
    // client or a completion.
    mutable std::mutex mutex_;
    struct Kept {
        std::shared_ptr<const DayFiles> files;
        Clock::time_point expires_at{};
        std::uint64_t serial = 0;  // when it was listed, for dropping the oldest
    };
    std::map<std::int64_t, Kept> days_;
    std::uint64_t next_serial_ = 0;
    // What one page of this server holds, as its pages have shown (see run()), and
    // when that was last checked.
    std::uint64_t page_cap_ = 0;
    std::optional<Clock::time_point> cap_seen_;
    bool told_unsupported_ = false;  // "Action Name Not Found" is logged once
};

// The call time a listing record gives: the name's epoch, else its DateStamp in
// `zone`. Empty when it has neither.
std::optional<Seconds> record_call_time(const api::ListedRecord& record, const TimeZone& zone);

}  // namespace euphoria::core
