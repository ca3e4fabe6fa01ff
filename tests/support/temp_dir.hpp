#pragma once
#include <filesystem>
#include <string>

namespace euphoria::test {

// A private folder under /tmp, removed with everything in it.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const noexcept { return path_; }
    std::size_t file_count() const;

private:
    std::string path_;
};

}  // namespace euphoria::test
