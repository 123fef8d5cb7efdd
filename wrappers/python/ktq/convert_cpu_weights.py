"""`ktq-convert-cpu-weights`: kt-kernel's convert_cpu_weights.py command line
over libktq, for Python users who call the converter from their scripts.

    ktq-convert-cpu-weights --input-path MODEL --input-type bf16 --output OUT \\
        --quant-method int4 --cpuinfer-threads 32 --threadpool-count 2

or from Python: ktq.convert_cpu_weights.main([...]). Same flags, same output
bytes as kt-kernel 0.7.2's converter (INT4/INT8 AMX layout); FP8 input needs
no GPU. Unsupported methods (awq, moe_int4, moe_int8) are refused.
"""
import argparse
import sys

from . import KtqError, Model, convert

_DTYPES = {"fp8": ("F8_E4M3", "F8_E5M2"), "fp16": ("F16",), "bf16": ("BF16",)}


def parser():
    p = argparse.ArgumentParser(prog="ktq-convert-cpu-weights", description=__doc__.split("\n\n")[0])
    p.add_argument("--input-path", "-i", required=True)
    p.add_argument("--input-type", required=True, choices=["awq", "fp8", "fp16", "bf16"])
    p.add_argument("--output", "-o", required=True)
    p.add_argument("--quant-method", default="int4", choices=["int4", "int8", "awq", "moe_int4", "moe_int8"])
    p.add_argument("--cpuinfer-threads", type=int, default=0, help="worker threads (default: one per core)")
    p.add_argument("--threadpool-count", type=int, default=2, help="NUMA parts per expert")
    p.add_argument("--no-merge-safetensor", action="store_true")
    p.add_argument("--resume-layer", type=int, default=0)
    p.add_argument("--gpu", action="store_true", help="accepted and ignored: no GPU is needed")
    p.add_argument("--fp8-expert-batch", type=int, default=0, help="accepted and ignored")
    return p


def main(argv=None):
    a = parser().parse_args(argv)
    if a.quant_method not in ("int4", "int8") or a.input_type == "awq":
        print(f"ktq-convert-cpu-weights: --quant-method {a.quant_method} / --input-type {a.input_type} "
              "is not supported yet (int4, int8 from bf16/fp16/fp8 are)", file=sys.stderr)
        return 2
    try:
        with Model(a.input_path, threads=a.cpuinfer_threads) as m:
            stored = m.info()["source_dtype"]
            if stored not in _DTYPES[a.input_type]:
                print(f"ktq-convert-cpu-weights: {a.input_path}: --input-type {a.input_type}, but its expert "
                      f"weights are {stored}", file=sys.stderr)
                return 1
            last = [-2]

            def progress(p):
                if p["layer"] != last[0]:
                    last[0] = p["layer"]
                    where = "other tensors" if p["layer"] is None else f"layer {p['layer'] + 1}/{p['layers_total']}"
                    print(f"ktq: {where}", file=sys.stderr)

            convert(m, a.output, to="kt-" + a.quant_method, threads=a.cpuinfer_threads, progress=progress,
                    numa_parts=a.threadpool_count, loose_files=a.no_merge_safetensor, resume_layer=a.resume_layer)
    except KtqError as e:
        print(f"ktq-convert-cpu-weights: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
