#pragma once
// The one error type of the API layer. It carries what callers act on: an errno for
// the kernel, a kind for retry decisions, and the server's own text for the log.

#include <stdexcept>
#include <string>
#include <string_view>

namespace euphoria::api {

enum class ErrorKind {
    auth,          // wrong tenant or key, or the action is not allowed (EACCES)
    not_found,     // no such recording (ENOENT)
    busy,          // "Concurrent API Calls Exceeded": someone else holds the tenant's slots
    server,        // the API said its back end failed (databases, SIP server)
    rejected,      // the API did not understand our request: a bug or an API change
    other_error,   // an <Error> text we do not know
    http_status,   // a non-200 status: the server or something in front of it is down
    network,       // refused, reset, or the reply ended early
    timeout,       // connect timeout or stall timeout
    tls,           // certificate or handshake failure
    malformed,     // a reply that is not the documented XML, or corrupt base64
    cancelled,     // the caller gave up (FUSE interrupt)
    local,         // a failure on our side, e.g. the cache disk is full
    config,        // refused before sending anything, e.g. an http:// endpoint
    invalid_name,  // a file name that cannot be sent as XML text (EINVAL)
};

// Transient kinds are worth another attempt after a backoff; the rest are answers.
bool is_transient(ErrorKind kind) noexcept;
std::string_view to_string(ErrorKind kind) noexcept;

class ApiError : public std::runtime_error {
public:
    ApiError(int err, ErrorKind kind, const std::string& message, std::string server_text = {});

    int error_number() const noexcept { return errno_; }
    ErrorKind kind() const noexcept { return kind_; }
    bool transient() const noexcept { return is_transient(kind_); }
    // The <Error> text exactly as the server sent it (trimmed), empty otherwise.
    const std::string& server_text() const noexcept { return server_text_; }

private:
    int errno_;
    ErrorKind kind_;
    std::string server_text_;
};

// strerror(3) is not thread-safe; this is.
std::string describe_errno(int err);

// Maps an <Error> description (already trimmed) to the error the table in the
// README prescribes. Unknown texts become EIO, kind other_error.
ApiError error_from_server_text(std::string_view text);

}  // namespace euphoria::api
