#!/usr/bin/env python3
"""Golden vectors for ktq's importance-weighted (imatrix) quantizers: the
bytes ggml's own quantize_<type>(src, dst, nrow, n_per_row, quant_weights)
writes when llama-quantize hands it an importance matrix (the
quantize_row_*_impl paths of ggml-quants.c), for Q4_0, Q4_1, Q5_0, Q5_1 and
Q2_K ... Q6_K.

ggml-quants.c is compiled alone exactly as make_kquant_golden.py does it
(same sdist, x86-64 baseline), with ggml_row_size implemented for these
types. Inputs: the same weight rows as ggml_kquants.json (real tiny-llama
rows, then edge super-blocks) cut into rows of N_PER_ROW values, with
importance vectors per row shape: positive values over five decades as a
real imatrix has them, zero columns, whole zero blocks, and one row of
constant importance.

    python3 tests/golden/make_importance_golden.py --llama-cpp /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp \\
        --shared ../shared -o tests/golden/ggml_importance.json
"""
import argparse
import base64
import ctypes
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_kquant_golden import build, edge_blocks, shared_rows  # noqa: E402

# name: (ggml type id, weights per block, bytes per block)
TYPES = {"Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24),
         "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176),
         "Q6_K": (14, 256, 210)}
N_PER_ROW = 2304  # 9 super-blocks, 72 legacy blocks

STUBS = r"""
#include <stddef.h>
#include <stdlib.h>
void ggml_abort(const char *file, int line, const char *fmt, ...) { abort(); }
const char *ggml_type_name(int t) { abort(); }
size_t ggml_type_size(int t) { abort(); }
size_t ggml_row_size(int t, long long n) {
    switch (t) {
    case 2: return n / 32 * 18; case 3: return n / 32 * 20; case 6: return n / 32 * 22; case 7: return n / 32 * 24;
    case 10: return n / 256 * 84; case 11: return n / 256 * 110; case 12: return n / 256 * 144;
    case 13: return n / 256 * 176; case 14: return n / 256 * 210;
    }
    abort();
}
"""


def importance(rows):
    rng = np.random.default_rng(20261201)
    out = []
    for r in range(rows):
        if r == rows - 1:
            out.append(np.full(N_PER_ROW, 0.5))                           # constant importance
            continue
        w = 10.0 ** rng.uniform(-4, 1, N_PER_ROW)                          # mean squared activations
        if r % 2 == 0:
            w[rng.integers(0, N_PER_ROW, N_PER_ROW // 10)] = 0.0           # dead columns
        if r % 3 == 0:
            w[256:256 + 64] = 0.0                                          # a whole block of zero importance
        out.append(w)
    return np.stack(out).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (vendor/llama.cpp of the sdist)")
    ap.add_argument("--shared", required=True)
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    x = np.concatenate([shared_rows(a.shared), edge_blocks()]).astype(np.float32)
    rows = x.size // N_PER_ROW
    x = np.ascontiguousarray(x[:rows * N_PER_ROW])
    w = importance(rows)
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(a.llama_cpp, tmp, STUBS)
        out = {"generator": "ggml-quants.c of llama-cpp-python 0.3.36 (vendored llama.cpp), quantize_<type> with "
                            "quant_weights (the imatrix path)",
               "n_per_row": N_PER_ROW, "rows": rows,
               "input_f32": base64.b64encode(x.tobytes()).decode(),
               "importance_f32": base64.b64encode(w.tobytes()).decode(), "types": {}}
        for name, (tid, blk, size) in TYPES.items():
            q = np.zeros(N_PER_ROW // blk * size, np.uint8)
            chunks = []
            fn = getattr(lib, f"quantize_{name.lower().replace('_k', '_K')}")
            fn.restype = ctypes.c_size_t
            for r in range(rows):  # one row at a time: each row has its own importance vector
                written = fn(x[r * N_PER_ROW:].ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                             q.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(1), ctypes.c_int64(N_PER_ROW),
                             w[r].ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
                assert written == q.size
                chunks.append(q.copy())
            out["types"][name] = {"id": tid, "quantized": base64.b64encode(np.concatenate(chunks).tobytes()).decode()}
    with open(a.output, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {a.output}: {rows} rows of {N_PER_ROW}, {len(TYPES)} types")


if __name__ == "__main__":
    main()
