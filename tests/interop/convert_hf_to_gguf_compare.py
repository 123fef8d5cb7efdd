#!/usr/bin/env python3
"""Interop check (run by hand, where torch is installed): ktq's GGUF straight
from the hub checkpoint against llama.cpp's own path, convert_hf_to_gguf.py
(--outtype bf16, or f16 for an F16 checkpoint) then llama-quantize, for the
types given. Every tensor must have the same name, shape, type and bytes, and
ktq's metadata must hold every key the converter writes with the same value
(ktq may add keys: its provenance, quantize.* of llama-quantize's).

convert_hf_to_gguf.py identifies a BPE tokenizer's pre-tokenizer by hashing
the tokenization of a fixed text and stops on hashes it does not know, which
the shared tiny models' custom tokenizers are; this wrapper answers that one
lookup with the name ktq derives from tokenizer.json (`--pre`, default
gpt-2). Everything else is the converter's own code, run unchanged.

usage: convert_hf_to_gguf_compare.py LLAMA_CPP_DIR LLAMA_QUANTIZE KTQ MODEL WORK [TYPE ...]
  LLAMA_CPP_DIR holds convert_hf_to_gguf.py, conversion/ and gguf-py/ (the llama-cpp-python sdist's vendor/llama.cpp)
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np


def run_converter(llama_cpp, model, out, outtype, pre):
    code = f"""
import sys
sys.path.insert(0, {llama_cpp!r})
sys.path.insert(1, {os.path.join(llama_cpp, 'gguf-py')!r})
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: {pre!r}
sys.argv = ["convert_hf_to_gguf.py", {model!r}, "--outfile", {out!r}, "--outtype", {outtype!r}]
import runpy
runpy.run_path({os.path.join(llama_cpp, 'convert_hf_to_gguf.py')!r}, run_name="__main__")
"""
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - t


def fields(reader):
    from gguf import GGUFValueType
    out = {}
    for k, f in reader.fields.items():
        if k.startswith("GGUF."):
            continue
        if f.types[0] == GGUFValueType.ARRAY:
            sub = f.types[-1]
            if sub == GGUFValueType.STRING:
                out[k] = tuple(bytes(f.parts[i]).decode(errors="replace") for i in f.data)
            else:
                out[k] = tuple(np.concatenate([np.asarray(f.parts[i]).ravel() for i in f.data]).tolist()) if f.data else ()
        elif f.types[0] == GGUFValueType.STRING:
            out[k] = bytes(f.parts[f.data[0]]).decode(errors="replace")
        else:
            out[k] = np.asarray(f.parts[f.data[0]]).ravel()[0].item()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("llama_cpp")
    ap.add_argument("llama_quantize")
    ap.add_argument("ktq")
    ap.add_argument("model")
    ap.add_argument("work")
    ap.add_argument("types", nargs="*", default=["Q8_0", "Q4_K"])
    ap.add_argument("--pre", default="gpt-2")
    ap.add_argument("--outtype", default="bf16")
    ap.add_argument("--threads", default=str(os.cpu_count()))
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.llama_cpp, "gguf-py"))
    from gguf import GGUFReader
    os.makedirs(a.work, exist_ok=True)
    half = os.path.join(a.work, "convert.gguf")
    t_convert = run_converter(a.llama_cpp, a.model, half, a.outtype, a.pre)
    name = os.path.basename(os.path.normpath(a.model))
    print(f"{name}: convert_hf_to_gguf --outtype {a.outtype}: {t_convert:.2f} s")
    failed = 0
    for t in a.types:
        ref, ours = os.path.join(a.work, "ref.gguf"), os.path.join(a.work, "ktq.gguf")
        t0 = time.monotonic()
        subprocess.run([a.llama_quantize, "--pure", half, ref, t, a.threads], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        t_quant = time.monotonic() - t0
        t0 = time.monotonic()
        subprocess.run([a.ktq, "convert", a.model, ours, "--to", "gguf", "--type", t, "--threads", a.threads, "-q",
                        "--overwrite"], check=True)
        t_ktq = time.monotonic() - t0
        R, O = GGUFReader(ref), GGUFReader(ours)
        rt = {x.name: (x.tensor_type.name, tuple(x.shape), np.asarray(x.data).tobytes()) for x in R.tensors}
        ot = {x.name: (x.tensor_type.name, tuple(x.shape), np.asarray(x.data).tobytes()) for x in O.tensors}
        bad = sorted(n for n in rt if ot.get(n) != rt[n])
        extra = sorted(set(ot) - set(rt))
        rf, of = fields(R), fields(O)
        missing = sorted(k for k in rf if k not in of and not k.startswith("quantize."))
        different = sorted(k for k in rf if k in of and rf[k] != of[k] and k not in ("general.name",))
        ok = not bad and not extra and not missing and not different
        failed += not ok
        print(f"{name} {t}: {len(rt) - len(bad)}/{len(rt)} tensors identical (name, type, shape, bytes)"
              + (f", differ {bad[:4]}" if bad else "") + (f", only ktq {extra[:4]}" if extra else "")
              + f"; metadata: {len(rf)} converter keys, missing in ktq {missing}, differing {different}; "
              + f"ktq adds {sorted(set(of) - set(rf))}")
        print(f"{name} {t}: end to end: convert_hf_to_gguf + llama-quantize {t_convert + t_quant:.2f} s "
              f"({t_convert:.2f} + {t_quant:.2f}), ktq {t_ktq:.2f} s: {(t_convert + t_quant) / t_ktq:.2f}x")
        for p in (ref, ours):
            os.remove(p)
    os.remove(half)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
