// CalibrationData - the token sequences calibration engines run through the
// model (see include/ktq/calibration.h for the sampling rules).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "text/bpe_tokenizer.h"

namespace ktq {

struct CalibrationOptions {
    int num_samples = 512;
    int max_sequence_length = 2048;
    uint64_t seed = 42;
    std::string text_field = "text";
};

struct CalibrationData {
    std::vector<std::vector<int32_t>> samples;
    uint64_t candidates = 0;  // sequences the dataset offered before sampling

    static CalibrationData from_file(const std::string &path, const BpeTokenizer &tokenizer,
                                     const CalibrationOptions &opts);
    uint64_t tokens() const;
};

// k of n indices drawn without replacement (partial Fisher-Yates on a
// SplitMix64 stream: the same picks on every platform), in ascending order.
std::vector<uint64_t> sample_indices(uint64_t n, uint64_t k, uint64_t seed);

}  // namespace ktq

// The C API's handle (ktq/calibration.h) is this data; engines read it directly.
struct ktq_calibration {
    ktq::CalibrationData data;
};
