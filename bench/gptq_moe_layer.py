#!/usr/bin/env python3
"""GPTQ on one synthetic MoE layer: ktq (CUDA) versus llm-compressor 0.14.

What it measures: wall time (calibration = Hessian accumulation, solve = GPTQ)
and the relative output reconstruction error of W4A16 GPTQ (int4, symmetric,
group strategy, actorder "static", blocksize 128, dampening 0.01) applied to
every expert's gate_proj, up_proj and down_proj of one Qwen3-MoE-like layer.

Subcommands:
  make DIR      seeded synthetic inputs and weights (generated on --device)
  baseline DIR  llm-compressor run: its own make_empty_hessian /
                accumulate_hessian (fed by forward hooks as GPTQModifier's are,
                every expert seeing every token as with all-experts MoE
                calibration, one --chunk token sample per forward; the timed
                calibration includes the experts' bf16 forward, down_proj too,
                since the hooked pipeline runs it), min-max
                qparams through compressed_tensors' calculate_qparams, then its
                assign_batches("auto") / prepare_batch / quantize_weight (which
                uses its Triton GPTQ block update when Triton and CUDA exist).
  report DIR    errors on x_eval and timing ratios for llmc_* and ktq_* files.

Files in DIR (raw little-endian, bf16 = 2-byte values, row-major, no header):
  meta.json      {hidden, experts, inter, tokens, eval_tokens, group_size, seed}
  x.bf16         [tokens, hidden]  calibration inputs: randn * exp(0.5*randn(hidden))
                 (with --corr-rank R: (randn + randn(R) @ mix) * scale; meta gets
                 "corr_rank"; without it channels are independent, the Hessian is
                 near-diagonal and GPTQ is close to round-to-nearest)
  x_eval.bf16    [eval_tokens, hidden]  same distribution, independent draw
  gate_up.bf16   [experts, 2*inter, hidden]  gate_proj rows then up_proj rows
  down.bf16      [experts, hidden, inter]
  {llmc,ktq}_gate_up.bf16, {llmc,ktq}_down.bf16  dequantized GPTQ weights
  {llmc,ktq}_times.json  {"calibration_s", "solve_s", "total_s", ...}
  report.json    written by `report`
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

T0 = time.perf_counter()


def log(msg):
    print(f"[{time.perf_counter() - T0:8.1f}s] {msg}", file=sys.stderr, flush=True)


def write_bf16(f, t):
    t.contiguous().view(torch.int16).cpu().numpy().tofile(f)


def read_bf16(path, shape, device, rows_per_read=1 << 16):
    """Read a raw bf16 file into a device tensor, in chunks along dim 0."""
    numel = math.prod(shape)
    if os.path.getsize(path) != 2 * numel:
        raise ValueError(f"{path}: size {os.path.getsize(path)} != 2*{numel}")
    out = torch.empty(shape, dtype=torch.bfloat16, device=device)
    flat, row = out.view(shape[0], -1), numel // shape[0]
    with open(path, "rb") as f:
        for r in range(0, shape[0], rows_per_read):
            n = min(rows_per_read, shape[0] - r)
            a = np.fromfile(f, dtype=np.int16, count=n * row)
            flat[r:r + n].copy_(torch.from_numpy(a).view(torch.bfloat16).view(n, row))
    return out


def load_meta(d):
    with open(os.path.join(d, "meta.json")) as f:
        return json.load(f)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def cmd_make(a):
    os.makedirs(a.dir, exist_ok=True)
    dev = torch.device(a.device)
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    H, E, I = a.hidden, a.experts, a.inter
    if H % a.group_size or I % a.group_size:
        sys.exit("hidden and inter must be multiples of --group-size")
    meta = dict(hidden=H, experts=E, inter=I, tokens=a.tokens,
                eval_tokens=a.eval_tokens, group_size=a.group_size, seed=a.seed)
    chan = torch.exp(0.5 * torch.randn(H, generator=gen, device=dev))
    R = a.corr_rank
    if R:  # optional shared low-rank component: correlated channels
        meta["corr_rank"] = R
        mix = torch.randn(R, H, generator=gen, device=dev) * (2 / math.sqrt(R))
    with open(os.path.join(a.dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    for name, n_tok in (("x", a.tokens), ("x_eval", a.eval_tokens)):
        with open(os.path.join(a.dir, f"{name}.bf16"), "wb") as f:
            for r in range(0, n_tok, 1 << 16):
                n = min(1 << 16, n_tok - r)
                z = torch.randn(n, H, generator=gen, device=dev)
                if R:
                    z += torch.randn(n, R, generator=gen, device=dev) @ mix
                write_bf16(f, (z * chan).bfloat16())
        log(f"wrote {name}.bf16 [{n_tok}, {H}]")
    for name, shape in (("gate_up", (2 * I, H)), ("down", (H, I))):
        with open(os.path.join(a.dir, f"{name}.bf16"), "wb") as f:
            for _ in range(E):
                write_bf16(f, (torch.randn(*shape, generator=gen, device=dev) * 0.02).bfloat16())
        log(f"wrote {name}.bf16 [{E}, {shape[0]}, {shape[1]}]")


def cmd_baseline(a):
    import compressed_tensors
    import llmcompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from compressed_tensors.quantization.utils import calculate_qparams
    from compressed_tensors.utils.triton import triton_req
    from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight
    from llmcompressor.modifiers.gptq.helpers import (
        accumulate_hessian, assign_batches, get_triton_gptq_config,
        make_empty_hessian, prepare_batch)

    m = load_meta(a.dir)
    dev = torch.device(a.device)
    H, E, I, T, gs = m["hidden"], m["experts"], m["inter"], m["tokens"], m["group_size"]
    x = read_bf16(os.path.join(a.dir, "x.bf16"), (T, H), dev)
    w_gu = read_bf16(os.path.join(a.dir, "gate_up.bf16"), (E, 2 * I, H), dev)
    w_d = read_bf16(os.path.join(a.dir, "down.bf16"), (E, H, I), dev)
    log(f"loaded {a.dir} on {dev}: E={E} H={H} I={I} T={T} gs={gs}")

    # GPTQModifier defaults with the W4A16 group scheme and actorder "static".
    qargs = QuantizationArgs(num_bits=4, type="int", symmetric=True,
                             strategy="group", group_size=gs, actorder="static")
    scheme = QuantizationScheme(targets=["Linear"], weights=qargs)
    block_size, damp = 128, 0.01
    triton_used = bool(triton_req(torch.empty(1, device=dev))
                       and os.environ.get("LLMCOMPRESSOR_DISABLE_GPTQ_TRITON", "0") != "1"
                       and get_triton_gptq_config(qargs) is not None)

    hess, nsamp = {}, {}  # as GPTQModifier._hessians / _num_samples

    def calibrate(module, args, _out):  # GPTQModifier.calibrate_module
        if module not in nsamp:
            hess[module] = make_empty_hessian(module, device=dev)
            nsamp[module] = torch.zeros((), device=dev)
        hess[module], nsamp[module] = accumulate_hessian(args[0], module, hess[module], nsamp[module])

    def linear(w):  # nn.Linear whose weight is a view of the loaded tensor
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, device="meta")
        lin.weight = torch.nn.Parameter(w, requires_grad=False)
        lin.quantization_scheme = scheme
        lin.register_forward_hook(calibrate)
        return lin

    experts = [(linear(w_gu[e, :I]), linear(w_gu[e, I:]), linear(w_d[e])) for e in range(E)]

    # a) calibration: every expert runs on every token of each sample
    #    (ExpertMLPWithGate: down(act(gate(x)) * up(x))), hooks accumulate Hessians.
    n_chunks = (T + a.chunk - 1) // a.chunk
    last = time.perf_counter()
    sync(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        for c in range(n_chunks):
            xc = x[c * a.chunk:(c + 1) * a.chunk]
            for gate, up, down in experts:
                down(F.silu(gate(xc)) * up(xc))
            if time.perf_counter() - last > 10 or c == n_chunks - 1:
                last = time.perf_counter()
                log(f"calibration: sample {c + 1}/{n_chunks}")
    sync(dev)
    t_cal = time.perf_counter() - t0
    log(f"calibration {t_cal:.2f} s")
    del x, xc

    # b) solve: memoryless min-max weight observer (amin/amax per row group of
    #    the bf16 weight; calculate_qparams clamps min<=0, max>=0 itself), then
    #    GPTQModifier.compress_module_list.
    out_gu, out_d = torch.empty_like(w_gu), torch.empty_like(w_d)
    sync(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        qp, dst = {}, {}
        for w, out, parts in ((w_gu, out_gu, ((0, slice(0, I)), (1, slice(I, 2 * I)))),
                              (w_d, out_d, ((2, slice(None)),))):
            g = w.unflatten(-1, (-1, gs))
            scale, zp = calculate_qparams(g.amin(-1), g.amax(-1), qargs)
            for e in range(E):
                for k, rows in parts:
                    mod = experts[e][k]
                    qp[mod] = {"scale": scale[e, rows], "zero_point": zp[e, rows],
                               "global_scale": None}
                    dst[mod] = out[e, rows]
        batches = assign_batches(list(nsamp.keys()), "auto", block_size)
        log(f"solve: {len(batches)} batch(es) of sizes {[len(b) for b in batches]}")
        n_fallback = 0
        for i, batch in enumerate(batches):
            W, Hs, S, Z, G = prepare_batch(batch, [qp[mod] for mod in batch], hess, nsamp)
            Q, _losses, fallback = quantize_weight(
                weights=W, hessians=Hs, scale=S, zero_point=Z, global_scale=G,
                quant_args=qargs, blocksize=block_size, percdamp=damp)
            del W, Hs
            for j, mod in enumerate(batch):
                dst[mod].copy_(Q[j])
            n_fallback += int(fallback.sum().item())
            del Q
            log(f"solve: batch {i + 1}/{len(batches)} ({len(batch)} modules, "
                f"{tuple(batch[0].weight.shape)}) done")
    sync(dev)
    t_solve = time.perf_counter() - t0
    log(f"solve {t_solve:.2f} s, RTN fallbacks: {n_fallback}")

    for name, t in (("llmc_gate_up", out_gu), ("llmc_down", out_d)):
        with open(os.path.join(a.dir, f"{name}.bf16"), "wb") as f:
            write_bf16(f, t)
    times = {"calibration_s": t_cal, "solve_s": t_solve, "total_s": t_cal + t_solve,
             "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev),
             "torch": torch.__version__, "llmcompressor": llmcompressor.__version__,
             "compressed_tensors": compressed_tensors.__version__,
             "triton_block_update": triton_used, "chunk": a.chunk,
             "batches": [len(b) for b in batches], "rtn_fallbacks": n_fallback}
    with open(os.path.join(a.dir, "llmc_times.json"), "w") as f:
        json.dump(times, f, indent=1)
    print(json.dumps(times, indent=1))


def cmd_report(a):
    torch.backends.cuda.matmul.allow_tf32 = False
    m = load_meta(a.dir)
    dev = torch.device(a.device)
    H, E, I, M = m["hidden"], m["experts"], m["inter"], m["eval_tokens"]
    p = lambda n: os.path.join(a.dir, n)  # noqa: E731
    x = read_bf16(p("x_eval.bf16"), (M, H), dev)
    w_gu = read_bf16(p("gate_up.bf16"), (E, 2 * I, H), dev)
    w_d = read_bf16(p("down.bf16"), (E, H, I), dev)
    xf = x.float()
    res, notes = {}, []
    for label, pre in (("llm-compressor", "llmc"), ("ktq", "ktq")):
        files = [f"{pre}_gate_up.bf16", f"{pre}_down.bf16", f"{pre}_times.json"]
        missing = [f for f in files if not os.path.exists(p(f))]
        if missing:
            notes.append(f"skipped {label}: missing {', '.join(missing)}")
            continue
        with open(p(files[2])) as f:
            times = json.load(f)
        q_gu = read_bf16(p(files[0]), (E, 2 * I, H), dev)
        q_d = read_bf16(p(files[1]), (E, H, I), dev)
        num = {"gu": 0.0, "d": 0.0}
        den = {"gu": 0.0, "d": 0.0}
        for e in range(E):
            wg, wu = w_gu[e, :I], w_gu[e, I:]
            act = (F.silu(F.linear(x, wg)) * F.linear(x, wu)).float()
            for k, inp, w, q in (("gu", xf, w_gu[e], q_gu[e]), ("d", act, w_d[e], q_d[e])):
                wf = w.float()
                num[k] += (inp @ (wf - q.float()).T).square().sum().item()
                den[k] += (inp @ wf.T).square().sum().item()
        err = {"gate_up_err": num["gu"] / den["gu"], "down_err": num["d"] / den["d"],
               "total_err": (num["gu"] + num["d"]) / (den["gu"] + den["d"])}
        res[label] = {**{k: times.get(k) for k in ("calibration_s", "solve_s", "total_s")},
                      **err, "times": times}
        del q_gu, q_d

    fmt = lambda v, s: "-" if v is None else f"{v:{s}}"  # noqa: E731
    print("| method | calibration s | solve s | total s | gate/up err | down err | total err |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in res.items():
        print(f"| {label} | {fmt(r['calibration_s'], '.2f')} | {fmt(r['solve_s'], '.2f')} | "
              f"{fmt(r['total_s'], '.2f')} | {r['gate_up_err']:.4e} | {r['down_err']:.4e} | "
              f"{r['total_err']:.4e} |")
    ratios = {}
    if len(res) == 2:
        lc, kt = res["llm-compressor"], res["ktq"]
        for ph in ("calibration_s", "solve_s", "total_s"):
            if lc[ph] and kt[ph]:
                ratios[f"speedup_{ph[:-2]}"] = lc[ph] / kt[ph]
        for k in ("gate_up_err", "down_err", "total_err"):
            ratios[f"err_ratio_{k[:-4]}"] = kt[k] / lc[k] if lc[k] else None
        print()
        print("ktq speed-up (llmc s / ktq s): " + ", ".join(
            f"{k[8:]} {v:.2f}x" for k, v in ratios.items() if k.startswith("speedup")))
        print("error ratio (ktq / llmc): " + ", ".join(
            f"{k[10:]} {v:.4f}" for k, v in ratios.items()
            if k.startswith("err_ratio") and v is not None))
        # How many dequantized weights are bit-identical between the two.
        same = total = 0
        for name, shape in (("gate_up", (E, 2 * I, H)), ("down", (E, H, I))):
            a_ = read_bf16(p(f"llmc_{name}.bf16"), shape, dev).view(torch.int16)
            b_ = read_bf16(p(f"ktq_{name}.bf16"), shape, dev).view(torch.int16)
            same += (a_ == b_).sum().item()
            total += a_.numel()
            del a_, b_
        ratios["identical_weights"] = same / total
        print(f"bit-identical dequantized weights: {same} of {total} ({100 * same / total:.4f} %)")
    for n in notes:
        print(f"\nNote: {n}")
    with open(p("report.json"), "w") as f:
        json.dump({"meta": m, "methods": res, "ratios": ratios, "notes": notes}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write synthetic inputs/weights")
    mk.add_argument("dir")
    mk.add_argument("--tokens", type=int, default=1048576)
    mk.add_argument("--eval-tokens", type=int, default=16384)
    mk.add_argument("--hidden", type=int, default=2048)
    mk.add_argument("--experts", type=int, default=128)
    mk.add_argument("--inter", type=int, default=768)
    mk.add_argument("--group-size", type=int, default=128)
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--device", default="cuda")
    mk.add_argument("--corr-rank", type=int, default=0,
                    help="add a shared rank-R Gaussian component to x (0: independent "
                    "channels, where GPTQ can do little better than round-to-nearest)")
    bl = sub.add_parser("baseline", help="run llm-compressor GPTQ")
    bl.add_argument("dir")
    bl.add_argument("--device", default="cuda")
    bl.add_argument("--chunk", type=int, default=2048)
    rp = sub.add_parser("report", help="compare llmc_* and ktq_* results")
    rp.add_argument("dir")
    rp.add_argument("--device", default="cuda")
    a = ap.parse_args()
    {"make": cmd_make, "baseline": cmd_baseline, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
