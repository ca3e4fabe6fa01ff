#pragma once
// The command line: mount(8)'s calling convention (SPEC DIR [-sfnv] [-o OPTIONS]),
// with every -o option also accepted as a --long-option.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace euphoria::cli {

// Bad usage: exit code 1, with this message.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct MountConfig {
    std::string tenant;
    std::string mountpoint;
    std::string credentials;
    std::string endpoint;
    std::string cafile;
    unsigned cache_ttl = 30;
    std::uint64_t mem_cache_size = 64ull << 20;
    std::string cache_dir;  // empty: the default for the user
    std::uint64_t cache_size = 1ull << 30;
    unsigned max_concurrent = 3;
    unsigned timeout = 30;
    unsigned retries = 3;
    // Seconds a caller waits while the tenant answers "Concurrent API Calls Exceeded"
    // (backpressure, not a failure) before it gets EAGAIN. Separate from retries.
    unsigned busy_timeout = 60;
    // Requests (lookups, opens) that may wait for downloads at once; past it, EAGAIN.
    unsigned max_pending = 1024;
    // Seconds a download goes on after every waiter of it was interrupted, so that a
    // retried lookup of the same name joins it.
    unsigned interrupt_grace = 5;
    std::string name_pattern = "*";
    bool foreground = false;
    bool debug = false;
    bool allow_other = false;
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    mode_t umask = 0;
    bool nocheck = false;
    bool passthrough = true;  // FUSE passthrough for disk-cached recordings, when the kernel allows
    // Day folders from GetCallRecordings (nolisting turns them off).
    bool listing = true;
    std::string timezone;  // Area/City of the day folders; empty: the host's zone
    unsigned listing_days = 31;
    unsigned listing_page = 500;
    bool verify_md5 = false;  // verify=md5
    // A fleet's shared call budget: redis://host[:port][/db] or unix:///path; empty: none.
    std::string redis;
    unsigned redis_fallback = 1;  // calls in flight while Redis is unreachable
    unsigned redis_lease = 15;    // seconds a lease lasts unless renewed
    bool redis_cache = false;     // the fleet's shared, encrypted cache
    std::uint64_t redis_cache_max = 32ull << 20;  // larger recordings are not shared
    bool pcm = true;  // the pcm/ view (nopcm turns it off)
    // mount(8) flags
    bool sloppy = false;
    bool fake = false;
    bool verbose = false;
    // Kernel mount flags passed along by mount(8): nosuid, nodev, noexec.
    std::vector<std::string> kernel_flags;
};

enum class Action { mount, help, version };

struct ParsedCommandLine {
    Action action = Action::mount;
    MountConfig config;
    std::vector<std::string> notes;  // one-line notes for the user (rw, sloppy drops)
};

// Throws UsageError naming the offending option.
ParsedCommandLine parse_command_line(int argc, const char* const* argv);
std::string help_text();
std::uint64_t parse_size(const std::string& option, const std::string& value);

}  // namespace euphoria::cli
