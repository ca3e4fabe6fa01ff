// Catch2 2.x only: its main(). With 3.x, Catch2::Catch2WithMain provides it and CMake
// leaves this file out.
#define CATCH_CONFIG_MAIN
#include "catch_compat.hpp"
