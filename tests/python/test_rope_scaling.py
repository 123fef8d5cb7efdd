"""RoPE scaling in ktq's forward pass (linear, llama3, yarn; DeepSeek's yarn
with its mscale on the softmax scale): `ktq eval-ppl` on shared models whose
config asks for a scaled rope gives transformers' loss on the same tokens
(tests/golden/rope_scaling.json, made by
tests/golden/make_rope_scaling_golden.py with transformers in float32).
Every scaled case differs from the unscaled control by far more than the
tolerance, so ignoring a parameter fails. Unimplemented rope types are
refused by name. Also the two MLA forms no shared model has (RoPE on
halves, no q_lora). KTQ_EVAL_DEVICE=cuda runs the loss checks on the GPU
forward (on the GPU host: tests/interop/README.md)."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from rope_variants import CASES, WINDOW, WINDOWS, make_model, make_variant  # noqa: E402

KTQ = os.environ.get("KTQ_BIN", "ktq")
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
EVAL = os.path.join(SHARED, "data", "eval.txt")
GOLDEN = json.load(open(os.path.join(os.path.dirname(__file__), "..", "golden", "rope_scaling.json")))

pytestmark = pytest.mark.skipif(not os.path.exists(EVAL), reason=f"shared data not found at {SHARED}")


DEVICE = ["--device", os.environ["KTQ_EVAL_DEVICE"]] if os.environ.get("KTQ_EVAL_DEVICE") else []


def eval_ppl(model, check=True):
    r = subprocess.run([KTQ, "eval-ppl", str(model), "--text", EVAL, "--max-tokens", str(WINDOW * WINDOWS),
                        "--window", str(WINDOW), "--json", "-q", *DEVICE], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(r.stderr)
    return r


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_matches_transformers(case, tmp_path):
    got = json.loads(eval_ppl(make_variant(SHARED, case, tmp_path / case)).stdout)
    assert got["tokens_scored"] == WINDOWS * (WINDOW - 1)
    want = GOLDEN["cases"][case]["mean_nll"]
    assert got["mean_nll"] == pytest.approx(want, rel=1e-5), (case, got["mean_nll"], want)  # measured: <= 6e-8
    control = GOLDEN["cases"][case.split("-")[0] + "-default"]["mean_nll"]
    if not case.endswith("-default"):
        assert abs(want / control - 1) > 0.05  # the scaling changes the loss far beyond the tolerance


@pytest.mark.parametrize("rope", [{"rope_type": "longrope", "rope_theta": 10000.0},
                                  {"rope_type": "llama3", "factor": 8.0, "rope_theta": 10000.0}])
def test_unimplemented_or_incomplete_rope_is_refused(rope, tmp_path):
    d = make_variant(SHARED, "llama-default", tmp_path / "m")
    cfg = json.load(open(d / "config.json"))
    cfg["rope_parameters"] = rope
    json.dump(cfg, open(d / "config.json", "w"))
    r = eval_ppl(d, check=False)
    assert r.returncode != 0 and "config.json" in r.stderr and "rope_type" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "terminate" not in r.stderr


# ---- GGUF: what llama.cpp needs to compute the same positions ----
# (tests/interop/llama_cpp_rope_agreement.sh runs llama.cpp on these files: same perplexity to 8e-5)

try:  # only the GGUF checks need them (the GPU host runs the loss checks without gguf-py)
    import gguf
    import numpy as np
except ImportError:
    gguf = np = None
needs_gguf = pytest.mark.skipif(gguf is None, reason="gguf-py and numpy are needed to read the GGUF files")


def to_gguf(case, tmp_path, check=True):
    d = make_variant(SHARED, case, tmp_path / case)
    out = tmp_path / (case + ".gguf")
    r = subprocess.run([KTQ, "convert", str(d), str(out), "--to", "gguf", "--type", "Q8_0", "-q"],
                       capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(r.stderr)
    return out, r


def fields(path):
    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items()}, {t.name: t for t in reader.tensors}


@needs_gguf
@pytest.mark.parametrize("case,want", [
    ("llama-linear", {"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 2.0}),
    ("llama-yarn", {"llama.rope.scaling.type": "yarn", "llama.rope.scaling.factor": 4.0,
                    "llama.rope.scaling.original_context_length": 256}),
    ("deepseek-yarn", {"deepseek2.rope.scaling.type": "yarn", "deepseek2.rope.scaling.factor": 4.0,
                       "deepseek2.rope.scaling.original_context_length": 256,
                       "deepseek2.rope.scaling.yarn_log_multiplier": pytest.approx(0.1)}),
    ("llama-default", {}),
])
def test_gguf_rope_scaling_keys(case, want, tmp_path):
    kv, tensors = fields(to_gguf(case, tmp_path)[0])
    got = {k: v for k, v in kv.items() if ".rope.scaling." in k}
    assert got == want
    assert "rope_freqs.weight" not in tensors


@needs_gguf
def test_gguf_llama3_rope_freqs(tmp_path):
    """Llama 3.1's rope goes into GGUF as llama.cpp's rope_freqs.weight: per
    frequency the divisor of theta's (1 for short wavelengths, factor for
    long ones, blended between), from convert_hf_to_gguf's rule."""
    kv, tensors = fields(to_gguf("llama-llama3", tmp_path)[0])
    assert not [k for k in kv if ".rope.scaling." in k]
    p = CASES["llama-llama3"][1]["rope_parameters"]
    dim = 64
    freqs = 1.0 / (p["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    wavelen = 2 * np.pi / freqs.astype(np.float64)
    old, lo, hi, factor = p["original_max_position_embeddings"], p["low_freq_factor"], p["high_freq_factor"], p["factor"]
    smooth = (old / wavelen - lo) / (hi - lo)
    want = np.where(wavelen < old / hi, 1.0, np.where(wavelen > old / lo, factor, 1 / ((1 - smooth) / factor + smooth)))
    t = tensors["rope_freqs.weight"]
    assert gguf.GGMLQuantizationType(int(t.tensor_type)) == gguf.GGMLQuantizationType.F32
    got = np.asarray(t.data, np.float32)
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6)
    assert (got == 1).any() and (got == factor).any() and ((got > 1) & (got < factor)).any()  # all three regimes


@needs_gguf
@pytest.mark.parametrize("model,rope,word", [
    ("tiny-qwen3-moe", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 64, "rope_theta": 10000.0}, "llama models only"),
    ("tiny-llama", {"rope_type": "yarn", "rope_theta": 10000.0}, "without a factor"),
])
def test_gguf_refuses_what_llama_cpp_cannot_take(model, rope, word, tmp_path):
    d = make_model(SHARED, model, {"rope_parameters": rope}, tmp_path / "m")
    r = subprocess.run([KTQ, "convert", str(d), str(tmp_path / "x.gguf"), "--to", "gguf", "-q"], capture_output=True,
                       text=True)
    assert r.returncode != 0 and word in r.stderr and "config.json" in r.stderr, r.stderr
    assert not (tmp_path / "x.gguf").exists()
