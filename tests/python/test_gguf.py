"""ktq's GGUF files read by gguf-py (llama.cpp's own Python GGUF library):
the key-values llama.cpp needs, llama.cpp's tensor names and shapes, and
every tensor's blocks decoded by gguf-py back to the model's weights (with
llama's Q/K row permutation), Q8_0 blocks byte-identical to gguf-py's own
quantizer. Plus the errors a user meets."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGUFReader  # noqa: E402
from gguf.quants import dequantize, quantize  # noqa: E402

from test_cli import ktq, needs_shared, shared_model  # noqa: E402


def hf_tensors(model_dir):
    out = {}
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(8 + n + a)
            raw = f.read(b - a)
            if info["dtype"] == "BF16":
                v = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif info["dtype"] == "F16":
                v = np.frombuffer(raw, np.float16).astype(np.float32)
            else:
                v = np.frombuffer(raw, np.float32)
            out[name] = v.reshape(info["shape"])
    return out


def field(r, key):
    f = r.fields[key]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        return len(f.data)
    return f.parts[f.data[0]][0]


def permute(w, heads):
    """llama.cpp's Q/K row order (convert_hf_to_gguf's permute), written here independently."""
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, -1).swapaxes(1, 2).reshape(w.shape)


def dequant(t):
    return dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(t.data.shape[0], -1) \
        if t.tensor_type.name not in ("F32", "F16") else np.asarray(t.data, np.float32)


@needs_shared
def test_llama_q8_0_read_by_gguf_py(tmp_path):
    model = shared_model("tiny-llama")
    out = tmp_path / "llama.gguf"
    ktq("convert", model, out, "--to", "gguf", "--type", "Q8_0", "-q")
    assert not (tmp_path / "llama.gguf.ktq-work").exists()
    r = GGUFReader(out)
    assert field(r, "general.architecture") == "llama"
    assert (field(r, "llama.block_count"), field(r, "llama.embedding_length"), field(r, "llama.feed_forward_length")) == (4, 256, 768)
    assert (field(r, "llama.attention.head_count"), field(r, "llama.attention.head_count_kv")) == (4, 2)
    assert field(r, "llama.rope.dimension_count") == 64
    tok = json.load(open(os.path.join(model, "tokenizer.json")))
    assert field(r, "tokenizer.ggml.model") == "gpt2"
    assert field(r, "tokenizer.ggml.pre") == "gpt-2"  # llama.cpp's name; it refuses "gpt2" (checked live)
    assert field(r, "tokenizer.ggml.tokens") == 4096 and field(r, "tokenizer.ggml.merges") == len(tok["model"]["merges"])
    assert field(r, "tokenizer.ggml.eos_token_id") == 0
    names = {t.name for t in r.tensors}
    assert len(names) == 3 + 4 * 9 and {"token_embd.weight", "output_norm.weight", "output.weight"} <= names
    hf = hf_tensors(model)
    by = {t.name: t for t in r.tensors}
    for l in range(4):
        for gname, hname, heads in (("attn_q", "self_attn.q_proj", 4), ("attn_k", "self_attn.k_proj", 2),
                                    ("attn_v", "self_attn.v_proj", 0), ("attn_output", "self_attn.o_proj", 0),
                                    ("ffn_gate", "mlp.gate_proj", 0), ("ffn_down", "mlp.down_proj", 0)):
            t = by[f"blk.{l}.{gname}.weight"]
            w = hf[f"model.layers.{l}.{hname}.weight"]
            if heads:
                w = permute(w, heads)
            assert t.tensor_type.name == "Q8_0" and list(t.shape) == [w.shape[1], w.shape[0]]
            # the same bytes as gguf-py's Q8_0 quantizer, and they decode to the weights
            assert np.asarray(t.data).tobytes() == quantize(w, gguf.GGMLQuantizationType.Q8_0).tobytes(), t.name
            assert np.abs(dequant(t) - w).max() <= np.abs(w).max() / 127 + 1e-6
        assert by[f"blk.{l}.attn_norm.weight"].tensor_type.name == "F32"
        assert np.array_equal(dequant(by[f"blk.{l}.attn_norm.weight"]), hf[f"model.layers.{l}.input_layernorm.weight"])


@needs_shared
@pytest.mark.parametrize("layout", ["stacked", "split"])
def test_qwen3_moe_k_quant_experts(tmp_path, layout):
    model = shared_model("tiny-qwen3-moe")
    out = tmp_path / "q.gguf"
    args = ["--target", "candle"] if layout == "split" else []
    ktq("convert", model, out, "--to", "gguf", "--type", "Q4_K", *args, "-q")
    r = GGUFReader(out)
    assert field(r, "general.architecture") == "qwen3moe"
    assert (field(r, "qwen3moe.expert_count"), field(r, "qwen3moe.expert_used_count")) == (16, 4)
    assert field(r, "qwen3moe.expert_feed_forward_length") == 256
    by = {t.name: t for t in r.tensors}
    hf = hf_tensors(model)
    assert "blk.0.attn_q_norm.weight" in by and by["blk.0.ffn_gate_inp.weight"].tensor_type.name == "F32"
    for l in range(3):
        for p in ("gate", "up", "down"):
            experts = np.stack([hf[f"model.layers.{l}.mlp.experts.{e}.{p}_proj.weight"] for e in range(16)])
            if layout == "stacked":
                t = by[f"blk.{l}.ffn_{p}_exps.weight"]
                assert list(t.shape) == [experts.shape[2], experts.shape[1], 16]
                got = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(experts.shape)
            else:
                got = np.stack([dequantize(np.asarray(by[f"blk.{l}.ffn_{p}.{e}.weight"].data),
                                           gguf.GGMLQuantizationType.Q4_K).reshape(experts.shape[1:]) for e in range(16)])
            rel = np.sqrt(np.mean((got - experts) ** 2) / np.mean(experts ** 2))
            assert rel < 0.12, (l, p, rel)  # Q4_K: ~0.07 on weights like these


@needs_shared
def test_gguf_errors(tmp_path):
    # An architecture without llama.cpp metadata yet is named (a copy of tiny-llama claiming to be gemma).
    other = tmp_path / "gemma"
    other.mkdir()
    for f in os.listdir(shared_model("tiny-llama")):
        os.symlink(os.path.join(shared_model("tiny-llama"), f), other / f)
    config = json.load(open(other / "config.json"))
    (other / "config.json").unlink()
    config["model_type"] = "gemma"
    (other / "config.json").write_text(json.dumps(config))
    r = ktq("convert", other, tmp_path / "d.gguf", "--to", "gguf", check=False)
    assert r.returncode != 0 and "gemma" in r.stderr, r.stderr
    assert not (tmp_path / "d.gguf").exists()
    out = tmp_path / "l.gguf"
    ktq("convert", shared_model("tiny-llama"), out, "--to", "gguf", "-q")
    r = ktq("convert", shared_model("tiny-llama"), out, "--to", "gguf", check=False)
    assert r.returncode == 1 and "already exists" in r.stderr
    ktq("convert", shared_model("tiny-llama"), out, "--to", "gguf", "--type", "Q4_K", "--overwrite", "-q")
    assert GGUFReader(out).tensors[1].tensor_type.name == "Q4_K"
    r = ktq("convert", shared_model("tiny-llama"), tmp_path / "x.gguf", "--to", "gguf", "--type", "Q9_9", check=False)
    assert r.returncode == 1 and "unknown GGUF mixture 'Q9_9'" in r.stderr and "Q4_K_M" in r.stderr, r.stderr
    r = ktq("convert", shared_model("tiny-llama"), tmp_path / "x.gguf", "--to", "gguf", "--type", "Q2_K_S", check=False)
    assert r.returncode == 1 and "importance matrix" in r.stderr, r.stderr
    assert not (tmp_path / "x.gguf").exists()


@needs_shared
def test_tensor_type_rules(tmp_path):
    """--tensor-type REGEX=TYPE (llama-quantize's flag): the first rule found in
    a weight's GGUF name decides; norms and routers stay F32 whatever the rules."""
    out = tmp_path / "mixed.gguf"
    ktq("convert", shared_model("tiny-qwen3-moe"), out, "--to", "gguf", "--type", "Q4_K",
        "--tensor-type", "ffn_down_exps=Q6_K", "--tensor-type", r"attn_(q|k)\.=Q8_0", "--tensor-type", ".*norm=Q4_0", "-q")
    types = {t.name: t.tensor_type.name for t in GGUFReader(out).tensors}
    assert types["blk.1.ffn_down_exps.weight"] == "Q6_K" and types["blk.1.ffn_up_exps.weight"] == "Q4_K"
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["blk.0.attn_k.weight"] == "Q8_0"
    assert types["blk.0.attn_v.weight"] == "Q4_K" and types["output.weight"] == "Q4_K"
    assert types["blk.0.attn_norm.weight"] == "F32" and types["blk.0.ffn_gate_inp.weight"] == "F32"
    r = ktq("convert", shared_model("tiny-qwen3-moe"), tmp_path / "bad.gguf", "--to", "gguf", "--tensor-type",
            "attn=Q7_X", check=False)
    assert r.returncode == 1 and "unknown ggml type Q7_X" in r.stderr, r.stderr


MIX_GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "gguf_mix_types.json")


@needs_shared
@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen3-moe", "tiny-mixtral", "tiny-deepseek-v3"])
def test_mixtures_choose_llama_quantizes_types(tmp_path, model):
    """`--mix Q4_K_M` etc.: every tensor gets the type llama.cpp's own
    llama-quantize chose for it (golden, tests/golden/make_gguf_mix_golden.py):
    more bits for attn_v / ffn_down by layer, Q6_K outputs, Mixtral's 8-expert
    rules (attention K/V in Q8_0)."""
    golden = json.load(open(MIX_GOLDEN))["models"][model]
    out = tmp_path / "m.gguf"
    for mix, want in sorted(golden.items()):
        ktq("convert", shared_model(model), out, "--to", "gguf", "--mix", mix, "-q", "--overwrite")
        r = GGUFReader(out)
        assert {t.name: t.tensor_type.name for t in r.tensors} == want, mix
        assert field(r, "general.file_type") == {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
                                                 "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
                                                 "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18}[mix]
        assert field(r, "ktq.mix") == mix


@needs_shared
def test_type_names_pure_or_mixture(tmp_path):
    """--type Q4_0 is every weight Q4_0 (llama-quantize --pure); --mix Q4_0 is
    llama-quantize's Q4_0 file type (the output in Q6_K); --type Q4_K_M, not a
    ggml type, is the mixture."""
    m = shared_model("tiny-llama")
    ktq("convert", m, tmp_path / "pure.gguf", "--to", "gguf", "--type", "Q4_0", "-q")
    ktq("convert", m, tmp_path / "mix.gguf", "--to", "gguf", "--mix", "Q4_0", "-q")
    types = lambda p: {t.name: t.tensor_type.name for t in GGUFReader(p).tensors}
    assert types(tmp_path / "pure.gguf")["output.weight"] == "Q4_0"
    assert types(tmp_path / "mix.gguf")["output.weight"] == "Q6_K"
    ktq("convert", m, tmp_path / "a.gguf", "--to", "gguf", "--type", "Q4_K_M", "-q")
    ktq("convert", m, tmp_path / "b.gguf", "--to", "gguf", "--mix", "Q4_K_M", "-q")
    assert (tmp_path / "a.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()


@needs_shared
def test_moe_mixture_keeps_all_but_the_routed_experts_at_q8_0(tmp_path):
    out = tmp_path / "moe.gguf"
    ktq("convert", shared_model("tiny-qwen3-moe"), out, "--to", "gguf", "--type", "MOE_Q4_K", "-q")
    r = GGUFReader(out)
    for t in r.tensors:
        want = "Q4_K" if "_exps." in t.name else "F32" if len(t.data.shape) == 1 or "ffn_gate_inp" in t.name else "Q8_0"
        assert t.tensor_type.name == want, t.name
    # Split per expert (Candle's layout): the same choice by name.
    ktq("convert", shared_model("tiny-qwen3-moe"), tmp_path / "split.gguf", "--to", "gguf", "--type", "MOE_Q3_K",
        "--expert-layout", "split", "-q")
    types = {t.name: t.tensor_type.name for t in GGUFReader(tmp_path / "split.gguf").tensors}
    assert types["blk.0.ffn_down.7.weight"] == "Q3_K" and types["blk.0.attn_output.weight"] == "Q8_0"


@needs_shared
def test_deepseek_v3_is_llama_cpps_deepseek2(tmp_path):
    """DeepSeek-V3 as llama.cpp's deepseek2 (convert_hf_to_gguf's layout): MLA
    projections, kv_b_proj split per head into attn_k_b (the nope rows,
    transposed) and attn_v_b, the router's bias as exp_probs_b, shared experts
    as *_shexp, the MLA and routing hyperparameters; MTP layers left out.
    Checked against an independent numpy split of the checkpoint's kv_b."""
    src = shared_model("tiny-deepseek-v3")
    out = tmp_path / "ds.gguf"
    ktq("convert", src, out, "--to", "gguf", "--type", "F32", "-q")
    r = GGUFReader(out)
    cfg = json.load(open(os.path.join(src, "config.json")))
    assert field(r, "general.architecture") == "deepseek2"
    assert field(r, "deepseek2.attention.head_count_kv") == 1
    assert field(r, "deepseek2.attention.key_length") == cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"]
    assert field(r, "deepseek2.attention.key_length_mla") == cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    assert field(r, "deepseek2.attention.value_length_mla") == cfg["v_head_dim"]
    assert field(r, "deepseek2.leading_dense_block_count") == cfg["first_k_dense_replace"]
    assert field(r, "deepseek2.expert_gating_func") == 2  # sigmoid
    assert field(r, "deepseek2.expert_group_count") == cfg["n_group"]
    assert abs(field(r, "deepseek2.expert_weights_scale") - cfg["routed_scaling_factor"]) < 1e-6
    tensors = {t.name: t for t in r.tensors}
    assert not any(n.startswith(f"blk.{cfg['num_hidden_layers']}.") for n in tensors)  # MTP
    hf = hf_tensors(src)
    heads, nope, v = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    for layer in range(cfg["num_hidden_layers"]):
        kv_b = hf[f"model.layers.{layer}.self_attn.kv_b_proj.weight"].reshape(heads, nope + v, -1)
        k_b = np.asarray(tensors[f"blk.{layer}.attn_k_b.weight"].data)   # [heads, kv_lora, nope]
        v_b = np.asarray(tensors[f"blk.{layer}.attn_v_b.weight"].data)   # [heads, v, kv_lora]
        assert np.array_equal(k_b, kv_b[:, :nope, :].transpose(0, 2, 1))
        assert np.array_equal(v_b, kv_b[:, nope:, :])
    assert np.array_equal(np.asarray(tensors["blk.1.exp_probs_b.bias"].data),
                          hf["model.layers.1.mlp.gate.e_score_correction_bias"])
    assert np.array_equal(np.asarray(tensors["blk.1.ffn_down_shexp.weight"].data),
                          hf["model.layers.1.mlp.shared_experts.down_proj.weight"])
    assert np.array_equal(np.asarray(tensors["blk.2.ffn_up_exps.weight"].data)[5],
                          hf["model.layers.2.mlp.experts.5.up_proj.weight"])


@needs_shared
def test_qwen2_moe_is_llama_cpps_qwen2moe(tmp_path):
    """Qwen2-MoE as llama.cpp's qwen2moe: attention biases, the shared expert
    as *_shexp with its sigmoid gate as the vector ffn_gate_inp_shexp (F32),
    the expert and shared-expert sizes. No shared model has this architecture:
    tests/data/make_tiny_qwen2_moe.py derives one from tiny-qwen3-moe. The
    file read back over the checkpoint gives its perplexity exactly (llama.cpp's
    own perplexity of it equals ktq's forward: tests/interop)."""
    src = tmp_path / "tiny-qwen2-moe"
    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "data", "make_tiny_qwen2_moe.py"),
                    os.path.dirname(shared_model("tiny-qwen3-moe")), str(src)], check=True, capture_output=True)
    out = tmp_path / "q2m.gguf"
    ktq("convert", src, out, "--to", "gguf", "--type", "BF16", "-q")
    r = GGUFReader(out)
    cfg = json.load(open(src / "config.json"))
    assert field(r, "general.architecture") == "qwen2moe"
    assert field(r, "qwen2moe.expert_count") == cfg["num_experts"]
    assert field(r, "qwen2moe.expert_feed_forward_length") == cfg["moe_intermediate_size"]
    assert field(r, "qwen2moe.expert_shared_feed_forward_length") == cfg["shared_expert_intermediate_size"]
    tensors = {t.name: t for t in r.tensors}
    gate = tensors["blk.1.ffn_gate_inp_shexp.weight"]
    assert gate.tensor_type.name == "F32" and list(gate.shape) == [cfg["hidden_size"]]
    hf = hf_tensors(src)
    assert np.array_equal(np.asarray(gate.data), hf["model.layers.1.mlp.shared_expert_gate.weight"].reshape(-1))
    assert np.array_equal(np.asarray(tensors["blk.0.attn_q.bias"].data), hf["model.layers.0.self_attn.q_proj.bias"])
    for proj in ("gate", "up", "down"):
        assert f"blk.2.ffn_{proj}_shexp.weight" in tensors and f"blk.2.ffn_{proj}_exps.weight" in tensors
    eval_txt = os.path.join(os.path.dirname(shared_model("tiny-qwen3-moe")), "..", "data", "eval.txt")
    ppl = lambda *extra: json.loads(ktq("eval-ppl", src, "--text", eval_txt, "--max-tokens", 4096, "--json", "-q",
                                        *extra).stdout)["perplexity"]
    assert ppl("--gguf", out) == ppl()
    # A low-bit mixture keeps the gate vector F32 and quantizes the shared expert.
    ktq("convert", src, tmp_path / "q4.gguf", "--to", "gguf", "--type", "Q4_K_M", "-q")
    t4 = {t.name: t.tensor_type.name for t in GGUFReader(tmp_path / "q4.gguf").tensors}
    assert t4["blk.0.ffn_gate_inp_shexp.weight"] == "F32" and t4["blk.0.ffn_up_shexp.weight"] == "Q4_K"


@needs_shared
def test_source_sha256_names_the_exact_source(tmp_path):
    """--source-sha256: ktq.source.sha256 holds "file digest" for config.json,
    tokenizer.json and every weight file, as hashlib computes them (for a
    shard, the hub's LFS id); without the flag nothing is hashed."""
    import hashlib
    src = shared_model("tiny-mixtral")
    out = tmp_path / "m.gguf"
    ktq("convert", src, out, "--to", "gguf", "--type", "Q8_0", "--source-sha256", "-q")
    f = GGUFReader(out).fields["ktq.source.sha256"]
    got = dict(bytes(f.parts[i]).decode().split(" ") for i in f.data)
    want = {name: hashlib.sha256(open(os.path.join(src, name), "rb").read()).hexdigest()
            for name in os.listdir(src) if name.endswith(".safetensors") or name in ("config.json", "tokenizer.json")}
    assert got == want
    ktq("convert", src, tmp_path / "plain.gguf", "--to", "gguf", "--type", "Q8_0", "-q")
    assert "ktq.source.sha256" not in GGUFReader(tmp_path / "plain.gguf").fields
