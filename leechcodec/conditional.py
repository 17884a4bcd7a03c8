"""Entropy model v2: the static prior tilted by context, over a factorized Leech index, and its range coder.

A token's index is coded in two or three steps, each a categorical with at most 4,096 symbols (the large steps —
A, octad, codeword — are sent as two symbols, bucket of 64 and position in it, see ``_Coder``):

=====  =========================================  ================================================================
class  steps after the class symbol (0, 1, 2)     tilt added to the static log-frequency, in log2 units
=====  =========================================  ================================================================
A      index within class A (1,104)               Σ μ_i c_i
B      octad (759), then sign pattern (128)       Σ_{i∈octad} ν_i, then Σ μ_i c_i
C      codeword (4,096), then position j (24)     Σ μ_i (−1)^{c_i}, then −4 (−1)^{c_j} μ_j + ρ_j
=====  =========================================  ================================================================

The class symbol gets tilt τ (3 values). Each step's static part is the model's static prior (``entropy``), summed
exactly to that step (e.g. the octad's frequency is the sum over its 128 sign patterns), so with zero tilts the
product of the steps is exactly the static prior. τ, μ, ν, ρ (75 numbers) are a linear function of the token's
integer context features (``context``), one weight matrix per group and pass.

Determinism: weights are integers (int16, units of 2^-SHIFT of a LOG_UNIT), features are integers, so every tilt
is an exact integer (int32 arithmetic, no overflow possible); a symbol's weight is
``freq × 2^((tilt − max tilt) / 1024)`` evaluated from two fixed tables (exact powers of two and 2^(r/1024) computed
with ``decimal``, not libm) — for octads and codewords as a product of per-coordinate or per-field factors from the
same tables, multiplied in a fixed order — so the probabilities handed to constriction are the same bits on every
machine and at any thread count. Nothing here depends on the device that ran the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

import constriction
import numba
import numpy as np

from leechcodec import compat, context, lattice
from leechcodec.entropy import NUM_SYMBOLS, DecodeError
from leechcodec.token_counts import ABSENT

LOG_UNIT = 1024  # tilts are integers in units of 1/1024 bit
SHIFT = 2  # weights carry SHIFT extra fractional bits (stored as int16: at most 8 bits per unit feature)
OUTPUTS = 3 + 3 * lattice.DIM  # τ (3), μ (24), ν (24), ρ (24)
MIN_EXP = -1000  # relative weights below 2^-1000 are clamped there (far below the coder's 2^-24 resolution)
BUCKET = 64  # the large steps (A, octad, codeword) are coded as (bucket of 64, symbol within the bucket)


def _frac_table() -> np.ndarray:
    """2^(r/1024) for r = 0..1023, correctly rounded to float64 (identical on every platform): successive powers of
    2^(1/1024) in 40-digit decimal arithmetic, whose accumulated error (< 10^-36) is far below float64's resolution
    (tests compare with the direct 2^(r/1024) of each entry)."""
    with localcontext() as ctx:
        ctx.prec = 40
        root, power, table = Decimal(2) ** (Decimal(1) / LOG_UNIT), Decimal(1), []
        for _ in range(LOG_UNIT):
            table.append(float(power))
            power *= root
        return np.array(table)


_FRAC = _frac_table()
_POW2NEG = np.array([2.0 ** -q for q in range(-MIN_EXP + 2)])  # exact powers of two


@numba.njit(cache=True)
def _pow2(e, floor):
    """2^(max(e, floor)/1024) for integers e ≤ 0 and floor ≥ MIN_EXP·1024, from the two fixed tables."""
    e = max(e, floor)
    return _POW2NEG[-(e >> 10)] * _FRAC[e & 1023]


@numba.njit(cache=True)
def _weight(f, tilt, mx):
    """f · 2^((tilt − mx)/1024) for tilt ≤ mx, clamped at 2^MIN_EXP."""
    return f * _pow2(tilt - mx, MIN_EXP * LOG_UNIT)


@numba.njit(cache=True)
def _weights_row(freq, tilt, out):
    """out[s] = freq[s] · 2^((tilt[s] − max tilt)/1024), clamped at 2^MIN_EXP."""
    mx = tilt[0]
    for s in range(1, tilt.shape[0]):
        mx = max(mx, tilt[s])
    for s in range(tilt.shape[0]):
        out[s] = _weight(freq[s], tilt[s], mx)


@numba.njit(cache=True)
def _emit(tilt, freq, phase, mx, out):
    """A large step's weights, handed out in two phases so that no [n, K] array is stored and phase 1 computes one
    bucket only. Phase 0 (tilt, freq: all K entries): mx[0] = the largest tilt, out = the BUCKET-sums of
    freq · 2^((tilt − mx)/1024) (summed in index order: the same bits anywhere). Phase 1 (tilt, freq: the entries of
    one bucket): out = their weights with the same mx, zero-padded to BUCKET."""
    if phase == 0:
        m = tilt[0]
        for i in range(1, tilt.shape[0]):
            m = max(m, tilt[i])
        mx[0] = m
        for b in range(out.shape[0]):
            s = 0.0
            for i in range(BUCKET * b, min(BUCKET * (b + 1), tilt.shape[0])):
                s += _weight(freq[i], tilt[i], m)
            out[b] = s
    else:
        for i in range(BUCKET):
            out[i] = _weight(freq[i], tilt[i], mx[0]) if i < tilt.shape[0] else 0.0


@numba.njit(cache=True)
def _step_range(phase, bucket, k):
    """Entries computed in a phase: all k (phase 0) or those of the bucket (phase 1)."""
    return (0, k) if phase == 0 else (BUCKET * bucket, min(BUCKET * (bucket + 1), k))


@numba.njit(cache=True, parallel=True)
def _class_probs(t, wcls, out):
    for n in numba.prange(t.shape[0]):
        tilt = np.empty(3, np.int64)
        for k in range(3):
            tilt[k] = t[n, k]
        _weights_row(wcls, tilt, out[n])


@numba.njit(cache=True, parallel=True)
def _a_step(t, freq, pairs, phase, buckets, mx, out):
    for n in numba.prange(t.shape[0]):
        lo, hi = _step_range(phase, buckets[n], lattice.NUM_A)
        tilt = np.empty(hi - lo, np.int64)
        for a in range(lo, hi):
            j, k = pairs[a >> 2, 0], pairs[a >> 2, 1]
            sj = -4 if (a >> 1) & 1 else 4
            sk = -4 if a & 1 else 4
            tilt[a - lo] = sj * t[n, 3 + j] + sk * t[n, 3 + k]
        _emit(tilt, freq[lo:hi], phase, mx[n:n + 1], out[n])


@numba.njit(cache=True, parallel=True)
def _octad_step(t, freq, octad_pos, phase, buckets, out):
    """Octad weights freq[o] · Π_{i∈o} F_i with F_i = 2^((ν_i − max ν)/1024) (clamped at 2^(MIN_EXP/8), so no product
    of eight underflows), multiplied in position order: the tilt Σ_{i∈o} ν_i as a product. Phase 0: bucket sums
    (accumulated in index order); phase 1: the entries of one bucket, zero-padded."""
    for n in numba.prange(t.shape[0]):
        top = t[n, 27]
        for i in range(1, 24):
            top = max(top, t[n, 27 + i])
        fac = np.empty(24)
        for i in range(24):
            fac[i] = _pow2(t[n, 27 + i] - top, (MIN_EXP // 8) * LOG_UNIT)
        lo, hi = _step_range(phase, buckets[n], octad_pos.shape[0])
        for b in range(out.shape[1]):
            out[n, b] = 0.0
        for o in range(lo, hi):
            w = freq[o]
            for q in range(8):
                w *= fac[octad_pos[o, q]]
            if phase == 0:
                out[n, o // BUCKET] += w  # bucket sums, accumulated in index order
            else:
                out[n, o - lo] = w


@numba.njit(cache=True, parallel=True)
def _sign_probs(t, octads, freq, octad_pos, out):
    for n in numba.prange(t.shape[0]):
        tilt = np.empty(128, np.int64)
        o = octads[n]
        for b in range(128):
            s = 0
            neg = 0
            for q in range(7):
                mu = t[n, 3 + octad_pos[o, q]]
                if (b >> q) & 1:
                    s -= 2 * mu
                    neg += 1
                else:
                    s += 2 * mu
            mu = t[n, 3 + octad_pos[o, 7]]
            s += -2 * mu if neg & 1 else 2 * mu
            tilt[b] = s
        _weights_row(freq[o], tilt, out[n])


@numba.njit(cache=True, parallel=True)
def _codeword_step(t, freq, par_lo, par_hi, phase, buckets, out):
    """Codeword weights freq[m] · Π_f P_f[h_f(m)] with P_f[h] = 2^((half_f[h] − max half_f)/1024) (clamped at
    2^(MIN_EXP/4), so no product of four underflows): the tilt Σ_f half_f[h_f] = Σ_i μ_i (−1)^{c_i} as a product of
    four table entries, multiplied in a fixed order. Phase 0: bucket sums (bucket = message >> 6); phase 1: the
    entries of one bucket."""
    for n in numba.prange(t.shape[0]):
        fac = np.empty((4, 64))
        for f in range(4):
            half = np.empty(64, np.int64)  # Σ over 6 coordinates of ±μ_i, bit b of h = sign of coordinate 6f+b
            for h in range(64):
                s = 0
                for b in range(6):
                    mu = t[n, 3 + 6 * f + b]
                    s += -mu if (h >> b) & 1 else mu
                half[h] = s
            mx = half.max()
            for h in range(64):
                fac[f, h] = _pow2(half[h] - mx, (MIN_EXP // 4) * LOG_UNIT)
        first, last = (0, 64) if phase == 0 else (buckets[n], buckets[n] + 1)
        for hi in range(first, last):
            acc = 0.0
            for lo in range(64):
                m = lo + 64 * hi
                u = par_lo[lo] ^ par_hi[hi]
                w = freq[m] * (((fac[0, lo] * fac[1, hi]) * fac[2, u & 63]) * fac[3, u >> 6])
                if phase == 0:
                    acc += w
                else:
                    out[n, lo] = w
            if phase == 0:
                out[n, hi] = acc


@numba.njit(cache=True, parallel=True)
def _position_probs(t, msgs, freq, par_lo, par_hi, out):
    for n in numba.prange(t.shape[0]):
        tilt = np.empty(24, np.int64)
        m = msgs[n]
        c = m | ((par_lo[m & 63] ^ par_hi[m >> 6]) << 12)
        for j in range(24):
            mu = t[n, 3 + j]
            tilt[j] = (4 * mu if (c >> j) & 1 else -4 * mu) + t[n, 51 + j]
        _weights_row(freq[m], tilt, out[n])


@numba.njit(cache=True, parallel=True)
def _context_tilts(vectors, ys, xs, offsets, groups, wsign, const, out):
    """out[n] = floor((features_n · w) / 2^SHIFT) for the tokens at (ys, xs), reading the features straight from
    the vectors (same values as ``context.features`` · w). A coordinate c ≠ 0 of slot s contributes
    c·w[vector] + |c|·w[abs] = |c|·wsign[s, d, c < 0] with wsign[.., 0] = w[abs] + w[vector] and
    wsign[.., 1] = w[abs] − w[vector] (exact integer identity); const = the constant feature's weights.
    int32 cannot overflow (|c| ≤ 4, |wsign| ≤ 65534, at most SLOTS·24 = 456 coordinates) and integer sums are exact
    in any order."""
    h, w = vectors.shape[1], vectors.shape[2]
    for n in numba.prange(ys.shape[0]):
        acc = const.copy()
        for s in range(offsets.shape[0]):
            src = groups[s]
            y = ys[n] + offsets[s, 0]
            x = xs[n] + offsets[s, 1]
            if src < 0 or y < 0 or y >= h or x < 0 or x >= w:
                continue
            for d in range(24):
                c = np.int32(vectors[src, y, x, d])
                if c != 0:
                    row = wsign[s, d, 1 if c < 0 else 0]
                    a = abs(c)
                    for o in range(acc.shape[0]):
                        acc[o] += a * row[o]
        for o in range(acc.shape[0]):
            out[n, o] = acc[o] >> SHIFT


def split_index(idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """Indices → (class, sub-index within A, octad, sign bits, codeword message, position)."""
    cls = (idx >= lattice.OFFSET_B).astype(np.int64) + (idx >= lattice.OFFSET_C)
    tb = idx - lattice.OFFSET_B
    tc = idx - lattice.OFFSET_C
    return cls, idx, tb >> 7, tb & 127, tc // 24, tc % 24


@dataclass(frozen=True)
class StaticTables:
    """The static prior of one group, summed to each step of the factorized index (all exact integers)."""

    cls: np.ndarray  # [3]
    a: np.ndarray  # [1104]
    octad: np.ndarray  # [759]
    signs: np.ndarray  # [759, 128]
    codeword: np.ndarray  # [4096]
    position: np.ndarray  # [4096, 24]

    @classmethod
    def from_freqs(cls, freqs: np.ndarray) -> StaticTables:
        f = np.asarray(freqs, np.int64)
        fa, fb, fc = f[: lattice.OFFSET_B], f[lattice.OFFSET_B: lattice.OFFSET_C], f[lattice.OFFSET_C:]
        fb, fc = fb.reshape(759, 128), fc.reshape(4096, 24)
        as_f = lambda x: np.ascontiguousarray(x, np.float64)
        return cls(as_f([fa.sum(), fb.sum(), fc.sum()]), as_f(fa), as_f(fb.sum(1)), as_f(fb), as_f(fc.sum(1)),
                   as_f(fc))


class _Coder:
    """One interface over constriction's range encoder and decoder: ``code`` encodes the given symbols, or decodes
    as many symbols as rows of weights, and returns them — so the encoder and decoder share one walk.

    ``code`` takes a weight matrix [n, k]; ``code_split`` serves the large steps (A, octad, codeword):
    each symbol s goes as s // BUCKET (weights: the bucket sums) and then s % BUCKET (weights: the bucket's entries)
    — the same distribution, but constriction builds small models and no [n, k] matrix is stored."""

    _family = constriction.stream.model.Categorical(perfect=False)

    def __init__(self, words: np.ndarray | None = None):
        self.decoding = words is not None
        self._c = (constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, np.uint32)) if self.decoding
                   else constriction.stream.queue.RangeEncoder())
        self.bits = 0.0

    def code(self, symbols: np.ndarray | None, weights: np.ndarray) -> np.ndarray:
        return self._code(symbols, weights) if len(weights) else np.zeros(0, np.int64)

    def code_split(self, symbols: np.ndarray | None, n: int, k: int, step) -> np.ndarray:
        """step(phase, buckets, mx, out) fills out with the bucket sums [n, ⌈k/BUCKET⌉] (phase 0) or the entries of the
        given buckets [n, BUCKET] (phase 1) of the n tokens' weights over k symbols."""
        if n == 0:
            return np.zeros(0, np.int64)
        sums = np.empty((n, -(-k // BUCKET)))
        mx = np.empty(n, np.int64)  # each token's largest tilt, from phase 0, reused by phase 1
        step(0, np.zeros(n, np.int64), mx, sums)
        hi = self._code(None if symbols is None else symbols // BUCKET, sums)
        rows = np.empty((n, BUCKET))
        step(1, hi, mx, rows)
        lo = self._code(None if symbols is None else symbols % BUCKET, rows)
        out = hi * BUCKET + lo
        if self.decoding and (out >= k).any():  # zero-weight padding: constriction never yields it; checked anyway
            raise DecodeError("payload does not decode (symbol out of range)")
        return out

    def _code(self, symbols: np.ndarray | None, probs: np.ndarray) -> np.ndarray:
        if self.decoding:
            return np.asarray(self._c.decode(self._family, probs), np.int64)
        self._c.encode(np.ascontiguousarray(symbols, np.int32), self._family, probs)
        p = probs[np.arange(len(probs)), symbols] / probs.sum(1)
        self.bits -= float(np.log2(p).sum())  # the information content, reported by the encoder
        return symbols

    def words(self) -> np.ndarray:
        return self._c.get_compressed()


class ConditionalPrior:
    """Integer weights [G, passes, OUTPUTS, NUM_FEATURES] (int16 in the file, |w| ≤ 32767, units 2^-SHIFT / LOG_UNIT
    bit) over the static prior's frequencies [G, 196560] of a model with ``subspaces`` S (None: one stage, S = G;
    with token blocks of ``block_groups`` tokens, S is a block's subspaces: ``context.slot_sources``).
    Weights with ``compat.LEGACY_NUM_FEATURES`` features (fitted before the earlier-stage slots) are read with zero
    weights on those slots: the same tilts, so the same code, as before."""

    def __init__(self, weights: np.ndarray, freqs: np.ndarray, subspaces: int | None = None,
                 block_groups: int | None = None):
        w = np.asarray(weights)
        shape = (len(context.PASSES), OUTPUTS, context.NUM_FEATURES)
        legacy = (len(context.PASSES), OUTPUTS, compat.LEGACY_NUM_FEATURES)
        if w.ndim != 4 or w.shape[1:] not in (shape, legacy) or w.dtype.kind != "i":
            raise ValueError(f"conditional prior weights must be integers [G, {', '.join(map(str, shape))}] "
                             f"(or {legacy[-1]} features, format 1)")
        if np.abs(w.astype(np.int64)).max(initial=0) > 32767:
            raise ValueError("conditional prior weights out of range")  # keeps every sum inside int32
        if freqs.shape != (w.shape[0], NUM_SYMBOLS):
            raise ValueError("conditional prior and static prior disagree on the number of groups")
        self.subspaces = w.shape[0] if subspaces is None else subspaces
        if self.subspaces < 1 or w.shape[0] % self.subspaces:
            raise ValueError(f"{self.subspaces} subspaces do not divide {w.shape[0]} groups")
        self.block_groups = block_groups
        if w.shape[1:] == legacy:
            w = compat.widen_legacy_weights(w)
        wt = np.swapaxes(w, 2, 3).astype(np.int32)  # [G, passes, features, outputs]
        slots = wt[:, :, :-1].reshape(*wt.shape[:2], context.SLOTS, 2, lattice.DIM, OUTPUTS)
        vec, mag = slots[:, :, :, 0], slots[:, :, :, 1]
        # [G, passes, slot, coordinate, sign (0: c > 0, 1: c < 0), outputs]: see _context_tilts
        self._wsign = np.ascontiguousarray(np.stack([mag + vec, mag - vec], axis=4))
        self._const = np.ascontiguousarray(wt[:, :, -1])  # [G, passes, outputs]
        self.groups = w.shape[0]
        self.tables = [StaticTables.from_freqs(f) for f in freqs]

    def tilts(self, vectors: np.ndarray, g: int, p: int, ys: np.ndarray | None = None,
              xs: np.ndarray | None = None) -> np.ndarray:
        """Integer tilts [n, OUTPUTS] of the tokens of group g, pass p (in ``context.pass_positions`` order, or at
        the given positions of that pass) from the vectors known so far (see ``context.features``): exact floor of
        the scaled linear map."""
        if ys is None:
            ys, xs = context.pass_positions(vectors.shape[1], vectors.shape[2], p)
        offsets, groups = context.slot_sources(g, p, self.subspaces, self.block_groups)
        out = np.empty((len(ys), OUTPUTS), np.int64)
        _context_tilts(vectors, ys, xs, offsets, groups, self._wsign[g, p], self._const[g, p], out)
        return out

    def _walk(self, coder: _Coder, k: int, h: int, w: int, indices: np.ndarray | None,
              present: np.ndarray | None = None) -> np.ndarray:
        """Code (or decode: indices None) k groups of an h×w latent in the order of ``context``; returns the
        indices [k, h, w]. present [k, h, w] bool (None: all): tokens an adaptive file holds; the others are
        skipped, stay ABSENT, and read as zero vectors (unavailable slots) in later tokens' features."""
        if k > self.groups:
            raise ValueError(f"expected at most {self.groups} groups, got {k}")
        out = np.full((k, h, w), ABSENT, np.int64)
        vectors = np.zeros((k, h, w, lattice.DIM), np.int8)  # what the decoder knows so far
        for g in range(k):
            for p in range(len(context.PASSES)):
                ys, xs = context.pass_positions(h, w, p)
                if present is not None:
                    sel = present[g, ys, xs]
                    ys, xs = ys[sel], xs[sel]
                if len(ys) == 0:
                    continue
                t = self.tilts(vectors, g, p, ys, xs)
                known = None if indices is None else indices[g, ys, xs]
                idx = self._code_tokens(coder, t, self.tables[g], known)
                out[g, ys, xs] = idx
                vectors[g, ys, xs] = lattice.index_to_vector(idx)
        return out

    @staticmethod
    def _code_tokens(coder: _Coder, t: np.ndarray, st: StaticTables, known: np.ndarray | None) -> np.ndarray:
        """Code the tokens of one pass with tilts t [n, OUTPUTS]: all class symbols, then class A's sub-indices,
        class B's octads and sign patterns, class C's codewords and positions. Returns their indices [n]."""
        parts = split_index(known) if known is not None else (None,) * 6
        pick = lambda part, sel: None if part is None else part[sel]
        T = lattice.TABLES
        n = len(t)
        probs = np.empty((n, 3))
        _class_probs(t, st.cls, probs)
        cls = coder.code(parts[0], probs)
        idx = np.empty(n, np.int64)

        sel = np.flatnonzero(cls == 0)
        ta = t[sel]
        idx[sel] = coder.code_split(pick(parts[1], sel), len(sel), lattice.NUM_A,
                                    lambda ph, bk, mx, out: _a_step(ta, st.a, T["pairs"], ph, bk, mx, out))

        sel = np.flatnonzero(cls == 1)
        tb = t[sel]
        octad = coder.code_split(pick(parts[2], sel), len(sel), len(st.octad),
                                 lambda ph, bk, mx, out: _octad_step(tb, st.octad, T["octad_pos"], ph, bk, out))
        probs = np.empty((len(sel), 128))
        _sign_probs(tb, octad, st.signs, T["octad_pos"], probs)
        idx[sel] = lattice.OFFSET_B + 128 * octad + coder.code(pick(parts[3], sel), probs)

        sel = np.flatnonzero(cls == 2)
        tc = t[sel]
        msg = coder.code_split(pick(parts[4], sel), len(sel), 4096,
                               lambda ph, bk, mx, out: _codeword_step(tc, st.codeword, T["par_lo"], T["par_hi"], ph,
                                                                      bk, out))
        probs = np.empty((len(sel), 24))
        _position_probs(tc, msg, st.position, T["par_lo"], T["par_hi"], probs)
        idx[sel] = lattice.OFFSET_C + 24 * msg + coder.code(pick(parts[5], sel), probs)
        return idx

    def encode(self, indices: np.ndarray) -> tuple[np.ndarray, float]:
        """indices [k, h, w] (ABSENT for tokens an adaptive file leaves out) → (uint32 words, information content in
        bits under the model)."""
        if indices.ndim != 3:
            raise ValueError(f"expected indices [k, h, w], got {indices.shape}")
        present = indices != ABSENT
        coder = _Coder()
        self._walk(coder, *indices.shape, np.asarray(indices, np.int64), None if present.all() else present)
        return coder.words(), coder.bits

    def information_bits(self, indices: np.ndarray) -> float:
        return self.encode(indices)[1]

    def decode(self, words: np.ndarray, k: int, h: int, w: int, present: np.ndarray | None = None) -> np.ndarray:
        """uint32 words → indices [k, h, w] (ABSENT where ``present`` [k, h, w] is False). Raises DecodeError on data
        the model cannot decode."""
        try:
            return self._walk(_Coder(words), k, h, w, None, present)
        except (AssertionError, ValueError, RuntimeError) as e:
            raise DecodeError(f"payload does not decode ({e})") from None
