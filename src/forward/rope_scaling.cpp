#include "forward/rope_scaling.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace ktq {

namespace {

double number(const nlohmann::ordered_json &j, const char *key, double fallback) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

double required(const nlohmann::ordered_json &j, const char *key, const std::string &type, const std::string &where) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number())
        fail(KTQ_ERR_FORMAT, where + ": rope_type \"" + type + "\" needs a numeric \"" + key + "\"");
    return it->get<double>();
}

// theta^(2i/dim) in float32, as torch computes base ** (arange(0, dim, 2).float() / dim).
float position_frequency(double theta, int i, int dim) {
    return static_cast<float>(std::pow(theta, static_cast<double>(static_cast<float>(2 * i) / static_cast<float>(dim))));
}

}  // namespace

const nlohmann::ordered_json *rope_parameters(const nlohmann::ordered_json &config) {
    for (const char *key : {"rope_parameters", "rope_scaling"}) {
        auto it = config.find(key);
        if (it != config.end() && it->is_object()) return &*it;
    }
    return nullptr;
}

std::string rope_type(const nlohmann::ordered_json *params) {
    if (params)
        for (const char *key : {"rope_type", "type"}) {
            auto it = params->find(key);
            if (it != params->end() && it->is_string()) return it->get<std::string>();
        }
    return "default";
}

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

RopeFrequencies rope_frequencies(const nlohmann::ordered_json *params, const nlohmann::ordered_json &config, int dim, double theta,
                                 const std::string &where) {
    RopeFrequencies r;
    r.type = rope_type(params);
    if (dim <= 0 || dim % 2 != 0) fail(KTQ_ERR_FORMAT, where + ": rotary dimension " + std::to_string(dim) + " is not even");
    if (params && number(*params, "partial_rotary_factor", 1.0) != 1.0)
        fail(KTQ_ERR_UNSUPPORTED, where + ": partial_rotary_factor is not implemented in the native forward pass");
    const int half = dim / 2;
    r.inv_freq.resize(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) r.inv_freq[static_cast<size_t>(i)] = 1.0f / position_frequency(theta, i, dim);
    if (r.type == "default") return r;
    const nlohmann::ordered_json &p = *params;
    const double max_pos = number(config, "max_position_embeddings", 0);
    // transformers moves a top-level original_max_position_embeddings into the rope parameters first (Phi-3).
    const double original = number(config, "original_max_position_embeddings",
                                   number(p, "original_max_position_embeddings", max_pos));
    if (r.type == "linear") {
        r.factor = required(p, "factor", r.type, where);
        for (float &f : r.inv_freq) f = f / static_cast<float>(r.factor);
        return r;
    }
    if (r.type == "llama3") {
        r.factor = required(p, "factor", r.type, where);
        const double low = required(p, "low_freq_factor", r.type, where), high = required(p, "high_freq_factor", r.type, where);
        if (original <= 0) fail(KTQ_ERR_FORMAT, where + ": rope_type \"llama3\" needs original_max_position_embeddings");
        const float factor = static_cast<float>(r.factor);
        const double low_wavelen = original / low, high_wavelen = original / high;
        for (float &f : r.inv_freq) {
            const float wavelen = static_cast<float>(2 * M_PI) / f;
            if (wavelen > low_wavelen) {
                f = f / factor;
            } else if (!(wavelen < high_wavelen)) {  // medium frequencies: blended
                const float smooth = static_cast<float>((original / wavelen - low) / (high - low));
                f = (1 - smooth) * f / factor + smooth * f;
            }
        }
        return r;
    }
    if (r.type == "yarn") {
        r.factor = p.contains("factor") && p["factor"].is_number() ? p["factor"].get<double>() : 0.0;
        if (r.factor == 0.0) {  // DeepSeek-style: the ratio of the context lengths
            if (original <= 0) fail(KTQ_ERR_FORMAT, where + ": rope_type \"yarn\" needs factor or original_max_position_embeddings");
            r.factor = max_pos / original;
        }
        if (original <= 0) fail(KTQ_ERR_FORMAT, where + ": rope_type \"yarn\" needs original_max_position_embeddings");
        const double mscale = number(p, "mscale", 0), mscale_all = number(p, "mscale_all_dim", 0);
        r.mscale_all_dim = mscale_all;
        if (p.contains("attention_factor") && p["attention_factor"].is_number())
            r.attention_factor = p["attention_factor"].get<float>();
        else if (mscale != 0 && mscale_all != 0)
            r.attention_factor = static_cast<float>(yarn_mscale(r.factor, mscale) / yarn_mscale(r.factor, mscale_all));
        else
            r.attention_factor = static_cast<float>(yarn_mscale(r.factor, 1.0));
        double beta_fast = number(p, "beta_fast", 0), beta_slow = number(p, "beta_slow", 0);
        if (beta_fast == 0) beta_fast = 32;
        if (beta_slow == 0) beta_slow = 1;
        auto correction_dim = [&](double rotations) {
            return dim * std::log(original / (rotations * 2 * M_PI)) / (2 * std::log(theta));
        };
        double lo = correction_dim(beta_fast), hi = correction_dim(beta_slow);
        auto trunc = p.find("truncate");
        if (trunc == p.end() || !trunc->is_boolean() || trunc->get<bool>()) {
            lo = std::floor(lo);
            hi = std::ceil(hi);
        }
        lo = std::max(lo, 0.0);
        hi = std::min(hi, static_cast<double>(dim - 1));
        if (lo == hi) hi += 0.001;  // as transformers: no zero-width ramp
        const float factor = static_cast<float>(r.factor);
        for (int i = 0; i < half; ++i) {
            const float pos_freq = position_frequency(theta, i, dim);
            const float extrapolation = 1.0f / pos_freq, interpolation = 1.0f / (factor * pos_freq);
            const float ramp = std::clamp((static_cast<float>(i) - static_cast<float>(lo)) / static_cast<float>(hi - lo), 0.0f, 1.0f);
            const float extra_factor = 1.0f - ramp;
            r.inv_freq[static_cast<size_t>(i)] = interpolation * (1 - extra_factor) + extrapolation * extra_factor;
        }
        return r;
    }
    fail(KTQ_ERR_UNSUPPORTED, where + ": rope_type \"" + r.type +
                                  "\" is not implemented in the native forward pass (default, linear, llama3, yarn are)");
}

}  // namespace ktq
