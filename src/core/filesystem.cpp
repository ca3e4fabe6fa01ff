#include "euphoria/core/filesystem.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

#include "euphoria/api/error.hpp"
#include "euphoria/api/request.hpp"
#include "euphoria/core/names.hpp"

namespace euphoria::core {

namespace {

timespec to_timespec(std::chrono::system_clock::time_point t) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns.count() / 1000000000);
    ts.tv_nsec = static_cast<long>(ns.count() % 1000000000);
    return ts;
}

template <class Answer>
Answer failed(int err) {
    Answer a;
    a.error = err;
    return a;
}

constexpr auto entry_error = failed<EntryAnswer>;
constexpr auto open_error = failed<OpenAnswer>;

}  // namespace

Filesystem::Filesystem(Fetcher& fetcher, ContentCache& cache, Stats& stats, Clock& clock,
                       Ownership owner)
    : fetcher_(fetcher), cache_(cache), stats_(stats), clock_(clock), owner_(owner),
      mounted_at_(clock.wall_now()) {
    fetcher_.on_resized([this](const std::string& name, std::uint64_t announced, const CachedRecording& real) {
        auto inos = inodes_.resize(name, announced, real.mtime, real.content->size());
        if (!invalidate_) return;
        for (const Ino ino : inos) invalidate_(ino);
    });
}

void Filesystem::enable_listing(Listings& listings, Logger& logger) {
    listings_ = &listings;
    logger_ = &logger;
    fetcher_.on_hints([&listings](const std::string& name) -> std::optional<ListedHint> {
        auto f = listings.find(name);
        if (!f) return std::nullopt;
        return ListedHint{f->call_time, f->md5};
    });
}

std::optional<std::int64_t> Filesystem::day_of(Ino ino) const noexcept {
    if (!listings_ || ino < day_ino_base || ino - day_ino_base >= 2 * static_cast<Ino>(day_ino_offset)) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(ino - day_ino_base) - day_ino_offset;
}

double Filesystem::seconds_left(Clock::time_point until) {
    const auto left = until - clock_.now();
    return left.count() <= 0 ? 0.0 : std::chrono::duration<double>(left).count();
}

struct stat Filesystem::root_attr() const {
    struct stat st {};
    st.st_ino = root_ino;
    st.st_mode = S_IFDIR | (0555 & ~owner_.umask);
    st.st_nlink = 2;
    st.st_uid = owner_.uid;
    st.st_gid = owner_.gid;
    st.st_atim = st.st_mtim = st.st_ctim = to_timespec(mounted_at_);
    st.st_blksize = 1 << 20;
    return st;
}

struct stat Filesystem::day_attr(std::int64_t day) const {
    struct stat st = root_attr();
    st.st_ino = day_ino(day);
    // The day's own midnight (UTC): a folder's time should not move.
    st.st_atim = st.st_mtim = st.st_ctim =
        to_timespec(std::chrono::system_clock::time_point(std::chrono::seconds(day * 86400)));
    return st;
}

struct stat Filesystem::file_attr(Ino ino, const InodeInfo& info) const {
    struct stat st {};
    st.st_ino = ino;
    st.st_mode = S_IFREG | (0444 & ~owner_.umask);
    st.st_nlink = 1;
    st.st_uid = owner_.uid;
    st.st_gid = owner_.gid;
    st.st_size = static_cast<off_t>(info.size);
    st.st_blocks = (st.st_size + 511) / 512;
    st.st_blksize = 1 << 20;
    st.st_atim = st.st_mtim = st.st_ctim = to_timespec(info.mtime);
    return st;
}

WaitId Filesystem::lookup(Ino parent, const std::string& name, pid_t pid, EntryReply reply) {
    if (listings_ && parent == by_id_ino) return lookup_by_id(name, pid, std::move(reply));
    if (views_) {
        bool handled = false;
        const WaitId id = lookup_pcm(parent, name, pid, reply, handled);
        if (handled) return id;
    }
    if (const auto day = day_of(parent)) {
        return listings_->list(*day, [this, day = *day, name, reply = std::move(reply)](const DayListing& l) {
            lookup_listed(day, name, l, reply);
        });
    }
    if (parent != root_ino) {
        reply(entry_error(ENOENT));
        return 0;
    }
    if (listings_ && name == by_id_name) {
        EntryAnswer a;
        a.ino = by_id_ino;
        a.attr = root_attr();
        a.attr.st_ino = by_id_ino;
        a.timeout = 1.0;
        reply(a);
        return 0;
    }
    if (listings_) {
        // Any day, however old: such names never go upstream as recordings.
        if (const auto day = parse_day(name)) {
            EntryAnswer a;
            a.ino = day_ino(*day);
            a.attr = day_attr(*day);
            a.timeout = std::chrono::duration<double>(listings_->config().ttl).count();
            reply(a);
            return 0;
        }
    }
    auto recent = inodes_.recent_for(name, pid, clock_.now());
    // A download that failed is never served again: fetch afresh.
    if (recent && recent->content->failed()) recent.reset();
    if (recent) {
        // Not pinned again: the window counts from the lookup that fetched.
        FetchResult r;
        r.recording = std::move(*recent);
        answer_lookup(name, r, pid, InodeTable::Pin::none, reply);
        return 0;
    }
    return fetcher_.fetch(name, lookup_done(name, pid, std::move(reply)));
}

Completion Filesystem::lookup_done(const std::string& name, pid_t pid, EntryReply reply) {
    return [this, name, pid, reply = std::move(reply)](const FetchResult& r) {
        const bool kept = r.error == 0 && r.recording.expires_at > clock_.now();
        // A download still running is pinned strongly too, so that an open after it
        // failed learns so (EIO) instead of fetching a new version under this inode.
        const bool growing = r.error == 0 && !r.negative && !r.recording.content->complete();
        answer_lookup(name, r, pid, kept && !growing ? InodeTable::Pin::weak : InodeTable::Pin::strong,
                      reply, kept && growing);
    };
}

WaitId Filesystem::fetch_named(const std::string& name, Completion done) {
    auto original = views_ ? pcm_original_of(name) : std::nullopt;
    if (!original) return fetcher_.fetch(name, std::move(done));
    return fetcher_.fetch(*original, [this, original = *original, done = std::move(done)](FetchResult r) {
        if (r.error || r.negative) {
            done(std::move(r));
            return;
        }
        views_->view(original, r.recording, [done](PcmViewAnswer a) {
            FetchResult v;
            v.error = a.error;
            v.recording = std::move(a.view);
            done(std::move(v));
        });
    });
}

void Filesystem::answer_lookup(const std::string& name, const FetchResult& r, pid_t pid,
                               InodeTable::Pin pin, const EntryReply& reply, bool weaken_when_whole) {
    EntryAnswer a;
    try {
        if (r.negative) {
            // A negative entry: the kernel answers repeats itself until the TTL ends.
            a.timeout = seconds_left(r.negative_until);
        } else if (r.error) {
            a.error = r.error;
        } else {
            const auto now = clock_.now();
            a.ino = inodes_.acquire(name, r.recording, true, now, pin, pid);
            if (weaken_when_whole) {
                // Once whole, the cache keeps it: the pin must not keep it past that.
                const Ino ino = a.ino;
                const Content* content = r.recording.content.get();
                r.recording.content->when_ready(Content::whole, [this, ino, content](int error) {
                    if (error == 0) inodes_.weaken_pin(ino, content);
                });
            }
            if (pin == InodeTable::Pin::strong) {
                // Nothing else holds these bytes: let go on time, idle mount or not.
                fetcher_.schedule(now + InodeTable::open_window,
                                  [this] { inodes_.release_pins(clock_.now()); });
            }
            a.attr = file_attr(a.ino, InodeInfo{name, r.recording.content->size(),
                                                r.recording.mtime, r.recording.expires_at});
            // Never longer than the data may be cached: the kernel asks again after that.
            a.timeout = seconds_left(r.recording.expires_at);
        }
    } catch (...) {
        a = entry_error(EIO);
    }
    if (!reply(a) && a.ino) inodes_.forget(a.ino, 1, clock_.now());
}

void Filesystem::lookup_listed(std::int64_t day, const std::string& name, const DayListing& l,
                               const EntryReply& reply) {
    EntryAnswer a;
    try {
        if (l.error) {
            a.error = l.error;
        } else {
            const auto& files = *l.files;
            const auto it = std::lower_bound(files.begin(), files.end(), name,
                                             [](const ListedFile& f, const std::string& n) { return f.name < n; });
            // Not on this day: a negative entry for as long as the listing holds.
            a.timeout = seconds_left(l.expires_at);
            if (it != files.end() && it->name == name) {
                a.ino = inodes_.acquire_listed(name, it->size, it->call_time, l.expires_at, true, clock_.now());
                auto info = inodes_.find(a.ino);
                a.attr = file_attr(a.ino, info ? *info : InodeInfo{name, it->size, it->call_time, l.expires_at, true});
            }
        }
    } catch (...) {
        a = entry_error(EIO);
    }
    (void)day;
    if (!reply(a) && a.ino) inodes_.forget(a.ino, 1, clock_.now());
}

EntryAnswer Filesystem::getattr(Ino ino) {
    EntryAnswer a;
    a.ino = ino;
    if (ino == root_ino) {
        a.attr = root_attr();
        a.timeout = 1.0;
        return a;
    }
    if (const auto day = day_of(ino)) {
        a.attr = day_attr(*day);
        a.timeout = 1.0;
        return a;
    }
    if (listings_ && ino == by_id_ino) {
        a.attr = root_attr();
        a.attr.st_ino = by_id_ino;
        a.timeout = 1.0;
        return a;
    }
    if (auto pcm = pcm_dir_attr(ino)) return *pcm;
    if (ino >= link_ino_base && ino < day_ino_base - 1) {
        std::lock_guard lock(links_mutex_);
        const auto it = links_.find(ino);
        if (it == links_.end() || it->second.target.empty()) {
            a.error = ENOENT;
            return a;
        }
        a.attr = link_attr(ino, it->second.target);
        a.timeout = seconds_left(it->second.until);
        return a;
    }
    auto info = inodes_.find(ino);
    if (!info) {
        a.error = ENOENT;
        return a;
    }
    a.attr = file_attr(ino, *info);
    a.timeout = seconds_left(info->expires_at);
    return a;
}

WaitId Filesystem::open(Ino ino, int flags, OpenReply reply) {
    if (ino == root_ino || day_of(ino) || (listings_ && ino == by_id_ino) || pcm_dir_attr(ino)) {
        reply(open_error(EISDIR));
        return 0;
    }
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND))) {
        reply(open_error(EROFS));
        return 0;
    }
    auto info = inodes_.find(ino);
    if (!info) {
        reply(open_error(ENOENT));
        return 0;
    }
    // The open that follows a lookup gets what that lookup answered, even when the
    // cache did not keep it (cache_ttl=0).
    auto recent = inodes_.recent(ino, clock_.now());
    // The download that this inode's lookup let readers into failed: nothing of it
    // was cached, so the open fetches again. A name without a call time gets its
    // mtime from each download; the same size is the same recording here, or the
    // kernel would be sent back (ESTALE) to a lookup that may fail the same way.
    const bool after_failure = recent && recent->content->failed();
    if (recent && !after_failure) {
        serve_open(ino, std::move(*recent), reply);
        return 0;
    }
    // Through the cache: an expired entry is fetched again here.
    return fetch_named(info->name, [this, ino, info = *info, after_failure,
                                       reply = std::move(reply)](FetchResult r) {
        answer_open(ino, info, std::move(r), reply, after_failure);
    });
}

void Filesystem::answer_open(Ino ino, const InodeInfo& info, FetchResult r, const OpenReply& reply,
                             bool after_failure) {
    if (r.error) {
        reply(open_error(r.error));
        return;
    }
    if (const int err = r.recording.content->error()) {
        reply(open_error(err));
        return;
    }
    if (info.listed && r.recording.content->size() != info.size) {
        // The listing's FileSize was wrong: the download wins. The inode keeps its
        // number with the real size, and the kernel is told to drop what it holds.
        const auto real = r.recording.content->size();
        auto inos = inodes_.resize(info.name, info.size, info.mtime, real);
        if (logger_) {
            logger_->log(LogLevel::warning, "fetched " + info.name + ": " + std::to_string(real) +
                                                " bytes, not the " + std::to_string(info.size) +
                                                " its listing said");
        }
        if (invalidate_) {
            for (const Ino i : inos) invalidate_(i);
        }
        // Either way this open reads through the daemon. Longer: the kernel would stop
        // at its smaller size. Shorter: the kernel pads a short read with zeros up to
        // its larger size, and keeps that size when the invalidation's attribute
        // change races the read, so zeros would be served as the recording's end.
        serve_open(ino, std::move(r.recording), reply, /*direct_io=*/true);
        return;
    }
    // A listed file's time is the listing's; a download of it made before the listing
    // came may carry another. The bytes are the same recording.
    const bool same_time = after_failure || info.listed || r.recording.mtime == info.mtime;
    if (r.recording.content->size() != info.size || !same_time) {
        // A new version under this inode's name: ESTALE makes the kernel look the
        // name up again, which gives the new version its own inode.
        reply(open_error(ESTALE));
        return;
    }
    serve_open(ino, std::move(r.recording), reply);
}

void Filesystem::serve_open(Ino ino, CachedRecording recording, const OpenReply& reply,
                            bool direct_io) {
    OpenAnswer a;
    try {
        a.direct_io = direct_io;
        a.keep_cache = !direct_io && inodes_.same_as_last_served(ino, recording.content);
        a.recording = std::move(recording);
    } catch (...) {
        a = open_error(EIO);
    }
    reply(std::move(a));
}

WaitId Filesystem::wait_readable(const std::shared_ptr<const Content>& content, std::uint64_t end,
                                 Content::Ready ready) {
    if (content->complete() || content->arrived() >= std::min(end, content->size())) {
        ready(content->error());
        return 0;
    }
    stats_.waiting_reads.fetch_add(1, std::memory_order_relaxed);
    WaitId id = 0;
    {
        std::lock_guard lock(reads_mutex_);
        id = read_wait_bit | next_read_++;
        reads_.emplace(id, ReadWait{content, 0});
    }
    auto forget = [this, id] {
        std::lock_guard lock(reads_mutex_);
        return reads_.erase(id) > 0;
    };
    Content::ReadyId rid = 0;
    try {
        rid = content->when_ready(end, [forget, ready = std::move(ready)](int error) {
            forget();
            ready(error);
        });
    } catch (...) {
        forget();
        throw;
    }
    if (rid == 0) return 0;  // answered already
    std::lock_guard lock(reads_mutex_);
    const auto it = reads_.find(id);
    if (it == reads_.end()) return 0;  // answered meanwhile
    it->second.ready = rid;
    return id;
}

bool Filesystem::cancel(WaitId id) {
    if ((id & read_wait_bit) == 0) return fetcher_.cancel_wait(id);
    ReadWait wait;
    {
        std::lock_guard lock(reads_mutex_);
        const auto it = reads_.find(id);
        if (it == reads_.end() || it->second.ready == 0) return false;
        wait = it->second;
        reads_.erase(it);
    }
    const auto content = wait.content.lock();
    return content && content->cancel_ready(wait.ready);
}

WaitId Filesystem::opendir(Ino ino, DirReply reply) {
    const auto day = day_of(ino);
    if (listings_ && ino == by_id_ino) {
        std::vector<DirEntry> out{{".", by_id_ino, S_IFDIR}, {"..", root_ino, S_IFDIR}};
        {
            std::lock_guard lock(links_mutex_);
            const auto now = clock_.now();
            for (const auto& [link, l] : links_) {
                if (!l.target.empty() && l.until > now) out.push_back({l.id, link, S_IFLNK});
            }
        }
        reply(0, std::move(out));
        return 0;
    }
    if (views_) {
        bool handled = false;
        const WaitId id = opendir_pcm(ino, reply, handled);
        if (handled) return id;
    }
    if (!day) {
        int error = 0;
        auto entries = readdir(ino, error);
        reply(error, std::move(entries));
        return 0;
    }
    return listings_->list(*day, [this, ino, reply = std::move(reply)](const DayListing& l) {
        std::vector<DirEntry> out;
        int error = l.error;
        try {
            if (!error) {
                out.reserve(l.files->size() + 2);
                out.push_back({".", ino, S_IFDIR});
                out.push_back({"..", root_ino, S_IFDIR});
                const auto now = clock_.now();
                for (const auto& f : *l.files) {
                    out.push_back({f.name, inodes_.acquire_listed(f.name, f.size, f.call_time, l.expires_at, false, now),
                                   S_IFREG, true, f.size, f.call_time, l.expires_at});
                }
            }
        } catch (const std::bad_alloc&) {
            error = ENOMEM;
            out.clear();
        } catch (...) {
            error = EIO;
            out.clear();
        }
        reply(error, std::move(out));
    });
}

EntryAnswer Filesystem::plus_entry(const DirEntry& entry) {
    EntryAnswer a;
    if (!entry.listed) {
        a.attr.st_ino = entry.ino;
        a.attr.st_mode = entry.mode;
        return a;
    }
    a.ino = inodes_.acquire_listed(entry.name, entry.size, entry.mtime, entry.expires_at, true, clock_.now());
    const auto info = inodes_.find(a.ino);
    a.attr = file_attr(a.ino, info ? *info : InodeInfo{entry.name, entry.size, entry.mtime, entry.expires_at, true});
    a.timeout = seconds_left(entry.expires_at);
    return a;
}

std::vector<DirEntry> Filesystem::readdir(Ino ino, int& error) {
    std::vector<DirEntry> out;
    if (ino != root_ino) {
        error = ENOTDIR;
        return out;
    }
    error = 0;
    out.push_back({".", root_ino, S_IFDIR});
    out.push_back({"..", root_ino, S_IFDIR});
    const auto now = clock_.now();
    auto listed = cache_.list(now);
    // A name that stat already answered while its download runs is listed too.
    for (auto& arriving : fetcher_.arriving()) {
        const auto& name = arriving.first;
        const bool cached = std::any_of(listed.begin(), listed.end(),
                                        [&name](const auto& l) { return l.first == name; });
        if (!cached) listed.push_back(std::move(arriving));
    }
    for (auto& [name, rec] : listed) {
        if (pcm_original_of(name)) continue;  // a view, cached beside the recordings
        out.push_back({name, inodes_.acquire(name, rec, false, now), S_IFREG});
    }
    if (views_) out.push_back({std::string(pcm_dir_name), pcm_ino, S_IFDIR});
    if (listings_) {
        // The last listing_days days, with no call: each is listed when opened.
        out.push_back({by_id_name, by_id_ino, S_IFDIR});
        const auto today = listings_->today();
        for (unsigned i = 0; i < listings_->config().days; ++i) {
            const auto day = today - static_cast<std::int64_t>(i);
            out.push_back({format_day(day), day_ino(day), S_IFDIR});
        }
    }
    return out;
}

struct stat Filesystem::link_attr(Ino ino, const std::string& target) const {
    struct stat st = root_attr();
    st.st_ino = ino;
    st.st_mode = S_IFLNK | 0777;
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(target.size());
    return st;
}

std::optional<EntryAnswer> Filesystem::known_id(const std::string& id) {
    std::lock_guard lock(links_mutex_);
    const auto at = link_of_.find(id);
    if (at == link_of_.end()) return std::nullopt;
    const auto& l = links_.at(at->second);
    if (l.until <= clock_.now()) return std::nullopt;
    EntryAnswer a;
    a.timeout = seconds_left(l.until);
    if (!l.target.empty()) {  // else a negative entry: no such id, for the TTL
        a.ino = at->second;
        a.attr = link_attr(a.ino, l.target);
    }
    return a;
}

void Filesystem::remember_id(const std::string& id, std::string target, Clock::time_point until) {
    std::lock_guard lock(links_mutex_);
    if (links_.size() >= max_links) {
        const auto now = clock_.now();
        for (auto it = links_.begin(); it != links_.end();) {
            if (it->second.until <= now) {
                link_of_.erase(it->second.id);
                it = links_.erase(it);
            } else {
                ++it;
            }
        }
    }
    auto [at, fresh] = link_of_.try_emplace(id, 0);
    if (fresh) at->second = next_link_++;
    links_[at->second] = Link{id, std::move(target), until};
}

WaitId Filesystem::lookup_by_id(const std::string& id, pid_t pid, EntryReply reply) {
    if (id.empty() || id.size() > max_name_bytes || id.front() == '.') {
        reply(entry_error(ENOENT));
        return 0;
    }
    if (auto known = known_id(id)) {
        reply(*known);
        return 0;
    }
    return fetcher_.call(
        "by-id " + id,
        [this, id, pid](CallRunner& runner, api::CancelToken& cancel) { resolve_id(id, pid, runner, cancel); },
        [this, id, reply = std::move(reply)](const FetchResult& r) {
            std::optional<EntryAnswer> known;
            if (r.error == 0 || r.error == ENOENT) known = known_id(id);
            EntryAnswer a = known ? *known : entry_error(r.error ? r.error : EIO);
            reply(a);
        });
}

void Filesystem::resolve_id(const std::string& id, pid_t pid, CallRunner& runner, api::CancelToken& cancel) {
    const auto& config = fetcher_.config();
    ContentBuilder builder(
        config.builder, [this](std::uint64_t bytes) { return cache_.reserve_memory(bytes); },
        [this](std::uint64_t bytes) { return cache_.reserve_disk(bytes); });
    std::string name;
    try {
        runner.once([&] { name = fetcher_.client().download_by_id(id, builder, cancel); });
    } catch (const api::ApiError& e) {
        builder.fail(EIO);
        if (e.kind() == api::ErrorKind::not_found) remember_id(id, {}, clock_.now() + config.ttl);
        throw;
    }
    // The name becomes a path component of the link, and a key of the cache that root
    // lookups read: one safe component, a name this mount would fetch itself (so
    // never a day folder, by-id or pcm/, which the link would then point at), and one
    // the API could be asked for.
    bool unsafe = name.empty() || name == "." || name == ".." || name.size() > max_name_bytes ||
                  name.find('/') != std::string::npos || name.find('\0') != std::string::npos ||
                  !config.names.may_fetch(name) || name == by_id_name || parse_day(name).has_value() ||
                  (views_ && name == pcm_dir_name);
    if (!unsafe) {
        try {
            api::validate_file_name(name);
        } catch (const api::ApiError&) {
            unsafe = true;
        }
    }
    if (unsafe) {
        builder.fail(EIO);
        if (logger_) logger_->log(LogLevel::error, "by-id " + id + ": the reply's fileName is not a safe name");
        throw api::ApiError(EIO, api::ErrorKind::malformed, "by-id reply with an unsafe fileName");
    }
    CachedRecording rec;
    rec.content = builder.take();
    const auto now = clock_.now();
    rec.expires_at = now + config.ttl;
    const auto epoch = call_time_from_name(name);
    const auto listed = listings_ ? listings_->find(name) : std::nullopt;
    rec.mtime = epoch ? std::chrono::system_clock::from_time_t(*epoch)
                : listed ? listed->call_time
                         : clock_.wall_now();
    stats_.bytes_fetched.fetch_add(rec.content->size(), std::memory_order_relaxed);
    cache_.insert(name, rec, now);
    if (config.ttl <= Clock::duration::zero()) {
        // cache_ttl=0: the cache keeps nothing, so following the link would fetch
        // again. Pin it for the program that read the link, as a root lookup would.
        inodes_.acquire(name, rec, false, now, InodeTable::Pin::strong, pid);
        fetcher_.schedule(now + InodeTable::open_window, [this] { inodes_.release_pins(clock_.now()); });
    }
    builder.finish();
    if (logger_) {
        logger_->log(LogLevel::info, "fetched by id " + id + ": " + name + ", " +
                                         std::to_string(rec.content->size()) + " bytes");
    }
    remember_id(id, "../" + name, std::max(rec.expires_at, now + std::chrono::seconds(1)));
}

std::string Filesystem::readlink(Ino ino, int& error) {
    std::lock_guard lock(links_mutex_);
    const auto it = links_.find(ino);
    if (it == links_.end() || it->second.target.empty()) {
        error = ENOENT;
        return {};
    }
    error = 0;
    return it->second.target;
}

std::optional<ListedFile> Filesystem::listed_file(Ino ino) const {
    if (!listings_ || ino == root_ino || day_of(ino)) return std::nullopt;
    const auto info = inodes_.find(ino);
    if (!info) return std::nullopt;
    // A view carries what its recording's listing says.
    if (auto original = pcm_original_of(info->name)) return listings_->find(*original);
    if (!info->listed) return std::nullopt;
    return listings_->find(info->name);
}

std::string Filesystem::view_source_format(Ino ino) const {
    if (!views_) return {};
    const auto info = inodes_.find(ino);
    const auto original = info ? pcm_original_of(info->name) : std::nullopt;
    return original ? views_->source_format(*original) : std::string{};
}

namespace {

// A listed file's metadata, by xattr name (after the prefix); note only when set.
std::vector<std::pair<std::string, std::string>> listed_xattrs(const ListedFile& f) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!f.md5.empty()) out.emplace_back("md5", f.md5);
    if (!f.unique_id.empty()) out.emplace_back("unique_id", f.unique_id);
    out.emplace_back("direction", f.direction);
    out.emplace_back("source", f.source);
    out.emplace_back("destination", f.destination);
    if (!f.note.empty()) out.emplace_back("note", f.note);
    return out;
}

}  // namespace

std::string Filesystem::getxattr(Ino ino, const std::string& name, int& error) {
    // Only user.* exists here. EOPNOTSUPP for the other namespaces (security.*,
    // system.posix_acl_*) is what a local filesystem without them says, and ls and
    // cp remember it per device; ENODATA would make `ls -l` ask two more round trips
    // for each of a day's 2,000 files.
    if (name.rfind("user.", 0) != 0) {
        error = EOPNOTSUPP;
        return {};
    }
    error = 0;
    const std::string_view prefix = xattr_prefix;
    if (name.rfind(prefix, 0) == 0) {
        const std::string_view key = std::string_view(name).substr(prefix.size());
        if (key == source_format_xattr) {
            if (auto format = view_source_format(ino); !format.empty()) return format;
        }
        if (auto f = listed_file(ino)) {
            for (auto& [k, v] : listed_xattrs(*f)) {
                if (k == key) return v;
            }
        }
        if (ino == root_ino) {
            for (const auto& [k, v] : stats_.snapshot()) {
                if (k == key) return std::to_string(v);
            }
        }
    }
    error = ENODATA;
    return {};
}

std::string Filesystem::listxattr(Ino ino) {
    std::string list;
    if (auto f = listed_file(ino)) {
        for (const auto& [k, v] : listed_xattrs(*f)) {
            list += xattr_prefix;
            list += k;
            list.push_back('\0');
        }
    }
    if (!view_source_format(ino).empty()) {
        list += xattr_prefix;
        list += source_format_xattr;
        list.push_back('\0');
    }
    if (!list.empty()) return list;
    if (ino != root_ino) return list;
    for (const auto& [k, v] : stats_.snapshot()) {
        list += xattr_prefix;
        list += k;
        list.push_back('\0');
    }
    return list;
}

}  // namespace euphoria::core
