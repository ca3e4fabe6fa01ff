// The thin layer: each callback decodes its arguments, calls Filesystem, replies.
// No exception may cross into libfuse's C frames, so each callback catches all.

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include "euphoria/fuse/session.hpp"

#include <fuse3/fuse_lowlevel.h>

#include <fcntl.h>
#include <linux/fuse.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "euphoria/api/error.hpp"
#include "euphoria/fuse/backing_files.hpp"
#include "euphoria/fuse/reply_amender.hpp"

namespace euphoria::fuse {

// What the callbacks and the device hooks reach through the session's userdata.
struct Session::Glue {
    Glue(Filesystem& f, core::Stats& s, core::Logger& l, PassthroughWish wish)
        : fs(f), stats(s), log(l), amender(wish, s) {}
    Filesystem& fs;
    core::Stats& stats;
    core::Logger& log;
    ReplyAmender amender;
    // Set once mounted, before any request is read.
    std::optional<FuseDeviceBacking> device;
    std::optional<BackingFiles> backing;
};

namespace {

using Glue = Session::Glue;

Glue& glue_of(fuse_req_t req) { return *static_cast<Glue*>(fuse_req_userdata(req)); }
Filesystem& fs_of(fuse_req_t req) { return glue_of(req).fs; }

// A FUSE interrupt (Ctrl-C on the reader) fires the token, which wakes the waiter.
// Unregistering takes libfuse's request lock, so the callback can never run late.
// It must end before the reply: replying frees the request.
class InterruptScope {
public:
    explicit InterruptScope(fuse_req_t req) : req_(req) {
        fuse_req_interrupt_func(req_, &InterruptScope::on_interrupt, &token_);
    }
    ~InterruptScope() { fuse_req_interrupt_func(req_, nullptr, nullptr); }
    api::CancelToken* token() { return &token_; }

private:
    static void on_interrupt(fuse_req_t, void* token) {
        static_cast<api::CancelToken*>(token)->cancel();
    }
    fuse_req_t req_;
    api::CancelToken token_;
};

// Runs a callback body; anything thrown becomes EIO instead of crossing into C.
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

// FUSE carries our per-open state as a 64-bit integer.
template <class T>
T& handle_of(const fuse_file_info* fi) {
    return *reinterpret_cast<T*>(fi->fh);  // NOLINT(performance-no-int-to-ptr)
}

struct OpenFile {
    core::CachedRecording recording;  // pins the bytes until release
    int backing_id = 0;               // > 0: the kernel reads our cache file itself
};

struct OpenDir {
    std::vector<DirEntry> entries;  // a snapshot, so offsets stay stable
};

void sfs_init(void*, fuse_conn_info* conn) {
    // Large reads: one request per MiB instead of per 128 KiB.
    conn->max_readahead = 1 << 20;
    conn->max_read = 1 << 20;  // must match the max_read mount option
    if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
    // Without this the kernel sends one lookup at a time per folder, and every
    // recording lives in one folder: the three upstream slots would never fill.
    // (libfuse 3.14 drops it from its reply; ReplyAmender puts it back.)
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    // Never let the kernel cache a negative or positive entry beyond what we say.
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

void reply_entry(fuse_req_t req, const EntryAnswer& a) {
    if (a.error) {
        fuse_reply_err(req, a.error);
        return;
    }
    fuse_entry_param e{};
    e.ino = a.ino;
    e.attr = a.attr;
    e.attr_timeout = a.timeout;
    e.entry_timeout = a.timeout;
    fuse_reply_entry(req, &e);
}

void sfs_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    guarded(req, [&] {
        EntryAnswer a;
        {
            InterruptScope interrupt(req);
            a = fs_of(req).do_lookup(parent, name, interrupt.token());
        }
        reply_entry(req, a);
    });
}

void sfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    try {
        fs_of(req).do_forget(ino, nlookup);
    } catch (...) {
    }
    fuse_reply_none(req);
}

void sfs_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    try {
        for (size_t i = 0; i < count; ++i) fs_of(req).do_forget(forgets[i].ino, forgets[i].nlookup);
    } catch (...) {
    }
    fuse_reply_none(req);
}

void sfs_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    guarded(req, [&] {
        EntryAnswer a;
        {
            InterruptScope interrupt(req);
            a = fs_of(req).do_getattr(ino);
        }
        if (a.error) {
            fuse_reply_err(req, a.error);
        } else {
            fuse_reply_attr(req, &a.attr, a.timeout);
        }
    });
}

// A passthrough grant for one open: the backing id its reply must carry.
struct Grant {
    int backing_id = 0;  // 0: a cached open
    std::uint64_t ticket = 0;
};

// Passthrough for content in a disk-cache file, once the kernel agreed to it.
Grant open_backing(Glue& g, Ino ino, const OpenFile& file) {
    if (!g.backing || !g.amender.passthrough_active()) return {};
    Grant grant;
    grant.backing_id = g.backing->acquire(ino, file.recording.content->fd());
    if (grant.backing_id > 0) {
        try {
            grant.ticket = g.amender.promise_backing(reinterpret_cast<std::uint64_t>(&file),
                                                     grant.backing_id);
        } catch (...) {
            g.backing->release(ino, grant.backing_id);
            throw;
        }
    }
    return grant;
}

void close_backing(Glue& g, Ino ino, int backing_id) noexcept {
    if (g.backing && g.amender.passthrough_active()) g.backing->release(ino, backing_id);
}

void sfs_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&] {
        auto& g = glue_of(req);
        OpenAnswer a;
        {
            InterruptScope interrupt(req);
            a = g.fs.do_open(ino, fi->flags, interrupt.token());
        }
        if (a.error) {
            fuse_reply_err(req, a.error);
            return;
        }
        auto file = std::make_unique<OpenFile>(OpenFile{std::move(a.recording)});
        fi->fh = reinterpret_cast<uint64_t>(file.get());
        fi->keep_cache = a.keep_cache;
        const Grant grant = open_backing(g, ino, *file);
        file->backing_id = grant.backing_id;
        // Once the reply is written the kernel owns the handle: a quick reader can
        // close it, and release() delete it, before fuse_reply_open returns. So
        // nothing below touches the file, and nothing below may throw.
        OpenFile* handed = file.release();
        const bool sent = fuse_reply_open(req, fi) == 0;
        const bool unused = grant.backing_id > 0 && g.amender.withdraw(fi->fh, grant.ticket);
        if (!sent) {
            // Not delivered (the connection is being torn down): no file, no release.
            close_backing(g, ino, grant.backing_id);
            delete handed;  // NOLINT(cppcoreguidelines-owning-memory)
            return;
        }
        if (grant.backing_id == 0) return;
        if (!unused) {
            g.stats.passthrough_opens.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        try {
            g.log.log(core::LogLevel::error, "a passthrough open went out without its backing id");
        } catch (...) {
        }
    });
}

void sfs_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&] {
        glue_of(req).stats.read_requests.fetch_add(1, std::memory_order_relaxed);
        const auto& content = *handle_of<OpenFile>(fi).recording.content;
        const auto total = content.size();
        if (off < 0 || static_cast<std::uint64_t>(off) >= total) {
            fuse_reply_buf(req, nullptr, 0);
            return;
        }
        const auto n = std::min<std::uint64_t>(size, total - static_cast<std::uint64_t>(off));
        if (const auto* bytes = content.data()) {
            fuse_reply_buf(req, reinterpret_cast<const char*>(bytes) + off, n);
            return;
        }
        // The disk tier: libfuse splices from the cache file when it can.
        fuse_bufvec buf = FUSE_BUFVEC_INIT(n);
        buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
        buf.buf[0].fd = content.fd();
        buf.buf[0].pos = off;
        fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
    });
}

void sfs_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    std::unique_ptr<OpenFile> file(&handle_of<OpenFile>(fi));
    close_backing(glue_of(req), ino, file->backing_id);
    fuse_reply_err(req, 0);
}

void sfs_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&] {
        int error = 0;
        auto dir = std::make_unique<OpenDir>(OpenDir{fs_of(req).do_readdir(ino, error)});
        if (error) {
            fuse_reply_err(req, error);
            return;
        }
        fi->fh = reinterpret_cast<uint64_t>(dir.get());
        if (fuse_reply_open(req, fi) == 0) [[maybe_unused]] auto* owned = dir.release();
    });
}

void sfs_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
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

void sfs_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    delete &handle_of<OpenDir>(fi);
    fuse_reply_err(req, 0);
}

void sfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    guarded(req, [&] {
        int error = 0;
        auto value = fs_of(req).do_getxattr(ino, name, error);
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

void sfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    guarded(req, [&] {
        auto list = fs_of(req).do_listxattr(ino);
        if (size == 0) {
            fuse_reply_xattr(req, list.size());
        } else if (size < list.size()) {
            fuse_reply_err(req, ERANGE);
        } else {
            fuse_reply_buf(req, list.data(), list.size());
        }
    });
}

void sfs_statfs(fuse_req_t req, fuse_ino_t) {
    struct statvfs st {};
    st.f_bsize = st.f_frsize = 4096;
    st.f_namemax = 255;
    fuse_reply_statfs(req, &st);
}

// Every way of changing the tree: the mount is read-only.
void sfs_setattr(fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) { fuse_reply_err(req, EROFS); }
void sfs_mknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { fuse_reply_err(req, EROFS); }
void sfs_mkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EROFS); }
void sfs_unlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void sfs_rmdir(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void sfs_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void sfs_rename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) { fuse_reply_err(req, EROFS); }
void sfs_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void sfs_create(fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) { fuse_reply_err(req, EROFS); }
void sfs_setxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) { fuse_reply_err(req, EROFS); }
void sfs_removexattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void sfs_write(fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, fuse_file_info*) { fuse_reply_err(req, EROFS); }

const fuse_lowlevel_ops& operations() {
    static const fuse_lowlevel_ops ops = [] {
        fuse_lowlevel_ops o{};
        o.init = sfs_init;
        o.lookup = sfs_lookup;
        o.forget = sfs_forget;
        o.forget_multi = sfs_forget_multi;
        o.getattr = sfs_getattr;
        o.open = sfs_open;
        o.read = sfs_read;
        o.release = sfs_release;
        o.opendir = sfs_opendir;
        o.readdir = sfs_readdir;
        o.releasedir = sfs_releasedir;
        o.getxattr = sfs_getxattr;
        o.listxattr = sfs_listxattr;
        o.statfs = sfs_statfs;
        o.setattr = sfs_setattr;
        o.mknod = sfs_mknod;
        o.mkdir = sfs_mkdir;
        o.unlink = sfs_unlink;
        o.rmdir = sfs_rmdir;
        o.symlink = sfs_symlink;
        o.rename = sfs_rename;
        o.link = sfs_link;
        o.create = sfs_create;
        o.setxattr = sfs_setxattr;
        o.removexattr = sfs_removexattr;
        o.write = sfs_write;
        return o;
    }();
    return ops;
}

struct ArgsDeleter {
    void operator()(fuse_args* a) const noexcept { fuse_opt_free_args(a); delete a; }
};

struct LoopConfigDeleter {
    void operator()(fuse_loop_config* c) const noexcept { fuse_loop_cfg_destroy(c); }
};

// The device traffic, carried by us so ReplyAmender sees it (fuse_session_custom_io).
// Each hook must leave errno as the system call set it: libfuse reads it next.
ssize_t device_read(int fd, void* buf, size_t len, void* userdata) {
    const ssize_t n = ::read(fd, buf, len);
    if (n > 0) {
        const int saved = errno;
        static_cast<Glue*>(userdata)->amender.saw_request(buf, static_cast<size_t>(n));
        errno = saved;
    }
    return n;
}

ssize_t device_writev(int fd, struct iovec* iov, int count, void* userdata) {
    return static_cast<Glue*>(userdata)->amender.write_reply(fd, iov, count);
}

// Without a splice hook libfuse would stop splicing reads from the cache file.
ssize_t device_splice_send(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                           unsigned flags, void*) {
    return ::splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

void Session::SessionDeleter::operator()(fuse_session* se) const noexcept { fuse_session_destroy(se); }

Session::Session(Filesystem& fs, core::Stats& stats, core::Logger& log, SessionOptions options)
    : options_(std::move(options)),
      glue_(std::make_unique<Glue>(
          fs, stats, log,
          PassthroughWish{options_.passthrough && may_register_backing_files(),
                          backing_stack_depth(options_.backing_dir)})) {
    std::unique_ptr<fuse_args, ArgsDeleter> args(new fuse_args FUSE_ARGS_INIT(0, nullptr));
    auto add = [&](const std::string& arg) {
        if (fuse_opt_add_arg(args.get(), arg.c_str()) != 0) throw std::bad_alloc();
    };
    add("mount.euphoria");
    if (options_.debug) add("-d");
    // ro makes the kernel refuse writes itself; the EROFS handlers are a second line.
    std::string mount_opts = "ro,fsname=" + options_.fsname + ",subtype=euphoria,max_read=1048576";
    if (options_.allow_other) mount_opts += ",allow_other,default_permissions";
    mount_opts += options_.extra_mount_options;
    add("-o");
    add(mount_opts);

    session_.reset(fuse_session_new(args.get(), &operations(), sizeof(fuse_lowlevel_ops), glue_.get()));
    if (!session_) throw std::runtime_error("cannot create the FUSE session");
    if (fuse_set_signal_handlers(session_.get()) != 0) {
        throw std::runtime_error("cannot install signal handlers");
    }
    signals_set_ = true;
    if (fuse_session_mount(session_.get(), options_.mountpoint.c_str()) != 0) {
        throw std::runtime_error("cannot mount on " + options_.mountpoint);
    }
    mounted_ = true;
    const int fd = fuse_session_fd(session_.get());
    static const fuse_custom_io io = {&device_writev, &device_read, nullptr, &device_splice_send};
    if (const int rc = fuse_session_custom_io(session_.get(), &io, fd); rc != 0) {
        throw std::runtime_error("cannot attach to the FUSE device: " + api::describe_errno(-rc));
    }
    glue_->device.emplace(fd);
    glue_->backing.emplace(*glue_->device, log, stats);
}

Session::~Session() {
    if (!session_) return;
    if (signals_set_) fuse_remove_signal_handlers(session_.get());
    if (mounted_) fuse_session_unmount(session_.get());
}

int Session::run() {
    std::unique_ptr<fuse_loop_config, LoopConfigDeleter> config(fuse_loop_cfg_create());
    if (!config) throw std::bad_alloc();
    fuse_loop_cfg_set_clone_fd(config.get(), 0);
    fuse_loop_cfg_set_max_threads(config.get(), options_.max_threads);
    fuse_loop_cfg_set_idle_threads(config.get(), 4);
    const int rc = fuse_session_loop_mt(session_.get(), config.get());
    return rc < 0 ? -rc : 0;
}

void Session::stop() { fuse_session_exit(session_.get()); }

}  // namespace euphoria::fuse
