#!/usr/bin/env python3
"""Generates the malformed-input corpus: one model folder per case, each
broken in one way, plus manifest.json saying what ktq must answer (the
exit status of `ktq inspect` and substrings its message must contain: the
file and the tensor). Generated, never hand-edited; tests/python/test_bad_inputs.py
runs it into a temporary folder.

usage: make_bad_corpus.py OUT_DIR
"""
import json
import os
import struct
import sys

CONFIG = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_hidden_layers": 1,
          "hidden_size": 4, "num_experts": 2, "num_experts_per_tok": 1, "moe_intermediate_size": 8,
          "torch_dtype": "bfloat16"}


def tensor_specs():
    specs = [("model.embed_tokens.weight", "BF16", [16, 4])]
    for e in range(2):
        p = f"model.layers.0.mlp.experts.{e}."
        specs += [(p + "gate_proj.weight", "BF16", [8, 4]), (p + "up_proj.weight", "BF16", [8, 4]),
                  (p + "down_proj.weight", "BF16", [4, 8])]
    return specs


SIZE = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "I32": 4}


def safetensors(specs, mutate_header=None, mutate_bytes=None):
    header, off = {}, 0
    for name, dtype, shape in specs:
        n = SIZE.get(dtype, 2)
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    if mutate_header:
        mutate_header(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    blob = struct.pack("<Q", len(text)) + text + bytes((i * 37) & 0x3f for i in range(off))
    return mutate_bytes(blob) if mutate_bytes else blob


def write_case(root, name, files, expect_status, expect_in, commands=("inspect", "convert")):
    """`commands`: the ktq commands that must refuse it (inspect reads headers
    only; data errors such as NaN show up when convert reads the values)."""
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    for fname, content in files.items():
        with open(os.path.join(folder, fname), "wb") as f:
            f.write(content if isinstance(content, bytes) else json.dumps(content).encode())
    return {"case": name, "exit": expect_status, "message_contains": expect_in, "commands": list(commands)}


def main():
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    specs = tensor_specs()
    gate0 = "model.layers.0.mlp.experts.0.gate_proj.weight"
    cases = []

    def single(name, blob, expect, config=CONFIG):
        cases.append(write_case(root, name, {"config.json": config, "model.safetensors": blob}, 1, expect))

    good = safetensors(specs)
    single("truncated_data", good[:-10], ["model.safetensors", "run past the end of the data"])
    single("truncated_header", good[:20], ["model.safetensors", "runs past the end of the file"])
    single("shorter_than_length_prefix", good[:5], ["model.safetensors", "truncated"])
    single("giant_header_length", struct.pack("<Q", 1 << 40) + good[8:],
           ["model.safetensors", "exceeds the limit"])
    single("header_not_json", struct.pack("<Q", 6) + b"{oops}", ["model.safetensors", "not valid JSON"])

    def overlap(h):
        h[gate0]["data_offsets"] = [0, 64]
    single("overlapping_offsets", safetensors(specs, overlap), ["model.safetensors", "overlaps"])

    def out_of_bounds(h):
        h[gate0]["data_offsets"] = [10**12, 10**12 + 64]
    single("offsets_out_of_bounds", safetensors(specs, out_of_bounds), ["model.safetensors", gate0, "run past the end"])

    def mismatch(h):
        h[gate0]["shape"] = [8, 5]
    single("shape_bytes_mismatch", safetensors(specs, mismatch), ["model.safetensors", gate0, "does not match"])

    def bad_dtype(h):
        h[gate0]["dtype"] = "Q4_K"
    cases.append(write_case(root, "unknown_dtype", {"config.json": CONFIG,
                                                    "model.safetensors": safetensors(specs, bad_dtype)},
                            1, ["model.safetensors", gate0, "unsupported dtype"]))

    def negative_dim(h):
        h[gate0]["shape"] = [-8, 4]
    single("negative_dimension", safetensors(specs, negative_dim), ["model.safetensors", gate0, "shape entry -8"])

    # Two entries with one name (JSON allows it; a safetensors reader must not pick one).
    text = ('{"a.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
            '"a.weight":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}').encode()
    text += b" " * (-len(text) % 8)
    single("duplicate_names", struct.pack("<Q", len(text)) + text + bytes(8),
           ["model.safetensors", "'a.weight'", "appears twice"], config={"model_type": "llama"})

    # Sharded checkpoints.
    half = len(specs) // 2
    shard1, shard2 = safetensors(specs[:half]), safetensors(specs[half:])
    wm = {n: "model-00001-of-00002.safetensors" for n, _, _ in specs[:half]}
    wm.update({n: "model-00002-of-00002.safetensors" for n, _, _ in specs[half:]})
    cases.append(write_case(root, "missing_shard", {
        "config.json": CONFIG, "model-00001-of-00002.safetensors": shard1,
        "model.safetensors.index.json": {"weight_map": wm}}, 1,
        ["model.safetensors.index.json", "model-00002-of-00002.safetensors", "is missing"]))
    for case, path in (("index_parent_path", "../model-00002-of-00002.safetensors"),
                       ("index_absolute_path", "/etc/passwd")):
        bad_wm = dict(wm)
        bad_wm[gate0] = path
        cases.append(write_case(root, case, {
            "config.json": CONFIG, "model-00001-of-00002.safetensors": shard1,
            "model-00002-of-00002.safetensors": shard2, "model.safetensors.index.json": {"weight_map": bad_wm}}, 1,
            ["model.safetensors.index.json", gate0, "leaves the model folder"]))
    cases.append(write_case(root, "index_empty_weight_map", {
        "config.json": CONFIG, "model.safetensors.index.json": {"weight_map": {}}}, 1,
        ["model.safetensors.index.json", "empty"]))

    # Config contradicting the tensors.
    wrong = dict(CONFIG, num_experts=8)
    single("config_expert_count_mismatch", good, ["config.json says 8 routed experts but layer 0 has 2"], wrong)
    single("config_not_an_object", good, ["config.json", "not a JSON object"], config=[1, 2])
    cases.append(write_case(root, "config_missing", {"model.safetensors": good}, 1, ["config.json", "not found"]))
    missing_up = [s for s in specs if s[0] != "model.layers.0.mlp.experts.1.up_proj.weight"]
    single("expert_projection_missing", safetensors(missing_up), ["expert 1 has no up projection"])

    # FP8 with scales of the wrong shape.
    fp8_cfg = dict(CONFIG, quantization_config={"quant_method": "fp8", "weight_block_size": [128, 128]})
    fp8_specs = [(n, "F8_E4M3" if n.endswith("proj.weight") else d, s) for n, d, s in specs]
    fp8_specs += [(n + "_scale_inv", "F32", [1, 2] if n == gate0 else [1, 1]) for n, d, s in specs
                  if n.endswith("proj.weight")]
    single("fp8_scale_wrong_shape", safetensors(fp8_specs), [gate0 + "_scale_inv", "expected [1, 1]"], fp8_cfg)
    no_scale = [s for s in fp8_specs if s[0] != gate0 + "_scale_inv"]
    single("fp8_scale_missing", safetensors(no_scale), [gate0, "no '" + gate0 + "_scale_inv'"], fp8_cfg)

    # Already-quantized inputs.
    ct_specs = specs + [("model.layers.0.self_attn.q_proj.weight_packed", "I32", [4, 1])]
    single("compressed_tensors_input", safetensors(ct_specs), ["already-quantized", "weight_packed"])

    # Non-finite weights: a BF16 NaN and an F16 infinity inside one tensor.
    def poison(blob, value_bytes, tensor_index):
        text_len = struct.unpack("<Q", blob[:8])[0]
        header = json.loads(blob[8:8 + text_len])
        name = specs[tensor_index][0]
        at = 8 + text_len + header[name]["data_offsets"][0] + 6
        return blob[:at] + value_bytes + blob[at + len(value_bytes):], name
    nan_blob, nan_name = poison(good, struct.pack("<H", 0x7fc0), 2)
    cases.append(write_case(root, "nan_weight", {"config.json": CONFIG, "model.safetensors": nan_blob}, 1,
                            ["model.safetensors", nan_name, "1 NaN/Inf value(s), the first at element 3"],
                            commands=("convert",)))
    f16_specs = [(n, "F16", sh) for n, _, sh in specs]
    inf_blob, inf_name = poison(safetensors(f16_specs), struct.pack("<H", 0x7c00), 4)
    cases.append(write_case(root, "inf_weight_f16", {"config.json": dict(CONFIG, torch_dtype="float16"),
                                                     "model.safetensors": inf_blob}, 1,
                            ["model.safetensors", inf_name, "NaN/Inf"], commands=("convert",)))

    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump(cases, f, indent=2)
    print(f"{len(cases)} malformed cases in {root}")


if __name__ == "__main__":
    main()
