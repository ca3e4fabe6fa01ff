// Mounting, the request loop, and the device traffic that ReplyAmender watches.
// The callbacks are in callbacks.cpp.

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
#include "glue.hpp"
#include "invalidator.hpp"

namespace euphoria::fuse {

namespace {

struct ArgsDeleter {
    void operator()(fuse_args* a) const noexcept { fuse_opt_free_args(a); delete a; }
};

struct LoopConfigDeleter {
    void operator()(fuse_loop_config* c) const noexcept { fuse_loop_cfg_destroy(c); }
};

#if !EUPHORIA_NATIVE_PASSTHROUGH
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
#endif

}  // namespace

void Session::SessionDeleter::operator()(fuse_session* se) const noexcept { fuse_session_destroy(se); }

Session::Session(core::Filesystem& fs, core::Stats& stats, core::Logger& log, SessionOptions options)
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
    // Shared with the Filesystem, which may outlive the session (and does when this
    // constructor throws): once stopped, it drops what it is given.
    invalidator_ = std::make_shared<Invalidator>(session_.get());
    fs.on_invalidate([inv = invalidator_](core::Ino ino) { inv->invalidate(ino); });
    if (fuse_set_signal_handlers(session_.get()) != 0) {
        invalidator_->stop();
        throw std::runtime_error("cannot install signal handlers");
    }
    signals_set_ = true;
    // A constructor that throws runs no destructor: undo the mount and the signal
    // handlers here, or a dead mount would be left with handlers pointing at a
    // freed session.
    try {
        if (fuse_session_mount(session_.get(), options_.mountpoint.c_str()) != 0) {
            throw std::runtime_error("cannot mount on " + options_.mountpoint);
        }
        mounted_ = true;
#if !EUPHORIA_NATIVE_PASSTHROUGH
        const int fd = fuse_session_fd(session_.get());
        static const fuse_custom_io io = {
            .writev = &device_writev,
            .read = &device_read,
            .splice_receive = nullptr,
            .splice_send = &device_splice_send,
        };
        if (const int rc = fuse_session_custom_io(session_.get(), &io, fd); rc != 0) {
            throw std::runtime_error("cannot attach to the FUSE device: " + api::describe_errno(-rc));
        }
        glue_->device.emplace(fd);
#endif
        if (options_.after_mount) options_.after_mount();
    } catch (...) {
        teardown();
        throw;
    }
}

void Session::teardown() noexcept {
    if (!session_) return;
    // Before the unmount closes the device it writes to.
    if (invalidator_) invalidator_->stop();
    if (signals_set_) fuse_remove_signal_handlers(session_.get());
    signals_set_ = false;
    if (mounted_) fuse_session_unmount(session_.get());
    mounted_ = false;
}

Session::~Session() { teardown(); }

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
