"""The `ktq` command line, checked from the outside: its outputs are read by
the independent Python safetensors reader (check_bf16_convert.py) and its JSON
by the json module."""
import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import check_bf16_convert  # noqa: E402

KTQ = os.environ.get("KTQ_BIN", "ktq")
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
REPO = os.environ.get("KTQ_REPO", os.path.join(os.path.dirname(__file__), "../.."))
MODELS = os.path.join(SHARED, "models")

needs_shared = pytest.mark.skipif(not os.path.isdir(MODELS), reason=f"shared models not found at {MODELS}")


def shared_model(name):
    """Path of a shared test model; skips the test (with the reason) when absent."""
    path = os.path.join(MODELS, name)
    if not os.path.exists(os.path.join(path, "config.json")):
        pytest.skip(f"shared model {name} not found in {MODELS}")
    return path


def ktq(*args, check=True):
    r = subprocess.run([KTQ, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"ktq {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


def verify(src, out):
    sys.argv = ["check", str(src), str(out)]
    check_bf16_convert.main()


@needs_shared
@pytest.mark.parametrize("model,shard", [("tiny-deepseek-v3-fp8", None), ("tiny-deepseek-v3-fp8", "2MB"),
                                         ("tiny-mixtral", None), ("tiny-qwen3-moe", "5MB")])
def test_convert_matches_independent_reference(tmp_path, model, shard):
    src = shared_model(model)
    out = tmp_path / "out"
    args = ["convert", src, out, "--to", "bf16"]
    if shard:
        args += ["--max-shard-size", shard]
    r = ktq(*args)
    assert "wrote" in r.stderr
    verify(src, out)
    if shard:
        assert (out / "model.safetensors.index.json").exists()


def test_demo_model_in_repo_converts(tmp_path):
    src = os.path.join(REPO, "examples", "models", "tiny-deepseek-v3-fp8")
    out = tmp_path / "out"
    ktq("convert", src, out, "--quiet")
    verify(src, out)


@needs_shared
def test_progress_lines_when_not_a_terminal_and_quiet(tmp_path):
    src = shared_model("tiny-deepseek-v3-fp8")
    r = ktq("convert", src, tmp_path / "a")
    lines = [l for l in r.stderr.splitlines() if l.startswith("ktq: ") and "%" in l]
    assert len(lines) >= 4, r.stderr  # one per layer + the other tensors
    assert "\r" not in r.stderr
    r = ktq("convert", src, tmp_path / "b", "--quiet")
    assert r.stderr == ""


EXPECTED = {
    "tiny-qwen3-moe": dict(family="qwen3_moe", num_layers=3, num_experts=16, experts_per_token=4,
                           first_dense_layers=0, num_shared_experts=0, source_dtype="BF16"),
    "tiny-mixtral": dict(family="mixtral", num_layers=2, num_experts=8, experts_per_token=2,
                         first_dense_layers=0, num_shared_experts=0, source_dtype="F16"),
    "tiny-llama": dict(family="llama", num_layers=4, num_experts=0, experts_per_token=0,
                       first_dense_layers=4, num_shared_experts=0, source_dtype="BF16"),
    "tiny-deepseek-v3": dict(family="deepseek_v3", num_layers=3, num_experts=16, experts_per_token=4,
                             first_dense_layers=1, num_shared_experts=1, source_dtype="BF16"),
    "tiny-deepseek-v3-fp8": dict(family="deepseek_v3", num_layers=3, num_experts=16, experts_per_token=4,
                                 first_dense_layers=1, num_shared_experts=1, source_dtype="F8_E4M3",
                                 fp8_block_size=[128, 128]),
}


@needs_shared
@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_inspect_json(model):
    info = json.loads(ktq("inspect", shared_model(model), "--json", "--plan").stdout)
    for key, value in EXPECTED[model].items():
        assert info[key] == value, (key, info[key], value)
    assert info["hidden_size"] == 256
    with open(os.path.join(shared_model(model), "model.safetensors"), "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
    header.pop("__metadata__", None)
    assert info["num_tensors"] == len(header)
    payload = sum(v["data_offsets"][1] - v["data_offsets"][0] for v in header.values())
    assert info["total_bytes"] == payload
    assert sum(info["bytes_by_part"].values()) == payload
    plan = info["plan"]["bf16"]
    assert plan["output_files"] == 1
    numel = sum(int(__import__("math").prod(v["shape"])) for k, v in header.items() if not k.endswith("_scale_inv"))
    assert plan["output_bytes"] == 2 * numel


@needs_shared
def test_inspect_text_names_the_parts():
    out = ktq("inspect", shared_model("tiny-deepseek-v3"), "--plan").stdout
    for needle in ("DeepseekV3ForCausalLM", "16 routed (top-4), 1 shared", "1 leading dense", "routed experts",
                   "bf16      ", "kt-amxint4", "compressed-tensors W4A16"):
        assert needle in out, needle


def test_errors_name_the_file(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type":"llama"}')
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    r = ktq("inspect", tmp_path, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("ktq: error: model.safetensors: truncated"), r.stderr
    r = ktq("convert", tmp_path / "missing", tmp_path / "out", check=False)
    assert r.returncode == 1 and "no such file or folder" in r.stderr


@needs_shared
def test_convert_refuses_non_empty_output(tmp_path):
    (tmp_path / "x").write_text("keep me")
    r = ktq("convert", shared_model("tiny-llama"), tmp_path, check=False)
    assert r.returncode == 1 and "not empty" in r.stderr
    assert (tmp_path / "x").read_text() == "keep me"


def test_doctor_json():
    info = json.loads(ktq("doctor", "--json").stdout)
    assert info["cores"] >= 1 and info["numa_nodes"] >= 1
    assert sum(info["cores_per_numa_node"]) == info["cores"]
    for key in ("avx512f", "amx_tile", "amx_int8", "cuda_built"):
        assert isinstance(info[key], bool)


def test_version():
    assert ktq("--version").stdout.strip().startswith("ktq 0.")


# What a conversion asks the disk for, as strace sees it: (system call, file) with -y naming each descriptor.
def sync_calls(tmp_path, out, *args):
    return traced_sync_calls(tmp_path / (out.name + ".strace"), "convert", shared_model("tiny-qwen3-moe"), out, *args)


def traced_sync_calls(log, *ktq_args):
    env = dict(os.environ)  # LeakSanitizer refuses to run under ptrace: the sanitized build checks leaks elsewhere
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    subprocess.run(["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync,syncfs", "-o", str(log), KTQ,
                    *map(str, ktq_args), "-q"], check=True, env=env)
    calls = set()
    for line in log.read_text().splitlines():
        if "<" in line and "resumed>" not in line:  # a call another thread interrupted is named on its first line
            call = line.split()[1].split("(", 1)[0]
            calls.add((call, line.split("<", 1)[1].split(">", 1)[0]))
    return calls


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed (tests/setup_deps.sh installs it)")
@pytest.mark.parametrize("args", [["--format", "kt", "--quant-method", "int4"], ["--to", "gguf", "--type", "Q8_0"],
                                  ["--format", "kt", "--quant-method", "int8", "--no-merge-safetensor"]],
                         ids=["kt", "gguf", "kt-loose"])
def test_no_sync_never_waits_for_the_weight_files(tmp_path, args):
    """--no-sync: no weight file is synced (per layer or before its rename; the loose layout's syncfs
    neither), only the small files that say what is complete; the bytes are those of a synced run."""
    gguf = args[1] == "gguf"
    synced, unsynced = tmp_path / ("synced.gguf" if gguf else "synced"), tmp_path / ("unsynced.gguf" if gguf else "unsynced")
    weights = lambda calls: {(c, f) for c, f in calls
                             if c != "fsync" or f.endswith((".safetensors.ktq-partial", ".gguf.ktq-partial", ".kt"))}
    assert weights(sync_calls(tmp_path, synced, *args))  # what the option leaves out, by default
    without = sync_calls(tmp_path, unsynced, *args, "--no-sync")
    assert not weights(without), without
    assert any(f.endswith(".ktq-journal.json.ktq-partial") for _, f in without)  # the journal still is

    def tree(p):
        if p.is_file():
            return {"": p.read_bytes()}
        return {str(f.relative_to(p)): f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()}
    assert tree(unsynced) == tree(synced)


def tree_bytes(p):
    return {str(f.relative_to(p)): f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()}


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed (tests/setup_deps.sh installs it)")
def test_no_sync_in_merge_and_the_kt_kernel_drop_in(tmp_path):
    """`ktq merge --no-sync` and `ktq convert-cpu-weights --no-sync` sync no weight file either, and write the
    bytes their synced runs write."""
    model = shared_model("tiny-qwen3-moe")
    weights = lambda calls: {(c, f) for c, f in calls if c == "syncfs" or f.endswith((".safetensors.ktq-partial", ".kt"))}
    runs = {}
    for sync in ("synced", "unsynced"):
        extra = ["--no-sync"] if sync == "unsynced" else []
        loose = tmp_path / f"loose-{sync}"
        calls = traced_sync_calls(tmp_path / f"drop-in-{sync}.strace", "convert-cpu-weights", "--input-path", model,
                                  "--input-type", "bf16", "--output", loose, "--quant-method", "int4",
                                  "--no-merge-safetensor", *extra)
        merged = tmp_path / f"merged-{sync}"
        calls_merge = traced_sync_calls(tmp_path / f"merge-{sync}.strace", "merge", "--input-path", loose,
                                        "--output", merged, "--original-path", model, *extra)
        runs[sync] = (weights(calls), weights(calls_merge), tree_bytes(loose), tree_bytes(merged))
    assert runs["synced"][0] and runs["synced"][1]  # what the option leaves out, by default
    assert not runs["unsynced"][0] and not runs["unsynced"][1], runs["unsynced"][:2]
    assert runs["unsynced"][2:] == runs["synced"][2:]
