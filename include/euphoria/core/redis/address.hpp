#pragma once
// Where the fleet's Redis is: -o redis=URL, checked before the mount starts.
//
// redis://host[:port][/db], rediss://host[:port][/db] and unix:///path are taken. A password in the URL is
// refused, as auth= is, because fstab and the command line are world-readable: it
// comes from the credentials file (redis_password=). rediss:// is refused by a build
// whose hiredis has no TLS (Debian 12's 0.14), rather than quietly talking in clear.

#include <string>

namespace euphoria::core::redis {

struct Address {
    std::string host;       // empty for a Unix socket
    int port = 6379;
    std::string unix_path;  // set for unix:///path
    unsigned db = 0;
    bool tls = false;       // rediss://: the server's certificate and name are verified
    // A CA bundle trusted for rediss:// besides the system's (the mount's cafile=);
    // empty for the system's alone.
    std::string ca_file;

    bool is_unix() const noexcept { return !unix_path.empty(); }
    // For the log: never holds a secret, since the URL cannot carry one.
    std::string describe() const;
};

// True when this build can talk TLS to Redis (hiredis_ssl linked and tested).
bool tls_supported() noexcept;

// Throws std::invalid_argument with a message for the user.
Address parse_address(const std::string& url);

}  // namespace euphoria::core::redis
