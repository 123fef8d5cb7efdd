"""AWQ's scale search in numpy, written from the paper (Lin et al., "AWQ",
2023) and llm-compressor 0.14's AWQModifier conventions - the independent
reference ktq's AWQ engine is checked against (tests/python/test_awq_engine.py):
  - x_mean: mean |x| per input channel over the calibration tokens;
  - w_mean (duo scaling): |w| / (max |w| of its group + 1e-6), averaged per
    input channel over every row of the mapping's quantized Linears;
  - the grid: with duo scaling first s = 1, then r = i / (grid - 2),
    i = 0 .. grid - 2, s = max(x_mean^r / (w_mean^(1-r) + 1e-4), 1e-4);
    without, r = i / (grid - 1), i = 0 .. grid - 1, s = max(x_mean^r, 1e-4);
    then s /= sqrt(max s * min s);
  - loss of s: the mean squared error of the parent module's output when
    the Linears compute with Q(W s) / s (W s and Q(W s) / s rounded to the
    model dtype, Q compressed-tensors' round to nearest with
    gptq_reference.observer's scales and zero points) instead of W; the
    parent is the Linears themselves unless the caller gives one;
  - the candidate with the smallest loss wins (first one on ties).
Also AutoAWQ's clipping search (clip()).
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
    """Over every row of the (quantized) layers Ws."""
    rows = sum(W.shape[0] for W in Ws)
    total = np.zeros(Ws[0].shape[1], np.float64)
    for W in Ws:
        r, c = W.shape
        g = c if group < 0 else group
        a = np.abs(W.reshape(r, c // g, g)).astype(np.float32)
        total += (a / (a.max(-1, keepdims=True) + np.float32(1e-6))).reshape(r, c).astype(np.float64).sum(0)
    return (total / rows).astype(np.float32)


def grid(n=20, duo=True):
    """llm-compressor 0.14's (ratio, duo) candidates."""
    if duo:
        return [(0.0, False)] + [(i / (n - 2), True) for i in range(n - 1)]
    return [(i / (n - 1), False) for i in range(n)]


def candidate(x_mean, w_mean, ratio, duo):
    r = np.float32(ratio)
    s = x_mean ** r
    if duo:
        s = s / (w_mean ** np.float32(1.0 - ratio) + np.float32(1e-4))
    s = np.maximum(s, np.float32(1e-4)).astype(np.float32)
    s = s / np.sqrt(s.max() * s.min())
    return np.where(np.isfinite(s), s, 1).astype(np.float32)


def search(Ws, X, bits=4, group=128, symmetric=False, dtype="bf16", n_grid=20, duo=True, parent=None, fake=None):
    """Returns (best index, its scales, the loss of every candidate).
    parent(list of weights) -> output, for a parent module other than the Linears.
    fake(W) -> Q(W): another quantizer than compressed-tensors' (a ggml block
    type: `group` is then its block size and `dtype` "f32")."""
    x_mean = np.abs(X).astype(np.float64).mean(0).astype(np.float32)
    w_mean = weight_mean(Ws, group)
    if parent is None:
        def parent(weights):
            return np.concatenate([X.astype(np.float64) @ W.astype(np.float64).T for W in weights], axis=1)
    reference = parent(Ws)
    losses, best, best_s = [], None, None
    for ratio, use_duo in grid(n_grid, duo):
        s = candidate(x_mean, w_mean, ratio, use_duo)
        q = fake or (lambda W: fake_quantize(W, bits, group, symmetric, dtype)[0])
        quantized = [to_dtype(q(to_dtype(W * s, dtype)) / s, dtype) for W in Ws]
        loss = float(np.mean((parent(quantized) - reference) ** 2))
        losses.append(loss)
        if best is None or loss < losses[best]:
            best, best_s = len(losses) - 1, s
    return best, best_s, losses


def attention(X, Wq, Wk, Wv, Wo, heads, kv_heads, seq, theta=10000.0):
    """Llama attention block (RoPE, grouped KV heads, causal softmax, o_proj) in float64,
    X [n, hidden] being n / seq sequences of seq tokens, positions from 0 in each."""
    n = X.shape[0]
    hd = Wq.shape[0] // heads
    X64 = X.astype(np.float64)
    q = (X64 @ Wq.astype(np.float64).T).reshape(n // seq, seq, heads, hd)
    k = (X64 @ Wk.astype(np.float64).T).reshape(n // seq, seq, kv_heads, hd)
    v = (X64 @ Wv.astype(np.float64).T).reshape(n // seq, seq, kv_heads, hd)
    inv_freq = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)))
    ang = np.arange(seq, dtype=np.float32)[:, None] * inv_freq.astype(np.float32)[None, :]
    cos, sin = np.cos(ang).astype(np.float64)[None, :, None, :], np.sin(ang).astype(np.float64)[None, :, None, :]

    def rope(t):
        a, b = t[..., : hd // 2], t[..., hd // 2:]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

    q, k = rope(q), rope(k)
    k = np.repeat(k, heads // kv_heads, axis=2)
    v = np.repeat(v, heads // kv_heads, axis=2)
    scores = np.einsum("sthd,suhd->shtu", q, k) / np.sqrt(hd)
    scores = np.where(np.tril(np.ones((seq, seq), bool))[None, None], scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = np.einsum("shtu,suhd->sthd", p, v).reshape(n, heads * hd)
    return out @ Wo.astype(np.float64).T

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
