#pragma once
// The parts of the FUSE wire protocol newer than Debian 12's headers. Its
// linux-libc-dev and libfuse 3.14 both speak protocol 7.38; passthrough came in 7.40
// (Linux 6.9). The values are from the kernel's include/uapi/linux/fuse.h. They are
// ABI, so they never change.

#include <linux/fuse.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace euphoria::fuse::abi {

inline constexpr std::uint64_t passthrough = 1ULL << 37;      // FUSE_PASSTHROUGH
inline constexpr std::uint32_t fopen_passthrough = 1U << 7;   // FOPEN_PASSTHROUGH
// The only open flags the kernel accepts beside it (FOPEN_PASSTHROUGH_MASK).
inline constexpr std::uint32_t fopen_passthrough_mask =
    FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES | FOPEN_NOFLUSH | fopen_passthrough;
// FILESYSTEM_MAX_STACK_DEPTH: the FUSE mount may stack at most this deep over the
// filesystem that holds its backing files.
inline constexpr std::uint32_t max_stack_depth = 2;

// fuse_init_out as of 7.40: max_stack_depth took the first unused word.
struct InitOut {
    std::uint32_t major;
    std::uint32_t minor;
    std::uint32_t max_readahead;
    std::uint32_t flags;
    std::uint16_t max_background;
    std::uint16_t congestion_threshold;
    std::uint32_t max_write;
    std::uint32_t time_gran;
    std::uint16_t max_pages;
    std::uint16_t map_alignment;
    std::uint32_t flags2;
    std::uint32_t max_stack_depth;
    std::uint32_t unused[6];
};
static_assert(sizeof(InitOut) == sizeof(fuse_init_out));
static_assert(offsetof(InitOut, flags2) == offsetof(fuse_init_out, flags2));

// fuse_open_out as of 7.40: the padding word became the backing id.
struct OpenOut {
    std::uint64_t fh;
    std::uint32_t open_flags;
    std::int32_t backing_id;
};
static_assert(sizeof(OpenOut) == sizeof(fuse_open_out));

struct BackingMap {
    std::int32_t fd;
    std::uint32_t flags;
    std::uint64_t padding;
};

inline constexpr unsigned dev_ioc_magic = 229;
inline const unsigned long backing_open_ioctl = _IOW(dev_ioc_magic, 1, BackingMap);
inline const unsigned long backing_close_ioctl = _IOW(dev_ioc_magic, 2, std::uint32_t);

}  // namespace euphoria::fuse::abi
