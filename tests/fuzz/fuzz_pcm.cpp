// Fuzzes the pcm/ view: parse_wav_header, plan_pcm_view and PcmDecoder.
//
// Input: byte 0 picks how the original is split for the decoder (bits 0-6: a piece
// size of 1 to 128 bytes; bit 7: sizes that vary from piece to piece); the rest is
// the original file.
//
// Checks, any failure aborts (a libFuzzer finding):
//   - the probe never throws; malformed and unsupported carry a reason;
//   - a prefix shorter than the data chunk's start asks for more, and the prefix up
//     to it gives the same layout as the whole file (the size is known that early);
//   - the view's size is 44 + 2 x samples, and exactly what the decoder emits, in
//     one piece or in the chosen pieces, with the same bytes both ways;
//   - after every feed, output_offset == output_ready(input_offset);
//   - input_needed(k) is the shortest prefix that makes output offset k ready;
//   - the view starts with pcm_wav_header(layout);
//   - trimmed to GSM's fact chunk, the view is the untrimmed view's samples, cut.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "euphoria/core/pcm_decoder.hpp"

namespace {

using euphoria::core::PcmDecoder;
using euphoria::core::PcmLayout;
using euphoria::core::PcmStatus;
using euphoria::core::probe_pcm_view;

[[noreturn]] void finding(const char* what) {
    // Nothing to do if stderr fails: abort() reports the finding anyway.
    static_cast<void>(std::fprintf(stderr, "\n*** fuzz_pcm finding: %s\n", what));
    static_cast<void>(std::fflush(stderr));
    std::abort();
}

void check(bool ok, const char* what) {
    if (!ok) finding(what);
}

bool same_layout(const PcmLayout& a, const PcmLayout& b) {
    return a.codec == b.codec && a.sample_rate == b.sample_rate && a.data_offset == b.data_offset &&
           a.data_length == b.data_length && a.samples == b.samples && a.output_size == b.output_size;
}

std::vector<std::byte> decode(const PcmLayout& layout, std::span<const std::byte> file, std::uint8_t split) {
    std::vector<std::byte> view;
    PcmDecoder decoder(layout);
    const PcmDecoder::Sink sink = [&](std::span<const std::byte> b) { view.insert(view.end(), b.begin(), b.end()); };
    std::size_t piece = (split & 0x7FU) + 1U;
    do {
        const std::size_t n = split == 0xFF ? file.size() : std::min(piece, file.size());
        decoder.feed(file.first(n), sink);
        file = file.subspan(n);
        check(decoder.output_offset() == view.size(), "output_offset differs from the bytes emitted");
        check(decoder.output_offset() == layout.output_ready(decoder.input_offset()),
              "output_offset differs from output_ready(input_offset)");
        if (split & 0x80U) piece = (piece * 5 + 3) % 131 + 1;
    } while (!file.empty());
    check(decoder.done(), "the decoder is not done at the end of the file");
    return view;
}

void check_input_needed(const PcmLayout& layout) {
    for (std::uint64_t k = 1; k <= layout.output_size; k += 1 + k / 3) {
        const std::uint64_t need = layout.input_needed(k);
        check(layout.output_ready(need) >= k, "input_needed(k) does not make k ready");
        check(need == 0 || layout.output_ready(need - 1) < k, "input_needed(k) is not the shortest");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t split = data[0];
    const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data + 1), size - 1);

    const auto probe = probe_pcm_view(file, file.size());
    check(probe.status != PcmStatus::need_more, "a whole file asks for more");
    if (probe.status != PcmStatus::ok) {
        check(!probe.error.empty(), "a refusal without a reason");
        return 0;
    }
    const PcmLayout& layout = probe.layout;
    check(layout.output_size == 44 + 2 * layout.samples, "the size is not 44 + 2 x samples");
    check(layout.data_offset + layout.data_length <= file.size(), "the data runs past the file");

    // The size is known from the first data_offset bytes, and not before.
    const auto early = probe_pcm_view(file.first(static_cast<std::size_t>(layout.data_offset)), file.size());
    check(early.status == PcmStatus::ok && same_layout(early.layout, layout),
          "the header's prefix gives another layout than the whole file");
    if (layout.data_offset > 0) {
        const auto short_prefix =
            probe_pcm_view(file.first(static_cast<std::size_t>(layout.data_offset) - 1), file.size());
        check(short_prefix.status == PcmStatus::need_more, "a prefix before the data does not ask for more");
        check(short_prefix.needed > layout.data_offset - 1 && short_prefix.needed <= layout.data_offset,
              "need_more asks for the wrong prefix length");
    }

    const auto whole = decode(layout, file, 0xFF);
    check(whole.size() == layout.output_size, "the view's size differs from what the decoder emits");
    const auto header = euphoria::core::pcm_wav_header(layout);
    check(std::equal(header.begin(), header.end(), whole.begin()), "the view does not start with its header");
    check(decode(layout, file, split) == whole, "pieces change the view");

    check_input_needed(layout);

    euphoria::core::PcmOptions trim;
    trim.trim_gsm_to_fact = true;
    const auto trimmed = probe_pcm_view(file, file.size(), trim);
    check(trimmed.status == PcmStatus::ok, "trimming changes the status");
    check(trimmed.layout.samples <= layout.samples && trimmed.layout.samples + 320 > layout.samples,
          "trimming cuts more than a GSM block");
    const auto cut = decode(trimmed.layout, file, split);
    check(cut.size() == trimmed.layout.output_size, "the trimmed view's size differs from what is emitted");
    check(std::equal(cut.begin() + 44, cut.end(), whole.begin() + 44), "trimming changes the samples");
    check_input_needed(trimmed.layout);
    return 0;
}
