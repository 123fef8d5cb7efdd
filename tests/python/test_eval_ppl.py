"""`ktq eval-ppl`, ktq's native forward pass, against independent references:
per-position next-token losses from Hugging Face transformers (float32,
tests/golden/forward_nll.json, made by tests/golden/make_forward_golden.py)
and the reference perplexities of ../shared/models/MANIFEST.json (the
README's protocol: 256-token windows over the first 131072 tokens)."""
import json
import os
import subprocess

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


def token_nll(model, tmp_path, *extra):
    out = tmp_path / "nll.bin"
    r = ktq("eval-ppl", model, "--text", EVAL, "-q", "--json", "--nll-out", out, *extra)
    return json.loads(r.stdout), np.fromfile(out, dtype=np.float64)


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
