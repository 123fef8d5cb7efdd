"""GGUF quantization with an importance matrix (--imatrix), against llama.cpp:
the importance matrices in tests/golden/imatrix/ were computed by llama.cpp's
llama-imatrix (both its GGUF and legacy .dat formats), and
tests/golden/gguf_imatrix.json holds the SHA-256 of every tensor that
llama-quantize --imatrix wrote with them (make_imatrix_golden.sh). ktq,
going straight from the hub checkpoint, must write the same bytes. Also: split
experts take their row of the stacked entry, and malformed or mismatched
imatrix files are refused naming the file and entry, leaving no output."""
import hashlib
import json
import math
import os
import struct

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGUFReader, GGUFWriter  # noqa: E402

from test_cli import ktq, needs_shared, shared_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden", "gguf_imatrix.json")
IMATRIX = os.path.join(HERE, "..", "golden", "imatrix")
CASES = json.load(open(GOLDEN))["cases"]


def tensors(path):
    return {t.name: (t.tensor_type.name, hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest())
            for t in GGUFReader(path).tensors}


@needs_shared
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['model']}-{'pure-' if c['pure'] else ''}{c['type']}-"
                                                      f"{c['imatrix'].rsplit('.', 1)[1]}")
def test_bytes_equal_llama_quantize_with_the_same_imatrix(tmp_path, case):
    out = tmp_path / "m.gguf"
    ktq("convert", shared_model(case["model"]), out, "--to", "gguf", "--type" if case["pure"] else "--mix",
        case["type"], "--imatrix", os.path.join(IMATRIX, case["imatrix"]), "-q")
    got = tensors(out)
    want = {n: (t["type"], t["sha256"]) for n, t in case["tensors"].items()}
    assert got.keys() == want.keys()
    bad = [n for n in want if got[n] != want[n]]
    assert not bad, f"{len(bad)} of {len(want)} tensors differ from llama-quantize's, e.g. {bad[:3]}"
    f = GGUFReader(out).fields
    assert int(f["quantize.imatrix.entries_count"].parts[-1][0]) > 0
    assert bytes(f["quantize.imatrix.file"].parts[-1]).decode().endswith(case["imatrix"])


@needs_shared
def test_without_the_imatrix_the_bytes_differ(tmp_path):
    # So the golden comparison above can tell whether the importance was used at all.
    case = next(c for c in CASES if c["model"] == "tiny-qwen3-moe" and c["type"] == "Q4_K_M")
    plain = tmp_path / "plain.gguf"
    ktq("convert", shared_model(case["model"]), plain, "--to", "gguf", "--mix", case["type"], "-q")
    got = tensors(plain)
    differ = sum(got[n] != (t["type"], t["sha256"]) for n, t in case["tensors"].items())
    assert differ >= len(case["tensors"]) // 2, differ


@needs_shared
def test_split_experts_take_their_row_of_the_stacked_entry(tmp_path):
    im = os.path.join(IMATRIX, "tiny-qwen3-moe.imatrix.gguf")
    stacked, split = tmp_path / "stacked.gguf", tmp_path / "split.gguf"
    ktq("convert", shared_model("tiny-qwen3-moe"), stacked, "--to", "gguf", "--type", "Q4_K", "--imatrix", im, "-q")
    ktq("convert", shared_model("tiny-qwen3-moe"), split, "--to", "gguf", "--type", "Q4_K", "--imatrix", im,
        "--expert-layout", "split", "-q")
    a = {t.name: np.asarray(t.data) for t in GGUFReader(stacked).tensors}
    b = {t.name: np.asarray(t.data) for t in GGUFReader(split).tensors}
    n = 0
    for name, data in a.items():
        if "_exps." not in name:
            continue
        base = name.replace("_exps.weight", "")
        for e in range(data.shape[0]):
            assert b[f"{base}.{e}.weight"].tobytes() == data[e].tobytes(), (name, e)
            n += 1
    assert n > 0


def legacy(path, entries, tail=True):
    """A legacy .dat imatrix: {name: (ncall, values)}."""
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(entries)))
        for name, (ncall, values) in entries.items():
            f.write(struct.pack("<i", len(name)) + name.encode())
            f.write(struct.pack("<ii", ncall, len(values)) + np.asarray(values, np.float32).tobytes())
        if tail:
            f.write(struct.pack("<ii", 10, 4) + b"data")


def gguf_imatrix(path, entries, metadata=True):
    """A GGUF imatrix: {name: (counts, sums [experts, n])}."""
    w = GGUFWriter(str(path), "imatrix")
    if metadata:
        w.add_array("imatrix.datasets", ["calib.txt"])
        w.add_uint32("imatrix.chunk_count", 10)
        w.add_uint32("imatrix.chunk_size", 256)
    for name, (counts, sums) in entries.items():
        w.add_tensor(name + ".in_sum2", np.asarray(sums, np.float32))
        w.add_tensor(name + ".counts", np.asarray(counts, np.float32).reshape(-1, 1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def refused(tmp_path, imatrix, *phrases, model="tiny-llama"):
    out = tmp_path / "m.gguf"
    r = ktq("convert", shared_model(model), out, "--to", "gguf", "--type", "Q4_K", "--imatrix", imatrix, check=False)
    assert r.returncode != 0
    for p in phrases:
        assert p in r.stderr, r.stderr
    assert not any(p.name.startswith("m.gguf") for p in tmp_path.iterdir()), list(tmp_path.iterdir())


@needs_shared
def test_bad_imatrix_files_are_refused_naming_file_and_entry(tmp_path):
    src = os.path.join(IMATRIX, "tiny-llama.imatrix.dat")
    data = open(src, "rb").read()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[:len(data) // 2])
    refused(tmp_path, cut, str(cut), "runs past")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\xff\xff\xff\x7f" + b"x" * 64)
    refused(tmp_path, junk, str(junk), "not a GGUF or legacy imatrix")
    nan = tmp_path / "nan.dat"
    legacy(nan, {"blk.0.ffn_down.weight": (3, [1.0, math.nan, 2.0])})
    refused(tmp_path, nan, "blk.0.ffn_down.weight", "non-finite")
    nometa = tmp_path / "nometa.gguf"
    gguf_imatrix(nometa, {"blk.0.ffn_down.weight": ([5], [[1.0] * 8])}, metadata=False)
    refused(tmp_path, nometa, str(nometa), "imatrix.datasets")
    # An entry of the wrong size (another model's imatrix): named, with what the weight needs.
    row = json.load(open(os.path.join(shared_model("tiny-llama"), "config.json")))["intermediate_size"]
    wrong = tmp_path / "wrong.gguf"
    gguf_imatrix(wrong, {"blk.0.ffn_down.weight": ([5], [[1.0] * (row + 32)])})
    refused(tmp_path, wrong, "blk.0.ffn_down.weight", "needs")
    r = ktq("convert", shared_model("tiny-llama"), tmp_path / "x.gguf", "--to", "gguf", "--imatrix",
            tmp_path / "absent.dat", check=False)
    assert r.returncode != 0 and "absent.dat" in r.stderr


@needs_shared
def test_gguf_and_legacy_formats_of_one_imatrix_give_one_file(tmp_path):
    # The same importance written both ways: GGUF sums and counts, and legacy values with one call
    # (sums / count, divided in float32 as ktq's GGUF reading divides them).
    out = {}
    reader = GGUFReader(os.path.join(IMATRIX, "tiny-llama.imatrix.gguf"))
    sums = {t.name[:-len(".in_sum2")]: np.asarray(t.data, np.float32) for t in reader.tensors if t.name.endswith(".in_sum2")}
    counts = {t.name[:-len(".counts")]: np.asarray(t.data, np.float32) for t in reader.tensors if t.name.endswith(".counts")}
    g = tmp_path / "im.gguf"
    gguf_imatrix(g, {n: (counts[n].reshape(-1), sums[n]) for n in sums})
    d = tmp_path / "im.dat"
    legacy(d, {n: (1, sums[n].reshape(-1) / counts[n].reshape(-1)[0]) for n in sums})
    for name, im in (("g", g), ("d", d)):
        out[name] = tmp_path / f"{name}.gguf"
        ktq("convert", shared_model("tiny-llama"), out[name], "--to", "gguf", "--type", "Q4_K", "--imatrix", im, "-q")
    assert tensors(out["g"]) == tensors(out["d"])


@needs_shared
def test_expert_token_counts_are_recorded_for_placement(tmp_path):
    # A GGUF imatrix counts the tokens the router sent to each expert; ktq writes them per layer
    # (ktq.routing.blk.N.expert_tokens) so that a pipeline can pick the experts to keep on the GPU.
    im = os.path.join(IMATRIX, "tiny-qwen3-moe.imatrix.gguf")
    out = tmp_path / "m.gguf"
    ktq("convert", shared_model("tiny-qwen3-moe"), out, "--to", "gguf", "--type", "Q4_K", "--imatrix", im,
        "--tensor-type", "ffn_down_exps=Q6_K", "-q")
    f = GGUFReader(out).fields
    counts = {t.name[:-len(".counts")]: np.asarray(t.data).reshape(-1)
              for t in GGUFReader(im).tensors if t.name.endswith(".counts")}
    cfg = json.load(open(os.path.join(shared_model("tiny-qwen3-moe"), "config.json")))
    for layer in range(cfg["num_hidden_layers"]):
        field = f[f"ktq.routing.blk.{layer}.expert_tokens"]
        got = [int(field.parts[i][0]) for i in field.data]
        assert got == [round(c) for c in counts[f"blk.{layer}.ffn_gate_exps.weight"]]
        assert len(got) == cfg["num_local_experts"]
    assert bytes(f["ktq.tensor_type_rules"].parts[f["ktq.tensor_type_rules"].data[0]]).decode() == "ffn_down_exps=Q6_K"
    assert bytes(f["ktq.imatrix"].parts[-1]).decode() == im


@needs_shared
def test_routing_statistics_of_ktqs_calibration_are_recorded(tmp_path):
    # --routing-stats: the routing_stats.json that `--engine gptq` writes (layers -> tokens per expert).
    cfg = json.load(open(os.path.join(shared_model("tiny-qwen3-moe"), "config.json")))
    n, layers = cfg["num_local_experts"], cfg["num_hidden_layers"]
    stats = {"description": "routed calibration tokens per expert", "tokens": 4096, "experts_per_token": 4,
             "layers": {str(layer): [(layer + 1) * e for e in range(n)] for layer in range(layers)}}
    path = tmp_path / "routing_stats.json"
    path.write_text(json.dumps(stats))
    out = tmp_path / "m.gguf"
    ktq("convert", shared_model("tiny-qwen3-moe"), out, "--to", "gguf", "--type", "Q8_0", "--routing-stats", path,
        "--imatrix", os.path.join(IMATRIX, "tiny-qwen3-moe.imatrix.gguf"), "-q")
    f = GGUFReader(out).fields
    for layer in range(layers):  # the explicit statistics win over the imatrix's counts
        field = f[f"ktq.routing.blk.{layer}.expert_tokens"]
        assert [int(field.parts[i][0]) for i in field.data] == stats["layers"][str(layer)]
    assert bytes(f["ktq.routing.source"].parts[-1]).decode() == str(path)
    stats["layers"]["1"] = [1, 2, 3]
    path.write_text(json.dumps(stats))
    r = ktq("convert", shared_model("tiny-qwen3-moe"), tmp_path / "x.gguf", "--to", "gguf", "--routing-stats", path,
            check=False)
    assert r.returncode != 0 and "layer 1 needs 16 token counts" in r.stderr and str(path) in r.stderr, r.stderr
    assert not (tmp_path / "x.gguf").exists()
