// Fuzzes ReplyParser (and the base64 decoder behind it) with arbitrary bodies fed in
// arbitrary chunk splits, and checks every reply against a reference decode.
//
// Input: a 4-byte header, then the reply body.
//   byte 0, bits 0-1: how the body is split: 0 whole, 1 one byte at a time,
//                     2 random pieces of 1..32 bytes, 3 random pieces of 0..size
//                     (empty feeds included).
//           bit 2:    amplify: insert ~64 KiB of decoded audio right after the first
//                     "<audioData>", so the decoder's block boundary is crossed.
//           bit 3:    the sink fails (like a full disk) once it holds more than a
//                     budget of bytes.
//           bits 4-7: a parameter for both (line wrapping, budget).
//   bytes 1-3: seed of the split pattern.
//
// Checks, any failure aborts (a libFuzzer finding):
//   - only ApiError escapes; after a throw every later call throws the same error;
//     after finish() the parser refuses more input;
//   - complete() at most once, never with a throw, nothing written after it;
//   - a sink failure is what the parser throws;
//   - the split and the unsplit body give the same outcome, bytes and file name;
//   - the outcome matches a reference: libxml2's DOM reader (no network, no entity
//     substitution, DOCTYPE refused), the documented field rules and a naive base64
//     decoder. An accepted reply must decode to the reference's bytes, and a reply
//     the reference accepts must not be refused.

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "euphoria/api/error.hpp"
#include "euphoria/api/reply_parser.hpp"
#include "euphoria/api/sink.hpp"

using euphoria::api::ApiError;
using euphoria::api::ErrorKind;
using euphoria::api::ReplyParser;

namespace {

std::string printable(std::string_view text) {
    std::string shown;
    for (char c : text.substr(0, 400)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7F) {
            shown += c;
        } else {
            char hex[8];
            static_cast<void>(std::snprintf(hex, sizeof hex, "\\x%02X", u));
            shown += hex;
        }
    }
    if (text.size() > 400) shown += "...";
    return shown;
}

[[noreturn]] void finding(const char* what, const std::string& detail = {}) {
    // Nothing to do if stderr fails: abort() reports the finding anyway.
    static_cast<void>(std::fprintf(stderr, "\n*** fuzz_reply finding: %s\n%s\n", what, detail.c_str()));
    static_cast<void>(std::fflush(stderr));
    std::abort();
}

// ---------------------------------------------------------------------------
// Running the parser under test.

struct SinkFull {};

class CheckingSink final : public euphoria::api::Sink {
public:
    explicit CheckingSink(std::optional<std::size_t> budget) : budget_(budget) {}

    void reset() override { finding("ReplyParser called Sink::reset()"); }
    void write(std::span<const std::byte> data) override {
        if (completes > 0) finding("Sink::write() after complete()");
        if (budget_ && bytes.size() + data.size() > *budget_) {
            sink_threw = true;
            throw ApiError(ENOSPC, ErrorKind::local, "fuzz sink full");
        }
        bytes.append(reinterpret_cast<const char*>(data.data()), data.size());
    }
    void complete() override {
        if (++completes > 1) finding("Sink::complete() called twice");
    }

    std::string bytes;
    int completes = 0;
    bool sink_threw = false;

private:
    std::optional<std::size_t> budget_;
};

struct Outcome {
    bool accepted = false;
    std::string bytes;  // when accepted
    std::string file_name;
    int err = 0;  // when refused
    ErrorKind kind = ErrorKind::malformed;
    std::string server_text;
    std::string message;
};

std::string describe(const Outcome& o) {
    if (o.accepted) {
        return "accepted, " + std::to_string(o.bytes.size()) + " bytes, fileName '" +
               printable(o.file_name) + "'";
    }
    return "refused: errno " + std::to_string(o.err) + ", kind " +
           std::string(euphoria::api::to_string(o.kind)) + ", server text '" +
           printable(o.server_text) + "', message '" + printable(o.message) + "'";
}

void expect_same_error(const ApiError& first, ReplyParser& parser, bool via_finish) {
    try {
        if (via_finish) {
            parser.finish();
        } else {
            parser.feed("<", 1);
        }
    } catch (const ApiError& again) {
        if (again.kind() != first.kind() || again.error_number() != first.error_number() ||
            std::strcmp(again.what(), first.what()) != 0) {
            finding("a failed parser threw a different error on a later call",
                    std::string(first.what()) + " | then | " + again.what());
        }
        return;
    }
    finding("a failed parser accepted a later call", first.what());
}

Outcome run_parser(std::string_view body, const std::vector<std::size_t>& pieces,
                   std::optional<std::size_t> sink_budget) {
    CheckingSink sink(sink_budget);
    Outcome out;
    try {
        ReplyParser parser(sink);
        try {
            std::size_t at = 0;
            for (const std::size_t piece : pieces) {
                parser.feed(body.data() + at, piece);
                at += piece;
            }
            parser.finish();
        } catch (const ApiError& e) {
            out.err = e.error_number();
            out.kind = e.kind();
            out.server_text = e.server_text();
            out.message = e.what();
            if (sink.completes != 0) finding("complete() was called, then the parser threw", e.what());
            if (sink.sink_threw && (e.kind() != ErrorKind::local || e.error_number() != ENOSPC)) {
                finding("the sink's error was replaced", e.what());
            }
            expect_same_error(e, parser, true);
            expect_same_error(e, parser, false);
            out.file_name = parser.file_name();
            return out;
        }
        if (sink.completes != 1) finding("finish() returned without calling complete()");
        if (sink.sink_threw) finding("the sink failed, yet the parser completed");
        try {
            parser.feed("<", 1);
            finding("feed() after finish() was accepted");
        } catch (const std::logic_error&) {
        }
        out.accepted = true;
        out.bytes = std::move(sink.bytes);
        out.file_name = parser.file_name();
    } catch (const std::exception& e) {
        finding("an unexpected exception escaped", e.what());
    } catch (...) {
        finding("a non-standard exception escaped");
    }
    return out;
}

// ---------------------------------------------------------------------------
// The reference: a DOM of the whole document and the rules read plainly off it.

constexpr std::string_view xml_space = " \t\r\n";

std::optional<std::string> naive_base64(std::string_view text) {
    constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string chars;
    for (const char c : text) {
        if (xml_space.find(c) == std::string_view::npos) chars += c;
    }
    if (chars.size() % 4 != 0) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < chars.size(); i += 4) {
        const bool last = i + 4 == chars.size();
        std::uint32_t value = 0;
        int padding = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            const char c = chars[i + j];
            if (c == '=') {
                if (!last || j < 2) return std::nullopt;
                ++padding;
                value <<= 6;
                continue;
            }
            const auto index = alphabet.find(c);
            if (index == std::string_view::npos || padding > 0) return std::nullopt;
            value = (value << 6) | static_cast<std::uint32_t>(index);
        }
        out += static_cast<char>((value >> 16) & 0xFF);
        if (padding < 2) out += static_cast<char>((value >> 8) & 0xFF);
        if (padding < 1) out += static_cast<char>(value & 0xFF);
    }
    return out;
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(xml_space);
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(xml_space) - first + 1);
}

bool named(const xmlNode* node, const char* name) {
    return node->type == XML_ELEMENT_NODE && xmlStrEqual(node->name, reinterpret_cast<const xmlChar*>(name));
}

// The element's own text: its text and CDATA children, not its descendants'.
std::string own_text(const xmlNode* element) {
    std::string text;
    for (const xmlNode* c = element->children; c != nullptr; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
            text += reinterpret_cast<const char*>(c->content);
        }
    }
    return text;
}

std::string bounded(std::string text) {
    if (text.size() > ReplyParser::max_field_size) text.resize(ReplyParser::max_field_size);
    return text;
}

struct ReferenceState {
    bool doctype = false;
    int worst_level = XML_ERR_NONE;
};

void reference_error(void* user, xmlErrorPtr error) {
    auto& state = *static_cast<ReferenceState*>(user);
    if (error != nullptr && error->level > state.worst_level) state.worst_level = error->level;
}

void reference_doctype(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
    auto* ctxt = static_cast<xmlParserCtxtPtr>(ctx);
    static_cast<ReferenceState*>(ctxt->_private)->doctype = true;
    xmlStopParser(ctxt);
}

Outcome malformed(const char* why) {
    Outcome out;
    out.err = EIO;
    out.kind = ErrorKind::malformed;
    out.message = why;
    return out;
}

Outcome reference_decode(std::string_view body) {
    ReferenceState state;
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (ctxt == nullptr) finding("xmlNewParserCtxt failed");
    ctxt->_private = &state;
    ctxt->sax->internalSubset = reference_doctype;
    ctxt->sax->externalSubset = reference_doctype;
    xmlSetStructuredErrorFunc(&state, reference_error);
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, body.data(), static_cast<int>(body.size()), nullptr,
                                      nullptr, XML_PARSE_NONET);
    xmlSetStructuredErrorFunc(nullptr, nullptr);
    // libxml2's pull parser takes a NUL byte after the root element for the end of
    // the input; the push parser rightly calls it extra content. Count what is left.
    const xmlParserInput* input = ctxt->input;
    const bool unread = input != nullptr && input->cur != nullptr && input->cur < input->end;
    const bool unconverted = input != nullptr && input->buf != nullptr &&
                             input->buf->raw != nullptr && xmlBufUse(input->buf->raw) > 0;
    xmlFreeParserCtxt(ctxt);
    struct DocGuard {
        xmlDocPtr doc;
        ~DocGuard() {
            if (doc) xmlFreeDoc(doc);
        }
    } guard{doc};

    if (state.doctype) return malformed("DOCTYPE");
    if (doc == nullptr || state.worst_level >= XML_ERR_ERROR || unread || unconverted) {
        return malformed("not well-formed");
    }
    const xmlNode* root = xmlDocGetRootElement(doc);
    if (root == nullptr || !named(root, "XML")) return malformed("not rooted at <XML>");

    // The fields, in document order: children of <XML>, and of <XML><CallRecording>.
    const xmlNode* audio = nullptr;
    const xmlNode* error = nullptr;
    const xmlNode* file_name = nullptr;
    auto visit = [&](const xmlNode* node, bool top_level) -> bool {
        if (named(node, "audioData")) {
            if (error != nullptr) return true;  // an <Error> reply: data after it is ignored
            if (audio != nullptr) return false;
            audio = node;
        } else if (named(node, "fileName")) {
            if (file_name == nullptr) file_name = node;
        } else if (top_level && named(node, "Error")) {
            if (error == nullptr) error = node;
        }
        return true;
    };
    for (const xmlNode* child = root->children; child != nullptr; child = child->next) {
        if (named(child, "CallRecording")) {
            for (const xmlNode* field = child->children; field != nullptr; field = field->next) {
                if (!visit(field, false)) return malformed("two audioData");
            }
        } else if (!visit(child, true)) {
            return malformed("two audioData");
        }
    }

    std::optional<std::string> decoded;
    if (audio != nullptr) {
        decoded = naive_base64(own_text(audio));
        if (!decoded) return malformed("bad base64");
    }
    Outcome out;
    if (file_name != nullptr) out.file_name = bounded(own_text(file_name));
    if (error != nullptr) {
        const std::string text = bounded(own_text(error));
        const ApiError e = euphoria::api::error_from_server_text(trim(text));
        out.err = e.error_number();
        out.kind = e.kind();
        out.server_text = e.server_text();
        out.message = e.what();
        return out;
    }
    if (!decoded || decoded->empty()) {
        out.err = ENOENT;
        out.kind = ErrorKind::not_found;
        out.message = "no audio";
        return out;
    }
    out.accepted = true;
    out.bytes = std::move(*decoded);
    return out;
}

// Same outcome: for a refusal the same errno, kind and server text (messages may name
// different positions); for an acceptance the same bytes; whole parses the same name.
bool same(const Outcome& a, const Outcome& b) {
    if (a.accepted != b.accepted) return false;
    if (a.accepted) return a.bytes == b.bytes && a.file_name == b.file_name;
    if (a.err != b.err || a.kind != b.kind || a.server_text != b.server_text) return false;
    return a.kind == ErrorKind::malformed || a.file_name == b.file_name;
}

// ---------------------------------------------------------------------------
// Building the case from the input.

class Rng {
public:
    explicit Rng(std::uint32_t seed) : state_(seed * 2654435761u + 1) {}
    std::uint32_t next() {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 17;
        state_ ^= state_ << 5;
        return state_;
    }
    std::size_t below(std::size_t n) { return n == 0 ? 0 : next() % n; }

private:
    std::uint32_t state_;
};

std::vector<std::size_t> split(std::size_t size, int mode, std::uint32_t seed) {
    std::vector<std::size_t> pieces;
    Rng rng(seed);
    std::size_t left = size;
    while (left > 0) {
        std::size_t piece = left;
        switch (mode) {
        case 1: piece = 1; break;
        case 2: piece = 1 + rng.below(32); break;
        case 3: piece = rng.below(left + 1); break;
        default: break;
        }
        piece = std::min(piece, left);
        pieces.push_back(piece);
        left -= piece;
    }
    return pieces;
}

// Just over one decoder block of audio after the first "<audioData>", wrapped or not.
std::string amplify(std::string_view body, unsigned param, std::uint32_t seed) {
    constexpr std::string_view open = "<audioData>";
    const auto at = body.find(open);
    if (at == std::string_view::npos) return std::string(body);
    constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static constexpr std::size_t wraps[8] = {0, 76, 64, 4, 1, 17, 1000, 3};
    const std::size_t wrap = wraps[param & 7];
    const std::string_view newline = (param & 8) ? "\r\n" : "\n";
    const std::size_t quanta = 65536 / 3 + (seed & 0x3F);
    std::string filler;
    filler.reserve(quanta * 4 * 3 / 2);
    Rng rng(seed);
    for (std::size_t i = 0; i < quanta * 4; ++i) {
        filler += alphabet[rng.below(64)];
        if (wrap != 0 && (i + 1) % wrap == 0) filler += newline;
    }
    std::string out(body.substr(0, at + open.size()));
    out += filler;
    out += body.substr(at + open.size());
    return out;
}

void ignore_generic_error(void*, const char*, ...) {}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    xmlInitParser();
    // libxml2's own stderr messages are noise here; its errors reach the callers.
    xmlSetGenericErrorFunc(nullptr, ignore_generic_error);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::uint8_t header[4] = {0, 0, 0, 0};
    const std::size_t header_size = std::min<std::size_t>(size, 4);
    std::memcpy(header, data, header_size);
    const int mode = header[0] & 3;
    const bool amplified = header[0] & 4;
    const bool sink_fails = header[0] & 8;
    const unsigned param = header[0] >> 4;
    const std::uint32_t seed = header[1] | (header[2] << 8) | (header[3] << 16);

    std::string body(reinterpret_cast<const char*>(data) + header_size, size - header_size);
    if (amplified) body = amplify(body, param, seed);
    const std::vector<std::size_t> pieces = split(body.size(), mode, seed);

    if (sink_fails) {
        // Only the invariants: a failing sink changes the outcome by design.
        const std::size_t budget = (param == 15) ? 0 : (std::size_t{param} << 12) + (seed & 0xFFF);
        run_parser(body, pieces, budget);
        return 0;
    }

    const Outcome split_outcome = run_parser(body, pieces, std::nullopt);
    const Outcome whole = mode == 0 ? split_outcome : run_parser(body, {body.size()}, std::nullopt);
    if (!same(split_outcome, whole)) {
        finding("the chunk split changed the outcome",
                "whole: " + describe(whole) + "\nsplit (mode " + std::to_string(mode) + "): " +
                    describe(split_outcome) + "\nbody: " + printable(body));
    }
    const Outcome reference = reference_decode(body);
    if (!same(whole, reference)) {
        finding(whole.accepted ? "accepted reply differs from the reference decode"
                               : "parser and reference disagree",
                "parser: " + describe(whole) + "\nreference: " + describe(reference) +
                    "\nbody: " + printable(body));
    }
    return 0;
}
