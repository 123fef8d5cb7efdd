"""AutoAWQ checkpoints (GEMM packing) as input: a fixture made with the
reference packing (tests/data/make_awq_fixture.py, numpy) reads back to
the exact dequantized weights through every writer; bad AWQ files are
refused naming the file and tensor."""
import json
import os
import shutil
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

safetensors_numpy = pytest.importorskip("safetensors.numpy")

KTQ = os.environ.get("KTQ_BIN", "ktq")
HERE = os.path.dirname(__file__)
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(HERE, "../../../shared"))
MODELS = os.path.join(SHARED, "models")
EVAL = os.path.join(SHARED, "data", "eval.txt")
MAKE = os.path.join(HERE, "..", "data", "make_awq_fixture.py")

pytestmark = pytest.mark.skipif(not os.path.isdir(MODELS), reason=f"shared models not found at {SHARED}")


def ktq(*args, check=True):
    r = subprocess.run([KTQ, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"ktq {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    d = tmp_path_factory.mktemp("awq")
    subprocess.run([sys.executable, MAKE, os.path.join(MODELS, "tiny-qwen3-moe"), d / "model", "--expected",
                    d / "expected.safetensors"], check=True)
    return d


def bf16(a):
    return np.asarray(a).view(ml_dtypes.bfloat16).astype(np.float32)


def test_reads_back_the_exact_weights(fixture, tmp_path):
    ktq("convert", fixture / "model", tmp_path / "bf16", "--to", "bf16", "-q")
    expected = safetensors_numpy.load_file(str(fixture / "expected.safetensors"))
    got = safetensors_numpy.load_file(str(tmp_path / "bf16" / "model.safetensors"))
    assert len(expected) == 3 * (4 + 16 * 3)  # attention and every expert of the 3 layers
    for name, want in expected.items():
        want_bf16 = want.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
        assert np.array_equal(bf16(got[name]), want_bf16), name
    assert not any(k.endswith((".qweight", ".qzeros", ".scales")) for k in got)


def test_every_writer_takes_it(fixture, tmp_path):
    ktq("convert", fixture / "model", tmp_path / "ct", "--to", "compressed-tensors", "-q")
    assert "quantization_config" in json.load(open(tmp_path / "ct" / "config.json"))
    ktq("convert", fixture / "model", tmp_path / "m.gguf", "--to", "gguf", "--type", "Q8_0", "-q")
    ktq("convert", fixture / "model", tmp_path / "kt", "--to", "kt", "--quant-method", "int8", "-q")
    # The model still computes: perplexity near the original's (4-bit everywhere costs a few %).
    ppl = lambda m: json.loads(ktq("eval-ppl", m, "--text", EVAL, "--max-tokens", 16384, "--json", "-q").stdout)["perplexity"]
    base, awq = ppl(os.path.join(MODELS, "tiny-qwen3-moe")), ppl(fixture / "model")
    assert base < awq < base * 1.05, (base, awq)


def broken(fixture, tmp_path, edit_tensors=None, edit_config=None):
    d = tmp_path / "broken"
    shutil.copytree(fixture / "model", d)
    if edit_tensors:
        t = safetensors_numpy.load_file(str(d / "model.safetensors"))
        edit_tensors(t)
        safetensors_numpy.save_file(t, str(d / "model.safetensors"))
    if edit_config:
        cfg = json.load(open(d / "config.json"))
        edit_config(cfg["quantization_config"])
        json.dump(cfg, open(d / "config.json", "w"))
    return d


@pytest.mark.parametrize("case, message", [
    ("no_qzeros", "qzeros or scales is missing"),
    ("scales_shape", "scales is not [in / group_size, out]"),
    ("qweight_dtype", "qweight is not a 2-D I32 tensor"),
    ("gemv", "AWQ version \"gemv\" is not read"),
    ("bits", "AWQ with 8 bits"),
])
def test_bad_awq_files_are_refused_by_name(fixture, tmp_path, case, message):
    name = "model.layers.1.mlp.experts.3.up_proj"
    edits = {
        "no_qzeros": dict(edit_tensors=lambda t: t.pop(name + ".qzeros")),
        "scales_shape": dict(edit_tensors=lambda t: t.__setitem__(name + ".scales", t[name + ".scales"][:1])),
        "qweight_dtype": dict(edit_tensors=lambda t: t.__setitem__(name + ".qweight", t[name + ".qweight"].view(np.float32))),
        "gemv": dict(edit_config=lambda q: q.__setitem__("version", "gemv")),
        "bits": dict(edit_config=lambda q: q.__setitem__("bits", 8)),
    }
    d = broken(fixture, tmp_path, **edits[case])
    r = ktq("convert", d, tmp_path / "out", "--to", "bf16", "-q", check=False)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    if case in ("no_qzeros", "scales_shape", "qweight_dtype"):
        assert name in r.stderr and "model.safetensors" in r.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()
