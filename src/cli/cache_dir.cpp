#include "euphoria/cli/cache_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "euphoria/core/content.hpp"

namespace euphoria::cli {

namespace fs = std::filesystem;

std::string default_cache_dir(const std::string& tenant) {
    if (::geteuid() == 0) return "/var/cache/euphoria/" + tenant;
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/') {
        return std::string(xdg) + "/euphoria/" + tenant;
    }
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : "/tmp") + "/.cache/euphoria/" + tenant;
}

core::UniqueFd prepare_cache_dir(const std::string& path) {
    std::error_code ec;
    fs::create_directories(path, ec);
    if (ec) throw std::runtime_error("cannot create cache folder " + path + ": " + ec.message());
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw std::runtime_error("cache folder " + path + " is not a folder");
    }
    if (st.st_uid != ::geteuid()) {
        throw std::runtime_error("cache folder " + path + " belongs to another user");
    }
    if (::chmod(path.c_str(), 0700) != 0) {
        throw std::runtime_error("cannot make cache folder " + path + " private: " +
                                 std::strerror(errno));
    }
    // flock, not fcntl: the lock belongs to the open file, which the daemon inherits
    // across its fork, and the kernel drops it when the daemon dies, however.
    core::UniqueFd lock(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!lock) {
        throw std::runtime_error("cannot open cache folder " + path + ": " + std::strerror(errno));
    }
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            throw std::runtime_error("cache folder " + path +
                                     " is in use by another mount; give each mount its own "
                                     "with -o cache_dir=");
        }
        throw std::runtime_error("cannot lock cache folder " + path + ": " + std::strerror(errno));
    }
    purge_cache_dir(path);
    return lock;
}

int purge_cache_dir(const std::string& path) noexcept {
    int removed = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(path, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (core::is_cache_file_name(name) && ::unlink(it->path().c_str()) == 0) ++removed;
    }
    return removed;
}

}  // namespace euphoria::cli
