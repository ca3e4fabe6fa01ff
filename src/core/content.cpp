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

bool DiskBudget::try_reserve(std::uint64_t bytes) {
    auto used = used_.load();
    do {
        if (used + bytes > cap_) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes));
    return true;
}

void DiskBudget::release(std::uint64_t bytes) noexcept { used_.fetch_sub(bytes); }

namespace {

class MemoryContent final : public Content {
public:
    explicit MemoryContent(std::vector<std::byte> bytes)
        : Content(bytes.size()), bytes_(std::move(bytes)) {}
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
};

class DiskContent final : public Content {
public:
    DiskContent(int fd, std::string path, std::uint64_t size, std::uint64_t reserved,
                std::shared_ptr<DiskBudget> budget)
        : Content(size), fd_(fd), path_(std::move(path)), reserved_(reserved),
          budget_(std::move(budget)) {}
    ~DiskContent() override {
        unlink();
        ::close(fd_);
        budget_->release(reserved_);
    }
    bool on_disk() const noexcept override { return true; }
    int fd() const noexcept override { return fd_; }
    long read(void* buf, std::size_t size, std::uint64_t offset) const override {
        auto n = ::pread(fd_, buf, size, static_cast<off_t>(offset));
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
    int fd_;
    // Guards path_: eviction and destruction may race on different threads. Leaf lock.
    std::mutex mutex_;
    std::string path_;
    std::uint64_t reserved_;
    std::shared_ptr<DiskBudget> budget_;
};

// Grow the reservation in steps, so the budget is not asked on every 64 KiB block.
constexpr std::uint64_t reserve_step = 4 << 20;

}  // namespace

ContentBuilder::ContentBuilder(BuilderLimits limits, Reserve reserve)
    : limits_(std::move(limits)), reserve_(std::move(reserve)) {}

ContentBuilder::~ContentBuilder() { discard(); }

void ContentBuilder::discard() noexcept {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(path_.c_str());
        fd_ = -1;
        path_.clear();
    }
    if (reserved_) {
        limits_.disk_budget->release(reserved_);
        reserved_ = 0;
    }
    memory_.clear();
    memory_.shrink_to_fit();
    written_ = 0;
    riff_total_.reset();
    complete_ = false;
}

void ContentBuilder::reset() { discard(); }

void ContentBuilder::spill_to_disk() {
    // mkostemp picks a fresh 0600 name: recording names are personal data and stay
    // out of paths.
    std::string pattern = limits_.cache_dir + "/rec-XXXXXX";
    fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (fd_ < 0) {
        const int err = errno;
        throw ApiError(err, ErrorKind::local,
                       std::string("cannot create a cache file: ") + api::describe_errno(err));
    }
    path_ = std::move(pattern);
    std::vector<std::byte> held;
    held.swap(memory_);
    if (!held.empty()) write_file(held.data(), held.size(), 0);
}

void ContentBuilder::write_file(const std::byte* data, std::size_t size, std::uint64_t offset) {
    const std::uint64_t end = offset + size;
    if (end > reserved_) {
        // Reserve ahead (the RIFF size, or a step) so the budget is not asked for every
        // block, but never more than the whole cap: that would evict everything.
        const auto cap = limits_.disk_budget->cap();
        const std::uint64_t ahead = riff_total_ ? *riff_total_ : reserved_ + std::min(reserve_step, cap / 16);
        std::uint64_t target = std::max(end, std::min(ahead, cap));
        if (!reserve_(target - reserved_)) {
            target = end;
            if (!reserve_(target - reserved_)) {
                throw ApiError(ENOSPC, ErrorKind::local, "the cache is full (cache_size)");
            }
        }
        reserved_ = target;
    }
    std::uint64_t done = 0;
    while (done < size) {
        auto n = ::pwrite(fd_, data + done, size - done, static_cast<off_t>(offset + done));
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
            if (fd_ < 0 && *riff_total_ > limits_.memory_max) {
                spill_to_disk();
            } else if (fd_ < 0) {
                memory_.reserve(*riff_total_);
            }
        }
    }
    if (fd_ < 0 && written_ + bytes.size() > limits_.memory_max) spill_to_disk();
    if (fd_ >= 0) {
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
    if (fd_ < 0) {
        memory_.shrink_to_fit();
        auto content = std::make_shared<MemoryContent>(std::move(memory_));
        memory_ = {};
        written_ = 0;
        return content;
    }
    // Give back what the RIFF size over-reserved.
    if (reserved_ > written_) {
        limits_.disk_budget->release(reserved_ - written_);
        reserved_ = written_;
    }
    auto content = std::make_shared<DiskContent>(fd_, std::move(path_), written_, reserved_,
                                                 limits_.disk_budget);
    fd_ = -1;
    path_.clear();
    reserved_ = 0;
    written_ = 0;
    return content;
}

}  // namespace euphoria::core
