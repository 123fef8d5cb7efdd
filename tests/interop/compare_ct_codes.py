"""Compares two compressed-tensors pack-quantized checkpoints code by code
(ktq's GPTQ on the CPU and on the GPU): per tensor the share of equal codes,
the largest code difference, and whether scales / zero points are identical.
Exits non-zero when fewer than 99.9 % of all codes agree, a scale differs,
or the differing codes are not mostly (>= 90 %) one step apart: with the
same Hessians both devices give the same codes (tests/unit/test_cuda_gptq.cpp);
in the engine the Hessian sums themselves are rounded differently (cuBLAS vs
oneDNN summation order), and once a code flips GPTQ feeds a different error
into the rest of that row, so a later code there can land two steps away.
usage: compare_ct_codes.py DIR_A DIR_B"""
import glob
import json
import os
import struct
import sys

import numpy as np

NP = {"I32": np.int32, "I64": np.int64, "I8": np.int8, "U8": np.uint8, "F32": np.float32,
      "BF16": np.uint16, "F16": np.uint16}  # 16-bit floats compared as their bits


def tensors(d):
    """Every tensor of the folder's safetensors files, read from the format's
    own header (numpy has no bfloat16)."""
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        blob = open(f, "rb").read()
        (n,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + n])
        for name, t in header.items():
            if name == "__metadata__" or t["dtype"] not in NP:
                continue
            b0, b1 = t["data_offsets"]
            out[name] = np.frombuffer(blob[8 + n + b0:8 + n + b1], NP[t["dtype"]]).reshape(t["shape"])
    return out


def codes(packed, bits):
    """int32 words, LSB first, `32 // bits` codes each, offset binary -> signed."""
    words = packed.astype(np.uint32)
    per = 32 // bits
    shifts = (np.arange(per, dtype=np.uint32) * bits)[None, None, :]
    c = (words[:, :, None] >> shifts) & ((1 << bits) - 1)
    return c.reshape(words.shape[0], -1).astype(np.int16) - (1 << (bits - 1))


def main(a_dir, b_dir):
    a, b = tensors(a_dir), tensors(b_dir)
    total = same = worst = 0
    scales_differ = []
    hist = {}
    rows_hit = 0
    for name in sorted(k for k in a if k.endswith(".weight_packed")):
        base = name[: -len(".weight_packed")]
        shape = a[base + ".weight_shape"]
        bits = 32 * int(a[name].shape[1]) // int(shape[1])
        ca, cb = codes(a[name], bits), codes(b[name], bits)
        total += ca.size
        same += int((ca == cb).sum())
        d = np.abs(ca - cb)
        worst = max(worst, int(d.max()))
        for v, c in zip(*np.unique(d[d > 0], return_counts=True)):
            hist[int(v)] = hist.get(int(v), 0) + int(c)
        rows_hit += int((d.max(axis=1) > 0).sum())
        for part in (".weight_scale", ".weight_zero_point"):
            if base + part in a and not np.array_equal(a[base + part], b[base + part]):
                scales_differ.append(base + part)
    share = same / total if total else 0.0
    print(f"{total} codes in {len([k for k in a if k.endswith('.weight_packed')])} tensors: "
          f"{same} equal ({100 * share:.4f} %), {total - same} differ, largest difference {worst} step(s); "
          f"scales/zero points differing: {len(scales_differ)}")
    print(f"differences by steps: {hist}; rows with a difference: {rows_hit}")
    ok = total > 0 and share >= 0.999 and not scales_differ and hist.get(1, 0) >= 0.9 * (total - same)
    print("agree" if ok else "DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
