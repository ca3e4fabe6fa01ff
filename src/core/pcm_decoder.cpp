#include "euphoria/core/pcm_decoder.hpp"

#include <gsm.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

namespace euphoria::core {
namespace {

constexpr std::uint64_t gsm_block_bytes = 65;
constexpr std::uint64_t gsm_block_samples = 320;
// libgsm's first frame of a WAV49 block is 33 bytes; the second, 32, starts here.
constexpr std::size_t gsm_second_frame = 33;
// Decoded bytes are handed to the sink in pieces of about this size, so that a
// feed of a whole recording at once does not hold its whole view in memory.
constexpr std::size_t flush_bytes = std::size_t{64} * 1024;

// G.711 decoding as in the ITU-T reference and Sun's g711.c, which sox uses too:
// 16-bit results, µ-law in [-32124, 32124], A-law in [-32256, 32256].
constexpr std::int16_t mulaw_to_linear(unsigned char code) {
    const unsigned u = ~code & 0xFFU;
    int t = static_cast<int>(((u & 0x0FU) << 3U) + 0x84U);
    t <<= (u & 0x70U) >> 4U;
    return static_cast<std::int16_t>((u & 0x80U) ? 0x84 - t : t - 0x84);
}

constexpr std::int16_t alaw_to_linear(unsigned char code) {
    const unsigned a = code ^ 0x55U;
    int t = static_cast<int>((a & 0x0FU) << 4U);
    const unsigned segment = (a & 0x70U) >> 4U;
    if (segment == 0) {
        t += 8;
    } else {
        t += 0x108;
        t <<= segment - 1;
    }
    return static_cast<std::int16_t>((a & 0x80U) ? t : -t);
}

using G711Table = std::array<std::int16_t, 256>;

constexpr G711Table make_table(std::int16_t (*decode)(unsigned char)) {
    G711Table table{};
    for (unsigned i = 0; i < table.size(); ++i) table[i] = decode(static_cast<unsigned char>(i));
    return table;
}

constexpr G711Table mulaw_table = make_table(mulaw_to_linear);
constexpr G711Table alaw_table = make_table(alaw_to_linear);
static_assert(mulaw_table[0x00] == -32124 && mulaw_table[0x80] == 32124 && mulaw_table[0xFF] == 0);
static_assert(alaw_table[0x55] == -8 && alaw_table[0xD5] == 8 && alaw_table[0xAA] == 32256);

void put_le16(std::byte* at, std::int16_t sample) noexcept {
    const auto u = static_cast<std::uint16_t>(sample);
    at[0] = static_cast<std::byte>(u & 0xFFU);
    at[1] = static_cast<std::byte>(u >> 8U);
}

void put_le32(std::byte* at, std::uint32_t value) noexcept {
    for (int i = 0; i < 4; ++i) at[i] = static_cast<std::byte>((value >> (8 * i)) & 0xFFU);
}

void put_tag(std::byte* at, const char (&tag)[5]) noexcept {
    for (int i = 0; i < 4; ++i) at[i] = static_cast<std::byte>(tag[i]);
}

std::string hex16(std::uint16_t value) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s = "0x";
    for (int shift = 12; shift >= 0; shift -= 4) s += digits[(value >> shift) & 0xFU];
    return s;
}

PcmProbe unsupported(const WavInfo& info, std::string error) {
    PcmProbe p;
    p.status = PcmStatus::unsupported;
    p.info = info;
    p.error = std::move(error);
    return p;
}

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) noexcept { return a / b + (a % b != 0); }

}  // namespace

std::uint64_t PcmLayout::output_ready(std::uint64_t input_prefix) const noexcept {
    if (input_prefix < data_offset) return 0;
    const std::uint64_t d = std::min(input_prefix - data_offset, data_length);
    switch (codec) {
        case PcmCodec::pcm16: return pcm_header_bytes + d;
        case PcmCodec::alaw:
        case PcmCodec::mulaw: return pcm_header_bytes + 2 * d;
        case PcmCodec::gsm610:
            return std::min(output_size, pcm_header_bytes + d / gsm_block_bytes * gsm_block_samples * 2);
    }
    return 0;
}

std::uint64_t PcmLayout::input_needed(std::uint64_t output_end) const noexcept {
    output_end = std::min(output_end, output_size);
    if (output_end == 0) return 0;
    if (output_end <= pcm_header_bytes) return data_offset;
    const std::uint64_t n = output_end - pcm_header_bytes;
    switch (codec) {
        case PcmCodec::pcm16: return data_offset + n;
        case PcmCodec::alaw:
        case PcmCodec::mulaw: return data_offset + ceil_div(n, 2);
        case PcmCodec::gsm610: return data_offset + ceil_div(n, gsm_block_samples * 2) * gsm_block_bytes;
    }
    return data_offset + data_length;
}

PcmProbe plan_pcm_view(const WavInfo& info, const PcmOptions& options) {
    const std::string what = "format " + hex16(info.format_tag);
    if (info.channels != 1)
        return unsupported(info, what + " with " + std::to_string(info.channels) + " channels; the view is mono");
    PcmLayout layout;
    layout.sample_rate = info.sample_rate;
    layout.data_offset = info.data_offset;
    switch (info.format_tag) {
        case wav_format_pcm:
            if (info.bits_per_sample != 16 || info.block_align != 2)
                return unsupported(info, what + " with " + std::to_string(info.bits_per_sample) +
                                             "-bit samples; the view takes 16");
            layout.codec = PcmCodec::pcm16;
            layout.samples = info.data_length / 2;
            layout.data_length = layout.samples * 2;
            break;
        case wav_format_alaw:
        case wav_format_mulaw:
            if (info.bits_per_sample != 8 || info.block_align != 1)
                return unsupported(info, what + " with " + std::to_string(info.bits_per_sample) +
                                             "-bit samples; G.711 has 8");
            layout.codec = info.format_tag == wav_format_alaw ? PcmCodec::alaw : PcmCodec::mulaw;
            layout.samples = info.data_length;
            layout.data_length = info.data_length;
            break;
        case wav_format_gsm610:
            if (info.block_align != gsm_block_bytes ||
                (info.samples_per_block != 0 && info.samples_per_block != gsm_block_samples))
                return unsupported(info, what + " with blocks of " + std::to_string(info.block_align) +
                                             " bytes; WAV49 has 65 bytes for 320 samples");
            layout.codec = PcmCodec::gsm610;
            layout.data_length = info.data_length / gsm_block_bytes * gsm_block_bytes;
            layout.samples = info.data_length / gsm_block_bytes * gsm_block_samples;
            if (options.trim_gsm_to_fact && info.fact_samples && *info.fact_samples < layout.samples &&
                *info.fact_samples > layout.samples - gsm_block_samples)
                layout.samples = *info.fact_samples;
            break;
        default:
            return unsupported(info, what + " is not GSM 6.10, G.711 or 16-bit PCM");
    }
    // The RIFF size field counts 36 header bytes and the samples in 32 bits.
    if (layout.samples > (std::numeric_limits<std::uint32_t>::max() - 36) / 2)
        return unsupported(info, "the decoded recording would exceed a WAV file's 4 GiB");
    layout.output_size = pcm_header_bytes + 2 * layout.samples;
    PcmProbe p;
    p.status = PcmStatus::ok;
    p.info = info;
    p.layout = layout;
    return p;
}

PcmProbe probe_pcm_view(std::span<const std::byte> prefix, std::optional<std::uint64_t> file_size,
                        const PcmOptions& options) {
    WavParse parsed = parse_wav_header(prefix, file_size);
    if (parsed.status == WavStatus::ok) return plan_pcm_view(parsed.info, options);
    PcmProbe p;
    p.needed = parsed.needed;
    p.error = std::move(parsed.error);
    p.status = parsed.status == WavStatus::need_more ? PcmStatus::need_more : PcmStatus::malformed;
    return p;
}

std::array<std::byte, pcm_header_bytes> pcm_wav_header(const PcmLayout& layout) noexcept {
    const auto data_bytes = static_cast<std::uint32_t>(layout.output_size - pcm_header_bytes);
    std::array<std::byte, pcm_header_bytes> h{};
    put_tag(&h[0], "RIFF");
    put_le32(&h[4], 36 + data_bytes);
    put_tag(&h[8], "WAVE");
    put_tag(&h[12], "fmt ");
    put_le32(&h[16], 16);
    put_le16(&h[20], 1);  // PCM
    put_le16(&h[22], 1);  // mono
    put_le32(&h[24], layout.sample_rate);
    put_le32(&h[28], layout.sample_rate * 2);  // byte rate
    put_le16(&h[32], 2);                       // block align
    put_le16(&h[34], 16);                      // bits per sample
    put_tag(&h[36], "data");
    put_le32(&h[40], data_bytes);
    return h;
}

void GsmDeleter::operator()(gsm_state* handle) const noexcept { gsm_destroy(handle); }

PcmDecoder::PcmDecoder(const PcmLayout& layout) : layout_(layout) {
    out_.reserve(flush_bytes + gsm_block_samples * 2);
    if (layout_.codec != PcmCodec::gsm610) return;
    gsm_.reset(gsm_create());
    if (!gsm_) throw std::bad_alloc();
    // WAV49 makes gsm_decode take the 33- and 32-byte halves of a block in turn.
    int on = 1;
    if (gsm_option(gsm_.get(), GSM_OPT_WAV49, &on) < 0)
        throw std::runtime_error("libgsm was built without WAV49 support");
}

void PcmDecoder::feed(std::span<const std::byte> bytes, const Sink& sink) {
    if (input_offset_ < layout_.data_offset) {
        const auto skip = static_cast<std::size_t>(
            std::min<std::uint64_t>(bytes.size(), layout_.data_offset - input_offset_));
        bytes = bytes.subspan(skip);
        input_offset_ += skip;
    }
    if (input_offset_ < layout_.data_offset) return;
    if (output_offset_ == 0) {
        const auto header = pcm_wav_header(layout_);
        sink(header);
        output_offset_ = header.size();
    }
    const std::uint64_t data_end = layout_.data_offset + layout_.data_length;
    if (input_offset_ < data_end) {
        const auto take =
            static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), data_end - input_offset_));
        auto data = bytes.first(take);
        if (layout_.codec == PcmCodec::pcm16) {
            flush(sink);
            if (!data.empty()) sink(data);
            output_offset_ += data.size();
        } else {
            while (!data.empty()) {
                const std::size_t piece = std::min(data.size(), flush_bytes / 2);
                decode_data(data.first(piece));
                data = data.subspan(piece);
                if (out_.size() >= flush_bytes) flush(sink);
            }
        }
        input_offset_ += take;
        bytes = bytes.subspan(take);
    }
    input_offset_ += bytes.size();
    flush(sink);
}

void PcmDecoder::decode_data(std::span<const std::byte> data) {
    if (layout_.codec == PcmCodec::gsm610) {
        while (!data.empty()) {
            const std::size_t take = std::min(data.size(), partial_.size() - partial_size_);
            std::memcpy(partial_.data() + partial_size_, data.data(), take);
            partial_size_ += take;
            data = data.subspan(take);
            if (partial_size_ == partial_.size()) {
                decode_gsm_block();
                partial_size_ = 0;
            }
        }
        return;
    }
    const G711Table& table = layout_.codec == PcmCodec::alaw ? alaw_table : mulaw_table;
    const std::size_t at = out_.size();
    out_.resize(at + 2 * data.size());
    std::byte* o = out_.data() + at;
    for (const std::byte code : data) {
        put_le16(o, table[std::to_integer<unsigned char>(code)]);
        o += 2;
    }
}

void PcmDecoder::decode_gsm_block() {
    // gsm_byte is unsigned char, which may alias any object's bytes.
    gsm_byte* const frame = reinterpret_cast<gsm_byte*>(partial_.data());
    std::array<gsm_signal, gsm_block_samples> samples{};
    // In WAV49 mode the halves carry no magic nibble, so libgsm has nothing to
    // reject; a failure would mean a libgsm unlike Debian's.
    if (gsm_decode(gsm_.get(), frame, samples.data()) < 0 ||
        gsm_decode(gsm_.get(), frame + gsm_second_frame, samples.data() + gsm_block_samples / 2) < 0)
        throw std::runtime_error("libgsm refused a WAV49 frame");
    // A view trimmed to the fact chunk ends inside the last block.
    const std::uint64_t left = layout_.output_size - output_offset_ - out_.size();
    const auto keep = static_cast<std::size_t>(std::min<std::uint64_t>(samples.size(), left / 2));
    const std::size_t at = out_.size();
    out_.resize(at + 2 * keep);
    std::byte* o = out_.data() + at;
    for (std::size_t i = 0; i < keep; ++i) {
        put_le16(o, samples[i]);
        o += 2;
    }
}

void PcmDecoder::flush(const Sink& sink) {
    if (out_.empty()) return;
    sink(std::span<const std::byte>(out_));
    output_offset_ += out_.size();
    out_.clear();
}

}  // namespace euphoria::core
