// Small file-system helpers shared by readers and writers.
#pragma once

#include <string>
#include <vector>

namespace ktq {

// Names in `dir` (no "." and ".."), sorted; empty when it cannot be read.
std::vector<std::string> list_dir(const std::string &dir);
// A directory (not following a final symlink).
bool is_dir(const std::string &path);
// A new file `prefix`XXXXXX in TMPDIR (else /tmp), unlinked at once so that it goes with the process
// whatever happens. Returns its descriptor and sets *name to the name it had; -1 with errno set and
// *name the template when it cannot be made.
int open_unlinked_temp_file(const std::string &prefix, std::string *name);

}  // namespace ktq
