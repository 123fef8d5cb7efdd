"""compressed-tensors output (ktq convert --to compressed-tensors) against
llm-compressor's own output, tensor by tensor.

tests/golden/compressed_tensors.json holds, for each case, the SHA-256,
dtype and shape of every tensor llm-compressor 0.14 saved (RTN,
QuantizationModifier, kt-kernel's ignore list) and the quantization_config
it wrote; tests/golden/make_ct_golden.py regenerates it. The dequantized
weights are also checked against the original ones with an independent
numpy decoder (error bound of round-to-nearest: half a step per group).
"""
import hashlib
import json
import os
import struct
import shutil
import subprocess

import numpy as np
import pytest

from test_cli import MODELS, REPO, ktq, needs_shared, shared_model

# llm-compressor's output on a CPU (eager torch: --rounding dtype) and on a GPU
# (compressed-tensors' Triton kernel: --rounding fp32).
GOLDEN_FILES = ["compressed_tensors.json", "compressed_tensors_cuda.json"]
GOLDEN_CASES = []
for _f in GOLDEN_FILES:
    _g = json.load(open(os.path.join(REPO, "tests", "golden", _f)))
    GOLDEN_CASES += [dict(c, device=_g["device"], rounding=_g["rounding"]) for c in _g["cases"]]

# transformers 5 renames Mixtral's experts when llm-compressor unfuses them;
# ktq keeps the hub names (what vLLM's Mixtral loader reads).
MIXTRAL_NAMES = {".w1.": ".gate_proj.", ".w3.": ".up_proj.", ".w2.": ".down_proj."}


def cli_args(scheme):
    if isinstance(scheme, str):
        return ["--scheme", scheme]
    args = ["--scheme", f"W{scheme['num_bits']}A16"]
    args += ["--group-size", str(scheme["group_size"]) if scheme["strategy"] == "group" else "-1"]
    if not scheme["symmetric"]:
        args.append("--asymmetric")
    return args


def read_tensors(folder):
    out = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".safetensors"):
            continue
        with open(os.path.join(folder, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                a, b = info["data_offsets"]
                fh.seek(8 + n + a)
                out[name] = (info["dtype"], info["shape"], fh.read(b - a))
    return out


def ref_name(name, model):
    if model == "tiny-mixtral":
        for old, new in MIXTRAL_NAMES.items():
            name = name.replace(old, new)
    return name


@pytest.fixture(scope="module", params=GOLDEN_CASES, ids=lambda c: f"{c['model']}-{c['case']}-{c['device']}")
def converted(request, tmp_path_factory):
    case = request.param
    out = tmp_path_factory.mktemp("ct") / "out"
    ktq("convert", shared_model(case["model"]), out, "--to", "compressed-tensors", *cli_args(case["scheme"]),
        "--rounding", case["rounding"], "-q")
    return case, str(out)


def test_tensors_byte_identical_to_llm_compressor(converted):
    case, out = converted
    got = {ref_name(k, case["model"]): v for k, v in read_tensors(out).items()}
    ref = case["tensors"]
    assert sorted(got) == sorted(ref)
    mismatched = [k for k in ref if (got[k][0], got[k][1], hashlib.sha256(got[k][2]).hexdigest()) !=
                  (ref[k]["dtype"], ref[k]["shape"], ref[k]["sha256"])]
    assert mismatched == [], f"{len(mismatched)} of {len(ref)} tensors differ, e.g. {mismatched[:5]}"


def test_quantization_config_as_llm_compressor_writes_it(converted):
    case, out = converted
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["quantization_config"] == case["quantization_config"]
    # the rest of config.json is the model's
    orig = json.load(open(os.path.join(MODELS, case["model"], "config.json")))
    assert {k: v for k, v in cfg.items() if k != "quantization_config"} == orig


# ---- beyond byte identity: what a user of the format relies on ----------

def unpack_int32(words, bits, n):
    """compressed-tensors' pack_to_int32 undone with numpy: LSB first, dense."""
    w = words.astype(np.uint32).view(np.uint32)
    bitpos = np.arange(n, dtype=np.int64) * bits
    word, off = bitpos // 32, bitpos % 32
    lo = (w[..., word] >> off.astype(np.uint32)).astype(np.uint64)
    spill = off + bits > 32
    hi = np.zeros_like(lo)
    if spill.any():
        nxt = np.minimum(word + 1, w.shape[-1] - 1)
        hi = np.where(spill, (w[..., nxt].astype(np.uint64) << (32 - off).astype(np.uint64)), 0)
    return ((lo | hi) & ((1 << bits) - 1)).astype(np.int64) - (1 << (bits - 1))


def as_float(dtype, raw, shape):
    if dtype == "BF16":
        return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if dtype == "F16":
        return np.frombuffer(raw, np.float16).astype(np.float32).reshape(shape)
    return np.frombuffer(raw, np.float32).reshape(shape)


@needs_shared
@pytest.mark.parametrize("args,bits,group,sym", [(["--scheme", "W4A16"], 4, 128, True),
                                                 (["--scheme", "W8A16", "--group-size", "-1"], 8, -1, True),
                                                 (["--scheme", "W4A16", "--asymmetric", "--group-size", "64"], 4, 64, False)])
def test_dequantized_weights_within_a_step(tmp_path, args, bits, group, sym):
    """An independent numpy decoder of the files: every quantized weight is
    within a quantization step of the original (half a step inside the
    range), so the format means what it says."""
    model = shared_model("tiny-llama")
    out = tmp_path / "o"
    ktq("convert", model, out, "--to", "compressed-tensors", *args, "-q")
    got, orig = read_tensors(out), read_tensors(model)
    checked = 0
    for name in [n for n in got if n.endswith(".weight_packed")]:
        base = name[: -len("_packed")]
        rows, cols = np.frombuffer(got[base + "_shape"][2], np.int64)
        dt, shape, raw = got[base + "_scale"]
        scale = as_float(dt, raw, shape)
        q = unpack_int32(np.frombuffer(got[name][2], np.int32).reshape(got[name][1]), bits, cols)
        g = cols if group == -1 else group
        zp = np.zeros_like(scale)
        if not sym:
            zw = np.frombuffer(got[base + "_zero_point"][2], np.int32).reshape(got[base + "_zero_point"][1])
            zp = unpack_int32(zw.T.copy(), bits, rows).T.astype(np.float32)
        deq = (q.reshape(rows, cols // g, g) - zp[:, :, None]) * scale[:, :, None]
        w = as_float(orig[base][0], orig[base][2], orig[base][1]).reshape(rows, cols // g, g)
        lo, hi = np.minimum(w.min(-1), 0), np.maximum(w.max(-1), 0)
        step = np.maximum(-lo, hi) / ((1 << bits) / 2 - 0.5) if sym else (hi - lo) / ((1 << bits) - 1)
        # half a step, plus half a step at the range's edges (symmetric: the unused
        # top code; asymmetric: the zero point rounded to an integer), plus BF16 rounding
        slack = step[:, :, None] * 1.02 + np.abs(w) / 128
        assert (np.abs(deq - w) <= slack).all(), name
        checked += 1
    assert checked == 4 * 3  # gate/up/down of 4 layers; attention and lm_head kept


@needs_shared
def test_fp8_input_is_dequantized_then_quantized(tmp_path):
    """Block-FP8 input: the same bytes as quantizing its BF16 dequantization."""
    fp8 = shared_model("tiny-deepseek-v3-fp8")
    ktq("convert", fp8, tmp_path / "bf16", "--to", "bf16", "-q")
    ktq("convert", fp8, tmp_path / "a", "--to", "compressed-tensors", "-q")
    ktq("convert", tmp_path / "bf16", tmp_path / "b", "--to", "compressed-tensors", "-q")
    a, b = read_tensors(tmp_path / "a"), read_tensors(tmp_path / "b")
    assert sorted(a) == sorted(b) and a == b
    assert not any(n.endswith("weight_scale_inv") for n in a)
    cfg = json.load(open(tmp_path / "a" / "config.json"))
    assert cfg["quantization_config"]["quant_method"] == "compressed-tensors"


@needs_shared
def test_same_bytes_for_any_thread_count_and_scale_dtype_option(tmp_path):
    model = shared_model("tiny-qwen3-moe")
    ktq("convert", model, tmp_path / "t1", "--to", "compressed-tensors", "--threads", "1", "-q")
    ktq("convert", model, tmp_path / "t2", "--to", "compressed-tensors", "--threads", "2", "-q")
    assert read_tensors(tmp_path / "t1") == read_tensors(tmp_path / "t2")
    ktq("convert", model, tmp_path / "f16", "--to", "compressed-tensors", "--dtype", "float16", "-q")
    got = read_tensors(tmp_path / "f16")
    assert {v[0] for k, v in got.items() if k.endswith("weight_scale") or k.endswith("norm.weight")} == {"F16"}
    cfg = json.load(open(tmp_path / "f16" / "config.json"))
    assert cfg["dtype"] == "float16"


def no_final_output(out):
    names = os.listdir(out) if os.path.isdir(out) else []
    return not any(n.endswith(".safetensors") or n in ("config.json", "model.safetensors.index.json") for n in names)


@needs_shared
def test_group_size_that_does_not_divide_is_a_clear_error(tmp_path):
    r = ktq("convert", shared_model("tiny-llama"), tmp_path / "o", "--to", "compressed-tensors", "--group-size", "100",
            check=False)
    assert r.returncode == 1
    assert "model.safetensors" in r.stderr and "model.layers.0.mlp.down_proj.weight" in r.stderr, r.stderr
    assert "not divisible by the group size 100" in r.stderr
    assert no_final_output(tmp_path / "o")
    r = ktq("convert", shared_model("tiny-llama"), tmp_path / "o2", "--to", "compressed-tensors", "--ignore", "re:(",
            check=False)
    assert r.returncode == 1 and "bad pattern 're:('" in r.stderr, r.stderr


@needs_shared
def test_nan_weight_is_a_clear_error_and_leaves_no_output(tmp_path):
    src = shared_model("tiny-llama")
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    path = bad / "model.safetensors"
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        a, _ = header["model.layers.2.mlp.up_proj.weight"]["data_offsets"]
        f.seek(8 + n + a + 2 * 1000)
        f.write(struct.pack("<H", 0x7FC0))  # BF16 NaN
    r = ktq("convert", bad, tmp_path / "o", "--to", "compressed-tensors", check=False)
    assert r.returncode == 1
    assert "model.layers.2.mlp.up_proj.weight" in r.stderr and "NaN/Inf" in r.stderr, r.stderr
    assert no_final_output(tmp_path / "o")


def golden_case(model, case, device):
    return next(c for c in GOLDEN_CASES if (c["model"], c["case"], c["device"]) == (model, case, device))


@needs_shared
def test_convert_gpu_weights_drop_in(tmp_path):
    """kt-kernel's convert_gpu_weights.py flags: --quant_method RTN gives the
    bytes llm-compressor writes on a GPU (the script's normal run), and with
    --force_cpu those it writes on a CPU."""
    model = shared_model("tiny-qwen3-moe")
    for force_cpu, device in ((False, "cuda"), (True, "cpu")):
        out = tmp_path / device
        ktq("convert-gpu-weights", "--model_id", model, "--output_dir", out, "--quant_method", "RTN",
            "--quant_type", "W4A16", *(["--force_cpu"] if force_cpu else []), "--dataset", "ignored", "-q")
        ref = golden_case("tiny-qwen3-moe", "W4A16", device)["tensors"]
        got = read_tensors(out)
        assert {k: hashlib.sha256(v[2]).hexdigest() for k, v in got.items()} == {k: v["sha256"] for k, v in ref.items()}
    r = ktq("convert-gpu-weights", "--model_id", model, "--output_dir", tmp_path / "gptq", check=False)
    assert r.returncode == 2 and "GPTQ needs --dataset" in r.stderr, r.stderr  # the script's default method
    # --ignore_patterns replaces the defaults; DeepSeek's dense layer 0 is still kept, as the script adds it
    out = tmp_path / "ds"
    ktq("convert-gpu-weights", "--model_id", shared_model("tiny-deepseek-v3"), "--output_dir", out,
        "--quant_method", "RTN", "--quant_type", "W4A16", "--ignore_patterns", "lm_head", "-q")
    ignore = json.load(open(out / "config.json"))["quantization_config"]["ignore"]
    assert ignore == ["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj",
                      "lm_head"], ignore


@needs_shared
def test_inspect_plan_predicts_the_output_size(tmp_path):
    for model, scheme in (("tiny-qwen3-moe", "W4A16"), ("tiny-llama", "W8A16")):
        plan = json.loads(ktq("inspect", shared_model(model), "--json", "--plan").stdout)["plan"]
        ktq("convert", shared_model(model), tmp_path / model, "--to", "compressed-tensors", "--scheme", scheme, "-q")
        payload = sum(len(v[2]) for v in read_tensors(tmp_path / model).values())
        assert plan[f"compressed-tensors {scheme}"]["output_bytes"] == payload
    dense = json.loads(ktq("inspect", shared_model("tiny-llama"), "--json", "--plan").stdout)["plan"]
    assert "without routed experts" in dense["kt-amxint4"]["unavailable"]


@needs_shared
def test_mse_observer_from_the_command_line(tmp_path):
    """--observer mse: the scales are the reference MSE observer's
    (gptq_reference.mse_observer, numpy) for the experts of tiny-qwen3-moe,
    config.json says so, the bytes do not depend on the thread count, and the
    MSE observer is refused where it does not apply."""
    import gptq_reference
    model = shared_model("tiny-qwen3-moe")
    args = ["--to", "compressed-tensors", "--asymmetric", "--observer", "mse", "-q"]
    ktq("convert", model, tmp_path / "t1", *args, "--threads", "1")
    ktq("convert", model, tmp_path / "t2", *args, "--threads", "2")
    got = read_tensors(tmp_path / "t1")
    assert got == read_tensors(tmp_path / "t2")
    weights = json.load(open(tmp_path / "t1" / "config.json"))["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert weights["observer"] == "memoryless_mse"
    orig = read_tensors(model)
    same = near_ties = 0
    for name in [n for n in got if n.endswith(".weight_packed") and ".experts.1" in n]:
        base = name[: -len("_packed")]
        rows, cols = np.frombuffer(got[base + "_shape"][2], np.int64)
        dt, shape, raw = got[base + "_scale"]
        scale = as_float(dt, raw, shape)
        zw = np.frombuffer(got[base + "_zero_point"][2], np.int32).reshape(got[base + "_zero_point"][1])
        zp = unpack_int32(zw.T.copy(), 4, rows).T.astype(np.float32)
        w = as_float(orig[base][0], orig[base][2], orig[base][1])
        ref_s, ref_zp, g, errs = gptq_reference.mse_observer(w, 4, 128, False, "bf16")
        eq = (scale == ref_s) & (zp == ref_zp)
        same += eq.sum()
        mine = gptq_reference.group_errors(w, scale, zp, 4, g, "bf16")
        assert np.all(mine <= errs.min(axis=0) * (1 + 1e-5)), name  # any difference is a near tie
        near_ties += (~eq).sum()
    assert same > 0 and near_ties <= 0.001 * (same + near_ties), (same, near_ties)
    minmax = tmp_path / "minmax"
    ktq("convert", model, minmax, "--to", "compressed-tensors", "--asymmetric", "-q")
    assert read_tensors(minmax) != got
    # The observer is part of what --resume checks: a min-max output is not taken for an MSE one.
    r = ktq("convert", model, minmax, "--to", "compressed-tensors", "--asymmetric", "--observer", "mse", "--resume",
            check=False)
    assert r.returncode == 1 and "other options" in r.stderr, r.stderr
    for bad in (["--to", "gguf"], ["--to", "compressed-tensors", "--engine", "awq", "--dataset", os.path.join(MODELS, "..", "data", "calib.txt")],
                ["--format", "kt", "--quant-method", "int4"]):
        r = ktq("convert", model, tmp_path / "bad", *bad, "--observer", "mse", check=False)
        assert r.returncode == 2 and "--observer mse is for --to compressed-tensors" in r.stderr, (bad, r.stderr)
        assert not os.path.exists(tmp_path / "bad")
