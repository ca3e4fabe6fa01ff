#include "euphoria/api/base64.hpp"

#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>

#include "euphoria/api/error.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define EUPHORIA_BASE64_AVX2 1
#endif

namespace euphoria::api {

namespace {

// A quantum's word is its 3 decoded bytes in the low 24 bits, first byte lowest.
// A non-alphabet byte looks up a word with bit 24 set, and ORing words keeps it set,
// so one test per group of quanta tells whether the group was all alphabet.
constexpr std::uint32_t not_alphabet = 0x01FFFFFF;
constexpr std::uint32_t not_alphabet_mask = 0xFF000000;

constexpr int sextet_of(unsigned c) {
    if (c >= 'A' && c <= 'Z') return static_cast<int>(c - 'A');
    if (c >= 'a' && c <= 'z') return static_cast<int>(c - 'a' + 26);
    if (c >= '0' && c <= '9') return static_cast<int>(c - '0' + 52);
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// One table per position in a quantum, each holding that character's bits already
// shifted into place in the word: a quantum is four lookups and three ORs.
using PositionTable = std::array<std::uint32_t, 256>;
struct QuantumTables {
    PositionTable first, second, third, fourth;
};

constexpr QuantumTables make_quantum_tables() {
    QuantumTables t{};
    for (unsigned c = 0; c < 256; ++c) {
        const int s = sextet_of(c);
        if (s < 0) {
            t.first[c] = t.second[c] = t.third[c] = t.fourth[c] = not_alphabet;
            continue;
        }
        const auto v = static_cast<std::uint32_t>(s);
        t.first[c] = v << 2;
        t.second[c] = (v >> 4) | ((v & 0x0F) << 12);
        t.third[c] = ((v >> 2) << 8) | ((v & 0x03) << 22);
        t.fourth[c] = v << 16;
    }
    return t;
}

constexpr QuantumTables quantum_tables = make_quantum_tables();

// The slow path's view of a byte: a sextet (0..63) or one of these.
constexpr std::uint8_t class_whitespace = 64;
constexpr std::uint8_t class_padding = 65;
constexpr std::uint8_t class_foreign = 255;

constexpr std::array<std::uint8_t, 256> make_byte_classes() {
    std::array<std::uint8_t, 256> classes{};
    for (unsigned c = 0; c < 256; ++c) {
        const int s = sextet_of(c);
        if (s >= 0) {
            classes[c] = static_cast<std::uint8_t>(s);
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            classes[c] = class_whitespace;
        } else if (c == '=') {
            classes[c] = class_padding;
        } else {
            classes[c] = class_foreign;
        }
    }
    return classes;
}

constexpr std::array<std::uint8_t, 256> byte_classes = make_byte_classes();

// Room past the block's end: the fast path fills the block while it has room for
// one more byte, so it can overrun by a group of quanta plus its spare store bytes.
// Overrun bytes move to the next block, so every write but the last is block_size.
// The AVX2 path stores 32 bytes for every 24 it decodes.
constexpr std::size_t block_slack = 48;

inline std::uint32_t quantum_word(const unsigned char* in) {
    return quantum_tables.first[in[0]] | quantum_tables.second[in[1]] |
           quantum_tables.third[in[2]] | quantum_tables.fourth[in[3]];
}

// Stores the word's 3 bytes. On little-endian it stores 4: the spare byte lands where
// the next quantum (or the slack) goes, and one unaligned store beats three.
inline void store_word(unsigned char* out, std::uint32_t word) {
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(out, &word, sizeof word);
    } else {
        out[0] = static_cast<unsigned char>(word);
        out[1] = static_cast<unsigned char>(word >> 8);
        out[2] = static_cast<unsigned char>(word >> 16);
    }
}

#ifdef EUPHORIA_BASE64_AVX2
// 32 characters per step, after Muła and Lemire ("Faster Base64 Encoding and
// Decoding Using AVX2 Instructions", 2018): nibble lookups validate and translate,
// two multiply-adds pack the sextets. Stops before the first 32 that are not all
// alphabet, so what it decodes is exactly what the scalar loop would: the scalar
// code then finds the odd byte and keeps the error messages and positions.
// Debian's baseline is x86-64 without AVX2, hence the target attribute and the
// run-time check in decode_quanta.
__attribute__((target("avx2"))) const unsigned char* decode_avx2(
    const unsigned char* in, const unsigned char* end, unsigned char*& out,
    const unsigned char* out_end) {
    // A character is in the alphabet when its low- and high-nibble classes share no bit.
    const __m256i lut_lo = _mm256_setr_epi8(
        0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A,
        0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
    const __m256i lut_hi = _mm256_setr_epi8(
        0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
        0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
    // What to add to a character to get its sextet, by high nibble ('/' one below).
    const __m256i lut_roll = _mm256_setr_epi8(
        0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i mask_2f = _mm256_set1_epi8(0x2F);
    const __m256i merge_pairs = _mm256_set1_epi32(0x01400140);
    const __m256i merge_quads = _mm256_set1_epi32(0x00011000);
    const __m256i bytes_in_order = _mm256_setr_epi8(
        2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1,
        2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
    const __m256i lanes_together = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, -1, -1);
    unsigned char* o = out;
    while (end - in >= 32 && o < out_end) {
        const __m256i text = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in));
        // pshufb reads only bits 0-3 (and 7, clear here) of each index.
        const __m256i hi_nibbles = _mm256_and_si256(_mm256_srli_epi32(text, 4), mask_2f);
        const __m256i lo_nibbles = _mm256_and_si256(text, mask_2f);
        const __m256i lo = _mm256_shuffle_epi8(lut_lo, lo_nibbles);
        const __m256i hi = _mm256_shuffle_epi8(lut_hi, hi_nibbles);
        if (!_mm256_testz_si256(lo, hi)) break;
        const __m256i is_slash = _mm256_cmpeq_epi8(text, mask_2f);
        const __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(is_slash, hi_nibbles));
        const __m256i sextets = _mm256_add_epi8(text, roll);
        const __m256i pairs = _mm256_maddubs_epi16(sextets, merge_pairs);
        const __m256i quads = _mm256_madd_epi16(pairs, merge_quads);
        const __m256i packed = _mm256_permutevar8x32_epi32(
            _mm256_shuffle_epi8(quads, bytes_in_order), lanes_together);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), packed);
        in += 32;
        o += 24;
    }
    out = o;
    return in;
}

bool have_avx2() noexcept {
    static const bool have = __builtin_cpu_supports("avx2");
    return have;
}
#endif

// Decodes whole quanta of alphabet characters until a quantum holds any other byte,
// the input runs out, or `out` reaches out_end: one branch per 16 characters. Works
// on locals only so the compiler keeps both cursors in registers despite the byte
// stores.
const unsigned char* decode_quanta(const unsigned char* in, const unsigned char* end,
                                   unsigned char*& out, const unsigned char* out_end) {
#ifdef EUPHORIA_BASE64_AVX2
    if (have_avx2()) in = decode_avx2(in, end, out, out_end);
#endif
    unsigned char* o = out;
    while (end - in >= 16 && o < out_end) {
        const std::uint32_t a = quantum_word(in);
        const std::uint32_t b = quantum_word(in + 4);
        const std::uint32_t c = quantum_word(in + 8);
        const std::uint32_t d = quantum_word(in + 12);
        if ((a | b | c | d) & not_alphabet_mask) {
            // Keep the group's valid leading quanta; the slow path starts at the bad one.
            for (const std::uint32_t word : {a, b, c}) {
                if (word & not_alphabet_mask) break;
                store_word(o, word);
                in += 4;
                o += 3;
            }
            out = o;
            return in;
        }
        store_word(o, a);
        store_word(o + 3, b);
        store_word(o + 6, c);
        store_word(o + 9, d);
        in += 16;
        o += 12;
    }
    while (end - in >= 4 && o < out_end) {
        const std::uint32_t a = quantum_word(in);
        if (a & not_alphabet_mask) break;
        store_word(o, a);
        in += 4;
        o += 3;
    }
    out = o;
    return in;
}

}  // namespace

Base64Decoder::Base64Decoder(Sink& out)
    : out_(out),
      block_(std::make_unique_for_overwrite<unsigned char[]>(block_size + block_slack)) {}

void Base64Decoder::feed(const char* data, std::size_t size) {
    decode(reinterpret_cast<const unsigned char*>(data), size, false);
}

std::size_t Base64Decoder::feed_prefix(const char* data, std::size_t size) {
    return decode(reinterpret_cast<const unsigned char*>(data), size, true);
}

void Base64Decoder::finish() {
    if (quantum_chars_ != 0) {
        char what[64];
        (void)std::snprintf(what, sizeof what, "text ends after %d of a quantum's 4 characters",
                      quantum_chars_);
        fail(what, position_.offset);
    }
    flush();
}

std::size_t Base64Decoder::decode(const unsigned char* data, std::size_t size,
                                  bool stop_at_foreign) {
    const unsigned char* in = data;
    const unsigned char* const end = data + size;
    unsigned char* const block = block_.get();
    while (true) {
        for (; in != end && byte_classes[*in] == class_whitespace; ++in) {
            if (*in == '\n') {
                ++position_.line_breaks;
                position_.line_start = position_.offset + static_cast<std::uint64_t>(in - data) + 1;
            }
        }
        if (in == end) break;
        // Quantum boundaries are the only places the fast path can start from.
        if (quantum_chars_ == 0 && !ended_) {
            unsigned char* out = block + used_;
            in = decode_quanta(in, end, out, block + block_size);
            used_ = static_cast<std::size_t>(out - block);
            if (used_ >= block_size) {
                write_block();
                continue;
            }
            if (in == end) break;
            if (byte_classes[*in] == class_whitespace) continue;
        }
        const std::uint64_t offset = position_.offset + static_cast<std::uint64_t>(in - data);
        if (!take_slow(*in, offset)) {
            if (stop_at_foreign) break;
            char what[40];
            (void)std::snprintf(what, sizeof what, "invalid byte 0x%02X", static_cast<unsigned>(*in));
            fail(what, offset);
        }
        ++in;
    }
    const auto consumed = static_cast<std::size_t>(in - data);
    position_.offset += consumed;
    return consumed;
}

bool Base64Decoder::take_slow(unsigned char c, std::uint64_t text_offset) {
    const std::uint8_t cls = byte_classes[c];
    if (cls == class_foreign) return false;
    if (ended_) fail("data after the padded final quantum", text_offset);
    if (cls == class_padding) {
        if (quantum_chars_ < 2) fail("'=' in the first half of a quantum", text_offset);
        ++padding_;
    } else if (padding_ > 0) {
        fail("data after '='", text_offset);
    }
    quantum_ = (quantum_ << 6) | (cls == class_padding ? 0u : cls);
    if (++quantum_chars_ == 4) {
        emit(quantum_, static_cast<std::size_t>(3 - padding_));
        ended_ = padding_ > 0;
        quantum_ = 0;
        quantum_chars_ = 0;
    }
    return true;
}

void Base64Decoder::emit(std::uint32_t quantum, std::size_t bytes) {
    unsigned char* out = block_.get() + used_;
    out[0] = static_cast<unsigned char>(quantum >> 16);
    out[1] = static_cast<unsigned char>(quantum >> 8);
    out[2] = static_cast<unsigned char>(quantum);
    used_ += bytes;
    if (used_ >= block_size) write_block();
}

void Base64Decoder::write_block() {
    unsigned char* block = block_.get();
    out_.write({reinterpret_cast<const std::byte*>(block), block_size});
    flushed_ += block_size;
    used_ -= block_size;
    std::memmove(block, block + block_size, used_);
}

void Base64Decoder::flush() {
    if (used_ == 0) return;
    out_.write({reinterpret_cast<const std::byte*>(block_.get()), used_});
    flushed_ += used_;
    used_ = 0;
}

void Base64Decoder::fail(const char* what, std::uint64_t text_offset) const {
    throw ApiError(EIO, ErrorKind::malformed,
                   std::string("corrupt base64: ") + what + " at text offset " +
                       std::to_string(text_offset) + " (decoded offset " +
                       std::to_string(decoded_bytes()) + ")");
}

}  // namespace euphoria::api
