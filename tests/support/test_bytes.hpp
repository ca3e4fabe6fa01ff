#pragma once
// Bytes for tests and benchmarks: one base64 encoder (the reference the decoder is
// checked against) and one seeded source of random bytes. Header-only, so the
// benchmarks use it without linking the test support library.

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

namespace euphoria::test {

// `size` bytes from a 64-bit Mersenne Twister seeded with `seed`: the same seed gives
// the same bytes, fast enough for a 100 MB benchmark reply.
inline std::string random_bytes(std::size_t size, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string bytes(size, '\0');
    for (std::size_t i = 0; i < size; i += 8) {
        const std::uint64_t word = rng();
        std::memcpy(bytes.data() + i, &word, std::min<std::size_t>(8, size - i));
    }
    return bytes;
}

// RFC 4648 base64 with padding, no line breaks.
inline std::string encode_base64(std::string_view bytes) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    auto at = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])); };
    std::string text;
    text.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
        for (int shift : {18, 12, 6, 0}) text += alphabet[(n >> shift) & 63];
    }
    if (i < bytes.size()) {
        const bool two = i + 2 == bytes.size();
        const std::uint32_t n = (at(i) << 16) | (two ? at(i + 1) << 8 : 0);
        text += alphabet[(n >> 18) & 63];
        text += alphabet[(n >> 12) & 63];
        text += two ? alphabet[(n >> 6) & 63] : '=';
        text += '=';
    }
    return text;
}

}  // namespace euphoria::test
