#pragma once
// Reads the header of a RIFF/WAVE file: the fmt chunk's fields and where the data
// chunk's bytes lie. Knows nothing of codecs; pcm_decoder.hpp decides what it can
// decode. Works on a prefix of the file, since the pcm/ view's size must be known
// from the first bytes of a download, before the rest arrives.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace euphoria::core {

// The format tags the pcm/ view knows (RFC 2361; mmreg.h).
inline constexpr std::uint16_t wav_format_pcm = 0x0001;
inline constexpr std::uint16_t wav_format_alaw = 0x0006;
inline constexpr std::uint16_t wav_format_mulaw = 0x0007;
inline constexpr std::uint16_t wav_format_gsm610 = 0x0031;
inline constexpr std::uint16_t wav_format_extensible = 0xFFFE;

// A header whose chunks before "data" span more than this is refused as malformed:
// real recordings have a few dozen bytes of them, and the bound keeps a reader from
// waiting on (or a parser from walking) gigabytes of made-up chunks.
inline constexpr std::uint64_t wav_max_header_bytes = 1U << 20;

struct WavInfo {
    // For WAVE_FORMAT_EXTENSIBLE, the subformat's tag (the GUID's first two bytes),
    // so that callers never see 0xFFFE; `extensible` says it was one.
    std::uint16_t format_tag = 0;
    bool extensible = false;
    std::uint16_t channels = 0;
    std::uint32_t sample_rate = 0;
    std::uint32_t byte_rate = 0;
    std::uint16_t block_align = 0;
    std::uint16_t bits_per_sample = 0;
    // From the fmt extension of GSM 6.10 (and other block codecs); 0 when absent.
    std::uint16_t samples_per_block = 0;
    // The fact chunk's sample count, when there is one. Informative only: sox
    // decodes every whole block whatever it says.
    std::optional<std::uint32_t> fact_samples;
    // Where the data chunk's bytes start in the file, and how many of them there
    // are: the chunk's declared size, cut to the end of the file when its size was
    // given (sox, too, decodes what is there).
    std::uint64_t data_offset = 0;
    std::uint64_t data_length = 0;
    // The declared size exceeded the file.
    bool data_truncated = false;
};

enum class WavStatus {
    ok,
    need_more,  // the prefix ends before the data chunk's header does
    malformed,
};

struct WavParse {
    WavStatus status = WavStatus::malformed;
    WavInfo info;  // valid when status is ok
    // need_more: the prefix length at which to try again (a lower bound).
    std::uint64_t needed = 0;
    // malformed: what is wrong, for the log. Quotes no file content.
    std::string error;
};

// Parses the header from the first bytes of a file. `file_size`, when known (the
// recording's size from its listing or its completed download), lets a data chunk
// that claims more than the file holds be cut, and a chunk past the end be refused
// instead of waited for. Bounded: it looks at no more than wav_max_header_bytes.
WavParse parse_wav_header(std::span<const std::byte> prefix,
                          std::optional<std::uint64_t> file_size = std::nullopt);

}  // namespace euphoria::core
