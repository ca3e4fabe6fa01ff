#include "euphoria/cli/credentials.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "euphoria/core/unique_fd.hpp"

namespace euphoria::cli {

namespace {

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return {};
    const auto e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

}  // namespace

Credentials parse_credentials(const std::string& text, const std::string& file_name) {
    Credentials out;
    std::istringstream in(text);
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        std::string t = trim(line);
        api::wipe_string(line);
        if (t.empty() || t.front() == '#') continue;
        const auto eq = t.find('=');
        const std::string key = eq == std::string::npos ? t : trim(t.substr(0, eq));
        std::string value = eq == std::string::npos ? "" : trim(t.substr(eq + 1));
        api::wipe_string(t);
        // The message names the line, never its content: it may hold the key.
        if (eq == std::string::npos) {
            throw UsageError(file_name + ":" + std::to_string(number) + ": expected name=value");
        }
        if (key == "auth" || key == "key") {
            if (value.empty()) throw UsageError(file_name + ":" + std::to_string(number) + ": empty key");
            out.key = api::Secret(std::move(value));
        } else if (key == "tenant") {
            out.tenant = value;
        } else if (key == "redis_password") {
            // Empty is allowed: a Redis without requirepass.
            out.redis_password = api::Secret(std::move(value));
        } else {
            api::wipe_string(value);
            // Appended piece by piece: `":" + std::to_string(...)` inserts at the front
            // of a temporary, where g++ 12 at -O3 sees a false -Wrestrict.
            std::string message = file_name;
            message += ':';
            message += std::to_string(number);
            message += ": unknown setting '";
            message += key;
            message += "' (expected auth=, tenant= or redis_password=)";
            throw UsageError(message);
        }
        api::wipe_string(value);
    }
    api::wipe_string(line);
    if (out.key.empty()) throw UsageError(file_name + ": no auth=KEY line");
    return out;
}

Credentials load_credentials_file(const std::string& path) {
    const core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        throw UsageError("cannot read credentials file " + path + ": " + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        throw UsageError("credentials file " + path + " is not a regular file");
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        throw UsageError("credentials file " + path +
                         " is accessible by group or others; fix it with: chmod 600 " + path);
    }
    std::string text;
    char buf[4096];
    for (;;) {
        const auto n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > 65536) break;
    }
    explicit_bzero(buf, sizeof buf);
    try {
        auto c = parse_credentials(text, path);
        api::wipe_string(text);
        return c;
    } catch (...) {
        api::wipe_string(text);
        throw;
    }
}

api::Secret take_key_from_environment() {
    char* value = std::getenv("EUPHORIA_AUTH");
    if (!value) return {};
    api::Secret key{std::string(value)};
    // /proc/PID/environ shows the original block: scrub it in place, then drop the name.
    explicit_bzero(value, std::strlen(value));
    ::unsetenv("EUPHORIA_AUTH");
    return key;
}

api::Secret resolve_key(const MountConfig& config, api::Secret* redis_password) {
    api::Secret from_env = take_key_from_environment();
    if (config.credentials.empty()) {
        if (from_env.empty()) {
            throw UsageError("no key: pass -o credentials=FILE (a mode 0600 file with auth=KEY) "
                             "or set EUPHORIA_AUTH");
        }
        return from_env;
    }
    auto creds = load_credentials_file(config.credentials);
    if (!creds.tenant.empty() && creds.tenant != config.tenant) {
        throw UsageError("credentials file " + config.credentials + " is for tenant '" +
                         creds.tenant + "', not '" + config.tenant + "'");
    }
    if (redis_password) *redis_password = std::move(creds.redis_password);
    return std::move(creds.key);
}

}  // namespace euphoria::cli
