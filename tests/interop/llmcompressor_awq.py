#!/usr/bin/env python3
"""Interop reference (run by hand where torch + llm-compressor are installed):
AWQ with llm-compressor's AWQModifier on exactly the calibration samples ktq
draws (llmcompressor_gptq.py's window cut and seeded pick), the same ignore
list (read from a ktq output's config.json), scheme W4A16_ASYM (group 128),
duo scaling, all experts calibrated on all tokens. Writes a
compressed-tensors checkpoint for transformers_ppl.py.

usage: llmcompressor_awq.py MODEL OUT --dataset calib.txt --ignore-from KTQ_OUT/config.json
         [--samples 128] [--seq-len 512] [--scheme W4A16_ASYM] [--seed 42]
"""
import os
import sys

import torch
from llmcompressor import oneshot
from llmcompressor.modifiers.awq import AWQModifier
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llmcompressor_gptq import calibration_arguments, calibration_inputs  # noqa: E402  (ktq's samples)


def main():
    if not torch.cuda.is_available():  # llm-compressor pins its activation cache, which needs a CUDA driver
        torch.Tensor.pin_memory = lambda self, *args, **kwargs: self
    a = calibration_arguments("W4A16_ASYM").parse_args()
    ds, count, ignore = calibration_inputs(a)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16)
    recipe = AWQModifier(targets=["Linear"], scheme=a.scheme, ignore=ignore, duo_scaling=True)
    oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=a.seq_len, num_calibration_samples=count,
            moe_calibrate_all_experts=True)
    if torch.cuda.is_available():
        print(f"llm-compressor ran on {torch.cuda.get_device_name(0)}: peak "
              f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB of GPU memory")
    else:
        print("llm-compressor ran on the CPU")
    model.save_pretrained(a.out, save_compressed=True)
    Tokenizer.from_file(f"{a.model}/tokenizer.json").save(f"{a.out}/tokenizer.json")


if __name__ == "__main__":
    main()
