#pragma once
// The bytes of one fetched recording, and the sink that builds them. Small recordings
// stay in memory; large ones are decoded straight into a file in the cache folder, so
// the daemon's memory does not grow with a recording's size.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "euphoria/api/sink.hpp"
#include "euphoria/core/unique_fd.hpp"

namespace euphoria::core {

// Bytes a tier may hold, across every live content of that tier: cached, held only by
// open files, or still being downloaded. Shared with each content, so the bytes are
// given back when the last holder (cache or open handle) lets go.
class ByteBudget {
public:
    explicit ByteBudget(std::uint64_t cap) : cap_(cap) {}
    bool try_reserve(std::uint64_t bytes);
    void release(std::uint64_t bytes) noexcept;
    std::uint64_t used() const noexcept { return used_.load(); }
    std::uint64_t cap() const noexcept { return cap_; }

private:
    const std::uint64_t cap_;
    std::atomic<std::uint64_t> used_{0};
};

// The bytes of one recording, readable while they arrive. Open file handles hold a
// shared_ptr, which pins the bytes past TTL expiry and eviction; they are freed on
// the last release.
//
// A content grows until the download completes, and is immutable after that. A reader
// may ask for a range early: when_ready() tells it once the range has arrived, or
// once the download has failed, so a FUSE read never waits on a thread.
class Content {
public:
    using ReadyId = std::uint64_t;  // 0: answered at once
    // 0: the range is readable. Else the download failed (EIO, or ENOSPC for a full
    // cache); nothing more will come.
    using Ready = std::function<void(int error)>;

    Content() = default;
    ~Content();
    Content(const Content&) = delete;
    Content& operator=(const Content&) = delete;

    // The announced size (from the RIFF header) while growing; the real size once
    // complete.
    std::uint64_t size() const noexcept { return size_.load(std::memory_order_acquire); }
    // Bytes from offset 0 that have arrived and are final.
    std::uint64_t arrived() const;
    bool complete() const noexcept { return complete_.load(std::memory_order_acquire); }
    bool failed() const { return error() != 0; }
    int error() const;  // 0, or why the download failed
    bool on_disk() const noexcept;
    // Once complete, memory tier: the bytes, which never move again. Otherwise nullptr.
    const std::byte* data() const noexcept;
    // Once complete, disk tier: a read-only descriptor for pread, splice or
    // passthrough. Otherwise -1: a passthrough reader would stop at the current end.
    int fd() const noexcept;
    // Copies up to `size` bytes from `offset`, of what has arrived; returns the count,
    // or -errno after a failure.
    long read(void* buf, std::size_t size, std::uint64_t offset) const;
    // Disk tier, once [0, end) has arrived and while the download has not failed: a
    // descriptor of its own for the file being written, so that a growing range can
    // be spliced rather than copied twice. A failure closes the content's descriptor
    // at any moment; this one stays valid. Otherwise invalid: use read().
    UniqueFd share_arrived(std::uint64_t end) const;
    // An `end` that waits for the download to complete, whatever its size.
    static constexpr std::uint64_t whole = ~std::uint64_t{0};
    // Calls `ready` once [0, end) has arrived (clipped to the size), or with the errno
    // once the download failed: at once, and then returns 0, or later from the thread that
    // writes the bytes. Must not throw.
    ReadyId when_ready(std::uint64_t end, Ready ready) const;
    // False when `ready` already ran or is running.
    bool cancel_ready(ReadyId id) const;
    // Drops the cache folder's name for the file; open descriptors keep the bytes.
    void unlink() noexcept;

private:
    friend class ContentBuilder;
    struct Storage;
    // Wakes the readers whose range has arrived (all, with `error`, on a failure).
    using Readers = std::multimap<std::uint64_t, std::pair<ReadyId, Ready>>;  // by range end
    void wake(int error) noexcept;
    Readers take_due(int error) noexcept;  // wake()'s two halves
    static void run(Readers& due, int error) noexcept;

    // Guards everything below, and the fields of storage_. A leaf lock: `ready`
    // callbacks run after it is released.
    mutable std::mutex mutex_;
    std::unique_ptr<Storage> storage_;
    std::uint64_t arrived_ = 0;
    int error_ = 0;
    mutable ReadyId next_ready_ = 1;
    mutable Readers readers_;
    // Written under mutex_; read without it by the fast paths.
    std::atomic<std::uint64_t> size_{0};
    std::atomic<bool> complete_{false};
    std::atomic<bool> on_disk_{false};
    const std::byte* data_ = nullptr;  // set before complete_, immutable after
    int fd_ = -1;                      // likewise
};

// Every cache file's name starts with this, then random letters: recording names
// are personal data and stay out of paths. The one place that names cache files.
inline constexpr std::string_view cache_file_prefix = "rec-";
inline bool is_cache_file_name(std::string_view name) noexcept {
    return name.size() > cache_file_prefix.size() && name.substr(0, cache_file_prefix.size()) == cache_file_prefix;
}

struct BuilderLimits {
    std::string cache_dir;         // where large recordings go
    std::uint64_t memory_max = 0;  // larger than this goes to disk
    std::shared_ptr<ByteBudget> memory_budget;
    std::shared_ptr<ByteBudget> disk_budget;
};

// The api::Sink a download writes into, and the Content it grows. The RIFF header's
// size field tells early whether a recording will fit in memory, and lets readers in
// before the end; without it, bytes move to disk once they pass the memory limit, or
// once the memory tier's budget has no room left.
//
// Budgets are taken as bytes arrive, never for what a header merely claims: a RIFF
// size of 0xFFFFFFFF must not evict the whole disk tier before a byte is written.
//
// A retry (reset()) keeps the bytes that arrived: readers may have been given them.
// The retry's bytes are checked against them and the stream goes on past them; if
// they differ, the content fails (EIO) and the download with it.
class ContentBuilder final : public api::Sink {
public:
    // Asked for budget before the bytes grow; may evict to make room, and returns
    // false when there is none.
    using Reserve = std::function<bool(std::uint64_t)>;
    // Told once, when the size is known from a plausible RIFF header: readers may
    // open the content from then on. Must not throw.
    using Published = std::function<void(std::shared_ptr<const Content>)>;
    ContentBuilder(BuilderLimits limits, Reserve reserve_memory, Reserve reserve_disk,
                   Published published = {});
    ~ContentBuilder() override;  // a content that did not complete fails
    ContentBuilder(const ContentBuilder&) = delete;
    ContentBuilder& operator=(const ContentBuilder&) = delete;

    void reset() override;
    void write(std::span<const std::byte> bytes) override;
    void complete() override;

    // After complete(): the finished content, with its real size. Throws if the
    // download did not complete, or ended short of the size readers were told.
    // Readers see it complete only after finish(), so that the owner can first make
    // the cache the place later opens find it.
    std::shared_ptr<const Content> take();
    void finish() noexcept;  // also done by the destructor
    // The download failed: readers waiting for more get `error` (EIO, or ENOSPC for
    // a full cache), and the bytes go.
    void fail(int error = EIO) noexcept;
    std::uint64_t written() const noexcept { return written_; }
    bool published() const noexcept { return published_; }
    // The size readers were told when published, else 0.
    std::uint64_t announced() const noexcept { return published_ ? *riff_total_ : 0; }

    // A RIFF size larger than this is not believed (nor below 44, the smallest WAV).
    static std::uint64_t plausible_max(const BuilderLimits& limits);

private:
    void spill_to_disk();
    // Disk budget for bytes up to `end`; may evict. Throws ENOSPC.
    void reserve_disk_to(std::uint64_t end);
    static void write_fd(int fd, const std::byte* data, std::size_t size, std::uint64_t offset);
    bool reserve_memory(std::uint64_t end);
    // Reads the RIFF size from the first bytes; true when readers may be let in.
    bool learn_size(std::span<const std::byte> bytes);
    // Compares a retry's bytes with those that arrived; returns how many of `bytes`
    // were checked. Throws EIO on a difference.
    std::size_t verify(std::span<const std::byte> bytes);

    BuilderLimits limits_;
    Reserve reserve_memory_;
    Reserve reserve_disk_;
    Published on_published_;
    std::shared_ptr<Content> content_;
    std::uint64_t written_ = 0;          // the stream's position in this attempt
    std::uint64_t memory_reserved_ = 0;  // memory bytes taken from its budget so far
    std::uint64_t reserved_ = 0;         // disk bytes taken from the budget so far
    std::optional<std::uint64_t> riff_total_;
    std::byte header_[8]{};
    bool complete_ = false;
    bool published_ = false;
    bool taken_ = false;
    bool finished_ = false;
    bool failed_ = false;
};

}  // namespace euphoria::core
