"""`--max-cpu-memory` (ktq_quantize_options.max_host_memory) for the
calibrating engines: under a limit the calibration activations move to a
temporary file, so the peak resident memory drops by about their size while
the output stays byte-identical; a layer that needs more than the limit on
its own stops the run with a message naming what it needs, before any
weight file is written."""
import json
import os
import re
import subprocess
import sys

import pytest

KTQ = os.environ.get("KTQ_BIN", "ktq")
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
MODEL = os.path.join(SHARED, "models", "tiny-qwen3-moe")
CALIB = os.path.join(SHARED, "data", "calib.txt")

pytestmark = [pytest.mark.skipif(not os.path.exists(CALIB), reason=f"shared data not found at {SHARED}"),
              pytest.mark.skipif(os.environ.get("KTQ_SANITIZED") == "1",
                                 reason="resident memory is measured in the release build")]

CAL = ["--dataset", CALIB, "--max-sequence-length", "512", "--calibration-batch", "1", "-q"]


# Linux records, when a process execs, the peak of the memory it replaces: a child forked from a large
# pytest process would report pytest's size. A small interpreter in between forks ktq and reports its peak.
MEASURE = r"""
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stdout.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}\n")
"""


def run(out, *extra, tmpdir=None, model=MODEL):
    """(return code, stderr, peak resident KiB) of one conversion."""
    env = dict(os.environ)
    if tmpdir:
        env["TMPDIR"] = str(tmpdir)
    r = subprocess.run([sys.executable, "-c", MEASURE, KTQ, "convert", model, str(out), "--to", "compressed-tensors",
                        *CAL, *map(str, extra)], capture_output=True, text=True, env=env)
    rc, peak = map(int, r.stdout.split())
    return rc, r.stderr, peak


# samples x 512 tokens x hidden 256 x 4 bytes of activations: 64 MiB for GPTQ, 4 MiB for AWQ. The limit is
# what the engine says one layer needs on its own (asked with a limit too small for it) plus half the
# activations: they no longer fit beside the layer, so they go to the file before layer 0 and the peak drops
# by about their size (GPTQ, measured 130 -> 60 MB; peak memory varies by +-15 MB between runs, hence the
# large sample). AWQ's recorded inputs dwarf its activations, so only its bytes are checked. A dense model:
# its layers all need the same (a MoE layer's recorded down inputs follow the routing), and the calibration
# costs a fifth of tiny-qwen3-moe's all-experts pass.
@pytest.mark.parametrize("engine,samples,drop_mib", [("gptq", 128, 32), ("awq", 8, None)])
def test_activations_spill_under_the_limit_same_bytes(engine, samples, drop_mib, tmp_path):
    dense = os.path.join(SHARED, "models", "tiny-llama")
    n = ["--num-calibration-samples", samples]
    rc, err, _ = run(tmp_path / "ask", "--engine", engine, *n, "--max-cpu-memory", "1MiB", model=dense)
    needs = re.search(r"needs about (\d+) MiB of host memory for layer 0", err)
    assert rc != 0 and needs, err
    limit = int(needs.group(1)) + samples * 512 * 256 * 4 // 2 // 2**20
    rc, err, free_rss = run(tmp_path / "free", "--engine", engine, *n, model=dense)
    assert rc == 0, err
    rc, err, capped_rss = run(tmp_path / "capped", "--engine", engine, *n, "--max-cpu-memory", f"{limit}MiB",
                              tmpdir=tmp_path, model=dense)
    assert rc == 0, err
    for f in ("model.safetensors", "config.json", "routing_stats.json"):
        assert (tmp_path / "capped" / f).read_bytes() == (tmp_path / "free" / f).read_bytes(), f
    # The report says where the activations were (the temporary file is unlinked as soon as it is made).
    acts = {run: json.load(open(tmp_path / run / f"{engine}_report.json"))["calibration_activations"]
            for run in ("free", "capped")}
    assert acts["free"] == {"bytes": samples * 512 * 256 * 4, "in_temporary_file": False}, acts
    assert acts["capped"] == {"bytes": samples * 512 * 256 * 4, "in_temporary_file": True}, acts
    if drop_mib:
        assert free_rss - capped_rss > drop_mib * 1024, (free_rss, capped_rss)
    assert not [f for f in os.listdir(tmp_path) if f.startswith("ktq-activations")]  # the file is gone


def test_a_layer_over_the_limit_stops_before_writing(tmp_path):
    rc, err, _ = run(tmp_path / "small", "--engine", "gptq", "--num-calibration-samples", 8, "--max-cpu-memory", "20MiB")
    assert rc != 0
    assert "host memory for layer 0" in err and "Hessians" in err and "limit is 20 MiB" in err, err
    assert not (tmp_path / "small" / "model.safetensors").exists()
    assert "Traceback" not in err and "terminate" not in err
