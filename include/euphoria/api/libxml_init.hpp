#pragma once

#include <memory>

struct _xmlParserCtxt;  // NOLINT(bugprone-reserved-identifier): libxml2's own tag

namespace euphoria::api {

// libxml2 2.9 sets up its encoding tables lazily and without locks: call this once on
// one thread before threads share libxml2. Idempotent and thread-safe.
void init_libxml();

// Owns a libxml2 parser context, and the document that entity declarations make it
// build even for SAX ("expat compatibility"), which the context does not own.
struct XmlContextDeleter {
    void operator()(_xmlParserCtxt* ctxt) const noexcept;
};
using XmlContextPtr = std::unique_ptr<_xmlParserCtxt, XmlContextDeleter>;

}  // namespace euphoria::api
