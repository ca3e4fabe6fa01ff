// The pcm/ tree's requests (issue 15). A view's inode is named "pcm/NAME" in the
// InodeTable, so pcm/NAME and pcm/YYYY-MM-DD/NAME are one inode, as NAME and
// YYYY-MM-DD/NAME are; its lookups and opens go through fetch_named(), which
// derives the view from the recording the Fetcher gives.

#include <algorithm>
#include <cerrno>
#include <unordered_map>
#include <unordered_set>

#include "euphoria/core/filesystem.hpp"
#include "euphoria/core/names.hpp"

namespace euphoria::core {

std::optional<std::int64_t> Filesystem::pcm_day_of(Ino ino) const noexcept {
    if (!views_ || !listings_ || ino < pcm_day_ino_base ||
        ino - pcm_day_ino_base >= 2 * static_cast<Ino>(day_ino_offset)) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(ino - pcm_day_ino_base) - day_ino_offset;
}

std::optional<EntryAnswer> Filesystem::pcm_dir_attr(Ino ino) const {
    if (!views_) return std::nullopt;
    EntryAnswer a;
    a.ino = ino;
    a.timeout = 1.0;
    if (ino == pcm_ino) {
        a.attr = root_attr();
        a.attr.st_ino = pcm_ino;
        return a;
    }
    if (const auto day = pcm_day_of(ino)) {
        a.attr = day_attr(*day);
        a.attr.st_ino = ino;
        return a;
    }
    return std::nullopt;
}

WaitId Filesystem::lookup_pcm(Ino parent, const std::string& name, pid_t pid, EntryReply& reply,
                              bool& handled) {
    handled = true;
    if (parent == root_ino && name == pcm_dir_name) {
        reply(*pcm_dir_attr(pcm_ino));
        return 0;
    }
    if (parent == pcm_ino) {
        if (listings_) {
            if (const auto day = parse_day(name)) {
                auto a = *pcm_dir_attr(pcm_day_ino(*day));
                a.timeout = std::chrono::duration<double>(listings_->config().ttl).count();
                reply(a);
                return 0;
            }
            // The root's by-id/ has no view: never a recording name upstream.
            if (name == by_id_name) {
                reply(EntryAnswer{ENOENT, 0, {}, 0});
                return 0;
            }
        }
        return lookup_view(name, pid, std::move(reply));
    }
    if (const auto day = pcm_day_of(parent)) {
        // Only what the day's listing names, as in YYYY-MM-DD/ itself.
        return listings_->list(*day, [this, name, pid, reply = std::move(reply)](const DayListing& l) {
            try {
                if (l.error) {
                    EntryAnswer a;
                    a.error = l.error;
                    reply(a);
                    return;
                }
                const auto& files = *l.files;
                const auto it = std::lower_bound(files.begin(), files.end(), name,
                                                 [](const ListedFile& f, const std::string& n) { return f.name < n; });
                if (it == files.end() || it->name != name) {
                    EntryAnswer a;  // negative, for as long as the listing holds
                    a.timeout = seconds_left(l.expires_at);
                    reply(a);
                    return;
                }
                // On a listing's thread: the fetch answers later, or now from the cache.
                lookup_view(name, pid, reply);
            } catch (...) {
                EntryAnswer a;
                a.error = EIO;
                reply(a);
            }
        });
    }
    handled = false;
    return 0;
}

WaitId Filesystem::lookup_view(const std::string& name, pid_t pid, EntryReply reply) {
    if (name.empty() || name.size() > max_name_bytes || name.front() == '.' ||
        name.find('/') != std::string::npos) {
        EntryAnswer a;
        a.error = ENOENT;
        reply(a);
        return 0;
    }
    const auto key = pcm_key(name);
    auto recent = inodes_.recent_for(key, pid, clock_.now());
    if (recent && recent->content->failed()) recent.reset();
    if (recent) {
        FetchResult r;
        r.recording = std::move(*recent);
        answer_lookup(key, r, pid, InodeTable::Pin::none, reply);
        return 0;
    }
    return fetch_named(key, lookup_done(key, pid, std::move(reply)));
}

WaitId Filesystem::opendir_pcm(Ino ino, DirReply& reply, bool& handled) {
    handled = true;
    if (ino == pcm_ino) {
        std::vector<DirEntry> out{{".", pcm_ino, S_IFDIR}, {"..", root_ino, S_IFDIR}};
        int error = 0;
        try {
            const auto now = clock_.now();
            auto cached = cache_.list(now);
            for (auto& arriving : fetcher_.arriving()) cached.push_back(std::move(arriving));
            std::unordered_map<std::string, const CachedRecording*> views;
            for (const auto& [name, rec] : cached) {
                if (auto original = pcm_original_of(name)) views.emplace(std::move(*original), &rec);
            }
            std::unordered_set<std::string> seen;
            for (const auto& [name, rec] : cached) {
                if (pcm_original_of(name) || !seen.insert(name).second) continue;
                // The view's inode when it was made, else a stand-in until a lookup.
                const auto view = views.find(name);
                const Ino view_ino = view == views.end() ? pcm_unlooked_ino
                                                         : inodes_.acquire(pcm_key(name), *view->second, false, now);
                out.push_back({name, view_ino, S_IFREG});
            }
            if (listings_) {
                const auto today = listings_->today();
                for (unsigned i = 0; i < listings_->config().days; ++i) {
                    const auto day = today - static_cast<std::int64_t>(i);
                    out.push_back({format_day(day), pcm_day_ino(day), S_IFDIR});
                }
            }
        } catch (const std::bad_alloc&) {
            error = ENOMEM;
            out.clear();
        }
        reply(error, std::move(out));
        return 0;
    }
    const auto day = pcm_day_of(ino);
    if (!day) {
        handled = false;
        return 0;
    }
    return listings_->list(*day, [ino, reply = std::move(reply)](const DayListing& l) {
        std::vector<DirEntry> out;
        int error = l.error;
        try {
            if (!error) {
                out.reserve(l.files->size() + 2);
                out.push_back({".", ino, S_IFDIR});
                out.push_back({"..", pcm_ino, S_IFDIR});
                // No sizes here: a view's size needs its recording's header.
                for (const auto& f : *l.files) out.push_back({f.name, pcm_unlooked_ino, S_IFREG});
            }
        } catch (const std::bad_alloc&) {
            error = ENOMEM;
            out.clear();
        }
        reply(error, std::move(out));
    });
}

}  // namespace euphoria::core
