#include "catch_compat.hpp"

#include <cstdint>
#include <optional>

#include "euphoria/core/wav_format.hpp"
#include "wav_testing.hpp"

using euphoria::core::parse_wav_header;
using euphoria::core::WavParse;
using euphoria::core::WavStatus;
using euphoria::test::as_span;
using euphoria::test::WavBuilder;

namespace {

// The header sox writes for GSM 6.10: fmt (20 bytes), fact, then data at 60.
WavBuilder sox_gsm(std::uint32_t data_size) {
    WavBuilder w;
    w.riff(52 + data_size).gsm_fmt().chunk("fact", 4).u32(data_size / 65 * 320).chunk("data", data_size);
    return w;
}

WavParse parse(const WavBuilder& w, std::optional<std::uint64_t> file_size = std::nullopt) {
    return parse_wav_header(as_span(w.bytes()), file_size);
}

}  // namespace

TEST_CASE("WAV header: sox's GSM 6.10 header gives its fields and the data chunk's place") {
    const auto w = sox_gsm(650).fill(650, 0);
    const auto p = parse(w, w.size());
    REQUIRE(p.status == WavStatus::ok);
    CHECK(p.info.format_tag == 0x31);
    CHECK_FALSE(p.info.extensible);
    CHECK(p.info.channels == 1);
    CHECK(p.info.sample_rate == 8000);
    CHECK(p.info.block_align == 65);
    CHECK(p.info.samples_per_block == 320);
    CHECK(p.info.fact_samples == std::optional<std::uint32_t>(3200));
    CHECK(p.info.data_offset == 60);
    CHECK(p.info.data_length == 650);
    CHECK_FALSE(p.info.data_truncated);
}

TEST_CASE("WAV header: every prefix before the data chunk's header asks for more, never less") {
    const auto w = sox_gsm(650).fill(650, 0);
    for (std::size_t n = 0; n < 60; ++n) {
        INFO("prefix of " << n << " bytes");
        const auto p = parse_wav_header(as_span(w.bytes()).first(n), w.size());
        REQUIRE(p.status == WavStatus::need_more);
        CHECK(p.needed > n);
        CHECK(p.needed <= 60);
    }
    CHECK(parse_wav_header(as_span(w.bytes()).first(60), w.size()).status == WavStatus::ok);
    // Without the file's size a prefix cannot know more either.
    CHECK(parse_wav_header(as_span(w.bytes()).first(59)).status == WavStatus::need_more);
}

TEST_CASE("WAV header: a file that ends inside its header is malformed, not awaited") {
    const auto w = sox_gsm(650);
    for (std::size_t n = 0; n < 60; ++n) {
        INFO("file of " << n << " bytes");
        const auto p = parse_wav_header(as_span(w.bytes()).first(n), n);
        CHECK(p.status == WavStatus::malformed);
        CHECK_FALSE(p.error.empty());
    }
}

TEST_CASE("WAV header: what is not RIFF/WAVE is refused from its first bytes") {
    WavBuilder w;
    w.tag("RIFX");
    CHECK(parse(w).status == WavStatus::malformed);
    WavBuilder avi;
    avi.tag("RIFF").u32(0).tag("AVI ");
    CHECK(parse(avi).status == WavStatus::malformed);
    WavBuilder empty;
    CHECK(parse(empty).status == WavStatus::need_more);
    CHECK(parse(empty, 0).status == WavStatus::malformed);
}

TEST_CASE("WAV header: chunks of odd size are padded; unknown ones are skipped") {
    WavBuilder w;
    w.riff().chunk("LIST", 3).fill(3, 'x').fill(1, 0)  // the pad byte
        .fmt(7, 1, 8000, 1, 8)
        .chunk("junk", 5).fill(6, 0)
        .chunk("data", 3).fill(3, 0xFF);
    const auto p = parse(w, w.size());
    REQUIRE(p.status == WavStatus::ok);
    CHECK(p.info.format_tag == 7);
    CHECK(p.info.bits_per_sample == 8);
    CHECK(p.info.data_offset == w.size() - 3);
    CHECK(p.info.data_length == 3);
    CHECK_FALSE(p.info.fact_samples.has_value());
}

TEST_CASE("WAV header: a data chunk claiming more than the file holds is cut to the file") {
    auto w = sox_gsm(0xFFFFFFF0U).fill(100, 0);
    const auto p = parse(w, w.size());
    REQUIRE(p.status == WavStatus::ok);
    CHECK(p.info.data_length == 100);
    CHECK(p.info.data_truncated);
    // Without a size it is taken at its word; the decoder then stops where the input does.
    CHECK(parse(w).info.data_length == 0xFFFFFFF0U);
}

TEST_CASE("WAV header: absurd chunk sizes are refused, bounded, without reading them") {
    SECTION("a huge chunk before data") {
        WavBuilder w;
        w.riff().chunk("LIST", 0xFFFFFFFFU).fill(64, 0);
        CHECK(parse(w).status == WavStatus::malformed);
        CHECK(parse(w, w.size()).status == WavStatus::malformed);
    }
    SECTION("a fmt chunk larger than the file") {
        WavBuilder w;
        w.riff().chunk("fmt ", 4000).fill(40, 0);
        CHECK(parse(w, w.size()).status == WavStatus::malformed);
        CHECK(parse(w).status == WavStatus::need_more);
    }
    SECTION("a megabyte of empty chunks") {
        WavBuilder w;
        w.riff();
        while (w.size() < (1U << 20) + 16) w.chunk("pad ", 0);
        CHECK(parse(w).status == WavStatus::malformed);
    }
    SECTION("no data chunk at all") {
        WavBuilder w;
        w.riff().fmt(1, 1, 8000, 2, 16);
        CHECK(parse(w, w.size()).status == WavStatus::malformed);
        CHECK(parse(w).status == WavStatus::need_more);
    }
}

TEST_CASE("WAV header: inconsistent fmt chunks are malformed") {
    SECTION("data before fmt") {
        WavBuilder w;
        w.riff().chunk("data", 2).fill(2, 0).fmt(1, 1, 8000, 2, 16);
        CHECK(parse(w, w.size()).status == WavStatus::malformed);
    }
    SECTION("fmt shorter than 16 bytes") {
        WavBuilder w;
        w.riff().chunk("fmt ", 14).fill(14, 1).chunk("data", 0);
        CHECK(parse(w, w.size()).status == WavStatus::malformed);
    }
    SECTION("zero channels, rate or block align") {
        for (const auto& [channels, rate, align] : {std::tuple{0, 8000, 2}, {1, 0, 2}, {1, 8000, 0}}) {
            WavBuilder w;
            w.riff().fmt(1, static_cast<std::uint16_t>(channels), static_cast<std::uint32_t>(rate),
                         static_cast<std::uint16_t>(align), 16).chunk("data", 0);
            CHECK(parse(w, w.size()).status == WavStatus::malformed);
        }
    }
    SECTION("two fmt chunks") {
        WavBuilder w;
        w.riff().fmt(1, 1, 8000, 2, 16).fmt(7, 1, 8000, 1, 8).chunk("data", 0);
        CHECK(parse(w, w.size()).status == WavStatus::malformed);
    }
}

TEST_CASE("WAV header: an extension longer than its chunk is read as far as the chunk goes") {
    WavBuilder w;
    w.riff().chunk("fmt ", 18).fmt_body(0x31, 1, 8000, 65, 0).u16(2).chunk("data", 0);
    const auto p = parse(w, w.size());
    REQUIRE(p.status == WavStatus::ok);
    CHECK(p.info.samples_per_block == 0);
}

TEST_CASE("WAV header: WAVE_FORMAT_EXTENSIBLE gives its subformat's tag") {
    const auto extensible = [](std::uint16_t sub, std::uint8_t guid_byte) {
        WavBuilder w;
        w.riff().chunk("fmt ", 40).fmt_body(0xFFFE, 1, 8000, 1, 8).u16(22).u16(8).u32(4).u16(sub)
            .u16(0).u16(0).u16(0x0010).fill(1, 0x80).fill(1, 0).fill(1, 0).fill(1, guid_byte)
            .fill(1, 0).fill(1, 0x38).fill(1, 0x9B).fill(1, 0x71)
            .chunk("data", 1).fill(1, 0xD5);
        return w;
    };
    const auto known = parse(extensible(7, 0xAA));
    REQUIRE(known.status == WavStatus::ok);
    CHECK(known.info.format_tag == 7);
    CHECK(known.info.extensible);
    const auto other = parse(extensible(7, 0xAB));
    REQUIRE(other.status == WavStatus::ok);
    CHECK(other.info.format_tag == 0xFFFE);

    WavBuilder short_ext;
    short_ext.riff().chunk("fmt ", 18).fmt_body(0xFFFE, 1, 8000, 2, 16).u16(0).chunk("data", 0);
    CHECK(parse(short_ext).status == WavStatus::malformed);
}
