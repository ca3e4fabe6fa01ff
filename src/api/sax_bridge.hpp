#pragma once
// The C side of a streaming libxml2 parse, shared by the reply and listing parsers.
// Nothing may unwind through libxml2's frames, so each callback catches everything
// and hands it to the parser's fail(); the parse stops, and the error is rethrown,
// once xmlParseChunk has returned.
//
// `Parser` has on_start(const char*), on_end(), on_text(const char*, size_t),
// on_doctype() and on_error(const char* message, int line, int column), a
// `failure_` and fail(std::exception_ptr), and befriends SaxBridge<Parser>.

#include <libxml/parser.h>

#include <exception>
#include <memory>
#include <new>

#include "euphoria/api/libxml_init.hpp"

namespace euphoria::api {

inline const char* as_chars(const xmlChar* text) { return reinterpret_cast<const char*>(text); }

template <class Parser>
struct SaxBridge {
    template <typename Event>
    static void guarded(void* user, Event&& event) noexcept {
        auto& parser = *static_cast<Parser*>(user);
        if (parser.failure_) return;
        try {
            event(parser);
        } catch (...) {
            parser.fail(std::current_exception());
        }
    }

    static void start_element(void* user, const xmlChar* local_name, const xmlChar*, const xmlChar*, int,
                              const xmlChar**, int, int, const xmlChar**) {
        guarded(user, [&](Parser& p) { p.on_start(as_chars(local_name)); });
    }
    static void end_element(void* user, const xmlChar*, const xmlChar*, const xmlChar*) {
        guarded(user, [](Parser& p) { p.on_end(); });
    }
    static void text(void* user, const xmlChar* text, int size) {
        guarded(user, [&](Parser& p) { p.on_text(as_chars(text), static_cast<std::size_t>(size)); });
    }
    static void doctype(void* user, const xmlChar*, const xmlChar*, const xmlChar*) {
        guarded(user, [](Parser& p) { p.on_doctype(); });
    }
    // libxml2 2.12 made the error pointer const; take whichever this version passes.
    template <typename ErrorPointer>
    static void structured_error(void* user, ErrorPointer error) {
        if (error == nullptr || error->level < XML_ERR_ERROR) return;
        guarded(user, [&](Parser& p) {
            p.on_error(error->message ? error->message : "unknown error", error->line, error->int2);
        });
    }

    // A push parser whose events reach `parser`. No XML_PARSE_NOENT (entities stay
    // unexpanded) and no XML_PARSE_HUGE: large texts are streamed in pieces.
    static XmlContextPtr make_context(Parser* parser) {
        init_libxml();
        xmlSAXHandler h{};
        h.initialized = XML_SAX2_MAGIC;
        h.startElementNs = start_element;
        h.endElementNs = end_element;
        h.characters = text;
        h.ignorableWhitespace = text;
        h.cdataBlock = text;
        // A DTD could declare entities; refusing any DOCTYPE outright means none is
        // ever loaded or expanded.
        h.internalSubset = doctype;
        h.externalSubset = doctype;
        h.serror = structured_error;
        XmlContextPtr ctxt(xmlCreatePushParserCtxt(&h, parser, nullptr, 0, nullptr));
        if (!ctxt) throw std::bad_alloc();
        xmlCtxtUseOptions(ctxt.get(), XML_PARSE_NONET);
        return ctxt;
    }
};

}  // namespace euphoria::api
