#include "euphoria/core/names.hpp"

#include <fnmatch.h>

#include <charconv>

namespace euphoria::core {

bool NamePolicy::may_fetch(std::string_view name) const {
    if (name.empty() || name.front() == '.') return false;
    if (name.find('/') != std::string_view::npos) return false;
    return ::fnmatch(pattern_.c_str(), std::string(name).c_str(), FNM_PERIOD) == 0;
}

namespace {

// "1603469421.1196632" followed by '-', '.' or the end: Asterisk's uniqueid, whose
// first part is the call's start. Digits in any other shape (a phone number, a ticket
// number) are not taken for a time.
std::optional<std::time_t> uniqueid_time(std::string_view s) {
    const auto dot = s.find('.');
    if (dot == std::string_view::npos || dot < 9 || dot > 10) return std::nullopt;
    long long seconds = 0;
    const auto* end = s.data() + dot;
    auto [ptr, ec] = std::from_chars(s.data(), end, seconds);
    if (ec != std::errc() || ptr != end) return std::nullopt;
    std::size_t i = dot + 1;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == dot + 1 || (i < s.size() && s[i] != '-' && s[i] != '.')) return std::nullopt;
    // 2000-01-01 to 2100-01-01: anything else is a coincidence of digits.
    if (seconds < 946684800LL || seconds >= 4102444800LL) return std::nullopt;
    return static_cast<std::time_t>(seconds);
}

}  // namespace

std::optional<std::time_t> call_time_from_name(std::string_view name) {
    for (auto dash = name.find('-'); dash != std::string_view::npos; dash = name.find('-', dash + 1)) {
        if (const auto t = uniqueid_time(name.substr(dash + 1))) return t;
    }
    return std::nullopt;
}

}  // namespace euphoria::core
