// The request body: libxml2 escapes every value, so hostile names round-trip, and
// the key never leaks into what may be shown.

#include "catch_compat.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "euphoria/api/error.hpp"
#include "euphoria/api/request.hpp"
#include "euphoria/api/secret.hpp"

using namespace euphoria;

namespace {

// Parses a body back with libxml2 and returns the text of /XML/<element>.
std::string text_of(const std::string& body, const char* element) {
    std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> doc(
        xmlReadMemory(body.data(), static_cast<int>(body.size()), nullptr, nullptr, XML_PARSE_NONET),
        xmlFreeDoc);
    REQUIRE(doc);
    xmlNode* root = xmlDocGetRootElement(doc.get());
    REQUIRE(root);
    REQUIRE(std::string(reinterpret_cast<const char*>(root->name)) == "XML");
    for (xmlNode* n = root->children; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && std::string(reinterpret_cast<const char*>(n->name)) == element) {
            xmlChar* content = xmlNodeGetContent(n);
            std::string out(reinterpret_cast<const char*>(content));
            xmlFree(content);
            return out;
        }
    }
    FAIL("no " << element);
    return {};
}

}  // namespace

TEST_CASE("hostile file names round-trip through the request exactly", "[request]") {
    const std::string names[] = {
        "a&b <c> \"d\" 'e' ]]>.WAV",
        "&amp;&#65;&unknown;.WAV",
        "<![CDATA[x]]>.WAV",
        "tab\there, new\nline, carriage\rreturn.WAV",
        "  spaces at both ends  ",
        "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80.WAV",
        std::string(255, 'x'),
    };
    const api::Secret key("k<&>\"'ey");
    for (const auto& name : names) {
        INFO(name);
        const auto body = api::build_download_request("acme", key, name);
        const std::string text(body.reveal());
        CHECK(text_of(text, "FileName") == name);
        CHECK(text_of(text, "ActionName") == "DownloadCallRecordingByFilename");
    }
}

TEST_CASE("the key is escaped too, and never in the loggable form", "[request][security]") {
    const api::Secret key("se<cr>et&key");
    const auto body = api::build_download_request("acme", key, "x.WAV");
    CHECK(std::string(body.reveal()).find("se&lt;cr&gt;et&amp;key") != std::string::npos);
    const auto shown = api::describe_download_request("acme", "x.WAV");
    CHECK(shown.find("***") != std::string::npos);
    CHECK(shown.find("cr") == std::string::npos);
}

TEST_CASE("names XML cannot carry are refused before a body exists", "[request]") {
    const api::Secret key("k");
    for (const std::string& bad : {std::string(""), std::string("nul\0x", 5), std::string("ctl\x01"),
                                  std::string("\xff\xfe"), std::string("half\xc3"),
                                  std::string("overlong\xc0\xaf"), std::string("surrogate\xed\xa0\x80")}) {
        INFO(bad);
        try {
            (void)api::build_download_request("acme", key, bad);
            FAIL("accepted");
        } catch (const api::ApiError& e) {
            CHECK(e.error_number() == EINVAL);
        }
    }
}

TEST_CASE("a key XML cannot carry is refused, and the message does not show it", "[request][security]") {
    for (const char* bad : {"ab\x01" "cd", "ab\xff"}) {
        try {
            (void)api::build_download_request("acme", api::Secret(bad), "x.WAV");
            FAIL("accepted");
        } catch (const api::ApiError& e) {
            CHECK(e.error_number() == EINVAL);
            CHECK(std::string(e.what()).find("ab") == std::string::npos);
        }
    }
}

TEST_CASE("wiping scrubs a string's whole buffer", "[secret][security]") {
    std::string s(100, 'k');
    const char* buffer = s.data();
    const auto capacity = s.capacity();
    api::wipe_string(s);
    CHECK(s.empty());
    CHECK(s.data() == buffer);  // cleared in place, not reallocated
    CHECK(std::all_of(buffer, buffer + capacity, [](char c) { return c == '\0'; }));
}

TEST_CASE("a Secret wipes what it held when moved from or dropped", "[secret][security]") {
    api::Secret a(std::string(64, 'z'));
    api::Secret b(std::move(a));
    CHECK(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state
    CHECK(b.reveal() == std::string(64, 'z'));
    api::Secret c;
    c = b;
    CHECK(c.reveal() == b.reveal());
    b.wipe();
    CHECK(b.empty());
    CHECK(c.reveal() == std::string(64, 'z'));
}
