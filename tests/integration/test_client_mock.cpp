// The real client against the mock API over real TLS on 127.0.0.1.

#include "catch_compat.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include "euphoria/api/curl_client.hpp"
#include "euphoria/api/error.hpp"
#include "euphoria/api/trust_store.hpp"
#include "euphoria/core/retry.hpp"
#include "mock_server.hpp"

using namespace euphoria;
using namespace std::chrono_literals;

namespace {

struct StringSink final : api::Sink {
    std::string bytes;
    int resets = 0;
    int completes = 0;
    void reset() override {
        bytes.clear();
        ++resets;
    }
    void write(std::span<const std::byte> b) override {
        bytes.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    void complete() override { ++completes; }
};

api::ClientConfig config_for(test::MockServer& mock) {
    api::ClientConfig c;
    c.endpoint = mock.endpoint();
    c.tenant = test::mock_tenant;
    c.key = api::Secret(test::mock_key);
    c.ca_file = mock.ca_file();
    c.connect_timeout = 5s;
    c.stall_timeout = 5s;
    return c;
}

std::string pseudo_random(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    unsigned x = seed * 2654435761u + 1;
    for (auto& c : s) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x);
    }
    return s;
}

// The errno and kind a download ends with; 0 for success.
std::pair<int, api::ErrorKind> outcome(api::Client& client, const std::string& name,
                                       StringSink& sink) {
    api::CancelToken cancel;
    try {
        client.download(name, sink, cancel);
        return {0, api::ErrorKind::other_error};
    } catch (const api::ApiError& e) {
        return {e.error_number(), e.kind()};
    }
}

// Fails like a full cache disk once it holds `capacity` bytes, or sleeps in every
// write like a slow disk; counts what it was told.
struct TestSink final : api::Sink {
    std::string bytes;
    std::size_t capacity = std::string::npos;
    std::chrono::milliseconds delay{0};
    int completes = 0;
    void reset() override { bytes.clear(); }
    void write(std::span<const std::byte> b) override {
        if (delay.count() > 0) std::this_thread::sleep_for(delay);
        if (bytes.size() + b.size() > capacity) {
            throw api::ApiError(ENOSPC, api::ErrorKind::local, "the cache is full (cache_size)");
        }
        bytes.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    void complete() override { ++completes; }
};

test::MockServer& shared_mock() {
    static test::MockServer mock;
    return mock;
}

}  // namespace

TEST_CASE("downloads are byte-exact and reuse one TLS connection", "[client]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    const auto small = pseudo_random(6236, 1);
    const auto big = pseudo_random(3 << 20, 2);
    mock.add_recording("pbx4-1603469421.1196632-small.WAV", small);
    mock.add_recording("pbx4-1603469422.1196633-big.WAV", big);
    mock.reset_counters();

    api::CurlClient client(config_for(mock));
    for (int i = 0; i < 3; ++i) {
        StringSink a, b;
        REQUIRE(outcome(client, "pbx4-1603469421.1196632-small.WAV", a).first == 0);
        REQUIRE(outcome(client, "pbx4-1603469422.1196633-big.WAV", b).first == 0);
        CHECK(a.bytes == small);
        CHECK(b.bytes == big);
        CHECK(a.completes == 1);
    }
    CHECK(mock.stat("total_calls") == 6);
    CHECK(mock.stat("connections") == 1);
}

TEST_CASE("hostile names reach the server exactly", "[client][names]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    api::CurlClient client(config_for(mock));
    const std::string names[] = {
        "a&b <c> \"d\" 'e' ]]>.WAV",
        "x&amp;y.WAV",
        "<![CDATA[z]]>.WAV",
        "tab\there.WAV",
        "\xc3\xa9t\xc3\xa9 \xe2\x82\xac.WAV",
        std::string(250, 'n') + ".WAV",
        " leading and trailing space ",
    };
    unsigned seed = 10;
    for (const auto& name : names) {
        INFO(name);
        const auto bytes = pseudo_random(1000, ++seed);
        mock.add_recording(name, bytes);
        StringSink sink;
        REQUIRE(outcome(client, name, sink).first == 0);
        CHECK(sink.bytes == bytes);
    }
    // Names XML cannot carry are refused before anything is sent.
    mock.reset_counters();
    StringSink sink;
    CHECK(outcome(client, std::string("ctl\x01.WAV"), sink).first == EINVAL);
    CHECK(outcome(client, std::string("bad\xff.WAV"), sink).first == EINVAL);
    CHECK(mock.stat("total_calls") == 0);
}

TEST_CASE("every API error and fault maps to its errno", "[client][errors]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    mock.add_recording("fault.WAV", pseudo_random(300000, 7));
    api::CurlClient client(config_for(mock));
    struct Row {
        std::string fault;
        int err;
        api::ErrorKind kind;
    };
    const Row rows[] = {
        {"error:Authorization Failed", EACCES, api::ErrorKind::auth},
        {"error:Permission Denied", EACCES, api::ErrorKind::auth},
        {"error:That username is not part of this Tenant", ENOENT, api::ErrorKind::not_found},
        {"error:Incorrect Input Parameters. Please check documentation", ENOENT, api::ErrorKind::not_found},
        {"error:Concurrent API Calls Exceeded", EAGAIN, api::ErrorKind::busy},
        {"error:I'm sorry, connection to one or more of the databases failed", EIO, api::ErrorKind::server},
        {"error:Sip Server not found", EIO, api::ErrorKind::server},
        {"error:Input XML not loaded", EPROTO, api::ErrorKind::rejected},
        {"error:No Document Element", EPROTO, api::ErrorKind::rejected},
        {"error:No Action Defined", EPROTO, api::ErrorKind::rejected},
        {"error:Action Name Not Found", EPROTO, api::ErrorKind::rejected},
        {"error:Tuesday is not a valid day", EIO, api::ErrorKind::other_error},
        {"empty", ENOENT, api::ErrorKind::not_found},
        {"http:500", EIO, api::ErrorKind::http_status},
        {"http:503", EIO, api::ErrorKind::http_status},
        {"http:429", EIO, api::ErrorKind::http_status},
        {"http:302", EIO, api::ErrorKind::other_error},  // redirects are never followed
        {"http:404", EIO, api::ErrorKind::other_error},
        {"html", EIO, api::ErrorKind::malformed},
        {"garbage", EIO, api::ErrorKind::malformed},
        {"corrupt", EIO, api::ErrorKind::malformed},
        {"doctype", EIO, api::ErrorKind::malformed},
        {"truncate:1000", EIO, api::ErrorKind::network},
        {"truncate:-10", EIO, api::ErrorKind::network},
        {"reset", EIO, api::ErrorKind::network},
    };
    for (const auto& row : rows) {
        INFO(row.fault);
        mock.fault("fault.WAV", row.fault, 1);
        StringSink sink;
        auto [err, kind] = outcome(client, "fault.WAV", sink);
        CHECK(err == row.err);
        CHECK(api::to_string(kind) == api::to_string(row.kind));
        CHECK(sink.completes == 0);
    }
    StringSink sink;
    CHECK(outcome(client, "no-such-recording.WAV", sink).first == ENOENT);
    CHECK(outcome(client, "fault.WAV", sink).first == 0);  // the faults were one-shot
}

TEST_CASE("a wrong key is EACCES, and the server text is kept", "[client][errors]") {
    auto& mock = shared_mock();
    auto cfg = config_for(mock);
    cfg.key = api::Secret("wrong-key");
    api::CurlClient client(std::move(cfg));
    StringSink sink;
    api::CancelToken cancel;
    try {
        client.download("any.WAV", sink, cancel);
        FAIL("expected an error");
    } catch (const api::ApiError& e) {
        CHECK(e.error_number() == EACCES);
        CHECK(e.server_text() == "Authorization Failed");
        CHECK(std::string(e.what()).find("wrong-key") == std::string::npos);
    }
}

TEST_CASE("transient faults are retried and recover; failing forever gives up", "[client][retry]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    mock.add_recording("flaky.WAV", pseudo_random(5000, 3));
    api::CurlClient client(config_for(mock));
    core::SystemClock clock;
    core::RetryPolicy policy;
    policy.base_delay = 20ms;
    policy.max_delay = 100ms;
    api::CancelToken cancel;

    mock.fault("flaky.WAV", "http:503", 2);
    mock.reset_counters();
    StringSink sink;
    core::run_with_retries(policy, clock, core::default_jitter(), cancel,
                           [&] { client.download("flaky.WAV", sink, cancel); });
    CHECK(sink.bytes == pseudo_random(5000, 3));
    CHECK(mock.stat("total_calls") == 3);

    mock.fault("flaky.WAV", "error:I'm sorry, connection to one or more of the databases failed", -1);
    mock.reset_counters();
    CHECK_THROWS_AS(core::run_with_retries(policy, clock, core::default_jitter(), cancel,
                                           [&] { client.download("flaky.WAV", sink, cancel); }),
                    api::ApiError);
    CHECK(mock.stat("total_calls") == 4);  // one call and three retries
    mock.clear_faults();
}

TEST_CASE("an http:// endpoint is refused before any request", "[client][tls]") {
    auto& mock = shared_mock();
    mock.reset_counters();
    auto cfg = config_for(mock);
    cfg.endpoint = "http://127.0.0.1:" + std::to_string(mock.api_port()) + "/Euphoria.Api.aspx";
    try {
        api::CurlClient client(std::move(cfg));
        FAIL("http:// accepted");
    } catch (const api::ApiError& e) {
        CHECK(e.kind() == api::ErrorKind::config);
        CHECK(std::string(e.what()).find("https://") != std::string::npos);
    }
    CHECK(mock.stat("connections") == 0);
}

TEST_CASE("TLS is verified: without the mock's CA the call fails", "[client][tls]") {
    auto& mock = shared_mock();
    auto cfg = config_for(mock);
    cfg.ca_file.clear();
    api::CurlClient client(std::move(cfg));
    StringSink sink;
    auto [err, kind] = outcome(client, "any.WAV", sink);
    CHECK(err == EIO);
    CHECK(api::to_string(kind) == "tls");
}

TEST_CASE("a cafile that holds no certificate is refused when the client is made", "[client][tls]") {
    auto& mock = shared_mock();
    const std::string bad = mock.ca_file() + ".not-pem";
    {
        std::ofstream out(bad);
        out << "this is no certificate\n";
    }
    auto cfg = config_for(mock);
    cfg.ca_file = bad;
    try {
        api::CurlClient client(std::move(cfg));
        FAIL("a cafile without a certificate was accepted");
    } catch (const api::ApiError& e) {
        CHECK(e.kind() == api::ErrorKind::config);
        CHECK(std::string(e.what()).find("holds no PEM certificate") != std::string::npos);
    }
    CHECK(std::remove(bad.c_str()) == 0);
}

TEST_CASE("the cafile is read when the client is made, not by each connection", "[client][tls]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    mock.add_recording("trust.WAV", pseudo_random(5000, 9));
    // A copy of the mock's CA that is wiped once the client is made.
    const std::string copy = mock.ca_file() + ".copy";
    {
        std::ifstream in(mock.ca_file(), std::ios::binary);
        std::ofstream out(copy, std::ios::binary);
        out << in.rdbuf();
    }
    auto cfg = config_for(mock);
    cfg.ca_file = copy;
    cfg.max_connections = 0;  // no warm connection: every call makes a new one
    api::CurlClient client(std::move(cfg));
    { std::ofstream wipe(copy, std::ios::trunc); }
    mock.reset_counters();
    for (int i = 0; i < 3; ++i) {
        StringSink sink;
        REQUIRE(outcome(client, "trust.WAV", sink).first == 0);
        CHECK(sink.bytes == pseudo_random(5000, 9));
    }
    CHECK(mock.stat("connections") == 3);
    CHECK(mock.stat("handshakes") == 3);
    CHECK(std::remove(copy.c_str()) == 0);
}

TEST_CASE("trust store: only what its sources hold is trusted", "[client][tls]") {
    auto& mock = shared_mock();
    const auto system = api::TrustStore::defaults("");
    // Debian's ca-certificates, which the test dependencies install.
    REQUIRE_FALSE(system.system_bundle.empty());
    const api::TrustStore with_extra(api::TrustStore::defaults(mock.ca_file()));
    const api::TrustStore system_only(system);
    CHECK(system_only.certificates() > 50);
    CHECK(with_extra.certificates() == system_only.certificates() + 1);
    const api::TrustStore extra_only(api::TrustSources{"", "", mock.ca_file()});
    CHECK(extra_only.certificates() == 1);
    CHECK(api::TrustStore(api::TrustSources{}).certificates() == 0);

    // Every connection shares the one parsed store instead of parsing its own.
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> a(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> b(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
    REQUIRE(a);
    REQUIRE(b);
    api::TrustStore shared(api::TrustStore::defaults(mock.ca_file()));
    shared.install(a.get());
    shared.install(b.get());
    CHECK(SSL_CTX_get_cert_store(a.get()) == SSL_CTX_get_cert_store(b.get()));
    a.reset();  // the store outlives a connection that used it, whole
    CHECK(sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(b.get()))) ==
          shared.certificates());
}

TEST_CASE("a stalled reply times out; a cancelled one returns at once", "[client][timeout]") {
    // Its own mock: a stalled reply keeps its server thread, and a slot, for a while.
    test::MockServer mock;
    mock.add_recording("stall.WAV", pseudo_random(400000, 5));
    auto cfg = config_for(mock);
    cfg.stall_timeout = 1s;
    api::CurlClient client(std::move(cfg));

    mock.fault("stall.WAV", "stall:4", 1);
    StringSink sink;
    auto [err, kind] = outcome(client, "stall.WAV", sink);
    CHECK(err == ETIMEDOUT);
    CHECK(sink.completes == 0);

    mock.fault("stall.WAV", "stall:20", 1);
    api::CancelToken cancel;
    auto started = std::chrono::steady_clock::now();
    auto call = std::async(std::launch::async, [&] {
        try {
            client.download("stall.WAV", sink, cancel);
            return 0;
        } catch (const api::ApiError& e) {
            return e.error_number();
        }
    });
    std::this_thread::sleep_for(300ms);
    const auto cancelled_at = std::chrono::steady_clock::now();
    cancel.cancel();
    // Generous: this proves the wait ends on cancel, not on the 20 s stall or the 1 s timer.
    REQUIRE(call.wait_for(5s) == std::future_status::ready);
    CHECK(call.get() == EINTR);
    INFO("cancel took " << std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - cancelled_at).count() << " ms");
    CHECK(std::chrono::steady_clock::now() - started < 20s);
}

TEST_CASE("the mock enforces three calls in flight per tenant", "[client][limit]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    mock.add_recording("slow.WAV", pseudo_random(1000, 9));
    mock.configure(R"({"latency": 1.0})");
    mock.reset_counters();
    std::vector<std::future<int>> calls;
    for (int i = 0; i < 4; ++i) {
        calls.push_back(std::async(std::launch::async, [&] {
            api::CurlClient client(config_for(mock));
            StringSink sink;
            return outcome(client, "slow.WAV", sink).first;
        }));
    }
    int ok = 0, busy = 0;
    for (auto& c : calls) {
        const int e = c.get();
        ok += e == 0;
        busy += e == EAGAIN;
    }
    mock.configure(R"({"latency": 0})");
    CHECK(ok == 3);
    CHECK(busy == 1);
    CHECK(mock.stat("exceeded") == 1);
    CHECK(mock.stat("max_in_flight") == 3);
}

// Bodies past 512 KiB are parsed and decoded on a stage thread (api::ByteStage).
TEST_CASE("replies are byte-exact on both sides of the pipeline's inline limit", "[client][pipeline]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    api::CurlClient client(config_for(mock));
    // 300000 bytes are 400000 of base64, parsed inline; 400000 are 533336, staged.
    for (const std::size_t size : {std::size_t{1}, std::size_t{300000}, std::size_t{393000},
                                   std::size_t{400000}, std::size_t{9} << 20}) {
        INFO("size " << size);
        const auto bytes = pseudo_random(size, static_cast<unsigned>(size));
        mock.add_recording("pipe.WAV", bytes);
        for (int i = 0; i < 2; ++i) {
            StringSink sink;
            REQUIRE(outcome(client, "pipe.WAV", sink).first == 0);
            CHECK(sink.bytes == bytes);
            CHECK(sink.completes == 1);
        }
    }
    mock.configure(R"({"wrap": 76})");
    const auto wrapped = pseudo_random(3 << 20, 77);
    mock.add_recording("pipe-wrapped.WAV", wrapped);
    StringSink sink;
    CHECK(outcome(client, "pipe-wrapped.WAV", sink).first == 0);
    mock.configure(R"({"wrap": 0})");
    CHECK(sink.bytes == wrapped);
}

TEST_CASE("faults in a large reply map as in a small one, never to complete()", "[client][pipeline][errors]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    mock.add_recording("big-fault.WAV", pseudo_random(3 << 20, 8));
    api::CurlClient client(config_for(mock));
    struct Row {
        std::string fault;
        int err;
        api::ErrorKind kind;
    };
    const Row rows[] = {
        {"corrupt", EIO, api::ErrorKind::malformed},        // found by the stage thread
        {"truncate:-10", EIO, api::ErrorKind::network},     // cut inside </XML>
        {"truncate:2000000", EIO, api::ErrorKind::network}, // cut mid-audio, past the limit
        {"truncate:1000", EIO, api::ErrorKind::network},    // cut before the stage starts
    };
    for (const auto& row : rows) {
        INFO(row.fault);
        mock.fault("big-fault.WAV", row.fault, 1);
        StringSink sink;
        auto [err, kind] = outcome(client, "big-fault.WAV", sink);
        CHECK(err == row.err);
        CHECK(api::to_string(kind) == api::to_string(row.kind));
        CHECK(sink.completes == 0);
    }
    StringSink sink;
    CHECK(outcome(client, "big-fault.WAV", sink).first == 0);
    CHECK(sink.completes == 1);
}

TEST_CASE("a sink that fails mid-stream fails the call with its own error", "[client][pipeline]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    const auto bytes = pseudo_random(6 << 20, 12);
    mock.add_recording("enospc.WAV", bytes);
    api::CurlClient client(config_for(mock));
    for (const std::size_t capacity : {std::size_t{100000}, std::size_t{2} << 20}) {
        INFO("fails past " << capacity);
        TestSink sink;
        sink.capacity = capacity;
        api::CancelToken cancel;
        try {
            client.download("enospc.WAV", sink, cancel);
            FAIL("expected ENOSPC");
        } catch (const api::ApiError& e) {
            CHECK(e.error_number() == ENOSPC);
            CHECK(api::to_string(e.kind()) == "local");
            CHECK(std::string(e.what()) == "the cache is full (cache_size)");
        }
        CHECK(sink.completes == 0);
    }
    // The stage was joined and the client is whole: the next call is byte-exact.
    TestSink sink;
    api::CancelToken cancel;
    client.download("enospc.WAV", sink, cancel);
    CHECK(sink.bytes == bytes);
    CHECK(sink.completes == 1);
}

TEST_CASE("a slow sink fills the ring; cancel still returns at once", "[client][pipeline][timeout]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    const auto bytes = pseudo_random(16 << 20, 13);
    mock.add_recording("slow-sink.WAV", bytes);
    auto cfg = config_for(mock);
    cfg.stall_timeout = 1s;
    api::CurlClient client(std::move(cfg));

    // 64 KiB every 30 ms: some 8 s for all of it, far past the stall timeout, which a
    // slow sink must not trip. The ring (2 MiB) fills, and the receiver waits on it.
    TestSink sink;
    sink.delay = 30ms;
    api::CancelToken cancel;
    auto call = std::async(std::launch::async, [&] {
        try {
            client.download("slow-sink.WAV", sink, cancel);
            return 0;
        } catch (const api::ApiError& e) {
            return e.error_number();
        }
    });
    REQUIRE(call.wait_for(2500ms) == std::future_status::timeout);
    const auto cancelled_at = std::chrono::steady_clock::now();
    cancel.cancel();
    REQUIRE(call.wait_for(5s) == std::future_status::ready);
    const auto took = std::chrono::steady_clock::now() - cancelled_at;
    INFO("cancel took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(call.get() == EINTR);
    // Generous for TSan: one sink write and a wake-up, not the 2 MiB the ring holds.
    CHECK(took < 1s);
    CHECK(sink.completes == 0);
    CHECK(sink.bytes.size() < bytes.size());
}

TEST_CASE("a slow sink is not a stalled server", "[client][pipeline][timeout]") {
    auto& mock = shared_mock();
    mock.clear_faults();
    const auto bytes = pseudo_random(5 << 20, 14);
    mock.add_recording("slow-ok.WAV", bytes);
    auto cfg = config_for(mock);
    cfg.stall_timeout = 1s;
    api::CurlClient client(std::move(cfg));
    TestSink sink;
    sink.delay = 25ms;  // 80 writes: 2 s, twice the stall timeout
    api::CancelToken cancel;
    client.download("slow-ok.WAV", sink, cancel);
    CHECK(sink.bytes == bytes);
    CHECK(sink.completes == 1);
}
