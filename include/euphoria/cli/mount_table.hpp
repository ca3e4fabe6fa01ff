#pragma once
// What the kernel's mount table says, the way mount(8) reads it.

#include <string>

namespace euphoria::cli {

// Whether `source` is already mounted on `mountpoint` as a euphoria filesystem,
// according to a /proc/self/mountinfo text. `mountpoint` must be canonical.
bool mounted_here(const std::string& mountinfo, const std::string& source,
                  const std::string& mountpoint);

// The same, reading /proc/self/mountinfo; false when it cannot be read.
bool already_mounted(const std::string& source, const std::string& mountpoint);

}  // namespace euphoria::cli
