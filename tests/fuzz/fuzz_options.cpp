// Fuzzes parse_command_line(): the input, split on NUL bytes, is the argument list
// after "mount.euphoria" (at most 64 arguments in all).
//
// Checks, any failure aborts (a libFuzzer finding):
//   - only UsageError escapes (a crash, or any other exception, is a finding);
//   - an accepted mount command line holds what the option ranges promise.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "euphoria/cli/options.hpp"

namespace {

constexpr std::size_t max_args = 64;

[[noreturn]] void finding(const char* what, const std::string& detail = {}) {
    // Nothing to do if stderr fails: abort() reports the finding anyway.
    static_cast<void>(std::fprintf(stderr, "\n*** fuzz_options finding: %s\n%s\n", what, detail.c_str()));
    static_cast<void>(std::fflush(stderr));
    std::abort();
}

void check(const euphoria::cli::MountConfig& c) {
    if (c.tenant.empty() || c.tenant.find_first_of("/<>&\"' \t\n") != std::string::npos) {
        finding("accepted a bad tenant", c.tenant);
    }
    if (c.cache_ttl > 30) finding("cache_ttl out of range");
    if (c.max_concurrent < 1 || c.max_concurrent > 3) finding("max_concurrent out of range");
    if (c.timeout < 1 || c.timeout > 3600) finding("timeout out of range");
    if (c.retries > 10) finding("retries out of range");
    if (c.umask > 0777) finding("umask out of range");
    if (c.mem_cache_size == 0 || c.cache_size == 0) finding("a zero cache size");
    if (c.name_pattern.empty()) finding("empty name_pattern");
    if (c.endpoint.empty()) finding("empty endpoint");
    if (c.debug && !c.foreground) finding("debug without foreground");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args{"mount.euphoria"};
    const std::string input(reinterpret_cast<const char*>(data), size);
    if (!input.empty()) {
        std::size_t at = 0;
        while (args.size() < max_args) {
            const auto nul = input.find('\0', at);
            args.push_back(input.substr(at, nul == std::string::npos ? nul : nul - at));
            if (nul == std::string::npos) break;
            at = nul + 1;
        }
    }
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);

    try {
        const auto parsed =
            euphoria::cli::parse_command_line(static_cast<int>(args.size()), argv.data());
        if (parsed.action == euphoria::cli::Action::mount) check(parsed.config);
    } catch (const euphoria::cli::UsageError&) {
    } catch (const std::exception& e) {
        finding("an exception other than UsageError escaped", e.what());
    } catch (...) {
        finding("a non-standard exception escaped");
    }
    return 0;
}
