"""Shared models with a scaled RoPE written into their config (the weights
are the shared ones, linked): the cases of tests/golden/rope_scaling.json.
Used by its generator (tests/golden/make_rope_scaling_golden.py) and by
test_rope_scaling.py."""
import json
import os

WINDOW, WINDOWS = 256, 2

# name -> (shared model, config edit)
CASES = {
    "llama-default": ("tiny-llama", {}),
    "llama-linear": ("tiny-llama", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}}),
    # original context 64: wavelengths above 64 are divided, below 16 kept, between blended
    "llama-llama3": ("tiny-llama", {"rope_parameters": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64, "rope_theta": 10000.0}}),
    "llama-yarn": ("tiny-llama", {"rope_parameters": {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256, "rope_theta": 10000.0}}),
    "deepseek-default": ("tiny-deepseek-v3", {}),
    # DeepSeek-V3's own form (legacy "rope_scaling", "type"), smaller numbers
    "deepseek-yarn": ("tiny-deepseek-v3", {"rope_scaling": {
        "type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256, "beta_fast": 32, "beta_slow": 1,
        "mscale": 1.0, "mscale_all_dim": 1.0}}),
}


def make_variant(shared, name, out):
    return make_model(shared, *CASES[name], out)


def make_model(shared, model, edit, out):
    """A folder at `out` with shared model `model`'s files linked and its
    config updated with `edit`."""
    src = os.path.join(shared, "models", model)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(src):
        if f != "config.json" and not os.path.exists(os.path.join(out, f)):
            os.symlink(os.path.join(os.path.abspath(src), f), os.path.join(out, f))
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg.update(edit)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return out
