"""Distortion metrics and the Bjøntegaard delta rate, with the measuring conventions of CompressAI.

PSNR is on RGB uint8 over all channels, per image (the mean over images is of per-image PSNR); MS-SSIM is
pytorch_msssim's with data_range 255 (NaN for images too small for its five scales, under 161 pixels a side).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of the same shape (inf when identical)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(a.shape[:2]) < 161:
        return math.nan
    # torch.tensor copies: the images may be read-only numpy arrays (e.g. decoded by Pillow)
    ta = torch.tensor(a, dtype=torch.float64).permute(2, 0, 1)[None]
    tb = torch.tensor(b, dtype=torch.float64).permute(2, 0, 1)[None]
    return float(_ms_ssim(ta, tb, data_range=255))


def bd_rate(rate_a, psnr_a, rate_b, psnr_b) -> float:
    """Bjøntegaard delta rate of curve B against reference curve A, in percent (negative: B needs fewer bits).

    Piecewise cubic Hermite interpolation of log-rate as a function of PSNR over the overlapping PSNR range.
    Returns NaN when the curves do not overlap or either has fewer than two points.
    """
    ra, pa = np.log(np.asarray(rate_a, float)), np.asarray(psnr_a, float)
    rb, pb = np.log(np.asarray(rate_b, float)), np.asarray(psnr_b, float)
    if len(pa) < 2 or len(pb) < 2:
        return math.nan
    oa, ob = np.argsort(pa), np.argsort(pb)
    ra, pa, rb, pb = ra[oa], pa[oa], rb[ob], pb[ob]
    lo, hi = max(pa.min(), pb.min()), min(pa.max(), pb.max())
    if hi <= lo or len(np.unique(pa)) < 2 or len(np.unique(pb)) < 2:
        return math.nan
    grid = np.linspace(lo, hi, 200)
    ia = np.trapezoid(PchipInterpolator(pa, ra)(grid), grid) if hasattr(np, "trapezoid") else \
        np.trapz(PchipInterpolator(pa, ra)(grid), grid)
    ib = np.trapezoid(PchipInterpolator(pb, rb)(grid), grid) if hasattr(np, "trapezoid") else \
        np.trapz(PchipInterpolator(pb, rb)(grid), grid)
    return float((math.exp((ib - ia) / (hi - lo)) - 1) * 100)
