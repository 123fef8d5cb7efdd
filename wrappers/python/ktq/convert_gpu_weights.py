"""`ktq-convert-gpu-weights`: kt-kernel's convert_gpu_weights.py command line
over libktq: a compressed-tensors W4A16 / W8A16 checkpoint for vLLM / SGLang.

    ktq-convert-gpu-weights --model_id MODEL --output_dir OUT --quant_method RTN --quant_type W4A16

or from Python: ktq.convert_gpu_weights.main([...]). Same flags; with
--quant_method RTN the output has the bytes the script's llm-compressor run
writes on a GPU (with --force_cpu: on a CPU), without torch. GPTQ (the
script's default method) is calibrated with ktq's native forward pass on
--dataset, which must be a local text or JSONL file (no hub downloads); it
runs on the GPU when libktq has CUDA and a device is visible (as the script
does), within --max_gpu_memory (e.g. 40GiB), unless --force_cpu.
"""
import argparse
import os
import sys

import re

from . import KtqError, Model, convert, system_info

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def size_bytes(text):
    """'40GiB', '40GB', '500MiB', '1048576' (bytes), as accelerate reads max_memory."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} (e.g. 40GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def parser():
    p = argparse.ArgumentParser(prog="ktq-convert-gpu-weights", description=__doc__.split("\n\n")[0])
    p.add_argument("--model_id", required=True)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--quant_method", default="GPTQ", choices=["GPTQ", "RTN"])
    p.add_argument("--quant_type", default="W8A16", choices=["W4A16", "W8A16"])
    p.add_argument("--ignore_patterns", nargs="*", default=None)
    p.add_argument("--torch_dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--force_cpu", action="store_true", help="the bytes llm-compressor writes on a CPU")
    p.add_argument("--trust_remote_code", action="store_true", help="accepted and ignored")
    p.add_argument("--dataset", help="GPTQ: calibration data, a local plain-text or JSONL file")
    p.add_argument("--num_calibration_samples", type=int, default=512)
    p.add_argument("--max_sequence_length", type=int, default=2048)
    p.add_argument("--dampening_frac", type=float, default=0.1)  # the script's default
    p.add_argument("--random_seed", type=int, default=42)
    p.add_argument("--max_gpu_memory", type=size_bytes, default=0,
                   help="GPTQ on the GPU: memory ktq may hold there, e.g. 40GiB")
    for name in ("--dataset_split", "--max_cpu_memory"):
        p.add_argument(name, help="accepted for compatibility; not used")
    p.add_argument("--threads", type=int, default=0, help="worker threads (default: one per core)")
    return p


def main(argv=None):
    a = parser().parse_args(argv)
    if a.quant_method == "GPTQ" and (a.dataset is None or not os.path.isfile(a.dataset)):
        print("ktq-convert-gpu-weights: --quant_method GPTQ needs --dataset naming a local text or JSONL file "
              "(ktq does not download hub datasets)", file=sys.stderr)
        return 2
    try:
        with Model(a.model_id, threads=a.threads) as m:
            ignore = a.ignore_patterns
            if ignore is not None:  # the script adds DeepSeek's dense layers to any list
                ignore = list(ignore) + [rf"re:model\.layers\.{l}\.mlp\..*$"
                                         for l in range(m.info()["first_dense_layers"])]
            gptq = {}
            if a.quant_method == "GPTQ":
                info = system_info()
                gptq = dict(engine="gptq", dataset=a.dataset, num_calibration_samples=a.num_calibration_samples,
                            max_sequence_length=a.max_sequence_length, dampening_frac=a.dampening_frac,
                            seed=a.random_seed, max_gpu_memory=a.max_gpu_memory,
                            device="cuda" if not a.force_cpu and info["cuda_built"] and info["cuda_devices"] else "cpu")
            convert(m, a.output_dir, to=a.quant_type, threads=a.threads, ignore=ignore, dtype=a.torch_dtype,
                    rounding="dtype" if a.force_cpu else "fp32", **gptq)
    except KtqError as e:
        print(f"ktq-convert-gpu-weights: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
