#pragma once
// What the callbacks and the device hooks reach through the session's userdata.

#include <fuse3/fuse_lowlevel.h>

#include <atomic>
#include <optional>

#include "open_handles.hpp"
#include "euphoria/core/filesystem.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/stats.hpp"
#include "euphoria/fuse/backing_files.hpp"

// libfuse 3.16 has FUSE passthrough of its own; on 3.14 and 3.15 the session carries
// the device traffic and ReplyAmender adds what the kernel needs to hear.
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 16)
#define EUPHORIA_NATIVE_PASSTHROUGH 1
#else
#define EUPHORIA_NATIVE_PASSTHROUGH 0
#include "euphoria/fuse/reply_amender.hpp"
#endif

namespace euphoria::fuse {

struct Glue {
    Glue(core::Filesystem& f, core::Stats& s, core::Logger& l, PassthroughWish w)
        : fs(f), stats(s), log(l), wish(w), backing(l, s)
#if !EUPHORIA_NATIVE_PASSTHROUGH
          ,
          amender(w, s)
#endif
    {
    }
    core::Filesystem& fs;
    core::Stats& stats;
    core::Logger& log;
    const PassthroughWish wish;
    BackingFiles backing;
    OpenHandles handles;  // every fi->fh of a file or folder the kernel holds
#if EUPHORIA_NATIVE_PASSTHROUGH
    std::atomic<bool> passthrough_on{false};  // the kernel agreed at INIT
    bool passthrough_active() const noexcept { return passthrough_on.load(); }
#else
    ReplyAmender amender;
    std::optional<FuseDeviceBacking> device;  // set once mounted, before any request
    bool passthrough_active() const noexcept { return amender.passthrough_active(); }
#endif
};

// The lowlevel operations: each decodes its arguments, asks the Filesystem, replies.
const fuse_lowlevel_ops& operations();

}  // namespace euphoria::fuse
