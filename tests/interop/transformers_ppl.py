#!/usr/bin/env python3
"""Interop check (run by hand where torch + transformers are installed, e.g.
the GPU host): load a checkpoint folder ktq wrote with Hugging Face
transformers - the reader users actually use - and compute perplexity with
the protocol of ../shared/README.md: tokenize eval.txt with the model's
tokenizer.json, first 131072 tokens as non-overlapping 256-token windows,
mean next-token cross-entropy over the 255 predicted positions of each
window, logits in bf16 autocast. Prints the ppl and, with --expect, fails
when it is off by more than --tolerance (relative).

usage: transformers_ppl.py MODEL_DIR EVAL_TXT [--expect PPL] [--tolerance 0.005]
"""
import argparse
import math
import sys
import time

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("eval_txt")
    ap.add_argument("--expect", type=float)
    ap.add_argument("--tolerance", type=float, default=0.005)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = Tokenizer.from_file(f"{args.model}/tokenizer.json")
    with open(args.eval_txt, encoding="utf-8") as f:
        ids = tok.encode(f.read()).ids[:131072]
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16).to(device).eval()
    window, total, count = 256, 0.0, 0
    x = torch.tensor(ids[: len(ids) // window * window], device=device).view(-1, window)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16):
        for batch in x.split(64):
            logits = model(batch).logits.float()
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                                     batch[:, 1:].reshape(-1), reduction="sum")
            total += loss.item()
            count += batch[:, 1:].numel()
    seconds = time.perf_counter() - t0  # the loss .item() calls synchronize
    ppl = math.exp(total / count)
    print(f"{args.model}: ppl {ppl:.3f} over {count} predicted tokens ({device}); forward {x.numel() / seconds:.0f} tokens/s")
    if args.expect is not None and abs(ppl - args.expect) / args.expect > args.tolerance:
        print(f"FAIL: expected {args.expect} within {args.tolerance:.1%}")
        sys.exit(1)


if __name__ == "__main__":
    main()
