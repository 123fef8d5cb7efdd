#!/usr/bin/env python3
"""Golden vectors for ktq's kt-kernel AMX format, made by kt-kernel itself.

For each shared MoE model, quant method (int4, int8) and NUMA part count
(1, 2), this feeds the routed experts of every MoE layer, as BF16, to
kt-kernel's own C++ operator (AMXInt4_MOE / AMXInt8_MOE with save=True, the
call its convert_cpu_weights.py makes per layer) and records the SHA-256 of
every file it writes, under the tensor name its merged layout gives it
(blk.L.ffn_{gate,up,down}_exps.E.numa.P.{weight,scale}).

The expert weights are prepared as kt-kernel's converter prepares them, but
with numpy instead of torch: BF16 as stored; FP16 rounded to BF16 (nearest
even, as torch's .to(bfloat16)); block-FP8 widened to float32, multiplied by
its 128x128 block's weight_scale_inv in float32 and rounded to BF16 (the
converter's Triton kernel does the same arithmetic). The safetensors files
are parsed here directly, independent of ktq's reader.

kt-kernel's extension is loaded from its .so file, so neither torch nor the
kt_kernel package's Python layer is needed:

    pip download kt-kernel==0.7.2 --no-deps -d /tmp/ktw && cd /tmp/ktw && unzip -q kt_kernel-*.whl 'kt_kernel/*' 'kt_kernel.libs/*'
    python3 tests/golden/make_kt_golden.py --kt-kernel /tmp/ktw/kt_kernel -o tests/golden/kt_amx.json

Mixtral's experts (block_sparse_moe.experts.E.w1/w3/w2) are fed the same way
even though kt-kernel's converter does not recognise those names: the bytes
are its operator's.
"""
import argparse
import glob
import hashlib
import importlib.util
import json
import os
import re
import shutil
import struct
import sys
import tempfile

import numpy as np

MODELS = ["tiny-qwen3-moe", "tiny-mixtral", "tiny-deepseek-v3", "tiny-deepseek-v3-fp8"]
PROJ_NAMES = {"gate_proj": "gate", "up_proj": "up", "down_proj": "down", "w1": "gate", "w3": "up", "w2": "down"}
EXPERT_RE = re.compile(r"^model\.layers\.(\d+)\.(?:mlp|block_sparse_moe)\.experts\.(\d+)\.(gate_proj|up_proj|down_proj|w1|w2|w3)\.weight$")


def read_safetensors(path):
    """{name: (dtype, shape, bytes)} of one file, parsed by hand."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], data[8 + n + a : 8 + n + b])
    return out


def load_model(folder):
    tensors = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        tensors.update(read_safetensors(path))
    return tensors


def f32_to_bf16(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def as_bf16(tensors, name):
    dtype, shape, raw = tensors[name]
    if dtype == "BF16":
        return np.frombuffer(raw, np.uint16).reshape(shape)
    if dtype == "F16":
        return f32_to_bf16(np.frombuffer(raw, np.float16).astype(np.float32)).reshape(shape)
    if dtype == "F32":
        return f32_to_bf16(np.frombuffer(raw, np.float32)).reshape(shape)
    if dtype == "F8_E4M3":
        import ml_dtypes

        w = np.frombuffer(raw, ml_dtypes.float8_e4m3fn).astype(np.float32).reshape(shape)
        sd, sshape, sraw = tensors[name + "_scale_inv"]
        assert sd == "F32"
        s = np.frombuffer(sraw, np.float32).reshape(sshape)
        full = np.repeat(np.repeat(s, 128, axis=0), 128, axis=1)[: shape[0], : shape[1]]
        return f32_to_bf16((w * full).astype(np.float32)).reshape(shape)
    raise SystemExit(f"{name}: dtype {dtype} not handled")


def load_extension(kt_dir):
    """kt-kernel's extension for this CPU, by file (no torch needed)."""
    flags = open("/proc/cpuinfo").read()
    order = ["amx", "avx512_bf16", "avx512_vbmi", "avx512_vnni", "avx512_base"]
    if "amx_int8" not in flags:
        order.remove("amx")
    if "avx512_bf16" not in flags:
        order.remove("avx512_bf16")
    for variant in order:
        found = glob.glob(os.path.join(kt_dir, f"_kt_kernel_ext_{variant}.*.so"))
        if found:
            spec = importlib.util.spec_from_file_location("kt_kernel_ext", found[0])
            ext = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(ext)
            return ext, variant
    raise SystemExit(f"{kt_dir}: no AVX-512 kt-kernel extension for this CPU")


def kt_quantize_layer(ext, gate, up, down, parts, method, out_dir, layer):
    """One kt-kernel MoE layer in save mode: writes _layer_L/_numa_P/*.kt."""
    experts, inter, hidden = gate.shape
    pool = ext.WorkerPoolConfig()
    pool.subpool_count = parts
    pool.subpool_numa_map = [0] * parts  # one NUMA node here; the split is what matters
    pool.subpool_thread_count = [1] * parts
    cpu = ext.CPUInfer(pool)
    on_gpu = np.zeros(experts, dtype=np.bool_)
    cfg = ext.moe.MOEConfig(experts, 2, hidden, inter, on_gpu.ctypes.data)
    cfg.layer_idx = layer
    cfg.pool = cpu.backend_
    cfg.max_len = 64  # activation buffer rows: a multiple of its M step
    cfg.save = True
    cfg.load = False
    cfg.gate_proj, cfg.up_proj, cfg.down_proj = gate.ctypes.data, up.ctypes.data, down.ctypes.data
    cfg.path = out_dir
    moe = (ext.moe.AMXInt4_MOE if method == "int4" else ext.moe.AMXInt8_MOE)(cfg)
    expert_ids = np.arange(experts, dtype=np.int64)
    cpu.submit(moe.load_weights_task(expert_ids.ctypes.data))
    cpu.sync()
    del moe, cpu


KT_FILE_RE = re.compile(r"^(INT4|INT8)_(gate|up|down)_(\d+)_(\d+)Byte_(quant|scale)_\.kt$")


def hashes_of_output(out_dir):
    result = {}
    for path in sorted(glob.glob(os.path.join(out_dir, "_layer_*", "_numa_*", "*.kt"))):
        layer = int(path.split("_layer_")[1].split("/")[0])
        part = int(path.split("_numa_")[1].split("/")[0])
        m = KT_FILE_RE.match(os.path.basename(path))
        _, proj, expert, nbytes, kind = m.groups()
        data = open(path, "rb").read()
        assert len(data) == int(nbytes), path
        key = f"blk.{layer}.ffn_{proj}_exps.{expert}.numa.{part}." + ("weight" if kind == "quant" else "scale")
        result[key] = hashlib.sha256(data).hexdigest()
    return result


def edge_matrix():
    """[128, 256] BF16 rows that stress the arithmetic: zero, constant, exact
    halves after scaling, a spike, subnormal and near-subnormal rows (kt-kernel
    runs with FTZ/DAZ), the six amax mantissas where amax * fl(1/127) differs
    from amax / 127, and random rows."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((128, 256)).astype(np.float32) * 0.02
    c = np.arange(256)
    w[0] = 0
    w[1] = 0.25
    w[2] = ((c % 255) - 127) / 2.0
    w[3] = np.where(c == 5, -3.0, 1e-3)
    w[4] = np.where(c % 2, 1, -1) * 1e-38   # subnormal in BF16
    w[5] = np.where(c % 2, 1, -1) * 2e-38   # normal, but its scale would be subnormal
    w[6] = np.where(c % 2, 1, -1) * 4e-36   # normal scale
    for i, m in enumerate([1.1171875, 1.125, 1.3671875, 1.6171875, 1.625, 1.8671875]):
        w[7 + i, 9] = m
    w[13, :] = -1.0
    return f32_to_bf16(w).reshape(128, 256)


def edge_case(ext):
    """kt-kernel's bytes for edge_matrix() as the gate of a single expert."""
    import base64

    g = np.ascontiguousarray(edge_matrix()[None])
    up = np.ascontiguousarray(g.copy())
    down = np.zeros((1, 256, 128), np.uint16)
    out = {"shape": [128, 256], "input_bf16": base64.b64encode(g.tobytes()).decode()}
    for method in ("int4", "int8"):
        scratch = tempfile.mkdtemp(prefix="kt_edge_")
        try:
            kt_quantize_layer(ext, g, up, down, 1, method, scratch, 0)
            folder = os.path.join(scratch, "_layer_0", "_numa_0")
            quant = glob.glob(os.path.join(folder, f"{method.upper()}_gate_0_*Byte_quant_.kt"))[0]
            scale = glob.glob(os.path.join(folder, f"{method.upper()}_gate_0_*Byte_scale_.kt"))[0]
            out[method] = {"packed": base64.b64encode(open(quant, "rb").read()).decode(),
                           "scales": base64.b64encode(open(scale, "rb").read()).decode()}
        finally:
            shutil.rmtree(scratch)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kt-kernel", required=True, help="the kt_kernel package folder (from the 0.7.2 wheel)")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "../../../shared"))
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("-o", "--output", required=True, help="the JSON file to write (kt-kernel prints to stdout)")
    args = ap.parse_args()
    ext, variant = load_extension(args.kt_kernel)
    golden = {
        "generator": "tests/golden/make_kt_golden.py",
        "reference": "kt-kernel 0.7.2 extension " + variant + " (AMXInt4_MOE / AMXInt8_MOE, save mode)",
        "cases": {},
        "edge": edge_case(ext),
    }
    for model in args.models:
        tensors = load_model(os.path.join(args.shared, "models", model))
        layers = {}
        for name in tensors:
            m = EXPERT_RE.match(name)
            if m:
                layers.setdefault(int(m.group(1)), {}).setdefault(int(m.group(2)), {})[PROJ_NAMES[m.group(3)]] = name
        for method in ("int4", "int8"):
            for parts in (1, 2):
                scratch = tempfile.mkdtemp(prefix="kt_golden_")
                try:
                    for layer in sorted(layers):
                        experts = layers[layer]
                        stack = {p: np.ascontiguousarray(np.stack([as_bf16(tensors, experts[e][p]) for e in sorted(experts)]))
                                 for p in ("gate", "up", "down")}
                        kt_quantize_layer(ext, stack["gate"], stack["up"], stack["down"], parts, method, scratch, layer)
                    case = f"{model}/{method}/numa{parts}"
                    golden["cases"][case] = hashes_of_output(scratch)
                    print(f"{case}: {len(golden['cases'][case])} tensors", file=sys.stderr)
                finally:
                    shutil.rmtree(scratch)
    with open(args.output, "w") as f:
        json.dump(golden, f, indent=0, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
