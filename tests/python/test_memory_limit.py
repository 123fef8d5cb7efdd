"""`--max-cpu-memory` (ktq_quantize_options.max_host_memory) for the
calibrating engines: under a limit the calibration activations move to a
temporary file, so the peak resident memory drops by about their size while
the output stays byte-identical; a layer that needs more than the limit on
its own stops the run with a message naming what it needs, before any
weight file is written."""
import os
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


def run(out, *extra, tmpdir=None):
    """(return code, stderr, peak resident KiB) of one conversion."""
    env = dict(os.environ)
    if tmpdir:
        env["TMPDIR"] = str(tmpdir)
    r = subprocess.run([sys.executable, "-c", MEASURE, KTQ, "convert", MODEL, str(out), "--to", "compressed-tensors",
                        *CAL, *map(str, extra)], capture_output=True, text=True, env=env)
    rc, peak = map(int, r.stdout.split())
    return rc, r.stderr, peak


# samples x 512 tokens x hidden 256 x 4 bytes of activations: 64 MiB for GPTQ, 16 MiB for AWQ. GPTQ's limit
# is above what a layer needs on its own (about 47 MiB) and below twice the activations, so they go to the
# file from the start and the peak drops by about their size (measured 140-151 MB -> 107-121 MB at 64
# samples: peak memory varies by +-15 MB between runs, hence the large sample). AWQ's is above its layer's
# needs (about 185 MiB, 64 of them each expert's routed down inputs) and below that plus the activations,
# so they move at layer 0: the bytes are checked.
@pytest.mark.parametrize("engine,samples,limit,drop_mib", [("gptq", 128, "100MiB", 32), ("awq", 32, "192MiB", None)])
def test_activations_spill_under_the_limit_same_bytes(engine, samples, limit, drop_mib, tmp_path):
    n = ["--num-calibration-samples", samples]
    rc, err, free_rss = run(tmp_path / "free", "--engine", engine, *n)
    assert rc == 0, err
    rc, err, capped_rss = run(tmp_path / "capped", "--engine", engine, *n, "--max-cpu-memory", limit, tmpdir=tmp_path)
    assert rc == 0, err
    for f in ("model.safetensors", "config.json", "routing_stats.json"):
        assert (tmp_path / "capped" / f).read_bytes() == (tmp_path / "free" / f).read_bytes(), f
    if drop_mib:
        assert free_rss - capped_rss > drop_mib * 1024, (free_rss, capped_rss)
    assert not [f for f in os.listdir(tmp_path) if f.startswith("ktq-activations")]  # the file is gone


def test_a_layer_over_the_limit_stops_before_writing(tmp_path):
    rc, err, _ = run(tmp_path / "small", "--engine", "gptq", "--num-calibration-samples", 8, "--max-cpu-memory", "20MiB")
    assert rc != 0
    assert "host memory for layer 0" in err and "Hessians" in err and "limit is 20 MiB" in err, err
    assert not (tmp_path / "small" / "model.safetensors").exists()
    assert "Traceback" not in err and "terminate" not in err
