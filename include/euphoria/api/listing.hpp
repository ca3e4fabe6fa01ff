#pragma once
// GetCallRecordings: the query, the records of its reply, and a streaming parser for
// them. The reply's shape comes from public client code, not the vendor's reference:
// every child element of <XML> (bar <Error> and <Status>) is one record, whatever its
// own name, and the record's children carry its fields under case-sensitive names.
// The parser is SAX all the way and hands each record over as it closes, so a page
// of any length costs the memory of one record.

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "euphoria/api/libxml_init.hpp"


namespace euphoria::api {

inline constexpr std::string_view listing_action = "GetCallRecordings";
inline constexpr std::string_view by_id_action = "DownloadCallRecordingByUniqueId";

struct ListingQuery {
    std::string start_date;  // yyyy-MM-dd
    std::string end_date;    // yyyy-MM-dd
    std::uint64_t page_size = 500;
    std::uint64_t start_at = 0;  // offset of the page's first record
};

// The record fields we know, by their element names.
enum class RecordField {
    uid, md5, direction, source, destination, date_stamp, file_name, file_size,
    has_comment, flagged, unique_id, is_deleted, status, crm_tag, note, sip_call_id,
};
inline constexpr std::size_t record_field_count = 16;
// "uID", "MD5", ... exactly as the API spells them.
std::string_view record_field_name(RecordField field) noexcept;

struct ListedRecord {
    std::array<std::string, record_field_count> fields;  // trimmed text, "" if absent
    const std::string& operator[](RecordField f) const { return fields[static_cast<std::size_t>(f)]; }
    std::string& operator[](RecordField f) { return fields[static_cast<std::size_t>(f)]; }
};

using RecordHandler = std::function<void(const ListedRecord&)>;

class ListingParser {
public:
    // `on_record` runs for each record as soon as it closes. Records of a reply that
    // later turns out bad have been handed over already: the caller keeps them
    // provisional until finish() returns.
    explicit ListingParser(RecordHandler on_record);
    ~ListingParser();
    ListingParser(const ListingParser&) = delete;
    ListingParser& operator=(const ListingParser&) = delete;

    // Throws ApiError (EIO, malformed) once the XML is known to be bad; rethrows the
    // handler's error. After a throw every later call throws the same error.
    void feed(const char* data, std::size_t size);
    // End of the body. Throws the mapped <Error> ("Action Name Not Found" is
    // EOPNOTSUPP here: the tenant's API has no listing), or EIO (malformed) for a
    // truncated, empty or wrongly rooted body. Returns the number of records.
    std::size_t finish();

    std::size_t records() const noexcept { return records_; }
    static constexpr std::size_t max_field_size = 4096;

private:
    template <class> friend struct SaxBridge;  // src/api/sax_bridge.hpp

    void parse(const char* data, std::size_t size, bool terminate);
    void fail(std::exception_ptr error) noexcept;
    void check_usable() const;
    void on_start(std::string_view name);
    void on_end();
    void on_text(const char* text, std::size_t size);
    void on_doctype();
    void on_error(const char* message, int line, int column);

    // libxml2 2.9's push parser passes a CDATA section's bytes through unchecked:
    // every text is checked to be UTF-8 here, across the pieces it comes in.
    struct Utf8Check {
        int need = 0;  // continuation bytes still due
        unsigned char lo = 0x80, hi = 0xBF;  // the range of the next one
        bool feed(const char* text, std::size_t size) noexcept;
    };

    RecordHandler on_record_;
    Utf8Check utf8_;
    XmlContextPtr ctxt_;
    std::exception_ptr failure_;
    std::uint64_t bytes_fed_ = 0;
    bool finished_ = false;
    int depth_ = 0;
    bool root_closed_ = false;
    bool in_error_ = false;     // /XML/Error is open
    bool in_record_ = false;    // a /XML/* record is open
    int field_ = -1;            // the record field being read, or -1
    bool record_has_field_ = false;
    bool error_seen_ = false;
    std::string error_text_;
    ListedRecord record_;
    std::size_t records_ = 0;
};

class ApiError;
// "Action Name Not Found" for an action the tenant's API may lack: EOPNOTSUPP.
// Any other error comes back as it is.
ApiError for_optional_action(const ApiError& error);

}  // namespace euphoria::api
