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

// Where a content's bytes live: memory until they outgrow it, then a cache file.
// Holds their reservations in the tiers' budgets until the content goes.
struct Content::Storage {
    std::vector<std::byte> memory;
    UniqueFd fd;
    std::string path;  // empty once unlinked
    std::uint64_t memory_reserved = 0;
    std::uint64_t disk_reserved = 0;
    std::shared_ptr<ByteBudget> memory_budget;
    std::shared_ptr<ByteBudget> disk_budget;

    void release() noexcept {
        if (!path.empty()) {
            ::unlink(path.c_str());
            path.clear();
        }
        fd.reset();
        memory.clear();
        memory.shrink_to_fit();
        if (memory_reserved) memory_budget->release(memory_reserved);
        if (disk_reserved) disk_budget->release(disk_reserved);
        memory_reserved = disk_reserved = 0;
    }
    ~Storage() { release(); }
};

Content::~Content() = default;

std::uint64_t Content::arrived() const {
    std::lock_guard lock(mutex_);
    return arrived_;
}

int Content::error() const {
    std::lock_guard lock(mutex_);
    return error_;
}

bool Content::on_disk() const noexcept { return on_disk_.load(std::memory_order_acquire); }

const std::byte* Content::data() const noexcept { return complete() ? data_ : nullptr; }

int Content::fd() const noexcept { return complete() ? fd_ : -1; }

long Content::read(void* buf, std::size_t size, std::uint64_t offset) const {
    std::lock_guard lock(mutex_);
    if (error_) return -error_;
    if (offset >= arrived_) return 0;
    const auto n = std::min<std::uint64_t>(size, arrived_ - offset);
    if (!storage_->fd) {
        std::memcpy(buf, storage_->memory.data() + offset, n);
        return static_cast<long>(n);
    }
    std::uint64_t done = 0;
    while (done < n) {
        const auto got = ::pread(storage_->fd.get(), static_cast<char*>(buf) + done, n - done,
                                 static_cast<off_t>(offset + done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -errno;
        if (got == 0) return -EIO;  // the file lost bytes that arrived
        done += static_cast<std::uint64_t>(got);
    }
    return static_cast<long>(n);
}

UniqueFd Content::share_arrived(std::uint64_t end) const {
    std::lock_guard lock(mutex_);
    if (error_ || !storage_->fd || arrived_ < end) return UniqueFd{};
    return UniqueFd{::fcntl(storage_->fd.get(), F_DUPFD_CLOEXEC, 0)};
}

Content::ReadyId Content::when_ready(std::uint64_t end, Ready ready) const {
    int error = 0;
    {
        std::lock_guard lock(mutex_);
        error = error_;
        const bool there = complete() || (end != whole && arrived_ >= std::min(end, size()));
        if (!error && !there) {
            const ReadyId id = next_ready_++;
            readers_.emplace(end, std::make_pair(id, std::move(ready)));
            return id;
        }
    }
    ready(error);
    return 0;
}

bool Content::cancel_ready(ReadyId id) const {
    Ready dropped;  // destroyed outside mutex_
    std::lock_guard lock(mutex_);
    for (auto it = readers_.begin(); it != readers_.end(); ++it) {
        if (it->second.first == id) {
            dropped = std::move(it->second.second);
            readers_.erase(it);
            return true;
        }
    }
    return false;
}

void Content::unlink() noexcept {
    std::lock_guard lock(mutex_);
    if (storage_ && !storage_->path.empty()) {
        ::unlink(storage_->path.c_str());
        storage_->path.clear();
    }
}

void Content::wake(int error) noexcept {
    auto due = take_due(error);
    run(due, error);
}

Content::Readers Content::take_due(int error) noexcept {
    // Moved node by node: no allocation, so no reader is ever left unanswered.
    Readers due;
    std::lock_guard lock(mutex_);
    const bool all = error || complete();
    const auto limit = std::min(arrived_, size());
    // readers_ is ordered by end, and `whole` sorts last.
    auto it = readers_.begin();
    while (it != readers_.end() && (all || (it->first != whole && std::min(it->first, size()) <= limit))) {
        due.insert(readers_.extract(it++));
    }
    return due;
}

void Content::run(Readers& due, int error) noexcept {
    for (auto& [end, reader] : due) reader.second(error);
}

namespace {

// Grow the reservation in steps, so the budget is not asked on every 64 KiB block.
constexpr std::uint64_t reserve_step = 4 << 20;
// The smallest WAV: a RIFF header, a fmt chunk and a data chunk header.
constexpr std::uint64_t smallest_wav = 44;

}  // namespace

std::uint64_t ContentBuilder::plausible_max(const BuilderLimits& limits) {
    const auto disk = limits.disk_budget ? limits.disk_budget->cap() : 0;
    return std::max(limits.memory_max, disk);
}

ContentBuilder::ContentBuilder(BuilderLimits limits, Reserve reserve_memory, Reserve reserve_disk,
                               Published published)
    : limits_(std::move(limits)), reserve_memory_(std::move(reserve_memory)),
      reserve_disk_(std::move(reserve_disk)), on_published_(std::move(published)),
      content_(std::make_shared<Content>()) {
    content_->storage_ = std::make_unique<Content::Storage>();
    content_->storage_->memory_budget = limits_.memory_budget;
    content_->storage_->disk_budget = limits_.disk_budget;
}

ContentBuilder::~ContentBuilder() {
    if (taken_) {
        finish();  // nothing after a failure
    } else {
        fail();
    }
}

void ContentBuilder::fail(int error) noexcept {
    if (taken_) return;
    taken_ = true;
    failed_ = true;
    {
        std::lock_guard lock(content_->mutex_);
        content_->error_ = error;
        content_->storage_->release();
        memory_reserved_ = reserved_ = 0;
    }
    content_->wake(error);
}

void ContentBuilder::reset() {
    written_ = 0;
    complete_ = false;
    if (published_) return;  // readers may have had them: the retry is checked against them
    // Nobody saw these bytes: the retry starts afresh, as if they never came.
    std::lock_guard lock(content_->mutex_);
    content_->storage_->release();
    content_->arrived_ = 0;
    content_->on_disk_.store(false, std::memory_order_release);
    memory_reserved_ = reserved_ = 0;
    riff_total_.reset();
    std::memset(header_, 0, sizeof header_);
}

bool ContentBuilder::reserve_memory(std::uint64_t end) {
    if (end <= memory_reserved_) return true;
    if (!reserve_memory_(end - memory_reserved_)) return false;
    memory_reserved_ = end;
    content_->storage_->memory_reserved = memory_reserved_;
    return true;
}

// Lock order: the builder takes the content's mutex only around what readers see
// change (the memory vector, the descriptor, arrived_), and never while it asks for
// budget: that may evict, under ContentCache's mutex, which itself may take a cached
// content's mutex. Only the writing thread changes the storage, so it reads its own
// fields without the lock.

void ContentBuilder::spill_to_disk() {
    auto& st = *content_->storage_;
    // mkostemp picks a fresh 0600 name: recording names are personal data and stay
    // out of paths.
    std::string pattern = limits_.cache_dir + "/" + std::string(cache_file_prefix) + "XXXXXX";
    UniqueFd fd(::mkostemp(pattern.data(), O_CLOEXEC));
    if (!fd) {
        const int err = errno;
        throw ApiError(err, ErrorKind::local,
                       std::string("cannot create a cache file: ") + api::describe_errno(err));
    }
    try {
        if (!st.memory.empty()) {
            reserve_disk_to(st.memory.size());
            write_fd(fd.get(), st.memory.data(), st.memory.size(), 0);
        }
    } catch (...) {
        ::unlink(pattern.c_str());  // not yet the storage's to remove
        throw;
    }
    std::vector<std::byte> held;
    {
        std::lock_guard lock(content_->mutex_);
        st.fd = std::move(fd);
        st.path = std::move(pattern);
        held.swap(st.memory);
        content_->on_disk_.store(true, std::memory_order_release);
        if (memory_reserved_) limits_.memory_budget->release(memory_reserved_);
        memory_reserved_ = 0;
        st.memory_reserved = 0;
    }
}

void ContentBuilder::reserve_disk_to(std::uint64_t end) {
    if (end <= reserved_) return;
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
    std::lock_guard lock(content_->mutex_);
    content_->storage_->disk_reserved = reserved_;
}

void ContentBuilder::write_fd(int fd, const std::byte* data, std::size_t size, std::uint64_t offset) {
    std::uint64_t done = 0;
    while (done < size) {
        auto n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            throw ApiError(err, ErrorKind::local,
                           std::string("cannot write the cache file: ") + api::describe_errno(err));
        }
        done += static_cast<std::uint64_t>(n);
    }
}

bool ContentBuilder::learn_size(std::span<const std::byte> bytes) {
    // The total size from the RIFF header ("RIFF" + little-endian size - 8).
    const auto take = std::min<std::size_t>(8 - written_, bytes.size());
    std::memcpy(header_ + written_, bytes.data(), take);
    if (written_ + take != 8 || std::memcmp(header_, "RIFF", 4) != 0) return false;
    std::uint32_t riff = 0;
    for (int i = 7; i >= 4; --i) riff = (riff << 8) | std::to_integer<std::uint32_t>(header_[i]);
    riff_total_ = std::uint64_t(riff) + 8;
    auto& st = *content_->storage_;
    if (!st.fd && *riff_total_ > limits_.memory_max) {
        spill_to_disk();
    } else if (!st.fd && reserve_memory(*riff_total_)) {
        // Counted before it is allocated: the header is small enough to trust.
        std::lock_guard lock(content_->mutex_);
        st.memory.reserve(*riff_total_);
    }
    const bool plausible = riff != 0xFFFFFFFFu && *riff_total_ >= smallest_wav &&
                           *riff_total_ <= plausible_max(limits_);
    if (!plausible || !on_published_) return false;
    content_->size_.store(*riff_total_, std::memory_order_release);
    published_ = true;
    return true;
}

std::size_t ContentBuilder::verify(std::span<const std::byte> bytes) {
    const auto have = content_->arrived_;  // only this thread changes it
    if (written_ >= have) return 0;
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), have - written_));
    const auto& st = *content_->storage_;
    bool same = false;
    if (!st.fd) {
        same = std::memcmp(st.memory.data() + written_, bytes.data(), n) == 0;
    } else {
        std::vector<std::byte> old(n);
        std::size_t done = 0;
        while (done < n) {
            const auto got = ::pread(st.fd.get(), old.data() + done, n - done,
                                     static_cast<off_t>(written_ + done));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            done += static_cast<std::size_t>(got);
        }
        same = done == n && std::memcmp(old.data(), bytes.data(), n) == 0;
    }
    if (!same) {
        throw ApiError(EIO, ErrorKind::local,
                       "a retried download differs from the bytes that already arrived");
    }
    return n;
}

void ContentBuilder::write(std::span<const std::byte> bytes) {
    if (bytes.empty()) return;
    if (taken_) throw ApiError(EIO, ErrorKind::local, "the download already ended");
    const bool publish = written_ < 8 && !riff_total_ && learn_size(bytes);
    // A retry first repeats what arrived: check it, then go on past it.
    const auto checked = verify(bytes);
    written_ += checked;
    bytes = bytes.subspan(checked);
    if (!bytes.empty()) {
        auto& st = *content_->storage_;
        if (!st.fd && (written_ + bytes.size() > limits_.memory_max ||
                       !reserve_memory(written_ + bytes.size()))) {
            spill_to_disk();
        }
        if (st.fd) {
            // Past arrived_: no reader looks there yet.
            reserve_disk_to(written_ + bytes.size());
            write_fd(st.fd.get(), bytes.data(), bytes.size(), written_);
        }
        std::lock_guard lock(content_->mutex_);
        if (!st.fd) {
            // May move the vector: readers copy from it under the same lock.
            st.memory.insert(st.memory.end(), bytes.begin(), bytes.end());
        }
        written_ += bytes.size();
        content_->arrived_ = written_;
    }
    if (publish) on_published_(content_);
    content_->wake(0);
}

void ContentBuilder::complete() { complete_ = true; }

std::shared_ptr<const Content> ContentBuilder::take() {
    if (!complete_) throw ApiError(EIO, ErrorKind::local, "download did not complete");
    if (written_ < content_->arrived_) {
        throw ApiError(EIO, ErrorKind::local, "a retried download ended before the bytes that already arrived");
    }
    if (published_ && written_ < content_->size()) {
        throw ApiError(EIO, ErrorKind::local,
                       "the recording ended at " + std::to_string(written_) +
                           " bytes, short of the " + std::to_string(content_->size()) +
                           " its header announced");
    }
    {
        std::lock_guard lock(content_->mutex_);
        auto& st = *content_->storage_;
        if (!st.fd) {
            st.memory.shrink_to_fit();
            // Give back what the RIFF size over-reserved; the content holds the rest.
            if (memory_reserved_ > written_) {
                limits_.memory_budget->release(memory_reserved_ - written_);
                memory_reserved_ = written_;
                st.memory_reserved = written_;
            }
            content_->data_ = st.memory.data();
        } else {
            // Give back what the step ahead over-reserved.
            if (reserved_ > written_) {
                limits_.disk_budget->release(reserved_ - written_);
                reserved_ = written_;
                st.disk_reserved = written_;
            }
            content_->fd_ = st.fd.get();
        }
        content_->arrived_ = written_;
        content_->size_.store(written_, std::memory_order_release);
    }
    taken_ = true;
    return content_;
}

void ContentBuilder::finish() noexcept {
    if (!taken_ || finished_ || failed_) return;
    finished_ = true;
    {
        std::lock_guard lock(content_->mutex_);
        content_->complete_.store(true, std::memory_order_release);
    }
    // Let go before the readers hear of it: a reader that needs the bytes holds its
    // own reference, and one that closes at once must free them.
    auto due = content_->take_due(0);
    content_.reset();
    Content::run(due, 0);
}

}  // namespace euphoria::core
