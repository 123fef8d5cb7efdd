#!/usr/bin/env python3
"""Makes an AutoAWQ-format checkpoint (GEMM packing) from a BF16/FP16 hub
checkpoint, with numpy only - the reference packing ktq's AWQ reader is
checked against (tests/python/test_awq_input.py):
  - every Linear of the decoder layers but the routers (mlp.gate,
    block_sparse_moe.gate, shared_expert_gate) is quantized asymmetrically
    to 4 bits per group of `group` input features:
      scale = max(max - min, 1e-5) / 15, zero = clamp(round(-min / scale), 0, 15),
      q = clamp(round(w / scale) + zero, 0, 15)      (scale stored as FP16)
    and stored as AutoAWQ's WQLinear_GEMM does: qweight I32 [in, out / 8],
    qzeros I32 [in / group, out / 8], scales F16 [in / group, out]; in each
    int32, nibble i (bits 4i..4i+3) holds column 8 * word + ORDER[i],
    ORDER = 0, 2, 4, 6, 1, 3, 5, 7;
  - every other tensor is stored as FP16; config.json gets AutoAWQ's
    quantization_config (and num_experts, as transformers 4 configs name it).
Also writes dequant.safetensors next to nothing: the expected weights,
(q - zero) * scale rounded to FP16, under the original names (for tests).

usage: make_awq_fixture.py SRC_DIR OUT_DIR [--group 128] [--expected FILE]
"""
import argparse
import json
import os
import re
import shutil

import ml_dtypes
import numpy as np
from safetensors.numpy import load_file, save_file

ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
ROUTER = re.compile(r"\.(mlp\.gate|block_sparse_moe\.gate|mlp\.shared_expert_gate)\.weight$")


def f32(a):
    return a.view(ml_dtypes.bfloat16).astype(np.float32) if a.dtype == np.uint16 else a.astype(np.float32)


def pack(codes):
    """codes [rows, cols] in 0..15 (cols multiple of 8) -> int32 [rows, cols / 8] in AWQ's nibble order."""
    rows, cols = codes.shape
    c = codes.reshape(rows, cols // 8, 8).astype(np.uint32)
    words = np.zeros((rows, cols // 8), np.uint32)
    for i, col in enumerate(ORDER):
        words |= c[:, :, col] << np.uint32(4 * i)
    return words.view(np.int32)


def quantize(w, group):
    """w [out, in] float32 -> (qweight, qzeros, scales, dequantized FP16 [out, in])."""
    out, inp = w.shape
    g = w.reshape(out, inp // group, group)
    mx, mn = g.max(-1), g.min(-1)
    scale = (np.maximum(mx - mn, 1e-5) / 15).astype(np.float16)
    s = scale.astype(np.float32)
    zero = np.clip(np.round(-mn / s), 0, 15)
    q = np.clip(np.round(g / s[..., None]) + zero[..., None], 0, 15)
    deq = ((q - zero[..., None]) * s[..., None]).astype(np.float16).reshape(out, inp)
    qweight = pack(q.reshape(out, inp).T.astype(np.uint32))       # [in, out / 8]
    qzeros = pack(zero.T.astype(np.uint32))                         # [groups, out / 8]
    return qweight, qzeros, np.ascontiguousarray(scale.T), deq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--expected", help="also write the dequantized weights here (safetensors)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tensors, expected = {}, {}
    for f in sorted(os.listdir(a.src)):
        if not f.endswith(".safetensors"):
            continue
        for name, t in load_file(os.path.join(a.src, f)).items():
            quantizable = (name.startswith("model.layers.") and name.endswith(".weight") and t.ndim == 2
                           and not ROUTER.search(name) and t.shape[0] % 8 == 0 and t.shape[1] % a.group == 0)
            if quantizable:
                base = name[: -len(".weight")]
                qw, qz, sc, deq = quantize(f32(t), a.group)
                tensors[base + ".qweight"], tensors[base + ".qzeros"], tensors[base + ".scales"] = qw, qz, sc
                expected[name] = deq
            else:
                tensors[name] = f32(t).astype(np.float16) if t.dtype in (np.uint16, np.float32, np.float16) else t
    save_file(tensors, os.path.join(a.out, "model.safetensors"))
    if a.expected:
        save_file(expected, a.expected)
    for f in os.listdir(a.src):
        if f.endswith(".json") and f != "model.safetensors.index.json":
            shutil.copy(os.path.join(a.src, f), os.path.join(a.out, f))
    cfg = json.load(open(os.path.join(a.out, "config.json")))
    cfg["torch_dtype"] = "float16"
    # Hub Qwen3-MoE configs (transformers 4, which AutoAWQ runs on) call it num_experts; kt-kernel's script reads that.
    if "num_local_experts" in cfg and "num_experts" not in cfg:
        cfg["num_experts"] = cfg["num_local_experts"]
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": a.group, "zero_point": True,
                                  "version": "gemm", "modules_to_not_convert": None}
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
