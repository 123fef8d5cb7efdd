"""`ktq eval-ppl`, ktq's native forward pass, against independent references:
per-position next-token losses from Hugging Face transformers (float32,
tests/golden/forward_nll.json, made by tests/golden/make_forward_golden.py)
and the reference perplexities of ../shared/models/MANIFEST.json (the
README's protocol: 256-token windows over the first 131072 tokens)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

KTQ = os.environ.get("KTQ_BIN", "ktq")
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
REPO = os.environ.get("KTQ_REPO", os.path.join(os.path.dirname(__file__), "../.."))
MODELS = os.path.join(SHARED, "models")
EVAL = os.path.join(SHARED, "data", "eval.txt")
GOLDEN = os.path.join(REPO, "tests", "golden", "forward_nll.json")

pytestmark = pytest.mark.skipif(not os.path.exists(EVAL), reason=f"shared data not found at {SHARED}")


def ktq(*args, check=True):
    r = subprocess.run([KTQ, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"ktq {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


# KTQ_EVAL_DEVICE=cuda runs these checks on the GPU forward (on the GPU host: tests/interop/README.md).
DEVICE = ("--device", os.environ["KTQ_EVAL_DEVICE"]) if os.environ.get("KTQ_EVAL_DEVICE") else ()


def token_nll(model, tmp_path, *extra):
    out = tmp_path / "nll.bin"
    r = ktq("eval-ppl", model, "--text", EVAL, "-q", "--json", "--nll-out", out, *DEVICE, *extra)
    return json.loads(r.stdout), np.fromfile(out, dtype=np.float64)


# The sanitized builds run the per-position checks (every code path of the
# forward pass); the full-protocol perplexities (a minute of compute each
# under AddressSanitizer) only repeat the release build's measurements.
SANITIZED = os.environ.get("KTQ_SANITIZED") == "1"
release_only = pytest.mark.skipif(SANITIZED, reason="full-protocol perplexity: measured in the release build")
# Reading other formats' weights over a checkpoint: the sanitized builds run the same conversions and reads
# over fewer tokens, and keep the checks that hold at any length (exact equality, refusals); the bounds on
# quality need the release build's longer text.
OVER_TOKENS_KT, OVER_TOKENS_GGUF = (2048, 1024) if SANITIZED else (32768, 8192)

with open(GOLDEN) as f:
    GOLD = json.load(f)


@pytest.mark.parametrize("name", sorted(GOLD["models"]))
def test_losses_match_transformers_float32(name, tmp_path):
    window, windows = GOLD["window"], GOLD["windows"]
    result, nll = token_nll(os.path.join(MODELS, name), tmp_path, "--window", window, "--max-tokens", window * windows)
    ref = np.array(GOLD["models"][name]["nll"])
    assert result["tokens_scored"] == len(ref) == windows * (window - 1)
    # float32 end to end on both sides, different summation orders.
    assert np.abs(nll - ref).max() < 1e-4, np.abs(nll - ref).max()
    assert abs(result["mean_nll"] - ref.mean()) < 1e-5


def manifest():
    with open(os.path.join(MODELS, "MANIFEST.json")) as f:
        return json.load(f)


@release_only
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen3-moe", "tiny-mixtral", "tiny-deepseek-v3",
                                  "tiny-deepseek-v3-fp8"])
def test_reference_perplexity_within_half_a_percent(name, tmp_path):
    ref = manifest()[name]["eval_ppl"]
    result, nll = token_nll(os.path.join(MODELS, name), tmp_path)
    assert result["windows"] == 512 and result["tokens_scored"] == 512 * 255 == len(nll)
    assert abs(result["perplexity"] - ref) / ref < 0.005, (result["perplexity"], ref)
    assert abs(np.exp(nll.mean()) - result["perplexity"]) < 1e-9 * ref


def test_same_losses_whatever_the_thread_count(tmp_path):
    model = os.path.join(MODELS, "tiny-qwen3-moe")
    _, one = token_nll(model, tmp_path, "--max-tokens", 4096, "--threads", 1)
    _, two = token_nll(model, tmp_path, "--max-tokens", 4096, "--threads", 3)
    assert one.tobytes() == two.tobytes()


def test_text_shorter_than_a_window_is_a_clear_error(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("a few words only")
    r = ktq("eval-ppl", os.path.join(MODELS, "tiny-llama"), "--text", short, "-q", check=False)
    assert r.returncode == 1
    assert "fewer than one window of 256" in r.stderr


def test_unsupported_architecture_is_named(tmp_path):
    src = os.path.join(MODELS, "tiny-llama")
    dst = tmp_path / "model"
    dst.mkdir()
    for f in os.listdir(src):
        os.symlink(os.path.join(src, f), dst / f)
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 10000.0}
    (dst / "config.json").unlink()
    (dst / "config.json").write_text(json.dumps(cfg))
    r = ktq("eval-ppl", dst, "--text", EVAL, "-q", "--max-tokens", 512, check=False)
    assert r.returncode == 1
    assert "longrope" in r.stderr and "config.json" in r.stderr


# transformers' perplexity (through compressed-tensors' decompressor) of ktq's
# RTN W4A16 outputs, whose bytes equal llm-compressor's
# (tests/interop/gptq_ppl_table.sh, RTN column; transformers 5.17, CPU).
CT_REFERENCE = {"tiny-qwen3-moe": 23.460, "tiny-llama": 24.132}


@release_only
@pytest.mark.parametrize("name", sorted(CT_REFERENCE))
def test_compressed_tensors_output_read_natively(name, tmp_path):
    out = tmp_path / "w4a16"
    ktq("convert", os.path.join(MODELS, name), out, "--to", "compressed-tensors", "-q")
    result, _ = token_nll(out, tmp_path)
    assert abs(result["perplexity"] - CT_REFERENCE[name]) < 0.01, result["perplexity"]


def test_compressed_tensors_input_dequantized_exactly(tmp_path):
    """Zero points (asymmetric) and per-channel W8: the reader's weights are
    (code - zp) * scale in BF16, computed here independently with numpy."""
    import ml_dtypes  # noqa: F401
    from safetensors.numpy import load_file

    src = os.path.join(MODELS, "tiny-qwen3-moe")
    for args in (["--scheme", "W4A16", "--asymmetric", "--group-size", "64"], ["--scheme", "W8A16", "--group-size", "-1"]):
        ct = tmp_path / ("ct" + args[1])
        ktq("convert", src, ct, "--to", "compressed-tensors", "-q", *args)
        back = tmp_path / ("bf16" + args[1])
        ktq("convert", ct, back, "--to", "bf16", "-q")
        q = load_file(str(ct / "model.safetensors"))
        b = load_file(str(back / "model.safetensors"))
        cfg = json.load(open(back / "config.json"))
        assert "quantization_config" not in cfg
        bits = 4 if args[1] == "W4A16" else 8
        checked = 0
        for name in q:
            if not name.endswith(".weight_packed"):
                continue
            base = name[: -len(".weight_packed")]
            rows, cols = q[base + ".weight_shape"].tolist()
            words = q[name].view(np.uint32)
            per = 32 // bits
            codes = np.zeros((rows, words.shape[1] * per), dtype=np.int64)
            for j in range(per):
                codes[:, j::per] = (words >> (bits * j)) & ((1 << bits) - 1)
            codes = codes[:, :cols] - (1 << (bits - 1))
            scale = q[base + ".weight_scale"].astype(np.float32)
            groups = scale.shape[1]
            zp = np.zeros((rows, groups), dtype=np.int64)
            if base + ".weight_zero_point" in q:
                zw = q[base + ".weight_zero_point"].view(np.uint32)  # packed along the rows
                for r in range(rows):
                    pos = r * bits
                    zp[r] = ((zw[pos // 32] >> (pos % 32)) & ((1 << bits) - 1)).astype(np.int64) - (1 << (bits - 1))
            s = np.repeat(scale, cols // groups, axis=1)
            z = np.repeat(zp, cols // groups, axis=1)
            d = (codes - z).astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
            want = (d * s).astype(ml_dtypes.bfloat16)
            assert np.array_equal(b[base + ".weight"].view(np.uint16), want.view(np.uint16)), base
            checked += 1
        assert checked == 3 * 16 * 3


def test_kt_kernel_output_read_over_the_checkpoint(tmp_path):
    """--kt-experts: the routed experts of a kt-kernel AMX output (dequantized
    code x scale, NUMA parts put back together) replace the checkpoint's. INT8
    must stay as close to BF16 as compressed-tensors W8A16 does (<= 0.1 %),
    INT4 (one scale per row) further off but near; a kt output of another
    model is refused naming the part."""
    src = os.path.join(MODELS, "tiny-qwen3-moe")
    base = json.loads(ktq("eval-ppl", src, "--text", EVAL, "--max-tokens", OVER_TOKENS_KT, "--json", "-q").stdout)["perplexity"]
    ppl = {}
    for method, extra in (("int8", []), ("int4", ["--loose"])):
        out = tmp_path / method
        ktq("convert", src, out, "--to", "kt", "--quant-method", method, "-q", *extra)
        r = ktq("eval-ppl", src, "--text", EVAL, "--max-tokens", OVER_TOKENS_KT, "--json", "-q", "--kt-experts", out)
        ppl[method] = json.loads(r.stdout)["perplexity"]
    assert ppl["int8"] != base and ppl["int4"] != ppl["int8"], (ppl, base)  # the experts were replaced
    if not SANITIZED:
        assert abs(ppl["int8"] / base - 1) < 0.001, (ppl, base)
        assert ppl["int8"] < ppl["int4"] < base * 1.03, (ppl, base)
    r = ktq("eval-ppl", os.path.join(MODELS, "tiny-mixtral"), "--text", EVAL, "--max-tokens", 1024, "-q",
            "--kt-experts", tmp_path / "int8", check=False)
    assert r.returncode != 0 and "blk.0.ffn_gate_exps.0.numa.0" in r.stderr and "another model" in r.stderr, r.stderr


def test_gguf_weights_read_over_the_checkpoint(tmp_path):
    """--gguf: every weight of a GGUF file (dequantized, llama's Q/K
    permutation undone, experts stacked or split) replaces the checkpoint's.
    A file in the checkpoint's own dtype gives its perplexity exactly; Q8_0
    stays within 0.2 %, the Q4_K_M mixture further off but near; a GGUF of
    another model, or a truncated one, is refused naming the tensor or field."""
    for name, half, layout in (("tiny-llama", "BF16", "stacked"), ("tiny-mixtral", "F16", "split"),
                               ("tiny-deepseek-v3", "BF16", "stacked")):
        src = os.path.join(MODELS, name)
        run = lambda *extra: json.loads(ktq("eval-ppl", src, "--text", EVAL, "--max-tokens", OVER_TOKENS_GGUF, "--json", "-q",
                                            *extra).stdout)["perplexity"]
        base = run()
        ppl = {}
        for t in (half, "Q8_0", "Q4_K_M"):
            out = tmp_path / f"{name}-{t}.gguf"
            ktq("convert", src, out, "--to", "gguf", "--type", t, "--expert-layout", layout, "-q")
            ppl[t] = run("--gguf", out)
        assert ppl[half] == base, (name, ppl, base)
        assert ppl["Q8_0"] != base and ppl["Q4_K_M"] != ppl["Q8_0"], (name, ppl, base)
        if not SANITIZED:
            assert abs(ppl["Q8_0"] / base - 1) < 0.002, (name, ppl, base)
            assert abs(ppl["Q4_K_M"] / base - 1) < 0.05, (name, ppl, base)
    r = ktq("eval-ppl", os.path.join(MODELS, "tiny-qwen3-moe"), "--text", EVAL, "--max-tokens", 1024, "-q",
            "--gguf", tmp_path / "tiny-llama-Q8_0.gguf", check=False)
    assert r.returncode != 0 and "no tensor 'blk.0.ffn_gate_inp.weight'" in r.stderr and "another model" in r.stderr, r.stderr
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes((tmp_path / "tiny-llama-Q8_0.gguf").read_bytes()[:5000])
    r = ktq("eval-ppl", os.path.join(MODELS, "tiny-llama"), "--text", EVAL, "--max-tokens", 1024, "-q",
            "--gguf", truncated, check=False)
    assert r.returncode != 0 and "cut.gguf: truncated GGUF header" in r.stderr, r.stderr


@pytest.mark.skipif(not DEVICE, reason="GPU forward check: KTQ_EVAL_DEVICE=cuda on the GPU host")
def test_device_forward_matches_the_cpu_on_qwen2_moe(tmp_path):
    """The one architecture no shared model has (tests/data/make_tiny_qwen2_moe.py): q/k/v biases and the
    shared expert's sigmoid gate, on the GPU forward against the CPU's, position by position."""
    src = tmp_path / "tiny-qwen2-moe"
    subprocess.run([sys.executable, os.path.join(REPO, "tests", "data", "make_tiny_qwen2_moe.py"), MODELS, str(src)],
                   check=True, capture_output=True)
    losses = {}
    for dev in ("cpu", DEVICE[1]):
        out = tmp_path / f"nll-{dev}.bin"
        ktq("eval-ppl", src, "--text", EVAL, "-q", "--json", "--max-tokens", 8192, "--nll-out", out, "--device", dev)
        losses[dev] = np.fromfile(out, dtype=np.float64)
    cpu, dev = losses["cpu"], losses[DEVICE[1]]
    assert len(cpu) == len(dev) == 32 * 255
    assert np.abs(cpu - dev).max() < 2e-4, np.abs(cpu - dev).max()
