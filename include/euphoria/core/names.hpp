#pragma once
// Which names may cost an upstream call, and what a name says about its recording.

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace euphoria::core {

class NamePolicy {
public:
    explicit NamePolicy(std::string pattern = "*") : pattern_(std::move(pattern)) {}
    // Dot-names never go upstream: shells, file managers and sftp probe .hidden,
    // .DS_Store, ._x and .Trash-0 all the time, and each would be a paid call.
    bool may_fetch(std::string_view name) const;
    const std::string& pattern() const noexcept { return pattern_; }

private:
    std::string pattern_;  // fnmatch(3) glob
};

// "pbx4-1603469421.1196632-..." carries the call's start in Unix seconds: the first
// part of an Asterisk uniqueid (seconds '.' sequence) after a '-'.
std::optional<std::time_t> call_time_from_name(std::string_view name);

}  // namespace euphoria::core
