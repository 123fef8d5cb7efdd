"""Reading back and in-situ quantization through the Python API: expert
matrices, kt-kernel outputs, ggml blocks against ggml's own bytes, GPTQ for a
caller's forward pass, and the tokenizer against Hugging Face tokenizers'
ids (tests/golden)."""
import array
import base64
import json
import os
import random
import struct
import subprocess

import pytest

import ktq

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEMO = os.path.join(REPO, "examples", "models", "tiny-deepseek-v3-fp8")
GOLDEN = os.path.join(REPO, "tests", "golden")
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(REPO, "..", "shared"))


def safetensors_f32(path, name):
    """A BF16/F32 tensor decoded straight from a .safetensors file (independent of libktq)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header[name]
        f.seek(8 + n + t["data_offsets"][0])
        raw = f.read(t["data_offsets"][1] - t["data_offsets"][0])
    if t["dtype"] == "BF16":
        return t["shape"], [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    assert t["dtype"] == "F32"
    return t["shape"], list(array.array("f", raw))


def find_file(folder, name):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        return os.path.join(folder, json.load(open(index))["weight_map"][name])
    return os.path.join(folder, "model.safetensors")


def test_expert_matrices_equal_the_checkpoint_bytes():
    model_dir = os.path.join(SHARED, "models", "tiny-qwen3-moe")
    if not os.path.isdir(model_dir):
        pytest.skip(f"{model_dir} is absent")
    name = "model.layers.1.mlp.experts.7.up_proj.weight"
    shape, want = safetensors_f32(find_file(model_dir, name), name)
    with ktq.Model(model_dir) as m:
        assert list(m.expert_shape(1, 7, "up")) == shape
        assert list(m.read_expert(1, 7, "up")) == want
        assert list(m.read_tensor(name)) == want
        bits = m.read_expert(1, 7, "up", dtype="bf16")
        assert [struct.unpack("<f", struct.pack("<I", b << 16))[0] for b in bits] == want
        with pytest.raises(ktq.KtqError) as e:
            m.read_expert(1, 10_000, "up")
        assert "10000" in str(e.value)
        with pytest.raises(ValueError):
            m.read_expert(1, 7, "w2")


def test_kt_output_reads_back_and_loose_files_merge_to_the_merged_layout(tmp_path):
    with ktq.Model(DEMO) as m:
        info = m.info()
        ktq.convert(m, tmp_path / "merged", to="kt-int4", numa_parts=2, threads=2)
        ktq.convert(m, tmp_path / "loose", to="kt-int4", numa_parts=2, loose_files=True, threads=2)
        for folder, merged in (("merged", True), ("loose", False)):
            with ktq.KtOutput(tmp_path / folder) as out:
                assert out.merged == merged
                parts = out.parts()
                assert len(parts) == info["num_moe_layers"] * info["num_experts"] * 3 * 2
                # gate is split by rows: part 1 holds the second half of expert 4's gate rows.
                layer = info["first_dense_layers"]
                index = next(i for i, p in enumerate(parts)
                             if (p["layer"], p["expert"], p["proj"], p["part"]) == (layer, 4, "gate", 1))
                p = parts[index]
                rows, cols = m.expert_shape(layer, 4, "gate")
                assert (p["bits"], p["rows"] * 2, p["cols"]) == (4, rows, cols)
                w = m.read_expert(layer, 4, "gate", dtype="bf16")
                packed, scales = out.read(index)
                assert len(packed) == p["packed_bytes"] == p["rows"] * p["cols"] // 2
                dq = out.dequantize(index)
                for r in range(p["rows"]):
                    for c in range(p["cols"]):
                        x = struct.unpack("<f", struct.pack("<I", w[(p["rows"] + r) * cols + c] << 16))[0]
                        # An INT4 step is 16 x the stored scale (amax / 112), and kt-kernel rounds twice
                        # (docs/formats/kt-kernel.md): within one step, not a half.
                        assert abs(x - dq[r * cols + c]) <= 16 * scales[r] * (1 + 1e-5), (r, c)
        ktq.kt_merge(tmp_path / "remerged", tmp_path / "loose", model=m)
    names = sorted(n for n in os.listdir(tmp_path / "merged") if not n.startswith(".ktq-journal"))
    assert sorted(os.listdir(tmp_path / "remerged")) == names
    for n in names:
        assert (tmp_path / "remerged" / n).read_bytes() == (tmp_path / "merged" / n).read_bytes(), n
    with pytest.raises(ktq.KtqError) as e:
        ktq.KtOutput(tmp_path / "nothing-here")
    assert "nothing-here" in str(e.value)


@pytest.mark.parametrize("golden", ["ggml_blocks.json", "ggml_kquants.json"])
def test_ggml_blocks_equal_ggmls_own(golden):
    g = json.load(open(os.path.join(GOLDEN, golden)))
    values = array.array("f", base64.b64decode(g["input_f32"]))
    for name, t in g["types"].items():
        want = base64.b64decode(t["quantized"])
        n = len(values) - len(values) % max(1, ktq._lib.lib.ktq_ggml_block_size(ktq._lib.GGML_TYPES[name]))
        blocks = ktq.quantize_blocks(values[:n], name)
        assert blocks == want, name
        back = ktq.dequantize_blocks(blocks, name, n)
        assert back.tobytes() == base64.b64decode(t["dequantized_f32"]), name
    with pytest.raises(ValueError):
        ktq.quantize_blocks(values[:33], "Q8_0")
    with pytest.raises(ValueError):
        ktq.quantize_blocks(values[:32], "Q7_X")


def test_importance_quantizers_equal_ggmls_imatrix_path():
    g = json.load(open(os.path.join(GOLDEN, "ggml_importance.json")))
    n, rows = g["n_per_row"], g["rows"]
    values = array.array("f", base64.b64decode(g["input_f32"]))
    importance = array.array("f", base64.b64decode(g["importance_f32"]))
    for name, t in g["types"].items():
        want = base64.b64decode(t["quantized"])
        got = b"".join(ktq.quantize_rows(values[r * n:(r + 1) * n], n, importance[r * n:(r + 1) * n], name)
                       for r in range(rows))
        assert got == want, name
    with pytest.raises(ValueError):
        ktq.quantize_rows(values[:n], n, importance[:n - 1], "Q4_K")


def test_tokenizer_equals_hf_tokenizers():
    g = json.load(open(os.path.join(GOLDEN, "tokens.json"), encoding="utf-8"))
    for model, cases in g["models"].items():
        folder = os.path.join(SHARED, "models", model)
        if not os.path.isdir(folder):
            pytest.skip(f"{folder} is absent")
        for case in cases:
            assert ktq.tokenize(folder, case["text"]) == case["ids"], case["text"]


def test_gptq_of_a_foreign_forward_pass_beats_rounding():
    rng = random.Random(5)
    rows, cols, n = 16, 64, 256
    # Correlated inputs (a shared factor) give GPTQ something to exploit.
    x = array.array("f")
    for _ in range(n):
        common = rng.gauss(0, 1)
        x.extend(common + 0.3 * rng.gauss(0, 1) for _ in range(cols))
    w = array.array("f", (rng.gauss(0, 0.05) for _ in range(rows * cols)))
    with ktq.Gptq(cols) as g:
        g.add_batch(x[: 100 * cols])
        g.add_batch(x[100 * cols:])
        assert g.rows == n
        r = g.quantize(w, bits=4, group_size=32, dtype="float32")
        with pytest.raises(ValueError):
            g.add_batch(x[:10])
    assert (len(r["packed"]), len(r["scales"]), len(r["zero_points"])) == (rows * cols // 8, rows * 2, 0)
    assert not r["rtn_fallback"]
    # Each dequantized weight is an integer code in [-8, 7] times its group's scale.
    for i, v in enumerate(r["dequantized"]):
        q = v / r["scales"][(i // cols) * 2 + (i % cols) // 32]
        assert abs(q - round(q)) < 1e-4 and -8 <= round(q) <= 7, (i, q)

    def output_error(wq):
        err = 0.0
        for t in range(n):
            xt = x[t * cols:(t + 1) * cols]
            for o in range(rows):
                err += sum((w[o * cols + c] - wq[o * cols + c]) * xt[c] for c in range(cols)) ** 2
        return err

    rtn = array.array("f", r["dequantized"])
    for o in range(rows):
        for g0 in range(0, cols, 32):
            s = r["scales"][o * 2 + g0 // 32]
            for c in range(g0, g0 + 32):
                rtn[o * cols + c] = max(-8, min(7, round(w[o * cols + c] / s))) * s
    assert output_error(r["dequantized"]) < 0.8 * output_error(rtn)
    with pytest.raises(ValueError):
        g.rows


def test_gptq_mse_observer_reaches_the_library():
    """observer="mse" (ktq_ct_scheme version 2): scales never above the min-max ones, some below, and at least
    as small a rounding error as min-max without Hessian information (identity inputs)."""
    rng = random.Random(13)
    cols = 64
    w = array.array("f", (rng.gauss(0, 0.02) * (6 if rng.random() < 0.02 else 1) for _ in range(32 * cols)))
    out = {}
    for observer in ("minmax", "mse"):
        with ktq.Gptq(cols) as g:
            g.add_batch(array.array("f", (1.0 if i % (cols + 1) == 0 else 0.0 for i in range(cols * cols))))
            out[observer] = g.quantize(w, bits=4, group_size=32, dtype="float32", observer=observer)
    assert all(a <= b for a, b in zip(out["mse"]["scales"], out["minmax"]["scales"]))
    assert sum(a < b for a, b in zip(out["mse"]["scales"], out["minmax"]["scales"])) > 4
    err = {k: sum(abs(a - b) ** 2.4 for a, b in zip(w, v["dequantized"])) for k, v in out.items()}
    assert err["mse"] < err["minmax"]
    with pytest.raises(ValueError):
        ktq.Gptq(cols).quantize(w, observer="max")


def test_gptq_bf16_weights_round_scales_to_bf16():
    rng = random.Random(9)
    cols = 32
    bits = array.array("H", (struct.unpack("<I", struct.pack("<f", rng.gauss(0, 0.1)))[0] >> 16
                             for _ in range(8 * cols)))
    with ktq.Gptq(cols) as g:
        g.add_batch(array.array("f", (rng.gauss(0, 1) for _ in range(64 * cols))))
        r = g.quantize(bits, bits=8, group_size=-1, symmetric=False)
    # One BF16 scale per row; 8 rows of 8-bit zero points pack into 2 int32 words.
    assert r["scales"].typecode == "H" and len(r["scales"]) == 8 and len(r["zero_points"]) == 2
    for i, v in enumerate(r["dequantized"]):
        s = struct.unpack("<f", struct.pack("<I", r["scales"][i // cols] << 16))[0]
        # (code - zero point) x scale, computed in BF16 as a BF16 model's weights are: within its rounding.
        assert s > 0 and abs(v - round(v / s) * s) <= abs(v) * 2 ** -8, (i, v, s)


def test_gguf_weights_read_back_over_the_checkpoint(tmp_path):
    model_dir = os.path.join(SHARED, "models", "tiny-llama")
    if not os.path.isdir(model_dir):
        pytest.skip(f"{model_dir} is absent")
    with ktq.Model(model_dir) as m:
        ktq.convert(m, tmp_path / "bf16.gguf", to="gguf", gguf_type="BF16")
        ktq.convert(m, tmp_path / "q8.gguf", to="gguf", gguf_type="Q8_0")
        names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.3.self_attn.k_proj.weight",
                 "model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight"]
        with ktq.Model(model_dir, gguf_weights=tmp_path / "bf16.gguf") as over:
            for n in names:  # BF16 holds the checkpoint exactly: Q/K rows must come back un-permuted
                assert over.read_tensor(n) == m.read_tensor(n), n
        with ktq.Model(model_dir, gguf_weights=tmp_path / "q8.gguf") as q8:
            a, b = q8.read_tensor(names[0]), m.read_tensor(names[0])
            assert a != b and max(abs(x - y) for x, y in zip(a, b)) < 0.01 * max(abs(y) for y in b)
    with pytest.raises(ktq.KtqError) as e:
        ktq.Model(model_dir, gguf_weights=tmp_path / "missing.gguf")
    assert "missing.gguf" in str(e.value)
