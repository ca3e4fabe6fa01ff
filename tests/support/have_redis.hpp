#pragma once
// Whether a [redis] test can run: false (and a warning) outside CI when redis-server
// is missing; inside CI (CI=true), a failure, as for every end-to-end dependency.

#include <cstdlib>
#include <string>

#include "catch_compat.hpp"
#include "redis_server.hpp"

namespace euphoria::test {

inline bool have_redis() {
    if (!redis_server_binary().empty()) return true;
    // Read on the test's main thread, before it starts any other.
    const char* ci = std::getenv("CI");  // NOLINT(concurrency-mt-unsafe)
    if (ci && std::string(ci) == "true") FAIL("redis-server is missing in CI (tests/deps.sh)");
    WARN("redis-server is not installed: the Redis tests did not run");
    return false;
}

}  // namespace euphoria::test
