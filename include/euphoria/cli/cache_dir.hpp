#pragma once
// The disk tier's folder. Recordings are personal data: the folder is 0700, and
// nothing is left in it after start-up or unmount.

#include <string>

#include "euphoria/core/unique_fd.hpp"

namespace euphoria::cli {

// /var/cache/euphoria/TENANT for root; $XDG_CACHE_HOME/euphoria/TENANT (or
// ~/.cache/euphoria/TENANT) otherwise.
std::string default_cache_dir(const std::string& tenant);

// Creates the folder (and parents), makes it 0700, takes its lock, and removes cache
// files that a killed daemon left behind. Throws std::runtime_error, also when
// another mount holds the folder: two daemons purging one folder would delete each
// other's open files. Keep the returned lock until the last purge at unmount.
core::UniqueFd prepare_cache_dir(const std::string& path);

// Removes every cache file in the folder; returns how many.
int purge_cache_dir(const std::string& path) noexcept;

}  // namespace euphoria::cli
