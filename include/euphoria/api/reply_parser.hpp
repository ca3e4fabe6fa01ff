#pragma once
// Parses a DownloadCallRecordingByFilename reply as it arrives: a SAX push parser
// whose <audioData> text goes straight through a base64 decoder into the sink. No
// DOM, and the base64 text is never held whole, so memory stays flat for any size.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "euphoria/api/base64.hpp"
#include "euphoria/api/libxml_init.hpp"
#include "euphoria/api/sink.hpp"


namespace euphoria::api {

class ReplyParser {
public:
    // Writes decoded bytes to `sink` as they arrive; does not call sink.reset().
    explicit ReplyParser(Sink& sink);
    ~ReplyParser();
    ReplyParser(const ReplyParser&) = delete;
    ReplyParser& operator=(const ReplyParser&) = delete;

    // The next piece of the body, of any size. Throws ApiError (EIO, malformed) as
    // soon as the XML or the base64 is known to be bad, and rethrows a sink's error.
    // After a throw the parser stays failed: every later call throws the same error.
    void feed(const char* data, std::size_t size);

    // End of the body. Throws the mapped <Error> if the reply has one, ENOENT
    // (not_found) if its audioData is empty or absent, and EIO (malformed) for a
    // truncated, empty, non-XML, HTML or wrongly rooted body or corrupt base64.
    // Otherwise calls sink.complete(), exactly once.
    void finish();

    // The reply's <fileName> text (at most max_field_size bytes), empty if none.
    const std::string& file_name() const noexcept { return file_name_; }

    static constexpr std::size_t max_field_size = 4096;

private:
    enum class Field { none, audio_data, error, file_name };


    void parse(const char* data, std::size_t size, bool terminate);  // size <= max_piece
    std::size_t bypass_libxml(const char* data, std::size_t size);
    void fail(std::exception_ptr error) noexcept;
    void check_usable() const;
    void finish_reply();

    // SAX events, called from libxml2 with `this` as user data.
    void on_start(const char* name);
    void on_end();
    void on_text(const char* text, std::size_t size);
    void on_error(const char* message, int line, int column);
    void on_doctype();
    void open_field(Field field);

    // C callbacks for libxml2: they must not throw, so each records what went wrong.
    template <class> friend struct SaxBridge;  // src/api/sax_bridge.hpp

    Sink& sink_;
    Base64Decoder decoder_;
    XmlContextPtr ctxt_;
    std::exception_ptr failure_;
    std::uint64_t bytes_fed_ = 0;
    bool finished_ = false;

    int depth_ = 0;                   // elements open now
    bool root_closed_ = false;        // </XML> seen
    bool in_call_recording_ = false;  // /XML/CallRecording is open
    Field field_ = Field::none;       // field whose direct text is being collected
    int field_depth_ = 0;             // depth of that field's element
    bool audio_seen_ = false;
    bool error_seen_ = false;
    bool file_name_seen_ = false;
    std::string error_text_;
    std::string file_name_;
};

}  // namespace euphoria::api
