#pragma once
// A cache that other mounts of the tenant share (-o redis_cache): the Fetcher asks it
// before a download, and gives it what the download brought.
//
// look() is the cross-host single flight. It answers from the shared cache, or it
// waits while another host downloads the name, or it tells this host to download
// (then it may hold the name's claim, so that other hosts wait for it). Every look()
// that missed is followed by exactly one release() of its claim, after store() or
// store_negative() when there was something to share.
//
// Everything here is best effort: a shared cache that fails or is unreachable is a
// miss, never an error for a reader.

#include <chrono>
#include <cstdint>
#include <string>

#include "euphoria/api/cancel.hpp"
#include "euphoria/core/content.hpp"

namespace euphoria::core {

class SharedCache {
public:
    virtual ~SharedCache() = default;

    enum class Found {
        miss,       // download it; release() after
        recording,  // `bytes` are the recording, as another host downloaded it
        negative,   // the API said there is no such recording
    };
    struct Lookup {
        Found found = Found::miss;
        std::string bytes;
        // What is left of the API's 30 seconds, counted from the reply that brought it.
        std::chrono::milliseconds left{0};
        // A miss: this look's claim on the name, for release(); empty when it took none.
        std::string claim;
    };
    // On a Fetcher thread, never a FUSE one: it may wait for another host's download.
    // `cancel` ends the wait (a miss).
    virtual Lookup look(const std::string& name, api::CancelToken& cancel) = 0;
    // Shares a complete recording for `left`, if it is no larger than max_bytes().
    virtual void store(const std::string& name, const Content& content,
                       std::chrono::milliseconds left) noexcept = 0;
    virtual void store_negative(const std::string& name, std::chrono::milliseconds left) noexcept = 0;
    // The recording will not be shared (larger than max_bytes()): hosts waiting for
    // this one download it themselves now, rather than after it. `claim` (may be
    // empty) is given up.
    virtual void unshare(const std::string& name, const std::string& claim,
                         std::chrono::milliseconds left) noexcept = 0;
    // Gives up the claim a look() took (Lookup::claim): never another look's, even
    // of the same name.
    virtual void release(const std::string& claim) noexcept = 0;
    virtual std::uint64_t max_bytes() const noexcept = 0;
};

}  // namespace euphoria::core
