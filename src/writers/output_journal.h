// OutputJournal - what lets a killed conversion resume. It lives in the
// output folder as ".ktq-journal.json" while a conversion is in progress and
// records (a) a fingerprint of the output plan (format, options, every
// tensor's name, dtype, shape and place) and (b) the layers whose bytes are
// already on disk. A layer is journaled only after its data was fsynced, and
// the journal itself is replaced atomically, so after SIGKILL or power loss
// the journal never claims more than the disk holds. When the output is
// complete the journal says so ("complete": true): the folder's completion
// marker, written after every final file is in place.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

namespace ktq {

struct JournalState {
    std::string fingerprint;    // of the output plan (names, dtypes, shapes, shards)
    std::string inputs;         // of the input files (names, sizes, mtimes); dropped once complete,
                                // so a finished output does not depend on when its input was copied
    std::set<int> layers_done;  // -1 = the non-layer tensors
    bool complete = false;
};

constexpr const char *kJournalName = ".ktq-journal.json";

std::optional<JournalState> load_journal(const std::string &dir);
void save_journal(const std::string &dir, const JournalState &state);

// FNV-1a 64-bit of `text`, as 16 hex digits: stable across builds and
// machines, which std::hash is not.
std::string fingerprint_of(const std::string &text);

}  // namespace ktq
