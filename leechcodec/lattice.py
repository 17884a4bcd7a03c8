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
|x_i|; classes B and C from the Golay correlations of |x| (759 octads) and x (4,096 codewords), built from 6-bit half
tables, which bound every octad's and every class-C point's score (the class-C bound includes a bound on the best
position's gain), so that exact scores are computed only for the few candidates that can still win. The kernel
works on 32 vectors at a time in SIMD lanes: it tests the bounds in float32 for all lanes at once, with margins that
make every float32 test a superset of the exact one, computes exact float64 scores only for the lanes that pass,
and runs in parallel over chunks of vectors.

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
from numba.cpython.unsafe.numbers import trailing_zeros  # LLVM cttz: the lowest set bit of a lane bitmask

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


TABLES = _build_tables()  # the Golay code and octad tables behind the index (read by the conditional prior)
_PAR_LO, _PAR_HI = TABLES["par_lo"], TABLES["par_hi"]
CODEWORDS = TABLES["codewords"]
_OCTADS, _OCTAD_POS = TABLES["octads"], TABLES["octad_pos"]
_PAIRS, _PAIR_RANK = TABLES["pairs"], TABLES["pair_rank"]
_OCTAD_MSG = _OCTADS & 4095  # message of each octad (positions 0-11 carry the message)
assert len(_OCTADS) == 759 and np.bincount(TABLES["weights"]).tolist()[::4] == [1, 0, 759, 2576, 759, 0, 1]


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


@numba.njit(cache=True)
def _half_table(src, base, dst):
    """dst[h, l] = Σ_b (−1)^{bit b of h} · src[base + b, l] over the 6 coordinates of a field, for all 64 h (each entry
    from the one without its lowest set bit; s + s is 2·s exactly in both float64 and float32)."""
    for l in range(_LANES):
        dst[0, l] = 0.0
    for b in range(6):
        for l in range(_LANES):
            dst[0, l] += src[base + b, l]
    for h in range(1, 64):
        b = 0
        while not (h >> b) & 1:
            b += 1
        hp = h & (h - 1)
        for l in range(_LANES):
            dst[h, l] = dst[hp, l] - (src[base + b, l] + src[base + b, l])


@numba.njit(cache=True)
def _lim_b(lim, scale):
    """Float32 class-B limit: lim·scale plus 1e-4 for float32 rounding, kept finite (a margin that dwarfs tiny inputs
    just lets every octad through)."""
    return np.float32(min(lim * scale + 1e-4, 1e30))


@numba.njit(cache=True)
def _thr_c(thr, scale):
    """Float32 class-C threshold: thr·scale minus 1e-4 for float32 rounding, kept finite as fastmath assumes."""
    return np.float32(max(thr * scale - 1e-4, -1e30))


@numba.njit(cache=True, fastmath=True)
def _class_c_rows(tab32, thr32, par_lo, par_hi, rows):
    """Float32 pre-filter: writes to rows, in increasing order, the codewords m for which some lane has
    Σ_f tab32[f, h_f] > thr32 (the class-C bound test, see ``_search_block``), and returns their number. The margin
    in thr32 covers float32 rounding in any order, so fastmath's reordering keeps this a superset of the exact test.
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
def _search_block(xb, par_lo, par_hi, octad_pos, octad_msg, pair_rank, out, tab, tab32, rows):
    """Exact search for up to 32 vectors xb [L, 24] (float64); writes their indices to out [L].

    Scratch (reused across blocks): tab [4, 64, 32] float64; tab32 [8, 64, 32] float32; rows [4096] int64.
    The Golay correlations T(c) = ⟨x, (−1)^c⟩ and T'(c) = ⟨|x|, (−1)^c⟩ come from 6-bit half tables (one SIMD lane
    per vector): T(c) = Σ_f tab[f, h_f] with h_f the f-th 6 bits of c. They give upper bounds: an octad O scores at
    most Σ|x| − T'(O) (= 2·Σ_O|x_i|), a class-C point (c, j) at most T(c) + 4·G(c) (below). Exact scores (float64) are
    computed only for candidates whose bound beats the best score so far, in a fixed order with strict improvement,
    so the answer is the same as a full search with the same tie rule. The bounds are evaluated in float32 on x
    scaled by 2^-e (exact; Σ|x|·2^-e in [0.5, 1), or below for tiny x, where the float64 margin then lets everything
    through) against thresholds with a margin that makes every float32 test a superset of the exact one; they are
    tested for all 32 lanes at once into a lane bitmask (vectorized), and the exact scores are computed lane by lane
    for the set bits only; each lane still sees its candidates in the fixed order.
    """
    L = xb.shape[0]
    x = np.zeros((24, _LANES))
    for l in range(L):
        for d in range(24):
            x[d, l] = xb[l, d]
    ax = np.abs(x)
    sum_abs = np.zeros(_LANES)
    margin = np.zeros(_LANES)  # covers float64 rounding of the bounds
    scale = np.ones(_LANES)
    for l in range(L):
        for d in range(24):
            sum_abs[l] += ax[d, l]
        margin[l] = 1e-9 * (sum_abs[l] + 1.0)
        if sum_abs[l] > 0.0:
            scale[l] = math.ldexp(1.0, min(-math.frexp(sum_abs[l])[1], 1000))  # capped: stays finite
    ax32 = np.empty((24, _LANES), np.float32)
    for d in range(24):
        for l in range(_LANES):
            ax32[d, l] = np.float32(ax[d, l] * scale[l])
    # half tables: tab[f] of x (float64, for exact class-C scores), tab32[4 + f] of the scaled |x| (class-B bounds)
    for f in range(4):
        _half_table(x, 6 * f, tab[f])
        _half_table(ax32, 6 * f, tab32[4 + f])
    top_field = np.zeros(_LANES, np.int64)  # field (6 coordinates) holding the largest |x_i|
    best = np.zeros(_LANES)
    best_idx = np.zeros(_LANES, np.int64)
    for l in range(L):
        # ---- class A: the two largest |x_i| (first occurrence on ties); score 4(|x_j| + |x_k|)
        j1 = 0
        for d in range(1, 24):
            if ax[d, l] > ax[j1, l]:
                j1 = d
        j2 = 1 if j1 == 0 else 0
        for d in range(24):
            if d != j1 and ax[d, l] > ax[j2, l]:
                j2 = d
        top_field[l] = j1 // 6
        j, k = (j1, j2) if j1 < j2 else (j2, j1)
        best[l] = 4.0 * (ax[j, l] + ax[k, l])
        best_idx[l] = 4 * pair_rank[j, k] + 2 * (x[j, l] < 0) + (x[k, l] < 0)
    # ---- class B: octads in rank order; an octad may beat a lane's best only if T'(O) < Σ|x| + margin − best
    # (tested in float32 against lim32, with 1e-4 on top for float32 rounding: the scaled T' is below 1 and the
    # scaled best below 6, so rounding stays below 1e-5);
    # for those lanes the exact score 2·Σ_O|x| − 4·min_O|x| (if an odd number of x_i < 0)
    lim32 = np.full(_LANES, np.float32(-1e30))  # padding lanes never pass
    for l in range(L):
        lim32[l] = _lim_b(sum_abs[l] + margin[l] - best[l], scale[l])
    for o in range(octad_pos.shape[0]):
        m = octad_msg[o]
        lo = m & 63
        hi = m >> 6
        u = par_lo[lo] ^ par_hi[hi]
        a0 = tab32[4, lo]
        a1 = tab32[5, hi]
        a2 = tab32[6, u & 63]
        a3 = tab32[7, u >> 6]
        mask = 0
        for l in range(_LANES):  # branch-free so that LLVM vectorizes it
            mask |= np.int64(a0[l] + a1[l] + a2[l] + a3[l] < lim32[l]) << l
        while mask:
            l = trailing_zeros(mask)
            mask &= mask - 1
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
            if sc > best[l]:
                bits = 0
                for q in range(7):
                    isneg = x[octad_pos[o, q], l] < 0
                    if (nneg & 1) and q == arg:
                        isneg = not isneg
                    if isneg:
                        bits |= 1 << q
                best[l] = sc
                best_idx[l] = 1104 + 128 * o + bits
                lim32[l] = _lim_b(sum_abs[l] + margin[l] - sc, scale[l])
    # ---- class C: a point (c, j) scores T(c) + 4·g_j(c), with gain g_j = |x_j| if j is in D(c) = {j : c_j ≠ [x_j < 0]
    # or x_j = 0}, else −|x_j|. Bound: max_j g_j ≤ G(c) = max(max_{j ∈ F ∩ D(c)} |x_j|, max_{j ∉ F} |x_j|), with F the
    # field holding the largest |x_i|; G depends on that field's half-table index only, so 4·G is folded into that
    # field's float32 table, and the screen tests Σ tab32 > thr32, i.e. T(c) + 4·G(c) > best − margin (with 1e-4
    # below for float32 rounding: the scaled tables and best are below 6 in magnitude, so rounding in any order stays
    # below 1e-5).
    # gt[h, l] = G for index h of lane l's top field, built bit by bit like the half tables: a set bit b (c_d = 1)
    # puts coordinate d = 6F + b in D(c) iff x_d ≥ 0, a clear bit iff x_d ≤ 0
    gt = np.empty((64, _LANES))
    g0 = np.empty((6, _LANES))
    g1 = np.empty((6, _LANES))
    for l in range(_LANES):
        g_out = 0.0
        for d in range(24):
            if d // 6 != top_field[l]:
                g_out = max(g_out, ax[d, l])
        gt[0, l] = g_out
        for b in range(6):
            xd = x[6 * top_field[l] + b, l]
            g1[b, l] = abs(xd) if xd >= 0.0 else 0.0
            g0[b, l] = abs(xd) if xd <= 0.0 else 0.0
    for b in range(6):
        for h in range(1 << b):
            for l in range(_LANES):
                gt[h | (1 << b), l] = max(gt[h, l], g1[b, l])
                gt[h, l] = max(gt[h, l], g0[b, l])
    for f in range(4):
        for h in range(64):
            for l in range(_LANES):
                g = 4.0 * gt[h, l] if top_field[l] == f else 0.0
                tab32[f, h, l] = np.float32((tab[f, h, l] + g) * scale[l])
    thr32 = np.full(_LANES, np.float32(1e30))  # padding lanes never pass (finite: see _class_c_rows)
    for l in range(L):
        thr32[l] = _thr_c(best[l] - margin[l], scale[l])
    # screened codewords in increasing order; per codeword the same float32 test for all lanes at once (a lane bitmask,
    # with thr32 tightened as best improves), then the exact score only for the lanes that pass
    n = _class_c_rows(tab32, thr32, par_lo, par_hi, rows)
    xt = x.T.copy()  # [lane, coordinate]
    for i in range(n):
        m = rows[i]
        lo = m & 63
        hi = m >> 6
        u = par_lo[lo] ^ par_hi[hi]
        s0 = tab32[0, lo]
        s1 = tab32[1, hi]
        s2 = tab32[2, u & 63]
        s3 = tab32[3, u >> 6]
        mask = 0
        for l in range(_LANES):  # branch-free so that LLVM vectorizes it
            mask |= np.int64(s0[l] + s1[l] + s2[l] + s3[l] > thr32[l]) << l
        c = m | (u << 12)
        while mask:
            l = trailing_zeros(mask)
            mask &= mask - 1
            # best position j: maximize −(−1)^{c_j}·x_j (branch-free max, then its first occurrence)
            xl = xt[l]
            bv = -np.inf
            for d in range(24):
                bv = max(bv, xl[d] * (2.0 * ((c >> d) & 1) - 1.0))
            sc = tab[0, lo, l] + tab[1, hi, l] + tab[2, u & 63, l] + tab[3, u >> 6, l] + 4.0 * bv
            if sc > best[l]:
                bj = 0
                while xl[bj] * (2.0 * ((c >> bj) & 1) - 1.0) != bv:
                    bj += 1
                best[l] = sc
                best_idx[l] = 98256 + 24 * m + bj
                thr32[l] = _thr_c(sc - margin[l], scale[l])
    for l in range(L):
        out[l] = best_idx[l]


@numba.njit(parallel=True, cache=True)
def _quantize_kernel(x, par_lo, par_hi, octad_pos, octad_msg, pair_rank, nthreads, out):
    n = x.shape[0]
    nblocks = (n + _LANES - 1) // _LANES
    nchunks = min(nblocks, 4 * nthreads)
    for chunk in numba.prange(nchunks):
        # scratch allocated once per chunk
        tab = np.empty((4, 64, _LANES))
        tab32 = np.empty((8, 64, _LANES), np.float32)
        rows = np.empty(4096, np.int64)
        for blk in range(chunk * nblocks // nchunks, (chunk + 1) * nblocks // nchunks):
            s = blk * _LANES
            e = min(s + _LANES, n)
            _search_block(x[s:e], par_lo, par_hi, octad_pos, octad_msg, pair_rank, out[s:e], tab, tab32, rows)


def quantize(x) -> np.ndarray:
    """Exact spherical Leech quantization: float vectors [*shape, 24] → int64 indices [*shape].

    Each index names the minimal vector with the largest cosine to x (the brute-force maximum of ⟨x, v⟩; ties
    broken deterministically, see the module docstring). Raises ValueError on a wrong shape or non-finite values.
    Exact for every finite input with Σ|x| < 2^1020 (beyond that the float64 scores overflow).
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
