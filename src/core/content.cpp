#include "euphoria/core/content.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "euphoria/api/error.hpp"

namespace euphoria::core {

using api::ApiError;
using api::ErrorKind;

bool ByteBudget::try_reserve(std::uint64_t bytes) {
    auto used = used_.load();
    do {
        if (used + bytes > cap_) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes));
    return true;
}

void ByteBudget::release(std::uint64_t bytes) noexcept { used_.fetch_sub(bytes); }

namespace {

class MemoryContent final : public Content {
public:
    MemoryContent(std::vector<std::byte> bytes, std::uint64_t reserved,
                  std::shared_ptr<ByteBudget> budget)
        : Content(bytes.size()), bytes_(std::move(bytes)), reserved_(reserved),
          budget_(std::move(budget)) {}
    ~MemoryContent() override { budget_->release(reserved_); }
    MemoryContent(const MemoryContent&) = delete;
    MemoryContent& operator=(const MemoryContent&) = delete;
    bool on_disk() const noexcept override { return false; }
    const std::byte* data() const noexcept override { return bytes_.data(); }
    long read(void* buf, std::size_t size, std::uint64_t offset) const override {
        if (offset >= bytes_.size()) return 0;
        const auto n = std::min<std::uint64_t>(size, bytes_.size() - offset);
        std::memcpy(buf, bytes_.data() + offset, n);
        return static_cast<long>(n);
    }

private:
    std::vector<std::byte> bytes_;
    std::uint64_t reserved_;
    std::shared_ptr<ByteBudget> budget_;
};

class DiskContent final : public Content {
public:
    DiskContent(UniqueFd fd, std::string path, std::uint64_t size, std::uint64_t reserved,
                std::shared_ptr<ByteBudget> budget)
        : Content(size), fd_(std::move(fd)), path_(std::move(path)), reserved_(reserved),
          budget_(std::move(budget)) {}
    ~DiskContent() override {
        unlink();
        fd_.reset();
        budget_->release(reserved_);
    }
    bool on_disk() const noexcept override { return true; }
    int fd() const noexcept override { return fd_.get(); }
    long read(void* buf, std::size_t size, std::uint64_t offset) const override {
        auto n = ::pread(fd_.get(), buf, size, static_cast<off_t>(offset));
        return n < 0 ? -errno : n;
    }
    void unlink() noexcept override {
        std::lock_guard lock(mutex_);
        if (!path_.empty()) {
            ::unlink(path_.c_str());
            path_.clear();
        }
    }

private:
    UniqueFd fd_;
    // Guards path_: eviction and destruction may race on different threads. Leaf lock.
    std::mutex mutex_;
    std::string path_;
    std::uint64_t reserved_;
    std::shared_ptr<ByteBudget> budget_;
};

// Grow the reservation in steps, so the budget is not asked on every 64 KiB block.
constexpr std::uint64_t reserve_step = 4 << 20;

}  // namespace

ContentBuilder::ContentBuilder(BuilderLimits limits, Reserve reserve_memory, Reserve reserve_disk)
    : limits_(std::move(limits)), reserve_memory_(std::move(reserve_memory)),
      reserve_disk_(std::move(reserve_disk)) {}

ContentBuilder::~ContentBuilder() { discard(); }

void ContentBuilder::discard() noexcept {
    if (fd_) {
        fd_.reset();
        ::unlink(path_.c_str());
        path_.clear();
    }
    if (reserved_) {
        limits_.disk_budget->release(reserved_);
        reserved_ = 0;
    }
    memory_.clear();
    memory_.shrink_to_fit();
    release_memory();
    written_ = 0;
    riff_total_.reset();
    complete_ = false;
}

void ContentBuilder::reset() { discard(); }

bool ContentBuilder::reserve_memory(std::uint64_t end) {
    if (end <= memory_reserved_) return true;
    if (!reserve_memory_(end - memory_reserved_)) return false;
    memory_reserved_ = end;
    return true;
}

void ContentBuilder::release_memory() noexcept {
    if (memory_reserved_) {
        limits_.memory_budget->release(memory_reserved_);
        memory_reserved_ = 0;
    }
}

void ContentBuilder::spill_to_disk() {
    // mkostemp picks a fresh 0600 name: recording names are personal data and stay
    // out of paths.
    std::string pattern = limits_.cache_dir + "/" + std::string(cache_file_prefix) + "XXXXXX";
    fd_.reset(::mkostemp(pattern.data(), O_CLOEXEC));
    if (!fd_) {
        const int err = errno;
        throw ApiError(err, ErrorKind::local,
                       std::string("cannot create a cache file: ") + api::describe_errno(err));
    }
    path_ = std::move(pattern);
    std::vector<std::byte> held;
    held.swap(memory_);
    if (!held.empty()) write_file(held.data(), held.size(), 0);
    held = {};
    release_memory();
}

void ContentBuilder::write_file(const std::byte* data, std::size_t size, std::uint64_t offset) {
    const std::uint64_t end = offset + size;
    if (end > reserved_) {
        // Reserve a step ahead so the budget is not asked for every block. Never by
        // the RIFF size: a header may claim 4 GiB, and the bytes may never come.
        const auto cap = limits_.disk_budget->cap();
        const std::uint64_t ahead = reserved_ + std::max<std::uint64_t>(1, std::min(reserve_step, cap / 16));
        std::uint64_t target = std::max(end, std::min(ahead, cap));
        // Only bytes that arrived may evict others; the step ahead takes free room.
        if (!limits_.disk_budget->try_reserve(target - reserved_)) {
            target = end;
            if (!reserve_disk_(target - reserved_)) {
                throw ApiError(ENOSPC, ErrorKind::local, "the cache is full (cache_size)");
            }
        }
        reserved_ = target;
    }
    std::uint64_t done = 0;
    while (done < size) {
        auto n = ::pwrite(fd_.get(), data + done, size - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            throw ApiError(err, ErrorKind::local,
                           std::string("cannot write the cache file: ") + api::describe_errno(err));
        }
        done += static_cast<std::uint64_t>(n);
    }
}

void ContentBuilder::write(std::span<const std::byte> bytes) {
    if (bytes.empty()) return;
    // Learn the total size from the RIFF header ("RIFF" + little-endian size - 8).
    if (written_ < 8) {
        const auto take = std::min<std::size_t>(8 - written_, bytes.size());
        std::memcpy(header_ + written_, bytes.data(), take);
        if (written_ + take == 8 && std::memcmp(header_, "RIFF", 4) == 0) {
            std::uint32_t riff = 0;
            for (int i = 7; i >= 4; --i) riff = (riff << 8) | std::to_integer<std::uint32_t>(header_[i]);
            riff_total_ = std::uint64_t(riff) + 8;
            if (!fd_ && *riff_total_ > limits_.memory_max) {
                spill_to_disk();
            } else if (!fd_ && reserve_memory(*riff_total_)) {
                // Counted before it is allocated: the header is small enough to trust.
                memory_.reserve(*riff_total_);
            }
        }
    }
    if (!fd_ && (written_ + bytes.size() > limits_.memory_max ||
                    !reserve_memory(written_ + bytes.size()))) {
        spill_to_disk();
    }
    if (fd_) {
        write_file(bytes.data(), bytes.size(), written_);
    } else {
        memory_.insert(memory_.end(), bytes.begin(), bytes.end());
    }
    written_ += bytes.size();
}

void ContentBuilder::complete() { complete_ = true; }

std::shared_ptr<const Content> ContentBuilder::take() {
    if (!complete_) throw ApiError(EIO, ErrorKind::local, "download did not complete");
    complete_ = false;
    if (!fd_) {
        memory_.shrink_to_fit();
        // Give back what the RIFF size over-reserved; the content holds the rest.
        if (memory_reserved_ > written_) {
            limits_.memory_budget->release(memory_reserved_ - written_);
            memory_reserved_ = written_;
        }
        auto content = std::make_shared<MemoryContent>(std::move(memory_), memory_reserved_,
                                                       limits_.memory_budget);
        memory_ = {};
        memory_reserved_ = 0;
        written_ = 0;
        return content;
    }
    // Give back what the step ahead over-reserved.
    if (reserved_ > written_) {
        limits_.disk_budget->release(reserved_ - written_);
        reserved_ = written_;
    }
    auto content = std::make_shared<DiskContent>(std::move(fd_), std::move(path_), written_,
                                                 reserved_, limits_.disk_budget);
    path_.clear();
    reserved_ = 0;
    written_ = 0;
    return content;
}

}  // namespace euphoria::core
