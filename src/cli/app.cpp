#include "euphoria/cli/app.hpp"

#include <pthread.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>

#include "euphoria/api/curl_client.hpp"
#include "euphoria/api/error.hpp"
#include "euphoria/cli/cache_dir.hpp"
#include "euphoria/cli/credentials.hpp"
#include "euphoria/cli/daemon.hpp"
#include "euphoria/cli/logger.hpp"
#include "euphoria/cli/mount_table.hpp"
#include "euphoria/cli/options.hpp"
#include "euphoria/core/fetcher.hpp"
#include "euphoria/core/listing.hpp"
#include "euphoria/core/redis/shared_budget.hpp"
#include "euphoria/core/redis/shared_cache.hpp"
#include "euphoria/core/time_zone.hpp"
#include "euphoria/fuse/session.hpp"

namespace euphoria::cli {

namespace {

// A failure that ends the helper with a mount(8) exit code.
struct Fatal {
    int code;
    std::string message;
};

class DiscardSink final : public api::Sink {
public:
    void reset() override {}
    void write(std::span<const std::byte>) override {}
    void complete() override {}
};

// The zone day folders use when timezone= is not given: the host's, as glibc finds
// it ($TZ when it names a zone, else /etc/localtime), else UTC with a warning, rather
// than refusing a mount that worked before day folders existed.
core::TimeZone host_zone() {
    if (const char* tz = std::getenv("TZ"); tz && *tz) {  // NOLINT(concurrency-mt-unsafe): before any thread
        const std::string name = *tz == ':' ? tz + 1 : tz;
        try {
            return core::TimeZone::load(name);
        } catch (const std::exception& e) {
            std::cerr << "mount.euphoria: TZ=" << tz << " is no zone name this host has (" << e.what()
                      << "); trying /etc/localtime\n";
        }
    }
    try {
        return core::TimeZone::load("");
    } catch (const std::exception& e) {
        std::cerr << "mount.euphoria: " << e.what() << "; day folders use UTC (set timezone= to choose)\n";
        return core::TimeZone::utc();
    }
}

void check_mountpoint(const std::string& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOTCONN) {
            throw Fatal{exit_mount_failure,
                        "mount point " + dir +
                            ": Transport endpoint is not connected (an earlier mount died). "
                            "Recover with: fusermount3 -uz " + dir};
        }
        throw Fatal{exit_mount_failure, "mount point " + dir + ": " + std::strerror(err)};
    }
    if (!S_ISDIR(st.st_mode)) throw Fatal{exit_mount_failure, "mount point " + dir + " is not a folder"};
}

// mount(8) exit 32 and "already mounted", as for any filesystem mounted twice on one
// folder (`mount -a` run twice must leave one mount).
void check_not_mounted(const std::string& tenant, const std::string& dir) {
    std::error_code ec;
    const auto canonical = std::filesystem::canonical(dir, ec);
    if (ec) return;
    if (already_mounted(tenant, canonical.string())) {
        throw Fatal{exit_mount_failure, tenant + " is already mounted on " + canonical.string()};
    }
}

void check_cafile(const std::string& path) {
    if (path.empty()) return;
    if (::access(path.c_str(), R_OK) != 0) {
        throw Fatal{exit_usage, "cafile " + path + ": " + std::strerror(errno)};
    }
}

// One call for a name that cannot exist: a wrong key, an untrusted certificate or an
// unreachable endpoint fails the mount now instead of every file later.
void probe(api::Client& client, const std::string& endpoint) {
    std::random_device rd;
    const std::string name = "euphoriafs-probe-" + std::to_string(rd()) + std::to_string(rd()) + ".WAV";
    DiscardSink sink;
    api::CancelToken cancel;
    try {
        client.download(name, sink, cancel);
    } catch (const api::ApiError& e) {
        switch (e.kind()) {
        case api::ErrorKind::not_found:
        case api::ErrorKind::busy:  // only said once the key was accepted
            return;
        case api::ErrorKind::auth:
            throw Fatal{exit_mount_failure, "the API refused the key: " + std::string(e.what())};
        default:
            throw Fatal{exit_mount_failure,
                        "start-up check against " + endpoint + " failed: " + e.what() +
                            " (-o nocheck skips this check)"};
        }
    }
}

// Blocks every signal in this thread while alive, so threads started meanwhile
// inherit the mask.
class SignalsBlocked {
public:
    SignalsBlocked() {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old_);
    }
    ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
    SignalsBlocked(const SignalsBlocked&) = delete;
    SignalsBlocked& operator=(const SignalsBlocked&) = delete;

private:
    sigset_t old_{};
};

std::string join_flags(const std::vector<std::string>& flags) {
    std::string out;
    for (const auto& f : flags) out += "," + f;
    return out;
}

// The fleet's shared budget, or a Fatal that says why not (a wrong password).
void join_fleet(std::optional<core::redis::SharedBudget>& shared, const MountConfig& cfg,
                api::Secret password, core::Stats& stats, core::Logger& logger) {
    core::redis::SharedBudgetConfig config;
    config.address = core::redis::parse_address(cfg.redis);
    config.address.ca_file = cfg.cafile;  // trusted for rediss:// as for the API
    config.password = std::move(password);
    config.tenant = cfg.tenant;
    config.max_concurrent = cfg.max_concurrent;
    config.fallback = cfg.redis_fallback;
    config.times.lease = std::chrono::seconds(cfg.redis_lease);
    config.wait_limit = std::chrono::seconds(cfg.busy_timeout);
    try {
        shared.emplace(std::move(config), stats, logger);
    } catch (const std::exception& e) {
        throw Fatal{exit_mount_failure, "Redis at " + cfg.redis + ": " + e.what()};
    }
}

// The start-up probe is an API call like any other: in a fleet it waits for a lease,
// or a fleet booting at once would spend the tenant's slots on probes. The budget
// lives only for the probe, as its threads would not survive the daemon's fork.
void probe_in_turn(api::Client& client, const MountConfig& cfg, const api::Secret& redis_password) {
    if (cfg.redis.empty()) {
        probe(client, cfg.endpoint);
        return;
    }
    StderrLogger logger(cfg.debug || cfg.verbose);  // still on the terminal
    core::Stats stats;
    std::optional<core::redis::SharedBudget> shared;
    {
        SignalsBlocked blocked;
        join_fleet(shared, cfg, redis_password, stats, logger);
    }
    api::CancelToken cancel;
    core::CallPass pass;
    try {
        pass = shared->enter(cancel);
    } catch (const api::ApiError& e) {
        // A fleet busy for busy_timeout says nothing about this mount's key: mount,
        // unchecked, rather than fail a boot for it.
        logger.log(core::LogLevel::warning, std::string(e.what()) + ": start-up check skipped");
        return;
    }
    probe(client, cfg.endpoint);
}

int serve(const MountConfig& cfg, api::CurlClient& client, const std::string& cache_dir,
          const std::optional<core::TimeZone>& zone, std::optional<Daemon>& daemon,
          api::Secret redis_password, std::optional<core::redis::CacheCipher>& cipher) {
    std::unique_ptr<core::Logger> logger;
    if (cfg.foreground) {
        logger = std::make_unique<StderrLogger>(cfg.debug || cfg.verbose);
    } else {
        logger = std::make_unique<SyslogLogger>(cfg.debug || cfg.verbose);
    }
    core::SystemClock clock;
    core::Stats stats;
    // mem_cache_size bounds every recording byte in memory, cached or not: what
    // open files pin and what downloads hold count too. Past it, downloads go to disk.
    auto memory = std::make_shared<core::ByteBudget>(cfg.mem_cache_size);
    auto disk = std::make_shared<core::ByteBudget>(cfg.cache_size);
    core::ContentCache cache(core::CacheLimits{}, memory, disk);

    core::FetcherConfig fc;
    fc.max_concurrent = cfg.max_concurrent;
    fc.ttl = std::chrono::seconds(cfg.cache_ttl);
    fc.retry.retries = cfg.retries;
    fc.busy_timeout = std::chrono::seconds(cfg.busy_timeout);
    fc.interrupt_grace = std::chrono::seconds(cfg.interrupt_grace);
    fc.max_pending = cfg.max_pending;
    // A recording bigger than an eighth of the memory tier goes to disk, so a few
    // large ones cannot push every small one out.
    fc.builder = {cache_dir, std::max<std::uint64_t>(cfg.mem_cache_size / 8, 64 << 10), memory, disk};
    fc.names = core::NamePolicy(cfg.name_pattern);
    fc.verify_md5 = cfg.verify_md5;

    int rc = 0;
    {
        // Declared before the Fetcher, so that it outlives every call that holds a lease.
        std::optional<core::redis::SharedBudget> shared;
        std::optional<core::redis::RedisCache> shared_cache;
        std::optional<core::Fetcher> fetcher;
        {
            // Its threads take no signals: SIGTERM must reach the thread that runs the
            // FUSE loop, whose handler ends it.
            SignalsBlocked blocked;
            if (cipher) {
                core::redis::RedisCacheConfig cc;
                cc.address = core::redis::parse_address(cfg.redis);
                cc.address.ca_file = cfg.cafile;
                cc.password = redis_password;
                cc.tenant = cfg.tenant;
                cc.max_bytes = cfg.redis_cache_max;
                cc.claim = std::chrono::seconds(cfg.redis_lease);
                cc.timeout = std::chrono::seconds(1);
                shared_cache.emplace(std::move(cc), *cipher, stats, *logger);
                cipher.reset();  // one copy of the keys, not two
            }
            if (!cfg.redis.empty()) join_fleet(shared, cfg, std::move(redis_password), stats, *logger);
            fetcher.emplace(client, cache, clock, stats, *logger, fc, core::default_jitter(),
                            shared ? &*shared : nullptr, shared_cache ? &*shared_cache : nullptr);
        }
        core::Ownership owner{cfg.uid.value_or(::getuid()), cfg.gid.value_or(::getgid()), cfg.umask};
        core::Filesystem filesystem(*fetcher, cache, stats, clock, owner);
        std::optional<core::Listings> listings;
        if (zone) {
            core::ListingConfig lc;
            lc.page_size = cfg.listing_page;
            // At least a second even with cache_ttl=0: an `ls -l` is one listing, not one per file.
            lc.ttl = std::chrono::seconds(std::max(cfg.cache_ttl, 1u));
            lc.days = cfg.listing_days;
            lc.names = fc.names;
            listings.emplace(client, *fetcher, clock, stats, *logger, *zone, lc);
            filesystem.enable_listing(*listings, *logger);
        }
        // The pcm/ view decodes on a thread of its own, never a FUSE or download
        // thread; its views share the recordings' cache, tiers and budgets.
        std::optional<core::TaskThread> decode_thread;
        std::optional<core::PcmViews> views;
        if (cfg.pcm) {
            {
                SignalsBlocked blocked;
                decode_thread.emplace();
            }
            views.emplace(cache, clock, *logger, fc.builder, decode_thread->executor());
            filesystem.enable_pcm(*views);
        }
        fuse::SessionOptions so;
        so.mountpoint = cfg.mountpoint;
        // What fstab's first field says, so that mount(8) and `mount -a` recognise
        // the mount as the one they asked for.
        so.fsname = cfg.tenant;
        so.allow_other = cfg.allow_other;
        so.debug = cfg.debug;
        so.extra_mount_options = join_flags(cfg.kernel_flags);
        so.passthrough = cfg.passthrough;
        so.backing_dir = cache_dir;
        std::unique_ptr<fuse::Session> session;
        try {
            session = std::make_unique<fuse::Session>(filesystem, stats, *logger, so);
        } catch (const std::exception& e) {
            throw Fatal{exit_mount_failure, e.what()};
        }
        logger->log(core::LogLevel::info, "mounted tenant " + cfg.tenant + " on " + cfg.mountpoint);
        if (daemon) daemon->ready();
        rc = session->run();
        // While the session can still reply: cancel every download and answer every
        // waiting request, so that nothing outlives the mount and exit is prompt.
        fetcher->shutdown();
        // Then the decodes, while their readers can still be answered.
        if (decode_thread) decode_thread->shutdown();
        if (views) views->shutdown();
        session.reset();  // unmounts
        logger->log(core::LogLevel::info, "unmounted " + cfg.mountpoint);
    }
    cache.clear();
    purge_cache_dir(cache_dir);
    return rc == 0 ? exit_ok : exit_mount_failure;
}

}  // namespace

int run(int argc, const char* const* argv) {
    // Before the key is read: no core dumps or ptrace by other users of its memory.
    ::prctl(PR_SET_DUMPABLE, 0);
    ::umask(077);

    std::optional<Daemon> daemon;
    try {
        ParsedCommandLine parsed;
        try {
            parsed = parse_command_line(argc, argv);
        } catch (const UsageError& e) {
            throw Fatal{exit_usage, e.what()};
        }
        if (parsed.action == Action::help) {
            std::cout << help_text();
            return exit_ok;
        }
        if (parsed.action == Action::version) {
            std::cout << "mount.euphoria (euphoriafs) " << EUPHORIA_VERSION << "\n";
            return exit_ok;
        }
        const MountConfig& cfg = parsed.config;
        for (const auto& note : parsed.notes) std::cerr << "mount.euphoria: " << note << "\n";

        api::ClientConfig client_config;
        api::Secret redis_password;
        std::optional<core::redis::CacheCipher> cipher;  // the shared cache's keys
        client_config.endpoint = cfg.endpoint;
        client_config.tenant = cfg.tenant;
        client_config.ca_file = cfg.cafile;
        client_config.connect_timeout = std::chrono::seconds(cfg.timeout);
        client_config.stall_timeout = std::chrono::seconds(cfg.timeout);
        client_config.max_connections = cfg.max_concurrent;
        try {
            api::check_endpoint(cfg.endpoint);
            client_config.key = resolve_key(cfg, &redis_password);
            // Its keys come from the API key, which goes to the client next.
            if (cfg.redis_cache) cipher.emplace(client_config.key, cfg.tenant);
        } catch (const UsageError& e) {
            throw Fatal{exit_usage, e.what()};
        } catch (const api::ApiError& e) {
            throw Fatal{exit_usage, e.what()};
        }
        // Read now, before detaching, so a bad zone is a usage error on the terminal.
        std::optional<core::TimeZone> zone;
        if (cfg.listing && cfg.timezone.empty()) {
            zone = host_zone();
        } else if (cfg.listing) {
            try {
                zone = core::TimeZone::load(cfg.timezone);
            } catch (const std::exception& e) {
                throw Fatal{exit_usage, std::string("option timezone: ") + e.what()};
            }
        }
        check_mountpoint(cfg.mountpoint);
        check_not_mounted(cfg.tenant, cfg.mountpoint);
        check_cafile(cfg.cafile);
        const std::string cache_dir = cfg.cache_dir.empty() ? default_cache_dir(cfg.tenant) : cfg.cache_dir;

        // Parses the CAs: a cafile with no certificate is a usage error, like an
        // unreadable one.
        std::optional<api::CurlClient> made;
        try {
            made.emplace(std::move(client_config));
        } catch (const api::ApiError& e) {
            if (e.kind() != api::ErrorKind::config) throw;
            throw Fatal{exit_usage, e.what()};
        }
        api::CurlClient& client = *made;
        if (!cfg.nocheck) probe_in_turn(client, cfg, redis_password);
        if (cfg.fake) {
            if (cfg.verbose) std::cerr << "mount.euphoria: all checks passed; -f: not mounting\n";
            return exit_ok;
        }
        core::UniqueFd cache_lock;  // held until after the last purge
        try {
            cache_lock = prepare_cache_dir(cache_dir);
        } catch (const std::exception& e) {
            throw Fatal{exit_mount_failure, e.what()};
        }
        if (!cfg.foreground) daemon.emplace(Daemon::detach());
        return serve(cfg, client, cache_dir, zone, daemon, std::move(redis_password), cipher);
    } catch (const Fatal& f) {
        if (daemon) {
            daemon->failed(f.code, "mount.euphoria: " + f.message);
        } else {
            std::cerr << "mount.euphoria: " << f.message << "\n";
        }
        return f.code;
    } catch (const std::exception& e) {
        const std::string msg = std::string("mount.euphoria: ") + e.what();
        if (daemon) {
            daemon->failed(exit_mount_failure, msg);
        } else {
            std::cerr << msg << "\n";
        }
        return exit_mount_failure;
    }
}

}  // namespace euphoria::cli
