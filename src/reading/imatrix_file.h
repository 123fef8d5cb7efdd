// Imatrix - an importance matrix as llama.cpp's llama-imatrix writes it, read
// the way llama-quantize reads it, so that quantizing with it gives
// llama-quantize's bytes.
//
// Two formats:
// - GGUF (current llama-imatrix): per weight "<name>.in_sum2" (F32, the sums
//   of squared activations per input column, one row per expert) and
//   "<name>.counts" (F32, tokens seen per expert), and the keys
//   imatrix.datasets / imatrix.chunk_count / imatrix.chunk_size, which
//   llama-quantize requires. Importance = in_sum2 / round(count) per expert,
//   1 for an expert that saw no token.
// - legacy .dat: int32 entry count; per entry int32 name length, name, int32
//   ncall, int32 value count, float values (already divided by the token
//   count and multiplied by ncall); optionally int32 chunk count, int32
//   length, dataset name. Importance = values / ncall.
// Every length and count is checked against the file; a truncated or
// malformed file, non-finite importance, or a GGUF imatrix without its
// metadata is a KTQ_ERR_FORMAT naming the file and entry.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ktq {

struct Imatrix {
    std::string path;
    bool legacy = false;
    std::vector<std::string> datasets;
    int64_t chunk_count = 0;
    // Weight name (GGUF naming, "blk.0.ffn_down_exps.weight") -> importance,
    // one row of the weight's row length per expert (one row for 2-D weights).
    std::map<std::string, std::shared_ptr<const std::vector<float>>> entries;
    // GGUF format only: tokens each expert (each row of the entry) saw while
    // the imatrix was computed - for a routed-expert weight, how often the
    // router picked that expert. Empty for the legacy format.
    std::map<std::string, std::vector<int64_t>> counts;

    static Imatrix load(const std::string &path);
};

}  // namespace ktq
