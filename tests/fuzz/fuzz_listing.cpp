// Fuzzes ListingParser (GetCallRecordings replies) with arbitrary bodies fed in
// arbitrary chunk splits, and checks every outcome against a reference reading.
//
// Input: a 4-byte header, then the reply body.
//   byte 0, bits 0-1: how the body is split: 0 whole, 1 one byte at a time,
//                     2 random pieces of 1..32 bytes, 3 random pieces of 0..size.
//   bytes 1-3: seed of the split pattern.
//
// Checks, any failure aborts (a libFuzzer finding):
//   - only ApiError escapes; after a throw every later call throws again;
//   - the split and the unsplit body give the same outcome and the same records;
//   - finish() returns the number of records handed over;
//   - the outcome matches libxml2's DOM reading (no network, no entities, DOCTYPE
//     refused) under the documented rules: every child element of <XML> other than
//     Error and Status that has a known field child is a record, with its fields'
//     direct text, trimmed, at most max_field_size bytes; an <Error> child makes the
//     reply an error. Line ends are compared as XML normalises them (CR, CR LF: LF).

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "euphoria/api/error.hpp"
#include "euphoria/api/listing.hpp"

using euphoria::api::ApiError;
using euphoria::api::ListedRecord;
using euphoria::api::ListingParser;

namespace {

[[noreturn]] void finding(const char* what) {
    static_cast<void>(std::fprintf(stderr, "\n*** fuzz_listing finding: %s\n", what));
    std::abort();
}

struct Outcome {
    int error = 0;  // 0: accepted
    std::vector<ListedRecord> records;
};

Outcome run(std::string_view body, int mode, std::uint32_t seed) {
    Outcome out;
    ListingParser parser([&](const ListedRecord& r) { out.records.push_back(r); });
    std::size_t handed = 0;
    try {
        std::size_t at = 0;
        while (at < body.size() || (mode == 3 && at == 0 && body.empty())) {
            std::size_t piece = body.size() - at;
            seed = seed * 1103515245u + 12345u;
            if (mode == 1) piece = 1;
            if (mode == 2) piece = 1 + (seed >> 16) % 32;
            if (mode == 3) piece = (seed >> 16) % (body.size() + 1);
            piece = std::min(piece, body.size() - at);
            parser.feed(body.data() + at, piece);
            at += piece;
            if (body.empty()) break;
        }
        handed = parser.finish();
        if (handed != out.records.size()) finding("finish() miscounts the records");
    } catch (const ApiError& e) {
        out.error = e.error_number() == 0 ? -1 : e.error_number();
        bool threw = false;
        try {
            parser.finish();
        } catch (const ApiError&) {
            threw = true;
        } catch (...) {
            finding("a failed parser threw something other than ApiError");
        }
        if (!threw) finding("a failed parser accepted finish() again");
    } catch (...) {
        finding("something other than ApiError escaped");
    }
    return out;
}

std::string trim(std::string_view t) {
    const auto first = t.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    return std::string(t.substr(first, t.find_last_not_of(" \t\r\n") - first + 1));
}

std::string direct_text(xmlNode* n) {
    std::string text;
    for (xmlNode* c = n->children; c; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
            text += reinterpret_cast<const char*>(c->content);
        }
    }
    return text;
}

bool known_field(std::string_view name, std::size_t& index) {
    for (std::size_t i = 0; i < euphoria::api::record_field_count; ++i) {
        if (euphoria::api::record_field_name(static_cast<euphoria::api::RecordField>(i)) == name) {
            index = i;
            return true;
        }
    }
    return false;
}

// The documented reading, from a DOM. Empty: the reference cannot decide (not
// well-formed, or a DOCTYPE); the parser must then refuse.
std::optional<Outcome> reference(std::string_view body) {
    xmlDoc* doc = xmlReadMemory(body.data(), static_cast<int>(body.size()), nullptr, nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) return std::nullopt;
    Outcome out;
    xmlNode* root = xmlDocGetRootElement(doc);
    if (!root || std::string_view(reinterpret_cast<const char*>(root->name)) != "XML" || doc->intSubset) {
        xmlFreeDoc(doc);
        return std::nullopt;
    }
    bool error = false;
    for (xmlNode* n = root->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        const std::string_view name(reinterpret_cast<const char*>(n->name));
        if (name == "Error") {
            error = true;
            continue;
        }
        if (name == "Status") continue;
        ListedRecord rec;
        bool any = false;
        for (xmlNode* f = n->children; f; f = f->next) {
            std::size_t index = 0;
            if (f->type != XML_ELEMENT_NODE || !known_field(reinterpret_cast<const char*>(f->name), index)) continue;
            any = true;
            std::string text = direct_text(f);
            if (text.size() > ListingParser::max_field_size) text.resize(ListingParser::max_field_size);
            rec.fields[index] = trim(text);
        }
        if (any) out.records.push_back(rec);
    }
    xmlFreeDoc(doc);
    if (error) out.error = -2;  // some errno: compared only as "an error"
    return out;
}

// libxml2 2.9's push parser hands a CDATA section's CR over as it is, where its DOM
// reader has normalised line ends: compare as XML's end-of-line rule reads them.
std::string line_ends(std::string text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r') {
            out.push_back('\n');
            if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
        } else {
            out.push_back(text[i]);
        }
    }
    return out;
}

bool same_records(const Outcome& a, const Outcome& b, bool normalise = false) {
    if (a.records.size() != b.records.size()) return false;
    for (std::size_t i = 0; i < a.records.size(); ++i) {
        for (std::size_t f = 0; f < euphoria::api::record_field_count; ++f) {
            const auto& x = a.records[i].fields[f];
            const auto& y = b.records[i].fields[f];
            if (normalise ? line_ends(x) != line_ends(y) : x != y) return false;
        }
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return 0;
    const int mode = data[0] & 3;
    const std::uint32_t seed = data[1] | (data[2] << 8) | (static_cast<std::uint32_t>(data[3]) << 16);
    const std::string_view body(reinterpret_cast<const char*>(data + 4), size - 4);

    const Outcome whole = run(body, 0, seed);
    const Outcome split = run(body, mode, seed);
    if ((whole.error == 0) != (split.error == 0) || whole.error != split.error) {
        finding("the split body's outcome differs from the whole body's");
    }
    if (whole.error == 0 && !same_records(whole, split)) finding("the split body's records differ");

    const auto ref = reference(body);
    if (!ref) {
        if (whole.error == 0) finding("accepted a body the reference refuses");
        return 0;
    }
    if (ref->error == -2) {
        if (whole.error == 0) finding("accepted a reply holding <Error>");
        return 0;
    }
    // An encoding libxml2's DOM reader converts but the push parser refuses (or the
    // other way round) is no finding; records of an accepted reply must agree.
    if (whole.error == 0 && !same_records(whole, *ref, true)) finding("records differ from the reference");
    return 0;
}
