#!/usr/bin/env python3
"""Makes tests/golden/forward_nll.json: the next-token losses Hugging Face
transformers computes (float32, CPU) for windows of ../shared/data/eval.txt,
per shared model - the independent reference for ktq's native forward pass
(tests/python/test_eval_ppl.py compares `ktq eval-ppl --nll-out` with it).

Run where torch + transformers are installed:
  python tests/golden/make_forward_golden.py ../shared [--out tests/golden/forward_nll.json]
"""
import argparse
import json
import os

import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

MODELS = ["tiny-llama", "tiny-qwen3-moe", "tiny-mixtral", "tiny-deepseek-v3"]
WINDOW, WINDOWS = 128, 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shared")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "forward_nll.json"))
    args = ap.parse_args()
    with open(os.path.join(args.shared, "data", "eval.txt"), encoding="utf-8") as f:
        text = f.read()
    golden = {"generator": "tests/golden/make_forward_golden.py", "torch": torch.__version__,
              "transformers": transformers.__version__, "window": WINDOW, "windows": WINDOWS,
              "dtype": "float32", "models": {}}
    for name in MODELS:
        path = os.path.join(args.shared, "models", name)
        ids = Tokenizer.from_file(os.path.join(path, "tokenizer.json")).encode(text).ids[: WINDOW * WINDOWS]
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        x = torch.tensor(ids).view(WINDOWS, WINDOW)
        with torch.no_grad():
            logits = model(x).logits.double()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1),
                                                reduction="none")
        golden["models"][name] = {"nll": [round(v, 7) for v in nll.tolist()]}
        print(name, "mean nll", nll.mean().item())
    with open(args.out, "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    main()
