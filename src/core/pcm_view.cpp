#include "euphoria/core/pcm_view.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <new>
#include <system_error>
#include <thread>

namespace euphoria::core {

std::string pcm_key(const std::string& name) { return std::string(pcm_key_prefix) + name; }

std::optional<std::string> pcm_original_of(const std::string& key) {
    if (key.size() <= pcm_key_prefix.size() || key.compare(0, pcm_key_prefix.size(), pcm_key_prefix) != 0) {
        return std::nullopt;
    }
    return key.substr(pcm_key_prefix.size());
}

struct TaskThread::State {
    // Guards tasks and stopping.
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::function<void()>> tasks;
    bool stopping = false;
    std::thread thread;

    void loop() {
        std::unique_lock lock(mutex);
        for (;;) {
            cv.wait(lock, [this] { return stopping || !tasks.empty(); });
            if (stopping) return;
            auto task = std::move(tasks.front());
            tasks.pop_front();
            lock.unlock();
            task();
            task = nullptr;  // what it holds goes before the lock is taken again
            lock.lock();
        }
    }
};

TaskThread::TaskThread() : state_(std::make_shared<State>()) {
    state_->thread = std::thread([s = state_.get()] { s->loop(); });
}

TaskThread::~TaskThread() { shutdown(); }

void TaskThread::shutdown() noexcept {
    std::deque<std::function<void()>> left;
    {
        std::lock_guard lock(state_->mutex);
        state_->stopping = true;
        left.swap(state_->tasks);
    }
    state_->cv.notify_all();
    if (state_->thread.joinable()) state_->thread.join();
    // Destroyed unrun, here, without the lock: what they hold may run callbacks.
    left.clear();
}

void TaskThread::post(std::function<void()> task) {
    {
        std::lock_guard lock(state_->mutex);
        if (state_->stopping) return;  // destroyed unrun, below, without the lock
        state_->tasks.push_back(std::move(task));
    }
    state_->cv.notify_one();
}

namespace {

const char* format_name(PcmCodec codec) {
    switch (codec) {
        case PcmCodec::pcm16: return "pcm16";
        case PcmCodec::alaw: return "alaw";
        case PcmCodec::mulaw: return "mulaw";
        case PcmCodec::gsm610: return "gsm610";
    }
    return "unknown";
}

// The smallest WAV: the probe then says how much more its header takes, so a
// lookup waits for the header and never for more.
constexpr std::uint64_t first_header_bytes = pcm_header_bytes;

}  // namespace

// One original's decode. `waiters` is guarded by PcmViews::mutex_; the rest is only
// touched by the one step in flight (a probe or pump task, or the wait that posts the
// next), so the steps of one decode never overlap.
struct PcmViews::Decode {
    std::string name;
    CachedRecording original;
    std::vector<Done> waiters;
    std::uint64_t original_size = 0;  // the size probed with
    std::optional<PcmDecoder> decoder;
    std::unique_ptr<ContentBuilder> builder;
    std::shared_ptr<const Content> view;
    std::string source_format;
    std::uint64_t fed = 0;
    bool over = false;  // finished or failed
};

PcmViews::PcmViews(ContentCache& cache, Clock& clock, Logger& logger, BuilderLimits limits,
                   Executor executor, PcmOptions options)
    : cache_(cache), clock_(clock), logger_(logger), limits_(std::move(limits)),
      executor_(std::move(executor)), options_(options) {}

PcmViews::~PcmViews() { shutdown(); }

void PcmViews::shutdown() noexcept {
    std::vector<DecodePtr> running;
    {
        std::lock_guard lock(mutex_);
        for (auto& [name, k] : known_) {
            if (k.decode) running.push_back(std::move(k.decode));
        }
        known_.clear();
    }
    for (const auto& d : running) fail(d, ESHUTDOWN, "");
}

void PcmViews::view(const std::string& name, const CachedRecording& original, Done done) {
    if (const int err = original.content->error()) {
        PcmViewAnswer a;
        a.error = err;
        done(std::move(a));
        return;
    }
    DecodePtr fresh;
    PcmViewAnswer now;
    {
        std::lock_guard lock(mutex_);
        auto it = known_.find(name);
        bool known = it != known_.end() && it->second.original.lock() == original.content;
        if (known) {
            auto& k = it->second;
            if (auto v = k.view.lock()) {
                now.view = CachedRecording{std::move(v), original.expires_at, original.mtime};
                now.source_format = k.source_format;
            } else if (k.decode) {
                k.decode->waiters.push_back(std::move(done));
                return;
            } else if (k.error) {
                now.error = k.error;
            } else {
                known = false;  // the view went (evicted, or never cached): decode again
            }
        }
        if (!known) {
            if (known_.size() >= max_known) {
                for (auto i = known_.begin(); i != known_.end();) {
                    i = i->second.original.expired() && !i->second.decode ? known_.erase(i) : std::next(i);
                }
            }
            fresh = std::make_shared<Decode>();
            fresh->name = name;
            fresh->original = original;
            known_[name] = Known{original.content, {}, fresh, {}, 0};
        }
    }
    if (!fresh) {
        done(std::move(now));
        return;
    }
    {
        // Nothing answers a decode's waiters before it starts, below.
        std::lock_guard lock(mutex_);
        fresh->waiters.push_back(std::move(done));
    }
    wait_for(fresh, first_header_bytes, &PcmViews::probe);
}

std::string PcmViews::source_format(const std::string& name) const {
    std::lock_guard lock(mutex_);
    const auto it = known_.find(name);
    return it == known_.end() ? std::string{} : it->second.source_format;
}

void PcmViews::wait_for(const DecodePtr& d, std::uint64_t end, Step step) {
    try {
        d->original.content->when_ready(end, [this, d, step](int error) {
            if (error) {
                fail(d, EIO, "its recording failed");
                return;
            }
            try {
                executor_([this, d, step] { (this->*step)(d); });
            } catch (...) {
                fail(d, ENOMEM, "no task for the decode");
            }
        });
    } catch (...) {
        fail(d, ENOMEM, "no wait for the decode");
    }
}

void PcmViews::probe(const DecodePtr& d) {
    try {
        const auto& original = *d->original.content;
        const bool complete = original.complete();
        d->original_size = original.size();
        const auto have = std::min({original.arrived(), d->original_size, wav_max_header_bytes});
        std::vector<std::byte> prefix(static_cast<std::size_t>(have));
        const long got = original.read(prefix.data(), prefix.size(), 0);
        if (got < 0) {
            fail(d, EIO, "its recording failed");
            return;
        }
        prefix.resize(static_cast<std::size_t>(got));
        const auto p = probe_pcm_view(prefix, d->original_size, options_);
        if (p.status == PcmStatus::need_more) {
            if (complete || p.needed <= have) {
                fail(d, EIO, "its header is cut short");
            } else {
                wait_for(d, p.needed, &PcmViews::probe);
            }
            return;
        }
        if (p.status == PcmStatus::unsupported) {
            fail(d, EOPNOTSUPP, p.error);
            return;
        }
        if (p.status != PcmStatus::ok) {
            fail(d, EIO, p.error);
            return;
        }
        d->source_format = format_name(p.layout.codec);
        d->decoder.emplace(p.layout);
        d->builder = std::make_unique<ContentBuilder>(
            limits_, [this](std::uint64_t bytes) { return cache_.reserve_memory(bytes); },
            [this](std::uint64_t bytes) { return cache_.reserve_disk(bytes); },
            [d](std::shared_ptr<const Content> view) { d->view = std::move(view); });
        // The original's header makes the view's: readers may come in from here. Only
        // the header: the lookups waiting for the size are answered before any decoding.
        const auto header = std::span<const std::byte>(prefix).first(
            static_cast<std::size_t>(std::min<std::uint64_t>(prefix.size(), p.layout.data_offset)));
        d->decoder->feed(header, [&d](std::span<const std::byte> b) { d->builder->write(b); });
        d->fed = header.size();
        if (!d->view) {
            fail(d, ENOSPC, "the view is larger than the cache");
            return;
        }
    } catch (const std::bad_alloc&) {
        fail(d, ENOMEM, "out of memory");
        return;
    } catch (const std::system_error& e) {
        fail(d, e.code().value() == ENOSPC ? ENOSPC : EIO, e.what());
        return;
    } catch (const std::exception& e) {
        fail(d, EIO, e.what());
        return;
    }
    PcmViewAnswer a;
    a.view = CachedRecording{d->view, d->original.expires_at, d->original.mtime};
    a.source_format = d->source_format;
    answer(d, a);
    pump(d);
}

void PcmViews::answer(const DecodePtr& d, const PcmViewAnswer& a) {
    std::vector<Done> waiters;
    {
        std::lock_guard lock(mutex_);
        waiters.swap(d->waiters);
        const auto it = known_.find(d->name);
        if (it != known_.end() && it->second.decode == d) {
            it->second.view = a.view.content;
            it->second.source_format = a.source_format;
            it->second.error = a.error;
            it->second.decode = nullptr;
        }
    }
    for (auto& w : waiters) w(a);
}

void PcmViews::pump(const DecodePtr& d) {
    try {
        const auto& original = *d->original.content;
        if (!d->decoder->done()) {
            const auto to = std::min(original.arrived(), d->fed + piece_bytes);
            if (to > d->fed) {
                std::vector<std::byte> piece(static_cast<std::size_t>(to - d->fed));
                const long got = original.read(piece.data(), piece.size(), d->fed);
                if (got < 0 || static_cast<std::size_t>(got) != piece.size()) {
                    fail(d, EIO, "its recording failed");
                    return;
                }
                d->decoder->feed(piece, [&d](std::span<const std::byte> b) { d->builder->write(b); });
                d->fed = to;
            }
        }
        if (d->decoder->done()) {
            // Never a view of an original that ends badly: wait for the whole of it.
            wait_for(d, Content::whole, &PcmViews::finish);
        } else if (original.complete() && d->fed >= original.size()) {
            fail(d, EIO, "its recording ended before its data chunk");
        } else if (d->fed < original.arrived()) {
            executor_([this, d] { pump(d); });  // gives way to other decodes
        } else {
            wait_for(d, d->fed + 1, &PcmViews::pump);
        }
    } catch (const std::bad_alloc&) {
        fail(d, ENOMEM, "out of memory");
    } catch (const std::system_error& e) {
        fail(d, e.code().value() == ENOSPC ? ENOSPC : EIO, e.what());
    } catch (const std::exception& e) {
        fail(d, EIO, e.what());
    }
}

void PcmViews::finish(const DecodePtr& d) {
    const auto& original = *d->original.content;
    if (original.error() || original.size() != d->original_size) {
        // Longer than its header said: the view was planned on the announced size.
        fail(d, EIO, "its recording's size changed while it arrived");
        return;
    }
    try {
        d->builder->complete();
        auto content = d->builder->take();
        cache_.insert(pcm_key(d->name), CachedRecording{content, d->original.expires_at, d->original.mtime},
                      clock_.now());
        d->builder->finish();
    } catch (const std::exception& e) {
        fail(d, EIO, e.what());
        return;
    }
    d->builder.reset();
    d->decoder.reset();
    d->over = true;
    d->original.content.reset();  // the view no longer needs its original's bytes
}

void PcmViews::fail(const DecodePtr& d, int error, const std::string& why) {
    if (d->over) return;
    d->over = true;
    if (d->builder) d->builder->fail(error == ENOSPC ? ENOSPC : EIO);
    d->builder.reset();
    d->decoder.reset();
    {
        std::lock_guard lock(mutex_);
        const auto it = known_.find(d->name);
        // Forgotten, so that the next look-up tries again; a format without a view
        // is remembered for as long as its original.
        if (it != known_.end() && (it->second.decode == d || (d->view && it->second.view.lock() == d->view))) {
            if (error == EOPNOTSUPP && !d->view) {
                it->second.decode = nullptr;
                it->second.error = error;
            } else {
                known_.erase(it);
            }
        }
    }
    if (!why.empty() && error != ESHUTDOWN) {
        try {
            logger_.log(error == EOPNOTSUPP ? LogLevel::info : LogLevel::error,
                        "pcm/" + d->name + ": " + why);
        } catch (...) {
        }
    }
    PcmViewAnswer a;
    a.error = error == ENOSPC || error == EOPNOTSUPP || error == ENOMEM || error == ESHUTDOWN ? error : EIO;
    std::vector<Done> waiters;
    {
        std::lock_guard lock(mutex_);
        waiters.swap(d->waiters);
    }
    for (auto& w : waiters) w(a);
}

}  // namespace euphoria::core
