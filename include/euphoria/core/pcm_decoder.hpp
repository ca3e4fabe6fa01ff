#pragma once
// The pcm/ view of a recording (issue 15): the original decoded to a canonical
// 16-bit PCM WAV, in one streaming pass over the original's bytes as they arrive.
//
//   probe_pcm_view(first bytes, file size) -> the view's exact size, or why not;
//   PcmDecoder(layout).feed(bytes, sink)  -> the view's bytes, in order;
//   layout.output_ready(n) / input_needed(k) map between the two offsets.
//
// What a view is, per source format:
//   - GSM 6.10 (0x31, Microsoft "WAV49": 65-byte blocks of 320 samples), decoded by
//     libgsm; a trailing partial block yields nothing, as in sox, which warns and
//     stops there;
//   - G.711 A-law (6) and µ-law (7): one sample per byte, odd lengths included;
//   - 16-bit PCM (1): the samples as they are, a trailing odd byte dropped;
//   - WAVE_FORMAT_EXTENSIBLE whose subformat is one of those: the same.
// The view is always a 44-byte header (format 1, mono, 16-bit) and the samples, so
// its size is 44 + 2 x samples. It keeps the original's sample rate: recordings are
// 8000 Hz, and resampling any other would break the equality with sox's decode.
// More than one channel, another sample size or any other format is unsupported.
//
// GSM's fact chunk: a GSM original's last block is padded with silence to 320
// samples, and its fact chunk says how many samples are real. sox ignores it and
// decodes every whole block, so by default the view does too (its samples equal
// sox's). ffprobe and ffmpeg take the duration from it, up to 319 samples (40 ms)
// less; PcmOptions::trim_gsm_to_fact makes the view that long instead.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "euphoria/core/wav_format.hpp"

struct gsm_state;  // libgsm's handle; the header stays free of <gsm.h>

namespace euphoria::core {

inline constexpr std::uint64_t pcm_header_bytes = 44;

enum class PcmCodec { pcm16, alaw, mulaw, gsm610 };

// Where the view's bytes come from: every figure follows from the original's header.
struct PcmLayout {
    PcmCodec codec = PcmCodec::pcm16;
    std::uint32_t sample_rate = 8000;
    std::uint64_t data_offset = 0;  // in the original
    std::uint64_t data_length = 0;  // what is decoded of it (whole blocks for GSM)
    std::uint64_t samples = 0;      // of the view: fewer than decoded when trimmed to fact
    std::uint64_t output_size = pcm_header_bytes;  // 44 + 2 x samples

    // How many of the view's first bytes the first `input_prefix` bytes of the
    // original make: exactly what a PcmDecoder fed them has emitted.
    std::uint64_t output_ready(std::uint64_t input_prefix) const noexcept;
    // The shortest prefix of the original that makes the view's first
    // `output_end` bytes (cut to output_size): a reader of [off, off + len) waits
    // for input_needed(off + len) bytes of the download. Never past the data.
    std::uint64_t input_needed(std::uint64_t output_end) const noexcept;
};

enum class PcmStatus {
    ok,
    need_more,    // the original's prefix ends inside its header: wait for `needed` bytes
    malformed,    // not a readable WAV: EIO
    unsupported,  // a WAV, but no format the view decodes: EOPNOTSUPP
};

struct PcmProbe {
    PcmStatus status = PcmStatus::malformed;
    PcmLayout layout;          // valid when ok
    WavInfo info;              // valid when ok or unsupported
    std::uint64_t needed = 0;  // need_more: a lower bound of the prefix to wait for
    std::string error;         // malformed or unsupported: for the log
};

// What the view of a parsed original is, or why there is none.
struct PcmOptions {
    // Cut a GSM view to the fact chunk's sample count, when it falls inside the last
    // whole block (a larger cut would drop real audio after a writer's bad fact).
    bool trim_gsm_to_fact = false;
};

PcmProbe plan_pcm_view(const WavInfo& info, const PcmOptions& options = {});
// parse_wav_header and plan_pcm_view in one: the view's size from the original's
// first bytes. Give `file_size` whenever it is known, so that a data chunk claiming
// more than the file holds is cut as sox cuts it, and the size agrees with a read.
PcmProbe probe_pcm_view(std::span<const std::byte> prefix,
                        std::optional<std::uint64_t> file_size = std::nullopt,
                        const PcmOptions& options = {});

// The view's first 44 bytes.
std::array<std::byte, pcm_header_bytes> pcm_wav_header(const PcmLayout& layout) noexcept;

struct GsmDeleter {
    void operator()(gsm_state* handle) const noexcept;
};

// Decodes one original into its view, from its first byte to its last, in pieces
// of any size. Not thread-safe: one feeder; readers share what the sink stores.
class PcmDecoder {
public:
    using Sink = std::function<void(std::span<const std::byte>)>;

    // Throws std::bad_alloc, or std::runtime_error if libgsm lacks WAV49 support.
    explicit PcmDecoder(const PcmLayout& layout);

    // The next bytes of the original, which start at input_offset() (0 at first:
    // the header too, which is skipped). Emits through `sink` every view byte they
    // complete, so after it output_offset() == layout().output_ready(input_offset()).
    // Bytes past the data chunk are consumed and ignored. An exception from the
    // sink propagates; the decoder is then unusable.
    void feed(std::span<const std::byte> bytes, const Sink& sink);

    std::uint64_t input_offset() const noexcept { return input_offset_; }
    std::uint64_t output_offset() const noexcept { return output_offset_; }
    // Every byte of the view has been emitted.
    bool done() const noexcept { return output_offset_ == layout_.output_size; }
    const PcmLayout& layout() const noexcept { return layout_; }

private:
    void decode_data(std::span<const std::byte> data);
    void decode_gsm_block();  // the whole block in partial_
    void flush(const Sink& sink);

    PcmLayout layout_;
    std::unique_ptr<gsm_state, GsmDeleter> gsm_;
    std::uint64_t input_offset_ = 0;
    std::uint64_t output_offset_ = 0;
    std::array<std::byte, 65> partial_{};  // a GSM block split between two feeds
    std::size_t partial_size_ = 0;
    std::vector<std::byte> out_;  // decoded, not yet given to the sink
};

}  // namespace euphoria::core
