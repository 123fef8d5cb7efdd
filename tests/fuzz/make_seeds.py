#!/usr/bin/env python3
"""Seed corpus for the fuzz targets: real safetensors headers (with a little
data) and configs from the model folders given, plus generated index files.
usage: make_seeds.py CORPUS_DIR MODELS_DIR [MODELS_DIR ...]"""
import json
import os
import sys

corpus, roots = sys.argv[1], sys.argv[2:]
n = 0
for root in roots:
    if not os.path.isdir(root):
        continue
    for model in sorted(os.listdir(root)):
        folder = os.path.join(root, model)
        st = os.path.join(folder, "model.safetensors")
        if os.path.exists(st):
            with open(st, "rb") as f:
                head = f.read(8)
                length = int.from_bytes(head, "little")
                header = f.read(length)
            # A tiny valid file with the same header shape: keep one tensor's worth of names.
            names = json.loads(header)
            keep = {k: v for k, v in list(names.items())[:3]}
            off = 0
            for k, v in keep.items():
                if k == "__metadata__":
                    continue
                size = v["data_offsets"][1] - v["data_offsets"][0]
                v["data_offsets"] = [off, off + size]
                off += size
            small = json.dumps(keep).encode()
            with open(os.path.join(corpus, "header", f"{model}-small"), "wb") as out:
                out.write(len(small).to_bytes(8, "little") + small + bytes(off))
            with open(os.path.join(corpus, "header", f"{model}-real-prefix"), "wb") as out:
                out.write(head + header[:60000])
            n += 2
        cfg = os.path.join(folder, "config.json")
        if os.path.exists(cfg):
            with open(cfg, "rb") as f, open(os.path.join(corpus, "config", model), "wb") as out:
                out.write(f.read())
            n += 1
index = {"metadata": {"total_size": 8}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                                       "b.weight": "sub/model-00002-of-00002.safetensors"}}
with open(os.path.join(corpus, "index", "index"), "w") as out:
    json.dump(index, out)
# kt-kernel merged layout: one expert, INT8 (gate/up [64, 128], down [128, 64])
# and INT4 (gate/up [128, 128], down [128, 128]), 1 NUMA part.
for method, inter, hidden, per in (("int8", 64, 128, 1), ("int4", 128, 128, 2)):
    tensors = {}
    for proj, (rows, cols) in (("gate", (inter, hidden)), ("up", (inter, hidden)), ("down", (hidden, inter))):
        tensors[f"blk.0.ffn_{proj}_exps.0.numa.0.weight"] = ("I8", rows * cols // per, bytes(range(256)) * 64)
        tensors[f"blk.0.ffn_{proj}_exps.0.numa.0.scale"] = ("F32", rows, b"\x00\x00\x80\x3c" * rows)
    header, payload = {}, b""
    for name, (dtype, count, pattern) in sorted(tensors.items()):
        size = count * (4 if dtype == "F32" else 1)
        header[name] = {"dtype": dtype, "shape": [count], "data_offsets": [len(payload), len(payload) + size]}
        payload += (pattern * (size // len(pattern) + 1))[:size]
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(corpus, "kt", method), "wb") as out:
        out.write(len(text).to_bytes(8, "little") + text + payload)
    n += 1
# GGUF v3: a few key-values (string, u32, string array) and tensors of three
# block types (F32 [32], Q8_0 [32 x 2], Q4_K [256]) with their data.
def gguf_string(t):
    b = t.encode()
    return len(b).to_bytes(8, "little") + b


kvs = [("general.architecture", 8, gguf_string("llama")), ("general.alignment", 4, (32).to_bytes(4, "little")),
       ("tokenizer.ggml.tokens", 9, (8).to_bytes(4, "little") + (2).to_bytes(8, "little") + gguf_string("a") +
        gguf_string("b"))]
tensors = [("norm.weight", [32], 0, 32 * 4), ("attn_q.weight", [32, 2], 8, 2 * 34), ("ffn.weight", [256], 12, 144)]
head = b"GGUF" + (3).to_bytes(4, "little") + len(tensors).to_bytes(8, "little") + len(kvs).to_bytes(8, "little")
for key, vtype, value in kvs:
    head += gguf_string(key) + vtype.to_bytes(4, "little") + value
offset, data = 0, b""
for name, ne, ttype, size in tensors:
    head += gguf_string(name) + len(ne).to_bytes(4, "little") + b"".join(d.to_bytes(8, "little") for d in ne)
    head += ttype.to_bytes(4, "little") + offset.to_bytes(8, "little")
    chunk = bytes((i * 37 + 11) % 251 for i in range(size))
    data += chunk + bytes(-len(chunk) % 32)
    offset = len(data)
head += bytes(-len(head) % 32)
with open(os.path.join(corpus, "gguf", "three-types"), "wb") as out:
    out.write(head + data)
n += 1
print(f"seed corpus: {n + 1} files")
