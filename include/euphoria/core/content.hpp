#pragma once
// The bytes of one fetched recording, and the sink that builds them. Small recordings
// stay in memory; large ones are decoded straight into a file in the cache folder, so
// the daemon's memory does not grow with a recording's size.

#include <atomic>
#include <cstdint>
#include <functional>
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

// Immutable once built. Open file handles hold a shared_ptr, which pins the bytes past
// TTL expiry and eviction; they are freed on the last release.
class Content {
public:
    virtual ~Content() = default;
    std::uint64_t size() const noexcept { return size_; }
    virtual bool on_disk() const noexcept = 0;
    // Memory tier: the bytes. Disk tier: nullptr.
    virtual const std::byte* data() const noexcept { return nullptr; }
    // Disk tier: a read-only descriptor for pread or splice. Memory tier: -1.
    virtual int fd() const noexcept { return -1; }
    // Copies up to `size` bytes from `offset`; returns the count, or -errno.
    virtual long read(void* buf, std::size_t size, std::uint64_t offset) const = 0;
    // Drops the cache folder's name for the file; open descriptors keep the bytes.
    virtual void unlink() noexcept {}

protected:
    explicit Content(std::uint64_t size) : size_(size) {}

private:
    std::uint64_t size_;
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

// The api::Sink a download writes into. The RIFF header's size field tells early
// whether a recording will fit in memory; without it, bytes move to disk once they
// pass the memory limit, or once the memory tier's budget has no room left.
//
// Budgets are taken as bytes arrive, never for what a header merely claims: a RIFF
// size of 0xFFFFFFFF must not evict the whole disk tier before a byte is written.
class ContentBuilder final : public api::Sink {
public:
    // Asked for budget before the bytes grow; may evict to make room, and returns
    // false when there is none.
    using Reserve = std::function<bool(std::uint64_t)>;
    ContentBuilder(BuilderLimits limits, Reserve reserve_memory, Reserve reserve_disk);
    ~ContentBuilder() override;

    void reset() override;
    void write(std::span<const std::byte> bytes) override;
    void complete() override;

    // After complete(): the finished bytes. Throws if the download did not complete.
    std::shared_ptr<const Content> take();
    std::uint64_t written() const noexcept { return written_; }

private:
    void spill_to_disk();
    void write_file(const std::byte* data, std::size_t size, std::uint64_t offset);
    void discard() noexcept;

    bool reserve_memory(std::uint64_t end);
    void release_memory() noexcept;

    BuilderLimits limits_;
    Reserve reserve_memory_;
    Reserve reserve_disk_;
    std::vector<std::byte> memory_;
    UniqueFd fd_;
    std::string path_;
    std::uint64_t written_ = 0;
    std::uint64_t memory_reserved_ = 0;  // memory bytes taken from its budget so far
    std::uint64_t reserved_ = 0;         // disk bytes taken from the budget so far
    std::optional<std::uint64_t> riff_total_;
    std::byte header_[8]{};
    bool complete_ = false;
};

}  // namespace euphoria::core
