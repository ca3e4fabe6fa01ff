// Times ReplyParser on a large recording reply held in memory, fed in pieces the
// way libcurl feeds it, and prints the result as JSON. It also writes the bare
// base64 payload to a file, so a script can time `base64 -d` on the same data.
//
// usage: parse_bench [--size-mb N] [--wrap] [--runs N] [--chunk-kb N] [--payload PATH]

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "euphoria/api/error.hpp"
#include "euphoria/api/reply_parser.hpp"
#include "test_bytes.hpp"

namespace {

struct Options {
    double size_mb = 100;  // of base64 text, in 10^6 bytes
    bool wrap = false;     // CRLF every 76 characters, as MIME encoders do
    int runs = 5;
    std::size_t chunk = 512 * 1024;
    std::string payload_path;
};

[[noreturn]] void usage() {
    static_cast<void>(std::fputs("usage: parse_bench [--size-mb N] [--wrap] [--runs N] "
                                 "[--chunk-kb N] [--payload PATH]\n",
                                 stderr));
    std::exit(2);  // NOLINT(concurrency-mt-unsafe): only while parsing options, one thread
}

// A number from 0 to max, or usage().
double number(const char* text, double max) {
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !(value >= 0 && value <= max)) usage();
    return value;
}

Options parse_options(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (arg == "--size-mb") {
            options.size_mb = number(value(), 1e6);
        } else if (arg == "--wrap") {
            options.wrap = true;
        } else if (arg == "--runs") {
            options.runs = static_cast<int>(number(value(), 1e6));
        } else if (arg == "--chunk-kb") {
            options.chunk = static_cast<std::size_t>(number(value(), 1 << 20)) * 1024;
        } else if (arg == "--payload") {
            options.payload_path = value();
        } else {
            usage();
        }
    }
    if (options.size_mb <= 0 || options.runs < 1 || options.chunk == 0) usage();
    return options;
}

class CountingSink final : public euphoria::api::Sink {
public:
    void reset() override {
        bytes_ = 0;
        completes_ = 0;
    }
    void write(std::span<const std::byte> data) override { bytes_ += data.size(); }
    void complete() override { ++completes_; }

    std::uint64_t bytes() const { return bytes_; }
    int completes() const { return completes_; }

private:
    std::uint64_t bytes_ = 0;
    int completes_ = 0;
};


std::string wrap(const std::string& text, std::string_view newline) {
    std::string wrapped;
    wrapped.reserve(text.size() + text.size() / 76 * newline.size() + newline.size());
    for (std::size_t i = 0; i < text.size(); i += 76) {
        wrapped.append(text, i, 76);
        wrapped.append(newline);
    }
    return wrapped;
}

struct Reply {
    std::string xml;
    std::string payload;  // the base64 text alone, as `base64 -d` can read it
    std::uint64_t decoded_size = 0;
};

Reply build_reply(const Options& options) {
    Reply reply;
    reply.decoded_size = static_cast<std::uint64_t>(options.size_mb * 1e6) / 4 * 3;
    const std::string text =
        euphoria::test::encode_base64(euphoria::test::random_bytes(reply.decoded_size, 20201023));
    // GNU base64 -d rejects CR, so its copy of a wrapped payload uses bare LF.
    reply.payload = options.wrap ? wrap(text, "\n") : text;
    reply.xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<XML>\r\n  <CallRecording>\r\n"
                "    <fileName>pbx4-1603469421.1196632-bench.WAV</fileName>\r\n    <audioData>";
    reply.xml += options.wrap ? wrap(text, "\r\n") : text;
    reply.xml += "</audioData>\r\n  </CallRecording>\r\n</XML>\r\n";
    return reply;
}

double time_parse(const std::string& xml, std::size_t chunk, CountingSink& sink) {
    const auto start = std::chrono::steady_clock::now();
    euphoria::api::ReplyParser parser(sink);
    for (std::size_t at = 0; at < xml.size(); at += chunk) {
        parser.feed(xml.data() + at, std::min(chunk, xml.size() - at));
    }
    parser.finish();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    const Reply reply = build_reply(options);
    if (!options.payload_path.empty() && !write_file(options.payload_path, reply.payload)) {
        static_cast<void>(
            std::fprintf(stderr, "parse_bench: cannot write %s\n", options.payload_path.c_str()));
        return 1;
    }

    std::vector<double> seconds;
    try {
        for (int run = 0; run < options.runs; ++run) {
            CountingSink sink;
            seconds.push_back(time_parse(reply.xml, options.chunk, sink));
            if (sink.bytes() != reply.decoded_size || sink.completes() != 1) {
                static_cast<void>(std::fprintf(stderr, "parse_bench: decoded %llu bytes, expected %llu\n",
                                               static_cast<unsigned long long>(sink.bytes()),
                                               static_cast<unsigned long long>(reply.decoded_size)));
                return 1;
            }
        }
    } catch (const euphoria::api::ApiError& e) {
        static_cast<void>(std::fprintf(stderr, "parse_bench: %s\n", e.what()));
        return 1;
    }

    std::vector<double> sorted = seconds;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t mid = sorted.size() / 2;
    const double best = sorted.front();
    const double median = sorted.size() % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    const auto mb_per_s = [&](double s) {
        return static_cast<double>(reply.decoded_size) / s / 1e6;
    };

    std::printf("{\"reply_bytes\": %zu, \"decoded_bytes\": %llu, \"wrapped\": %s, "
                "\"chunk_bytes\": %zu, \"runs\": %d, \"seconds\": [",
                reply.xml.size(), static_cast<unsigned long long>(reply.decoded_size),
                options.wrap ? "true" : "false", options.chunk, options.runs);
    for (std::size_t i = 0; i < seconds.size(); ++i) {
        std::printf("%s%.6f", i ? ", " : "", seconds[i]);
    }
    std::printf("], \"best_mb_per_s\": %.1f, \"median_mb_per_s\": %.1f, "
                "\"median_input_mb_per_s\": %.1f}\n",
                mb_per_s(best), mb_per_s(median),
                static_cast<double>(reply.xml.size()) / median / 1e6);
    return 0;
}
