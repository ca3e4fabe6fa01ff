#pragma once
// Streaming, strict base64 (RFC 4648, standard alphabet) for the <audioData> text of
// a reply. The text arrives in pieces of any size; decoded bytes leave in large
// blocks, so a recording of any length decodes in constant memory.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "euphoria/api/sink.hpp"

namespace euphoria::api {

class Base64Decoder {
public:
    // Decoded bytes flow to out.write() in blocks of exactly block_size, the rest at
    // finish().
    explicit Base64Decoder(Sink& out);
    Base64Decoder(const Base64Decoder&) = delete;
    Base64Decoder& operator=(const Base64Decoder&) = delete;

    static constexpr std::size_t block_size = std::size_t{64} << 10;

    // Accepts XML whitespace (space, tab, CR, LF) anywhere and padding only at the end
    // of the final quantum. Throws ApiError(EIO, malformed) for any other byte, for
    // misplaced '=' and for data after padding. After a throw the decoder is spent.
    void feed(const char* data, std::size_t size);

    // Like feed(), but stops without throwing at the first byte that can be neither
    // base64 nor whitespace, and returns how many bytes it consumed. Lets a caller
    // hand the decoder a run of text without first finding where the text ends.
    std::size_t feed_prefix(const char* data, std::size_t size);

    // End of the text: flushes. Throws if the text stopped inside a quantum.
    void finish();

    std::uint64_t decoded_bytes() const noexcept { return flushed_ + used_; }

    // How far into the text the decoder is, in bytes and in lines. A caller that
    // feeds text past its XML parser uses it to keep that parser's positions right.
    struct TextPosition {
        std::uint64_t offset = 0;       // text bytes consumed
        std::uint64_t line_breaks = 0;  // '\n' among them
        std::uint64_t line_start = 0;   // offset just past the last '\n'
    };
    const TextPosition& position() const noexcept { return position_; }

private:
    std::size_t decode(const unsigned char* data, std::size_t size, bool stop_at_foreign);
    // Takes one byte that is not whitespace: false if it is not base64 either,
    // throws if it is '=' or data where the quantum cannot have it.
    bool take_slow(unsigned char c, std::uint64_t text_offset);
    void emit(std::uint32_t quantum, std::size_t bytes);
    void write_block();
    void flush();
    [[noreturn]] void fail(const char* what, std::uint64_t text_offset) const;

    Sink& out_;
    std::unique_ptr<unsigned char[]> block_;
    std::size_t used_ = 0;       // decoded bytes waiting in block_
    std::uint64_t flushed_ = 0;  // decoded bytes already written to out_
    TextPosition position_;      // also for error messages
    std::uint32_t quantum_ = 0;  // sextets of the quantum in progress
    int quantum_chars_ = 0;      // characters of it seen, '=' included
    int padding_ = 0;            // '=' characters in it
    bool ended_ = false;         // a padded quantum ended the data
};

}  // namespace euphoria::api
