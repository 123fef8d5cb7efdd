#!/usr/bin/env python3
"""Writes a synthetic BF16 MoE checkpoint (Qwen3-MoE / DeepSeek-V3 tensor
names, per-expert layout) of chosen shapes for the kt-format benchmark.
Values are random BF16 weights of a plausible scale (throughput does not
depend on them); one shard per layer (attention, router, experts), plus
embeddings and norms.

usage: make_synthetic_bf16_moe.py OUT --hidden H --moe-intermediate I --experts E --layers L
  DeepSeek-V3 experts: --hidden 7168 --moe-intermediate 2048 --experts 32 --layers 3  (~8.5 GB)
  Qwen3-30B-A3B:       --hidden 2048 --moe-intermediate 768 --experts 128 --layers 4  (~4.8 GB)
"""
import argparse
import json
import os

import numpy as np


def write_shard(path, tensors, pool):
    header, offset = {}, 0
    for name, shape in tensors:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for name, shape in tensors:
            n = int(np.prod(shape))
            start = (hash(name) & 0xFFFFF) % (len(pool) - n) if n < len(pool) else 0
            if n <= len(pool):
                f.write(pool[start:start + n].tobytes())
            else:
                for at in range(0, n, len(pool)):
                    f.write(pool[: min(len(pool), n - at)].tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, required=True)
    ap.add_argument("--moe-intermediate", type=int, required=True)
    ap.add_argument("--experts", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--vocab", type=int, default=4096)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    w = (rng.standard_normal(64 << 20 >> 1, dtype=np.float32) * 0.02).view(np.uint32)
    pool = ((w + 0x7FFF + ((w >> 16) & 1)) >> 16).astype(np.uint16)  # 64 MiB of BF16 values
    H, I, E = a.hidden, a.moe_intermediate, a.experts
    shards = []
    for l in range(a.layers):
        p = f"model.layers.{l}."
        t = [(p + "input_layernorm.weight", [H]), (p + "post_attention_layernorm.weight", [H]),
             (p + "mlp.gate.weight", [E, H])]
        # Qwen3 attention (32 heads, 4 KV heads, head_dim 128), so transformers
        # loads the checkpoint complete (llm-compressor's benchmark run).
        t += [(p + "self_attn.q_proj.weight", [32 * 128, H]), (p + "self_attn.k_proj.weight", [4 * 128, H]),
              (p + "self_attn.v_proj.weight", [4 * 128, H]), (p + "self_attn.o_proj.weight", [H, 32 * 128]),
              (p + "self_attn.q_norm.weight", [128]), (p + "self_attn.k_norm.weight", [128])]
        for e in range(E):
            t += [(p + f"mlp.experts.{e}.gate_proj.weight", [I, H]), (p + f"mlp.experts.{e}.up_proj.weight", [I, H]),
                  (p + f"mlp.experts.{e}.down_proj.weight", [H, I])]
        shards.append(t)
    shards.append([("model.embed_tokens.weight", [a.vocab, H]), ("model.norm.weight", [H]),
                   ("lm_head.weight", [a.vocab, H])])
    weight_map = {}
    for i, t in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_shard(os.path.join(a.out, name), t, pool)
        weight_map.update({n: name for n, _ in t})
    json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(a.out, "model.safetensors.index.json"), "w"))
    json.dump({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": H,
               "moe_intermediate_size": I, "intermediate_size": 4 * H, "num_experts": E, "num_experts_per_tok": 8,
               "num_hidden_layers": a.layers, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
               "vocab_size": a.vocab, "rms_norm_eps": 1e-6, "torch_dtype": "bfloat16", "decoder_sparse_step": 1,
               "mlp_only_layers": []}, open(os.path.join(a.out, "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
