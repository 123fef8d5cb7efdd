"""AWQ's scale search in numpy, written from the paper (Lin et al., "AWQ",
2023) and llm-compressor's AWQModifier conventions - the independent
reference ktq's AWQ engine is checked against (tests/python/test_awq_engine.py):
  - x_mean: mean |x| per input channel over the calibration tokens;
  - w_mean (duo scaling): |w| / (max |w| of its group + 1e-6), averaged per
    input channel over every row of the mapping's Linears;
  - candidates r = i / grid: s = max(x_mean^r / (w_mean^(1-r) + 1e-4), 1e-4)
    (or max(x_mean^r, 1e-4) without duo scaling), s /= sqrt(max s * min s);
  - loss of s: sum over the Linears of ||X W^T - X (Q(W s) / s)^T||^2, with
    W s and Q(W s) / s rounded to the model dtype and Q compressed-tensors'
    round to nearest (gptq_reference.observer's scales and zero points);
  - the candidate with the smallest loss wins (first one on ties).
"""
import numpy as np

from gptq_reference import observer, to_dtype


def fake_quantize(W, bits, group, symmetric, dtype):
    """What compressed-tensors' codes stand for: (q - zp) * scale in the model dtype."""
    scale, zp, g = observer(W, bits, group, symmetric, dtype)
    rows, cols = W.shape
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    x = W.reshape(rows, cols // g, g).astype(np.float32)
    q = np.rint(np.clip(x / scale[..., None] + zp[..., None], qmin, qmax)).astype(np.float32)
    deq = to_dtype((q - zp[..., None]) * scale[..., None], dtype)
    return deq.reshape(rows, cols), q.reshape(rows, cols)


def weight_mean(Ws, group):
    rows = sum(W.shape[0] for W in Ws)
    total = np.zeros(Ws[0].shape[1], np.float64)
    for W in Ws:
        r, c = W.shape
        g = c if group < 0 else group
        a = np.abs(W.reshape(r, c // g, g)).astype(np.float32)
        total += (a / (a.max(-1, keepdims=True) + np.float32(1e-6))).reshape(r, c).astype(np.float64).sum(0)
    return (total / rows).astype(np.float32)


def candidate(x_mean, w_mean, i, grid, duo):
    r = np.float32(i / grid)
    s = x_mean ** r
    if duo:
        s = s / (w_mean ** (np.float32(1) - r) + np.float32(1e-4))
    s = np.maximum(s, np.float32(1e-4)).astype(np.float32)
    s = s / np.sqrt(s.max() * s.min())
    return np.where(np.isfinite(s), s, 1).astype(np.float32)


def search(Ws, X, bits=4, group=128, symmetric=False, dtype="bf16", grid=20, duo=True):
    """Returns (best index, its scales, the loss of every candidate)."""
    x_mean = np.abs(X).astype(np.float64).mean(0).astype(np.float32)
    w_mean = weight_mean(Ws, group)
    outputs = sum(W.shape[0] for W in Ws)
    losses, best, best_s = [], None, None
    for i in range(grid):
        s = candidate(x_mean, w_mean, i, grid, duo)
        loss = 0.0
        for W in Ws:
            deq, _ = fake_quantize(to_dtype(W * s, dtype), bits, group, symmetric, dtype)
            D = (W - to_dtype(deq / s, dtype)).astype(np.float64)
            loss += float(((X.astype(np.float64) @ D.T) ** 2).sum())
        loss /= X.shape[0] * outputs
        losses.append(loss)
        if best is None or loss < losses[best]:
            best, best_s = i, s
    return best, best_s, losses


def clip(W, X, bits=4, group=128, symmetric=False, dtype="bf16", grid=20, max_shrink=0.5):
    """AutoAWQ's clipping search on a folded weight W [rows, cols] with the
    inputs X it reads: per row and group, the bound max|w| * (1 - i / grid)
    (in the model dtype) for i < max_shrink * grid whose output error
    sum_t (x_t . (Q(clamp(w)) - w))^2 is smallest (first on ties) is applied.
    Returns (clipped W, number of clipped (row, group) pairs)."""
    rows, cols = W.shape
    g = cols if group < 0 else group
    G = cols // g
    Wg = W.reshape(rows, G, g)
    max0 = np.abs(Wg).max(-1)
    best = max0.copy()
    best_err = np.full((rows, G), np.inf)
    X64 = X.astype(np.float64)
    for i in range(int(max_shrink * grid)):
        mx = to_dtype(max0 * (np.float32(1) - np.float32(i) / np.float32(grid)), dtype)
        cw = np.clip(Wg, -mx[..., None], mx[..., None]).reshape(rows, cols)
        deq, _ = fake_quantize(cw, bits, group, symmetric, dtype)
        d = (deq - W).astype(np.float64).reshape(rows, G, g)
        for gi in range(G):
            err = ((X64[:, gi * g:(gi + 1) * g] @ d[:, gi].T) ** 2).sum(0)
            better = err < best_err[:, gi]
            best_err[better, gi] = err[better]
            best[better, gi] = mx[better, gi]
    out = np.clip(Wg, -best[..., None], best[..., None]).reshape(rows, cols)
    return out.astype(np.float32), int((best < max0).sum())
