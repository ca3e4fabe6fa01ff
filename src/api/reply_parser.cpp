#include "euphoria/api/reply_parser.hpp"

#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/globals.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <stdexcept>
#include <string_view>

#include "euphoria/api/error.hpp"
#include "euphoria/api/libxml_init.hpp"
#include "sax_bridge.hpp"
#include "xml_text.hpp"

namespace euphoria::api {

namespace {

ApiError malformed(std::string_view what) {
    return ApiError(EIO, ErrorKind::malformed, "malformed reply: " + std::string(what));
}

int clamp_to_int(std::uint64_t value) {
    return static_cast<int>(std::min<std::uint64_t>(value, INT_MAX));
}

}  // namespace

void init_libxml() {
    static const bool initialised = [] {
        xmlInitParser();
        return true;
    }();
    (void)initialised;
}

void XmlContextDeleter::operator()(xmlParserCtxt* ctxt) const noexcept {
    if (ctxt->myDoc != nullptr) xmlFreeDoc(ctxt->myDoc);
    xmlFreeParserCtxt(ctxt);
}

// Only a CDATA section, which libxml2 holds whole until its "]]>", is limited to
// 10 MB (no XML_PARSE_HUGE): audioData text is streamed in pieces and never needs it.
ReplyParser::ReplyParser(Sink& sink)
    : sink_(sink), decoder_(sink), ctxt_(SaxBridge<ReplyParser>::make_context(this)) {}

ReplyParser::~ReplyParser() = default;

void ReplyParser::feed(const char* data, std::size_t size) {
    check_usable();
    if (size == 0) return;
    bytes_fed_ += size;
    try {
        while (size > 0) {
            const std::size_t piece = std::min(size, xml_max_piece);
            const std::size_t taken = bypass_libxml(data, piece);
            if (taken < piece) parse(data + taken, piece - taken, false);
            data += piece;
            size -= piece;
        }
    } catch (...) {
        fail(std::current_exception());
        xmlStopParser(ctxt_.get());
        throw;
    }
}

void ReplyParser::finish() {
    check_usable();
    finished_ = true;
    try {
        finish_reply();
    } catch (...) {
        fail(std::current_exception());
        xmlStopParser(ctxt_.get());
        throw;
    }
}

void ReplyParser::finish_reply() {
    if (bytes_fed_ == 0) throw malformed("empty body");
    parse(nullptr, 0, true);
    if (!root_closed_) throw malformed("reply ended before </XML>");
    if (error_seen_) throw error_from_server_text(trim_xml_space(error_text_));
    if (!audio_seen_) {
        throw ApiError(ENOENT, ErrorKind::not_found, "no such recording: reply has no audioData");
    }
    if (decoder_.decoded_bytes() == 0) {
        throw ApiError(ENOENT, ErrorKind::not_found, "no such recording: audioData is empty");
    }
    sink_.complete();
}

void ReplyParser::check_usable() const {
    if (failure_) std::rethrow_exception(failure_);
    if (finished_) throw std::logic_error("ReplyParser used after finish()");
}

// Only silences the SAX events, which is safe inside a callback. xmlStopParser is
// not: libxml2 2.9 frees the input it is still reading, so it waits until
// xmlParseChunk has returned.
void ReplyParser::fail(std::exception_ptr error) noexcept {
    if (!failure_) failure_ = std::move(error);
    ctxt_->disableSAX = 1;
}

namespace {

// libxml2 2.9 reports a failed encoding conversion (iconv) without the parser
// context, through the thread's global handler, then skips the bad bytes and goes
// on. Catch those reports on this thread for the length of one xmlParseChunk.
class ConversionErrorScope {
public:
    explicit ConversionErrorScope(bool* failed)
        : saved_(xmlStructuredError), saved_context_(xmlStructuredErrorContext) {
        xmlSetStructuredErrorFunc(failed, &ConversionErrorScope::on_error);
    }
    ~ConversionErrorScope() { xmlSetStructuredErrorFunc(saved_context_, saved_); }
    ConversionErrorScope(const ConversionErrorScope&) = delete;
    ConversionErrorScope& operator=(const ConversionErrorScope&) = delete;

private:
    template <typename ErrorPointer>
    static void on_error(void* failed, ErrorPointer error) {
        if (error && error->level >= XML_ERR_ERROR) *static_cast<bool*>(failed) = true;
    }
    xmlStructuredErrorFunc saved_;
    void* saved_context_;
};

}  // namespace

void ReplyParser::parse(const char* data, std::size_t size, bool terminate) {
    bool conversion_failed = false;
    int rc = 0;
    {
        ConversionErrorScope scope(&conversion_failed);
        rc = xmlParseChunk(ctxt_.get(), data, static_cast<int>(size), terminate ? 1 : 0);
    }
    if (conversion_failed && !failure_) {
        fail(std::make_exception_ptr(malformed("bytes not valid in the declared encoding")));
    }
    // Every error should come through serror, but libxml2 2.9 reports a failed
    // encoding conversion only by halting, or by leaving bytes unconverted.
    if (!failure_) {
        const xmlParserInput* in = ctxt_->input;
        const bool unconverted =
            in && in->buf &&
            (in->buf->error != 0 || (terminate && in->buf->raw && xmlBufUse(in->buf->raw) > 0));
        if (unconverted) {
            fail(std::make_exception_ptr(malformed("bytes not valid in the declared encoding")));
        } else if (rc != XML_ERR_OK || !ctxt_->wellFormed) {
            fail(std::make_exception_ptr(malformed("not well-formed XML")));
        }
    }
    if (failure_) {
        xmlStopParser(ctxt_.get());
        std::rethrow_exception(failure_);
    }
}

// libxml2 scans and copies every byte it is given, which costs more than decoding
// them. While it sits inside <audioData> having consumed all it was given, with no
// encoding conversion pending, the text up to the next byte that is not base64 or
// whitespace can go straight to the decoder: libxml2 would have passed that text to
// on_text unchanged (its CR/LF normalisation cannot matter, whitespace is skipped).
// Its position is advanced to match, so later error messages still point right.
std::size_t ReplyParser::bypass_libxml(const char* data, std::size_t size) {
    // This leans on push-parser internals (instate, input->consumed, the encoder),
    // checked against libxml2 2.9, Debian 12's, and reworked since. Another version
    // takes the slow, always-right path until it is checked again: fuzz_reply feeds
    // replies in pieces, which is when this path runs, against a reference decode.
    constexpr bool checked_libxml = LIBXML_VERSION >= 20900 && LIBXML_VERSION < 21000;
    if (!checked_libxml) return 0;
    if (field_ != Field::audio_data || depth_ != field_depth_) return 0;
    xmlParserCtxt& ctxt = *ctxt_;
    xmlParserInput* input = ctxt.input;
    const bool idle_in_text = ctxt.instate == XML_PARSER_CONTENT && ctxt.inputNr == 1 &&
                              !ctxt.disableSAX && input != nullptr && input->buf != nullptr &&
                              input->buf->encoder == nullptr && input->cur == input->end;
    if (!idle_in_text) return 0;

    const Base64Decoder::TextPosition before = decoder_.position();
    const std::size_t taken = decoder_.feed_prefix(data, size);
    const Base64Decoder::TextPosition& after = decoder_.position();
    input->consumed += taken;
    if (after.line_breaks == before.line_breaks) {
        input->col = clamp_to_int(static_cast<std::uint64_t>(input->col) + taken);
    } else {
        input->line = clamp_to_int(static_cast<std::uint64_t>(input->line) + after.line_breaks -
                                   before.line_breaks);
        input->col = clamp_to_int(after.offset - after.line_start + 1);
    }
    return taken;
}

void ReplyParser::on_start(const char* name) {
    ++depth_;
    const std::string_view element(name);
    if (depth_ == 1) {
        if (element != "XML") throw malformed("reply is not rooted at <XML>");
        return;
    }
    // Elements nested in a field, or anywhere else, carry nothing we read.
    if (field_ != Field::none) return;
    const bool reply_field = depth_ == 2 || (depth_ == 3 && in_call_recording_);
    if (!reply_field) return;

    if (depth_ == 2 && element == "CallRecording") {
        in_call_recording_ = true;
    } else if (element == "audioData") {
        if (error_seen_) return;  // an <Error> reply: the error wins over any data
        if (audio_seen_) throw malformed("reply has more than one audioData");
        audio_seen_ = true;
        open_field(Field::audio_data);
    } else if (element == "fileName" && !file_name_seen_) {
        file_name_seen_ = true;
        open_field(Field::file_name);
    } else if (depth_ == 2 && element == "Error" && !error_seen_) {
        error_seen_ = true;
        open_field(Field::error);
    }
}

void ReplyParser::open_field(Field field) {
    field_ = field;
    field_depth_ = depth_;
}

void ReplyParser::on_end() {
    if (field_ != Field::none && depth_ == field_depth_) {
        if (field_ == Field::audio_data) decoder_.finish();
        field_ = Field::none;
    }
    if (depth_ == 2) in_call_recording_ = false;
    if (depth_ == 1) root_closed_ = true;
    --depth_;
}

void ReplyParser::on_text(const char* text, std::size_t size) {
    if (field_ == Field::none || depth_ != field_depth_) return;
    switch (field_) {
    case Field::audio_data:
        decoder_.feed(text, size);
        break;
    case Field::error:
        append_bounded(error_text_, text, size, max_field_size);
        break;
    case Field::file_name:
        append_bounded(file_name_, text, size, max_field_size);
        break;
    case Field::none:
        break;
    }
}

void ReplyParser::on_error(const char* message, int line, int column) {
    throw malformed(quoted_xml_error(message) + " (line " + std::to_string(line) + ", column " +
                    std::to_string(column) + ")");
}

void ReplyParser::on_doctype() {
    fail(std::make_exception_ptr(malformed("reply has a DOCTYPE")));
    // The one place to stop inside a callback: libxml2 checks for it right after
    // this one, and stopping now keeps it from reading the subset's declarations.
    xmlStopParser(ctxt_.get());
}

}  // namespace euphoria::api
