"""`ktq-convert-gpu-weights`: kt-kernel's convert_gpu_weights.py command line
over libktq: a compressed-tensors W4A16 / W8A16 checkpoint for vLLM / SGLang.

    ktq-convert-gpu-weights --model_id MODEL --output_dir OUT --quant_method RTN --quant_type W4A16

or from Python: ktq.convert_gpu_weights.main([...]). Same flags; with
--quant_method RTN the output has the bytes the script's llm-compressor run
writes on a GPU (with --force_cpu: on a CPU), without torch. GPTQ (the
script's default method) needs calibration and is refused for now.
"""
import argparse
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
    for name in ("--num_calibration_samples", "--max_sequence_length", "--dampening_frac", "--dataset",
                 "--dataset_split", "--random_seed", "--max_gpu_memory", "--max_cpu_memory"):
        p.add_argument(name, help="GPTQ / memory option: accepted and ignored by RTN")
    p.add_argument("--threads", type=int, default=0, help="worker threads (default: one per core)")
    return p


def main(argv=None):
    a = parser().parse_args(argv)
    if a.quant_method != "RTN":
        print(f"ktq-convert-gpu-weights: --quant_method {a.quant_method} is not supported yet; --quant_method RTN "
              "writes the same format without calibration", file=sys.stderr)
        return 2
    try:
        with Model(a.model_id, threads=a.threads) as m:
            ignore = a.ignore_patterns
            if ignore is not None:  # the script adds DeepSeek's dense layers to any list
                ignore = list(ignore) + [rf"re:model\.layers\.{l}\.mlp\..*$"
                                         for l in range(m.info()["first_dense_layers"])]
            convert(m, a.output_dir, to=a.quant_type, threads=a.threads, ignore=ignore, dtype=a.torch_dtype,
                    rounding="dtype" if a.force_cpu else "fp32")
    except KtqError as e:
        print(f"ktq-convert-gpu-weights: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
