"""`ktq-convert-gpu-weights`: kt-kernel's convert_gpu_weights.py command line
over libktq: a compressed-tensors W4A16 / W8A16 checkpoint for vLLM / SGLang.

    ktq-convert-gpu-weights --model_id MODEL --output_dir OUT --quant_method RTN --quant_type W4A16

or from Python: ktq.convert_gpu_weights.main([...]). Same flags; with
--quant_method RTN the output has the bytes the script's llm-compressor run
writes on a GPU (with --force_cpu: on a CPU), without torch. GPTQ (the
script's default method) is calibrated with ktq's native forward pass on
--dataset, which must be a local text or JSONL file (no hub downloads).
"""
import argparse
import os
import sys

from . import KtqError, Model, convert


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
    for name in ("--dataset_split", "--max_gpu_memory", "--max_cpu_memory"):
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
                gptq = dict(engine="gptq", dataset=a.dataset, num_calibration_samples=a.num_calibration_samples,
                            max_sequence_length=a.max_sequence_length, dampening_frac=a.dampening_frac,
                            seed=a.random_seed)
            convert(m, a.output_dir, to=a.quant_type, threads=a.threads, ignore=ignore, dtype=a.torch_dtype,
                    rounding="dtype" if a.force_cpu else "fp32", **gptq)
    except KtqError as e:
        print(f"ktq-convert-gpu-weights: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
