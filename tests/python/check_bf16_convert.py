#!/usr/bin/env python3
"""Independent check of `ktq convert --to bf16` with Python safetensors.

Files are parsed by the safetensors package itself (`safetensors.deserialize`,
its Rust reader, which validates headers and offsets); the raw payloads are
interpreted with numpy + ml_dtypes, because safetensors' numpy frontend has
no BF16/FP8 types.

For every tensor of the input checkpoint, compute what the BF16 output must
hold with numpy + ml_dtypes (fp8 value x block scale of its 128x128 block in
float32, then rounded to BF16 nearest-even; F16/F32 cast to BF16), load the
output written by ktq with `safetensors.numpy`, and require the bytes to be
identical. Also checks the index, config.json and copied files.

usage: check_bf16_convert.py INPUT_MODEL_DIR KTQ_OUTPUT_DIR
"""
import json
import os
import sys

import ml_dtypes
import numpy as np
from safetensors import deserialize

DTYPES = {
    "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64,
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
    "I8": np.int8, "U8": np.uint8, "I16": np.int16, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_,
}


def load_all(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        with open(os.path.join(folder, name), "rb") as f:
            for key, t in deserialize(f.read()):
                assert key not in tensors, f"{key} appears twice"
                tensors[key] = np.frombuffer(t["data"], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return tensors, files


def reference_bf16(name, x, tensors, block):
    """What the converted tensor must be, computed independently."""
    scale_name = name + "_scale_inv"
    if x.dtype in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2) and scale_name in tensors:
        scale = tensors[scale_name].astype(np.float32)
        br, bc = block
        rows, cols = x.shape
        full = np.repeat(np.repeat(scale, br, axis=0), bc, axis=1)[:rows, :cols]
        return (x.astype(np.float32) * full).astype(ml_dtypes.bfloat16)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        return x
    return x.astype(np.float32).astype(ml_dtypes.bfloat16)


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "config.json")) as f:
        src_cfg = json.load(f)
    block = tuple(src_cfg.get("quantization_config", {}).get("weight_block_size", [128, 128]))

    inp, _ = load_all(src)
    got, files = load_all(out)
    expected_names = {n for n in inp if not (n.endswith("_scale_inv") and n[: -len("_scale_inv")] in inp
                                              and inp[n[: -len("_scale_inv")]].dtype.itemsize == 1)}
    assert set(got) == expected_names, f"tensor names differ: missing {sorted(expected_names - set(got))[:5]}, extra {sorted(set(got) - expected_names)[:5]}"

    checked = 0
    for name in sorted(expected_names):
        ref = reference_bf16(name, inp[name], inp, block)
        out_t = got[name]
        assert out_t.dtype == ref.dtype, f"{name}: dtype {out_t.dtype}, expected {ref.dtype}"
        assert out_t.shape == ref.shape, f"{name}: shape {out_t.shape}, expected {ref.shape}"
        if out_t.tobytes() != ref.tobytes():
            diff = np.flatnonzero(out_t.view(np.uint16) != ref.view(np.uint16))
            raise AssertionError(f"{name}: {diff.size} elements differ, first at {diff[0]}")
        checked += 1

    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    assert "quantization_config" not in cfg, "quantization_config left in config.json"
    dtype_key = "dtype" if "dtype" in src_cfg else "torch_dtype"
    assert cfg.get(dtype_key) == "bfloat16", f"config {dtype_key} = {cfg.get(dtype_key)}"
    for aux in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if os.path.exists(os.path.join(src, aux)):
            with open(os.path.join(src, aux), "rb") as a, open(os.path.join(out, aux), "rb") as b:
                assert a.read() == b.read(), f"{aux} not copied verbatim"
    if len(files) > 1:
        with open(os.path.join(out, "model.safetensors.index.json")) as f:
            index = json.load(f)
        total = sum(t.nbytes for t in got.values())
        assert index["metadata"]["total_size"] == total, "index total_size wrong"
    leftovers = [n for n in os.listdir(out) if n.endswith(".ktq-partial")]
    assert not leftovers, f"partial files left: {leftovers}"
    print(f"ok: {checked} tensors in {len(files)} file(s) identical to the independent reference")


if __name__ == "__main__":
    main()
