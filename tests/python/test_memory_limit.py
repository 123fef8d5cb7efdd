"""`--max-cpu-memory` (ktq_quantize_options.max_host_memory) for the
calibrating engines: under a limit the calibration activations move to a
temporary file, so the peak resident memory drops by about their size while
the output stays byte-identical; under a lower one AWQ's recorded inputs go
to temporary files too; a layer that needs more than the limit on its own
stops the run with a message naming what it needs, before any weight file
is written."""
import functools
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

pytestmark = pytest.mark.skipif(not os.path.exists(CALIB), reason=f"shared data not found at {SHARED}")
release_only = pytest.mark.skipif(os.environ.get("KTQ_SANITIZED") == "1",
                                  reason="resident memory and the limits' arithmetic are the release build's to check")

# Two threads whatever the machine: per-thread buffers and the allocator's per-thread arenas move the peak.
CAL = ["--dataset", CALIB, "--calibration-batch", "1", "--threads", "2", "-q"]


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


def run(out, *extra, tmpdir=None, model=MODEL, seq=512):
    """(return code, stderr, peak resident KiB) of one conversion."""
    env = dict(os.environ)
    if tmpdir:
        env["TMPDIR"] = str(tmpdir)
    r = subprocess.run([sys.executable, "-c", MEASURE, KTQ, "convert", model, str(out), "--to", "compressed-tensors",
                        *CAL, "--max-sequence-length", str(seq), *map(str, extra)], capture_output=True, text=True, env=env)
    rc, peak = map(int, r.stdout.split())
    return rc, r.stderr, peak


DENSE = os.path.join(SHARED, "models", "tiny-llama")


def activation_mib(samples):
    return samples * 512 * 256 * 4 // 2**20  # samples x 512 tokens x hidden 256 x float32


def least_needs(engine, samples, tmp_path):
    """(MiB, message) the engine says one layer needs at the least, asked with a limit far too small."""
    rc, err, _ = run(tmp_path / "ask", "--engine", engine, "--num-calibration-samples", samples, "--max-cpu-memory",
                     "1MiB", model=DENSE)
    needs = re.search(r"needs about (\d+) MiB of host memory for layer 0", err)
    assert rc != 0 and needs, err
    return int(needs.group(1)), err


def same_outputs(a, b, engine):
    for f in ("model.safetensors", "config.json", "routing_stats.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    return json.load(open(b / f"{engine}_report.json"))


# GPTQ: the limit is what a layer needs plus half the activations (64 MiB at 128 samples): they no longer
# fit beside the layer, so they go to the file before layer 0 and the peak drops by about their size
# (measured 130 -> 60 MB; peak memory varies by +-15 MB between runs, hence the large sample). A dense
# model: its layers all need the same, and its calibration costs a fifth of tiny-qwen3-moe's all-experts pass.
@release_only
def test_gptq_activations_spill_under_the_limit_same_bytes(tmp_path):
    samples = 128
    needs, _ = least_needs("gptq", samples, tmp_path)
    rc, err, free_rss = run(tmp_path / "free", "--engine", "gptq", "--num-calibration-samples", samples, model=DENSE)
    assert rc == 0, err
    limit = needs + activation_mib(samples) // 2
    rc, err, capped_rss = run(tmp_path / "capped", "--engine", "gptq", "--num-calibration-samples", samples,
                              "--max-cpu-memory", f"{limit}MiB", tmpdir=tmp_path, model=DENSE)
    assert rc == 0, err
    report = same_outputs(tmp_path / "free", tmp_path / "capped", "gptq")
    # The report says where the activations were (the temporary file is unlinked as soon as it is made).
    assert report["calibration_activations"] == {"bytes": activation_mib(samples) << 20, "in_temporary_file": True}
    free_report = json.load(open(tmp_path / "free" / "gptq_report.json"))
    assert free_report["calibration_activations"]["in_temporary_file"] is False
    assert free_rss - capped_rss > activation_mib(samples) // 2 * 1024, (free_rss, capped_rss)
    assert not [f for f in os.listdir(tmp_path) if f.startswith("ktq-")]  # the files are gone


# AWQ records each mapping's inputs for its searches (7 values per token and hidden channel here, far more
# than the activations). A limit above all of it plus half the activations moves only the activations; one
# that the recorded inputs do not fit under puts them in temporary files too (memory-mapped), and the
# engine's message then counts only what stays in memory. Same bytes in every case; the report says which.
@release_only
def test_awq_recorded_inputs_move_to_files_under_a_lower_limit(tmp_path):
    samples = 16
    needs, err = least_needs("awq", samples, tmp_path)
    recorded = re.search(r"the recorded inputs, (\d+) MiB, in a temporary file", err)
    assert recorded and int(recorded.group(1)) > 4 * activation_mib(samples), err
    recorded = int(recorded.group(1))
    n = ["--engine", "awq", "--num-calibration-samples", samples]
    rc, err, _ = run(tmp_path / "free", *n, model=DENSE)
    assert rc == 0, err
    layers = json.load(open(os.path.join(DENSE, "config.json")))["num_hidden_layers"]
    half = activation_mib(samples) // 2
    for label, limit, in_files in (("activations", needs + 1 + recorded + half, []),
                                   ("both", needs + half, list(range(layers)))):
        rc, err, _ = run(tmp_path / label, *n, "--max-cpu-memory", f"{limit}MiB", tmpdir=tmp_path, model=DENSE)
        assert rc == 0, (label, err)
        report = same_outputs(tmp_path / "free", tmp_path / label, "awq")
        assert report["calibration_activations"]["in_temporary_file"] is True, label
        assert report["recorded_inputs_in_temporary_file"] == in_files, (label, report["recorded_inputs_in_temporary_file"])
    assert json.load(open(tmp_path / "free" / "awq_report.json"))["recorded_inputs_in_temporary_file"] == []
    assert not [f for f in os.listdir(tmp_path) if f.startswith("ktq-")]


# MoE (each routed expert's down inputs in a file of its own) with the clipping search, which divides the
# recorded rows in place: also run under the sanitizers (on 2 x 128 tokens there, whose 0.25 MiB of
# activations stay in memory), with the smallest limit the layer accepts.
def test_awq_moe_recorded_inputs_in_files_with_clipping(tmp_path):
    sanitized = os.environ.get("KTQ_SANITIZED") == "1"
    samples, seq = (2, 128) if sanitized else (8, 512)
    n = ["--engine", "awq", "--awq-clip", "--num-calibration-samples", samples]
    run = functools.partial(globals()["run"], seq=seq)
    rc, err, _ = run(tmp_path / "ask", *n, "--max-cpu-memory", "1MiB")
    needs = re.search(r"needs about (\d+) MiB of host memory for layer 0", err)
    assert rc != 0 and needs and "the recorded inputs," in err, err
    rc, err, _ = run(tmp_path / "capped", *n, "--max-cpu-memory", f"{int(needs.group(1)) + 1}MiB", tmpdir=tmp_path)
    assert rc == 0, err
    if sanitized:  # memory errors are what this build looks for: the bytes are compared in the release build
        report = json.load(open(tmp_path / "capped" / "awq_report.json"))
    else:
        rc, err, _ = run(tmp_path / "free", *n)
        assert rc == 0, err
        report = same_outputs(tmp_path / "free", tmp_path / "capped", "awq")
    assert report["recorded_inputs_in_temporary_file"] == [0, 1, 2] and report["clipped_groups_total"] > 0, report
    assert report["calibration_activations"]["in_temporary_file"] is not sanitized
    assert not [f for f in os.listdir(tmp_path) if f.startswith("ktq-")]


def test_a_layer_over_the_limit_stops_before_writing(tmp_path):
    rc, err, _ = run(tmp_path / "small", "--engine", "gptq", "--num-calibration-samples", 8, "--max-cpu-memory", "20MiB")
    assert rc != 0
    assert "host memory for layer 0" in err and "Hessians" in err and "limit is 20 MiB" in err, err
    assert not (tmp_path / "small" / "model.safetensors").exists()
    assert "Traceback" not in err and "terminate" not in err
