"""tokenizer.json pre-tokenizers as real model families ship them, applied to
the shared tiny models' vocabulary, with the llama.cpp pre-tokenizer name
(tokenizer.ggml.pre) each must be exported under.

The patterns are the ones in the models' own tokenizer.json files (Llama 3,
Qwen2/Qwen3, Qwen3.5, DeepSeek-V3); the names are llama.cpp's. Used by
test_gguf_tokenizer.py (ktq picks the name; ktq's tokenizer == Hugging
Face's) and by tests/interop/llama_cpp_tokenize.py (llama.cpp's tokenizer,
given that name, == Hugging Face's on the eval text).
"""
import copy

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN35 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# DeepSeek-V3 spells CR/LF as the characters themselves inside its third pattern.
DEEPSEEK_V3 = [r"\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
               "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
               "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"]


def split(pattern):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


def byte_level(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def sequence(*steps):
    return {"type": "Sequence", "pretokenizers": list(steps)}


def bos_template(doc):
    """A TemplateProcessing post-processor that puts the vocabulary's first added token in front (BOS)."""
    tok = doc["added_tokens"][0]
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": tok["content"], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {tok["content"]: {"id": tok["content"], "ids": [tok["id"]], "tokens": [tok["content"]]}}}


def _llama3(doc):
    doc["pre_tokenizer"] = sequence(split(LLAMA3), byte_level(False))
    doc["model"]["ignore_merges"] = True
    doc["post_processor"] = bos_template(doc)


def _qwen2(doc):
    doc["pre_tokenizer"] = sequence(split(QWEN2), byte_level(False))
    doc["model"]["ignore_merges"] = False


def _qwen35(doc):
    doc["pre_tokenizer"] = sequence(split(QWEN35), byte_level(False))


def _deepseek_v3(doc):
    doc["pre_tokenizer"] = sequence(*[split(p) for p in DEEPSEEK_V3], byte_level(False))
    doc["post_processor"] = bos_template(doc)


# name -> (edit of the tokenizer.json document, llama.cpp name, whether BOS is added)
KNOWN = {
    "gpt-2": (lambda doc: None, "gpt-2", False),
    "llama-bpe": (_llama3, "llama-bpe", True),
    "qwen2": (_qwen2, "qwen2", False),
    "qwen35": (_qwen35, "qwen35", False),
    "deepseek-v3": (_deepseek_v3, "deepseek-v3", True),
}


def _llama3_digits4(doc):
    _llama3(doc)
    doc["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}{1,4}")


def _llama3_without_ignore_merges(doc):
    _llama3(doc)
    doc["model"]["ignore_merges"] = False


def _prefix_space(doc):
    doc["pre_tokenizer"]["add_prefix_space"] = True


# name -> (edit, a phrase the refusal must contain)
UNKNOWN = {
    "other-regex": (_llama3_digits4, r"\p{N}{1,4}"),
    "llama3-merges": (_llama3_without_ignore_merges, "ignore_merges false"),
    "prefix-space": (_prefix_space, "add_prefix_space"),
}


def edited(doc, edit):
    out = copy.deepcopy(doc)
    edit(out)
    return out
