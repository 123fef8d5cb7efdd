"""A straightforward GPTQ in numpy (float64), written from the paper
(Frantar et al., "GPTQ", 2022, Algorithm 1 with lazy batch updates) and
llm-compressor 0.14's conventions - the independent reference ktq's GPTQ is
checked against (tests/python/test_gptq.py):
  - scales / zero points from a min-max observer on the original weights,
    per row and group, in the model dtype (compressed-tensors' rules);
  - dead columns (H_ii == 0): H_ii = 1, weights zeroed;
  - optional activation order: columns by descending H_ii (stable);
  - H += dampening * mean(diag H) * I; U = upper Cholesky factor of H^-1;
  - columns quantized one at a time in blocks, q = what the code stands for
    in the model dtype, error (w - q) / U_ii spread
    over the remaining columns of the block, then lazily over the rest.
"""
import ml_dtypes
import numpy as np


def to_dtype(x, dtype):
    """Round float32 values to the model dtype (nearest even), back as float32."""
    if dtype == "bf16":
        return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
    if dtype == "f16":
        return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)
    return np.asarray(x, np.float32)


def observer(W, bits, group, symmetric, dtype, lo=None, hi=None):
    """compressed-tensors' min-max scales (and zero points) per row and group
    (of the ranges lo, hi [rows, groups] when given)."""
    rows, cols = W.shape
    g = cols if group < 0 else group
    x = W.reshape(rows, cols // g, g).astype(np.float32)
    lo = np.minimum(x.min(-1) if lo is None else lo, 0).astype(np.float32)
    hi = np.maximum(x.max(-1) if hi is None else hi, 0).astype(np.float32)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if symmetric:
        half = to_dtype(np.float32(qmax - qmin) / np.float32(2), dtype)
        scale = to_dtype(np.maximum(-lo, hi) / half, dtype)
        zp = np.zeros_like(scale)
    else:
        scale = to_dtype(to_dtype(hi - lo, dtype) / np.float32(qmax - qmin), dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            zp = to_dtype(np.float32(qmin) - to_dtype(lo / scale, dtype), dtype)
        zp = np.where(np.isnan(zp), 0, np.rint(np.clip(zp, qmin, qmax))).astype(np.float32)
    eps = {"bf16": 0.0078125, "f16": 0.0009765625, "f32": 1.1920928955078125e-07}[dtype]
    scale = np.where(scale == 0, np.float32(eps), scale).astype(np.float32)
    return scale, zp, g


def group_errors(W, scale, zp, bits, g, dtype, rounding_dtype=None, norm=2.4):
    """sum over each group of |what its code stands for - w|^norm, float64."""
    rows, cols = W.shape
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    x = W.reshape(rows, cols // g, g).astype(np.float32)
    v = x / scale[..., None]
    if rounding_dtype:
        v = to_dtype(v, rounding_dtype)
    v = v + zp[..., None]
    if rounding_dtype:
        v = to_dtype(v, rounding_dtype)
    q = np.rint(np.clip(v, qmin, qmax)).astype(np.float32)
    deq = to_dtype(to_dtype(q - zp[..., None], dtype) * scale[..., None], dtype)
    return np.sum(np.abs(deq.astype(np.float64) - x) ** norm, axis=-1)


def mse_observer(W, bits, group, symmetric, dtype, rounding_dtype=None, steps=20, grid=100.0):
    """llm-compressor's "mse" observer (maxshrink 0.2, grid 100, norm 2.4) as
    ktq documents it: per group, the min-max range scaled by p = 1 - i / 100
    (rounded to the dtype), i = 0 .. 19, every step tried, the first p with the
    smallest error kept. Returns scale, zero point, group size and, per group,
    the errors of all the candidates [steps, rows, groups]."""
    rows, cols = W.shape
    g = cols if group < 0 else group
    x = W.reshape(rows, cols // g, g).astype(np.float32)
    lo0, hi0 = x.min(-1), x.max(-1)
    errs, params = [], []
    for i in range(steps):
        p = np.float32(1 - i / grid)
        lo, hi = to_dtype(p * lo0, dtype), to_dtype(p * hi0, dtype)
        scale, zp, _ = observer(W, bits, group, symmetric, dtype, lo, hi)
        errs.append(group_errors(W, scale, zp, bits, g, dtype, rounding_dtype))
        params.append((scale, zp))
    errs = np.stack(errs)
    best = np.argmin(errs, axis=0)  # first of equal minima
    scale = np.choose(best, [p[0] for p in params]).astype(np.float32)
    zp = np.choose(best, [p[1] for p in params]).astype(np.float32)
    return scale, zp, g, errs


def gptq(W, H, bits=4, group=128, symmetric=True, dtype="bf16", block=128, damp=0.01, actorder=False, mse=False):
    """Returns (codes [rows, cols] int, dequantized float64 weights, loss)."""
    W = np.array(W, dtype=np.float64)
    H = np.array(H, dtype=np.float64)
    rows, cols = W.shape
    if mse:  # GPTQ rounds its codes in float32, so the search does too
        scale, zp, g, _ = mse_observer(W.astype(np.float32), bits, group, symmetric, dtype)
    else:
        scale, zp, g = observer(W.astype(np.float32), bits, group, symmetric, dtype)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = np.argsort(-np.diag(H), kind="stable") if actorder else np.arange(cols)
    W = W[:, perm]
    H = H[np.ix_(perm, perm)]
    H[np.diag_indices(cols)] += damp * np.mean(np.diag(H))
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # upper factor of H^-1
    codes = np.zeros((rows, cols), dtype=np.int64)
    Q = np.zeros_like(W)
    loss = 0.0
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        Err = np.zeros((rows, i2 - i1))
        for k in range(i1, i2):
            col = perm[k]
            s = scale[:, col // g].astype(np.float64)
            z = zp[:, col // g].astype(np.float64)
            c = np.clip(np.rint(W[:, k] / s + z), qmin, qmax)
            # The weight the code stands for, in the model dtype (what is
            # stored, and what llm-compressor 0.14 feeds back as the error).
            q = to_dtype(to_dtype(c - z, dtype) * s.astype(np.float32), dtype).astype(np.float64)
            codes[:, col] = c
            Q[:, col] = q
            e = (W[:, k] - q) / U[k, k]
            loss += np.sum(e * e) / 2
            W[:, k:i2] -= np.outer(e, U[k, k:i2])
            Err[:, k - i1] = e
        W[:, i2:] -= Err @ U[i1:i2, i2:]
    return codes, Q, loss
