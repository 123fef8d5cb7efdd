"""Shared models with a scaled RoPE written into their config (the weights
are the shared ones, linked), and the two MLA forms no shared model has:
DeepSeek's RoPE on contiguous halves instead of interleaved pairs
(`rope_interleave: false`) and queries from one q_proj instead of the
low-rank q_a_proj / q_a_layernorm / q_b_proj (`q_lora_rank: null`, as
DeepSeek-V2-Lite). The cases of tests/golden/rope_scaling.json. Used by its
generator (tests/golden/make_rope_scaling_golden.py) and by
test_rope_scaling.py."""
import json
import os
import struct

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
    "deepseek-halves": ("tiny-deepseek-v3", {"rope_interleave": False}),
    "deepseek-no-q-lora": ("tiny-deepseek-v3", {"q_lora_rank": None}),
}


def make_variant(shared, name, out):
    model, edit = CASES[name]
    if edit.get("q_lora_rank", 0) is None:
        return make_model(shared, model, edit, out, weights=fold_q_lora)
    return make_model(shared, model, edit, out)


def fold_q_lora(src, dst, cfg):
    """Writes dst (a one-file checkpoint) from src with each layer's
    q_a_proj, q_a_layernorm and q_b_proj replaced by one q_proj:
    q_b_proj . diag(q_a_layernorm) . q_a_proj, times the inverse RMS of
    q_a_proj's outputs over the normalized embeddings (what the dropped norm
    divided by, on average). Not the same function as the original, but a
    well-defined model of the other MLA form, deterministic, and a plausible
    language model (its loss is recorded with the others)."""
    import numpy as np  # only this case needs it
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()

    def get(name):
        a, b = header[name]["data_offsets"]
        assert header[name]["dtype"] == "BF16", name
        return (np.frombuffer(data[a:b], np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(header[name]["shape"])

    emb = get("model.embed_tokens.weight")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    new = {}
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}.self_attn."
        h = emb / np.sqrt(np.mean(emb.astype(np.float64) ** 2, axis=-1, keepdims=True) + cfg["rms_norm_eps"])
        h = h * get(f"model.layers.{layer}.input_layernorm.weight")
        a = h @ get(p + "q_a_proj.weight").T
        c = 1.0 / np.sqrt(np.mean(a.astype(np.float64) ** 2))
        q = get(p + "q_b_proj.weight") @ (get(p + "q_a_layernorm.weight")[:, None] * get(p + "q_a_proj.weight")) * c
        u = q.astype(np.float32).view(np.uint32)
        new[p + "q_proj.weight"] = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        for k in ("q_a_proj.weight", "q_a_layernorm.weight", "q_b_proj.weight"):
            del tensors[p + k]
    out_header, blobs, at = {}, [], 0
    for name in sorted(set(tensors) | set(new)):
        if name in new:
            raw, dtype, shape = new[name].tobytes(), "BF16", list(new[name].shape)
        else:
            a, b = tensors[name]["data_offsets"]
            raw, dtype, shape = data[a:b], tensors[name]["dtype"], tensors[name]["shape"]
        out_header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    hb = json.dumps(out_header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def make_model(shared, model, edit, out, weights=None):
    """A folder at `out` with shared model `model`'s files linked and its
    config updated with `edit`; `weights(src, dst, config)` writes
    model.safetensors instead of linking it."""
    src = os.path.join(shared, "models", model)
    os.makedirs(out, exist_ok=True)
    cfg = json.load(open(os.path.join(src, "config.json")))
    for f in os.listdir(src):
        if f == "model.safetensors" and weights:
            if not os.path.exists(os.path.join(out, f)):
                weights(os.path.join(src, f), os.path.join(out, f), cfg)
        elif f != "config.json" and not os.path.exists(os.path.join(out, f)):
            os.symlink(os.path.join(os.path.abspath(src), f), os.path.join(out, f))
    cfg.update(edit)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return out
