#include "euphoria/core/wav_format.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace euphoria::core {
namespace {

std::uint16_t u16_at(std::span<const std::byte> b, std::size_t at) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(b[at]) |
                                      (std::to_integer<unsigned>(b[at + 1]) << 8U));
}

std::uint32_t u32_at(std::span<const std::byte> b, std::size_t at) {
    return static_cast<std::uint32_t>(u16_at(b, at)) |
           (static_cast<std::uint32_t>(u16_at(b, at + 2)) << 16U);
}

// Compares what the prefix holds of [at, at + tag.size()) with tag: a prefix too
// short to tell is no mismatch yet.
bool mismatch_at(std::span<const std::byte> b, std::size_t at, std::string_view tag) {
    for (std::size_t i = 0; i < tag.size() && at + i < b.size(); ++i)
        if (std::to_integer<char>(b[at + i]) != tag[i]) return true;
    return false;
}

bool is_tag(std::span<const std::byte> b, std::size_t at, std::string_view tag) {
    return at + tag.size() <= b.size() && !mismatch_at(b, at, tag);
}

// KSDATAFORMAT_SUBTYPE_* GUIDs are {tag-0000-0010-8000-00AA00389B71}: these are the
// bytes after the tag's two, as stored.
constexpr std::array<unsigned char, 14> ks_guid_tail = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                                       0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

WavParse malformed(std::string error) {
    WavParse p;
    p.status = WavStatus::malformed;
    p.error = std::move(error);
    return p;
}

WavParse need_more(std::uint64_t needed) {
    WavParse p;
    p.status = WavStatus::need_more;
    p.needed = needed;
    return p;
}

// The fmt chunk's body, whole in `body`. Returns an error, or empty.
std::string read_fmt(std::span<const std::byte> body, WavInfo& info) {
    if (body.size() < 16) return "fmt chunk shorter than 16 bytes";
    info.format_tag = u16_at(body, 0);
    info.channels = u16_at(body, 2);
    info.sample_rate = u32_at(body, 4);
    info.byte_rate = u32_at(body, 8);
    info.block_align = u16_at(body, 12);
    info.bits_per_sample = u16_at(body, 14);
    if (info.channels == 0) return "fmt chunk with 0 channels";
    if (info.sample_rate == 0) return "fmt chunk with a sample rate of 0";
    if (info.block_align == 0) return "fmt chunk with a block align of 0";
    // The extension's cbSize is not checked against the chunk: writers get it wrong,
    // and sox reads such files. What is read of it must be in the chunk.
    const std::uint16_t extra = body.size() >= 18 ? u16_at(body, 16) : 0;
    if (info.format_tag == wav_format_extensible) {
        if (extra < 22 || body.size() < 40)
            return "WAVE_FORMAT_EXTENSIBLE with an extension shorter than 22 bytes";
        info.extensible = true;
        const auto tail = body.subspan(26, ks_guid_tail.size());
        // Any other GUID is a format nobody here knows: leave the tag 0xFFFE.
        if (std::equal(tail.begin(), tail.end(), ks_guid_tail.begin(),
                       [](std::byte a, unsigned char b) { return std::to_integer<unsigned char>(a) == b; }))
            info.format_tag = u16_at(body, 24);
    } else if (extra >= 2 && body.size() >= 20) {
        // GSM 6.10's wSamplesPerBlock, and IMA ADPCM's, share this place.
        info.samples_per_block = u16_at(body, 18);
    }
    return {};
}

}  // namespace

WavParse parse_wav_header(std::span<const std::byte> prefix, std::optional<std::uint64_t> file_size) {
    if (file_size && prefix.size() > *file_size) prefix = prefix.first(static_cast<std::size_t>(*file_size));
    const auto past_end = [&](std::uint64_t end) { return file_size && end > *file_size; };

    if (mismatch_at(prefix, 0, "RIFF") || mismatch_at(prefix, 8, "WAVE"))
        return malformed("not a RIFF/WAVE file");
    if (prefix.size() < 12) {
        if (past_end(12)) return malformed("shorter than a RIFF/WAVE header");
        return need_more(12);
    }

    // The RIFF size is not checked: writers to a pipe leave it 0 or too large.
    WavInfo info;
    bool have_fmt = false;
    std::uint64_t pos = 12;
    for (;;) {
        if (pos + 8 > wav_max_header_bytes) return malformed("no data chunk in the first MiB");
        if (past_end(pos + 8)) return malformed("no data chunk");
        if (prefix.size() < pos + 8) return need_more(pos + 8);
        const auto at = static_cast<std::size_t>(pos);
        const std::uint64_t size = u32_at(prefix, at + 4);
        const std::uint64_t body = pos + 8;

        if (is_tag(prefix, at, "data")) {
            if (!have_fmt) return malformed("data chunk before the fmt chunk");
            info.data_offset = body;
            info.data_length = size;
            if (file_size && body + size > *file_size) {
                info.data_length = *file_size - body;
                info.data_truncated = true;
            }
            WavParse p;
            p.status = WavStatus::ok;
            p.info = info;
            return p;
        }

        const bool fmt = is_tag(prefix, at, "fmt ");
        const bool fact = is_tag(prefix, at, "fact");
        if (fmt || fact) {
            if (body + size > wav_max_header_bytes) return malformed("fmt or fact chunk larger than a MiB");
            if (past_end(body + size)) return malformed("fmt or fact chunk runs past the end of the file");
            if (prefix.size() < body + size) return need_more(body + size);
            const auto bytes = prefix.subspan(static_cast<std::size_t>(body), static_cast<std::size_t>(size));
            if (fmt) {
                if (have_fmt) return malformed("two fmt chunks");
                if (auto error = read_fmt(bytes, info); !error.empty()) return malformed(std::move(error));
                have_fmt = true;
            } else if (size >= 4) {
                info.fact_samples = u32_at(bytes, 0);
            }
        }
        // Chunks are padded to an even size; the size does not count the pad byte.
        pos = body + size + (size & 1U);
    }
}

}  // namespace euphoria::core
