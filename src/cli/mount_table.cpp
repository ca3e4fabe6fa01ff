#include "euphoria/cli/mount_table.hpp"

#include <fstream>
#include <sstream>
#include <vector>

namespace euphoria::cli {

namespace {

// mountinfo writes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& field) {
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        const bool octal = field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' &&
                           field[i + 1] <= '3' && field[i + 2] >= '0' && field[i + 2] <= '7' &&
                           field[i + 3] >= '0' && field[i + 3] <= '7';
        if (octal) {
            out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                            (field[i + 3] - '0')));
            i += 3;
        } else {
            out.push_back(field[i]);
        }
    }
    return out;
}

}  // namespace

bool mounted_here(const std::string& mountinfo, const std::string& source,
                  const std::string& mountpoint) {
    std::istringstream lines(mountinfo);
    std::string line;
    while (std::getline(lines, line)) {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        std::istringstream in(line);
        std::vector<std::string> fields;
        for (std::string f; in >> f;) fields.push_back(f);
        if (fields.size() < 10) continue;
        std::size_t dash = 6;
        while (dash < fields.size() && fields[dash] != "-") ++dash;
        if (dash + 2 >= fields.size()) continue;
        const auto& fstype = fields[dash + 1];
        if (fstype != "fuse.euphoria" && fstype != "euphoria") continue;
        if (unescape(fields[4]) == mountpoint && unescape(fields[dash + 2]) == source) return true;
    }
    return false;
}

bool already_mounted(const std::string& source, const std::string& mountpoint) {
    std::ifstream in("/proc/self/mountinfo");
    if (!in) return false;
    std::ostringstream text;
    text << in.rdbuf();
    return mounted_here(text.str(), source, mountpoint);
}

}  // namespace euphoria::cli
