#include "euphoria/core/redis/address.hpp"

#include <charconv>
#include <stdexcept>

namespace euphoria::core::redis {

namespace {

unsigned parse_number(const std::string& text, unsigned max, const std::string& what,
                      const std::string& url) {
    unsigned v = 0;
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc() || ptr != end || v > max) {
        throw std::invalid_argument("option redis: bad " + what + " in '" + url + "'");
    }
    return v;
}

}  // namespace

bool tls_supported() noexcept {
    // Debian 12's hiredis 0.14 has no TLS at all; 1.x ships libhiredis_ssl, which the
    // build links when it finds it.
#ifdef EUPHORIA_REDIS_TLS
    return true;
#else
    return false;
#endif
}

std::string Address::describe() const {
    if (is_unix()) return "unix://" + unix_path + (db ? " db " + std::to_string(db) : "");
    return std::string(tls ? "rediss://" : "redis://") + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(port) + "/" + std::to_string(db);
}

Address parse_address(const std::string& url) {
    Address a;
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) {
        throw std::invalid_argument("option redis takes redis://host[:port][/db] or unix:///path, not '" +
                                    url + "'");
    }
    const std::string scheme = url.substr(0, scheme_end);
    std::string rest = url.substr(scheme_end + 3);
    if (scheme == "rediss") {
        if (!tls_supported()) {
            throw std::invalid_argument(
                "option redis: rediss:// (TLS) is refused, because this build has no TLS for "
                "Redis (its hiredis has no TLS support); use redis:// on a trusted network or a "
                "unix:/// socket, or a TLS tunnel such as stunnel");
        }
        a.tls = true;
    } else if (scheme != "redis" && scheme != "unix") {
        throw std::invalid_argument("option redis: unknown scheme '" + scheme +
                                    "' (redis://, unix:///)");
    }
    if (rest.find('@') != std::string::npos) {
        throw std::invalid_argument(
            "option redis: a password in the URL is refused: every user can read fstab and "
            "the command line (ps). Put redis_password=... in the credentials file");
    }
    if (rest.find_first_of("?#") != std::string::npos) {
        throw std::invalid_argument("option redis: no query or fragment is taken in '" + url + "'");
    }
    if (scheme == "unix") {
        if (rest.empty() || rest.front() != '/') {
            throw std::invalid_argument("option redis: unix:///path needs an absolute path, not '" +
                                        url + "'");
        }
        a.unix_path = rest;
        return a;
    }
    std::string authority = rest;
    if (const auto slash = rest.find('/'); slash != std::string::npos) {
        authority = rest.substr(0, slash);
        const std::string db = rest.substr(slash + 1);
        if (!db.empty()) a.db = parse_number(db, 1u << 20, "database number", url);
    }
    std::string port;
    bool has_port = false;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string::npos) {
            throw std::invalid_argument("option redis: unclosed [ in '" + url + "'");
        }
        a.host = authority.substr(1, close - 1);
        const std::string after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw std::invalid_argument("option redis: bad host in '" + url + "'");
            port = after.substr(1);
            has_port = true;
        }
    } else {
        const auto colon = authority.find(':');
        a.host = authority.substr(0, colon);
        if (colon != std::string::npos) {
            port = authority.substr(colon + 1);
            has_port = true;
        }
    }
    if (a.host.empty()) throw std::invalid_argument("option redis: no host in '" + url + "'");
    if (has_port) {
        a.port = static_cast<int>(parse_number(port, 65535, "port", url));
        if (a.port == 0) throw std::invalid_argument("option redis: bad port in '" + url + "'");
    }
    return a;
}

}  // namespace euphoria::core::redis
