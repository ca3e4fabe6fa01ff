#include "catch_compat.hpp"

#include <cerrno>

#include "euphoria/core/retry.hpp"
#include "fakes.hpp"

using namespace euphoria;
using namespace std::chrono_literals;

TEST_CASE("backoff grows exponentially with jitter and a cap", "[retry]") {
    core::RetryPolicy p;
    p.base_delay = 100ms;
    p.max_delay = 1000ms;
    CHECK(p.delay(0, 0.0) == 50ms);
    CHECK(p.delay(0, 0.999) < 100ms);
    CHECK(p.delay(1, 0.0) == 100ms);
    CHECK(p.delay(2, 0.0) == 200ms);
    CHECK(p.delay(3, 1.0) == 800ms);
    CHECK(p.delay(10, 0.0) == 500ms);
    CHECK(p.delay(10, 1.0) == 1000ms);
    CHECK(p.delay(1000, 1.0) == 1000ms);
}

TEST_CASE("transient failures are retried until they succeed", "[retry]") {
    test::FakeClock clock;
    api::CancelToken cancel;
    core::RetryPolicy p;
    int calls = 0;
    core::run_with_retries(p, clock, [] { return 0.0; }, cancel, [&] {
        if (++calls < 3) throw api::ApiError(EIO, api::ErrorKind::network, "reset");
    });
    CHECK(calls == 3);
    CHECK(clock.sleeps() == std::vector<core::Clock::duration>{125ms, 250ms});
}

TEST_CASE("answers are not retried", "[retry]") {
    test::FakeClock clock;
    api::CancelToken cancel;
    int calls = 0;
    auto kind = GENERATE(api::ErrorKind::auth, api::ErrorKind::not_found, api::ErrorKind::rejected,
                         api::ErrorKind::tls, api::ErrorKind::malformed, api::ErrorKind::other_error,
                         api::ErrorKind::local);
    REQUIRE_THROWS_AS(core::run_with_retries(core::RetryPolicy{}, clock, {}, cancel, [&] {
                          ++calls;
                          throw api::ApiError(EIO, kind, "answer");
                      }),
                      api::ApiError);
    CHECK(calls == 1);
    CHECK(clock.sleeps().empty());
}

TEST_CASE("failing forever gives up after the retries, in bounded time", "[retry]") {
    test::FakeClock clock;
    api::CancelToken cancel;
    core::RetryPolicy p;
    p.retries = 5;
    int calls = 0;
    const auto start = clock.now();
    try {
        core::run_with_retries(p, clock, [] { return 0.99; }, cancel, [&] {
            ++calls;
            throw api::ApiError(EAGAIN, api::ErrorKind::busy, "busy");
        });
        FAIL("should have thrown");
    } catch (const api::ApiError& e) {
        CHECK(e.error_number() == EAGAIN);
    }
    CHECK(calls == 6);
    CHECK(clock.now() - start <= 5 * p.max_delay);
}

TEST_CASE("the time budget stops retries early", "[retry]") {
    test::FakeClock clock;
    api::CancelToken cancel;
    core::RetryPolicy p;
    p.retries = 100;
    p.budget = 3s;
    int calls = 0;
    CHECK_THROWS_AS(core::run_with_retries(p, clock, [] { return 0.5; }, cancel, [&] {
                        ++calls;
                        clock.advance(200ms);
                        throw api::ApiError(EIO, api::ErrorKind::server, "db");
                    }),
                    api::ApiError);
    CHECK(calls < 10);
    CHECK(clock.now() - core::Clock::time_point{} > 0s);
}

TEST_CASE("cancel during backoff ends the wait with EINTR", "[retry]") {
    test::FakeClock clock;
    api::CancelToken cancel;
    int calls = 0;
    try {
        core::run_with_retries(core::RetryPolicy{}, clock, {}, cancel, [&] {
            ++calls;
            cancel.cancel();
            throw api::ApiError(EIO, api::ErrorKind::network, "reset");
        });
        FAIL("should have thrown");
    } catch (const api::ApiError& e) {
        CHECK(e.error_number() == EINTR);
    }
    CHECK(calls == 1);
}
