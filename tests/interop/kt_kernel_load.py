#!/usr/bin/env python3
"""kt-kernel loads ktq's output and computes the same MoE outputs.

For INT4 and INT8 (2 NUMA parts), every MoE layer of a model is set up three
ways in kt-kernel's own AMX MoE operator (the 0.7.2 extension):
  ref    - kt-kernel quantizes the BF16 experts itself (the online path its
           converter uses),
  merged - weights from ktq's merged safetensors, read by kt-kernel's own
           SafeTensorLoader (python/utils/loader.py, as AMXMoEWrapper does),
  loose  - kt-kernel reads ktq's _layer_L/_numa_P/*.kt files itself.
The same random tokens and routing go through all three; the outputs must be
bit-identical. A float32 MoE on the BF16 weights shows the quantization error.
Needs torch (kt-kernel's loader imports it), numpy, safetensors, gguf, and a
CPU that runs the chosen extension variant (the AMX one on Sapphire Rapids+).

usage: kt_kernel_load.py --kt-kernel DIR --ktq BIN --model MODEL [--variant amx]
"""
import argparse
import glob
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def read_model(folder):
    tensors = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        raw = open(path, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        for name, info in json.loads(raw[8:8 + n]).items():
            if name != "__metadata__":
                a, b = info["data_offsets"]
                tensors[name] = (info["dtype"], info["shape"], raw[8 + n + a:8 + n + b])
    return tensors


def bf16_array(t):
    dtype, shape, raw = t
    assert dtype == "BF16", dtype
    return np.frombuffer(raw, np.uint16).reshape(shape)


def f32(bf):
    return (bf.astype(np.uint32) << 16).view(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kt-kernel", required=True)
    ap.add_argument("--ktq", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--variant", default="amx")
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()

    ext = load_module("kt_kernel_ext", glob.glob(os.path.join(args.kt_kernel, f"_kt_kernel_ext_{args.variant}.*.so"))[0])
    loader = load_module("kt_loader", os.path.join(args.kt_kernel, "utils", "loader.py"))
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    tensors = read_model(args.model)
    H = cfg["hidden_size"]
    top_k = cfg["num_experts_per_tok"]
    moe_layers = sorted({int(n.split(".")[2]) for n in tensors if ".mlp.experts." in n})
    E = 1 + max(int(n.split(".")[5]) for n in tensors if ".mlp.experts." in n)
    parts = 2
    rng = np.random.default_rng(7)
    failures = 0
    work = tempfile.mkdtemp(prefix="ktq_kt_load_")
    pool = ext.WorkerPoolConfig()
    pool.subpool_count = parts
    pool.subpool_numa_map = [0] * parts
    pool.subpool_thread_count = [4] * parts
    cpu = ext.CPUInfer(pool)
    for method in ("int4", "int8"):
        merged, loose = os.path.join(work, method + "-merged"), os.path.join(work, method + "-loose")
        for out, extra in ((merged, []), (loose, ["--no-merge-safetensor"])):
            subprocess.run([args.ktq, "convert", args.model, out, "--format", "kt", "--quant-method", method,
                            "--threadpool-count", str(parts), "--quiet", *extra], check=True)
        st_loader = loader.SafeTensorLoader(merged)
        Cls = ext.moe.AMXInt4_MOE if method == "int4" else ext.moe.AMXInt8_MOE
        for layer in moe_layers:
            w = {p: np.ascontiguousarray(np.stack([bf16_array(tensors[f"model.layers.{layer}.mlp.experts.{e}.{p}_proj.weight"])
                                                   for e in range(E)])) for p in ("gate", "up", "down")}
            I = w["gate"].shape[1]
            on_gpu = np.zeros(E, dtype=np.bool_)
            keep = []

            def config():
                c = ext.moe.MOEConfig(E, top_k, H, I, on_gpu.ctypes.data)
                c.layer_idx, c.pool, c.max_len = layer, cpu.backend_, 64
                return c

            def build(c):
                moe = Cls(c)
                ids = np.arange(E, dtype=np.int64)
                cpu.submit(moe.load_weights_task(ids.ctypes.data))
                cpu.sync()
                return moe

            # ref: kt-kernel quantizes the BF16 experts itself
            c = config()
            c.save, c.load = True, False
            c.gate_proj, c.up_proj, c.down_proj = w["gate"].ctypes.data, w["up"].ctypes.data, w["down"].ctypes.data
            c.path = os.path.join(work, f"ref-{method}")
            ref = build(c)
            # merged: kt-kernel's SafeTensorLoader over ktq's safetensors
            got = st_loader.load_experts(f"blk.{layer}")
            keep.append(got)
            ptrs = {k: [[a.ctypes.data for a in part] for part in got[k]] for k in got if not k.endswith("bwd")}
            c = config()
            c.load = True
            c.gate_proj = c.up_proj = c.down_proj = 0
            c.gate_projs, c.up_projs, c.down_projs = ptrs["gate"], ptrs["up"], ptrs["down"]
            c.gate_scales, c.up_scales, c.down_scales = ptrs["gate_scale"], ptrs["up_scale"], ptrs["down_scale"]
            from_merged = build(c)
            # loose: kt-kernel reads ktq's .kt files
            c = config()
            c.load = True
            c.path = loose
            from_loose = build(c)

            x = rng.standard_normal((args.tokens, H)).astype(np.float32)
            xb = ((x.view(np.uint32) + 0x7FFF + ((x.view(np.uint32) >> 16) & 1)) >> 16).astype(np.uint16)
            ids = np.stack([rng.choice(E, top_k, replace=False) for _ in range(args.tokens)]).astype(np.int64)
            wts = rng.random((args.tokens, top_k)).astype(np.float32)
            bsz = np.array([args.tokens], dtype=np.int32)
            outs = {}
            for name, moe in (("ref", ref), ("merged", from_merged), ("loose", from_loose)):
                o = np.zeros((args.tokens, H), dtype=np.uint16)
                cpu.submit(moe.forward_task(bsz.ctypes.data, top_k, ids.ctypes.data, wts.ctypes.data, xb.ctypes.data,
                                            o.ctypes.data, False))
                cpu.sync()
                outs[name] = o
            # float32 MoE on the BF16 weights
            xf = f32(xb)
            exact = np.zeros((args.tokens, H), np.float32)
            for t in range(args.tokens):
                for j in range(top_k):
                    e = ids[t, j]
                    g, u, d = f32(w["gate"][e]), f32(w["up"][e]), f32(w["down"][e])
                    a = g @ xf[t]
                    exact[t] += wts[t, j] * (d @ ((a / (1 + np.exp(-a))) * (u @ xf[t])))
            rel = float(np.linalg.norm(f32(outs["ref"]) - exact) / np.linalg.norm(exact))
            same_m = np.array_equal(outs["ref"], outs["merged"])
            same_l = np.array_equal(outs["ref"], outs["loose"])
            nonzero = bool(np.any(outs["ref"]))
            print(f"{method} layer {layer}: merged {'==' if same_m else '!='} ref, loose {'==' if same_l else '!='} ref, "
                  f"rel. error vs float MoE {rel:.4f}", flush=True)
            failures += (not same_m) + (not same_l) + (not nonzero)
            del ref, from_merged, from_loose
    print("kt-kernel load check:", "PASSED" if failures == 0 else f"FAILED ({failures})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
