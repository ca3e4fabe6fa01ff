// Decodes one WAV file into its pcm/ view the way the mount does: the header probed
// from the first bytes, then PcmDecoder fed the file in pieces as a download would
// feed it. Writes the view to --output (default /dev/null) and prints one line of
// JSON with the time the decode took inside the process. run_pcm_bench.sh times
// this process against `sox F -t raw -e signed -b 16 -` on the same file.
//
// usage: pcm_bench INPUT [--output PATH] [--chunk-kb N] [--trim-to-fact]

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "euphoria/core/pcm_decoder.hpp"
#include "euphoria/core/unique_fd.hpp"

namespace {

using euphoria::core::PcmDecoder;
using euphoria::core::PcmStatus;
using euphoria::core::UniqueFd;

int fail(const std::string& what) {
    static_cast<void>(std::fprintf(stderr, "pcm_bench: %s\n", what.c_str()));
    return 1;
}

bool write_all(int fd, std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::string input;
    std::string output = "/dev/null";
    std::size_t chunk = std::size_t{64} * 1024;
    euphoria::core::PcmOptions options;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--output" && i + 1 < argc) {
            output = argv[++i];
        } else if (arg == "--chunk-kb" && i + 1 < argc) {
            const long kb = std::strtol(argv[++i], nullptr, 10);
            if (kb <= 0 || kb > 1024 * 1024) return fail("--chunk-kb wants 1 to 1048576");
            chunk = static_cast<std::size_t>(kb) * 1024;
        } else if (arg == "--trim-to-fact") {
            options.trim_gsm_to_fact = true;
        } else if (input.empty() && !arg.starts_with("--")) {
            input = arg;
        } else {
            static_cast<void>(std::fputs("usage: pcm_bench INPUT [--output PATH] [--chunk-kb N] [--trim-to-fact]\n", stderr));
            return 2;
        }
    }
    if (input.empty()) return fail("no INPUT");

    const auto start = std::chrono::steady_clock::now();
    const UniqueFd in(::open(input.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return fail("cannot open " + input);
    const off_t size = ::lseek(in.get(), 0, SEEK_END);
    if (size < 0 || ::lseek(in.get(), 0, SEEK_SET) != 0) return fail("cannot seek " + input);
    const UniqueFd out(::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!out) return fail("cannot open " + output);

    std::vector<std::byte> buffer(chunk);
    std::vector<std::byte> head;  // the file's first bytes, until the view's size is known
    std::optional<PcmDecoder> decoder;
    bool write_failed = false;
    const PcmDecoder::Sink sink = [&](std::span<const std::byte> b) {
        if (!write_all(out.get(), b)) write_failed = true;
    };
    for (;;) {
        const ssize_t n = ::read(in.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail("cannot read " + input);
        const std::span<const std::byte> piece(buffer.data(), static_cast<std::size_t>(n));
        if (!decoder) {
            head.insert(head.end(), piece.begin(), piece.end());
            const auto probe = euphoria::core::probe_pcm_view(head, static_cast<std::uint64_t>(size), options);
            if (probe.status == PcmStatus::need_more && n > 0) continue;
            if (probe.status != PcmStatus::ok) return fail("no view of " + input + ": " + probe.error);
            decoder.emplace(probe.layout);
            decoder->feed(head, sink);
        } else {
            decoder->feed(piece, sink);
        }
        if (write_failed) return fail("cannot write " + output);
        if (n == 0) break;
    }
    if (!decoder->done()) return fail("the view is short");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto view_bytes = decoder->layout().output_size;
    static_cast<void>(std::printf("{\"input_bytes\": %lld, \"view_bytes\": %llu, \"seconds\": %.6f, "
                                  "\"view_mb_per_s\": %.1f}\n",
                                  static_cast<long long>(size), static_cast<unsigned long long>(view_bytes),
                                  seconds, static_cast<double>(view_bytes) / seconds / 1e6));
    return 0;
}
