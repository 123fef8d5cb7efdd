#!/usr/bin/env python3
"""A tiny Qwen2-MoE checkpoint (model_type qwen2_moe) for tests that need one:
no shared model has this architecture. It reuses the trained weights of the
shared tiny-qwen3-moe (embeddings, attention, router, routed experts, norms),
drops Qwen3's q/k norms, and adds what Qwen2-MoE has on top: q/k/v biases and a
shared expert with its sigmoid gate (expert 0's weights, small random biases
and gate; fixed seed). The result is not a good language model, but it is a
well-defined one: tools that implement Qwen2-MoE must compute the same
function on it (ktq's forward, llama.cpp's qwen2moe on ktq's GGUF file).

usage: make_tiny_qwen2_moe.py SHARED_MODELS_DIR OUT_DIR
"""
import json
import os
import shutil
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        assert info["dtype"] == "BF16", (name, info["dtype"])
        out[name] = np.frombuffer(data[a:b], np.uint16).reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name]).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def bf16(x):
    """float32 -> BF16 bits, round to nearest even."""
    u = np.asarray(x, np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def main():
    models, out = sys.argv[1], sys.argv[2]
    src = os.path.join(models, "tiny-qwen3-moe")
    cfg = json.load(open(os.path.join(src, "config.json")))
    w = read_safetensors(os.path.join(src, "model.safetensors"))
    rng = np.random.default_rng(20261201)
    hidden, layers, kv = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_key_value_heads"]
    head_dim = hidden // cfg["num_attention_heads"]
    t = {}
    for name, a in w.items():
        if ".q_norm." in name or ".k_norm." in name:
            continue
        t[name] = a
    for l in range(layers):
        p = f"model.layers.{l}."
        t[p + "self_attn.q_proj.bias"] = bf16(rng.normal(0, 0.02, hidden))
        t[p + "self_attn.k_proj.bias"] = bf16(rng.normal(0, 0.02, kv * head_dim))
        t[p + "self_attn.v_proj.bias"] = bf16(rng.normal(0, 0.02, kv * head_dim))
        for proj in ("gate_proj", "up_proj", "down_proj"):
            t[p + f"mlp.shared_expert.{proj}.weight"] = w[p + f"mlp.experts.0.{proj}.weight"]
        t[p + "mlp.shared_expert_gate.weight"] = bf16(rng.normal(0, 0.05, (1, hidden)))
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), t)
    config = {
        "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "dtype": "bfloat16",
        "hidden_size": hidden, "intermediate_size": cfg["intermediate_size"],
        "moe_intermediate_size": cfg["moe_intermediate_size"],
        "shared_expert_intermediate_size": cfg["moe_intermediate_size"],
        "num_experts": cfg["num_local_experts"], "num_experts_per_tok": cfg["num_experts_per_tok"],
        "norm_topk_prob": False, "decoder_sparse_step": 1, "mlp_only_layers": [],
        "num_hidden_layers": layers, "num_attention_heads": cfg["num_attention_heads"], "num_key_value_heads": kv,
        "rms_norm_eps": cfg["rms_norm_eps"], "rope_theta": 10000.0, "vocab_size": cfg["vocab_size"],
        "max_position_embeddings": cfg["max_position_embeddings"], "tie_word_embeddings": False,
        "hidden_act": "silu", "bos_token_id": None, "eos_token_id": cfg["eos_token_id"], "use_sliding_window": False,
    }
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, f), os.path.join(out, f))
    print(f"wrote {out}: {len(t)} tensors")


if __name__ == "__main__":
    main()
