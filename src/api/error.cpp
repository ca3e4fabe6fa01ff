#include "euphoria/api/error.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace euphoria::api {

bool is_transient(ErrorKind kind) noexcept {
    switch (kind) {
    case ErrorKind::busy:
    case ErrorKind::server:
    case ErrorKind::http_status:
    case ErrorKind::network:
    case ErrorKind::timeout:
        return true;
    default:
        return false;
    }
}

std::string_view to_string(ErrorKind kind) noexcept {
    switch (kind) {
    case ErrorKind::auth: return "auth";
    case ErrorKind::not_found: return "not_found";
    case ErrorKind::busy: return "busy";
    case ErrorKind::server: return "server";
    case ErrorKind::rejected: return "rejected";
    case ErrorKind::other_error: return "other_error";
    case ErrorKind::http_status: return "http_status";
    case ErrorKind::network: return "network";
    case ErrorKind::timeout: return "timeout";
    case ErrorKind::tls: return "tls";
    case ErrorKind::malformed: return "malformed";
    case ErrorKind::cancelled: return "cancelled";
    case ErrorKind::local: return "local";
    case ErrorKind::config: return "config";
    case ErrorKind::invalid_name: return "invalid_name";
    }
    return "unknown";
}

ApiError::ApiError(int err, ErrorKind kind, const std::string& message, std::string server_text)
    : std::runtime_error(message), errno_(err), kind_(kind),
      server_text_(std::move(server_text)) {}

std::string describe_errno(int err) {
    char buf[128];
    // The GNU strerror_r returns its answer, which may or may not be `buf`.
    return strerror_r(err, buf, sizeof buf);
}

namespace {

struct KnownError {
    std::string_view text;
    int err;
    ErrorKind kind;
};

// The vendor's error reference, and what a filesystem caller should see for each.
// "Concurrent API Calls Exceeded" is EAGAIN only once retries have run out.
constexpr std::array<KnownError, 11> known_errors{{
    {"Authorization Failed", EACCES, ErrorKind::auth},
    {"Permission Denied", EACCES, ErrorKind::auth},
    {"That username is not part of this Tenant", ENOENT, ErrorKind::not_found},
    {"Incorrect Input Parameters. Please check documentation", ENOENT, ErrorKind::not_found},
    {"Concurrent API Calls Exceeded", EAGAIN, ErrorKind::busy},
    {"I'm sorry, connection to one or more of the databases failed", EIO, ErrorKind::server},
    {"Sip Server not found", EIO, ErrorKind::server},
    {"Input XML not loaded", EPROTO, ErrorKind::rejected},
    {"No Document Element", EPROTO, ErrorKind::rejected},
    {"No Action Defined", EPROTO, ErrorKind::rejected},
    {"Action Name Not Found", EPROTO, ErrorKind::rejected},
}};

}  // namespace

ApiError error_from_server_text(std::string_view text) {
    for (const auto& known : known_errors) {
        if (known.text == text) {
            return ApiError(known.err, known.kind, "API error: " + std::string(text),
                            std::string(text));
        }
    }
    return ApiError(EIO, ErrorKind::other_error, "unrecognised API error: " + std::string(text),
                    std::string(text));
}

}  // namespace euphoria::api
