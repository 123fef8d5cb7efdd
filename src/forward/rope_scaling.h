// RoPE's inverse frequencies for the rope types of Hugging Face configs
// ("rope_parameters" in transformers 5, "rope_scaling" before), computed in
// float32 as transformers' modeling_rope_utils does, so the calibration
// forward pass sees the positions the model was trained with:
//   default  theta^(-2i/dim)
//   linear   default / factor
//   llama3   Llama 3.1's: wavelengths above original_max / low_freq_factor
//            divided by factor, below original_max / high_freq_factor kept,
//            blended in between
//   yarn     NTK-by-parts: interpolated (/ factor) and extrapolated
//            frequencies mixed by a linear ramp over the dimensions between
//            the correction range of beta_fast and beta_slow rotations
//            (floored/ceiled unless truncate is false); cos and sin are
//            multiplied by the attention factor (given, or from factor,
//            mscale and mscale_all_dim)
// Other types (dynamic, longrope, ...) are refused by name.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ktq {

struct RopeFrequencies {
    std::string type = "default";
    std::vector<float> inv_freq;       // [dim / 2]
    float attention_factor = 1.0f;     // multiplies cos and sin
    double factor = 1.0;               // the scaling factor (1 for default)
    double mscale_all_dim = 0.0;       // yarn's, 0 when absent (DeepSeek uses it for the softmax scale)
};

// The config's rope parameters: "rope_parameters" (transformers 5) or the
// older "rope_scaling", or null when it has neither.
const nlohmann::ordered_json *rope_parameters(const nlohmann::ordered_json &config);
// Their rope type ("rope_type", or the older "type"); "default" for null.
std::string rope_type(const nlohmann::ordered_json *params);

// `params`: rope_parameters(config) (null: default);
// `config`: the whole config.json (max_position_embeddings,
// original_max_position_embeddings); `where` names the file in errors.
RopeFrequencies rope_frequencies(const nlohmann::ordered_json *params, const nlohmann::ordered_json &config, int dim, double theta,
                                 const std::string &where);

// yarn's magnitude correction: 0.1 * mscale * ln(scale) + 1 for scale > 1, else 1.
double yarn_mscale(double scale, double mscale);

}  // namespace ktq
