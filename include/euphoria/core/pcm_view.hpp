#pragma once
// The pcm/ view's recordings (issue 15): each one derived from the cached original,
// never from a call of its own, and decoded once however many read it.
//
// view() takes the original as the Fetcher gave it, complete or still arriving. It
// waits (never blocking: a callback) for the original's header, which gives the
// view's exact size, then answers with the view's Content, which grows as the
// original's bytes arrive and are decoded. Its readers wait on that Content as on
// any growing recording: for their own range, never for more.
//
// Views are kept in the ContentCache under "pcm/NAME" (a key no recording name can
// be, since names have no '/'), with the original's expiry: the same TTL, eviction
// and tier rules, and their bytes count in the same budgets. A view's header tells
// its size at once, so a large one is written to the disk tier from its first byte.
//
// The decoding runs on an injected Executor, never on the thread that asks: a FUSE
// callback with a cached original must not decode an hour of GSM before replying.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "euphoria/core/cache.hpp"
#include "euphoria/core/clock.hpp"
#include "euphoria/core/content.hpp"
#include "euphoria/core/log.hpp"
#include "euphoria/core/pcm_decoder.hpp"

namespace euphoria::core {

inline constexpr std::string_view pcm_dir_name = "pcm";
inline constexpr std::string_view pcm_key_prefix = "pcm/";

// "pcm/NAME" for a view's cache key and inode name; NAME back from one, or nullopt.
std::string pcm_key(const std::string& name);
std::optional<std::string> pcm_original_of(const std::string& key);

// Runs a task on some other thread, in the order given. Must not throw once the
// task is accepted; a task that is dropped (shutdown) is destroyed unrun.
using Executor = std::function<void(std::function<void()>)>;

// One thread that runs posted tasks in order; the production Executor. Joins on
// destruction, destroying the tasks left unrun.
class TaskThread {
public:
    TaskThread();
    ~TaskThread();
    TaskThread(const TaskThread&) = delete;
    TaskThread& operator=(const TaskThread&) = delete;
    void post(std::function<void()> task);
    // Stops the thread; tasks left, and any posted later, are destroyed unrun.
    // Idempotent.
    void shutdown() noexcept;
    Executor executor() {
        return [this](std::function<void()> task) { post(std::move(task)); };
    }

private:
    struct State;
    std::shared_ptr<State> state_;
};

struct PcmViewAnswer {
    int error = 0;  // EOPNOTSUPP: a format without a view; EIO: a malformed original
    CachedRecording view;
    std::string source_format;  // "gsm610", "alaw", "mulaw" or "pcm16"
};

class PcmViews {
public:
    using Done = std::function<void(PcmViewAnswer)>;

    PcmViews(ContentCache& cache, Clock& clock, Logger& logger, BuilderLimits limits,
             Executor executor, PcmOptions options = {});
    ~PcmViews();
    PcmViews(const PcmViews&) = delete;
    PcmViews& operator=(const PcmViews&) = delete;

    // Calls `done` with the view of `original` (the recording `name` as fetched):
    // at once when that version's view is known, else later from the thread that
    // brings the original's header. Views of one original share one decode. `done`
    // must not throw.
    void view(const std::string& name, const CachedRecording& original, Done done);

    // The source format of the view last made for `name`, for its xattr; empty
    // when none is known.
    std::string source_format(const std::string& name) const;

    // Fails every decode in progress (ESHUTDOWN to its waiters, EIO to its
    // readers), while those can still be answered: after the executor stopped,
    // before the FUSE session goes. Idempotent.
    void shutdown() noexcept;

    // Bytes of the original fed to the decoder at most per task: a long decode
    // gives way to others on the same thread between pieces.
    static constexpr std::uint64_t piece_bytes = std::uint64_t{256} << 10;

private:
    struct Decode;
    using DecodePtr = std::shared_ptr<Decode>;
    using Step = void (PcmViews::*)(const DecodePtr&);
    // Runs `step` on the executor once the original's [0, end) has arrived.
    void wait_for(const DecodePtr& d, std::uint64_t end, Step step);
    void probe(const DecodePtr& d);  // the header: the view's size, or why none
    void pump(const DecodePtr& d);   // the next piece of the original
    void answer(const DecodePtr& d, const PcmViewAnswer& a);
    void fail(const DecodePtr& d, int error, const std::string& why);
    void finish(const DecodePtr& d);

    ContentCache& cache_;
    Clock& clock_;
    Logger& logger_;
    const BuilderLimits limits_;
    const Executor executor_;
    const PcmOptions options_;

    struct Known {
        std::weak_ptr<const Content> original;
        std::weak_ptr<const Content> view;  // empty while the header is awaited
        DecodePtr decode;  // until the view is published or failed
        std::string source_format;
        int error = 0;  // EOPNOTSUPP, kept for as long as the original lives
    };
    // Guards known_. A leaf lock: never held while calling a Content, the cache, the
    // executor or a Done.
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Known> known_;  // by recording name
    static constexpr std::size_t max_known = 65536;  // past it, dead entries go
};

}  // namespace euphoria::core
