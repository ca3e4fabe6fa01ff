#pragma once
// Helpers of the WAV and pcm/ view tests: WAV files built byte by byte, and real
// recordings made by espeak-ng and sox (tests/deps.sh installs both).

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>  // environ, which g++'s _GNU_SOURCE declares

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace euphoria::test {

using Bytes = std::vector<std::byte>;

inline std::span<const std::byte> as_span(const Bytes& b) { return {b.data(), b.size()}; }

// A WAV file assembled chunk by chunk, sizes and padding as given: a test states
// exactly the bytes it means, well-formed or not.
class WavBuilder {
public:
    WavBuilder& riff(std::uint32_t size = 0) {
        tag("RIFF");
        u32(size);
        return tag("WAVE");
    }
    WavBuilder& tag(const char* t) {
        for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<std::byte>(t[i]));
        return *this;
    }
    WavBuilder& u16(std::uint16_t v) {
        bytes_.push_back(static_cast<std::byte>(v & 0xFFU));
        bytes_.push_back(static_cast<std::byte>(v >> 8U));
        return *this;
    }
    WavBuilder& u32(std::uint32_t v) {
        u16(static_cast<std::uint16_t>(v & 0xFFFFU));
        return u16(static_cast<std::uint16_t>(v >> 16U));
    }
    WavBuilder& fill(std::size_t n, std::uint8_t value) {
        bytes_.insert(bytes_.end(), n, static_cast<std::byte>(value));
        return *this;
    }
    WavBuilder& append(std::span<const std::byte> b) {
        bytes_.insert(bytes_.end(), b.begin(), b.end());
        return *this;
    }
    // A 16-byte fmt body, then `extra` more bytes of extension (its cbSize first).
    WavBuilder& fmt(std::uint16_t format, std::uint16_t channels, std::uint32_t rate,
                    std::uint16_t block_align, std::uint16_t bits) {
        tag("fmt ");
        u32(16);
        return fmt_body(format, channels, rate, block_align, bits);
    }
    WavBuilder& fmt_body(std::uint16_t format, std::uint16_t channels, std::uint32_t rate,
                         std::uint16_t block_align, std::uint16_t bits) {
        u16(format);
        u16(channels);
        u32(rate);
        u32(rate * block_align);
        u16(block_align);
        return u16(bits);
    }
    // The fmt chunk sox writes for GSM 6.10: cbSize 2, wSamplesPerBlock.
    WavBuilder& gsm_fmt(std::uint16_t samples_per_block = 320, std::uint16_t block_align = 65) {
        tag("fmt ");
        u32(20);
        fmt_body(0x31, 1, 8000, block_align, 0);
        u16(2);
        return u16(samples_per_block);
    }
    WavBuilder& chunk(const char* t, std::uint32_t size) {
        tag(t);
        return u32(size);
    }
    const Bytes& bytes() const { return bytes_; }
    std::size_t size() const { return bytes_.size(); }

private:
    Bytes bytes_;
};

inline Bytes read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    const std::vector<char> chars{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    Bytes b(chars.size());
    for (std::size_t i = 0; i < chars.size(); ++i) b[i] = static_cast<std::byte>(chars[i]);
    return b;
}

inline void write_file(const std::string& path, std::span<const std::byte> bytes) {
    std::ofstream out(path, std::ios::binary);
    for (const std::byte b : bytes) out.put(static_cast<char>(b));
    if (!out) throw std::runtime_error("cannot write " + path);
}

// Runs a program without a shell, its stdout to `out_path` (or inherited when empty)
// and its stderr to /dev/null. Returns its exit status, or -1.
inline int run_tool(std::vector<std::string> argv, const std::string& out_path = {}) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!out_path.empty())
        posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return -1;
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// sox's decode of `path` to raw signed 16-bit little-endian samples.
inline Bytes sox_decode(const std::string& path, const std::string& scratch) {
    if (run_tool({"sox", "-V1", path, "-t", "raw", "-e", "signed", "-b", "16", "-L", "-"}, scratch) != 0)
        throw std::runtime_error("sox could not decode " + path);
    return read_file(scratch);
}

// A few seconds of espeak-ng speech in `dir`/speech.wav, and from it 8 kHz mono
// originals as a PBX writes them: speech-gsm.wav, -alaw, -ulaw and -pcm16.
inline void make_recordings(const std::string& dir) {
    const std::string speech = dir + "/speech.wav";
    if (run_tool({"espeak-ng", "-w", speech,
                  "Thank you for calling. Your call may be recorded for quality and training "
                  "purposes. Please hold while we connect you to the next available agent."}) != 0)
        throw std::runtime_error("espeak-ng failed (tests/deps.sh installs it)");
    const std::vector<std::pair<std::string, std::vector<std::string>>> encodings = {
        {"gsm", {"-e", "gsm-full-rate"}},
        {"alaw", {"-e", "a-law"}},
        {"ulaw", {"-e", "u-law"}},
        {"pcm16", {"-e", "signed", "-b", "16"}},
    };
    for (const auto& [name, flags] : encodings) {
        std::vector<std::string> argv = {"sox", "-V1", speech, "-r", "8000", "-c", "1"};
        argv.insert(argv.end(), flags.begin(), flags.end());
        std::string out = dir;
        out += "/speech-";
        out += name;
        out += ".wav";
        argv.push_back(std::move(out));
        if (run_tool(argv) != 0) throw std::runtime_error("sox could not encode " + name);
    }
}

}  // namespace euphoria::test
