"""Rate–distortion evaluation: leechcodec and classic codecs on a folder of images, through real files.

Every leechcodec point is measured through a real .lsq file (encode → write → read → decode); classic codecs
through Pillow (JPEG, WebP, AVIF 4:4:4; JPEG XL when a Pillow plugin is installed) at a sweep of qualities. Results:
per-image rows and per-quality means (bpp from file sizes, PSNR-RGB, MS-SSIM, encode/decode seconds), JSON in
CompressAI's schema, CSV, BD-rate tables and RD plots with the published anchors (``data/kodak_anchors.csv``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features

from leechcodec.container import decode_indices, parse
from leechcodec.encoder import encode_at_rate, encode_image, resolve_allocation
from leechcodec.imageio import ImageError, read_image
from leechcodec.metrics import bd_rate, ms_ssim, psnr
from leechcodec.zoo import LoadedModel

ANCHORS = Path(__file__).with_name("data") / "kodak_anchors.csv"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm"}

# Quality sweeps for the classic codecs (Pillow's quality parameter).
CLASSIC_QUALITIES = {"jpeg": [5, 10, 20, 30, 50, 70, 90], "webp": [5, 10, 20, 30, 50, 70, 90],
                     "avif": [10, 20, 30, 45, 60, 75, 90], "jxl": [10, 30, 50, 70, 90]}


@dataclass
class Row:
    """One image coded at one setting."""

    codec: str
    quality: int | float  # the quality level, or the bpp target of a rate-controlled curve
    image: str
    bpp: float
    psnr: float
    ms_ssim: float
    encoding_time: float
    decoding_time: float


@dataclass
class Curve:
    """Per-quality means of one codec (sorted by rate)."""

    name: str
    description: str
    quality: list[int | float]
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float]
    encoding_time: list[float]
    decoding_time: list[float]

    def compressai_json(self) -> dict:
        return {"name": self.name, "description": self.description,
                "results": {"quality": self.quality, "bpp": self.bpp, "psnr-rgb": self.psnr,
                            "ms-ssim-rgb": self.ms_ssim, "encoding_time": self.encoding_time,
                            "decoding_time": self.decoding_time}}


def find_images(folder: Path) -> list[tuple[str, np.ndarray]]:
    """Readable images in a folder (sorted by name); other files are skipped with a warning."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    images = []
    for path in sorted(folder.iterdir()):
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            if path.name != "SHA256SUMS":
                warnings.warn(f"skipping {path.name} (not an image file)", stacklevel=2)
            continue
        try:
            images.append((path.name, read_image(path)))
        except ImageError as e:
            warnings.warn(f"skipping {path.name} ({e})", stacklevel=2)
    if not images:
        raise ValueError(f"no readable images in {folder}")
    return images


def _measure(original: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    return psnr(original, decoded), ms_ssim(original, decoded)


def curve_name(model: LoadedModel, prior: str, refine: int = 0, allocation: str = "uniform",
               rate_control: bool = False, effort: int = 0) -> str:
    """Our curve's name; "static" marks the static-prior curve of a model that has a conditional prior, "refine N"
    files made with N steps of encoder-side refinement, "effort N" files of effort level N, "adaptive" files with per-position token counts, "at bpp
    targets" files made by rate control (encoder.encode_at_rate)."""
    return (f"leechcodec {model.model_id}" + (" static prior" if prior == "static" and model.context else "")
            + (f" refine {refine}" if refine else "") + (f" effort {effort}" if effort else "") + (" adaptive" if allocation == "adaptive" else "")
            + (" at bpp targets" if rate_control else ""))


def eval_leechcodec(model: LoadedModel, images, qualities: list, workdir: Path, progress=None,
                    prior: str = "auto", refine: int = 0, allocation: str = "auto",
                    rate_control: bool = False, effort: int = 0) -> list[Row]:
    """One row per image and quality level; with rate_control, ``qualities`` are bpp targets instead."""
    allocation = resolve_allocation(model, prior, allocation)
    rows = []
    for q in qualities:
        for name, rgb in images:
            t0 = time.perf_counter()
            enc = (encode_at_rate(model, rgb, q, prior=prior, allocation=allocation, refine=refine, effort=effort)
                   if rate_control else encode_image(model, rgb, quality=q, prior=prior, refine=refine,
                                                     allocation=allocation, effort=effort))
            path = workdir / f"{Path(name).stem}-q{q}-{prior}-{allocation}.lsq"
            path.write_bytes(enc.data)
            t1 = time.perf_counter()
            data = path.read_bytes()
            header, m, indices, gains = parse(data, str(next(model.net.parameters()).device))
            decoded = decode_indices(m, indices, header.height, header.width, gains)
            t2 = time.perf_counter()
            p, s = _measure(rgb, decoded)
            rows.append(Row(curve_name(model, prior, refine, allocation, rate_control, effort), q, name,
                            8 * len(data) / (rgb.shape[0] * rgb.shape[1]), p, s, t1 - t0, t2 - t1))
            if progress:
                progress()
    return rows


def classic_available(codec: str) -> bool:
    if codec == "jxl":
        try:
            import pillow_jxl  # noqa: F401
            return True
        except ImportError:
            return False
    return features.check({"jpeg": "jpg", "webp": "webp", "avif": "avif"}[codec])


def eval_classic(codec: str, images, progress=None) -> list[Row]:
    fmt = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "jxl": "JXL"}[codec]
    extra = {"avif": {"subsampling": "4:4:4"}, "jpeg": {"subsampling": "4:2:0"}}.get(codec, {})
    rows = []
    for q in CLASSIC_QUALITIES[codec]:
        for name, rgb in images:
            img = Image.fromarray(rgb, "RGB")
            buf = io.BytesIO()
            t0 = time.perf_counter()
            img.save(buf, format=fmt, quality=q, **extra)
            t1 = time.perf_counter()
            data = buf.getvalue()
            decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            t2 = time.perf_counter()
            p, s = _measure(rgb, decoded)
            rows.append(Row(codec, q, name, 8 * len(data) / (rgb.shape[0] * rgb.shape[1]), p, s, t1 - t0, t2 - t1))
            if progress:
                progress()
    return rows


def _mean(rows: list[Row], field: str) -> float:
    """Mean of a field over rows, ignoring NaN (MS-SSIM of tiny images); NaN if nothing is left."""
    vals = [v for v in (getattr(r, field) for r in rows) if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def curves_from_rows(rows: list[Row], descriptions: dict[str, str]) -> list[Curve]:
    curves = []
    for codec in dict.fromkeys(r.codec for r in rows):
        qs = sorted({r.quality for r in rows if r.codec == codec})
        by_q = {q: [r for r in rows if r.codec == codec and r.quality == q] for q in qs}
        order = sorted(qs, key=lambda q: _mean(by_q[q], "bpp"))
        curves.append(Curve(codec, descriptions.get(codec, ""), order,
                            *[[_mean(by_q[q], f) for q in order]
                              for f in ("bpp", "psnr", "ms_ssim", "encoding_time", "decoding_time")]))
    return curves


def load_anchors() -> list[Curve]:
    groups: dict[str, list[dict]] = {}
    with open(ANCHORS) as f:
        for r in csv.DictReader(f):
            groups.setdefault(r["method"], []).append(r)
    curves = []
    for name, rs in groups.items():
        rs.sort(key=lambda r: float(r["bpp"]))
        nan = math.nan
        curves.append(Curve(name, f"published: {rs[0]['source']}", [int(r["quality"]) for r in rs],
                            [float(r["bpp"]) for r in rs], [float(r["psnr"]) for r in rs],
                            [float(r["ms_ssim"]) if r["ms_ssim"] else nan for r in rs], [nan] * len(rs),
                            [nan] * len(rs)))
    return curves


def curves_from_json(result: dict) -> list[Curve]:
    """The measured curves of a saved ``run`` result (ours first), e.g. to re-plot without re-measuring."""
    out = []
    for c in [result] + result["comparisons"]:
        r = c["results"]
        out.append(Curve(c["name"], c["description"], r["quality"], r["bpp"], r["psnr-rgb"], r["ms-ssim-rgb"],
                         r["encoding_time"], r["decoding_time"]))
    return out


def bd_table(ours: list[Curve], others: list[Curve]) -> list[dict]:
    """BD-rate (PSNR) of each of our curves against every other curve."""
    return [{"curve": a.name, "reference": b.name, "bd_rate_percent": bd_rate(b.bpp, b.psnr, a.bpp, a.psnr)}
            for a in ours for b in others]


def plot(curves: list[Curve], anchors: list[Curve], path: Path, log_rate: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    # anchors (dashed) take the default cycle; the measured curves (solid) get a palette of their own with one
    # distinct colour per curve, so two measured curves never share a colour however many are drawn
    tab20 = plt.get_cmap("tab20").colors  # pairs of (dark, light) of one hue: the dark ones first
    palette = (tab20[0::2] + tab20[1::2]) if len(curves) <= 20 else plt.get_cmap("turbo")(
        [i / (len(curves) - 1) for i in range(len(curves))])
    for ax, metric, label in ((axes[0], "psnr", "PSNR-RGB [dB]"), (axes[1], "ms_ssim", "MS-SSIM")):
        for c in anchors:
            ax.plot(c.bpp, getattr(c, metric), "--", marker=".", lw=1, alpha=0.7, label=c.name)
        for c, colour in zip(curves, palette):
            style = "-o" if c.name.startswith("leechcodec") else "-s"
            ax.plot(c.bpp, getattr(c, metric), style, color=colour,
                    lw=2 if c.name.startswith("leechcodec") else 1.2, ms=4, label=f"{c.name} (measured)")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.set_xlim(0.02 if log_rate else 0, 1.2)
        if log_rate:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    # keep every measured point in view, anchors may fall outside
    measured_psnr = [v for c in curves for v in c.psnr if not math.isnan(v)]
    measured_ssim = [v for c in curves for v in c.ms_ssim if not math.isnan(v)]
    axes[0].set_ylim(min([20.0] + [v - 1 for v in measured_psnr]), 38)
    axes[1].set_ylim(min([0.8] + [v - 0.02 for v in measured_ssim]), 1.0)
    # the legend goes below both panels, where it hides no curve
    handles, labels = axes[0].get_legend_handles_labels()
    legend_height = 0.16 * math.ceil(len(labels) / 3)  # inches: 3 columns, 0.16 in per row of 7-point text
    fig.set_figheight(5 + legend_height)
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, legend_height / (5 + legend_height) + 0.01, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(folder: Path, model: LoadedModel, qualities: list[int], compare: list[str], json_out: Path | None,
        csv_out: Path | None, plot_out: Path | None, log_rate: bool = False, echo=print, prior: str = "auto",
        refine: int = 0, allocation: str = "auto", bpp_targets: list[float] | None = None, effort: int = 0) -> dict:
    """The whole evaluation; returns the JSON-able result. With a conditional prior (prior "auto" on a model that
    has one), uniform allocation and no refinement, the same model with its static prior is measured too, as a
    comparison curve; with adaptive allocation (the default "auto" resolves to it where the model allows:
    encoder.resolve_allocation), the same model with uniform allocation instead, at the quality levels where the two
    differ (above quality 1), except at an effort level (whose search takes far longer than the plain encoder).
    refine, allocation, effort: encoder settings for our files (encoder.encode_image).
    bpp_targets: measure rate-controlled files at these targets (encoder.encode_at_rate) instead of the quality
    levels, with uniform allocation beside adaptive."""
    from tqdm import tqdm

    allocation = resolve_allocation(model, prior, allocation)
    rate_control = bpp_targets is not None
    if rate_control:
        qualities = roomy = list(bpp_targets)
    else:
        roomy = [q for q in qualities if model.groups_for(q) > 1]  # where adaptive differs
        if not roomy:
            allocation = "uniform"  # an adaptive file without room is the uniform file
    images = find_images(folder)
    codecs = []
    for c in compare:
        if c not in CLASSIC_QUALITIES:
            raise ValueError(f"unknown codec {c!r}: valid are {', '.join(CLASSIC_QUALITIES)}")
        if classic_available(c):
            codecs.append(c)
        else:
            warnings.warn(f"skipping {c}: no Pillow support for it is installed", stacklevel=2)
    # ours first, then the comparison curve of the same model: (prior, refine, allocation, qualities)
    variants = [(prior, refine, allocation, qualities)]
    if allocation == "adaptive" and not effort:
        variants.append((prior, refine, "uniform", roomy))
    elif model.context is not None and prior != "static" and not refine and not effort:
        variants.append(("static", 0, "uniform", qualities))
    total = len(images) * (sum(len(v[3]) for v in variants) + sum(len(CLASSIC_QUALITIES[c]) for c in codecs))
    bar = tqdm(total=total, desc="eval", unit="img", leave=False)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for pr, rf, al, qs in variants
                for r in eval_leechcodec(model, images, qs, Path(tmp), bar.update, pr, rf, al, rate_control, effort)]
    for c in codecs:
        rows += eval_classic(c, images, bar.update)
    bar.close()
    ours_name = curve_name(model, prior, refine, allocation, rate_control, effort)
    conditional = model.context is not None and prior != "static"
    desc = {curve_name(model, "static"): "the same model and files with the static prior (format 1)",
            curve_name(model, prior, refine, rate_control=rate_control): "the same model with uniform allocation",
            ours_name: f"Λ24-SQ, stride {model.config.stride}, real .lsq files"
                       + (", conditional prior (format 2)" if conditional and allocation == "uniform" else "")
                       + (", conditional prior, per-position token counts (format 3)" if allocation == "adaptive"
                          else "")
                       + (f", {refine} steps of encoder-side latent refinement" if refine else "")
                       + (f", effort {effort} (rate-aware token search)" if effort else "")
                       + (", rate control: per image the largest file within each bpp target (quality = target)"
                          if rate_control else ""),
            "jpeg": "Pillow JPEG 4:2:0", "webp": "Pillow WebP", "avif": "Pillow AVIF 4:4:4", "jxl": "JPEG XL"}
    curves = curves_from_rows(rows, desc)
    anchors = load_anchors()
    ours = [c for c in curves if c.name == ours_name]
    table = bd_table(ours, [c for c in curves if c.name != ours_name] + anchors)
    result = ours[0].compressai_json() | {
        "images": len(images), "dataset": str(folder), "allocation": allocation,
        "comparisons": [c.compressai_json() for c in curves if c.name != ours_name],
        "bd_rate": table, "per_image": [asdict(r) for r in rows]}
    echo(f"{'codec':<28} {'q':>3} {'bpp':>8} {'PSNR':>8} {'MS-SSIM':>8} {'enc s':>7} {'dec s':>7}")
    for c in curves:
        for i, q in enumerate(c.quality):
            echo(f"{c.name:<28} {q:>3} {c.bpp[i]:8.4f} {c.psnr[i]:8.3f} {c.ms_ssim[i]:8.4f} "
                 f"{c.encoding_time[i]:7.3f} {c.decoding_time[i]:7.3f}")
    echo("\nBD-rate (PSNR) of leechcodec against each curve (negative = fewer bits for the same PSNR):")
    for t in table:
        v = t["bd_rate_percent"]
        echo(f"  vs {t['reference']:<45} {'n/a (no overlap)' if math.isnan(v) else f'{v:+.1f}%'}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")
    if csv_out:
        with open(csv_out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["codec", "quality", "image", "bpp", "psnr", "ms_ssim", "encoding_time", "decoding_time"])
            for r in rows:
                w.writerow([r.codec, r.quality, r.image, f"{r.bpp:.6f}", f"{r.psnr:.4f}", f"{r.ms_ssim:.6f}",
                            f"{r.encoding_time:.4f}", f"{r.decoding_time:.4f}"])
            for c in curves:
                for i, q in enumerate(c.quality):
                    w.writerow([c.name, q, "MEAN", f"{c.bpp[i]:.6f}", f"{c.psnr[i]:.4f}", f"{c.ms_ssim[i]:.6f}",
                                f"{c.encoding_time[i]:.4f}", f"{c.decoding_time[i]:.4f}"])
    if plot_out:
        plot(curves, anchors, plot_out, log_rate)
    return result
