#include "temp_dir.hpp"

#include <cstdlib>
#include <stdexcept>

namespace euphoria::test {

TempDir::TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "euphoria-test-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::size_t TempDir::file_count() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path_)) ++n;
    return n;
}

}  // namespace euphoria::test
