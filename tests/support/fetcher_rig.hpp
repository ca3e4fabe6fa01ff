#pragma once
// A Fetcher over a fake client, a fake clock and a private cache folder, and the
// byte helpers the core tests share.

#include "catch_compat.hpp"

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "euphoria/core/fetcher.hpp"
#include "fakes.hpp"
#include "temp_dir.hpp"

namespace euphoria::test {

using namespace std::chrono_literals;


// "n0", "n1", ...: built by appending, since g++ 12 at -O3 warns falsely (-Wrestrict)
// on "n" + std::to_string(i).
inline std::string name_of(std::size_t i) {
    std::string s = "n";
    s += std::to_string(i);
    return s;
}

inline std::string bytes_of(std::size_t n, char seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
    return s;
}

inline std::string read_all(const core::Content& c) {
    std::string out(c.size(), '\0');
    REQUIRE(c.read(out.data(), out.size(), 0) == static_cast<long>(c.size()));
    return out;
}

// A RIFF header claiming `total` bytes, then filler up to `total`.
inline std::string riff_of(std::size_t total) {
    std::string s = bytes_of(total, 'r');
    const auto riff = static_cast<std::uint32_t>(total - 8);
    s.replace(0, 4, "RIFF");
    for (int i = 0; i < 4; ++i) s[4 + i] = static_cast<char>((riff >> (8 * i)) & 0xff);
    return s;
}

// Polls `done` for up to 5 real seconds.
template <class F>
bool eventually(F done) {
    for (int i = 0; i < 5000; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return done();
}

struct Rig {
    TempDir dir;
    FakeClient client;
    FakeClock clock;
    core::Stats stats;
    core::NullLogger logger;
    std::shared_ptr<core::ByteBudget> memory;
    std::shared_ptr<core::ByteBudget> budget;  // the disk tier's
    std::unique_ptr<core::ContentCache> cache;
    std::unique_ptr<core::Fetcher> fetcher;

    using Tweak = std::function<void(core::FetcherConfig&)>;

    explicit Rig(unsigned max_concurrent = 3, std::uint64_t mem_cap = 1 << 20,
                 std::uint64_t memory_max = 256 << 10, std::uint64_t disk_cap = 8 << 20,
                 std::string pattern = "*", const Tweak& tweak = {},
                 core::SharedCache* shared = nullptr) {
        memory = std::make_shared<core::ByteBudget>(mem_cap);
        budget = std::make_shared<core::ByteBudget>(disk_cap);
        cache = std::make_unique<core::ContentCache>(core::CacheLimits{}, memory, budget);
        core::FetcherConfig config;
        config.max_concurrent = max_concurrent;
        config.ttl = 30s;
        config.retry.retries = 3;
        config.builder = {dir.path(), memory_max, memory, budget};
        config.names = core::NamePolicy(pattern);
        if (tweak) tweak(config);
        fetcher = std::make_unique<core::Fetcher>(client, *cache, clock, stats, logger, config,
                                                  [] { return 0.5; }, nullptr, shared);
    }
    explicit Rig(const Tweak& tweak) : Rig(3, 1 << 20, 256 << 10, 8 << 20, "*", tweak) {}
    // A host of a fleet whose shared cache is `shared`.
    explicit Rig(core::SharedCache& shared, const Tweak& tweak = {})
        : Rig(3, 1 << 20, 256 << 10, 8 << 20, "*", tweak, &shared) {}
    ~Rig() {
        fetcher.reset();
        cache.reset();
    }
    core::FetchResult get(const std::string& name, api::CancelToken* c = nullptr) {
        return fetcher->get(name, c);
    }
};

}  // namespace euphoria::test
