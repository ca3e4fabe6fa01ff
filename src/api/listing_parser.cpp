#include "euphoria/api/listing.hpp"

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "euphoria/api/error.hpp"
#include "euphoria/api/libxml_init.hpp"
#include "sax_bridge.hpp"
#include "xml_text.hpp"

namespace euphoria::api {

namespace {

constexpr std::array<std::string_view, record_field_count> field_names{
    "uID",  "MD5",     "Direction", "Source", "Destination", "DateStamp", "FileName", "FileSize",
    "HasComment", "Flagged", "UniqueID", "IsDeleted", "Status", "CrmTag", "Note", "SipCallId",
};

ApiError malformed(std::string_view what) {
    return ApiError(EIO, ErrorKind::malformed, "malformed listing: " + std::string(what));
}

int field_index(std::string_view name) {
    for (std::size_t i = 0; i < field_names.size(); ++i) {
        if (field_names[i] == name) return static_cast<int>(i);
    }
    return -1;
}


}  // namespace

std::string_view record_field_name(RecordField field) noexcept {
    return field_names[static_cast<std::size_t>(field)];
}

ApiError for_optional_action(const ApiError& error) {
    if (error.server_text() == "Action Name Not Found") {
        return ApiError(EOPNOTSUPP, ErrorKind::rejected,
                        "the API does not offer this action: Action Name Not Found",
                        error.server_text());
    }
    return error;
}

ListingParser::ListingParser(RecordHandler on_record)
    : on_record_(std::move(on_record)), ctxt_(SaxBridge<ListingParser>::make_context(this)) {}

ListingParser::~ListingParser() = default;

void ListingParser::check_usable() const {
    if (failure_) std::rethrow_exception(failure_);
    if (finished_) throw std::logic_error("ListingParser used after finish()");
}

void ListingParser::on_doctype() {
    fail(std::make_exception_ptr(malformed("reply has a DOCTYPE")));
    xmlStopParser(ctxt_.get());  // before the subset's declarations are read
}

void ListingParser::on_error(const char* message, int line, int /*column*/) {
    throw malformed(quoted_xml_error(message) + " (line " + std::to_string(line) + ")");
}

void ListingParser::fail(std::exception_ptr error) noexcept {
    if (!failure_) failure_ = std::move(error);
    ctxt_->disableSAX = 1;
}

void ListingParser::feed(const char* data, std::size_t size) {
    check_usable();
    bytes_fed_ += size;
    while (size > 0) {
        const std::size_t piece = std::min(size, xml_max_piece);
        parse(data, piece, false);
        data += piece;
        size -= piece;
    }
}

std::size_t ListingParser::finish() {
    check_usable();
    finished_ = true;
    try {
        if (bytes_fed_ == 0) throw malformed("empty body");
        parse(nullptr, 0, true);
        if (!root_closed_) throw malformed("reply ended before </XML>");
        if (error_seen_) throw for_optional_action(error_from_server_text(trim_xml_space(error_text_)));
    } catch (...) {
        fail(std::current_exception());
        throw;
    }
    return records_;
}

void ListingParser::parse(const char* data, std::size_t size, bool terminate) {
    const int rc = xmlParseChunk(ctxt_.get(), data, static_cast<int>(size), terminate ? 1 : 0);
    if (!failure_) {
        const xmlParserInput* in = ctxt_->input;
        const bool unconverted = in && in->buf && in->buf->error != 0;
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

void ListingParser::on_start(std::string_view name) {
    if (utf8_.need > 0) throw malformed("text that is not UTF-8");
    ++depth_;
    if (depth_ == 1) {
        if (name != "XML") throw malformed("reply is not rooted at <XML>");
        return;
    }
    if (depth_ == 2) {
        if (name == "Error") {
            in_error_ = !error_seen_;
            error_seen_ = true;
        } else if (name != "Status") {
            in_record_ = true;
            record_has_field_ = false;
            for (auto& f : record_.fields) f.clear();
        }
        return;
    }
    if (depth_ == 3 && in_record_) {
        field_ = field_index(name);
        if (field_ >= 0) {
            record_has_field_ = true;
            record_.fields[static_cast<std::size_t>(field_)].clear();
        }
    }
}

void ListingParser::on_end() {
    if (utf8_.need > 0) throw malformed("text that is not UTF-8");
    if (depth_ == 3) field_ = -1;
    if (depth_ == 2) {
        in_error_ = false;
        if (in_record_) {
            in_record_ = false;
            // An element with no known field is no record (a wrapper's stray text).
            if (record_has_field_) {
                for (auto& f : record_.fields) f = std::string(trim_xml_space(f));
                ++records_;
                on_record_(record_);
            }
        }
    }
    if (depth_ == 1) root_closed_ = true;
    --depth_;
}

bool ListingParser::Utf8Check::feed(const char* text, std::size_t size) noexcept {
    for (std::size_t i = 0; i < size; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (need > 0) {
            if (c < lo || c > hi) return false;
            lo = 0x80;
            hi = 0xBF;
            --need;
            continue;
        }
        if (c < 0x80) continue;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;  // no surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return false;
        }
    }
    return true;
}

void ListingParser::on_text(const char* text, std::size_t size) {
    if (!utf8_.feed(text, size)) throw malformed("text that is not UTF-8");
    if (depth_ == 2 && in_error_) {
        append_bounded(error_text_, text, size, max_field_size);
    } else if (depth_ == 3 && in_record_ && field_ >= 0) {
        append_bounded(record_.fields[static_cast<std::size_t>(field_)], text, size, max_field_size);
    }
}

}  // namespace euphoria::api
