#include "catch_compat.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "euphoria/core/pcm_decoder.hpp"
#include "temp_dir.hpp"
#include "wav_testing.hpp"

using euphoria::core::PcmCodec;
using euphoria::core::PcmDecoder;
using euphoria::core::PcmLayout;
using euphoria::core::PcmStatus;
using euphoria::core::probe_pcm_view;
using euphoria::test::as_span;
using euphoria::test::Bytes;
using euphoria::test::TempDir;
using euphoria::test::WavBuilder;

namespace {

struct Decoded {
    Bytes view;
    bool mapping_held = true;  // output_offset == output_ready(input_offset) after every feed
};

// Feeds the whole original in pieces of `piece` bytes (0: in one piece).
Decoded decode(const PcmLayout& layout, const Bytes& original, std::size_t piece) {
    Decoded d;
    PcmDecoder decoder(layout);
    const PcmDecoder::Sink sink = [&](std::span<const std::byte> b) { d.view.insert(d.view.end(), b.begin(), b.end()); };
    auto rest = as_span(original);
    do {
        const std::size_t n = piece == 0 ? rest.size() : std::min(piece, rest.size());
        decoder.feed(rest.first(n), sink);
        rest = rest.subspan(n);
        if (decoder.output_offset() != layout.output_ready(decoder.input_offset()) ||
            decoder.output_offset() != d.view.size())
            d.mapping_held = false;
    } while (!rest.empty());
    return d;
}

std::uint32_t le32(const Bytes& b, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v |= std::to_integer<std::uint32_t>(b[at + i]) << (8 * i);
    return v;
}

std::string text(const Bytes& b, std::size_t at) {
    std::string s;
    for (std::size_t i = 0; i < 4; ++i) s += std::to_integer<char>(b[at + i]);
    return s;
}

PcmLayout layout_of(const Bytes& original) {
    const auto probe = probe_pcm_view(as_span(original), original.size());
    INFO(probe.error);
    REQUIRE(probe.status == PcmStatus::ok);
    return probe.layout;
}

// The header is the canonical one, and the rest is exactly sox's decode.
void check_view_equals_sox(const Bytes& view, const Bytes& sox, std::uint32_t rate) {
    REQUIRE(view.size() >= 44);
    CHECK(text(view, 0) == "RIFF");
    CHECK(le32(view, 4) == view.size() - 8);
    CHECK(text(view, 8) == "WAVE");
    CHECK(text(view, 12) == "fmt ");
    CHECK(le32(view, 16) == 16);
    CHECK(le32(view, 20) == 0x00010001U);  // format 1, mono
    CHECK(le32(view, 24) == rate);
    CHECK(le32(view, 28) == rate * 2);
    CHECK(le32(view, 32) == 0x00100002U);  // block align 2, 16 bits
    CHECK(text(view, 36) == "data");
    CHECK(le32(view, 40) == view.size() - 44);
    const Bytes samples(view.begin() + 44, view.end());
    CHECK(samples.size() == sox.size());
    CHECK(samples == sox);  // byte for byte
}

const std::vector<std::size_t> piece_sizes = {1, 7, 65, 4096, 0};

}  // namespace

TEST_CASE("pcm view: real GSM, A-law, u-law and PCM recordings decode exactly as sox does, in any pieces") {
    TempDir dir;
    euphoria::test::make_recordings(dir.path());
    const struct {
        const char* name;
        PcmCodec codec;
    } cases[] = {{"gsm", PcmCodec::gsm610}, {"alaw", PcmCodec::alaw}, {"ulaw", PcmCodec::mulaw},
                 {"pcm16", PcmCodec::pcm16}};
    for (const auto& c : cases) {
        const std::string path = dir.path() + "/speech-" + c.name + ".wav";
        const Bytes original = euphoria::test::read_file(path);
        const Bytes sox = euphoria::test::sox_decode(path, dir.path() + "/sox.raw");
        REQUIRE(sox.size() > 40000);  // a few seconds of speech
        const PcmLayout layout = layout_of(original);
        CHECK(layout.codec == c.codec);
        CHECK(layout.output_size == 44 + sox.size());
        for (const std::size_t piece : piece_sizes) {
            INFO(c.name << " in pieces of " << piece << " bytes (0: whole)");
            const Decoded d = decode(layout, original, piece);
            CHECK(d.mapping_held);
            CHECK(d.view.size() == layout.output_size);
            check_view_equals_sox(d.view, sox, 8000);
        }
    }
}

TEST_CASE("pcm view: a GSM file cut inside a block decodes its whole blocks, as sox does") {
    TempDir dir;
    euphoria::test::make_recordings(dir.path());
    const Bytes full = euphoria::test::read_file(dir.path() + "/speech-gsm.wav");
    const PcmLayout full_layout = layout_of(full);
    const Bytes full_view = decode(full_layout, full, 0).view;
    for (const std::size_t blocks_and_bytes : std::vector<std::size_t>{1, 3 * 65 + 1, 10 * 65 + 33, 10 * 65 + 64}) {
        const std::size_t cut = full_layout.data_offset + blocks_and_bytes;
        INFO("cut at " << cut);
        const Bytes truncated(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
        const std::string path = dir.path() + "/cut.wav";
        euphoria::test::write_file(path, as_span(truncated));
        const PcmLayout layout = layout_of(truncated);
        CHECK(layout.samples == blocks_and_bytes / 65 * 320);
        for (const std::size_t piece : piece_sizes) {
            const Decoded d = decode(layout, truncated, piece);
            CHECK(d.mapping_held);
            REQUIRE(d.view.size() == layout.output_size);
            // The same samples as the whole file's first blocks, and as sox's decode.
            CHECK(std::equal(d.view.begin() + 44, d.view.end(), full_view.begin() + 44));
            check_view_equals_sox(d.view, euphoria::test::sox_decode(path, dir.path() + "/sox.raw"), 8000);
        }
    }
}

TEST_CASE("pcm view: an odd-length GSM data chunk and its pad byte yield the whole blocks only") {
    WavBuilder w;
    w.riff().gsm_fmt().chunk("data", 3 * 65 + 1).fill(3 * 65 + 1, 0x5A).fill(1, 0)
        .chunk("LIST", 4).fill(4, 'x');
    const PcmLayout layout = layout_of(w.bytes());
    CHECK(layout.samples == 3 * 320);
    CHECK(layout.output_size == 44 + 3 * 640);
    for (const std::size_t piece : piece_sizes) {
        const Decoded d = decode(layout, w.bytes(), piece);
        CHECK(d.mapping_held);
        CHECK(d.view.size() == layout.output_size);
    }
}

TEST_CASE("pcm view: odd-length G.711 data decodes every byte; odd PCM drops the half sample") {
    WavBuilder alaw;
    alaw.riff().fmt(6, 1, 8000, 1, 8).chunk("data", 3).fill(1, 0xD5).fill(1, 0x55).fill(1, 0xAA).fill(1, 0);
    const Decoded a = decode(layout_of(alaw.bytes()), alaw.bytes(), 1);
    REQUIRE(a.view.size() == 44 + 6);
    // A-law 0xD5 is +8, 0x55 is -8, 0xAA is +32256 (ITU-T G.711 table 1).
    CHECK(Bytes(a.view.begin() + 44, a.view.end()) ==
          Bytes{std::byte{8}, std::byte{0}, std::byte{0xF8}, std::byte{0xFF}, std::byte{0x00}, std::byte{0x7E}});

    WavBuilder pcm;
    pcm.riff().fmt(1, 1, 8000, 2, 16).chunk("data", 5).u16(1).u16(0xFFFF).fill(1, 9).fill(1, 0);
    const PcmLayout layout = layout_of(pcm.bytes());
    CHECK(layout.samples == 2);
    const Decoded p = decode(layout, pcm.bytes(), 1);
    CHECK(p.mapping_held);
    CHECK(Bytes(p.view.begin() + 44, p.view.end()) ==
          Bytes{std::byte{1}, std::byte{0}, std::byte{0xFF}, std::byte{0xFF}});
}

TEST_CASE("pcm view: zero-length data makes a 44-byte view") {
    for (const std::uint16_t format : {1, 6, 7, 0x31}) {
        WavBuilder w;
        w.riff();
        if (format == 0x31) {
            w.gsm_fmt();
        } else {
            w.fmt(format, 1, 8000, format == 1 ? 2 : 1, format == 1 ? 16 : 8);
        }
        w.chunk("data", 0);
        const PcmLayout layout = layout_of(w.bytes());
        CHECK(layout.output_size == 44);
        const Decoded d = decode(layout, w.bytes(), 0);
        CHECK(d.view.size() == 44);
        CHECK(le32(d.view, 40) == 0);
    }
}

TEST_CASE("pcm view: a data chunk claiming more than the file holds gives the size of what is there") {
    WavBuilder w;
    w.riff().fmt(7, 1, 8000, 1, 8).chunk("data", 1000000).fill(100, 0xFF);
    const PcmLayout layout = layout_of(w.bytes());
    CHECK(layout.output_size == 44 + 200);
    CHECK(decode(layout, w.bytes(), 7).view.size() == 44 + 200);
}

TEST_CASE("pcm view: the rate is kept; other channel counts, sizes and formats are unsupported") {
    WavBuilder rate;
    rate.riff().fmt(7, 1, 16000, 1, 8).chunk("data", 2).fill(2, 0xFF);
    const Decoded d = decode(layout_of(rate.bytes()), rate.bytes(), 0);
    CHECK(le32(d.view, 24) == 16000);

    const auto status = [](const WavBuilder& w) { return probe_pcm_view(as_span(w.bytes()), w.size()).status; };
    WavBuilder stereo;
    stereo.riff().fmt(1, 2, 8000, 4, 16).chunk("data", 0);
    CHECK(status(stereo) == PcmStatus::unsupported);
    WavBuilder pcm8;
    pcm8.riff().fmt(1, 1, 8000, 1, 8).chunk("data", 0);
    CHECK(status(pcm8) == PcmStatus::unsupported);
    WavBuilder adpcm;
    adpcm.riff().fmt(2, 1, 8000, 256, 4).chunk("data", 0);
    CHECK(status(adpcm) == PcmStatus::unsupported);
    WavBuilder gsm_other_block;
    gsm_other_block.riff().gsm_fmt(160, 33).chunk("data", 0);
    CHECK(status(gsm_other_block) == PcmStatus::unsupported);
    WavBuilder junk;
    junk.tag("OggS").fill(60, 0);
    CHECK(status(junk) == PcmStatus::malformed);
    const auto unsupported = probe_pcm_view(as_span(adpcm.bytes()), adpcm.size());
    CHECK(unsupported.info.format_tag == 2);
    CHECK_THAT(unsupported.error, Catch::Contains("0x0002"));
}

TEST_CASE("pcm view: input_needed is the shortest prefix that makes an output offset ready") {
    WavBuilder gsm;
    gsm.riff().gsm_fmt().chunk("data", 5 * 65).fill(5 * 65, 0);
    WavBuilder alaw;
    alaw.riff().fmt(6, 1, 8000, 1, 8).chunk("data", 9).fill(9, 0);
    WavBuilder pcm;
    pcm.riff().fmt(1, 1, 8000, 2, 16).chunk("data", 10).fill(10, 0);
    for (const WavBuilder* w : {&gsm, &alaw, &pcm}) {
        const PcmLayout layout = layout_of(w->bytes());
        CHECK(layout.input_needed(0) == 0);
        CHECK(layout.output_ready(layout.data_offset - 1) == 0);
        CHECK(layout.output_ready(layout.data_offset) == 44);
        CHECK(layout.output_ready(w->size() + 1000) == layout.output_size);
        CHECK(layout.input_needed(layout.output_size + 1000) == layout.data_offset + layout.data_length);
        for (std::uint64_t k = 1; k <= layout.output_size; ++k) {
            const std::uint64_t need = layout.input_needed(k);
            INFO("output offset " << k << " needs " << need);
            CHECK(layout.output_ready(need) >= k);
            CHECK(layout.output_ready(need - 1) < k);
        }
    }
    // GSM: every 640 output bytes are one more 65-byte block.
    const PcmLayout g = layout_of(gsm.bytes());
    CHECK(g.input_needed(44 + 1) == g.data_offset + 65);
    CHECK(g.input_needed(44 + 640) == g.data_offset + 65);
    CHECK(g.input_needed(44 + 641) == g.data_offset + 130);
}

TEST_CASE("pcm view: the size is known from the original's first bytes") {
    WavBuilder w;
    w.riff().gsm_fmt().chunk("fact", 4).u32(960).chunk("data", 3 * 65).fill(3 * 65, 0);
    const auto early = probe_pcm_view(as_span(w.bytes()).first(30), w.size());
    CHECK(early.status == PcmStatus::need_more);
    CHECK(early.needed > 30);
    const auto probe = probe_pcm_view(as_span(w.bytes()).first(60), w.size());
    REQUIRE(probe.status == PcmStatus::ok);
    CHECK(probe.layout.output_size == 44 + 3 * 640);
    CHECK(probe.info.fact_samples == std::optional<std::uint32_t>(960));
}

TEST_CASE("pcm view: trimmed to GSM's fact chunk, the view is sox's decode cut to the fact's samples") {
    TempDir dir;
    euphoria::test::make_recordings(dir.path());
    const std::string path = dir.path() + "/speech-gsm.wav";
    const Bytes original = euphoria::test::read_file(path);
    const Bytes sox = euphoria::test::sox_decode(path, dir.path() + "/sox.raw");
    euphoria::core::PcmOptions trim;
    trim.trim_gsm_to_fact = true;
    const auto probe = probe_pcm_view(as_span(original), original.size(), trim);
    REQUIRE(probe.status == PcmStatus::ok);
    REQUIRE(probe.info.fact_samples.has_value());
    const std::uint64_t fact = *probe.info.fact_samples;
    REQUIRE(fact < sox.size() / 2);  // sox pads the last block, and decodes the padding
    CHECK(probe.layout.samples == fact);
    CHECK(probe.layout.output_size == 44 + 2 * fact);
    const Bytes cut(sox.begin(), sox.begin() + static_cast<std::ptrdiff_t>(2 * fact));
    for (const std::size_t piece : piece_sizes) {
        INFO("pieces of " << piece);
        const Decoded d = decode(probe.layout, original, piece);
        CHECK(d.mapping_held);
        check_view_equals_sox(d.view, cut, 8000);
    }
    for (std::uint64_t k = 1; k <= probe.layout.output_size; k += 97) {
        const std::uint64_t need = probe.layout.input_needed(k);
        CHECK(probe.layout.output_ready(need) >= k);
        CHECK(probe.layout.output_ready(need - 1) < k);
    }
    // A fact that would cut more than the padded last block is a writer's mistake: ignored.
    WavBuilder w;
    w.riff().gsm_fmt().chunk("fact", 4).u32(320).chunk("data", 3 * 65).fill(3 * 65, 0);
    CHECK(probe_pcm_view(as_span(w.bytes()), w.size(), trim).layout.samples == 3 * 320);
    WavBuilder near;
    near.riff().gsm_fmt().chunk("fact", 4).u32(2 * 320 + 1).chunk("data", 3 * 65).fill(3 * 65, 0);
    CHECK(probe_pcm_view(as_span(near.bytes()), near.size(), trim).layout.samples == 2 * 320 + 1);
    CHECK(probe_pcm_view(as_span(near.bytes()), near.size()).layout.samples == 3 * 320);
}
