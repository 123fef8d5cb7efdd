#!/usr/bin/env python3
"""Golden per-tensor types of llama-quantize's mixtures (Q4_K_M, ...), for
tests/python/test_gguf.py: for each shared model, ktq writes the unquantized
GGUF in the checkpoint's half-precision dtype, llama.cpp's own llama-quantize
(no --pure) requantizes it to every mixture, and gguf-py reads back which ggml
type each tensor got. CI then checks that `ktq convert --mix NAME` chooses
the same types (the bytes follow from the block quantizers, which are golden
elsewhere; tests/interop/llama_quantize_bytes.sh compares bytes live).

    LLAMA_QUANTIZE=/path/to/llama-quantize KTQ_BIN=build/ktq \\
        python3 tests/golden/make_gguf_mix_golden.py [SHARED_DIR]

llama-quantize: built from the llama-cpp-python sdist as in
tests/interop/llama_cpp_ppl.sh (target llama-quantize). Needs gguf (pip).
"""
import json
import os
import subprocess
import sys
import tempfile

from gguf import GGUFReader

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared")
MODELS = {"tiny-llama": "BF16", "tiny-qwen3-moe": "BF16", "tiny-mixtral": "F16", "tiny-deepseek-v3": "BF16"}
MIXES = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0",
         "Q4_0", "Q4_1", "Q5_0", "Q5_1"]


def main():
    ktq, quantize = os.environ.get("KTQ_BIN", "ktq"), os.environ["LLAMA_QUANTIZE"]
    out = {"generator": "llama-quantize of llama-cpp-python 0.3.36 (vendored llama.cpp), no --pure, no imatrix",
           "models": {}}
    with tempfile.TemporaryDirectory() as work:
        for model, half in MODELS.items():
            src = os.path.join(work, f"{model}.gguf")
            subprocess.run([ktq, "convert", os.path.join(SHARED, "models", model), src, "--to", "gguf", "--type", half,
                            "--quiet"], check=True)
            out["models"][model] = {}
            for mix in MIXES:
                dst = os.path.join(work, f"{model}-{mix}.gguf")
                subprocess.run([quantize, src, dst, mix, "2"], check=True, capture_output=True)
                out["models"][model][mix] = {t.name: t.tensor_type.name for t in GGUFReader(dst).tensors}
                os.remove(dst)
    with open(os.path.join(HERE, "gguf_mix_types.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
