#pragma once
// The key comes from a private file, or from the environment for containers; never
// from argv, which every local user can read through ps.

#include <string>

#include "euphoria/api/secret.hpp"
#include "euphoria/cli/options.hpp"

namespace euphoria::cli {

struct Credentials {
    api::Secret key;
    std::string tenant;  // from a tenant= line; empty when absent
    api::Secret redis_password;  // redis_password=, for -o redis=URL; empty when absent
};

// Parses "auth=KEY" / "key=KEY", "tenant=NAME", "redis_password=...", '#' comments
// and blank lines.
// Throws UsageError with the line number for anything else.
Credentials parse_credentials(const std::string& text, const std::string& file_name);

// Reads FILE, refusing it when group or others may read or write it. Throws UsageError.
Credentials load_credentials_file(const std::string& path);

// Takes EUPHORIA_AUTH and scrubs it from this process's environment block.
api::Secret take_key_from_environment();

// The key for `config`: the file if given, else the environment. Checks that a
// tenant= line agrees with the tenant being mounted. Throws UsageError.
// `redis_password`, when given, gets the file's redis_password= (empty without one).
api::Secret resolve_key(const MountConfig& config, api::Secret* redis_password = nullptr);

}  // namespace euphoria::cli
