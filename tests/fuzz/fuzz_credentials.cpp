// Fuzzes parse_credentials() with the input as the file's text.
//
// Checks, any failure aborts (a libFuzzer finding):
//   - only UsageError escapes;
//   - the outcome matches a plain reading of the documented format (auth=/key=,
//     tenant=, '#' comments, blank lines; the last assignment wins), and a refusal
//     names the first bad line;
//   - an accepted key is non-empty, has no line break and no surrounding blanks;
//   - a refusal's message has one of the known shapes and quotes nothing from the
//     file but a setting's name: never a value, which may be the key.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "euphoria/cli/credentials.hpp"
#include "euphoria/cli/options.hpp"

namespace {

const std::string file_name = "fuzz.cred";

[[noreturn]] void finding(const char* what, const std::string& detail = {}) {
    // Nothing to do if stderr fails: abort() reports the finding anyway.
    static_cast<void>(std::fprintf(stderr, "\n*** fuzz_credentials finding: %s\n%s\n", what, detail.c_str()));
    static_cast<void>(std::fflush(stderr));
    std::abort();
}

std::string_view trim(std::string_view s) {
    constexpr std::string_view blank = " \t\r";
    const auto b = s.find_first_not_of(blank);
    if (b == std::string_view::npos) return {};
    return s.substr(b, s.find_last_not_of(blank) - b + 1);
}

// The lines std::getline would produce.
std::vector<std::string_view> lines_of(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        lines.push_back(text.substr(0, nl));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return lines;
}

struct Expected {
    bool ok = false;
    std::string key, tenant, redis_password;
    std::string message;  // the exact refusal
};

Expected read_plainly(std::string_view text) {
    Expected e;
    const auto lines = lines_of(text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string at = file_name + ":" + std::to_string(i + 1) + ": ";
        const std::string_view line = trim(lines[i]);
        if (line.empty() || line.front() == '#') continue;
        const auto eq = line.find('=');
        if (eq == std::string_view::npos) {
            e.message = at + "expected name=value";
            return e;
        }
        const std::string_view name = trim(line.substr(0, eq));
        const std::string_view value = trim(line.substr(eq + 1));
        if (name == "auth" || name == "key") {
            if (value.empty()) {
                e.message = at + "empty key";
                return e;
            }
            e.key = value;
        } else if (name == "tenant") {
            e.tenant = value;
        } else if (name == "redis_password") {
            e.redis_password = value;
        } else {
            e.message = at + "unknown setting '" + std::string(name) +
                        "' (expected auth=, tenant= or redis_password=)";
            return e;
        }
    }
    if (e.key.empty()) {
        e.message = file_name + ": no auth=KEY line";
        return e;
    }
    e.ok = true;
    return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const Expected expected = read_plainly(text);
    try {
        const auto creds = euphoria::cli::parse_credentials(text, file_name);
        const std::string_view key = creds.key.reveal();
        if (key.empty()) finding("accepted an empty key");
        if (key.find('\n') != std::string_view::npos) finding("the key holds a line break");
        if (trim(key) != key) finding("the key has surrounding blanks");
        if (creds.tenant.find('\n') != std::string::npos) finding("the tenant holds a line break");
        if (!expected.ok) finding("accepted a file the format refuses", expected.message);
        if (key != expected.key || creds.tenant != expected.tenant) {
            finding("not the key or tenant the file gives");
        }
    } catch (const euphoria::cli::UsageError& e) {
        if (expected.ok) finding("refused a valid file", e.what());
        // Comparing whole messages checks that they quote no value.
        // what() ends at the first NUL a quoted name may hold.
        const std::string seen = e.what();
        if (seen != expected.message.substr(0, expected.message.find('\0'))) {
            finding("unexpected refusal message", seen + " | expected | " + expected.message);
        }
    } catch (const std::exception& e) {
        finding("an exception other than UsageError escaped", e.what());
    } catch (...) {
        finding("a non-standard exception escaped");
    }
    return 0;
}
