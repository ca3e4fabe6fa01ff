#pragma once
// What the kernel holds as fi->fh. A handle is freed at release(); a session that
// ends with files still open (a daemon stopped beneath a reader) gets no release,
// so what is left is freed with its registry, not leaked.

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace euphoria::fuse {

struct Handle {
    Handle() = default;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    virtual ~Handle() = default;
};

class OpenHandles {
public:
    // Takes `h`; what to put in fi->fh.
    std::uint64_t adopt(std::unique_ptr<Handle> h) {
        const Handle* raw = h.get();
        std::lock_guard lock(mutex_);
        live_.emplace(raw, std::move(h));
        return reinterpret_cast<std::uint64_t>(raw);
    }
    // Hands back the handle `fh` names (release is done with it), or null.
    std::unique_ptr<Handle> take(std::uint64_t fh) {
        std::lock_guard lock(mutex_);
        const auto it = live_.find(reinterpret_cast<const Handle*>(fh));  // NOLINT(performance-no-int-to-ptr)
        if (it == live_.end()) return nullptr;
        auto h = std::move(it->second);
        live_.erase(it);
        return h;
    }

private:
    // Guards live_. Taken on open and release only: a read finds its handle in fi->fh.
    std::mutex mutex_;
    std::unordered_map<const Handle*, std::unique_ptr<Handle>> live_;
};

}  // namespace euphoria::fuse
