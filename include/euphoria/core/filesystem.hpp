#pragma once
// What each FUSE request means, computed without any libfuse type: the glue in
// src/fuse decodes arguments, asks here, and replies. Modelled on libfuse's
// passthrough_hp.cc, which splits do_lookup from its callback the same way, and on
// mountpoint-s3, whose fs.rs is not tied to the fuser bindings.
//
// lookup() and open() may need a download. They never wait for it: they return at
// once, and their reply function runs when the answer is known, on the thread that
// completed the work (a FUSE reply may come from any thread).

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include "euphoria/core/fetcher.hpp"
#include "euphoria/core/inode_table.hpp"
#include "euphoria/core/listing.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/pcm_view.hpp"

namespace euphoria::core {

struct Ownership {
    uid_t uid = 0;
    gid_t gid = 0;
    mode_t umask = 0;
};

struct EntryAnswer {
    int error = 0;
    Ino ino = 0;  // 0 with no error: a negative entry the kernel may keep
    struct stat attr {};
    double timeout = 0;  // entry and attribute timeout, seconds
};

struct OpenAnswer {
    int error = 0;
    CachedRecording recording;  // what the handle pins until release
    bool keep_cache = false;
    // The kernel may still hold another size for the inode than the download has (a
    // listing's FileSize): smaller, it would stop reads there; larger, it would pad
    // the end with zeros. So this open reads through the daemon.
    bool direct_io = false;
};

struct DirEntry {
    std::string name;
    Ino ino;
    mode_t mode;
    // A day folder's file: what readdirplus needs to answer its lookup as well.
    bool listed = false;
    std::uint64_t size = 0;
    std::chrono::system_clock::time_point mtime{};
    Clock::time_point expires_at{};
};

// Replies return whether the kernel got the answer; false (the request was
// interrupted and answered already, or the reply failed) undoes what the answer
// promised, such as a lookup count.
using EntryReply = std::function<bool(const EntryAnswer&)>;
using OpenReply = std::function<bool(OpenAnswer&&)>;
// 0 and the entries, or an errno.
using DirReply = std::function<bool(int error, std::vector<DirEntry>&& entries)>;

class Filesystem {
public:
    Filesystem(Fetcher& fetcher, ContentCache& cache, Stats& stats, Clock& clock, Ownership owner);

    // Day folders (YYYY-MM-DD) from `listings`; without it (nolisting) the root has
    // recordings only. Set once, before requests are served; `logger` tells when a
    // download disagrees with the listing.
    void enable_listing(Listings& listings, Logger& logger);
    // The pcm/ view (issue 15): pcm/NAME, and with the listing pcm/YYYY-MM-DD/NAME,
    // each the recording NAME as 16-bit PCM WAV. Without it (nopcm) there is no pcm/.
    // Set once, before requests are served.
    void enable_pcm(PcmViews& views) { views_ = &views; }

    // Each returns the wait to cancel() on an interrupt, or 0 when `reply` already ran.
    // `pid` is the calling program's: its own repeat lookups within
    // InodeTable::open_window are answered from what its first one got.
    WaitId lookup(Ino parent, const std::string& name, pid_t pid, EntryReply reply);
    WaitId open(Ino ino, int flags, OpenReply reply);
    // Calls `ready` once bytes [0, end) of an open file's `content` have arrived (0),
    // or the download failed (EIO): at once, returning 0, or later from the thread
    // that wrote them. A read of a recording still arriving waits only for its range.
    WaitId wait_readable(const std::shared_ptr<const Content>& content, std::uint64_t end,
                         Content::Ready ready);
    // The request behind `id` was interrupted: its reply will not run. False when it
    // already ran or is running.
    bool cancel(WaitId id);

    // Never calls upstream: an inode's attributes are those of the version it stands
    // for. A player calling fstat on a file it holds past the TTL costs nothing.
    EntryAnswer getattr(Ino ino);
    void forget(Ino ino, std::uint64_t count) { inodes_.forget(ino, count, clock_.now()); }
    std::vector<DirEntry> readdir(Ino ino, int& error);
    // readdir for any folder: a day folder may need its listing first, so `reply`
    // may run later. Returns the wait to cancel, or 0 when `reply` already ran.
    WaitId opendir(Ino ino, DirReply reply);
    // For readdirplus, as the entry goes out: a listed file's lookup (counted, as
    // the kernel will forget it), or for any other entry ino 0, which the kernel
    // takes as a plain entry with no lookup.
    EntryAnswer plus_entry(const DirEntry& entry);
    // Day folders' inodes: fixed numbers, far above any recording's.
    static constexpr Ino day_ino_base = Ino{1} << 62;
    static constexpr std::int64_t day_ino_offset = std::int64_t{1} << 40;
    static Ino day_ino(std::int64_t day) noexcept {
        return day_ino_base + static_cast<Ino>(day + day_ino_offset);
    }
    std::optional<std::int64_t> day_of(Ino ino) const noexcept;
    // by-id/: a symlink per unique id, to ../fileName.
    static constexpr Ino by_id_ino = day_ino_base - 1;
    static constexpr Ino link_ino_base = Ino{1} << 61;
    static constexpr const char* by_id_name = "by-id";
    // pcm/ and its day folders: above the day folders' range, apart from each other.
    static constexpr Ino pcm_ino = day_ino_base + (Ino{1} << 43);
    static constexpr Ino pcm_day_ino_base = day_ino_base + (Ino{1} << 42);
    static Ino pcm_day_ino(std::int64_t day) noexcept {
        return pcm_day_ino_base + static_cast<Ino>(day + day_ino_offset);
    }
    std::optional<std::int64_t> pcm_day_of(Ino ino) const noexcept;
    // A view inode's user.euphoria.source_format, else empty.
    std::string view_source_format(Ino ino) const;
    // What readdir gives a pcm/ file whose view nobody looked up yet: only `ls -i`
    // shows it; a lookup gives the view its own inode.
    static constexpr Ino pcm_unlooked_ino = pcm_ino + 1;
    static constexpr const char* source_format_xattr = "source_format";
    // A by-id link's target ("../fileName"), or an errno.
    std::string readlink(Ino ino, int& error);
    // Root xattrs: the counters. Returns the value, or sets error (ENODATA...).
    std::string getxattr(Ino ino, const std::string& name, int& error);
    std::string listxattr(Ino ino);

    const InodeTable& inodes() const noexcept { return inodes_; }

    // How to tell the kernel an inode's attributes changed (a recording longer than
    // its header or its listing said). Called at once, on whatever thread found it,
    // under no lock of ours, and maybe inside a request: it must not block, so the
    // kernel is told later, from a thread of the caller's own. Set once, before
    // requests are served.
    using Invalidate = std::function<void(Ino)>;
    void on_invalidate(Invalidate invalidate) { invalidate_ = std::move(invalidate); }

    static constexpr const char* xattr_prefix = "user.euphoria.";

private:
    struct stat root_attr() const;
    struct stat day_attr(std::int64_t day) const;
    void lookup_listed(std::int64_t day, const std::string& name, const DayListing& l,
                       const EntryReply& reply);
    std::optional<ListedFile> listed_file(Ino ino) const;
    struct stat link_attr(Ino ino, const std::string& target) const;
    WaitId lookup_by_id(const std::string& id, pid_t pid, EntryReply reply);
    // The by-id job: one DownloadCallRecordingByUniqueId, cached under its fileName.
    void resolve_id(const std::string& id, pid_t pid, CallRunner& runner, api::CancelToken& cancel);
    // What is known of `id` now: a link, a negative answer, or nothing.
    std::optional<EntryAnswer> known_id(const std::string& id);
    void remember_id(const std::string& id, std::string target, Clock::time_point until);
    struct stat file_attr(Ino ino, const InodeInfo& info) const;
    double seconds_left(Clock::time_point until);
    void answer_lookup(const std::string& name, const FetchResult& r, pid_t pid,
                       InodeTable::Pin pin, const EntryReply& reply, bool weaken_when_whole = false);
    void answer_open(Ino ino, const InodeInfo& info, FetchResult r, const OpenReply& reply,
                     bool after_failure);
    void serve_open(Ino ino, CachedRecording recording, const OpenReply& reply, bool direct_io = false);
    // The fetch of a lookup by name, and how it answers.
    Completion lookup_done(const std::string& name, pid_t pid, EntryReply reply);
    // fetch() for an inode's name: a recording, or a view ("pcm/NAME"), which is
    // derived from its recording as the Fetcher gives it, with no call of its own.
    WaitId fetch_named(const std::string& name, Completion done);

    // pcm_tree.cpp: the pcm/ tree's requests.
    WaitId lookup_pcm(Ino parent, const std::string& name, pid_t pid, EntryReply& reply, bool& handled);
    WaitId lookup_view(const std::string& name, pid_t pid, EntryReply reply);
    WaitId opendir_pcm(Ino ino, DirReply& reply, bool& handled);
    std::optional<EntryAnswer> pcm_dir_attr(Ino ino) const;

    struct ReadWait {
        std::weak_ptr<const Content> content;
        Content::ReadyId ready = 0;  // 0 until registered with the content
    };
    // Read waits are numbered apart from the Fetcher's waits.
    static constexpr WaitId read_wait_bit = WaitId{1} << 63;

    Fetcher& fetcher_;
    ContentCache& cache_;
    Stats& stats_;
    Clock& clock_;
    const Ownership owner_;
    const std::chrono::system_clock::time_point mounted_at_;
    InodeTable inodes_;
    Invalidate invalidate_;  // set before requests are served, read-only after
    Listings* listings_ = nullptr;  // the same
    Logger* logger_ = nullptr;      // the same
    PcmViews* views_ = nullptr;     // the same

    struct Link {
        std::string id;
        std::string target;  // "../fileName"; empty: no such id (a negative answer)
        Clock::time_point until{};
    };
    // Guards links_, link_of_ and next_link_. A leaf lock.
    mutable std::mutex links_mutex_;
    std::unordered_map<Ino, Link> links_;
    std::unordered_map<std::string, Ino> link_of_;  // by id
    Ino next_link_ = link_ino_base;
    static constexpr std::size_t max_links = 65536;  // past it, expired ones go
    // Guards reads_ and next_read_. A leaf lock: never held while calling a Content.
    std::mutex reads_mutex_;
    std::unordered_map<WaitId, ReadWait> reads_;
    WaitId next_read_ = 1;
};

}  // namespace euphoria::core
