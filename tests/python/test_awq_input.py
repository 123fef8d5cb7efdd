"""AutoAWQ checkpoints (GEMM packing) as input: a fixture made with the
reference packing (tests/data/make_awq_fixture.py, numpy) reads back to
the exact dequantized weights through every writer; its experts re-packed
into kt-kernel's AWQ layout are kt-kernel's converter's bytes (golden) and
give back the same weights; bad AWQ files are refused naming the file and
tensor."""
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


# ---- kt-kernel's AWQ layout (--to kt --quant-method awq) ----

GOLDEN = os.path.join(HERE, "..", "golden", "kt_awq.json")


def sha256(path):
    import hashlib
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_kt_awq_layout_is_kt_kernels_bytes(fixture, tmp_path):
    """Every shard byte-identical to kt-kernel's own converter on this fixture
    (tests/golden/make_kt_awq_golden.sh), through both entry points and any
    thread or NUMA count (the AWQ layout has no NUMA split)."""
    golden = json.load(open(GOLDEN))["files"]
    ktq("convert", fixture / "model", tmp_path / "a", "--to", "kt", "--quant-method", "awq", "-q")
    ktq("convert-cpu-weights", "-i", fixture / "model", "--input-type", "awq", "-o", tmp_path / "b",
        "--quant-method", "awq", "--cpuinfer-threads", "1", "--threadpool-count", "1", "-q")
    for out in ("a", "b"):
        got = {f: sha256(tmp_path / out / f) for f in os.listdir(tmp_path / out) if f.endswith(".safetensors")}
        assert got == golden, out


def nibbles(words):
    w = np.asarray(words).view(np.uint32)
    return np.stack([(w >> (4 * j)) & 15 for j in range(8)], axis=-1).reshape(*w.shape[:-1], -1)


def test_kt_awq_values_are_the_checkpoints(fixture, tmp_path):
    """Independently of the golden: the re-packed codes, zeros and scales give
    back the fixture's dequantized weights."""
    ktq("convert", fixture / "model", tmp_path / "kt", "--to", "kt", "--quant-method", "awq", "-q")
    expected = safetensors_numpy.load_file(str(fixture / "expected.safetensors"))
    shard = safetensors_numpy.load_file(str(tmp_path / "kt" / "model-00002-of-00004.safetensors"))
    for e, proj in ((0, "gate"), (7, "up"), (15, "down")):
        k = f"blk.1.ffn_{proj}_exps.{e}."
        q = nibbles(shard[k + "weight"]).astype(np.float32)            # [out, in]
        z = nibbles(shard[k + "qzeros"]).astype(np.float32)            # [groups, out]
        s = shard[k + "scale"].astype(np.float32).reshape(z.shape)      # [groups, out]
        g = q.shape[1] // z.shape[0]
        w = ((q - np.repeat(z.T, g, axis=1)) * np.repeat(s.T, g, axis=1)).astype(np.float16)
        want = expected[f"model.layers.1.mlp.experts.{e}.{proj}_proj.weight"]
        assert np.array_equal(w, want), k
    rest = safetensors_numpy.load_file(str(tmp_path / "kt" / "model-00004-of-00004.safetensors"))
    assert "blk.0.self_attn.q_proj.qweight" in rest and "embed_tokens.weight" in rest


def test_kt_awq_refusals(fixture, tmp_path):
    r = ktq("convert", os.path.join(MODELS, "tiny-qwen3-moe"), tmp_path / "a", "--to", "kt", "--quant-method", "awq",
            check=False)
    assert r.returncode != 0 and "not AutoAWQ-packed" in r.stderr
    r = ktq("convert", fixture / "model", tmp_path / "b", "--to", "kt", "--quant-method", "awq",
            "--no-merge-safetensor", check=False)
    assert r.returncode != 0 and "no loose files" in r.stderr
    r = ktq("convert-cpu-weights", "-i", os.path.join(MODELS, "tiny-qwen3-moe"), "--input-type", "awq", "-o",
            tmp_path / "c", "--quant-method", "awq", check=False)
    assert r.returncode != 0 and "--input-type awq" in r.stderr
    for d in ("a", "b", "c"):
        assert not any(f.endswith(".safetensors") for f in os.listdir(tmp_path / d)) if (tmp_path / d).exists() else True
