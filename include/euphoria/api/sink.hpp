#pragma once
// Where decoded recording bytes go. The client writes as it decodes, so memory does
// not grow with a recording's size.

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
