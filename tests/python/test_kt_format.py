"""ktq's kt-kernel AMX output checked from the outside.

Byte identity: every expert tensor ktq writes (merged safetensors, read with
the `safetensors` package, or loose .kt files) must have the SHA-256 that
kt-kernel 0.7.2's own operator gave for the same expert
(tests/golden/kt_amx.json, made by tests/golden/make_kt_golden.py), for all
four shared MoE models, INT4 and INT8, 1 and 2 NUMA parts, 1 and 2 threads.
Then the merged layout's other promises (shards, names, copies, order) and
the errors a user meets."""
import glob
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess

import pytest
from safetensors import safe_open

from test_cli import KTQ, MODELS, REPO, ktq, needs_shared, shared_model

GOLDEN = json.load(open(os.path.join(REPO, "tests", "golden", "kt_amx.json")))
KT_FILE = re.compile(r"^(INT4|INT8)_(gate|up|down)_(\d+)_(\d+)Byte_(quant|scale)_\.kt$")
CASES = sorted(GOLDEN["cases"])


def sha(b):
    return hashlib.sha256(b).hexdigest()


def header_of(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def merged_expert_hashes(out):
    """{name: sha256} of the expert tensors of a merged output, via safetensors."""
    result = {}
    for path in sorted(glob.glob(os.path.join(out, "*.safetensors"))):
        with safe_open(path, framework="numpy") as f:
            for name in f.keys():
                if "_exps." not in name:
                    continue
                t = f.get_tensor(name)
                assert t.ndim == 1, name
                assert t.dtype.name == ("float32" if name.endswith(".scale") else "int8"), (name, t.dtype)
                assert name not in result, f"{name} twice"
                result[name] = sha(t.tobytes())
    return result


def loose_expert_hashes(out, prefix):
    result = {}
    for path in sorted(glob.glob(os.path.join(out, "_layer_*", "_numa_*", "*.kt"))):
        layer = int(path.split("_layer_")[1].split("/")[0])
        part = int(path.split("_numa_")[1].split("/")[0])
        m = KT_FILE.match(os.path.basename(path))
        assert m, path
        kind, proj, expert, nbytes, what = m.groups()
        assert kind == prefix
        data = open(path, "rb").read()
        assert len(data) == int(nbytes), path
        result[f"blk.{layer}.ffn_{proj}_exps.{expert}.numa.{part}." + ("weight" if what == "quant" else "scale")] = sha(data)
    return result


def first_difference(got, want):
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    return f"{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} extra (e.g. {extra[:2]}), " \
           f"{len(wrong)} differ (e.g. {wrong[:3]})"


@needs_shared
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("layout", ["merged", "loose"])
def test_bytes_match_kt_kernel(tmp_path, case, layout):
    model, method, numa = case.split("/")
    src = shared_model(model)
    want = GOLDEN["cases"][case]
    for threads in (1, 2):
        out = tmp_path / f"out{threads}"
        args = ["convert", src, out, "--format", "kt", "--quant-method", method,
                "--threadpool-count", numa.removeprefix("numa"), "--threads", threads, "--quiet"]
        if layout == "loose":
            args.append("--no-merge-safetensor")
        ktq(*args)
        got = merged_expert_hashes(out) if layout == "merged" else loose_expert_hashes(out, method.upper())
        assert got == want, f"{case} {layout} threads={threads}: " + first_difference(got, want)


@needs_shared
@pytest.mark.parametrize("model", ["tiny-deepseek-v3-fp8", "tiny-mixtral"])
def test_merged_layout_is_kt_kernels(tmp_path, model):
    """Shards, names, dtypes, non-expert copies and file order as kt-kernel's converter writes them."""
    src = shared_model(model)
    out = tmp_path / "out"
    ktq("convert", src, out, "--format", "kt", "--quiet")
    cfg = json.load(open(os.path.join(src, "config.json")))
    source = {}
    for path in glob.glob(os.path.join(src, "*.safetensors")):
        h = header_of(path)
        raw = open(path, "rb").read()
        base = 8 + struct.unpack("<Q", raw[:8])[0]
        for name, info in h.items():
            if name != "__metadata__":
                a, b = info["data_offsets"]
                source[name] = (info["dtype"], info["shape"], raw[base + a: base + b])
    moe_layers = sorted({int(n.split(".")[2]) for n in source if ".experts." in n})
    shards = sorted(os.path.basename(p) for p in glob.glob(str(out / "*.safetensors")))
    n = len(moe_layers) + 1
    assert shards == [f"model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    for k, layer in enumerate(moe_layers):
        names = [x for x in header_of(out / shards[k]) if x != "__metadata__"]
        assert names and all(x.startswith(f"blk.{layer}.ffn_") for x in names), shards[k]
    # Every file: no metadata, tensors in the order safetensors' serializer
    # gives (dtype descending, then name), payload contiguous.
    rank = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16",
            "BF16", "I32", "U32", "F32", "F64", "I64", "U64"]
    for shard in shards:
        h = header_of(out / shard)
        assert "__metadata__" not in h
        by_offset = sorted(h, key=lambda x: h[x]["data_offsets"][0])
        assert by_offset == sorted(h, key=lambda x: (-rank.index(h[x]["dtype"]), x.encode())), shard
    # The last shard: every tensor that is not a routed expert, as stored, renamed.
    last = out / shards[-1]
    expect = {}
    for name, (dtype, shape, raw) in source.items():
        if ".experts." in name:
            continue
        new = name
        if new.startswith("model."):
            new = new.replace("model.layers.", "blk.").replace("model.", "")
        expect[new] = (dtype, shape, sha(raw))
    h = header_of(last)
    raw = open(last, "rb").read()
    base = 8 + struct.unpack("<Q", raw[:8])[0]
    got = {name: (i["dtype"], i["shape"], sha(raw[base + i["data_offsets"][0]: base + i["data_offsets"][1]]))
           for name, i in h.items()}
    assert got == expect
    # config.json and tokenizer files copied unchanged.
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(src, f)):
            assert open(out / f, "rb").read() == open(os.path.join(src, f), "rb").read(), f
    assert cfg  # read


@needs_shared
def test_drop_in_flags_equal_native_command(tmp_path):
    src = shared_model("tiny-qwen3-moe")
    ktq("convert-cpu-weights", "--input-path", src, "--input-type", "bf16", "--output", tmp_path / "a",
        "--quant-method", "int8", "--cpuinfer-threads", "2", "--threadpool-count", "2", "--no-merge-safetensor",
        "--fp8-expert-batch", "4", "--gpu", "--quiet")  # accepted-and-ignored flags (their storage once dangled)
    ktq("convert", src, tmp_path / "b", "--format", "kt", "--quant-method", "int8", "--loose", "--quiet")
    a, b = loose_expert_hashes(tmp_path / "a", "INT8"), loose_expert_hashes(tmp_path / "b", "INT8")
    assert a == b and len(a) == 576
    assert not (tmp_path / "a" / "config.json").exists()  # kt-kernel's loose layout is the .kt files only


@needs_shared
def test_drop_in_refuses_wrong_input_type(tmp_path):
    r = ktq("convert-cpu-weights", "-i", shared_model("tiny-deepseek-v3-fp8"), "--input-type", "bf16",
            "-o", tmp_path / "o", check=False)
    assert r.returncode == 1 and "--input-type bf16" in r.stderr and "F8_E4M3" in r.stderr
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


@needs_shared
def test_fp8_input_warns_about_precision(tmp_path):
    r = ktq("convert", shared_model("tiny-deepseek-v3-fp8"), tmp_path / "o", "--format", "kt")
    assert "warning" in r.stderr and "FP8" in r.stderr


@needs_shared
@pytest.mark.parametrize("model,args,message", [
    ("tiny-llama", [], "without routed experts"),
    ("tiny-qwen3-moe", ["--threadpool-count", "3"], "cannot be split into 3 NUMA parts"),
    ("tiny-qwen3-moe", ["--threadpool-count", "4"], "cannot be packed for AMX INT4"),
])
def test_unconvertible_models_are_refused(tmp_path, model, args, message):
    out = tmp_path / "o"
    r = ktq("convert", shared_model(model), out, "--format", "kt", *args, check=False)
    assert r.returncode == 1, r.stderr
    assert message in r.stderr, r.stderr
    assert r.stderr.count("ktq: error:") == 1
    leftovers = [p for p in glob.glob(str(out / "**"), recursive=True) if os.path.isfile(p)]
    assert not leftovers, leftovers


def corrupt_copy(tmp_path, model, tensor, value_bytes, at=0):
    """A copy of a shared model whose `tensor` has `value_bytes` written at element `at`."""
    dst = tmp_path / "model"
    shutil.copytree(shared_model(model), dst)
    for path in glob.glob(str(dst / "*.safetensors")):
        h = header_of(path)
        if tensor in h:
            base = 8 + struct.unpack("<Q", open(path, "rb").read(8))[0]
            with open(path, "r+b") as f:
                f.seek(base + h[tensor]["data_offsets"][0] + at * len(value_bytes))
                f.write(value_bytes)
            return dst
    raise AssertionError(f"{tensor} not found")


@needs_shared
def test_nan_expert_is_refused_with_its_name(tmp_path):
    name = "model.layers.1.mlp.experts.5.down_proj.weight"
    src = corrupt_copy(tmp_path, "tiny-qwen3-moe", name, b"\xc0\x7f", at=77)  # bf16 NaN
    out = tmp_path / "o"
    r = ktq("convert", src, out, "--format", "kt", check=False)
    assert r.returncode == 1
    assert name in r.stderr and "NaN" in r.stderr and "expert 5 down" in r.stderr
    assert not glob.glob(str(out / "*.safetensors"))  # nothing under a final name


@needs_shared
def test_dense_layers_and_shared_experts_stay_out_of_the_expert_shards(tmp_path):
    out = tmp_path / "o"
    ktq("convert", shared_model("tiny-deepseek-v3"), out, "--format", "kt", "--no-merge-safetensor", "--quiet")
    visible = sorted(n for n in os.listdir(out) if not n.startswith("."))  # .ktq-journal.json: the completion marker
    assert visible == ["_layer_1", "_layer_2"]  # layer 0 is dense


@needs_shared
@pytest.mark.parametrize("model,method,numa", [("tiny-deepseek-v3-fp8", "int4", "2"), ("tiny-mixtral", "int8", "1")])
def test_merge_of_loose_files_equals_a_merged_conversion(tmp_path, model, method, numa):
    src = shared_model(model)
    common = ["--format", "kt", "--quant-method", method, "--threadpool-count", numa, "--quiet"]
    ktq("convert", src, tmp_path / "merged", *common)
    ktq("convert", src, tmp_path / "loose", *common, "--no-merge-safetensor")
    ktq("merge", "-i", tmp_path / "loose", "-o", tmp_path / "again", "-r", src, "--quiet")
    want = sorted(os.listdir(tmp_path / "merged"))
    assert sorted(n for n in os.listdir(tmp_path / "again")) == [n for n in want if not n.startswith(".")]
    for name in os.listdir(tmp_path / "again"):
        assert open(tmp_path / "again" / name, "rb").read() == open(tmp_path / "merged" / name, "rb").read(), name
    # Without the model: the expert shards only, still kt-kernel's bytes.
    ktq("merge", "-i", tmp_path / "loose", "-o", tmp_path / "experts", "--quiet")
    assert merged_expert_hashes(tmp_path / "experts") == GOLDEN["cases"][f"{model}/{method}/numa{numa}"]


@needs_shared
def test_compare_reports_what_differs(tmp_path):
    src = shared_model("tiny-qwen3-moe")
    ktq("convert", src, tmp_path / "a", "--format", "kt", "--quiet")
    ktq("convert", src, tmp_path / "b", "--format", "kt", "--no-merge-safetensor", "--quiet")
    r = ktq("compare", tmp_path / "a", tmp_path / "b")
    assert "288 parts: 288 identical" in r.stdout
    victim = sorted(glob.glob(str(tmp_path / "b" / "_layer_2" / "_numa_1" / "INT4_up_7_*quant_.kt")))[0]
    data = bytearray(open(victim, "rb").read())
    data[100] ^= 0x11  # two nibbles move by one step
    open(victim, "wb").write(bytes(data))
    r = ktq("compare", "--path1", tmp_path / "a", "--path2", tmp_path / "b", check=False)
    assert r.returncode == 1
    assert "differs     blk.2.ffn_up_exps.7.numa.1" in r.stdout and "287 identical" in r.stdout, r.stdout
    r = ktq("compare", tmp_path / "a", tmp_path / "b", "--tolerance", "10")
    assert "1 within tolerance" in r.stdout
    r = ktq("compare", tmp_path / "a", shared_model("tiny-llama"), check=False)
    assert r.returncode == 1 and "holds no kt-kernel expert weights" in r.stderr


def test_compare_refuses_an_inconsistent_merged_file(tmp_path):
    """A merged file with a down part but no gate part cannot say INT4 or INT8: a clear error, no crash."""
    header, payload = {}, b""
    for name, dtype, count in (("blk.0.ffn_down_exps.0.numa.0.weight", "I8", 128 * 128 // 2),
                               ("blk.0.ffn_down_exps.0.numa.0.scale", "F32", 128)):
        size = count * (4 if dtype == "F32" else 1)
        header[name] = {"dtype": dtype, "shape": [count], "data_offsets": [len(payload), len(payload) + size]}
        payload += b"\0" * size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    os.makedirs(tmp_path / "odd")
    with open(tmp_path / "odd" / "model-00001-of-00001.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + payload)
    r = ktq("compare", tmp_path / "odd", tmp_path / "odd", check=False)
    assert r.returncode == 1 and "no gate projection" in r.stderr, r.stderr
