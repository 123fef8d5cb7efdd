#!/usr/bin/env python3
"""Writes a synthetic block-FP8 MoE checkpoint in DeepSeek-V3 layout for
benchmarks: realistic shapes (hidden 2048, 64 routed experts of
moe_intermediate 768, 1 shared expert, MLA attention), sharded like the hub
release, with F32 `weight_scale_inv` per 128x128 block. Values are random
finite FP8 bytes (throughput does not depend on them).

usage: make_synthetic_fp8.py OUT_DIR [--layers N] [--shard-gb G] [--hidden H --experts E --moe-intermediate I]
Default 14 layers of the default shapes: about 4.7 GB of input.
"""
import argparse
import json
import math
import os

import numpy as np

HIDDEN, EXPERTS, MOE_I, VOCAB, BLOCK = 2048, 64, 768, 32000, 128


def tensors_of_layer(l, HIDDEN, EXPERTS, MOE_I):
    p = f"model.layers.{l}."
    out = [(p + "input_layernorm.weight", "BF16", [HIDDEN]), (p + "post_attention_layernorm.weight", "BF16", [HIDDEN])]
    attn = {"q_a_proj": [512, HIDDEN], "q_b_proj": [16 * 192, 512], "kv_b_proj": [16 * 256, 256],
            "o_proj": [HIDDEN, 16 * 128]}
    for name, shape in attn.items():
        out.append((p + f"self_attn.{name}.weight", "F8_E4M3", shape))
    out.append((p + "self_attn.kv_a_proj_with_mqa.weight", "BF16", [256 + 64, HIDDEN]))
    out.append((p + "self_attn.q_a_layernorm.weight", "BF16", [512]))
    out.append((p + "self_attn.kv_a_layernorm.weight", "BF16", [256]))
    out.append((p + "mlp.gate.weight", "BF16", [EXPERTS, HIDDEN]))
    out.append((p + "mlp.gate.e_score_correction_bias", "F32", [EXPERTS]))
    for e in list(range(EXPERTS)) + ["shared"]:
        base = p + (f"mlp.experts.{e}." if e != "shared" else "mlp.shared_experts.")
        out += [(base + "gate_proj.weight", "F8_E4M3", [MOE_I, HIDDEN]),
                (base + "up_proj.weight", "F8_E4M3", [MOE_I, HIDDEN]),
                (base + "down_proj.weight", "F8_E4M3", [HIDDEN, MOE_I])]
    with_scales = []
    for name, dtype, shape in out:
        with_scales.append((name, dtype, shape))
        if dtype == "F8_E4M3":
            with_scales.append((name + "_scale_inv", "F32", [math.ceil(shape[0] / BLOCK), math.ceil(shape[1] / BLOCK)]))
    return with_scales


SIZES = {"F8_E4M3": 1, "BF16": 2, "F32": 4}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=14)
    ap.add_argument("--shard-gb", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--experts", type=int, default=EXPERTS)
    ap.add_argument("--moe-intermediate", type=int, default=MOE_I)
    ap.add_argument("--vocab", type=int, default=VOCAB)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 0x7f, size=64 << 20, dtype=np.uint8)  # finite E4M3 magnitudes
    pool |= (rng.integers(0, 2, size=pool.size, dtype=np.uint8) << 7)
    scale_pool = rng.uniform(1e-4, 1e-2, size=1 << 20).astype(np.float32).tobytes()
    bf16_pool = (rng.standard_normal(1 << 20).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()

    tensors = [("model.embed_tokens.weight", "BF16", [args.vocab, args.hidden])]
    for l in range(args.layers):
        tensors += tensors_of_layer(l, args.hidden, args.experts, args.moe_intermediate)
    tensors += [("model.norm.weight", "BF16", [args.hidden]), ("lm_head.weight", "BF16", [args.vocab, args.hidden])]

    shards, cur, size = [], [], 0
    for t in tensors:
        n = math.prod(t[2]) * SIZES[t[1]]
        if cur and size + n > args.shard_gb * 1e9:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += n
    shards.append(cur)

    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, dtype, shape in shard:
            n = math.prod(shape) * SIZES[dtype]
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fname
        total += off
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        with open(os.path.join(args.out, fname), "wb") as f:
            f.write(len(text).to_bytes(8, "little") + text)
            for name, dtype, shape in shard:
                n = math.prod(shape) * SIZES[dtype]
                src = pool.data if dtype == "F8_E4M3" else (scale_pool if dtype == "F32" else bf16_pool)
                while n > 0:
                    k = min(n, len(src))
                    f.write(src[:k])
                    n -= k
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": args.hidden,
        "intermediate_size": 4 * args.hidden, "moe_intermediate_size": args.moe_intermediate,
        "n_routed_experts": args.experts,
        "n_shared_experts": 1, "num_experts_per_tok": 6, "first_k_dense_replace": 0,
        "num_hidden_layers": args.layers, "num_attention_heads": 16, "vocab_size": args.vocab,
        "q_lora_rank": 512, "kv_lora_rank": 256, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
        "v_head_dim": 128, "torch_dtype": "bfloat16", "rope_theta": 10000.0,
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                "weight_block_size": [BLOCK, BLOCK]},
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {args.out}: {len(shards)} shards, {total / 1e9:.2f} GB of tensors")


if __name__ == "__main__":
    main()
