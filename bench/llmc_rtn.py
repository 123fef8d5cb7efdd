#!/usr/bin/env python3
"""llm-compressor's RTN (the baseline of bench/ct_rtn.sh): load the model
with transformers in its own dtype, oneshot with a QuantizationModifier
(targets Linear, kt-kernel convert_gpu_weights.py's ignore list), save the
compressed checkpoint. Needs torch, transformers and llmcompressor.

usage: llmc_rtn.py MODEL OUT SCHEME [--device cpu|cuda]
"""
import argparse

from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier
from transformers import AutoModelForCausalLM

IGNORE = ["lm_head", r"re:.*\.mlp\.gate$", r"re:.*\.self_attn\..*$", r"re:.*\.shared_expert\..*$",
          r"re:.*\.shared_experts\..*$", r"re:.*\.mlp\.shared_expert_gate$", r"re:.*\.linear_attn\..*$"]

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("out")
ap.add_argument("scheme")
ap.add_argument("--device", default="cpu")
a = ap.parse_args()
model = AutoModelForCausalLM.from_pretrained(a.model, dtype="auto", device_map=a.device)
oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme=a.scheme, ignore=IGNORE), output_dir=a.out)
