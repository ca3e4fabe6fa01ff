#include "catch_compat.hpp"

#include <string>

#include "euphoria/cli/logger.hpp"

using euphoria::cli::escape_for_log;

namespace {

// True when no byte of s could end a line or start a terminal escape, and s is
// valid UTF-8 without any code point escape_for_log must hide.
bool one_plain_line(const std::string& s) {
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) return false;
    }
    return s.find("\xc2\x85") == std::string::npos && s.find("\xe2\x80\xa8") == std::string::npos &&
           s.find("\xe2\x80\xae") == std::string::npos && s.find("\xe2\x81\xa6") == std::string::npos;
}

}  // namespace

TEST_CASE("plain text, and well-formed UTF-8, pass unchanged", "[logger]") {
    CHECK(escape_for_log("") == "");
    CHECK(escape_for_log("fetched pbx4-1603469421.1196632-1001.WAV: 12345 bytes in 80 ms") ==
          "fetched pbx4-1603469421.1196632-1001.WAV: 12345 bytes in 80 ms");
    CHECK(escape_for_log("a&b <c> \"d\" 'e' ]]>.WAV") == "a&b <c> \"d\" 'e' ]]>.WAV");
    // Latin-1 letters (U+00A0 and up, just past C1), CJK, the euro sign, an emoji.
    const std::string utf8 = "\xc3\xa9t\xc3\xa9 \xc2\xa0 \xe9\x80\x9a\xe8\xaf\x9d \xe2\x82\xac \xf0\x9f\x98\x80.WAV";
    CHECK(escape_for_log(utf8) == utf8);
    // Neighbours of the escaped ranges are left alone: U+200D (ZWJ), U+2027, U+202F,
    // U+2065, U+206A, and U+10FFFF, the last code point.
    for (const std::string cp : {"\xe2\x80\x8d", "\xe2\x80\xa7", "\xe2\x80\xaf", "\xe2\x81\xa5",
                                 "\xe2\x81\xaa", "\xf4\x8f\xbf\xbf"}) {
        CHECK(escape_for_log("x" + cp + "y") == "x" + cp + "y");
    }
}

TEST_CASE("C0 controls and DEL become \\xNN", "[logger][security]") {
    CHECK(escape_for_log("new\nline.WAV") == "new\\x0aline.WAV");
    CHECK(escape_for_log("cr\rtab\t") == "cr\\x0dtab\\x09");
    CHECK(escape_for_log("esc\x1b[31mred") == "esc\\x1b[31mred");
    CHECK(escape_for_log(std::string("nul\0x", 5)) == "nul\\x00x");
    CHECK(escape_for_log("del\x7f") == "del\\x7f");
}

TEST_CASE("backslash is escaped itself, so an escape cannot be forged", "[logger][security]") {
    CHECK(escape_for_log("a\\b") == "a\\\\b");
    // A name that spells an escape is told apart from one that needed it.
    CHECK(escape_for_log("x\\x0ay") == "x\\\\x0ay");
    CHECK(escape_for_log("x\ny") == "x\\x0ay");
    CHECK(escape_for_log("\\u{202E}") == "\\\\u{202E}");
    CHECK(escape_for_log("\\") == "\\\\");
}

TEST_CASE("C1 controls become \\u{XXXX}", "[logger][security]") {
    CHECK(escape_for_log("a\xc2\x80" "b") == "a\\u{0080}b");
    CHECK(escape_for_log("next\xc2\x85line") == "next\\u{0085}line");  // NEL
    CHECK(escape_for_log("csi\xc2\x9b" "31m") == "csi\\u{009B}31m");   // 8-bit CSI
    CHECK(escape_for_log("\xc2\x9f") == "\\u{009F}");
}

TEST_CASE("line and paragraph separators become \\u{XXXX}", "[logger][security]") {
    CHECK(escape_for_log("one\xe2\x80\xa8two") == "one\\u{2028}two");
    CHECK(escape_for_log("one\xe2\x80\xa9two") == "one\\u{2029}two");
}

TEST_CASE("bidi controls become \\u{XXXX}", "[logger][security]") {
    const std::pair<const char*, const char*> cases[] = {
        {"\xd8\x9c", "\\u{061C}"},      // ARABIC LETTER MARK
        {"\xe2\x80\x8e", "\\u{200E}"},  // LRM
        {"\xe2\x80\x8f", "\\u{200F}"},  // RLM
        {"\xe2\x80\xaa", "\\u{202A}"},  // LRE
        {"\xe2\x80\xab", "\\u{202B}"},  // RLE
        {"\xe2\x80\xac", "\\u{202C}"},  // PDF
        {"\xe2\x80\xad", "\\u{202D}"},  // LRO
        {"\xe2\x80\xae", "\\u{202E}"},  // RLO
        {"\xe2\x81\xa6", "\\u{2066}"},  // LRI
        {"\xe2\x81\xa7", "\\u{2067}"},  // RLI
        {"\xe2\x81\xa8", "\\u{2068}"},  // FSI
        {"\xe2\x81\xa9", "\\u{2069}"},  // PDI
    };
    for (const auto& [raw, escaped] : cases) {
        INFO(escaped);
        CHECK(escape_for_log(std::string("a") + raw + "b") == std::string("a") + escaped + "b");
    }
    // The classic trick: a name that displays as "...exe.WAV" but ends in "exe".
    CHECK(escape_for_log("invoice\xe2\x80\xaeVAW.exe") == "invoice\\u{202E}VAW.exe");
}

TEST_CASE("bytes that are not well-formed UTF-8 become \\xNN each", "[logger][security]") {
    CHECK(escape_for_log("bad\xff\xfe.WAV") == "bad\\xff\\xfe.WAV");
    CHECK(escape_for_log("\x80") == "\\x80");                     // stray continuation
    CHECK(escape_for_log("half\xc3") == "half\\xc3");             // truncated at the end
    CHECK(escape_for_log("half\xc3.WAV") == "half\\xc3.WAV");     // truncated mid-string
    CHECK(escape_for_log("\xe2\x80") == "\\xe2\\x80");            // truncated 3-byte form
    CHECK(escape_for_log("\xc0\xaf") == "\\xc0\\xaf");            // overlong '/'
    CHECK(escape_for_log("\xc1\xbf") == "\\xc1\\xbf");            // overlong
    CHECK(escape_for_log("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");   // overlong 3-byte '/'
    CHECK(escape_for_log("\xf0\x80\x80\xaf") == "\\xf0\\x80\\x80\\xaf");  // overlong 4-byte
    CHECK(escape_for_log("\xed\xa0\x80") == "\\xed\\xa0\\x80");   // surrogate U+D800
    CHECK(escape_for_log("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // U+110000
    CHECK(escape_for_log("\xf5\x80\x80\x80") == "\\xf5\\x80\\x80\\x80");
    // An overlong or bare encoding of a control cannot sneak one through either.
    CHECK(escape_for_log("\xc0\x8a") == "\\xc0\\x8a");            // overlong LF
    CHECK(escape_for_log("\xe0\x82\x85") == "\\xe0\\x82\\x85");   // overlong NEL
    // After a bad byte, decoding picks up at the next one.
    CHECK(escape_for_log("\xe2\xe2\x80\xae") == "\\xe2\\u{202E}");
    CHECK(escape_for_log("\xc3\xc3\xa9") == "\\xc3\xc3\xa9");
}

TEST_CASE("whatever the input, the output is one plain line", "[logger][security]") {
    // Every byte value, alone and before each lead byte's longest valid tail.
    for (int b = 0; b < 256; ++b) {
        const std::string one(1, static_cast<char>(b));
        INFO(b);
        CHECK(one_plain_line(escape_for_log(one)));
        CHECK(one_plain_line(escape_for_log(one + "\x80\x85\xa8")));
        CHECK(one_plain_line(escape_for_log(one + "\n")));
    }
    for (const char* hostile : {"\xe2\x80\xa8\xe2\x80\xae\xc2\x85\n\r\x1b]0;title\x07",
                                "x\xc2\x85\xc2", "\xe2\x81\xa6\xe2\x81\xa9\xe2\x80\x8f"}) {
        CHECK(one_plain_line(escape_for_log(hostile)));
    }
}
