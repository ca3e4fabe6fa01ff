// -o redis=URL and its credentials (issue 12): what is taken, what is refused and why.

#include "catch_compat.hpp"

#include "euphoria/cli/credentials.hpp"
#include "euphoria/cli/options.hpp"
#include "euphoria/core/redis/address.hpp"

#include <hiredis/hiredis.h>  // HIREDIS_MAJOR: which hiredis the build found

using namespace euphoria;
using core::redis::parse_address;

namespace {

cli::ParsedCommandLine parse(std::vector<std::string> args) {
    args.insert(args.begin(), "mount.euphoria");
    std::vector<const char*> argv;
    argv.reserve(args.size());
    for (auto& a : args) argv.push_back(a.c_str());
    return cli::parse_command_line(static_cast<int>(argv.size()), argv.data());
}

std::string refusal(const std::vector<std::string>& args) {
    try {
        parse(args);
    } catch (const cli::UsageError& e) {
        return e.what();
    }
    return "accepted";
}

}  // namespace

TEST_CASE("redis URLs: host, port, db and Unix sockets", "[cli][fleet]") {
    auto a = parse_address("redis://cache.example:6380/2");
    CHECK(a.host == "cache.example");
    CHECK(a.port == 6380);
    CHECK(a.db == 2);
    CHECK_FALSE(a.is_unix());
    auto b = parse_address("redis://10.0.0.5");
    CHECK(b.port == 6379);
    CHECK(b.db == 0);
    auto c = parse_address("redis://[::1]:7000/");
    CHECK(c.host == "::1");
    CHECK(c.port == 7000);
    auto d = parse_address("unix:///run/redis/redis.sock");
    CHECK(d.is_unix());
    CHECK(d.unix_path == "/run/redis/redis.sock");
    CHECK(d.describe() == "unix:///run/redis/redis.sock");
    for (const char* bad : {"redis://", "redis://h:0", "redis://h:99999", "redis://h:x", "redis://h/db",
                            "http://h", "cache.example:6379", "unix://relative.sock", "redis://h?db=1"}) {
        INFO(bad);
        CHECK_THROWS_AS(parse_address(bad), std::invalid_argument);
    }
}

TEST_CASE("redis options: defaults, ranges, and no secret on the command line", "[cli][fleet]") {
    auto p = parse({"acme", "/mnt", "-o", "redis=redis://r1:6379/1,redis_fallback=2,redis_lease=30"});
    CHECK(p.config.redis == "redis://r1:6379/1");
    CHECK(p.config.redis_fallback == 2);
    CHECK(p.config.redis_lease == 30);
    auto q = parse({"acme", "/mnt", "--redis=unix:///run/redis.sock"});
    CHECK(q.config.redis_fallback == 1);
    CHECK(q.config.redis_lease == 15);
    CHECK(parse({"acme", "/mnt"}).config.redis.empty());

    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis=redis://user:pw@r1"}),
               Catch::Contains("password in the URL is refused") && Catch::Contains("redis_password="));
    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis=redis://:pw@r1"}), Catch::Contains("refused"));
    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis_password=pw"}),
               Catch::Contains("refused") && Catch::Contains("credentials file"));
    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis=redis://r1,redis_fallback=0"}),
               Catch::Contains("redis-fallback"));
    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis=redis://r1,redis_lease=2"}),
               Catch::Contains("redis-lease"));
}

TEST_CASE("redis options: the shared cache lives in the fleet's Redis, and has a bound", "[cli][fleet]") {
    auto p = parse({"acme", "/mnt", "-o", "redis=redis://r1,redis_cache"});
    CHECK(p.config.redis_cache);
    CHECK(p.config.redis_cache_max == 32u << 20);
    CHECK_FALSE(parse({"acme", "/mnt", "-o", "redis=redis://r1"}).config.redis_cache);
    CHECK(parse({"acme", "/mnt", "-o", "redis=redis://r1,redis_cache,redis_cache_max=4M"}).config.redis_cache_max ==
          4u << 20);
    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis_cache"}), Catch::Contains("needs redis=URL"));
    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis_cache_max=4M"}), Catch::Contains("needs redis=URL"));
    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis=redis://r1,redis_cache,redis_cache_max=2G"}),
               Catch::Contains("at most 1G"));
    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis=redis://r1,redis_cache,cache_ttl=0"}),
               Catch::Contains("cache_ttl=0 keeps nothing"));
    CHECK(parse({"acme", "/mnt", "-o", "redis=redis://r1,redis_cache,cache_ttl=5"}).config.cache_ttl == 5);
    CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis=redis://r1,redis_cache,redis_cache_max=lots"}),
               Catch::Contains("redis_cache_max"));
}

TEST_CASE("options: rediss:// where hiredis has TLS, refused with the reason where not", "[cli][fleet]") {
    // Debian's hiredis 1.x ships libhiredis_ssl, and the build must find it; 0.14 has none.
    CHECK(core::redis::tls_supported() == (HIREDIS_MAJOR >= 1));
    if (core::redis::tls_supported()) {
        auto p = parse({"acme", "/mnt", "-o", "redis=rediss://r1:6380/2"});
        CHECK(p.config.redis == "rediss://r1:6380/2");
        const auto a = core::redis::parse_address(p.config.redis);
        CHECK(a.tls);
        CHECK(a.host == "r1");
        CHECK(a.port == 6380);
        CHECK(a.db == 2);
        CHECK(a.describe() == "rediss://r1:6380/2");
        CHECK_FALSE(core::redis::parse_address("redis://r1").tls);
    } else {
        CHECK_THAT(refusal({"acme", "/mnt", "-o", "redis=rediss://r1:6380"}),
                   Catch::Contains("this build has no TLS for Redis"));
    }
}

TEST_CASE("credentials: redis_password= is read, and kept a secret", "[cli][fleet]") {
    auto c = cli::parse_credentials("auth=k\nredis_password = s3cret \n", "f");
    CHECK(c.key.reveal() == "k");
    CHECK(c.redis_password.reveal() == "s3cret");
    CHECK(cli::parse_credentials("auth=k\n", "f").redis_password.empty());
    try {
        cli::parse_credentials("auth=k\nredis_pasword=s3cret\n", "f");
        FAIL("accepted a misspelt setting");
    } catch (const cli::UsageError& e) {
        CHECK_THAT(e.what(), Catch::Contains("redis_password="));
        CHECK_THAT(e.what(), !Catch::Contains("s3cret"));
    }
}
