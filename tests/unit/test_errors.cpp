#include "catch_compat.hpp"

#include <cerrno>

#include "euphoria/api/error.hpp"
#include "euphoria/core/names.hpp"

using namespace euphoria;

TEST_CASE("every documented <Error> text maps to its errno and retry class", "[errors]") {
    struct Row {
        const char* text;
        int err;
        bool retried;
    };
    const Row rows[] = {
        {"Authorization Failed", EACCES, false},
        {"Permission Denied", EACCES, false},
        {"That username is not part of this Tenant", ENOENT, false},
        {"Incorrect Input Parameters. Please check documentation", ENOENT, false},
        {"Concurrent API Calls Exceeded", EAGAIN, true},
        {"I'm sorry, connection to one or more of the databases failed", EIO, true},
        {"Sip Server not found", EIO, true},
        {"Input XML not loaded", EPROTO, false},
        {"No Document Element", EPROTO, false},
        {"No Action Defined", EPROTO, false},
        {"Action Name Not Found", EPROTO, false},
        {"Something new the vendor added", EIO, false},
        {"authorization failed", EIO, false},  // matched exactly, case included
    };
    for (const auto& row : rows) {
        INFO(row.text);
        auto e = api::error_from_server_text(row.text);
        CHECK(e.error_number() == row.err);
        CHECK(e.transient() == row.retried);
        CHECK(e.server_text() == row.text);
    }
}

TEST_CASE("transport kinds retry as the table says", "[errors]") {
    CHECK(api::is_transient(api::ErrorKind::http_status));
    CHECK(api::is_transient(api::ErrorKind::network));
    CHECK(api::is_transient(api::ErrorKind::timeout));
    CHECK_FALSE(api::is_transient(api::ErrorKind::tls));
    CHECK_FALSE(api::is_transient(api::ErrorKind::malformed));
    CHECK_FALSE(api::is_transient(api::ErrorKind::cancelled));
}

TEST_CASE("call time is read from the recording name", "[names]") {
    CHECK(core::call_time_from_name("pbx4-1603469421.1196632-abc.WAV") == 1603469421);
    CHECK(core::call_time_from_name("pbx12-1700000000.5-x.WAV") == 1700000000);
    CHECK_FALSE(core::call_time_from_name("notes.WAV"));
    CHECK_FALSE(core::call_time_from_name("pbx4-12345.1-x.WAV"));
    CHECK_FALSE(core::call_time_from_name("pbx4-16034694x1.1-x.WAV"));
    CHECK_FALSE(core::call_time_from_name("pbx4-0000000001.1-x.WAV"));
    // The uniqueid may come after other dashed parts, and end the name.
    CHECK(core::call_time_from_name("out-5551234567-1700000000.1234.WAV") == 1700000000);
    CHECK(core::call_time_from_name("q-1700000000.42") == 1700000000);
    // Ten digits that are no uniqueid are no time: a phone or ticket number.
    CHECK_FALSE(core::call_time_from_name("sales-2000000000.wav"));
    CHECK_FALSE(core::call_time_from_name("ticket-1700000000.WAV"));
    CHECK_FALSE(core::call_time_from_name("ext-1700000000.12ab-x.WAV"));
}

TEST_CASE("name policy refuses dot-names and honours the pattern", "[names]") {
    core::NamePolicy any;
    CHECK(any.may_fetch("pbx4-1.WAV"));
    CHECK_FALSE(any.may_fetch(".hidden"));
    CHECK_FALSE(any.may_fetch(""));
    core::NamePolicy wav("*.WAV");
    CHECK(wav.may_fetch("x.WAV"));
    CHECK_FALSE(wav.may_fetch("x.wav"));
    CHECK_FALSE(wav.may_fetch("desktop.ini"));
}
