#!/usr/bin/env python3
"""Interop reference (run by hand where torch + llm-compressor are installed):
GPTQ with llm-compressor on exactly the calibration samples ktq draws
(`--dataset` plain text cut into windows, the same seeded pick as ktq's
sample_indices), the same ignore list (read from a ktq output's
config.json) and the same options, all experts calibrated on all tokens.
Writes a compressed-tensors checkpoint for transformers_ppl.py.

usage: llmcompressor_gptq.py MODEL OUT --dataset calib.txt --ignore-from KTQ_OUT/config.json
         [--samples 128] [--seq-len 512] [--scheme W4A16] [--dampening 0.01] [--seed 42]
"""
import argparse
import json

import torch
from datasets import Dataset
from llmcompressor import oneshot
from llmcompressor.modifiers.gptq import GPTQModifier
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def sample_indices(n, k, seed):
    """ktq's CalibrationData sample_indices: partial Fisher-Yates on SplitMix64, sorted."""
    idx = list(range(n))
    if k >= n:
        return idx
    state = seed
    for i in range(k):
        bound = n - i
        limit = MASK - MASK % bound
        while True:
            state, v = splitmix64(state)
            if v < limit:
                break
        j = i + v % bound
        idx[i], idx[j] = idx[j], idx[i]
    return sorted(idx[:k])


def calibration_dataset(model, dataset, samples, seq_len, seed):
    """The samples ktq draws from a plain-text dataset: the text tokenized whole, cut into
    non-overlapping windows of seq_len tokens, `samples` of them picked by sample_indices."""
    ids = Tokenizer.from_file(f"{model}/tokenizer.json").encode(open(dataset, encoding="utf-8").read()).ids
    windows = [ids[i:i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]
    picked = [windows[i] for i in sample_indices(len(windows), samples, seed)]
    return Dataset.from_dict({"input_ids": picked, "attention_mask": [[1] * len(w) for w in picked]}), len(picked)


def calibration_arguments(scheme):
    """The command line both llm-compressor scripts take; the caller may add its own."""
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--ignore-from", required=True)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--scheme", default=scheme)
    ap.add_argument("--seed", type=int, default=42)
    return ap


def calibration_inputs(a):
    """The samples and the ignore list of parsed calibration_arguments()."""
    ds, count = calibration_dataset(a.model, a.dataset, a.samples, a.seq_len, a.seed)
    return ds, count, json.load(open(a.ignore_from))["quantization_config"]["ignore"]


def main():
    ap = calibration_arguments("W4A16")
    ap.add_argument("--dampening", type=float, default=0.01)
    a = ap.parse_args()
    ds, count, ignore = calibration_inputs(a)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16)
    recipe = GPTQModifier(targets="Linear", scheme=a.scheme, ignore=ignore, dampening_frac=a.dampening,
                          block_size=128, actorder="static")
    oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=a.seq_len, num_calibration_samples=count,
            moe_calibrate_all_experts=True)
    model.save_pretrained(a.out, save_compressed=True)
    Tokenizer.from_file(f"{a.model}/tokenizer.json").save(f"{a.out}/tokenizer.json")


if __name__ == "__main__":
    main()
