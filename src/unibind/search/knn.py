"""Exact inner-product k-NN, faster than a flat scan: screen in bfloat16, re-rank exactly.

The database is kept twice: float32 (the truth) and a bfloat16 copy (half the bytes, and
bf16 matmuls run at 2-4x the float32 rate on CPUs with AVX512-BF16/AMX). Each query block is
scored against the bf16 copy with a blocked matmul; every screened score ``s~`` is within a
*proven* bound of the exact one::

    |q.x - s~| <= |q| r_max + |q - q~| n_max + gamma_d |q~| n_max + u' |s~|   (=: delta(s~))

(``r_max`` = max ||x - x~||, ``n_max`` = max ||x~||, ``gamma_d`` the float32 accumulation bound,
``u'`` the bf16 rounding of the output). An item can only be in the exact top-k if its upper
bound reaches the lower bound of the current k-th best, so only items above a per-query
threshold are kept (a sparse mask, no full sort), then re-scored in float64 from the float32
rows. The result is the exact top-k (ties broken by row), the same as faiss ``IndexFlatIP``
up to float32 rounding of near-equal scores. Without bf16 hardware the screen runs in float32
(numpy BLAS), with the same bound (r_max = 0).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from unibind.errors import UsageError

log = logging.getLogger(__name__)

U_BF16 = 2.0 ** -8
U_F32 = 2.0 ** -24
#: query x row pairs up to which scores are computed exactly without screening (small
#: parts: the screening's bookkeeping costs more than it saves)
SMALL_EXACT = 1 << 16
CHUNK = 64  # columns per chunk in the sparse threshold search
WARMUP = 4096  # columns whose k-th best gives the first threshold


@lru_cache(maxsize=1)
def bf16_fast() -> bool:
    """True when this CPU has native bf16 dot products (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


class ExactKNN:
    """Exact maximum-inner-product search over float32 rows (see module doc).

    ``screen``: "bf16", "f32" or "auto" (bf16 when the CPU has native bf16 dot products).
    ``block``: database rows per matmul block (default: adaptive to the query batch).
    ``exact_below``: a query block with at most this many query x row pairs skips the screen
    and scores every pair exactly (the same float64 re-rank, so the same results).
    """

    def __init__(self, dim: int, screen: str = "auto", block: int | None = None,
                 query_block: int = 512, exact_below: int = SMALL_EXACT):
        if screen == "auto":
            screen = "bf16" if bf16_fast() else "f32"
        if screen not in ("bf16", "f32"):
            raise UsageError(f"screen must be 'bf16', 'f32' or 'auto', not {screen!r}")
        self.dim, self.screen, self.block, self.query_block = dim, screen, block, query_block
        self.exact_below = exact_below
        self.x = np.zeros((0, dim), dtype=np.float32)
        self._xs = torch.zeros((0, dim), dtype=self._dtype)
        self._r_max = 0.0
        self._n_max = 0.0

    @property
    def _dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.screen == "bf16" else torch.float32

    @property
    def _u(self) -> float:
        return U_BF16 if self.screen == "bf16" else U_F32

    @property
    def ntotal(self) -> int:
        return int(self.x.shape[0])

    def bytes_per_vector(self) -> int:
        extra = 2 * self.dim if self.screen == "bf16" else 0
        return 4 * self.dim + extra

    def add(self, x: np.ndarray) -> None:
        """Append rows (float32 ``[n, dim]``)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise UsageError(f"expected vectors of shape [n, {self.dim}], got {x.shape}")
        if not np.isfinite(x).all():
            raise UsageError("vectors contain NaN or inf")
        xs = torch.from_numpy(x).to(self._dtype)
        for start in range(0, len(x), 65536):  # float32 suffices: x - bf16(x) is exact
            xt, xc = torch.from_numpy(x[start:start + 65536]), xs[start:start + 65536].float()
            if self.screen == "bf16":
                r = float(torch.linalg.vector_norm(xt - xc, dim=1).max()) * (1 + 1e-4)
                self._r_max = max(self._r_max, r)
            n = float(torch.linalg.vector_norm(xc, dim=1).max()) * (1 + 1e-4)
            self._n_max = max(self._n_max, n)
        self.x = np.concatenate([self.x, x]) if self.ntotal else x.copy()
        self._xs = torch.cat([self._xs, xs]) if self._xs.shape[0] else xs.clone()
        if self.screen == "f32":
            self._xs = torch.from_numpy(self.x)  # share memory with the float32 rows

    def search(self, q: np.ndarray, k: int,
               ranges: Sequence[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows by inner product for each query: (scores float32, rows int64).

        ``ranges``: search only rows in these half-open ``(start, stop)`` ranges (exactly as if
        the others were absent). Missing results (fewer than k rows) are ``-inf`` / ``-1``."""
        q = np.ascontiguousarray(q, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        if q.shape[1] != self.dim:
            raise UsageError(f"query dim {q.shape[1]} != index dim {self.dim}")
        if k <= 0:
            raise UsageError("k must be positive")
        if ranges is None:
            ranges = [(0, self.ntotal)]
        ranges = [(max(0, int(a)), min(self.ntotal, int(b))) for a, b in ranges]
        ranges = [(a, b) for a, b in ranges if b > a]
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        rows = np.full((q.shape[0], k), -1, dtype=np.int64)
        for s in range(0, q.shape[0], self.query_block):
            scores[s:s + self.query_block], rows[s:s + self.query_block] = \
                self._search_block(q[s:s + self.query_block], k, ranges)
        return scores, rows

    # -- internals ---------------------------------------------------------------------------
    def _delta0(self, q: torch.Tensor, qs: torch.Tensor) -> torch.Tensor:
        """Per-query absolute part of the screening error bound (float64)."""
        qd, qsd = q.double(), qs.double()
        qn = torch.linalg.vector_norm(qd, dim=1)
        qerr = torch.linalg.vector_norm(qd - qsd, dim=1)
        qsn = torch.linalg.vector_norm(qsd, dim=1)
        gamma = self.dim * U_F32 / (1 - self.dim * U_F32)
        d0 = qn * self._r_max + qerr * self._n_max + gamma * qsn * self._n_max
        return d0 * (1 + 1e-6) + 1e-30

    def _threshold(self, kth: torch.Tensor, d0: torch.Tensor) -> torch.Tensor:
        """Smallest screened score whose upper bound can reach the k-th best's lower bound."""
        up = self._u / (1 - self._u) if self.screen == "bf16" else 0.0
        kth = kth.double()
        low = kth - d0 - up * kth.abs()  # lower bound on the exact k-th score
        need = low - d0  # upper(s) = s + d0 + up|s| >= low
        t = torch.where(need >= 0, need / (1 + up), need / (1 - up))
        return torch.where(torch.isfinite(kth), t, torch.full_like(t, -np.inf))

    def _screen_dtype_threshold(self, t: torch.Tensor) -> torch.Tensor:
        """A threshold in the screen dtype that is <= t (so comparisons keep a superset)."""
        if self.screen == "f32":
            return t.float() - t.abs().float() * 2 * U_F32 - 1e-38
        return (t - t.abs() * 2 * U_BF16 - 1e-30).to(torch.bfloat16)

    def _block_rows(self, nq: int) -> int:
        """Database rows per block: big for few queries (matvec), ~4M scores per block else."""
        if self.block:
            return max(CHUNK, self.block - self.block % CHUNK)
        rows = max(16384, min(1 << 18, (1 << 22) // max(nq, 1)))
        return rows - rows % CHUNK

    def _scores(self, qs: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        xs = self._xs[start:stop]
        if qs.shape[0] <= 8:
            return (xs @ qs.T).T.contiguous()  # matrix-vector orientation: faster for few
        return qs @ xs.T

    def _search_block(self, q: np.ndarray, k: int, ranges: list[tuple[int, int]]
                      ) -> tuple[np.ndarray, np.ndarray]:
        nq = q.shape[0]
        rows_in = sum(b - a for a, b in ranges)
        if nq * rows_in <= self.exact_below:  # every pair is a candidate: no screening needed
            return self._all_pairs(q, ranges, k)
        qt = torch.from_numpy(q)
        qs = qt.to(self._dtype)
        d0 = self._delta0(qt, qs)
        topv = torch.full((nq, k), -np.inf)
        t = torch.full((nq,), -np.inf, dtype=torch.float64)
        cq, cx, cv = [], [], []  # live candidates: query, row, screened score
        first = True
        step = self._block_rows(nq)
        for a, b in ranges:
            for start in range(a, b, step):
                stop = min(b, start + step)
                s = self._scores(qs, start, stop)
                if first:  # a threshold from a few columns: a valid lower bound, cheaply
                    head = s[:, :max(k, WARMUP)]
                    kk = min(k, head.shape[1])
                    topv[:, :kk] = torch.topk(head.float(), kk, dim=1).values
                    t = self._threshold(topv[:, -1], d0)
                    topv.fill_(-np.inf)  # rebuilt below from this block's candidates
                qi, xi, vals = _above(s, self._screen_dtype_threshold(t))
                first = False
                if qi.numel() == 0:
                    continue
                cq.append(qi)
                cx.append(xi + start)
                cv.append(vals)
                topv = _merge_topk(topv, qi, vals, nq, k)
                t = self._threshold(topv[:, -1], d0)
                cq, cx, cv = _prune(cq, cx, cv, t)
        if not cq:
            return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64)
        qi, xi, vals = torch.cat(cq), torch.cat(cx), torch.cat(cv)
        keep = vals.double() >= t[qi]
        return self._rerank(q, qi[keep].numpy(), xi[keep].numpy(), k)

    def _all_pairs(self, q: np.ndarray, ranges: list[tuple[int, int]], k: int
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Exact float64 scores of every query x row pair in ``ranges`` (one matmul), top-k
        per query, ties by row: what the screened path returns, for small searches."""
        # sorted rows: brute_force breaks ties by position, which must be the row order
        spans = [np.arange(a, b) for a, b in ranges] or [np.empty(0, np.int64)]
        xi = np.unique(np.concatenate(spans))
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        rows = np.full((q.shape[0], k), -1, dtype=np.int64)
        kk = min(k, len(xi))
        if kk:
            scores[:, :kk], local = brute_force(self.x[xi], q, kk)
            rows[:, :kk] = xi[local]
        return scores, rows

    def _rerank(self, q: np.ndarray, qi: np.ndarray, xi: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """Exact float64 scores of candidate pairs, then the top-k per query."""
        exact = np.empty(len(qi), dtype=np.float64)
        for s in range(0, len(qi), 65536):
            sl = slice(s, s + 65536)
            exact[sl] = np.einsum("ij,ij->i", q[qi[sl]].astype(np.float64),
                                  self.x[xi[sl]].astype(np.float64))
        order = np.lexsort((xi, -exact, qi))
        qi, xi, exact = qi[order], xi[order], exact[order]
        starts = np.searchsorted(qi, np.arange(q.shape[0]))
        rank = np.arange(len(qi)) - starts[qi]
        sel = rank < k
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        rows = np.full((q.shape[0], k), -1, dtype=np.int64)
        scores[qi[sel], rank[sel]] = exact[sel]
        rows[qi[sel], rank[sel]] = xi[sel]
        return scores, rows


def _above(s: torch.Tensor, ts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(query, column, value) of scores ``>= ts[query]``.

    Columns are grouped in CHUNK strided sets (``c, c + W, c + 2W, ...``); a max over each set
    (a cheap vectorised reduction) says which sets can hold a candidate, and only those are
    searched. bfloat16 scores are compared as int16 bit patterns when every threshold is > 0
    (same order for non-negative floats, negatives sort below), which reduces ~4x faster."""
    nq, nb = s.shape
    full = nb - nb % CHUNK
    out_q, out_x, out_v = [], [], []
    if full:
        width = full // CHUNK
        keys, tk = s[:, :full], ts
        if s.dtype == torch.bfloat16 and bool((ts > 0).all()):
            keys, tk = keys.view(torch.int16), ts.view(torch.int16)
        sets = keys.reshape(nq, CHUNK, width)
        hq, hc = (sets.amax(dim=1) >= tk[:, None]).nonzero(as_tuple=True)
        if hq.numel():
            sub = s[:, :full].reshape(nq, CHUNK, width)[hq, :, hc]  # [hits, CHUNK]
            j, i = (sub >= ts[hq][:, None]).nonzero(as_tuple=True)
            out_q.append(hq[j])
            out_x.append(hc[j] + i * width)
            out_v.append(sub[j, i].float())
    if full < nb:
        tq, tx = (s[:, full:] >= ts[:, None]).nonzero(as_tuple=True)
        out_q.append(tq)
        out_x.append(tx + full)
        out_v.append(s[tq, tx + full].float())
    if not out_q:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty, torch.zeros(0)
    return torch.cat(out_q), torch.cat(out_x), torch.cat(out_v)


def _merge_topk(topv: torch.Tensor, qi: torch.Tensor, vals: torch.Tensor, nq: int,
                k: int) -> torch.Tensor:
    """Merge new (query, value) pairs into the per-query top-k values."""
    qi, order = torch.sort(qi, stable=True)
    vals = vals[order]
    counts = torch.bincount(qi, minlength=nq)
    width = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(qi.numel()) - starts[qi]
    pad = torch.full((nq, width), -np.inf)
    pad[qi, pos] = vals
    return torch.topk(torch.cat([topv, pad], dim=1), k, dim=1).values


def _prune(cq: list, cx: list, cv: list, t: torch.Tensor) -> tuple[list, list, list]:
    """Drop candidates that fell below their query's threshold (keeps memory bounded)."""
    qi, xi, vals = torch.cat(cq), torch.cat(cx), torch.cat(cv)
    keep = vals.double() >= t[qi]
    return [qi[keep]], [xi[keep]], [vals[keep]]


def brute_force(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference top-k by float64 matmul + full sort (ties by row); for tests and checks."""
    s = np.asarray(q, np.float64) @ np.asarray(x, np.float64).T
    order = np.lexsort((np.broadcast_to(np.arange(x.shape[0]), s.shape), -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1).astype(np.float32), order.astype(np.int64)
