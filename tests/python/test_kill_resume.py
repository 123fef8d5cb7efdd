"""Crash safety: `ktq convert` killed with SIGKILL at random points, then
run again with --resume, must produce output byte-identical to an
uninterrupted run, without redoing the layers its journal had recorded,
and a killed run must never leave an output that looks complete but is not.

KTQ_KILL_TRIALS sets the number of trials (default 20)."""
import json
import os
import random
import re
import subprocess
import sys
import time

import pytest

KTQ = os.environ.get("KTQ_BIN", "ktq")
HERE = os.path.dirname(os.path.abspath(__file__))
TRIALS = int(os.environ.get("KTQ_KILL_TRIALS", "20"))
CONVERT = ["convert", "--to", "bf16", "--max-shard-size", "60MB", "--threads", "2"]


def folder_bytes(path):
    return {name: open(os.path.join(path, name), "rb").read() for name in sorted(os.listdir(path))}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    src = root / "fp8"
    subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "bench", "make_synthetic_fp8.py"), str(src),
                    "--layers", "4", "--hidden", "1024", "--experts", "32", "--moe-intermediate", "512",
                    "--vocab", "8192", "--shard-gb", "0.1"], check=True, capture_output=True)
    # The kill window is the duration of a warm run: the best of three (a cold
    # first run would put most kills after the end).
    durations = []
    for run in range(3):
        ref = root / f"ref{run}"
        start = time.monotonic()
        subprocess.run([KTQ, CONVERT[0], str(src), str(ref), *CONVERT[1:], "--quiet"], check=True)
        durations.append(time.monotonic() - start)
    assert folder_bytes(root / "ref0") == folder_bytes(root / "ref2")
    return src, folder_bytes(root / "ref2"), min(durations)


def test_killed_runs_resume_to_identical_output(model, tmp_path):
    src, ref, duration = model
    rng = random.Random(1234)
    killed_midway = completed_before_kill = skipped_layers = 0
    for trial in range(TRIALS):
        out = tmp_path / f"t{trial}"
        p = subprocess.Popen([KTQ, CONVERT[0], str(src), str(out), *CONVERT[1:], "--quiet"])
        time.sleep(rng.uniform(0.0, duration))
        p.kill()
        p.wait()
        names = set(os.listdir(out)) if out.exists() else set()
        if "model.safetensors.index.json" in names:
            # Looks complete, so it must be complete (a kill after the last rename). The
            # completion marker (the journal, or its temporary file if the kill hit
            # while it was being replaced) is ktq's bookkeeping, not part of the model.
            without_marker = lambda files: {k: v for k, v in files.items() if not k.startswith(".ktq-journal.json")}
            assert without_marker(folder_bytes(out)) == without_marker(ref), \
                f"trial {trial}: output looks complete but differs"
            completed_before_kill += 1
        else:
            killed_midway += 1
        done = set()
        if ".ktq-journal.json" in names:
            with open(out / ".ktq-journal.json") as f:
                done = set(json.load(f)["layers_done"])
        r = subprocess.run([KTQ, CONVERT[0], str(src), str(out), *CONVERT[1:], "--resume"], capture_output=True,
                           text=True)
        assert r.returncode == 0, f"trial {trial}: resume failed: {r.stderr}"
        redone = {int(m) - 1 for m in re.findall(r"layer (\d+)/\d+", r.stderr)}
        assert not (redone & done), f"trial {trial}: layers {sorted(redone & done)} were journaled yet redone"
        skipped_layers += len({l for l in done if l >= 0})
        assert folder_bytes(out) == ref, f"trial {trial}: resumed output differs from the uninterrupted run"
    print(f"\n{TRIALS} kill trials: {killed_midway} killed mid-run, {completed_before_kill} finished before the kill, "
          f"{skipped_layers} journaled layers skipped on resume; all resumed byte-identical")
    assert killed_midway >= TRIALS // 3, "too few kills landed mid-run to test anything"


def test_resume_refuses_a_different_plan(model, tmp_path):
    src, _, _ = model
    out = tmp_path / "o"
    p = subprocess.Popen([KTQ, CONVERT[0], str(src), str(out), *CONVERT[1:], "--quiet"])
    time.sleep(0.05)
    p.kill()
    p.wait()
    if not (out / ".ktq-journal.json").exists():
        pytest.skip("the run ended before it wrote its journal")
    r = subprocess.run([KTQ, "convert", str(src), str(out), "--resume", "--max-shard-size", "1GB"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "another model or with other options" in r.stderr, r.stderr
    r = subprocess.run([KTQ, "convert", str(src), str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and "interrupted ktq conversion" in r.stderr, r.stderr
