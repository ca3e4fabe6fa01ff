// The thin layer: each callback decodes its arguments, asks core::Filesystem, and
// replies, now or later from the thread that finished the work. No callback waits
// on the network, and no exception crosses into libfuse's C frames.

#include <fcntl.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <vector>

#include "glue.hpp"
#include "pending_reply.hpp"

namespace euphoria::fuse {

namespace {

using core::DirEntry;
using core::EntryAnswer;
using core::Ino;
using core::OpenAnswer;

Glue& glue_of(fuse_req_t req) { return *static_cast<Glue*>(fuse_req_userdata(req)); }
core::Filesystem& fs_of(fuse_req_t req) { return glue_of(req).fs; }

// Runs a callback body; anything thrown becomes an error reply instead of crossing
// into C. Only for bodies that have not replied when they throw.
template <class F>
void guarded(fuse_req_t req, F&& body) {
    try {
        body();
    } catch (const std::bad_alloc&) {
        fuse_reply_err(req, ENOMEM);
    } catch (...) {
        fuse_reply_err(req, EIO);
    }
}

// Starts work whose reply comes later. `begin` returns the wait to cancel on an
// interrupt; if it throws, whoever claims the reply first answers.
template <class F>
void start_pending(fuse_req_t req, F&& begin) {
    auto pending = PendingReply::create(req, fs_of(req));
    if (!pending->arm()) return;
    try {
        pending->set_wait(begin(pending));
    } catch (const std::bad_alloc&) {
        if (pending->take()) fuse_reply_err(req, ENOMEM);
    } catch (...) {
        if (pending->take()) fuse_reply_err(req, EIO);
    }
}

// FUSE carries our per-open state as a 64-bit integer.
template <class T>
T& handle_of(const fuse_file_info* fi) {
    return static_cast<T&>(*reinterpret_cast<Handle*>(fi->fh));  // NOLINT(performance-no-int-to-ptr)
}

struct OpenFile final : Handle {
    explicit OpenFile(core::CachedRecording r) : recording(std::move(r)) {}
    core::CachedRecording recording;  // pins the bytes until release
    int backing_id = 0;               // > 0: the kernel reads our cache file itself
};

struct OpenDir final : Handle {
    explicit OpenDir(std::vector<DirEntry> e) : entries(std::move(e)) {}
    std::vector<DirEntry> entries;  // a snapshot, so offsets stay stable
};

// libfuse 3.17 keeps capabilities in 64 bits and wants them set through its helpers;
// touching the old 32-bit fields beside those fails the INIT.
bool want(fuse_conn_info* conn, std::uint64_t flag) {
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 17)
    return fuse_set_feature_flag(conn, flag);
#else
    if (!(conn->capable & flag)) return false;
    conn->want |= static_cast<unsigned>(flag);
    return true;
#endif
}

void unwant(fuse_conn_info* conn, std::uint64_t flag) {
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 17)
    fuse_unset_feature_flag(conn, flag);
#else
    conn->want &= ~static_cast<unsigned>(flag);
#endif
}

void on_init(void* userdata, fuse_conn_info* conn) {
    // Large reads: one request per MiB instead of per 128 KiB.
    conn->max_readahead = 1 << 20;
    conn->max_read = 1 << 20;  // must match the max_read mount option
    want(conn, FUSE_CAP_SPLICE_WRITE);
    // Without this the kernel sends one lookup at a time per folder, and every
    // recording lives in one folder: the three upstream slots would never fill.
    // (libfuse 3.14 drops it from its reply; ReplyAmender puts it back.)
    want(conn, FUSE_CAP_PARALLEL_DIROPS);
    // Never let the kernel cache a negative or positive entry beyond what we say.
    unwant(conn, FUSE_CAP_AUTO_INVAL_DATA);
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
    // An open that finds its listing's size too small reads with direct_io; without
    // this (Linux 6.6+), a shared mmap of that one open would fail with ENODEV.
    want(conn, FUSE_CAP_DIRECT_IO_ALLOW_MMAP);
#endif
#if EUPHORIA_NATIVE_PASSTHROUGH
    auto& g = *static_cast<Glue*>(userdata);
    // The kernel refuses passthrough beside a writeback cache; we never ask for one.
    if (g.wish.wanted && want(conn, FUSE_CAP_PASSTHROUGH)) {
        conn->max_backing_stack_depth = g.wish.stack_depth - 1;  // libfuse adds the FUSE layer
        g.passthrough_on.store(true);
        g.stats.passthrough.store(1);
    }
#else
    (void)userdata;  // ReplyAmender answers the kernel's passthrough offer itself
#endif
}

// 0 when the kernel got it.
int reply_entry(fuse_req_t req, const EntryAnswer& a) {
    if (a.error) return fuse_reply_err(req, a.error);
    fuse_entry_param e{};
    e.ino = a.ino;
    e.attr = a.attr;
    e.attr_timeout = a.timeout;
    e.entry_timeout = a.timeout;
    return fuse_reply_entry(req, &e);
}

void on_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    guarded(req, [&] {
        start_pending(req, [&](const std::shared_ptr<PendingReply>& pending) {
            const pid_t pid = fuse_req_ctx(req)->pid;
            return fs_of(req).lookup(parent, name, pid, [pending](const EntryAnswer& a) {
                return pending->take() && reply_entry(pending->req(), a) == 0;
            });
        });
    });
}

void on_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    try {
        fs_of(req).forget(ino, nlookup);
    } catch (...) {
    }
    fuse_reply_none(req);
}

void on_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    try {
        for (size_t i = 0; i < count; ++i) fs_of(req).forget(forgets[i].ino, forgets[i].nlookup);
    } catch (...) {
    }
    fuse_reply_none(req);
}

void on_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    guarded(req, [&] {
        const auto a = fs_of(req).getattr(ino);
        if (a.error) {
            fuse_reply_err(req, a.error);
        } else {
            fuse_reply_attr(req, &a.attr, a.timeout);
        }
    });
}

#if EUPHORIA_NATIVE_PASSTHROUGH
// Backing files registered through libfuse, for the request at hand.
class RequestBacking final : public BackingDevice {
public:
    explicit RequestBacking(fuse_req_t req) : req_(req) {}
    int open_backing(int fd) noexcept override {
        errno = 0;
        const int id = fuse_passthrough_open(req_, fd);
        if (id > 0) return id;
        return errno > 0 ? -errno : -EIO;
    }
    void close_backing(int backing_id) noexcept override { fuse_passthrough_close(req_, backing_id); }

private:
    fuse_req_t req_;
};
#endif

// A passthrough grant for one open: the backing id its reply must carry.
struct Grant {
    int backing_id = 0;  // 0: a cached open
    std::uint64_t ticket = 0;  // ReplyAmender's, on libfuse 3.14/3.15
};

// Passthrough for content in a disk-cache file, once the kernel agreed to it.
Grant open_backing(Glue& g, fuse_req_t req, Ino ino, const OpenFile& file) {
    if (!g.passthrough_active()) return {};
    Grant grant;
#if EUPHORIA_NATIVE_PASSTHROUGH
    RequestBacking device(req);
    grant.backing_id = g.backing.acquire(device, ino, file.recording.content);
#else
    (void)req;
    if (!g.device) return {};
    grant.backing_id = g.backing.acquire(*g.device, ino, file.recording.content);
    if (grant.backing_id > 0) {
        try {
            grant.ticket = g.amender.promise_backing(reinterpret_cast<std::uint64_t>(&file),
                                                     grant.backing_id);
        } catch (...) {
            g.backing.release(*g.device, ino, grant.backing_id);
            throw;
        }
    }
#endif
    return grant;
}

void close_backing(Glue& g, fuse_req_t req, Ino ino, int backing_id) noexcept {
    if (!g.passthrough_active()) return;
#if EUPHORIA_NATIVE_PASSTHROUGH
    RequestBacking device(req);
    g.backing.release(device, ino, backing_id);
#else
    (void)req;
    if (g.device) g.backing.release(*g.device, ino, backing_id);
#endif
}

// Whether the reply carried its backing id, after it was sent. Native: libfuse
// put it in the reply. 3.14: ReplyAmender did, unless the promise is still there.
bool backing_went_out(Glue& g, std::uint64_t fh, const Grant& grant) noexcept {
#if EUPHORIA_NATIVE_PASSTHROUGH
    (void)g, (void)fh;
    return grant.backing_id > 0;
#else
    return grant.backing_id > 0 && !g.amender.withdraw(fh, grant.ticket);
#endif
}

// Replies to an open with a handle for `a`; true when the kernel got it. Runs on
// whichever thread finished the open.
bool send_open(Glue& g, fuse_req_t req, Ino ino, fuse_file_info fi, OpenAnswer&& a) {
    if (a.error) return fuse_reply_err(req, a.error) == 0;
    auto file = std::make_unique<OpenFile>(std::move(a.recording));
    fi.fh = reinterpret_cast<uint64_t>(static_cast<Handle*>(file.get()));
    fi.keep_cache = a.keep_cache;
    fi.direct_io = a.direct_io;
    // A direct_io open is the daemon's to read: no backing file for it.
    const Grant grant = a.direct_io ? Grant{} : open_backing(g, req, ino, *file);
    file->backing_id = grant.backing_id;
#if EUPHORIA_NATIVE_PASSTHROUGH
    if (grant.backing_id > 0) {
        fi.backing_id = grant.backing_id;
        // The kernel fails a passthrough open beside the page-cache flags with EIO.
        fi.keep_cache = 0;
        fi.direct_io = 0;
    }
#endif
    // Once the reply is written the kernel owns the handle: a quick reader can
    // close it, and release() delete it, before fuse_reply_open returns. So
    // nothing below touches the file, and nothing below may throw.
    g.handles.adopt(std::move(file));
    const bool sent = fuse_reply_open(req, &fi) == 0;
    const bool carried = backing_went_out(g, fi.fh, grant);
    if (!sent) {
        // Not delivered (the connection is being torn down): no file, no release.
        close_backing(g, req, ino, grant.backing_id);
        g.handles.take(fi.fh);
        return false;
    }
    if (grant.backing_id == 0) return true;
    if (carried) {
        g.stats.passthrough_opens.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    try {
        g.log.log(core::LogLevel::error, "a passthrough open went out without its backing id");
    } catch (...) {
    }
    return true;
}

void on_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&] {
        auto& g = glue_of(req);
        // *fi lives in libfuse's dispatching frame, gone once this returns.
        const fuse_file_info info = *fi;
        start_pending(req, [&](const std::shared_ptr<PendingReply>& pending) {
            return g.fs.open(ino, info.flags, [pending, &g, ino, info](OpenAnswer&& a) {
                if (!pending->take()) return false;
                try {
                    return send_open(g, pending->req(), ino, info, std::move(a));
                } catch (const std::bad_alloc&) {
                    fuse_reply_err(pending->req(), ENOMEM);
                } catch (...) {
                    fuse_reply_err(pending->req(), EIO);
                }
                return false;
            });
        });
    });
}

// Replies with bytes [off, off + n) of a content that has them, copied out: it may
// still be growing, and move to disk meanwhile. Never a short read that looks like
// the end of the file.
void reply_copied(fuse_req_t req, const core::Content& content, std::uint64_t off, std::size_t n) {
    // Not zeroed: every byte is overwritten, or the reply is an error.
    const std::unique_ptr<char[]> buf(new char[n]);
    const long got = content.read(buf.get(), n, off);
    if (got < 0) {
        fuse_reply_err(req, static_cast<int>(-got));
    } else if (static_cast<std::size_t>(got) != n) {
        fuse_reply_err(req, EIO);
    } else {
        fuse_reply_buf(req, buf.get(), n);
    }
}

// libfuse splices from the file when it can: the kernel moves page-cache pages
// instead of the daemon copying them out and back in.
void reply_from_fd(fuse_req_t req, int fd, std::uint64_t off, std::size_t n) {
    fuse_bufvec buf = FUSE_BUFVEC_INIT(n);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = fd;
    buf.buf[0].pos = static_cast<off_t>(off);
    fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

// A read of a recording still arriving: answered once its own range is there, from
// the thread that wrote it; an interrupt answers EINTR at once.
void read_growing(fuse_req_t req, const std::shared_ptr<const core::Content>& content,
                  std::uint64_t off, std::size_t n) {
    start_pending(req, [&](const std::shared_ptr<PendingReply>& pending) {
        return fs_of(req).wait_readable(content, off + n, [pending, content, off, n](int error) {
            if (!pending->take()) return;
            try {
                if (error) {
                    fuse_reply_err(pending->req(), error);
                } else if (const auto fd = content->share_arrived(off + n)) {
                    reply_from_fd(pending->req(), fd.get(), off, n);
                } else {
                    reply_copied(pending->req(), *content, off, n);
                }
            } catch (...) {
                fuse_reply_err(pending->req(), ENOMEM);
            }
        });
    });
}

void on_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&] {
        glue_of(req).stats.read_requests.fetch_add(1, std::memory_order_relaxed);
        const auto& held = handle_of<OpenFile>(fi).recording.content;
        const auto& content = *held;
        const auto total = content.size();
        if (off < 0 || static_cast<std::uint64_t>(off) >= total) {
            fuse_reply_buf(req, nullptr, 0);
            return;
        }
        const auto n = std::min<std::uint64_t>(size, total - static_cast<std::uint64_t>(off));
        if (!content.complete()) {
            read_growing(req, held, static_cast<std::uint64_t>(off), n);
            return;
        }
        if (const auto* bytes = content.data()) {
            fuse_reply_buf(req, reinterpret_cast<const char*>(bytes) + off, n);
            return;
        }
        if (content.fd() < 0) {  // failed, or nothing in memory to point at
            reply_copied(req, content, static_cast<std::uint64_t>(off), n);
            return;
        }
        reply_from_fd(req, content.fd(), static_cast<std::uint64_t>(off), n);
    });
}

void on_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto& g = glue_of(req);
    if (const auto file = g.handles.take(fi->fh)) {
        close_backing(g, req, ino, static_cast<const OpenFile&>(*file).backing_id);
    }
    fuse_reply_err(req, 0);
}

// A day folder's entries may need its listing first: the reply may come later.
bool send_opendir(fuse_req_t req, fuse_file_info fi, int error, std::vector<DirEntry>&& entries) {
    if (error) return fuse_reply_err(req, error) == 0;
    auto& g = glue_of(req);
    try {
        fi.fh = g.handles.adopt(std::make_unique<OpenDir>(std::move(entries)));
    } catch (...) {
        fuse_reply_err(req, ENOMEM);
        return false;
    }
    if (fuse_reply_open(req, &fi) != 0) {
        g.handles.take(fi.fh);
        return false;
    }
    return true;
}

void on_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&] {
        start_pending(req, [&](const std::shared_ptr<PendingReply>& pending) {
            return fs_of(req).opendir(ino, [pending, info = *fi](int error, std::vector<DirEntry>&& entries) {
                return pending->take() && send_opendir(pending->req(), info, error, std::move(entries));
            });
        });
    });
}

void on_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&] {
        const auto& entries = handle_of<OpenDir>(fi).entries;
        std::vector<char> buf(size);
        size_t used = 0;
        for (auto i = static_cast<size_t>(std::max<off_t>(off, 0)); i < entries.size(); ++i) {
            struct stat st {};
            st.st_ino = entries[i].ino;
            st.st_mode = entries[i].mode;
            const size_t need = fuse_add_direntry(req, buf.data() + used, size - used,
                                                  entries[i].name.c_str(), &st,
                                                  static_cast<off_t>(i + 1));
            if (need > size - used) break;
            used += need;
        }
        fuse_reply_buf(req, buf.data(), used);
    });
}

// With the entries' attributes, so that `ls -l` of a day folder costs no lookup per
// file. Only a listed file's entry is a lookup (counted in the core as it goes out);
// any other has node id 0, which the kernel lists without a lookup.
void on_readdirplus(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&] {
        const auto& entries = handle_of<OpenDir>(fi).entries;
        auto& fs = fs_of(req);
        std::vector<char> buf(size);
        size_t used = 0;
        // Each entry with a node id counts as a lookup. A reply the kernel never
        // gets (an interrupt, an unmount, a throw part-way) must give them back, or
        // the nodes stay for ever.
        std::vector<core::Ino> counted;
        const auto give_back = [&] {
            for (const auto ino : counted) fs.forget(ino, 1);
        };
        try {
            counted.reserve(entries.size());
            for (auto i = static_cast<size_t>(std::max<off_t>(off, 0)); i < entries.size(); ++i) {
                const auto& entry = entries[i];
                const size_t need = fuse_add_direntry_plus(req, nullptr, 0, entry.name.c_str(), nullptr, 0);
                if (need > size - used) break;
                const EntryAnswer a = fs.plus_entry(entry);
                if (a.ino) counted.push_back(a.ino);
                fuse_entry_param e{};
                e.ino = a.ino;
                e.attr = a.attr;
                e.attr_timeout = a.timeout;
                e.entry_timeout = a.timeout;
                used += fuse_add_direntry_plus(req, buf.data() + used, size - used, entry.name.c_str(), &e,
                                               static_cast<off_t>(i + 1));
            }
        } catch (...) {
            give_back();
            throw;
        }
        if (fuse_reply_buf(req, buf.data(), used) != 0) give_back();
    });
}

void on_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    glue_of(req).handles.take(fi->fh);
    fuse_reply_err(req, 0);
}

void on_readlink(fuse_req_t req, fuse_ino_t ino) {
    guarded(req, [&] {
        int error = 0;
        const auto target = fs_of(req).readlink(ino, error);
        if (error) {
            fuse_reply_err(req, error);
        } else {
            fuse_reply_readlink(req, target.c_str());
        }
    });
}

void on_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    guarded(req, [&] {
        int error = 0;
        auto value = fs_of(req).getxattr(ino, name, error);
        if (error) {
            fuse_reply_err(req, error);
        } else if (size == 0) {
            fuse_reply_xattr(req, value.size());
        } else if (size < value.size()) {
            fuse_reply_err(req, ERANGE);
        } else {
            fuse_reply_buf(req, value.data(), value.size());
        }
    });
}

void on_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    guarded(req, [&] {
        auto list = fs_of(req).listxattr(ino);
        if (size == 0) {
            fuse_reply_xattr(req, list.size());
        } else if (size < list.size()) {
            fuse_reply_err(req, ERANGE);
        } else {
            fuse_reply_buf(req, list.data(), list.size());
        }
    });
}

void on_statfs(fuse_req_t req, fuse_ino_t) {
    struct statvfs st {};
    st.f_bsize = st.f_frsize = 4096;
    st.f_namemax = 255;
    fuse_reply_statfs(req, &st);
}

// Every way of changing the tree: the mount is read-only.
void on_setattr(fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) { fuse_reply_err(req, EROFS); }
void on_mknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { fuse_reply_err(req, EROFS); }
void on_mkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EROFS); }
void on_unlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void on_rmdir(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void on_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void on_rename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) { fuse_reply_err(req, EROFS); }
void on_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void on_create(fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) { fuse_reply_err(req, EROFS); }
void on_setxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) { fuse_reply_err(req, EROFS); }
void on_removexattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void on_write(fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, fuse_file_info*) { fuse_reply_err(req, EROFS); }

}  // namespace

const fuse_lowlevel_ops& operations() {
    static const fuse_lowlevel_ops ops = [] {
        fuse_lowlevel_ops o{};
        o.init = on_init;
        o.lookup = on_lookup;
        o.forget = on_forget;
        o.forget_multi = on_forget_multi;
        o.getattr = on_getattr;
        o.open = on_open;
        o.read = on_read;
        o.release = on_release;
        o.opendir = on_opendir;
        o.readdir = on_readdir;
        o.readdirplus = on_readdirplus;
        o.releasedir = on_releasedir;
        o.getxattr = on_getxattr;
        o.readlink = on_readlink;
        o.listxattr = on_listxattr;
        o.statfs = on_statfs;
        o.setattr = on_setattr;
        o.mknod = on_mknod;
        o.mkdir = on_mkdir;
        o.unlink = on_unlink;
        o.rmdir = on_rmdir;
        o.symlink = on_symlink;
        o.rename = on_rename;
        o.link = on_link;
        o.create = on_create;
        o.setxattr = on_setxattr;
        o.removexattr = on_removexattr;
        o.write = on_write;
        return o;
    }();
    return ops;
}

}  // namespace euphoria::fuse
