#include "euphoria/core/names.hpp"

#include <fnmatch.h>

#include <charconv>

namespace euphoria::core {

bool NamePolicy::may_fetch(std::string_view name) const {
    if (name.empty() || name.front() == '.') return false;
    if (name.find('/') != std::string_view::npos) return false;
    return ::fnmatch(pattern_.c_str(), std::string(name).c_str(), FNM_PERIOD) == 0;
}

std::optional<std::time_t> call_time_from_name(std::string_view name) {
    const auto dash = name.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    const auto rest = name.substr(dash + 1);
    const auto dot = rest.find('.');
    if (dot == std::string_view::npos || dot < 9 || dot > 10) return std::nullopt;
    long long seconds = 0;
    const auto* end = rest.data() + dot;
    auto [ptr, ec] = std::from_chars(rest.data(), end, seconds);
    if (ec != std::errc() || ptr != end) return std::nullopt;
    // 2000-01-01 to 2100-01-01: anything else is a coincidence of digits.
    if (seconds < 946684800LL || seconds >= 4102444800LL) return std::nullopt;
    return static_cast<std::time_t>(seconds);
}

}  // namespace euphoria::core
