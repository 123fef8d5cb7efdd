#!/usr/bin/env python3
"""Runs kt-kernel's own convert_cpu_weights.py (from a ktransformers
checkout, e.g. tag v0.7.0) in its AWQ mode on a machine without a GPU or
the kt_kernel extension, to make the reference bytes ktq's kt-awq output
is compared with (tests/golden/make_kt_awq_golden.sh):
  - `kt_kernel` is replaced by a stub: the AWQ path never calls its
    KTMoEWrapper (only the int4/int8 paths do);
  - without CUDA, Tensor.to("cuda") leaves the tensor where it is: the AWQ
    path only shifts, masks and re-orders int32 nibbles, which is the same
    arithmetic on any device.
Needs torch, triton (imported at the script's top) and safetensors.

usage: kt_kernel_awq_reference.py SCRIPT -i AWQ_MODEL -o OUT   (other flags passed on)
"""
import runpy
import sys
import types

import torch


def main():
    script, args = sys.argv[1], sys.argv[2:]
    stub = types.ModuleType("kt_kernel")
    stub.KTMoEWrapper = None
    sys.modules["kt_kernel"] = stub
    if not torch.cuda.is_available():
        original = torch.Tensor.to

        def to(self, *a, **k):
            if a and isinstance(a[0], (str, torch.device)) and str(a[0]).startswith("cuda"):
                return self
            return original(self, *a, **k)

        torch.Tensor.to = to
    sys.argv = [script, "--input-type", "awq", "--quant-method", "awq", *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
