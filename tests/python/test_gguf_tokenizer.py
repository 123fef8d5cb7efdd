"""The tokenizer in ktq's GGUF files: llama.cpp chooses its pre-tokenizer
split rules by the name in tokenizer.ggml.pre, so a wrong name tokenizes
differently from Hugging Face without any error. These tests give ktq
tokenizer.json files with the pre-tokenizers of real model families
(pre_tokenizer_variants.py) and check:
- the name ktq writes (and add_bos_token, from the post-processor);
- that ktq's own tokenizer still equals Hugging Face `tokenizers` on each
  variant (ignore_merges included), since calibration and eval-ppl use it;
- that a pre-tokenizer ktq does not recognise is refused with the patterns
  and --tokenizer-pre named, leaving no file, and that --tokenizer-pre
  overrides.
That llama.cpp, given these names, tokenizes like Hugging Face is checked by
tests/interop/llama_cpp_tokenize.py (run by hand; it builds llama.cpp)."""
import json
import os

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
tokenizers = pytest.importorskip("tokenizers")
from gguf import GGUFReader  # noqa: E402

import pre_tokenizer_variants as variants  # noqa: E402
from test_cli import SHARED, ktq, needs_shared, shared_model  # noqa: E402

MODEL = "tiny-qwen3-moe"


def model_with_tokenizer(tmp_path, name, doc):
    """A copy of the shared model (files linked) whose tokenizer.json is `doc`."""
    out = tmp_path / name
    out.mkdir()
    src = shared_model(MODEL)
    for f in os.listdir(src):
        if f != "tokenizer.json":
            os.symlink(os.path.join(src, f), out / f)
    (out / "tokenizer.json").write_text(json.dumps(doc), encoding="utf-8")
    return out


def shared_tokenizer():
    with open(os.path.join(shared_model(MODEL), "tokenizer.json"), encoding="utf-8") as f:
        return json.load(f)


def field(path, key):
    f = GGUFReader(path).fields.get(key)
    if f is None:
        return None
    v = f.parts[f.data[0]]
    return bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else bool(v[0])


@needs_shared
@pytest.mark.parametrize("family", sorted(variants.KNOWN))
def test_pre_tokenizer_name_and_bos(tmp_path, family):
    edit, name, adds_bos = variants.KNOWN[family]
    model = model_with_tokenizer(tmp_path, family, variants.edited(shared_tokenizer(), edit))
    out = tmp_path / "m.gguf"
    ktq("convert", model, out, "--to", "gguf", "--type", "Q8_0", "-q")
    assert field(out, "tokenizer.ggml.pre") == name
    assert field(out, "tokenizer.ggml.add_bos_token") == adds_bos
    # The BOS that llama.cpp adds is the one Hugging Face's template adds.
    ref = tokenizers.Tokenizer.from_file(str(model / "tokenizer.json")).encode("hello").ids
    if adds_bos:  # llama.cpp adds bos_token_id: it must be the one the template adds (config.json has none here)
        assert ref[0] == shared_tokenizer()["added_tokens"][0]["id"]
        f = GGUFReader(out).fields["tokenizer.ggml.bos_token_id"]
        assert int(f.parts[f.data[0]][0]) == ref[0]


@needs_shared
def test_qwen_nfc_normalizer_is_accepted(tmp_path):
    doc = variants.edited(shared_tokenizer(), variants.KNOWN["qwen2"][0])
    doc["normalizer"] = {"type": "NFC"}
    out = tmp_path / "m.gguf"
    ktq("convert", model_with_tokenizer(tmp_path, "nfc", doc), out, "--to", "gguf", "-q")
    assert field(out, "tokenizer.ggml.pre") == "qwen2"


@needs_shared
@pytest.mark.parametrize("case", sorted(variants.UNKNOWN))
def test_unrecognised_pre_tokenizer_is_refused_then_overridable(tmp_path, case):
    edit, phrase = variants.UNKNOWN[case]
    model = model_with_tokenizer(tmp_path, case, variants.edited(shared_tokenizer(), edit))
    out = tmp_path / "m.gguf"
    r = ktq("convert", model, out, "--to", "gguf", check=False)
    assert r.returncode != 0
    assert "tokenizer.json" in r.stderr and phrase in r.stderr and "--tokenizer-pre" in r.stderr, r.stderr
    assert not out.exists() and not any(p.name.startswith("m.gguf") for p in tmp_path.iterdir())
    ktq("convert", model, out, "--to", "gguf", "--tokenizer-pre", "llama-bpe", "-q")
    assert field(out, "tokenizer.ggml.pre") == "llama-bpe"


@needs_shared
def test_sentencepiece_style_bpe_is_refused(tmp_path):
    doc = shared_tokenizer()
    doc["model"]["byte_fallback"] = True  # Mixtral / Llama 2: llama.cpp's "llama" vocabulary, not gpt2
    r = ktq("convert", model_with_tokenizer(tmp_path, "spm", doc), tmp_path / "m.gguf", "--to", "gguf", check=False)
    assert r.returncode != 0 and "byte_fallback" in r.stderr, r.stderr


def ktq_ids(tokenizer_path, text, tmp_path):
    txt = tmp_path / "in.txt"
    txt.write_bytes(text.encode("utf-8"))
    ids = tmp_path / "ids.bin"
    ktq("tokenize", tokenizer_path, txt, "--ids-out", ids)
    return np.fromfile(ids, dtype=np.int32).tolist()


@needs_shared
@pytest.mark.parametrize("family", sorted(variants.KNOWN))
def test_ktq_tokenizer_equals_hugging_face_on_each_family(tmp_path, family):
    doc = variants.edited(shared_tokenizer(), variants.KNOWN[family][0])
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with open(os.path.join(SHARED, "data", "eval.txt"), encoding="utf-8") as f:
        text = f.read()[:100000]
    text += "\nDigits 1234567 漢字かなカナ [brackets]word ¿qué? \r\n\r\n  end"
    assert ktq_ids(path, text, tmp_path) == tokenizers.Tokenizer.from_file(str(path)).encode(text).ids


@needs_shared
def test_ignore_merges_takes_a_word_in_the_vocabulary_whole(tmp_path):
    # A token no merge sequence reaches: with ignore_merges (Llama 3) the word becomes that one token.
    doc = variants.edited(shared_tokenizer(), variants.KNOWN["llama-bpe"][0])
    new_id = max(max(doc["model"]["vocab"].values()), max(a["id"] for a in doc["added_tokens"])) + 1
    doc["model"]["vocab"]["\u0120zqxjv"] = new_id  # "Ġ" is the byte-level stand-in for a space
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    text = "say zqxjv now"
    want = tokenizers.Tokenizer.from_file(str(path)).encode(text).ids
    assert new_id in want
    assert ktq_ids(path, text, tmp_path) == want
    doc["model"]["ignore_merges"] = False
    path.write_text(json.dumps(doc), encoding="utf-8")
    want = tokenizers.Tokenizer.from_file(str(path)).encode(text).ids
    assert new_id not in want
    assert ktq_ids(path, text, tmp_path) == want
