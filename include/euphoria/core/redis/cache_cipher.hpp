#pragma once
// What makes the fleet's shared cache safe to keep on a Redis that others can reach.
//
// Two keys come from the tenant's API key through HKDF-SHA256: one seals values
// (AES-256-GCM, a random 96-bit nonce each), one names them (HMAC-SHA256 of the
// recording name). A client of the same Redis without the API key can delete or
// overwrite entries, but can neither read a recording or a name, nor plant one: a
// value that does not open under its key's own name is rejected.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "euphoria/api/secret.hpp"

namespace euphoria::core::redis {

class CacheCipher {
public:
    // Throws std::runtime_error when libcrypto fails (it does not, short of memory).
    CacheCipher(const api::Secret& api_key, std::string_view tenant);
    ~CacheCipher();
    CacheCipher(const CacheCipher&) = default;
    CacheCipher& operator=(const CacheCipher&) = default;

    // Lower-case hex HMAC of `name`: the same on every host with the key, and
    // nothing about the name to anyone else.
    std::string name_id(std::string_view name) const;
    // nonce || ciphertext || tag. `context` is authenticated, not stored: a value
    // moved under another key (another name, chunk or entry) no longer opens.
    std::string seal(std::string_view context, std::string_view plain) const;
    // The plain text, or none when `sealed` was not made by seal() with this key and
    // this `context` (tampered, truncated, or foreign).
    std::optional<std::string> open(std::string_view context, std::string_view sealed) const;
    // Random bytes as hex, for entry ids and claim tokens.
    static std::string random_hex(std::size_t bytes);

    static constexpr std::size_t overhead = 12 + 16;  // nonce and tag

private:
    std::array<unsigned char, 32> seal_key_{};
    std::array<unsigned char, 32> name_key_{};
};

}  // namespace euphoria::core::redis
