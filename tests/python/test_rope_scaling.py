"""RoPE scaling in ktq's forward pass (linear, llama3, yarn; DeepSeek's yarn
with its mscale on the softmax scale): `ktq eval-ppl` on shared models whose
config asks for a scaled rope gives transformers' loss on the same tokens
(tests/golden/rope_scaling.json, made by
tests/golden/make_rope_scaling_golden.py with transformers in float32).
Every scaled case differs from the unscaled control by far more than the
tolerance, so ignoring a parameter fails. Unimplemented rope types are
refused by name."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from rope_variants import CASES, WINDOW, WINDOWS, make_variant  # noqa: E402

KTQ = os.environ.get("KTQ_BIN", "ktq")
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
EVAL = os.path.join(SHARED, "data", "eval.txt")
GOLDEN = json.load(open(os.path.join(os.path.dirname(__file__), "..", "golden", "rope_scaling.json")))

pytestmark = pytest.mark.skipif(not os.path.exists(EVAL), reason=f"shared data not found at {SHARED}")


def eval_ppl(model, check=True):
    r = subprocess.run([KTQ, "eval-ppl", str(model), "--text", EVAL, "--max-tokens", str(WINDOW * WINDOWS),
                        "--window", str(WINDOW), "--json", "-q"], capture_output=True, text=True)
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
