#!/usr/bin/env python3
"""Golden vectors for ktq's K-quant block types (Q2_K ... Q6_K), made by
ggml's own reference quantizers (quantize_row_*_ref and dequantize_row_* of
ggml-quants.c), compiled here from llama.cpp's source as shipped in the
llama-cpp-python source package on PyPI:

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp
    tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
    python3 tests/golden/make_kquant_golden.py --llama-cpp /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp \\
        --shared ../shared -o tests/golden/ggml_kquants.json

ggml-quants.c is compiled alone at the x86-64 baseline (as ggml-base is
built: no FMA, so nothing is contracted), with stubs for the four ggml
functions it references but these entry points never call. The inputs are
real weight rows of the shared tiny-llama (BF16 widened to float) plus
super-blocks chosen for the code paths they reach (all zero, constant,
one spike, ties, tiny and large magnitudes, one sign only). Written in the
layout of ggml_blocks.json: input floats, and per type the quantized bytes
and the dequantized floats, base64.
"""
import argparse
import base64
import ctypes
import json
import os
import struct
import subprocess
import tempfile

import numpy as np

TYPES = {"Q2_K": (10, 84), "Q3_K": (11, 110), "Q4_K": (12, 144), "Q5_K": (13, 176), "Q6_K": (14, 210)}
QK_K = 256

STUBS = r"""
#include <stddef.h>
#include <stdlib.h>
void ggml_abort(const char *file, int line, const char *fmt, ...) { abort(); }
const char *ggml_type_name(int t) { abort(); }
size_t ggml_type_size(int t) { abort(); }
size_t ggml_row_size(int t, long long n) { abort(); }
"""


def build(llama_cpp, tmp, stubs_source=STUBS):
    ggml = os.path.join(llama_cpp, "ggml")
    stubs = os.path.join(tmp, "stubs.c")
    with open(stubs, "w") as f:
        f.write(stubs_source)
    lib = os.path.join(tmp, "libggmlquants.so")
    subprocess.run(["gcc", "-O2", "-fPIC", "-shared", "-std=gnu11", "-march=x86-64", "-I", os.path.join(ggml, "include"),
                    "-I", os.path.join(ggml, "src"), os.path.join(ggml, "src", "ggml-quants.c"), stubs, "-o", lib,
                    "-lm"], check=True)
    return ctypes.CDLL(lib)


def shared_rows(shared):
    """Real weights: rows of tiny-llama's projections, BF16 -> float."""
    path = os.path.join(shared, "models", "tiny-llama", "model.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        out = []
        for name in ("model.layers.0.mlp.down_proj.weight", "model.layers.1.self_attn.q_proj.weight",
                     "model.layers.3.mlp.gate_proj.weight"):
            a, _ = header[name]["data_offsets"]
            f.seek(8 + n + a)
            raw = np.frombuffer(f.read(2 * 16 * QK_K), np.uint16)
            out.append((raw.astype(np.uint32) << 16).view(np.float32))
    return np.concatenate(out)


def edge_blocks():
    rng = np.random.default_rng(20261125)
    b = []
    b.append(np.zeros(QK_K))                                      # all zero
    b.append(np.full(QK_K, 0.75))                                 # constant positive
    b.append(np.full(QK_K, -3.0))                                 # constant negative
    b.append(np.r_[np.zeros(QK_K - 1), 1.0])                      # one spike
    b.append(np.r_[-2.0, np.ones(QK_K - 1)])                      # negative max magnitude
    b.append(np.tile(np.r_[2.0, -2.0, np.zeros(14)], QK_K // 16))  # ties of |max| in each sub-block
    b.append(np.linspace(-1, 1, QK_K))
    b.append(np.linspace(0, 1, QK_K) ** 2)                        # one sign only
    b.append(rng.standard_normal(QK_K) * 1e-6)                    # tiny: FP16 subnormal scales
    b.append(rng.standard_normal(QK_K) * 1e-12)                   # below FP16 range
    b.append(rng.standard_normal(QK_K) * 3e3)                     # large
    b.append(np.arange(QK_K) % 16 - 7.5)
    b.append(rng.standard_normal(QK_K) * rng.uniform(1e-3, 10, QK_K))  # mixed magnitudes
    b.append(np.where(np.arange(QK_K) % 32 < 16, 0.0, rng.standard_normal(QK_K)))  # zero sub-blocks
    b.append(rng.uniform(-1, 1, QK_K) ** 3)
    return np.concatenate(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (vendor/llama.cpp of the sdist)")
    ap.add_argument("--shared", required=True)
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    x = np.concatenate([shared_rows(a.shared), edge_blocks()]).astype(np.float32)
    assert x.size % QK_K == 0
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(a.llama_cpp, tmp)
        out = {"generator": "ggml-quants.c of llama-cpp-python 0.3.36 (vendored llama.cpp), quantize_row_*_ref",
               "input_f32": base64.b64encode(x.tobytes()).decode(), "types": {}}
        xp = x.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        for name, (tid, size) in TYPES.items():
            q = np.zeros(x.size // QK_K * size, np.uint8)
            getattr(lib, f"quantize_row_{name.lower().replace('_k', '_K')}_ref")(
                xp, q.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(x.size))
            y = np.zeros(x.size, np.float32)
            getattr(lib, f"dequantize_row_{name.lower().replace('_k', '_K')}")(
                q.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                ctypes.c_int64(x.size))
            out["types"][name] = {"id": tid, "quantized": base64.b64encode(q.tobytes()).decode(),
                                  "dequantized_f32": base64.b64encode(y.tobytes()).decode()}
    with open(a.output, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {a.output}: {x.size} values, {len(TYPES)} types")


if __name__ == "__main__":
    main()
