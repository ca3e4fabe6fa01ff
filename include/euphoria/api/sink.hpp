#pragma once
// Where decoded recording bytes go. The client writes as it decodes, so memory does
// not grow with a recording's size.
//
// Threads: every call happens inside Client::download and never two at once, but not
// all on the caller's thread. CurlClient calls write() for a large reply on its stage
// thread (api::ByteStage), and joins that thread before download() returns or calls
// complete(), so whatever write() did is visible to the caller afterwards.

#include <cstddef>
#include <span>

namespace euphoria::api {

class Sink {
public:
    virtual ~Sink() = default;
    // Called before each attempt's first byte: drop whatever an earlier, failed
    // attempt wrote. Bytes written before complete() are never a recording yet.
    virtual void reset() = 0;
    // Decoded bytes, in order. May throw ApiError (for example ENOSPC) to abort.
    virtual void write(std::span<const std::byte> bytes) = 0;
    // The reply was whole and valid: the bytes written since reset() are the file.
    // Never called for a truncated or corrupt reply.
    virtual void complete() = 0;
};

}  // namespace euphoria::api
