"""`ktq convert --engine awq`: AWQ scales from ktq's calibration forward,
folded into the model, then round to nearest into compressed-tensors.
Checked from the outside: the chosen scales of a real mapping (tiny-llama's
input norm -> q/k/v, measured on the attention block) equal the numpy
reference's (awq_reference.py) on the same activations, and the written
norm and codes are what those scales give, as the clipping search's codes
are the reference's; on held-out text the AWQ layer's MLP output is closer
to the original than round to nearest's; the fold keeps the model's
function (W8A16 output within 1 % of the original perplexity, MoE routers
compensated); byte-identical output whatever the thread count; clear
errors."""
import json
import re
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest


sys.path.insert(0, os.path.dirname(__file__))
import awq_reference  # noqa: E402
from interrupted_run import kill_after_layer  # noqa: E402
from gptq_reference import to_dtype  # noqa: E402

safetensors_numpy = pytest.importorskip("safetensors.numpy")

KTQ = os.environ.get("KTQ_BIN", "ktq")
LIB = os.environ.get("KTQ_LIB")
REPO = os.environ.get("KTQ_REPO", os.path.join(os.path.dirname(__file__), "../.."))
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
MODELS = os.path.join(SHARED, "models")
CALIB = os.path.join(SHARED, "data", "calib.txt")
EVAL = os.path.join(SHARED, "data", "eval.txt")

pytestmark = pytest.mark.skipif(not os.path.exists(CALIB), reason=f"shared data not found at {SHARED}")

SMALL = ["--num-calibration-samples", "8", "--max-sequence-length", "256"]


def ktq(*args, check=True):
    r = subprocess.run([KTQ, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"ktq {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


def load(path):
    t = safetensors_numpy.load_file(str(path))
    return {k: (v.view(ml_dtypes.bfloat16) if v.dtype == np.uint16 else v) for k, v in t.items()}


def f32(a):
    return np.asarray(a).astype(np.float32)


def unpack_int4(packed, cols):
    words = packed.view(np.uint32)
    codes = np.zeros((words.shape[0], words.shape[1] * 8), dtype=np.int64)
    for j in range(8):
        codes[:, j::8] = (words >> (4 * j)) & 15
    return (codes - 8)[:, :cols]


def ppl(model, max_tokens=32768):
    r = ktq("eval-ppl", model, "--text", EVAL, "--max-tokens", max_tokens, "--json", "-q")
    return json.loads(r.stdout)["perplexity"]


# ---- the search against the reference, on tiny-llama's layer 0 ----

def wrapper():
    if not LIB:
        pytest.skip("KTQ_LIB not set (sanitized build: libktq cannot be loaded into this interpreter)")
    os.environ["KTQ_LIBRARY"] = LIB
    sys.path.insert(0, os.path.join(REPO, "wrappers", "python"))
    import ktq as ktq_py
    return ktq_py


@pytest.fixture(scope="module")
def calib_ids(tmp_path_factory):
    ids_file = tmp_path_factory.mktemp("ids") / "calib.ids"
    ktq("tokenize", os.path.join(MODELS, "tiny-llama"), CALIB, "--ids-out", ids_file)
    ids = np.fromfile(ids_file, dtype=np.int32)
    return [ids[i * 128:(i + 1) * 128].tolist() for i in range(8)]


@pytest.mark.parametrize("scaling", ["duo", "act"])
def test_input_norm_mapping_matches_reference(calib_ids, scaling, tmp_path):
    ktq_py = wrapper()
    model = os.path.join(MODELS, "tiny-llama")
    out = tmp_path / "awq"
    with ktq_py.Model(model) as m:
        ktq_py.convert(m, str(out), to="W4A16", engine="awq", calibration_tokens=calib_ids, ignore=["lm_head"],
                       awq_scaling=scaling, awq_clip=True)
    src = load(os.path.join(model, "model.safetensors"))
    emb, norm = f32(src["model.embed_tokens.weight"]), f32(src["model.layers.0.input_layernorm.weight"])
    eps = json.load(open(os.path.join(model, "config.json")))["rms_norm_eps"]
    x = emb[np.concatenate(calib_ids)]
    X = (x / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True) + eps).astype(np.float32) * norm)
    X = X.astype(np.float32)
    a = "model.layers.0.self_attn."
    Ws = [f32(src[a + p + ".weight"]) for p in ("q_proj", "k_proj", "v_proj")]
    cfg = json.load(open(os.path.join(model, "config.json")))
    Wo = f32(src[a + "o_proj.weight"])
    # The parent module llm-compressor measures for this mapping: the attention block (o_proj kept).
    parent = lambda w: awq_reference.attention(X, *w, Wo, cfg["num_attention_heads"], cfg["num_key_value_heads"], 128,
                                               cfg.get("rope_theta", 10000.0))
    best, s, losses = awq_reference.search(Ws, X, bits=4, group=128, symmetric=False, dtype="bf16",
                                           duo=scaling == "duo", parent=parent)
    rep = json.load(open(out / "awq_report.json"))["mappings"]
    mine = rep["model.layers.0.input_layernorm -> q_proj, k_proj, v_proj"]
    # The same grid point, or one whose reference loss ties the best (float32 vs float64 attention).
    assert losses[mine["grid_index"]] <= losses[best] * (1 + 1e-3), (mine, losses)
    assert mine["loss"] == pytest.approx(losses[mine["grid_index"]], rel=1e-2)
    assert mine["loss_unscaled"] == pytest.approx(losses[0], rel=1e-2)  # candidate 0 is s = 1 in both grids
    s = awq_reference.candidate(np.abs(X).astype(np.float64).mean(0).astype(np.float32),
                                awq_reference.weight_mean(Ws, 128), mine["ratio"], mine["duo_scaling"])
    assert mine["loss_unscaled"] > 0 and mine["rows"] == 8 * 128

    out_t = load(out / "model.safetensors")
    # The norm carries 1 / s (rounded to BF16 once): equal to the reference's fold.
    want_norm = to_dtype(norm / s, "bf16")
    got_norm = f32(out_t["model.layers.0.input_layernorm.weight"])
    assert np.mean(got_norm == want_norm) >= 0.99
    np.testing.assert_allclose(got_norm, want_norm, rtol=1e-2)
    # q_proj's codes are round to nearest of W s (in BF16), as the reference quantizes it.
    _, q_ref = awq_reference.fake_quantize(to_dtype(Ws[0] * s, "bf16"), 4, 128, False, "bf16")
    got = unpack_int4(out_t[a + "q_proj.weight_packed"], Ws[0].shape[1])
    assert np.mean(got == q_ref) >= 0.999
    assert np.abs(got - q_ref).max() <= 1
    assert a + "q_proj.weight_zero_point" in out_t  # AWQ's default: asymmetric
    # v_proj is also clipped (q and k are not): the clipping search against the reference's, on the folded
    # weight and the inputs it now reads.
    v_ref, n_clipped = awq_reference.clip(to_dtype(Ws[2] * s, "bf16"), X / s, 4, 128, False, "bf16")
    _, codes_ref = awq_reference.fake_quantize(v_ref, 4, 128, False, "bf16")
    got = unpack_int4(out_t[a + "v_proj.weight_packed"], Ws[2].shape[1])
    assert np.mean(got == codes_ref) >= 0.99
    clipped = json.load(open(out / "awq_report.json"))["clipped_groups"]
    assert n_clipped > 0 and abs(clipped[a + "v_proj"] - n_clipped) <= max(2, n_clipped // 50)
    assert a + "q_proj" not in clipped


# ---- the whole engine, from the command line ----

def awq(model, out, *extra):
    return ktq("convert", os.path.join(MODELS, model), out, "--to", "compressed-tensors", "--engine", "awq",
               "--dataset", CALIB, "-q", *SMALL, *extra)


@pytest.fixture(scope="module")
def qwen_awq(tmp_path_factory):
    out = tmp_path_factory.mktemp("awq") / "qwen"
    awq("tiny-qwen3-moe", out)
    return out


def test_moe_layout_report_and_router_fold(qwen_awq):
    out = load(qwen_awq / "model.safetensors")
    src = load(os.path.join(MODELS, "tiny-qwen3-moe", "model.safetensors"))
    name = "model.layers.1.mlp.experts.3.down_proj"
    assert out[name + ".weight_packed"].shape == (256, 256 // 8)
    assert name + ".weight_zero_point" in out  # asymmetric by default
    cfg = json.load(open(qwen_awq / "config.json"))
    w = cfg["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert w["num_bits"] == 4 and w["group_size"] == 128 and w["symmetric"] is False
    maps = json.load(open(qwen_awq / "awq_report.json"))["mappings"]
    # attention is kept (default ignore list): only the MLP mappings run, every expert its own up -> down
    for layer in range(3):
        assert f"model.layers.{layer}.post_attention_layernorm -> experts' gate_proj, up_proj" in maps
        for e in range(16):
            assert f"model.layers.{layer}.mlp.experts.{e}.up_proj -> down_proj" in maps
    assert not any("input_layernorm" in k for k in maps)
    assert all(m["rows"] == 8 * 256 for m in maps.values())
    # The post-attention norm carries 1/s and the router s: their product (what routing sees) is unchanged.
    for layer in range(3):
        p = f"model.layers.{layer}."
        n0, n1 = f32(src[p + "post_attention_layernorm.weight"]), f32(out[p + "post_attention_layernorm.weight"])
        r0, r1 = f32(src[p + "mlp.gate.weight"]), f32(out[p + "mlp.gate.weight"])
        assert not np.array_equal(n0, n1) and not np.array_equal(r0, r1)
        np.testing.assert_allclose(r1 * n1, r0 * n0, rtol=2e-2, atol=1e-6)
    assert "model.layers.0.self_attn.q_proj.weight" in out
    assert np.array_equal(f32(out["model.layers.0.self_attn.q_proj.weight"]),
                          f32(src["model.layers.0.self_attn.q_proj.weight"]))
    stats = json.load(open(qwen_awq / "routing_stats.json"))
    assert stats["tokens"] == 8 * 256 and sorted(stats["layers"]) == ["0", "1", "2"]


def test_routed_experts_blend_their_routed_tokens(qwen_awq, tmp_path):
    """Default --moe-hessian blend: each expert's up -> down search weighs the
    tokens the router sent it (as many as routing_stats.json counts) plus 0.2 x
    all tokens; --moe-hessian all (llm-compressor's mode) every token alike;
    weight 0: routed tokens alone, all tokens for an expert routed fewer
    tokens than down's 256 inputs. In layer 0 (same inputs in both runs) only
    the experts' up and down may differ: the gate/up search measures the whole
    MoE block either way."""
    maps = json.load(open(qwen_awq / "awq_report.json"))["mappings"]
    counts = json.load(open(qwen_awq / "routing_stats.json"))["layers"]
    key = "model.layers.{}.mlp.experts.{}.up_proj -> down_proj"
    for layer in range(3):
        for e in range(16):
            # an expert the router never picked is searched on all tokens alone
            assert maps[key.format(layer, e)].get("routed_rows", 0) == counts[str(layer)][e]
    awq("tiny-qwen3-moe", tmp_path / "all", "--moe-hessian", "all")
    assert not any("routed_rows" in m for m in json.load(open(tmp_path / "all" / "awq_report.json"))["mappings"].values())
    blend, every = load(qwen_awq / "model.safetensors"), load(tmp_path / "all" / "model.safetensors")
    differ = {k for k in blend if k.startswith("model.layers.0.") and not np.array_equal(blend[k], every[k])}
    assert differ and all(re.match(r"model\.layers\.0\.mlp\.experts\.\d+\.(up|down)_proj\.", k) for k in differ), differ
    if LIB:  # the Python wrapper's moe_hessian reaches the engine: the CLI's bytes, both modes
        ktq_py = wrapper()
        with ktq_py.Model(os.path.join(MODELS, "tiny-qwen3-moe")) as m:
            for mode, cli in (("all", tmp_path / "all"), ("blend", qwen_awq)):
                ktq_py.convert(m, str(tmp_path / f"py-{mode}"), to="W4A16", engine="awq", dataset=CALIB,
                               num_calibration_samples=8, max_sequence_length=256, moe_hessian=mode)
                assert (tmp_path / f"py-{mode}" / "model.safetensors").read_bytes() == \
                    (cli / "model.safetensors").read_bytes(), mode
            with pytest.raises(ktq_py.KtqError, match="moe_all_tokens_weight"):
                ktq_py.convert(m, str(tmp_path / "py-bad"), to="W4A16", engine="awq", dataset=CALIB,
                               num_calibration_samples=8, max_sequence_length=256, moe_all_tokens_weight=-1)
    awq("tiny-qwen3-moe", tmp_path / "w0", "--moe-all-tokens-weight", "0")
    maps0 = json.load(open(tmp_path / "w0" / "awq_report.json"))["mappings"]
    few = [e for e in range(16) if counts["0"][e] < 256]
    assert few and len(few) < 16
    for e in range(16):
        assert ("routed_rows" in maps0[key.format(0, e)]) == (e not in few), e


@pytest.mark.skipif(os.environ.get("KTQ_SANITIZED") == "1",
                    reason="determinism is the release build's to check: one more full run under the sanitizers")
def test_same_bytes_whatever_the_thread_count(qwen_awq, tmp_path):
    awq("tiny-qwen3-moe", tmp_path / "t1", "--threads", "1")
    for f in ("model.safetensors", "awq_report.json", "config.json"):
        assert (tmp_path / "t1" / f).read_bytes() == (qwen_awq / f).read_bytes(), f


@pytest.mark.skipif(os.environ.get("KTQ_SANITIZED") == "1", reason="perplexities are measured in the release build")
def test_fold_keeps_the_function(tmp_path):
    """W8A16 is nearly lossless, so a wrong fold (a norm, a bias, a router left
    unscaled) would show as a large perplexity change."""
    base = ppl(os.path.join(MODELS, "tiny-qwen3-moe"), 16384)
    awq("tiny-qwen3-moe", tmp_path / "w8", "--scheme", "W8A16", "--ignore", "lm_head", "re:.*mlp\\.gate$")
    assert abs(ppl(tmp_path / "w8", 16384) / base - 1) < 0.01


def test_clipped_awq_layer_closer_than_rtn_on_held_out_text(calib_ids, tmp_path):
    """tiny-llama's layer 0 MLP (attention kept, the default ignore list),
    computed in numpy from each output read back as BF16 (ktq dequantizes
    compressed-tensors), on eval.txt tokens the calibration never saw: with
    the clipping search (which minimises exactly this per group) AWQ's
    output error is below round to nearest's with the same scheme."""
    model = os.path.join(MODELS, "tiny-llama")
    for name, extra in (("awq", ["--engine", "awq", "--awq-clip", "--dataset", CALIB, *SMALL]),
                        ("rtn", ["--scheme", "W4A16_ASYM"])):
        ktq("convert", model, tmp_path / name, "--to", "compressed-tensors", "-q", *extra)
        ktq("convert", tmp_path / name, tmp_path / (name + "-bf16"), "--to", "bf16", "-q")
    ids_file = tmp_path / "eval.ids"
    ktq("tokenize", model, EVAL, "--ids-out", ids_file)
    ids = np.fromfile(ids_file, dtype=np.int32)[: 8 * 128]
    cfg = json.load(open(os.path.join(model, "config.json")))
    eps = cfg["rms_norm_eps"]
    rms = lambda x, w: (x / np.sqrt(np.mean(x.astype(np.float64) ** 2, -1, keepdims=True) + eps)) * w

    def mlp_out(path):
        t = {k: f32(v) for k, v in load(os.path.join(path, "model.safetensors")).items()}
        p = "model.layers.0."
        x = t["model.embed_tokens.weight"][ids].astype(np.float64)
        a = p + "self_attn."
        h = x + awq_reference.attention(rms(x, t[p + "input_layernorm.weight"]), t[a + "q_proj.weight"],
                                        t[a + "k_proj.weight"], t[a + "v_proj.weight"], t[a + "o_proj.weight"],
                                        cfg["num_attention_heads"], cfg["num_key_value_heads"], 128,
                                        cfg.get("rope_theta", 10000.0))
        m = rms(h, t[p + "post_attention_layernorm.weight"])
        g, u = m @ t[p + "mlp.gate_proj.weight"].T, m @ t[p + "mlp.up_proj.weight"].T
        return (g / (1 + np.exp(-g)) * u) @ t[p + "mlp.down_proj.weight"].T

    base = mlp_out(model)
    err = {name: float(np.mean((mlp_out(tmp_path / (name + "-bf16")) - base) ** 2)) for name in ("awq", "rtn")}
    assert err["awq"] < 0.95 * err["rtn"], err  # measured: 0.0161 vs 0.0175


def test_resume_after_kill_is_byte_identical(qwen_awq, tmp_path):
    """Killed after layer 1 was written, resumed: the layers before are
    recomputed (not rewritten) and the files equal an uninterrupted run's."""
    out = tmp_path / "killed"
    args = [KTQ, "convert", os.path.join(MODELS, "tiny-qwen3-moe"), str(out), "--to", "compressed-tensors",
            "--engine", "awq", "--dataset", CALIB, "-q", *SMALL]
    if not kill_after_layer(args, out, 1, 300):  # layers 0 and 1 written
        pytest.skip("the run finished before it could be killed")
    ktq(*args[1:], "--resume")
    for f in ("model.safetensors", "config.json", "routing_stats.json", "awq_report.json"):
        assert (out / f).read_bytes() == (qwen_awq / f).read_bytes(), f


def test_clear_errors(tmp_path):
    model = os.path.join(MODELS, "tiny-llama")
    r = ktq("convert", model, tmp_path / "a", "--to", "compressed-tensors", "--engine", "awq", check=False)
    assert r.returncode != 0 and "--dataset" in r.stderr
    r = ktq("convert", model, tmp_path / "b", "--to", "compressed-tensors", "--engine", "awq", "--dataset", CALIB,
            "--device", "cuda", *SMALL, check=False)
    assert r.returncode != 0 and ("AWQ" in r.stderr or "no CUDA" in r.stderr)
    r = ktq("convert", model, tmp_path / "c", "--to", "compressed-tensors", "--engine", "awq", "--dataset", CALIB,
            "--symmetric", "--asymmetric", check=False)
    assert r.returncode != 0 and "--symmetric" in r.stderr
    assert not (tmp_path / "b" / "model.safetensors").exists()
