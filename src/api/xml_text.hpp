#pragma once
// Text handling shared by the reply and listing parsers: what they feed libxml2 at
// once, how they bound the text they keep, and how they quote libxml2's messages.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace euphoria::api {

// libxml2 fails ("Huge input lookup") once 10 MB of its buffer lies behind or ahead of
// its cursor without XML_PARSE_HUGE, and it only trims the buffer between calls:
// handing it bounded pieces keeps a long text node within that limit.
inline constexpr std::size_t xml_max_piece = std::size_t{1} << 20;

// XML's own white space, not the locale's.
inline std::string_view trim_xml_space(std::string_view text) {
    constexpr std::string_view space = " \t\r\n";
    const auto first = text.find_first_not_of(space);
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(space) - first + 1);
}

// Keeps at most `limit` bytes of a field, however much a hostile reply sends.
inline void append_bounded(std::string& field, const char* text, std::size_t size, std::size_t limit) {
    field.append(text, std::min(size, limit - std::min(field.size(), limit)));
}

// A libxml2 message can quote names from the reply; keep ours readable.
inline std::string quoted_xml_error(const char* message) {
    constexpr std::size_t max_quoted_message = 200;
    const auto text = trim_xml_space(message);
    return std::string(text.substr(0, std::min(text.size(), max_quoted_message)));
}

}  // namespace euphoria::api
