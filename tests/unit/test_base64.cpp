#include "catch_compat.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "euphoria/api/base64.hpp"
#include "euphoria/api/error.hpp"
#include "test_bytes.hpp"

using euphoria::api::ApiError;
using euphoria::api::Base64Decoder;
using euphoria::api::ErrorKind;

namespace {

using euphoria::test::random_bytes;
std::string encode(std::string_view bytes) { return euphoria::test::encode_base64(bytes); }

struct CollectingSink final : euphoria::api::Sink {
    std::string bytes;
    std::vector<std::size_t> write_sizes;
    int resets = 0;
    int completes = 0;

    void reset() override {
        ++resets;
        bytes.clear();
    }
    void write(std::span<const std::byte> data) override {
        bytes.append(reinterpret_cast<const char*>(data.data()), data.size());
        write_sizes.push_back(data.size());
    }
    void complete() override { ++completes; }
};

// An encoder written independently of the decoder under test.


std::string wrap(std::string_view text, std::size_t width, std::string_view newline) {
    std::string wrapped;
    for (std::size_t i = 0; i < text.size(); i += width) {
        wrapped.append(text.substr(i, width));
        wrapped.append(newline);
    }
    return wrapped;
}

// Decodes `text` fed in pieces that end at each of `cuts` (ascending).
std::string decode_in_pieces(std::string_view text, const std::vector<std::size_t>& cuts = {}) {
    CollectingSink sink;
    Base64Decoder decoder(sink);
    std::size_t at = 0;
    for (std::size_t cut : cuts) {
        decoder.feed(text.data() + at, cut - at);
        at = cut;
    }
    decoder.feed(text.data() + at, text.size() - at);
    decoder.finish();
    REQUIRE(decoder.decoded_bytes() == sink.bytes.size());
    REQUIRE(sink.completes == 0);
    return sink.bytes;
}

std::string decode_bytewise(std::string_view text) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < text.size(); ++i) cuts.push_back(i);
    return decode_in_pieces(text, cuts);
}

std::optional<ApiError> decode_error(std::string_view text) {
    CollectingSink sink;
    Base64Decoder decoder(sink);
    try {
        decoder.feed(text.data(), text.size());
        decoder.finish();
    } catch (const ApiError& e) {
        return e;
    }
    return std::nullopt;
}

void require_corrupt(std::string_view text, std::string_view message_part = {}) {
    INFO("text: " << text);
    const auto error = decode_error(text);
    REQUIRE(error);
    CHECK(error->error_number() == EIO);
    CHECK(error->kind() == ErrorKind::malformed);
    CHECK_THAT(error->what(), Catch::Contains("corrupt base64"));
    if (!message_part.empty()) {
        CHECK_THAT(error->what(), Catch::Contains(std::string(message_part)));
    }
}

}  // namespace

TEST_CASE("base64: random data of many lengths round-trips", "[base64]") {
    std::vector<std::size_t> lengths;
    for (std::size_t n = 0; n <= 300; ++n) lengths.push_back(n);
    for (std::size_t n : {4095u, 4096u, 4097u, 65535u, 65536u, 65537u, 200001u, 1000000u}) {
        lengths.push_back(n);
    }
    for (std::size_t n : lengths) {
        const std::string bytes = random_bytes(n, static_cast<std::uint32_t>(n));
        INFO("length " << n);
        REQUIRE(decode_in_pieces(encode(bytes)) == bytes);
    }
}

TEST_CASE("base64: empty text decodes to nothing", "[base64]") {
    CollectingSink sink;
    Base64Decoder decoder(sink);
    decoder.feed("", 0);
    decoder.finish();
    CHECK(decoder.decoded_bytes() == 0);
    CHECK(sink.bytes.empty());
    CHECK(decode_in_pieces(" \r\n\t ").empty());
}

TEST_CASE("base64: every split point gives the same bytes", "[base64]") {
    for (std::size_t n : {61u, 62u, 63u}) {  // no padding, "=", "=="
        const std::string bytes = random_bytes(n, 7);
        for (const std::string& text : {encode(bytes), wrap(encode(bytes), 76, "\r\n"),
                                        wrap(encode(bytes), 10, " \n")}) {
            INFO("text: " << text);
            for (std::size_t cut = 0; cut <= text.size(); ++cut) {
                REQUIRE(decode_in_pieces(text, {cut}) == bytes);
            }
            for (std::size_t a = 0; a <= text.size(); a += 3) {
                for (std::size_t b = a; b <= text.size(); b += 5) {
                    REQUIRE(decode_in_pieces(text, {a, b}) == bytes);
                }
            }
            REQUIRE(decode_bytewise(text) == bytes);
        }
    }
}

TEST_CASE("base64: XML whitespace is accepted anywhere", "[base64]") {
    const std::string bytes = random_bytes(50, 3);
    const std::string text = encode(bytes + "xy");  // ends in "="
    for (const char* space : {" ", "\t", "\r", "\n", "\r\n", " \r\n\t "}) {
        for (std::size_t at = 0; at <= text.size(); ++at) {
            std::string spaced = text;
            spaced.insert(at, space);
            INFO("whitespace at " << at);
            REQUIRE(decode_in_pieces(spaced) == bytes + "xy");
        }
    }
    const std::string large = random_bytes(300000, 11);
    CHECK(decode_in_pieces(wrap(encode(large), 76, "\r\n")) == large);
    CHECK(decode_in_pieces(wrap(encode(large), 64, "\n")) == large);
    CHECK(decode_in_pieces(wrap(encode(large), 75, "\r\n")) == large);  // lines split quanta
    CHECK(decode_in_pieces("\r\n" + encode(large) + "\r\n\r\n") == large);
}

TEST_CASE("base64: output leaves in whole blocks", "[base64]") {
    const std::string bytes = random_bytes(3 * Base64Decoder::block_size + 100, 5);
    CollectingSink sink;
    Base64Decoder decoder(sink);
    const std::string text = encode(bytes);
    for (std::size_t at = 0; at < text.size(); at += 1000) {
        decoder.feed(text.data() + at, std::min<std::size_t>(1000, text.size() - at));
    }
    decoder.finish();
    REQUIRE(sink.bytes == bytes);
    REQUIRE(sink.write_sizes.size() == 4);
    for (std::size_t i = 0; i < 3; ++i) CHECK(sink.write_sizes[i] == Base64Decoder::block_size);
    CHECK(sink.write_sizes[3] == 100);
}

TEST_CASE("base64: a byte outside the alphabet is corrupt", "[base64]") {
    const std::string text = encode(random_bytes(120, 9));  // 160 characters, no padding
    // Every position, so that each lane of a vector decoder's 32-character step is
    // tried; and the neighbours of each alphabet range, where a nibble lookup has its
    // edges.
    for (char bad : {'!', '-', '_', '\0', '\x80', '\xFF', '<', '&', '\v', '\f', '.', '@', '[', '`',
                     '{', ':', '*', ',', '\x7F', '\xAB', '\xCF', '\xEF'}) {
        for (std::size_t at = 0; at < text.size(); ++at) {
            std::string corrupt = text;
            corrupt[at] = bad;
            char hex[8];
            static_cast<void>(std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(bad)));
            require_corrupt(corrupt, std::string("invalid byte ") + hex + " at text offset " +
                                         std::to_string(at));
        }
    }
}

TEST_CASE("base64: error messages carry offsets, never the payload", "[base64]") {
    const std::string text = std::string(4000, 'Q') + "!" + std::string(3, 'Q');
    CollectingSink sink;
    Base64Decoder decoder(sink);
    try {
        decoder.feed(text.data(), 1234);
        decoder.feed(text.data() + 1234, text.size() - 1234);
        FAIL("no error");
    } catch (const ApiError& e) {
        const std::string message = e.what();
        CHECK_THAT(message, Catch::Contains("text offset 4000"));
        CHECK_THAT(message, Catch::Contains("decoded offset 3000"));
        CHECK_THAT(message, !Catch::Contains("QQ"));
    }
}

TEST_CASE("base64: padding only ends the final quantum", "[base64]") {
    CHECK(decode_in_pieces("QQ==") == "A");
    CHECK(decode_in_pieces("QUI=") == "AB");
    CHECK(decode_in_pieces("QUJD QQ==\r\n ") == "ABCA");
    CHECK(decode_in_pieces("QUI\r\n=") == "AB");
    CHECK(decode_in_pieces("QQ=\r\n=") == "A");

    require_corrupt("QQ==QUJD", "data after the padded final quantum");
    require_corrupt("QUI=QQ==", "data after the padded final quantum");
    require_corrupt("QQ== Q", "data after the padded final quantum");
    require_corrupt("QUI==", "data after the padded final quantum");
    require_corrupt("QQ===", "data after the padded final quantum");
    require_corrupt("QQ=A", "data after '='");
    require_corrupt("Q===", "'=' in the first half of a quantum");
    require_corrupt("====", "'=' in the first half of a quantum");
    require_corrupt("QUJD=QQQ", "'=' in the first half of a quantum");
    require_corrupt("QUJDQ=", "'=' in the first half of a quantum");
}

TEST_CASE("base64: text that stops inside a quantum is corrupt", "[base64]") {
    require_corrupt("Q", "1 of a quantum's 4 characters");
    require_corrupt("QU", "2 of");
    require_corrupt("QUJ", "3 of");
    require_corrupt("QUJDQ", "1 of");
    require_corrupt("QQ=", "3 of");
    require_corrupt(encode(random_bytes(999, 1)) + "QUJ\r\n", "3 of");
}

TEST_CASE("base64: feed_prefix stops at markup and leaves it to the caller", "[base64]") {
    CollectingSink sink;
    Base64Decoder decoder(sink);
    const std::string text = "QUJD\r\nRUZH</audioData>";
    const std::size_t taken = decoder.feed_prefix(text.data(), text.size());
    CHECK(taken == text.find('<'));
    CHECK(decoder.position().offset == taken);
    CHECK(decoder.position().line_breaks == 1);
    CHECK(decoder.position().line_start == 6);
    for (const char* rest : {"&#x3D;", "]]>", "\x80"}) {
        CHECK(decoder.feed_prefix(rest, std::strlen(rest)) == 0);
    }
    decoder.feed("SQ", 2);
    CHECK(decoder.feed_prefix("==<", 3) == 2);
    decoder.finish();
    CHECK(sink.bytes == "ABCEFGI");

    CollectingSink other;
    Base64Decoder strict(other);
    CHECK_THROWS_AS(strict.feed_prefix("QQ==QQ==<", 9), ApiError);
}
