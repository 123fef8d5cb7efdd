#!/usr/bin/env python3
"""Golden vectors for ktq's ggml block quantizers, made with gguf-py (the
`gguf` package on PyPI, llama.cpp's own Python library, whose numpy
quantizers for these types follow ggml's reference arithmetic).

Writes ggml_blocks.json: the input floats and, per type, the quantized bytes
and the dequantized floats, all base64. Regenerate with
    pip install gguf==0.19.0 numpy && python3 tests/golden/make_ggml_golden.py
The CI test (tests/unit/test_ggml_blocks.cpp) compares ktq against it, and
tests/python/test_ggml_live.py compares against gguf-py live on fresh data.
"""
import base64
import json
import os

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]


def inputs():
    rng = np.random.default_rng(20261124)
    blocks = [
        rng.standard_normal(32 * 64) * 0.02,                     # weight-like
        rng.standard_normal(32 * 16) * rng.uniform(1e-4, 10.0, size=32 * 16),
        rng.uniform(-1, 1, size=32 * 16) ** 3,                  # heavy centre
        np.zeros(32), np.full(32, 0.75), np.full(32, -3.0),     # degenerate blocks
        np.r_[np.zeros(31), 1.0], np.r_[-2.0, np.ones(31)],     # one spike, negative max
        np.r_[2.0, -2.0, np.zeros(30)],                         # tie of |max|: the first wins
        np.linspace(-1, 1, 32), np.linspace(0, 1, 32) ** 2,
        rng.standard_normal(32) * 1e-6, rng.standard_normal(32) * 1e-9,  # tiny scales (f16 subnormal d)
        rng.standard_normal(32) * 1.2e4,                        # large (near the f16 range edge)
        np.arange(32) - 15.5,
    ]
    return np.concatenate(blocks).astype(np.float32)


def main():
    x = inputs()
    out = {"generator": f"gguf-py {gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0'}",
           "input_f32": base64.b64encode(x.tobytes()).decode(), "types": {}}
    for name in TYPES:
        qtype = getattr(T, name)
        q = quantize(x, qtype)
        y = dequantize(q, qtype).astype(np.float32)
        out["types"][name] = {"id": int(qtype), "quantized": base64.b64encode(q.tobytes()).decode(),
                              "dequantized_f32": base64.b64encode(y.tobytes()).decode()}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ggml_blocks.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: {x.size} values, {len(TYPES)} types")


if __name__ == "__main__":
    main()
