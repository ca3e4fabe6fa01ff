#pragma once
// What the callbacks and the device hooks reach through the session's userdata.

#include <fuse3/fuse_lowlevel.h>

#include <optional>

#include "euphoria/core/filesystem.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/stats.hpp"
#include "euphoria/fuse/backing_files.hpp"
#include "euphoria/fuse/reply_amender.hpp"

namespace euphoria::fuse {

struct Glue {
    Glue(core::Filesystem& f, core::Stats& s, core::Logger& l, PassthroughWish wish)
        : fs(f), stats(s), log(l), amender(wish, s) {}
    core::Filesystem& fs;
    core::Stats& stats;
    core::Logger& log;
    ReplyAmender amender;
    // Set once mounted, before any request is read.
    std::optional<FuseDeviceBacking> device;
    std::optional<BackingFiles> backing;
};

// The lowlevel operations: each decodes its arguments, asks the Filesystem, replies.
const fuse_lowlevel_ops& operations();

}  // namespace euphoria::fuse
