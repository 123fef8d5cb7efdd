#!/usr/bin/env python3
"""Golden vectors for ktq's compressed-tensors writer, made by llm-compressor.

For each case below this runs llm-compressor's data-free RTN
(`oneshot` with a `QuantizationModifier`, targets "Linear" and the ignore
patterns kt-kernel's convert_gpu_weights.py passes) on a shared model, lets
it save the compressed checkpoint (format pack-quantized), and records for
every tensor of the output its dtype, shape and SHA-256, plus the
`quantization_config` it put into config.json. ktq's test
(tests/python/test_compressed_tensors.py) converts the same models with the
same scheme and compares tensor by tensor, so CI needs neither torch nor
llm-compressor.

    python3 -m venv /tmp/ctref && /tmp/ctref/bin/pip install "llmcompressor==0.14.*"
    /tmp/ctref/bin/python tests/golden/make_ct_golden.py --shared ../shared -o tests/golden/compressed_tensors.json
    # on a GPU host (llm-compressor then quantizes with compressed-tensors' Triton kernel):
    python3 tests/golden/make_ct_golden.py --device cuda --models tiny-qwen3-moe,tiny-llama \
        -o tests/golden/compressed_tensors_cuda.json

The bytes depend on where llm-compressor runs: on a GPU the codes come from
x / scale in float32, on a CPU from x / scale rounded to BF16 first (ktq's
--rounding fp32 / dtype). --device cpu hides the GPUs (llm-compressor
would otherwise move the model onto one). The model is loaded in the dtype
its config names (transformers' "auto"), which is also ktq's scale dtype.
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import tempfile

# kt-kernel convert_gpu_weights.py's default ignore list; it appends
# re:model\.layers\.[0-k]\.mlp\..*$ for DeepSeek's first_k_dense_replace.
KT_IGNORE = [
    "lm_head",
    r"re:.*\.mlp\.gate$",
    r"re:.*\.self_attn\..*$",
    r"re:.*\.shared_expert\..*$",
    r"re:.*\.shared_experts\..*$",
    r"re:.*\.mlp\.shared_expert_gate$",
    r"re:.*\.linear_attn\..*$",
]

# (model, case name, scheme arguments). "scheme" is a preset name, or a
# dict of weight QuantizationArgs for the non-preset variants.
CASES = [
    ("tiny-qwen3-moe", "W4A16", "W4A16"),
    ("tiny-qwen3-moe", "W8A16", "W8A16"),
    ("tiny-llama", "W4A16", "W4A16"),
    ("tiny-llama", "W8A16", "W8A16"),
    ("tiny-llama", "W4A16_ASYM", "W4A16_ASYM"),
    ("tiny-llama", "W8A16-channel", {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel"}),
    ("tiny-llama", "W4A16-g64-asym", {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group",
                                       "group_size": 64}),
    ("tiny-mixtral", "W4A16", "W4A16"),
    ("tiny-deepseek-v3", "W4A16", "W4A16"),
]


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            data = f.read(b - a)
            out[name] = {"dtype": info["dtype"], "shape": info["shape"],
                         "sha256": hashlib.sha256(data).hexdigest()}
        return out


def run_case(model_dir, scheme, out_dir, device):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoConfig, AutoModelForCausalLM

    ignore = list(KT_IGNORE)
    cfg = AutoConfig.from_pretrained(model_dir)
    k = getattr(cfg, "first_k_dense_replace", None)
    if k:
        ignore.append(r"re:model\.layers\.0\.mlp\..*$" if k == 1 else f"re:model\\.layers\\.[0-{k - 1}]\\.mlp\\..*$")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto", device_map=device)
    if isinstance(scheme, str):
        recipe = QuantizationModifier(targets="Linear", scheme=scheme, ignore=ignore)
    else:
        recipe = QuantizationModifier(
            config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**scheme))},
            ignore=ignore)
    oneshot(model=model, recipe=recipe, output_dir=out_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--models", help="comma-separated subset of the models (default: all)")
    args = ap.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import compressed_tensors
    import llmcompressor
    import torch
    import transformers

    result = {
        "generator": "tests/golden/make_ct_golden.py",
        "versions": {"llmcompressor": llmcompressor.__version__, "compressed_tensors": compressed_tensors.__version__,
                     "torch": torch.__version__, "transformers": transformers.__version__},
        "ignore": KT_IGNORE,
        "device": args.device,
        "rounding": "fp32" if args.device == "cuda" else "dtype",
        "cases": [],
    }
    for model, name, scheme in CASES:
        if args.models and model not in args.models.split(","):
            continue
        model_dir = os.path.join(args.shared, "models", model)
        with tempfile.TemporaryDirectory() as tmp:
            run_case(model_dir, scheme, tmp, args.device)
            tensors = {}
            for f in sorted(os.listdir(tmp)):
                if f.endswith(".safetensors"):
                    tensors.update(read_safetensors(os.path.join(tmp, f)))
            with open(os.path.join(tmp, "config.json")) as f:
                qcfg = json.load(f)["quantization_config"]
        result["cases"].append({"model": model, "case": name, "scheme": scheme,
                                "quantization_config": qcfg, "tensors": dict(sorted(tensors.items()))})
        print(f"{model} {name}: {len(tensors)} tensors", file=sys.stderr)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main()
