"""ktq's tokenizer against Hugging Face `tokenizers` (the reference every
checkpoint's tokenizer.json is written for): token-for-token on the shared
eval and calibration text, on edge cases (Unicode letters and digits,
whitespace runs, contractions, special tokens, emoji), and on tokenizer.json
variants built from the shared vocabulary (Llama-3 style Split + ByteLevel,
TemplateProcessing, prefix space, string merges)."""
import json
import os
import subprocess

import numpy as np
import pytest

tokenizers = pytest.importorskip("tokenizers")

KTQ = os.environ.get("KTQ_BIN", "ktq")
SHARED = os.environ.get("KTQ_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
TOKENIZER = os.path.join(SHARED, "models", "tiny-llama", "tokenizer.json")

pytestmark = pytest.mark.skipif(not os.path.exists(TOKENIZER), reason=f"shared tokenizer not found at {TOKENIZER}")

EDGE_CASES = [
    "",
    "Hello, world! It's 2026; they'll've done it -- isn't it?",
    "   leading and trailing   \n\n\t tabs\t\tand\r\nnewlines  \n",
    "Ünïcödé lëttërs, Straße, naïve café, ΑΒΓ αβγ, Кириллица, 漢字かなカナ, 한국어",
    "digits 0123456789 ١٢٣ ൧൨ Ⅻ ½ ²",
    "emoji 👍🏽 🇩🇪 ‍ zero\u200bwidth and\u00a0nbsp\u2003em-space",
    "<|endoftext|>start<|endoftext|><|endoftext|> middle <|endoftext|>",
    "'S 'T 'RE ''' 's's't 'd'll ' '",
    "x" * 3000 + " " + "ab" * 500,
    "mixed123abc___---...!!!???   \u3000\u3000",
]


def ktq_ids(tokenizer_path, text, tmp_path):
    txt = tmp_path / "in.txt"
    txt.write_bytes(text.encode("utf-8"))
    ids = tmp_path / "ids.bin"
    r = subprocess.run([KTQ, "tokenize", str(tokenizer_path), str(txt), "--ids-out", str(ids)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return np.fromfile(ids, dtype=np.int32).tolist()


def check_same(tokenizer_path, texts, tmp_path):
    ref = tokenizers.Tokenizer.from_file(str(tokenizer_path))
    for text in texts:
        want = ref.encode(text).ids
        got = ktq_ids(tokenizer_path, text, tmp_path)
        assert got == want, f"text {text[:60]!r}: first difference at {next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}"


@pytest.mark.parametrize("name", ["eval.txt", "calib.txt"])
def test_shared_text_token_for_token(name, tmp_path):
    with open(os.path.join(SHARED, "data", name), encoding="utf-8") as f:
        check_same(TOKENIZER, [f.read()], tmp_path)


def test_edge_cases(tmp_path):
    check_same(TOKENIZER, EDGE_CASES, tmp_path)


def variant(tmp_path, name, edit):
    with open(TOKENIZER, encoding="utf-8") as f:
        doc = json.load(f)
    edit(doc)
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_llama3_style_split_then_bytelevel(tmp_path):
    pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

    def edit(doc):
        doc["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
        doc["post_processor"] = {"type": "TemplateProcessing",
                                 "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                            {"Sequence": {"id": "A", "type_id": 0}}],
                                 "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                                 "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0],
                                                                     "tokens": ["<|endoftext|>"]}}}

    path = variant(tmp_path, "llama3.json", edit)
    with open(os.path.join(SHARED, "data", "eval.txt"), encoding="utf-8") as f:
        check_same(path, EDGE_CASES + [f.read()[:200000]], tmp_path)


def test_prefix_space_and_string_merges(tmp_path):
    def edit(doc):
        doc["pre_tokenizer"]["add_prefix_space"] = True
        doc["model"]["merges"] = [" ".join(m) for m in doc["model"]["merges"]]

    check_same(variant(tmp_path, "prefix.json", edit), EDGE_CASES, tmp_path)


def test_unsupported_tokenizer_is_refused_by_name(tmp_path):
    def edit(doc):
        doc["model"]["type"] = "Unigram"

    r = subprocess.run([KTQ, "tokenize", str(variant(tmp_path, "bad.json", edit)), TOKENIZER],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "model.type" in r.stderr and "Unigram" in r.stderr


def test_invalid_utf8_names_the_offset(tmp_path):
    txt = tmp_path / "bad.txt"
    txt.write_bytes(b"fine text \xff\xfe more")
    r = subprocess.run([KTQ, "tokenize", TOKENIZER, str(txt)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "not valid UTF-8" in r.stderr and "offset 10" in r.stderr
