#!/usr/bin/env python3
"""Regenerates tests/golden/rope_scaling.json: transformers' mean next-token
loss (float32 weights) on the first 2 x 256 tokens of eval.txt for shared
models given a scaled RoPE in their config (llama3, yarn, linear; DeepSeek's
yarn with mscale / mscale_all_dim in the legacy "rope_scaling" form), plus
the unscaled control. tests/python/test_rope_scaling.py builds the same model
folders (tests/python/rope_variants.py) and checks ktq eval-ppl against these
numbers, so CI needs neither torch nor transformers.

usage: python make_rope_scaling_golden.py SHARED_DIR > tests/golden/rope_scaling.json
(needs torch, transformers, tokenizers; recorded with transformers 5.17, torch 2.14, CPU)
"""
import json
import math
import os
import sys
import tempfile

import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from rope_variants import CASES, WINDOW, WINDOWS, make_variant  # noqa: E402


def mean_nll(model_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for w in range(WINDOWS):
            x = torch.tensor([ids[w * WINDOW:(w + 1) * WINDOW]])
            logits = model(x).logits[0].double()
            nll = torch.nn.functional.cross_entropy(logits[:-1], x[0, 1:], reduction="sum")
            total += float(nll)
            count += WINDOW - 1
    return total / count


def main():
    shared = sys.argv[1]
    text = open(os.path.join(shared, "data", "eval.txt"), encoding="utf-8").read()
    out = {"transformers": transformers.__version__, "torch": torch.__version__, "window": WINDOW,
           "windows": WINDOWS, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            d = make_variant(shared, name, os.path.join(tmp, name))
            ids = Tokenizer.from_file(os.path.join(d, "tokenizer.json")).encode(text, add_special_tokens=False).ids
            nll = mean_nll(d, ids)
            out["cases"][name] = {"mean_nll": nll, "perplexity": math.exp(nll)}
            print(name, nll, file=sys.stderr)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
