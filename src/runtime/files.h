// Small file-system helpers shared by readers and writers.
#pragma once

#include <string>
#include <vector>

namespace ktq {

// Names in `dir` (no "." and ".."), sorted; empty when it cannot be read.
std::vector<std::string> list_dir(const std::string &dir);
// A directory (not following a final symlink).
bool is_dir(const std::string &path);

}  // namespace ktq
