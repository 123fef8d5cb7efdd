#!/usr/bin/env python3
"""Interop check (run by hand): llama.cpp tokenizes ktq's GGUF files exactly
as Hugging Face `tokenizers` tokenizes the checkpoint's tokenizer.json.

llama.cpp does not read pre-tokenizer rules from the file; it picks built-in
ones by the name in tokenizer.ggml.pre. For each model family's pre-tokenizer
(tests/python/pre_tokenizer_variants.py: GPT-2's ByteLevel split, Llama 3,
Qwen2/3, Qwen3.5, DeepSeek-V3) this puts that tokenizer.json on a shared tiny
model, lets ktq write the GGUF (ktq chooses the name), and compares
llama-tokenize's ids with tokenizers' on the whole of eval.txt and calib.txt
plus a multilingual / digits / whitespace sample. CI checks the names ktq
chooses (tests/python/test_gguf_tokenizer.py); this shows the names are right.

llama-tokenize is built from the llama.cpp source in the llama-cpp-python sdist:
  pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp && tar xzf ... -C /tmp/lcp
  touch vendor/llama.cpp/ggml/ggml.pc.in   # missing from the sdist
  cmake -S vendor/llama.cpp -B /tmp/llama-build -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF
  cmake --build /tmp/llama-build --target llama-tokenize
usage: LLAMA_TOKENIZE=/tmp/llama-build/bin/llama-tokenize KTQ_BIN=build/ktq tests/interop/llama_cpp_tokenize.py [SHARED]
"""
import json
import os
import subprocess
import sys
import tempfile

import tokenizers

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "python"))
import pre_tokenizer_variants as variants  # noqa: E402

SAMPLE = ("Numbers 1 12 123 1234 12345 3.14159 1,000,000 ٣٤٥ ൧൨\n"
          "Chinese 中文分词测试，日本語のひらがなとカタカナ。한국어 문장.\n"
          "Accents: naïve café, Straße, ΑΒΓ αβγ, Кириллица. Marks: e\u0301 a\u0308\n"
          "Code: def f(x): return x**2  # [brackets]word {braces} <tags> ¿qué? ¡sí!\n"
          "Contractions: it's IT'S they'll've we'd I'M\r\n\r\n\t tabs\t\tand   spaces   \n\n\n end")


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "..", "shared")
    ktq = os.environ.get("KTQ_BIN", "ktq")
    llama = os.environ["LLAMA_TOKENIZE"]
    src = os.path.join(shared, "models", "tiny-qwen3-moe")
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        base = json.load(f)
    texts = {"SAMPLE": SAMPLE}
    for name in ("eval.txt", "calib.txt"):
        with open(os.path.join(shared, "data", name), encoding="utf-8") as f:
            texts[name] = f.read()
    failed = 0
    print("| family | tokenizer.ggml.pre | text | tokens | llama.cpp == HF |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for family, (edit, _, _) in sorted(variants.KNOWN.items()):
            model = os.path.join(work, family)
            os.mkdir(model)
            for f in os.listdir(src):
                if f != "tokenizer.json":
                    os.symlink(os.path.join(src, f), os.path.join(model, f))
            with open(os.path.join(model, "tokenizer.json"), "w", encoding="utf-8") as f:
                json.dump(variants.edited(base, edit), f)
            out = os.path.join(work, family + ".gguf")
            subprocess.run([ktq, "convert", model, out, "--to", "gguf", "--type", "Q8_0", "-q"], check=True)
            from gguf import GGUFReader
            fld = GGUFReader(out).fields["tokenizer.ggml.pre"]
            pre = bytes(fld.parts[fld.data[0]]).decode()
            hf = tokenizers.Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
            for tname, text in texts.items():
                path = os.path.join(work, "text.txt")
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(text)
                r = subprocess.run([llama, "-m", out, "-f", path, "--ids", "--log-disable", "--no-escape"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise SystemExit(f"llama-tokenize failed on {family}:\n{r.stderr[-2000:]}")
                line = [ln for ln in r.stdout.splitlines() if ln.startswith("[")][-1]
                got = json.loads(line)
                want = hf.encode(text).ids
                same = got == want
                if not same:
                    failed += 1
                    at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                    print(f"  {family}/{tname}: first difference at token {at}: llama.cpp {got[at:at + 8]} "
                          f"HF {want[at:at + 8]}", file=sys.stderr)
                print(f"| {family} | {pre} | {tname} | {len(want)} | {'yes' if same else 'NO'} |")
            os.remove(out)
            if family != "gpt-2":
                # Control: the same file under GPT-2's name must tokenize differently, or this check could not
                # tell a right name from a wrong one.
                subprocess.run([ktq, "convert", model, out, "--to", "gguf", "--type", "Q8_0", "-q",
                                "--tokenizer-pre", "gpt-2"], check=True)
                path = os.path.join(work, "text.txt")
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(texts["eval.txt"])
                r = subprocess.run([llama, "-m", out, "-f", path, "--ids", "--log-disable", "--no-escape"],
                                   capture_output=True, text=True, check=True)
                got = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("[")][-1])
                differs = got != hf.encode(texts["eval.txt"]).ids
                if not differs:
                    failed += 1
                print(f"| {family} | gpt-2 (control, wrong) | eval.txt | | {'differs, as it must' if differs else 'SAME (check is blind)'} |")
                os.remove(out)
    if failed:
        raise SystemExit(f"{failed} text(s) tokenized differently")
    print("llama.cpp tokenizes every family like Hugging Face")


if __name__ == "__main__":
    main()
