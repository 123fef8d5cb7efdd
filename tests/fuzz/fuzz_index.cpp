// libFuzzer target: model.safetensors.index.json text. Accepted shard paths
// must never leave the model folder.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "reading/checkpoint.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        auto map = ktq::parse_weight_map(std::string(reinterpret_cast<const char *>(data), size), "index.json");
        for (const auto &[tensor, shard] : map) {
            if (shard.empty() || shard[0] == '/') std::abort();
            // No path component may climb out ("a..b" is a fine file name).
            std::string padded = "/" + shard + "/";
            if (padded.find("/../") != std::string::npos || padded.find("/./") != std::string::npos) std::abort();
        }
    } catch (const ktq::Error &) {
    }
    return 0;
}
