#include "euphoria/cli/options.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <charconv>
#include <sstream>

#include "euphoria/api/curl_client.hpp"
#include "euphoria/core/redis/address.hpp"

namespace po = boost::program_options;

namespace euphoria::cli {

namespace {

// Options mount(8) and fstab pass along that mean nothing more to a FUSE mount.
bool is_dropped_mount_option(const std::string& key) {
    static const char* const dropped[] = {"ro",    "defaults", "_netdev", "nofail", "auto",
                                          "noauto", "user",    "users",   "nouser", "async",
                                          "atime", "noatime",  "relatime", "nodiratime",
                                          "suid",  "dev",      "exec",    "nofail"};
    if (std::find(std::begin(dropped), std::end(dropped), key) != std::end(dropped)) return true;
    return key.rfind("x-systemd.", 0) == 0 || key.rfind("x-", 0) == 0 || key == "comment";
}

bool is_kernel_flag(const std::string& key) {
    return key == "nosuid" || key == "nodev" || key == "noexec";
}

po::options_description mount_options() {
    po::options_description d("Options (as -o name=value or --name=value)");
    // Each is also reachable as -o name_with_underscores.
    d.add_options()
        ("credentials", po::value<std::string>(), "file holding auth=KEY (and tenant=NAME); must be mode 0600")
        ("endpoint", po::value<std::string>(), "API endpoint, https only (default https://api.euphoria.co.za/Euphoria.Api.aspx)")
        ("cafile", po::value<std::string>(), "extra CA bundle to trust, besides the system's")
        ("cache-ttl", po::value<unsigned>(), "seconds a recording stays cached, 0 to 30 (default 30)")
        ("mem-cache-size", po::value<std::string>(), "memory tier cap, e.g. 64M (default 64M)")
        ("cache-dir", po::value<std::string>(), "disk tier folder (default /var/cache/euphoria/TENANT, or $XDG_CACHE_HOME/euphoria/TENANT)")
        ("cache-size", po::value<std::string>(), "disk tier cap, e.g. 1G (default 1G)")
        ("max-concurrent", po::value<unsigned>(), "upstream calls in flight, 1 to 3 (default 3)")
        ("timeout", po::value<unsigned>(), "connect and stall timeout in seconds, 1 to 3600 (default 30)")
        ("retries", po::value<unsigned>(), "retries of a transient failure, 0 to 10 (default 3)")
        ("busy-timeout", po::value<unsigned>(), "seconds a read waits while the tenant is busy (Concurrent API Calls Exceeded) before EAGAIN, 0 to 3600 (default 60)")
        ("max-pending", po::value<unsigned>(), "lookups and opens that may wait for downloads at once, more get EAGAIN, 1 to 65536 (default 1024)")
        ("interrupt-grace", po::value<unsigned>(), "seconds a download goes on once all its readers were interrupted, 0 to 60 (default 5)")
        ("name-pattern", po::value<std::string>(), "glob of names that may go upstream (default *)")
        ("foreground", "stay in the foreground and log to stderr")
        ("debug", "verbose logging, including libfuse's; implies foreground")
        ("allow-other", "let other users in (the kernel then enforces the modes)")
        ("uid", po::value<uid_t>(), "owner of the files (default: the mounting user)")
        ("gid", po::value<gid_t>(), "group of the files (default: the mounting user's)")
        ("umask", po::value<std::string>(), "octal umask applied to 0555/0444 (default 0)")
        ("nocheck", "skip the start-up probe call (for boot without network)")
        ("nopassthrough", "serve every read through the daemon, never by FUSE passthrough")
        ("timezone", po::value<std::string>(), "zone of the day folders, e.g. Europe/Paris (default: the host's)")
        ("listing-days", po::value<unsigned>(), "day folders the root shows, 0 to 3660 (default 31)")
        ("listing-page", po::value<unsigned>(), "records asked for per listing call, 1 to 10000 (default 500)")
        ("verify", po::value<std::string>(), "md5: a download whose MD5 is not the listing's is EIO (default: logged and counted only)")
        ("nolisting", "no day folders and no by-id: only names already known can be read")
        ("redis", po::value<std::string>(), "share the tenant's call budget with other mounts through Redis: redis://host[:port][/db], rediss://host[:port][/db] (TLS, where hiredis has it) or unix:///path (no password: redis_password= in the credentials file)")
        ("redis-fallback", po::value<unsigned>(), "calls in flight while Redis is unreachable, 1 to 3 (default 1)")
        ("redis-lease", po::value<unsigned>(), "seconds a shared-budget lease lasts unless renewed, 3 to 300 (default 15)")
        ("redis-cache", "with redis=: share downloads with the other mounts, encrypted under the API key, for what is left of their 30 seconds (one call per recording across the fleet)")
        ("redis-cache-max", po::value<std::string>(), "largest recording the shared cache holds, e.g. 32M (default 32M, at most 1G)")
        ("nopcm", "no pcm/ folder (each recording also as 16-bit PCM WAV, decoded from GSM, A-law or mu-law)");
    return d;
}

po::options_description general_options() {
    po::options_description d("General");
    d.add_options()
        ("help,h", "show this help")
        ("version,V", "show the version")
        ("sloppy,s", "mount(8): ignore unknown options with a warning")
        ("fake,f", "mount(8): validate everything and the key, mount nothing")
        ("no-mtab,n", "mount(8): accepted and ignored")
        ("verbose,v", "mount(8): say more")
        ("options,o", po::value<std::vector<std::string>>()->composing(), "comma-separated options");
    return d;
}

std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(s);
    while (std::getline(in, item, ',')) {
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

template <class T>
T in_range(const po::variables_map& vm, const char* name, T lo, T hi) {
    const T v = vm[name].as<T>();
    if (v < lo || v > hi) {
        throw UsageError(std::string("option ") + name + " must be between " + std::to_string(lo) +
                         " and " + std::to_string(hi) + ", not " + std::to_string(v));
    }
    return v;
}

}  // namespace

std::uint64_t parse_size(const std::string& option, const std::string& value) {
    std::uint64_t n = 0;
    const auto* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, n);
    std::uint64_t mult = 1;
    if (ec == std::errc() && ptr != end && ptr + 1 == end) {
        switch (*ptr) {
        case 'k': case 'K': mult = 1ull << 10; break;
        case 'm': case 'M': mult = 1ull << 20; break;
        case 'g': case 'G': mult = 1ull << 30; break;
        case 't': case 'T': mult = 1ull << 40; break;
        default: ec = std::errc::invalid_argument;
        }
        ++ptr;
    }
    if (ec != std::errc() || ptr != end || n == 0 || n > (UINT64_MAX / mult)) {
        throw UsageError("option " + option + " takes a size such as 512K, 64M or 1G, not '" +
                         value + "'");
    }
    return n * mult;
}

std::string help_text() {
    std::ostringstream out;
    out << "Usage: mount.euphoria TENANT MOUNTPOINT [-sfnv] [-o option[,option...]]\n"
           "       mount -t euphoria TENANT MOUNTPOINT -o credentials=FILE\n\n"
           "Mounts the call recordings of one Euphoria PBX tenant as a read-only folder.\n"
           "Looking up a name fetches that recording; it is cached for cache_ttl seconds.\n\n"
        << mount_options() << "\n"
        << general_options() << "\n"
        << "mount(8) options such as rw, ro, defaults, _netdev, nofail, noauto, user,\n"
           "nosuid, nodev, noexec, x-systemd.* and comment=* are accepted.\n"
           "The key is never taken from the command line: use credentials=FILE or the\n"
           "EUPHORIA_AUTH environment variable.\n\n"
           "Exit status: 0 mounted, 1 bad usage or permissions, 32 mount failure.\n"
           "See mount.euphoria(8).\n";
    return out.str();
}

namespace {

ParsedCommandLine parse(int argc, const char* const* argv) {
    ParsedCommandLine result;
    auto& cfg = result.config;

    po::options_description visible;
    visible.add(general_options()).add(mount_options());
    po::options_description all = visible;
    all.add_options()("positional", po::value<std::vector<std::string>>(), "");
    po::positional_options_description positional;
    positional.add("positional", -1);

    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv)
                  .options(all)
                  .positional(positional)
                  .style(po::command_line_style::default_style &
                         ~po::command_line_style::allow_guessing)
                  .run(),
              vm);
    if (vm.count("help")) {
        result.action = Action::help;
        return result;
    }
    if (vm.count("version")) {
        result.action = Action::version;
        return result;
    }
    cfg.sloppy = vm.count("sloppy") > 0;
    cfg.fake = vm.count("fake") > 0;
    cfg.verbose = vm.count("verbose") > 0;

    // Turn -o items into --long options, so both spellings share one parser.
    std::vector<std::string> long_args{"mount.euphoria"};
    const auto mount_desc = mount_options();
    if (vm.count("options")) {
        for (const auto& group : vm["options"].as<std::vector<std::string>>()) {
            for (const auto& item : split_commas(group)) {
                const auto eq = item.find('=');
                const std::string key = item.substr(0, eq);
                if (key.empty()) throw UsageError("empty option name in -o " + group);
                if (key == "auth" || key == "key") {
                    throw UsageError("option " + key +
                                     "= is refused: every user can read the command line "
                                     "(ps). Put auth=KEY in a mode 0600 file and pass "
                                     "credentials=FILE, or set EUPHORIA_AUTH");
                }
                if (key == "redis_password" || key == "redis-password") {
                    throw UsageError("option " + key +
                                     "= is refused: every user can read fstab and the command "
                                     "line (ps). Put redis_password=... in the credentials file");
                }
                if (key == "rw") {
                    result.notes.push_back("note: rw ignored, euphoria mounts are always read-only");
                    continue;
                }
                if (is_kernel_flag(key)) {
                    cfg.kernel_flags.push_back(key);
                    continue;
                }
                if (is_dropped_mount_option(key)) continue;
                std::string dashed = key;
                std::replace(dashed.begin(), dashed.end(), '_', '-');
                if (!mount_desc.find_nothrow(dashed, false)) {
                    if (cfg.sloppy) {
                        result.notes.push_back("warning: ignoring unknown option " + key);
                        continue;
                    }
                    throw UsageError("unknown option " + key + " (see --help)");
                }
                long_args.push_back("--" + dashed + (eq == std::string::npos ? "" : item.substr(eq)));
            }
        }
    }
    {
        po::variables_map from_o;
        std::vector<const char*> cargv;
        cargv.reserve(long_args.size());
        for (auto& s : long_args) cargv.push_back(s.c_str());
        po::store(po::command_line_parser(static_cast<int>(cargv.size()), cargv.data())
                      .options(mount_desc)
                      .style(po::command_line_style::default_style &
                             ~po::command_line_style::allow_guessing)
                      .run(),
                  from_o);
        // Values given as --long options on the command line win over -o.
        for (auto& [k, v] : from_o) {
            if (!vm.count(k)) vm.insert({k, v});
        }
        po::notify(vm);
    }

    std::vector<std::string> pos;
    if (vm.count("positional")) pos = vm["positional"].as<std::vector<std::string>>();
    if (pos.size() != 2) {
        throw UsageError("expected TENANT and MOUNTPOINT (see --help)");
    }
    cfg.tenant = pos[0];
    cfg.mountpoint = pos[1];
    if (cfg.tenant.empty() || cfg.tenant.find_first_of("/<>&\"' \t\n") != std::string::npos) {
        throw UsageError("TENANT must be the tenant's one-word name, not '" + cfg.tenant + "'");
    }
    // The tenant names the default cache folder (/var/cache/euphoria/TENANT): "." and
    // ".." would make that the parent folder itself, or the one above it.
    if (cfg.tenant == "." || cfg.tenant == "..") {
        throw UsageError("TENANT must be the tenant's one-word name, not '" + cfg.tenant +
                         "': '.' and '..' name folders, not tenants");
    }

    auto str = [&](const char* name, std::string& out) {
        if (vm.count(name)) out = vm[name].as<std::string>();
    };
    str("credentials", cfg.credentials);
    str("endpoint", cfg.endpoint);
    str("cafile", cfg.cafile);
    str("cache-dir", cfg.cache_dir);
    str("name-pattern", cfg.name_pattern);
    str("timezone", cfg.timezone);
    if (vm.count("listing-days")) cfg.listing_days = in_range<unsigned>(vm, "listing-days", 0, 3660);
    if (vm.count("listing-page")) cfg.listing_page = in_range<unsigned>(vm, "listing-page", 1, 10000);
    if (vm.count("verify")) {
        const auto v = vm["verify"].as<std::string>();
        if (v != "md5") throw UsageError("option verify takes md5, not '" + v + "'");
        cfg.verify_md5 = true;
    }
    cfg.listing = vm.count("nolisting") == 0;
    if (vm.count("redis")) {
        cfg.redis = vm["redis"].as<std::string>();
        try {
            (void)core::redis::parse_address(cfg.redis);
        } catch (const std::invalid_argument& e) {
            throw UsageError(e.what());
        }
    }
    if (vm.count("redis-fallback")) cfg.redis_fallback = in_range<unsigned>(vm, "redis-fallback", 1, 3);
    if (vm.count("redis-lease")) cfg.redis_lease = in_range<unsigned>(vm, "redis-lease", 3, 300);
    cfg.redis_cache = vm.count("redis-cache") > 0;
    if (vm.count("redis-cache-max")) {
        cfg.redis_cache_max = parse_size("redis_cache_max", vm["redis-cache-max"].as<std::string>());
        if (cfg.redis_cache_max > (1ull << 30)) throw UsageError("option redis_cache_max is at most 1G");
    }
    cfg.pcm = vm.count("nopcm") == 0;
    if (cfg.endpoint.empty()) cfg.endpoint = std::string(api::default_endpoint);
    if (vm.count("cache-ttl")) cfg.cache_ttl = in_range<unsigned>(vm, "cache-ttl", 0, 30);
    if ((cfg.redis_cache || vm.count("redis-cache-max")) && cfg.redis.empty()) {
        throw UsageError("option redis_cache needs redis=URL: the cache is kept in the fleet's Redis");
    }
    // Such a mount would claim names and share nothing: the fleet would wait for it.
    if (cfg.redis_cache && cfg.cache_ttl == 0) {
        throw UsageError("option redis_cache shares what the cache keeps, and cache_ttl=0 keeps nothing");
    }
    if (vm.count("max-concurrent")) cfg.max_concurrent = in_range<unsigned>(vm, "max-concurrent", 1, 3);
    if (vm.count("timeout")) cfg.timeout = in_range<unsigned>(vm, "timeout", 1, 3600);
    if (vm.count("retries")) cfg.retries = in_range<unsigned>(vm, "retries", 0, 10);
    if (vm.count("busy-timeout")) cfg.busy_timeout = in_range<unsigned>(vm, "busy-timeout", 0, 3600);
    if (vm.count("max-pending")) cfg.max_pending = in_range<unsigned>(vm, "max-pending", 1, 65536);
    if (vm.count("interrupt-grace")) {
        cfg.interrupt_grace = in_range<unsigned>(vm, "interrupt-grace", 0, 60);
    }
    if (vm.count("mem-cache-size")) {
        cfg.mem_cache_size = parse_size("mem_cache_size", vm["mem-cache-size"].as<std::string>());
    }
    if (vm.count("cache-size")) {
        cfg.cache_size = parse_size("cache_size", vm["cache-size"].as<std::string>());
    }
    cfg.debug = vm.count("debug") > 0;
    cfg.foreground = vm.count("foreground") > 0 || cfg.debug;
    cfg.allow_other = vm.count("allow-other") > 0;
    cfg.nocheck = vm.count("nocheck") > 0;
    cfg.passthrough = vm.count("nopassthrough") == 0;
    if (vm.count("uid")) cfg.uid = vm["uid"].as<uid_t>();
    if (vm.count("gid")) cfg.gid = vm["gid"].as<gid_t>();
    if (vm.count("umask")) {
        const auto text = vm["umask"].as<std::string>();
        unsigned v = 0;
        auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 8);
        if (ec != std::errc() || ptr != text.data() + text.size() || v > 0777) {
            throw UsageError("option umask takes an octal mode such as 022, not '" + text + "'");
        }
        cfg.umask = static_cast<mode_t>(v);
    }
    if (cfg.name_pattern.empty()) throw UsageError("option name_pattern must not be empty");
    if (vm.count("timezone") && cfg.timezone.empty()) throw UsageError("option timezone must not be empty");
    return result;
}

}  // namespace

ParsedCommandLine parse_command_line(int argc, const char* const* argv) {
    // Boost reports bad usage from several places (an ambiguous or malformed option
    // while matching -o items, too): every one of them is bad usage.
    try {
        return parse(argc, argv);
    } catch (const po::error_with_option_name& e) {
        // Not e.what(): Boost substitutes the value into its message template and
        // loops forever when the value itself holds "%value%" (found by fuzzing).
        const std::string option = e.get_option_name();
        if (dynamic_cast<const po::unknown_option*>(&e)) {
            throw UsageError("unknown option " + option + " (see --help)");
        }
        if (dynamic_cast<const po::validation_error*>(&e)) {
            throw UsageError("option " + option + " has an invalid value (see --help)");
        }
        throw UsageError("bad use of option " + option + " (see --help)");
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
}

}  // namespace euphoria::cli
