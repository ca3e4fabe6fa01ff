// The GetCallRecordings reply parser: records whatever their element's name, fields
// by their exact (case-sensitive) names, errors through the API's table, and any
// split of the body giving the same records.

#include "catch_compat.hpp"

#include <cerrno>
#include <string>
#include <vector>

#include "euphoria/api/error.hpp"
#include "euphoria/api/listing.hpp"
#include "euphoria/api/request.hpp"

using namespace euphoria;
using api::RecordField;

namespace {

struct Parsed {
    std::vector<api::ListedRecord> records;
    std::size_t count = 0;
};

Parsed parse(const std::string& body, std::size_t piece = 0) {
    Parsed out;
    api::ListingParser parser([&](const api::ListedRecord& r) { out.records.push_back(r); });
    if (piece == 0) {
        parser.feed(body.data(), body.size());
    } else {
        for (std::size_t i = 0; i < body.size(); i += piece) {
            parser.feed(body.data() + i, std::min(piece, body.size() - i));
        }
    }
    out.count = parser.finish();
    return out;
}

int errno_of(const std::string& body) {
    try {
        parse(body);
    } catch (const api::ApiError& e) {
        return e.error_number();
    }
    return 0;
}

std::string record(const std::string& element, const std::string& name, const std::string& size,
                   const std::string& extra = "") {
    return "<" + element + "><uID>7</uID><MD5>abc</MD5><Direction>Inbound</Direction>"
           "<Source>0215550100</Source><Destination>1001</Destination>"
           "<DateStamp>2020-10-23 16:10:21</DateStamp><FileName>" + name +
           "</FileName><FileSize>" + size + "</FileSize><UniqueID>1603469421.1196632</UniqueID>"
           "<IsDeleted>0</IsDeleted><Note> a note </Note>" + extra + "</" + element + ">";
}

}  // namespace

TEST_CASE("listing records are read whatever the record element is called") {
    for (const std::string element : {"CallRecording", "Recording", "Table", "row"}) {
        const std::string body = "<?xml version=\"1.0\"?>\n<XML>\n" +
                                 record(element, "pbx4-1603469421.1196632-1001.WAV", "4096") +
                                 record(element, "b.WAV", "12") + "</XML>";
        for (std::size_t piece : {std::size_t{0}, std::size_t{1}, std::size_t{7}}) {
            auto p = parse(body, piece);
            REQUIRE(p.count == 2);
            REQUIRE(p.records.size() == 2);
            const auto& r = p.records[0];
            CHECK(r[RecordField::file_name] == "pbx4-1603469421.1196632-1001.WAV");
            CHECK(r[RecordField::file_size] == "4096");
            CHECK(r[RecordField::md5] == "abc");
            CHECK(r[RecordField::unique_id] == "1603469421.1196632");
            CHECK(r[RecordField::date_stamp] == "2020-10-23 16:10:21");
            CHECK(r[RecordField::direction] == "Inbound");
            CHECK(r[RecordField::source] == "0215550100");
            CHECK(r[RecordField::destination] == "1001");
            CHECK(r[RecordField::note] == "a note");
            CHECK(p.records[1][RecordField::file_name] == "b.WAV");
        }
    }
}

TEST_CASE("listing field names are case-sensitive, and unknown ones are ignored") {
    const std::string body =
        "<XML><R><filename>x</filename><FileName>y.WAV</FileName><Extra>z</Extra>"
        "<FILESIZE>1</FILESIZE></R></XML>";
    auto p = parse(body);
    REQUIRE(p.records.size() == 1);
    CHECK(p.records[0][RecordField::file_name] == "y.WAV");
    CHECK(p.records[0][RecordField::file_size].empty());
}

TEST_CASE("an empty listing has no records, and a Status sibling is no record") {
    CHECK(parse("<XML></XML>").count == 0);
    CHECK(parse("<XML><Status>OK</Status></XML>").count == 0);
    CHECK(parse("<XML><Wrapper>text</Wrapper></XML>").count == 0);
}

TEST_CASE("listing errors map through the API's table") {
    CHECK(errno_of("<XML><Error>Permission Denied</Error><Status>1</Status></XML>") == EACCES);
    CHECK(errno_of("<XML><Error> Action Name Not Found </Error></XML>") == EOPNOTSUPP);
    CHECK(errno_of("<XML><Error>Authorization Failed</Error></XML>") == EACCES);
    CHECK(errno_of("<XML><Error>Something new</Error></XML>") == EIO);
    try {
        parse("<XML><Error>Concurrent API Calls Exceeded</Error></XML>");
        FAIL("no error");
    } catch (const api::ApiError& e) {
        CHECK(e.kind() == api::ErrorKind::busy);
    }
}

TEST_CASE("a truncated, empty or foreign listing is malformed") {
    const std::string whole = "<XML>" + record("R", "a.WAV", "1") + "</XML>";
    CHECK(errno_of(whole.substr(0, whole.size() - 3)) == EIO);
    CHECK(errno_of("") == EIO);
    CHECK(errno_of("<html><body>down</body></html>") == EIO);
    CHECK(errno_of("<!DOCTYPE XML [<!ENTITY a 'b'>]><XML></XML>") == EIO);
    CHECK(errno_of("<XML><R><FileName>a</FileName></R>") == EIO);
    // libxml2 2.9 lets bytes that are not UTF-8 through in a CDATA section (fuzz_listing).
    CHECK(errno_of("<XML><R><FileName><![CDATA[a\xC1\x8C.WAV]]></FileName></R></XML>") == EIO);
    CHECK(errno_of("<XML><R><FileName><![CDATA[a\xE2\x82]]></FileName></R></XML>") == EIO);
    CHECK(errno_of("<XML><R><FileName><![CDATA[caf\xC3\xA9.WAV]]></FileName></R></XML>") == 0);
}

TEST_CASE("the listing parser stays failed after an error") {
    api::ListingParser parser([](const api::ListedRecord&) {});
    const std::string bad = "<nope>";
    CHECK_THROWS_AS(parser.feed(bad.data(), bad.size()), api::ApiError);
    CHECK_THROWS_AS(parser.feed("<XML>", 5), api::ApiError);
    CHECK_THROWS_AS(parser.finish(), api::ApiError);
}

TEST_CASE("a handler's error stops the parse and is what is thrown") {
    api::ListingParser parser([](const api::ListedRecord&) {
        throw api::ApiError(ENOSPC, api::ErrorKind::local, "full");
    });
    const std::string body = "<XML>" + record("R", "a.WAV", "1") + "</XML>";
    try {
        parser.feed(body.data(), body.size());
        parser.finish();
        FAIL("no error");
    } catch (const api::ApiError& e) {
        CHECK(e.error_number() == ENOSPC);
    }
}

TEST_CASE("a listing field is bounded") {
    const std::string body = "<XML><R><Note>" + std::string(100000, 'n') + "</Note></R></XML>";
    auto p = parse(body, 1000);
    REQUIRE(p.records.size() == 1);
    CHECK(p.records[0][RecordField::note].size() == api::ListingParser::max_field_size);
}

TEST_CASE("the listing request carries the exact element names") {
    api::ListingQuery q;
    q.start_date = "2020-10-22";
    q.end_date = "2020-10-24";
    q.page_size = 500;
    q.start_at = 1000;
    const auto body = std::string(api::build_listing_request("t1", api::Secret("k&y"), q).reveal());
    CHECK_THAT(body, Catch::Contains("<ActionName>GetCallRecordings</ActionName>"));
    CHECK_THAT(body, Catch::Contains("<pageSize>500</pageSize>"));
    CHECK_THAT(body, Catch::Contains("<startAt>1000</startAt>"));
    CHECK_THAT(body, Catch::Contains("<StartDate>2020-10-22</StartDate>"));
    CHECK_THAT(body, Catch::Contains("<EndDate>2020-10-24</EndDate>"));
    CHECK_THAT(body, Catch::Contains("<Auth>k&amp;y</Auth>"));
}

TEST_CASE("the by-id request carries uniqueId, escaped") {
    const auto body =
        std::string(api::build_by_id_request("t1", api::Secret("k"), "1603469421.1196632<").reveal());
    CHECK_THAT(body, Catch::Contains("<ActionName>DownloadCallRecordingByUniqueId</ActionName>"));
    CHECK_THAT(body, Catch::Contains("<uniqueId>1603469421.1196632&lt;</uniqueId>"));
    CHECK_THROWS_AS(api::build_by_id_request("t1", api::Secret("k"), ""), api::ApiError);
}
