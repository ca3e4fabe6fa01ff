#pragma once
// The one Catch2 include of every test: Catch2 2.13 (Debian 12) or 3.x (Debian 13).
// CMake sets EUPHORIA_CATCH2_MAJOR from the Catch2 it found (tests/CMakeLists.txt).
// 2.x is one header and gets its main() from catch_main.cpp; 3.x is a compiled library
// whose main() comes from Catch2::Catch2WithMain.

#if !defined(EUPHORIA_CATCH2_MAJOR)
#error "EUPHORIA_CATCH2_MAJOR is set by tests/CMakeLists.txt"
#elif EUPHORIA_CATCH2_MAJOR >= 3

#include <catch2/catch_all.hpp>

#include <string>

// The tests use 2.x's spelling of the string matchers (Catch::Contains,
// Catch::StartsWith, Catch::EndsWith); 3.x keeps them in Catch::Matchers and renamed
// Contains to ContainsSubstring.
namespace Catch {
inline Matchers::StringContainsMatcher Contains(const std::string& text,
                                                CaseSensitive sensitivity = CaseSensitive::Yes) {
    return Matchers::ContainsSubstring(text, sensitivity);
}
using Matchers::EndsWith;
using Matchers::StartsWith;
}  // namespace Catch

#else

#include <catch2/catch.hpp>

#endif
