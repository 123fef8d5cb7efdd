"""Crash safety: `ktq convert` killed with SIGKILL at random points, then
run again with --resume, must produce output byte-identical to an
uninterrupted run, without redoing the layers its journal had recorded,
and a killed run must never leave an output that looks complete but is not.
For the BF16 format, kt-kernel's AMX format (merged and loose) and
compressed-tensors.

KTQ_KILL_TRIALS sets the number of trials of the BF16 format (default 20;
the kt layouts get half each, the --no-layer-sync run a quarter)."""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

import pytest

KTQ = os.environ.get("KTQ_BIN", "ktq")
HERE = os.path.dirname(os.path.abspath(__file__))
TRIALS = int(os.environ.get("KTQ_KILL_TRIALS", "20"))
FORMATS = {
    "bf16": (["convert", "--to", "bf16", "--max-shard-size", "60MB", "--threads", "2"], TRIALS),
    "kt": (["convert", "--format", "kt", "--quant-method", "int4", "--threads", "2"], max(1, TRIALS // 2)),
    "kt-loose": (["convert", "--format", "kt", "--quant-method", "int8", "--no-merge-safetensor", "--threads", "2"],
                 max(1, TRIALS // 2)),
    "ct": (["convert", "--to", "compressed-tensors", "--scheme", "W4A16", "--max-shard-size", "60MB", "--threads", "2"],
           max(1, TRIALS // 2)),
    # Without the per-layer fdatasync, a killed process loses nothing the page cache holds.
    "kt-no-layer-sync": (["convert", "--format", "kt", "--quant-method", "int4", "--no-layer-sync", "--threads", "2"],
                         max(1, TRIALS // 4)),
}


def folder_bytes(path):
    """Every file below `path` (relative name -> bytes)."""
    out = {}
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            out[os.path.relpath(full, path)] = open(full, "rb").read()
    return dict(sorted(out.items()))


def looks_complete(names, ref_names):
    """What a user or kt-kernel's loader would take for a finished output: the
    index, or every layer folder of the loose layout."""
    layers = lambda ns: {n.split("/")[0] for n in ns if n.startswith("_layer_")}
    if "model.safetensors.index.json" in ref_names:
        return "model.safetensors.index.json" in names
    return bool(layers(ref_names)) and layers(names) >= layers(ref_names)


@pytest.fixture(scope="module")
def synthetic_fp8(tmp_path_factory):
    src = tmp_path_factory.mktemp("kill") / "fp8"
    subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "bench", "make_synthetic_fp8.py"), str(src),
                    "--layers", "4", "--hidden", "1024", "--experts", "16", "--moe-intermediate", "512",
                    "--vocab", "8192", "--shard-gb", "0.1"], check=True, capture_output=True)
    return src


@pytest.fixture(scope="module", params=list(FORMATS))
def model(request, synthetic_fp8, tmp_path_factory):
    global CONVERT
    CONVERT, trials = FORMATS[request.param]
    src = synthetic_fp8
    root = tmp_path_factory.mktemp("ref-" + request.param)
    # The kill window is the duration of a warm run: the best of three (a cold first run would put most
    # kills after the end); under the sanitizers, the better of two.
    durations = []
    runs = 2 if os.environ.get("KTQ_SANITIZED") == "1" else 3
    for run in range(runs):
        ref = root / f"ref{run}"
        start = time.monotonic()
        subprocess.run([KTQ, CONVERT[0], str(src), str(ref), *CONVERT[1:], "--quiet"], check=True)
        durations.append(time.monotonic() - start)
    ref = folder_bytes(root / f"ref{runs - 1}")
    assert folder_bytes(root / "ref0") == ref
    # The references are held in memory from here on; the folders would only
    # fill the disk (each format's outputs are hundreds of MB).
    shutil.rmtree(root)
    yield src, ref, min(durations), trials


def test_killed_runs_resume_to_identical_output(model, tmp_path):
    src, ref, duration, trials = model
    rng = random.Random(1234)
    killed_midway = completed_before_kill = skipped_layers = 0
    for trial in range(trials):
        out = tmp_path / f"t{trial}"
        p = subprocess.Popen([KTQ, CONVERT[0], str(src), str(out), *CONVERT[1:], "--quiet"])
        time.sleep(rng.uniform(0.0, duration))
        p.kill()
        p.wait()
        names = set(folder_bytes(out)) if out.exists() else set()
        if looks_complete(names, set(ref)):
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
        shutil.rmtree(out)  # 20 trials of a 270 MB output would otherwise stay on disk until pytest ends
    print(f"\n{CONVERT[1:4]}: {trials} kill trials: {killed_midway} killed mid-run, {completed_before_kill} finished before the kill, "
          f"{skipped_layers} journaled layers skipped on resume; all resumed byte-identical")
    assert killed_midway >= trials // 3, "too few kills landed mid-run to test anything"


def test_resume_refuses_a_different_plan(model, tmp_path):
    src, _, _, _ = model
    out = tmp_path / "o"
    p = subprocess.Popen([KTQ, CONVERT[0], str(src), str(out), *CONVERT[1:], "--quiet"])
    time.sleep(0.05)
    p.kill()
    p.wait()
    if not (out / ".ktq-journal.json").exists():
        pytest.skip("the run ended before it wrote its journal")
    # Same format, other options: bf16 with another shard size, kt with another NUMA split.
    other = ["--to", "bf16", "--max-shard-size", "1GB"] if "bf16" in CONVERT else \
        [*CONVERT[1:], "--group-size", "64"] if "compressed-tensors" in CONVERT else \
        [*CONVERT[1:], "--threadpool-count", "1"]
    r = subprocess.run([KTQ, "convert", str(src), str(out), *other, "--resume"], capture_output=True, text=True)
    assert r.returncode == 1 and "another model or with other options" in r.stderr, r.stderr
    r = subprocess.run([KTQ, CONVERT[0], str(src), str(out), *CONVERT[1:]], capture_output=True, text=True)
    assert r.returncode == 1 and "interrupted ktq conversion" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def synthetic_qwen3(tmp_path_factory):
    src = tmp_path_factory.mktemp("kill-gguf") / "qwen3"
    subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "bench", "make_synthetic_bf16_moe.py"), str(src),
                    "--hidden", "1024", "--moe-intermediate", "512", "--experts", "12", "--layers", "4"], check=True,
                   capture_output=True)
    shared = os.environ.get("KTQ_SHARED_DIR", os.path.join(HERE, "..", "..", "..", "shared"))
    tok = os.path.join(shared, "models", "tiny-qwen3-moe", "tokenizer.json")
    if not os.path.exists(tok):
        pytest.skip("needs the shared tiny-qwen3-moe tokenizer.json (a GGUF file carries the tokenizer)")
    with open(tok, "rb") as f, open(src / "tokenizer.json", "wb") as g:
        g.write(f.read())
    return src


def test_gguf_killed_runs_resume_to_identical_file(synthetic_qwen3, tmp_path):
    """GGUF is one file: a killed run never leaves it under its final name
    half-written, and --resume finishes it byte-identical."""
    src = synthetic_qwen3
    convert = [KTQ, "convert", str(src)]
    opts = ["--to", "gguf", "--type", "Q4_K", "--threads", "2", "--quiet"]
    start = time.monotonic()
    subprocess.run([*convert, str(tmp_path / "ref.gguf"), *opts], check=True)
    duration = time.monotonic() - start
    ref = (tmp_path / "ref.gguf").read_bytes()
    rng = random.Random(99)
    trials, midway = max(2, TRIALS // 4), 0
    for trial in range(trials):
        out = tmp_path / f"t{trial}.gguf"
        p = subprocess.Popen([*convert, str(out), *opts])
        time.sleep(rng.uniform(0.0, duration))
        p.kill()
        p.wait()
        work = tmp_path / f"t{trial}.gguf.ktq-work"
        if out.exists():
            assert out.read_bytes() == ref, f"trial {trial}: a file with the final name but not the final bytes"
        else:
            midway += 1
        if work.exists() or not out.exists():
            r = subprocess.run([*convert, str(out), *opts, "--resume"], capture_output=True, text=True)
            assert r.returncode == 0, f"trial {trial}: resume failed: {r.stderr}"
        assert out.read_bytes() == ref, f"trial {trial}: resumed file differs"
        assert not work.exists(), f"trial {trial}: work folder left behind"
        out.unlink()
    assert midway >= 1, "no kill landed mid-run"
