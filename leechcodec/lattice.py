"""The first shell of the Leech lattice Λ24: its 196,560 minimal vectors, their index, and exact nearest-point search.

This module owns the codebook of spherical Leech quantization (Λ24-SQ; Zhao et al., arXiv 2512.14697).
It uses numpy and numba only (no torch).

Coordinates are integers at scale √8·Λ24: every minimal vector has squared norm 32 and coordinates in {-4..4};
divide by √32 for unit vectors. The extended Golay code C24 has generator G = [I12 | A]; the codeword of a 12-bit
message m (bit i of m is position i) is c = mG.

Three classes of minimal vectors, and the canonical index (part of the .lsq file format; pinned by
``CODEBOOK_SHA256``, the SHA-256 of the int8 table [196560, 24] in index order):

=====  ======================  =========  ===================  ===============================================
class  shape                   count      index range          index
=====  ======================  =========  ===================  ===============================================
A      (±4, ±4, 0²²)           1,104      [0, 1104)            4·rank(j<k) + 2·[x_j<0] + [x_k<0]
B      (±2⁸, 0¹⁶), octad       97,152     [1104, 98256)        1104 + 128·octad_rank + sign bits of the 7 lowest
                                                               positions (bit t = t-th lowest; 8th by parity)
C      (∓3, ±1²³)              98,304     [98256, 196560)      98256 + 24·m + j (c_i=[v_i<0], i≠j; c_j=[v_j=+3])
=====  ======================  =========  ===================  ===============================================

rank(j, k) = 23j − j(j−1)/2 + (k−j−1); octads are ranked by their 24-bit support mask (bit i = position i), ascending.

Nearest-point search (``quantize``) maximizes the inner product ⟨x, v⟩ over all minimal vectors (they have equal
norm, so this is the largest cosine) using the code structure instead of the table: class A from the two largest
|x_i|; classes B and C from the 4,096 Golay correlations of x and |x| (built from 6-bit half tables), which bound
every octad's and every class-C point's score, so that exact scores are computed only for the few candidates that
can still win. The kernel builds the correlations for 32 vectors at a time in SIMD lanes, screens the class-C
codewords in float32 before the exact float64 test, and runs in parallel over chunks of vectors.

Tie-breaking (exact ties only happen for special inputs, e.g. integers): the search order is fixed — class A, then
B, then C, each in a fixed order, a later candidate replacing the current best only when strictly better; a zero
coordinate counts as positive. The answer is therefore the same on every run and at any thread count. The zero
vector (all scores 0) returns index 0, the point (+4, +4, 0, …).
"""

from __future__ import annotations

import hashlib
import math

import numba
import numpy as np

DIM = 24
NUM_POINTS = 196_560
NORM2 = 32  # squared norm of every minimal vector in integer coordinates
NUM_A, NUM_B, NUM_C = 1_104, 97_152, 98_304
OFFSET_B = NUM_A
OFFSET_C = NUM_A + NUM_B

# SHA-256 of index_to_vector(arange(196560)) as contiguous int8 [196560, 24]. Changing it breaks every .lsq file.
CODEBOOK_SHA256 = "84197a42cb1094a34c5afed59684d67fc7cc3352c0c9bcf6848ed975af6c302f"

# Rows of A (position 0 is the leftmost character); A is symmetric and A² = I over GF(2).
_A_ROWS = (
    "011111111111", "111011100010", "110111000101", "101110001011", "111100010110", "111000101101",
    "110001011011", "100010110111", "100101101110", "101011011100", "110110111000", "101101110001",
)


def _build_tables() -> dict[str, np.ndarray]:
    """Small tables the kernels need (about 10 KB): parity bits per message half, octads, A-class pairs."""
    a_rows = np.array([int(r[::-1], 2) for r in _A_ROWS], dtype=np.int64)  # bit i of row = A[row, i]
    # parity[m] = mA (12 bits) for a 12-bit message m, split into the low and high 6 message bits.
    par_lo = np.zeros(64, np.int64)
    par_hi = np.zeros(64, np.int64)
    for h in range(64):
        lo = hi = 0
        for b in range(6):
            if h >> b & 1:
                lo ^= a_rows[b]
                hi ^= a_rows[6 + b]
        par_lo[h], par_hi[h] = lo, hi
    msgs = np.arange(4096, dtype=np.int64)
    parity = par_lo[msgs & 63] ^ par_hi[msgs >> 6]
    codewords = msgs | (parity << 12)  # 24-bit codeword masks, bit i = position i
    weights = np.array([int(c).bit_count() for c in codewords])
    octads = np.sort(codewords[weights == 8])
    octad_pos = np.array([[i for i in range(DIM) if o >> i & 1] for o in octads], dtype=np.int64)
    pairs = np.array([(j, k) for j in range(DIM) for k in range(j + 1, DIM)], dtype=np.int64)
    pair_rank = np.full((DIM, DIM), -1, np.int64)
    for r, (j, k) in enumerate(pairs):
        pair_rank[j, k] = r
    return {"par_lo": par_lo, "par_hi": par_hi, "codewords": codewords, "weights": weights, "octads": octads,
            "octad_pos": octad_pos, "pairs": pairs, "pair_rank": pair_rank}


_T = _build_tables()
_PAR_LO, _PAR_HI = _T["par_lo"], _T["par_hi"]
_CODEWORDS = _T["codewords"]
_OCTADS, _OCTAD_POS = _T["octads"], _T["octad_pos"]
_PAIRS, _PAIR_RANK = _T["pairs"], _T["pair_rank"]
_OCTAD_MSG = _OCTADS & 4095  # message of each octad (positions 0-11 carry the message)
assert len(_OCTADS) == 759 and np.bincount(_T["weights"]).tolist()[::4] == [1, 0, 759, 2576, 759, 0, 1]


# --------------------------------------------------------------------------------------------- index <-> vector
@numba.njit(parallel=True, cache=True)
def _index_to_vector_kernel(idx, par_lo, par_hi, octad_pos, pairs, out):
    for n in numba.prange(idx.shape[0]):
        i = idx[n]
        for d in range(24):
            out[n, d] = 0
        if i < 1104:
            r = i >> 2
            j, k = pairs[r, 0], pairs[r, 1]
            out[n, j] = -4 if (i >> 1) & 1 else 4
            out[n, k] = -4 if i & 1 else 4
        elif i < 98256:
            t = i - 1104
            o = t >> 7
            bits = t & 127
            neg = 0
            for q in range(7):
                b = (bits >> q) & 1
                neg += b
                out[n, octad_pos[o, q]] = -2 if b else 2
            out[n, octad_pos[o, 7]] = -2 if neg & 1 else 2
        else:
            t = i - 98256
            m = t // 24
            j = t - 24 * m
            c = m | ((par_lo[m & 63] ^ par_hi[m >> 6]) << 12)
            for d in range(24):
                out[n, d] = -1 if (c >> d) & 1 else 1
            out[n, j] = -3 * out[n, j]


@numba.njit(parallel=True, cache=True)
def _vector_to_index_kernel(v, par_lo, par_hi, octads, pair_rank, out):
    for n in numba.prange(v.shape[0]):
        nz = 0
        n4 = 0
        n2 = 0
        n3 = 0
        n1 = 0
        bad = 0
        for d in range(24):
            a = abs(np.int64(v[n, d]))
            if a == 0:
                continue
            nz += 1
            if a == 4:
                n4 += 1
            elif a == 2:
                n2 += 1
            elif a == 3:
                n3 += 1
            elif a == 1:
                n1 += 1
            else:
                bad = 1
        res = -1
        if bad == 0 and nz == 2 and n4 == 2:
            j = -1
            k = -1
            for d in range(24):
                if v[n, d] != 0:
                    if j < 0:
                        j = d
                    else:
                        k = d
            res = 4 * pair_rank[j, k] + 2 * (v[n, j] < 0) + (v[n, k] < 0)
        elif bad == 0 and nz == 8 and n2 == 8:
            mask = 0
            neg = 0
            bits = 0
            q = 0
            for d in range(24):
                if v[n, d] != 0:
                    mask |= 1 << d
                    if v[n, d] < 0:
                        neg += 1
                        if q < 7:
                            bits |= 1 << q
                    q += 1
            o = np.searchsorted(octads, mask)
            if neg % 2 == 0 and o < octads.shape[0] and octads[o] == mask:
                res = 1104 + 128 * o + bits
        elif bad == 0 and nz == 24 and n3 == 1 and n1 == 23:
            c = 0
            j = 0
            for d in range(24):
                x = v[n, d]
                if x == 3 or x == -3:
                    j = d
                    if x == 3:
                        c |= 1 << d
                elif x < 0:
                    c |= 1 << d
            m = c & 4095
            if (c >> 12) == (par_lo[m & 63] ^ par_hi[m >> 6]):
                res = 98256 + 24 * m + j
        out[n] = res


def _as_index_array(idx) -> np.ndarray:
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
    flat = idx.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= NUM_POINTS):
        raise ValueError(f"indices must lie in [0, {NUM_POINTS}), got range [{flat.min()}, {flat.max()}]")
    return flat


def index_to_vector(idx) -> np.ndarray:
    """Indices (any shape, integers in [0, 196560)) → int8 minimal vectors [*shape, 24] (squared norm 32)."""
    idx = np.asarray(idx)
    flat = _as_index_array(idx)
    out = np.empty((flat.size, DIM), np.int8)
    _index_to_vector_kernel(flat, _PAR_LO, _PAR_HI, _OCTAD_POS, _PAIRS, out)
    return out.reshape(*idx.shape, DIM)


def vector_to_index(v) -> np.ndarray:
    """Integer vectors [*shape, 24] → int64 indices [*shape]; −1 for any vector that is not a minimal vector."""
    v = np.asarray(v)
    if v.ndim < 1 or v.shape[-1] != DIM:
        raise ValueError(f"expected vectors of shape [..., {DIM}], got {v.shape}")
    if v.dtype.kind not in "iu":
        raise ValueError(f"vectors must be integers, got dtype {v.dtype}")
    flat = np.clip(v.reshape(-1, DIM), -127, 127).astype(np.int8)
    out = np.empty(flat.shape[0], np.int64)
    _vector_to_index_kernel(flat, _PAR_LO, _PAR_HI, _OCTADS, _PAIR_RANK, out)
    return out.reshape(v.shape[:-1])


def codebook() -> np.ndarray:
    """The full int8 table [196560, 24] in index order (built on demand; the fast paths never need it)."""
    return index_to_vector(np.arange(NUM_POINTS))


def codebook_sha256() -> str:
    return hashlib.sha256(np.ascontiguousarray(codebook()).tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------ nearest-point search
_LANES = 32  # vectors processed together in SIMD lanes


@numba.njit(cache=True, fastmath=True)
def _class_c_rows(tab32, thr32, par_lo, par_hi, rows):
    """Float32 pre-filter: writes to rows, in increasing order, the codewords m for which some lane may have
    T(c) > thr, and returns their number. A superset of the float64 test (thr32 carries a margin far above the
    float32 rounding and any reordering fastmath does), so the exact stage sees every codeword it would accept.
    All values are finite (padding lanes use a large finite threshold), as fastmath assumes."""
    n = 0
    d = np.empty(_LANES, np.float32)
    for hi in range(64):
        phh = par_hi[hi]
        for l in range(_LANES):
            d[l] = tab32[1, hi, l] - thr32[l]
        for lo in range(64):
            u = par_lo[lo] ^ phh
            t0 = tab32[0, lo]
            t2 = tab32[2, u & 63]
            t3 = tab32[3, u >> 6]
            # sum of the positive parts is > 0 iff some lane passes; written so that LLVM vectorizes it
            s = np.float32(0.0)
            for l in range(_LANES):
                v = t0[l] + t2[l] + t3[l] + d[l]
                s += v if v > 0 else np.float32(0.0)
            if s > 0:
                rows[n] = lo + 64 * hi
                n += 1
    return n


@numba.njit(cache=True)
def _search_block(xb, par_lo, par_hi, octad_pos, octad_msg, pair_rank, out, tab, tab32, ta, rows):
    """Exact search for up to 32 vectors xb [L, 24] (float64); writes their indices to out [L].

    Scratch (reused across blocks): tab [8, 64, 32] float64; tab32 [4, 64, 32] float32; ta [32, 759];
    rows [4096] int64.
    The Golay correlations T(c) = ⟨x, (−1)^c⟩ and T'(c) = ⟨|x|, (−1)^c⟩ come from 6-bit half tables (one SIMD lane
    per vector). They give upper bounds: an octad O scores at most Σ|x| − T'(O) (= 2·Σ_O|x_i|) and a class-C point
    (c, j) at most T(c) + 4·max|x|. Exact scores (float64) are computed only for candidates whose bound beats the
    best score so far (plus a rounding margin), in a fixed order with strict improvement, so the answer is the same
    as a full search with the same tie rule. Class C candidates are first screened in float32 (``_class_c_rows``),
    with each lane scaled by a power of two (exact) so that float32 neither overflows nor underflows.
    """
    L = xb.shape[0]
    x = np.zeros((24, _LANES))
    for l in range(L):
        for d in range(24):
            x[d, l] = xb[l, d]
    ax = np.abs(x)
    # half tables: tab[f] for field f of the signed vector, tab[4 + f] of |x|; bit b of h flips coordinate 6f + b
    for f in range(8):
        src = x if f < 4 else ax
        base = 6 * (f % 4)
        for l in range(_LANES):
            acc = 0.0
            for b in range(6):
                acc += src[base + b, l]
            tab[f, 0, l] = acc
        for h in range(1, 64):
            b = 0
            while not (h >> b) & 1:
                b += 1
            hp = h & (h - 1)
            for l in range(_LANES):
                tab[f, h, l] = tab[f, hp, l] - 2.0 * src[base + b, l]
    # T' is needed for the 759 octads only: ta[l, o] = T'(octad o) of lane l (lane-major for the scan below)
    for o in range(octad_msg.shape[0]):
        m = octad_msg[o]
        lo = m & 63
        hi = m >> 6
        u = par_lo[lo] ^ par_hi[hi]
        for l in range(_LANES):
            ta[l, o] = tab[4, lo, l] + tab[5, hi, l] + tab[6, u & 63, l] + tab[7, u >> 6, l]
    best = np.empty(_LANES)
    thr = np.full(_LANES, np.inf)
    thr32 = np.full(_LANES, np.float32(1e30))  # padding lanes never pass (finite: see _class_c_rows)
    scale = np.ones(_LANES)
    best_idx = np.zeros(_LANES, np.int64)
    for l in range(L):
        sum_abs = 0.0
        max_abs = 0.0
        for d in range(24):
            sum_abs += ax[d, l]
            max_abs = max(max_abs, ax[d, l])
        margin = 1e-9 * (sum_abs + 1.0)  # covers float rounding of the bounds
        # ---- class A: the two largest |x_i| (first occurrence on ties); score 4(|x_j| + |x_k|)
        j1 = 0
        for d in range(1, 24):
            if ax[d, l] > ax[j1, l]:
                j1 = d
        j2 = 1 if j1 == 0 else 0
        for d in range(24):
            if d != j1 and ax[d, l] > ax[j2, l]:
                j2 = d
        j, k = (j1, j2) if j1 < j2 else (j2, j1)
        bst = 4.0 * (ax[j, l] + ax[k, l])
        bidx = 4 * pair_rank[j, k] + 2 * (x[j, l] < 0) + (x[k, l] < 0)
        # ---- class B: octads in rank order; exact score 2·Σ|x| − 4·min|x| if an odd number of x_i < 0
        tal = ta[l]
        for o in range(octad_pos.shape[0]):
            if sum_abs - tal[o] + margin <= bst:
                continue
            s = 0.0
            nneg = 0
            arg = 0
            for q in range(8):
                p = octad_pos[o, q]
                s += ax[p, l]
                nneg += x[p, l] < 0
                if ax[p, l] < ax[octad_pos[o, arg], l]:
                    arg = q
            sc = 2.0 * s
            if nneg & 1:
                sc -= 4.0 * ax[octad_pos[o, arg], l]
            if sc > bst:
                bits = 0
                for q in range(7):
                    isneg = x[octad_pos[o, q], l] < 0
                    if (nneg & 1) and q == arg:
                        isneg = not isneg
                    if isneg:
                        bits |= 1 << q
                bst = sc
                bidx = 1104 + 128 * o + bits
        best[l] = bst
        best_idx[l] = bidx
        thr[l] = bst - 4.0 * max_abs - margin
        # float32 screen on x scaled by 2^-e (Σ|x|·2^-e in [0.5, 1)): rounding of T there stays below 1e-6, so
        # the 1e-5 margin makes the screen a superset of the float64 test T(c) > thr
        if sum_abs > 0.0:
            scale[l] = math.ldexp(1.0, -math.frexp(sum_abs)[1])
        thr32[l] = np.float32(thr[l] * scale[l] - 1e-5)
    for f in range(4):
        for h in range(64):
            for l in range(_LANES):
                tab32[f, h, l] = np.float32(tab[f, h, l] * scale[l])
    # ---- class C: screened codewords in increasing order, then the exact float64 test per lane
    n = _class_c_rows(tab32, thr32, par_lo, par_hi, rows)
    xt = x.T.copy()  # [lane, coordinate]
    for i in range(n):
        m = rows[i]
        lo = m & 63
        hi = m >> 6
        u = par_lo[lo] ^ par_hi[hi]
        c = m | (u << 12)
        for l in range(L):
            t = tab[0, lo, l] + tab[1, hi, l] + tab[2, u & 63, l] + tab[3, u >> 6, l]
            if not t > thr[l]:
                continue
            # best position j: maximize −(−1)^{c_j}·x_j (branch-free max, then its first occurrence)
            xl = xt[l]
            bv = -np.inf
            for d in range(24):
                bv = max(bv, xl[d] * (2.0 * ((c >> d) & 1) - 1.0))
            sc = t + 4.0 * bv
            if sc > best[l]:
                bj = 0
                while xl[bj] * (2.0 * ((c >> bj) & 1) - 1.0) != bv:
                    bj += 1
                best[l] = sc
                best_idx[l] = 98256 + 24 * m + bj
    for l in range(L):
        out[l] = best_idx[l]


@numba.njit(parallel=True, cache=True)
def _quantize_kernel(x, par_lo, par_hi, octad_pos, octad_msg, pair_rank, nthreads, out):
    n = x.shape[0]
    nblocks = (n + _LANES - 1) // _LANES
    nchunks = min(nblocks, 4 * nthreads)
    for chunk in numba.prange(nchunks):
        # scratch allocated once per chunk
        tab = np.empty((8, 64, _LANES))
        tab32 = np.empty((4, 64, _LANES), np.float32)
        ta = np.empty((_LANES, octad_msg.shape[0]))
        rows = np.empty(4096, np.int64)
        for blk in range(chunk * nblocks // nchunks, (chunk + 1) * nblocks // nchunks):
            s = blk * _LANES
            e = min(s + _LANES, n)
            _search_block(x[s:e], par_lo, par_hi, octad_pos, octad_msg, pair_rank, out[s:e], tab, tab32, ta, rows)


def quantize(x) -> np.ndarray:
    """Exact spherical Leech quantization: float vectors [*shape, 24] → int64 indices [*shape].

    Each index names the minimal vector with the largest cosine to x (the brute-force maximum of ⟨x, v⟩; ties
    broken deterministically, see the module docstring). Raises ValueError on a wrong shape or non-finite values.
    """
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[-1] != DIM:
        raise ValueError(f"expected vectors of shape [..., {DIM}], got {x.shape}")
    if x.dtype.kind not in "fiu":
        raise ValueError(f"expected a real-valued array, got dtype {x.dtype}")
    flat = np.ascontiguousarray(x.reshape(-1, DIM), dtype=np.float64)
    if not np.isfinite(flat).all():
        raise ValueError("input contains NaN or ±Inf")
    out = np.empty(flat.shape[0], np.int64)
    if flat.shape[0]:
        _quantize_kernel(flat, _PAR_LO, _PAR_HI, _OCTAD_POS, _OCTAD_MSG, _PAIR_RANK, numba.get_num_threads(), out)
    return out.reshape(x.shape[:-1])


def quantize_brute_force(x, chunk: int = 4096) -> np.ndarray:
    """Reference search: float32 matmul against the full table + argmax (first maximum). For tests and benchmarks."""
    x = np.asarray(x, dtype=np.float32).reshape(-1, DIM)
    table = codebook().astype(np.float32)
    out = np.empty(x.shape[0], np.int64)
    for s in range(0, x.shape[0], chunk):
        out[s:s + chunk] = np.argmax(x[s:s + chunk] @ table.T, axis=1)
    return out
