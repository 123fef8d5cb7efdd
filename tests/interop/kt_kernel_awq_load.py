#!/usr/bin/env python3
"""kt-kernel's AWQ MoE operator runs on ktq's kt-kernel AWQ layout.

ktq writes an AutoAWQ checkpoint's experts in kt-kernel's AWQ layout
(`ktq convert AWQ_MODEL OUT --to kt --quant-method awq`, docs/formats/kt-kernel.md
section 7). kt-kernel 0.7.2's extension has the operator that consumes it,
`moe.AMXInt4_1KGroup_MOE` (AMX_AWQ_MOE_TP: the qweight, scales and qzeros
of all experts through MOEConfig's gate/up/down pointers, as kt-kernel's own
examples/test_awq_moe_amx.py feeds it); its Python wrapper lists no AWQ
method, so this script builds the operator directly. For every MoE layer of
an AutoAWQ fixture of MODEL (tests/data/make_awq_fixture.py):
  ktq     - the operator loads ktq's tensors;
  shuffled- the same with each weight word's nibbles in AutoAWQ's order
            (0,2,4,6,1,3,5,7) instead: a layout mistake of the kind this
            check must catch;
  online  - kt-kernel quantizes the fixture's dequantized weights itself
            (same min-max rule as the fixture, so the same codes);
the same random tokens and routing go through all three and a float32 MoE on
the fixture's dequantized weights. ktq's must equal online's bit for bit
(or be as close to the float MoE), shuffled's must not.

Needs numpy, safetensors, ml_dtypes and a CPU that runs the chosen extension
variant (this VM's AVX-512 BF16 one runs the operator; AMX on Sapphire Rapids+).

usage: kt_kernel_awq_load.py --kt-kernel DIR --ktq BIN --model tiny-qwen3-moe [--variant avx512_bf16]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np
from safetensors.numpy import load_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from kt_kernel_load import f32 as f32_of_bf16, load_module  # noqa: E402  (the INT4/INT8 check's helpers)


def read_dir(folder):
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        out.update(load_file(path))
    return out


def bf16_bits(x):
    return np.ascontiguousarray(x.astype(np.float32).astype(ml_dtypes.bfloat16)).view(np.uint16)


def awq_order(words):
    """The words' nibbles moved to AutoAWQ's interleaved order (the wrong one here)."""
    order = [0, 2, 4, 6, 1, 3, 5, 7]
    w = words.view(np.uint32)
    out = np.zeros_like(w)
    for i, col in enumerate(order):
        out |= ((w >> np.uint32(4 * col)) & np.uint32(15)) << np.uint32(4 * i)
    return out.view(np.int32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kt-kernel", required=True)
    ap.add_argument("--ktq", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--variant", default="amx")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--group", type=int, default=128)
    args = ap.parse_args()

    ext = load_module("kt_kernel_ext", glob.glob(os.path.join(args.kt_kernel, f"_kt_kernel_ext_{args.variant}.*.so"))[0])
    work = tempfile.mkdtemp(prefix="ktq_kt_awq_")
    fixture, expected, out = os.path.join(work, "awq"), os.path.join(work, "dequant.safetensors"), os.path.join(work, "kt")
    subprocess.run([sys.executable, os.path.join(here, "..", "data", "make_awq_fixture.py"), args.model, fixture,
                    "--group", str(args.group), "--expected", expected], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([args.ktq, "convert", fixture, out, "--to", "kt", "--quant-method", "awq", "--quiet"], check=True)
    kt = read_dir(out)
    deq = {k: v.astype(np.float32) for k, v in load_file(expected).items()}
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    H, top_k = cfg["hidden_size"], cfg["num_experts_per_tok"]
    layers = sorted({int(n.split(".")[1]) for n in kt if n.startswith("blk.") and "_exps." in n})
    E = 1 + max(int(n.split(".")[3]) for n in kt if n.startswith("blk.") and "_exps." in n)

    pool = ext.WorkerPoolConfig()
    pool.subpool_count = 1
    pool.subpool_numa_map = [0]
    pool.subpool_thread_count = [max(1, os.cpu_count() or 1)]
    cpu = ext.CPUInfer(pool)
    rng = np.random.default_rng(11)
    failures = 0
    for layer in layers:
        names = {p: [f"blk.{layer}.ffn_{p}_exps.{e}" for e in range(E)] for p in ("gate", "up", "down")}
        qweight = {p: np.ascontiguousarray(np.stack([kt[n + ".weight"] for n in names[p]])) for p in names}
        scales = {p: np.ascontiguousarray(np.stack([kt[n + ".scale"] for n in names[p]])) for p in names}
        zeros = {p: np.ascontiguousarray(np.stack([kt[n + ".qzeros"] for n in names[p]])) for p in names}
        assert all(s.dtype == np.float16 for s in scales.values()), "AutoAWQ scales are FP16"
        w = {p: np.stack([deq[f"model.layers.{layer}.mlp.experts.{e}.{p}_proj.weight"] for e in range(E)])
             for p in ("gate", "up", "down")}
        inter = w["gate"].shape[1]
        keep = []

        def build(set_weights):
            on_gpu = np.zeros(E, dtype=np.bool_)
            keep.append(on_gpu)
            c = ext.moe.MOEConfig(E, top_k, H, inter, on_gpu.ctypes.data)
            c.layer_idx, c.pool, c.max_len = layer, cpu.backend_, 64
            c.quant_config.bits, c.quant_config.group_size, c.quant_config.zero_point = 4, args.group, True
            set_weights(c)
            moe = ext.moe.AMXInt4_1KGroup_MOE(c)
            ids = np.arange(E, dtype=np.int64)
            keep.append(ids)
            cpu.submit(moe.load_weights_task(ids.ctypes.data))
            cpu.sync()
            return moe

        def from_awq(qw):
            def set_weights(c):
                keep.extend([qw, scales, zeros])
                c.gate_proj, c.up_proj, c.down_proj = (qw[p].ctypes.data for p in ("gate", "up", "down"))
                c.gate_scale, c.up_scale, c.down_scale = (scales[p].ctypes.data for p in ("gate", "up", "down"))
                c.gate_zero, c.up_zero, c.down_zero = (zeros[p].ctypes.data for p in ("gate", "up", "down"))
            return set_weights

        bf = {p: bf16_bits(w[p]) for p in w}  # FP16 dequantized values, exact in BF16? (checked below)

        def online(c):
            keep.append(bf)
            c.gate_proj, c.up_proj, c.down_proj = (bf[p].ctypes.data for p in ("gate", "up", "down"))
            c.gate_scale = c.up_scale = c.down_scale = 0

        ops = {"ktq": build(from_awq(qweight)),
               "shuffled": build(from_awq({p: np.ascontiguousarray(awq_order(q)) for p, q in qweight.items()})),
               "online": build(online)}
        x = rng.standard_normal((args.tokens, H)).astype(np.float32)
        xb = bf16_bits(x)
        ids = np.stack([rng.choice(E, top_k, replace=False) for _ in range(args.tokens)]).astype(np.int64)
        wts = rng.random((args.tokens, top_k)).astype(np.float32)
        bsz = np.array([args.tokens], dtype=np.int32)
        outs = {}
        for name, moe in ops.items():
            o = np.zeros((args.tokens, H), dtype=np.uint16)
            cpu.submit(moe.forward_task(bsz.ctypes.data, top_k, ids.ctypes.data, wts.ctypes.data, xb.ctypes.data,
                                        o.ctypes.data, False))
            cpu.sync()
            outs[name] = f32_of_bf16(o)
        xf = f32_of_bf16(xb)
        exact = np.zeros((args.tokens, H), np.float32)
        for t in range(args.tokens):
            for j in range(top_k):
                e = ids[t, j]
                a = w["gate"][e] @ xf[t]
                exact[t] += wts[t, j] * (w["down"][e] @ ((a / (1 + np.exp(-a))) * (w["up"][e] @ xf[t])))
        rel = {k: float(np.linalg.norm(v - exact) / np.linalg.norm(exact)) for k, v in outs.items()}
        same = np.array_equal(outs["ktq"], outs["online"])
        exact_bf16 = all(np.array_equal(f32_of_bf16(bf[p]), w[p]) for p in w)
        ok = (same or rel["ktq"] <= rel["online"] * 1.05 + 1e-3) and rel["ktq"] < 0.05 and rel["shuffled"] > 10 * rel["ktq"]
        print(f"layer {layer}: ktq {'==' if same else '!='} online; rel. error vs float MoE: ktq {rel['ktq']:.4f}, "
              f"online {rel['online']:.4f}, shuffled nibbles {rel['shuffled']:.4f}"
              f"{'' if exact_bf16 else ' (dequantized weights not exact in BF16)'}", flush=True)
        failures += not ok
        del ops
    print("kt-kernel AWQ load check:", "PASSED" if failures == 0 else f"FAILED ({failures})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
