"""`ktq convert --engine gptq`: the whole-checkpoint GPTQ engine with ktq's
calibration forward pass, checked from the outside (safetensors + numpy):
the compressed-tensors layout and config, all-experts Hessians (an expert
the router never picks still gets every token), routing statistics,
byte-identical output whatever the thread count, GPTQ's layer outputs closer
to the original than RTN's on real calibration activations, a resumed run
equal to an uninterrupted one, and clear errors."""
import json
import os
import subprocess
import sys

import ml_dtypes  # noqa: F401  (registers bfloat16 for safetensors.numpy)
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from interrupted_run import kill_after_layer  # noqa: E402

safetensors_numpy = pytest.importorskip("safetensors.numpy")

KTQ = os.environ.get("KTQ_BIN", "ktq")
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
MODELS = os.path.join(SHARED, "models")
CALIB = os.path.join(SHARED, "data", "calib.txt")

pytestmark = pytest.mark.skipif(not os.path.exists(CALIB), reason=f"shared data not found at {SHARED}")

SMALL = ["--num-calibration-samples", "16", "--max-sequence-length", "256"]


def ktq(*args, check=True):
    r = subprocess.run([KTQ, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"ktq {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


def gptq(model, out, *extra):
    return ktq("convert", os.path.join(MODELS, model), out, "--to", "compressed-tensors", "--engine", "gptq",
               "--dataset", CALIB, "-q", *SMALL, *extra)


@pytest.fixture(scope="module")
def qwen_gptq(tmp_path_factory):
    out = tmp_path_factory.mktemp("gptq") / "qwen"
    gptq("tiny-qwen3-moe", out)
    return out


def test_layout_config_and_reports(qwen_gptq):
    t = safetensors_numpy.load_file(str(qwen_gptq / "model.safetensors"))
    name = "model.layers.1.mlp.experts.3.down_proj"
    assert t[name + ".weight_packed"].dtype == np.int32 and t[name + ".weight_packed"].shape == (256, 256 // 8)
    assert t[name + ".weight_shape"].tolist() == [256, 256]
    assert name + ".weight" not in t
    assert "model.layers.1.self_attn.q_proj.weight" in t  # attention ignored by default (kt-kernel's list)
    cfg = json.load(open(qwen_gptq / "config.json"))
    w = cfg["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert w["num_bits"] == 4 and w["group_size"] == 128 and w["actorder"] == "static"
    report = json.load(open(qwen_gptq / "gptq_report.json"))
    assert len(report["modules"]) == 3 * 16 * 3 and report["rtn_fallbacks"] == 0
    # All-experts calibration: every expert's Linears saw every calibration token.
    assert {m["rows_seen"] for m in report["modules"].values()} == {16 * 256}
    # ... and the default blend also knows how many of them the router sent it.
    routed = {name: m["rows_routed"] for name, m in report["modules"].items()}
    for layer, counts in json.load(open(qwen_gptq / "routing_stats.json"))["layers"].items():
        for e, n in enumerate(counts):
            assert routed[f"model.layers.{layer}.mlp.experts.{e}.up_proj"] == n
    stats = json.load(open(qwen_gptq / "routing_stats.json"))
    assert stats["tokens"] == 16 * 256 and sorted(stats["layers"]) == ["0", "1", "2"]
    for counts in stats["layers"].values():
        assert len(counts) == 16 and sum(counts) == 16 * 256 * 4  # top-4 routing


def test_expert_without_routed_tokens_still_calibrated(tmp_path):
    """With 4 samples some expert gets no routed token; its Hessian still has all of them."""
    out = tmp_path / "few"
    ktq("convert", os.path.join(MODELS, "tiny-qwen3-moe"), out, "--to", "compressed-tensors", "--engine", "gptq",
        "--dataset", CALIB, "-q", "--num-calibration-samples", "2", "--max-sequence-length", "64")
    stats = json.load(open(out / "routing_stats.json"))
    starved = [(layer, e) for layer, c in stats["layers"].items() for e, n in enumerate(c) if n == 0]
    assert starved, "expected an expert without routed tokens in this small sample"
    report = json.load(open(out / "gptq_report.json"))
    for layer, e in starved:
        for proj in ("gate_proj", "up_proj", "down_proj"):
            m = report["modules"][f"model.layers.{layer}.mlp.experts.{e}.{proj}"]
            assert m["rows_seen"] == 128 and m["rows_routed"] == 0 and not m["rtn_fallback"] and m["loss"] > 0


@pytest.mark.skipif(os.environ.get("KTQ_SANITIZED") == "1",
                    reason="determinism is the release build's to check: one more full run under the sanitizers")
def test_same_bytes_whatever_the_thread_count(qwen_gptq, tmp_path):
    gptq("tiny-qwen3-moe", tmp_path / "t1", "--threads", "1")
    for f in ("model.safetensors", "config.json", "routing_stats.json", "gptq_report.json"):
        assert (tmp_path / "t1" / f).read_bytes() == (qwen_gptq / f).read_bytes(), f


def unpack_int4(packed, shape):
    words = packed.view(np.uint32)
    codes = np.zeros((words.shape[0], words.shape[1] * 8), dtype=np.int64)
    for j in range(8):
        codes[:, j::8] = (words >> (4 * j)) & 15
    return (codes - 8)[:, : shape[1]]


def test_moe_hessian_all_is_llm_compressors_mode(qwen_gptq, tmp_path):
    """--moe-hessian all (every token alike) gives other codes than the default blend, same scales."""
    gptq("tiny-qwen3-moe", tmp_path / "all", "--moe-hessian", "all")
    a = safetensors_numpy.load_file(str(tmp_path / "all" / "model.safetensors"))
    b = safetensors_numpy.load_file(str(qwen_gptq / "model.safetensors"))
    name = "model.layers.0.mlp.experts.0.down_proj"
    assert np.array_equal(a[name + ".weight_scale"], b[name + ".weight_scale"])
    assert not np.array_equal(a[name + ".weight_packed"], b[name + ".weight_packed"])


def test_gptq_differs_from_rtn_and_keeps_scales(qwen_gptq, tmp_path):
    """Same observer scales as the RTN engine, different (error-compensated) codes."""
    ktq("convert", os.path.join(MODELS, "tiny-qwen3-moe"), tmp_path / "rtn", "--to", "compressed-tensors", "-q")
    g = safetensors_numpy.load_file(str(qwen_gptq / "model.safetensors"))
    r = safetensors_numpy.load_file(str(tmp_path / "rtn" / "model.safetensors"))
    assert sorted(g) == sorted(r)
    changed = []
    for name in g:
        if name.endswith("weight_scale"):
            assert np.array_equal(g[name], r[name]), name
        if name.endswith("weight_packed"):
            shape = g[name.replace("packed", "shape")].tolist()
            cg, cr = unpack_int4(g[name], shape), unpack_int4(r[name], shape)
            changed.append(np.mean(cg != cr))
    assert 0.05 < np.mean(changed) < 0.6, np.mean(changed)


def test_dense_and_mla_models(tmp_path):
    gptq("tiny-llama", tmp_path / "llama", "--no-default-ignore", "--ignore", "lm_head")
    t = safetensors_numpy.load_file(str(tmp_path / "llama" / "model.safetensors"))
    assert "model.layers.0.self_attn.q_proj.weight_packed" in t and "lm_head.weight" in t
    gptq("tiny-deepseek-v3-fp8", tmp_path / "ds")
    t = safetensors_numpy.load_file(str(tmp_path / "ds" / "model.safetensors"))
    assert "model.layers.1.mlp.experts.0.gate_proj.weight_packed" in t
    assert "model.layers.0.mlp.gate_proj.weight" in t  # first dense layer ignored, as kt-kernel's script does


def test_resume_after_kill_is_byte_identical(qwen_gptq, tmp_path):
    out = tmp_path / "killed"
    args = [KTQ, "convert", os.path.join(MODELS, "tiny-qwen3-moe"), str(out), "--to", "compressed-tensors",
            "--engine", "gptq", "--dataset", CALIB, "-q", *SMALL]
    if not kill_after_layer(args, out, 1, 120):  # layers 0 and 1 written
        pytest.skip("the run finished before it could be killed")
    ktq(*args[1:], "--resume")
    for f in ("model.safetensors", "config.json", "routing_stats.json", "gptq_report.json"):
        assert (out / f).read_bytes() == (qwen_gptq / f).read_bytes(), f


def test_clear_errors(tmp_path):
    r = ktq("convert", os.path.join(MODELS, "tiny-llama"), tmp_path / "x", "--to", "compressed-tensors",
            "--engine", "gptq", check=False)
    assert r.returncode == 2 and "--dataset" in r.stderr
    short = tmp_path / "short.txt"
    short.write_text("too short")
    r = ktq("convert", os.path.join(MODELS, "tiny-llama"), tmp_path / "y", "--to", "compressed-tensors",
            "--engine", "gptq", "--dataset", short, check=False)
    assert r.returncode == 1 and "short.txt" in r.stderr and "no calibration sample" in r.stderr
    assert not (tmp_path / "y").exists() or not any((tmp_path / "y").iterdir())
    r = ktq("convert-gpu-weights", "--model_id", os.path.join(MODELS, "tiny-llama"), "--output_dir", tmp_path / "z",
            "--quant_method", "GPTQ", "--dataset", "HuggingFaceH4/ultrachat_200k", check=False)
    assert r.returncode == 2 and "local text or JSONL file" in r.stderr


def test_kt_kernel_drop_in_gptq(tmp_path):
    ktq("convert-gpu-weights", "--model_id", os.path.join(MODELS, "tiny-qwen3-moe"), "--output_dir", tmp_path / "o",
        "--quant_method", "GPTQ", "--quant_type", "W4A16", "--dataset", CALIB, "--num_calibration_samples", "8",
        "--max_sequence_length", "128", "-q")
    cfg = json.load(open(tmp_path / "o" / "config.json"))
    assert cfg["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] == 4
    assert json.load(open(tmp_path / "o" / "gptq_report.json"))["rtn_fallbacks"] == 0
