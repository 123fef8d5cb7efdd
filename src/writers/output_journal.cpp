#include "writers/output_journal.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ktq/common.h"
#include "writers/safetensors_writer.h"

namespace ktq {

std::optional<JournalState> load_journal(const std::string &dir) {
    std::ifstream in(dir + "/" + kJournalName, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    try {
        auto j = nlohmann::json::parse(text.str());
        JournalState s;
        s.fingerprint = j.at("fingerprint").get<std::string>();
        for (const auto &l : j.at("layers_done")) s.layers_done.insert(l.get<int>());
        s.complete = j.value("complete", false);
        s.inputs = j.value("inputs", std::string());
        return s;
    } catch (const nlohmann::json::exception &) {
        return std::nullopt;  // unreadable: treated as no journal, the run starts over
    }
}

void save_journal(const std::string &dir, const JournalState &state) {
    nlohmann::ordered_json j;
    j["ktq_version"] = KTQ_VERSION_STRING;
    j["fingerprint"] = state.fingerprint;
    if (!state.complete) j["inputs"] = state.inputs;
    j["layers_done"] = state.layers_done;
    j["complete"] = state.complete;
    write_file_atomically(dir, kJournalName, j.dump() + "\n");
}

std::string fingerprint_of(const std::string &text) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    return hex;
}

}  // namespace ktq
