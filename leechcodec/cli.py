"""The ``leechcodec`` command line (click): encode, decode, info, models, eval.

User errors print one line ``leechcodec: error: …`` and exit with status 1, never a traceback. Outputs are never
overwritten without ``-f`` and are written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import click

from leechcodec import __version__

CONTEXT = {"help_option_names": ["-h", "--help"]}


class UserError(click.ClickException):
    """A clean one-line error: ``leechcodec: error: message`` on stderr, exit code 1."""

    def show(self, file=None) -> None:
        click.echo(f"leechcodec: error: {self.format_message()}", err=True, file=file)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA device is available")
    return name


def _check_output(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise UserError(f"{path} exists (use -f to overwrite)")
    if path.is_dir():
        raise UserError(f"{path} is a directory")
    if not path.parent.exists():
        raise UserError(f"folder {path.parent} does not exist")


def _read_input(path: Path) -> bytes:
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None


PRIOR_OPTION = click.option("--prior", type=click.Choice(["auto", "conditional", "static"]), default="auto",
                            show_default=True,
                            help="entropy model: conditional (format 2), static (format 1), auto = conditional when "
                                 "the model has one")
REFINE_OPTION = click.option("--refine", type=click.IntRange(min=0), default=0, show_default=True,
                             help="steps of encoder-side latent refinement: same token count (with --bpp: within "
                                  "the target) and format, lower distortion, about 0.5 s per step for a 768x512 "
                                  "image on 2 CPU cores (25 is a good choice; 0 = off)")
EFFORT_OPTION = click.option("--effort", type=click.IntRange(0, 3), default=0, show_default=True,
                             help="how long the encoder searches for better tokens (same format, any decoder): 0 "
                                  "the plain encoder (about 0.5 s for a 768x512 image on 2 CPU cores), 1 to 3 a "
                                  "rate-aware search (about 12 s at 1 and 50 s at 3 there); see docs/results.md")
ALLOCATION_OPTION = click.option("--allocation", type=click.Choice(["auto", "uniform", "adaptive"]),
                                 default="auto", show_default=True,
                                 help="uniform: the quality level's tokens at every position; adaptive: the same "
                                      "mean, spent where they remove more error (format 3; gain-shape models with a "
                                      "conditional prior, above quality 1); "
                                      "auto = adaptive where the model and --prior allow it")
DEVICE_OPTION = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu",
                             show_default=True, help="where the network runs")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="leechcodec")
def main() -> None:
    """leechcodec: learned image compression with spherical Leech quantization (Λ24-SQ)."""
    warnings.filterwarnings("ignore", module="numba")
    warnings.formatwarning = lambda msg, *a, **k: f"leechcodec: warning: {msg}\n"


def _outputs(inputs: tuple[Path, ...], output: Path | None, suffix: str) -> list[Path]:
    """Where each input is written: INPUT with the suffix; with -o, that file (one input) or that folder (several)."""
    if not inputs:
        raise UserError("no input files given")
    if output is None:
        outs = [p.with_suffix(suffix) for p in inputs]
    elif len(inputs) == 1:
        outs = [output]
    else:
        if not output.is_dir():
            raise UserError(f"-o {output} must be an existing folder when there are several inputs")
        outs = [output / p.with_suffix(suffix).name for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dst in zip(inputs, outs):
        if dst.resolve() in seen:
            raise UserError(f"{src} and {seen[dst.resolve()]} would both be written to {dst}")
        seen[dst.resolve()] = src
    return outs


def _run_batch(jobs: list[tuple[Path, Path]], work, what: str) -> None:
    """Run work(input, output) → (bytes written, pixels) for every job. A failing job (UserError) is reported on its
    own line and skipped; with several jobs a progress bar runs on stderr and a summary line follows. Exits with
    status 1 when any job failed."""
    import time

    if len(jobs) == 1:
        work(*jobs[0])
        return
    from tqdm import tqdm

    start, failed, total_bytes, total_pixels = time.perf_counter(), 0, 0, 0
    with tqdm(jobs, desc=what, unit="file", file=sys.stderr, leave=False, disable=None) as bar:
        for src, dst in bar:
            try:
                written, pixels = work(src, dst)
            except UserError as e:
                bar.clear()
                e.show()
                failed += 1
                continue
            total_bytes, total_pixels = total_bytes + written, total_pixels + pixels
    done = len(jobs) - failed
    rate = f", {8 * total_bytes / total_pixels:.4f} bpp on average" if what == "encode" and total_pixels else ""
    click.echo(f"{what}: {done} of {len(jobs)} files, {total_bytes} bytes{rate}, "
               f"{time.perf_counter() - start:.1f} s" + (f"; {failed} failed" if failed else ""))
    if failed:
        sys.exit(1)


@main.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="output .lsq for one input, an existing folder for several (default: each INPUT with .lsq)")
@click.option("-q", "--quality", type=int, default=None, help="quality level 1..N, lowest rate first")
@click.option("--bpp", type=float, default=None,
              help="rate control instead of -q: the largest file of at most this many bits per pixel (adaptive "
                   "allocation makes the mean token count continuous; costs a few extra entropy-coding passes)")
@click.option("-m", "--model", "model_id", default=None, help="model id (default: the shipped default)")
@PRIOR_OPTION
@EFFORT_OPTION
@REFINE_OPTION
@ALLOCATION_OPTION
@DEVICE_OPTION
@click.option("-f", "--force", is_flag=True, help="overwrite existing outputs")
def encode(inputs: tuple[Path, ...], output: Path | None, quality: int | None, bpp: float | None,
           model_id: str | None, prior: str, effort: int, refine: int, allocation: str, device: str,
           force: bool) -> None:
    """Compress images (anything Pillow reads) into .lsq files; the model is loaded once for all of them."""
    from leechcodec.encoder import encode_at_rate, encode_image
    from leechcodec.imageio import ImageError, read_image, write_atomic
    from leechcodec.zoo import load_model

    if bpp is not None and quality is not None:
        raise UserError("--bpp replaces -q")
    if refine and effort:
        raise UserError("--refine and --effort are alternatives: give one of them")
    jobs = list(zip(inputs, _outputs(inputs, output, ".lsq")))
    if len(jobs) == 1:  # refused before anything is loaded; several outputs are checked one by one
        _check_output(jobs[0][1], force)
    try:
        model = load_model(model_id, _device(device))
        model.groups_for(quality)
    except ValueError as e:
        raise UserError(str(e)) from None

    def work(src: Path, dst: Path) -> tuple[int, int]:
        _check_output(dst, force)
        try:
            rgb = read_image(src)
            if bpp is None:
                enc = encode_image(model, rgb, quality=quality, prior=prior, refine=refine, allocation=allocation,
                                   effort=effort)
            else:
                enc = encode_at_rate(model, rgb, bpp, prior=prior, allocation=allocation, refine=refine, effort=effort)
        except (ImageError, ValueError) as e:
            raise UserError(f"{src}: {e}") from None
        write_atomic(dst, enc.data)
        if len(jobs) == 1:
            setting = (f"quality {quality or model.meta.get('default_quality')}" if bpp is None
                       else f"target {bpp:g} bpp, {enc.mean_tokens:.2f} tokens per position")
            setting += f", refine {refine}" if refine else ""
            setting += f", effort {effort}" if effort else ""
            click.echo(f"{dst}: {len(enc.data)} bytes, {enc.width}x{enc.height}, {enc.bpp:.4f} bpp "
                       f"(model {model.model_id}, {setting}, {enc.token_counts} token counts)")
        return len(enc.data), enc.width * enc.height

    _run_batch(jobs, work, "encode")


@main.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="output image for one input, an existing folder for several (default: each INPUT with .png)")
@DEVICE_OPTION
@click.option("-f", "--force", is_flag=True, help="overwrite existing outputs")
def decode(inputs: tuple[Path, ...], output: Path | None, device: str, force: bool) -> None:
    """Decompress .lsq files to PNG (each file names its model)."""
    from PIL import Image

    from leechcodec.container import decode_indices, parse
    from leechcodec.imageio import png_bytes, write_atomic

    jobs = list(zip(inputs, _outputs(inputs, output, ".png")))
    if len(jobs) == 1:  # refused before anything is loaded; several outputs are checked one by one
        _check_output(jobs[0][1], force)
    dev = _device(device)

    def work(src: Path, dst: Path) -> tuple[int, int]:
        _check_output(dst, force)
        data = _read_input(src)
        try:
            header, model, indices, gains = parse(data, dev)
            rgb = decode_indices(model, indices, header.height, header.width, gains)
        except ValueError as e:
            raise UserError(f"{src}: {e}") from None
        png = png_bytes(Image.fromarray(rgb, "RGB"))
        write_atomic(dst, png)
        if len(jobs) == 1:
            click.echo(f"{dst}: {header.width}x{header.height}")
        return len(png), header.width * header.height

    _run_batch(jobs, work, "decode")


@main.command(context_settings=CONTEXT)
@click.argument("input", type=click.Path(path_type=Path))
def info(input: Path) -> None:
    """Print the header of a .lsq file."""
    from leechcodec.bitstream import unpack

    data = _read_input(input)
    try:
        header, _ = unpack(data)
    except ValueError as e:
        raise UserError(f"{input}: {e}") from None
    fields = header.describe() | {"file_bytes": len(data), "bpp": round(8 * len(data) / (header.height *
                                                                                           header.width), 5)}
    for k, v in fields.items():
        click.echo(f"{k}: {v}")


@main.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="print the registry as JSON")
def models(as_json: bool) -> None:
    """List the shipped models with their Kodak numbers."""
    from leechcodec.zoo import list_models

    try:
        entries = list_models()
    except ValueError as e:
        raise UserError(str(e)) from None
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    for m in entries:
        star = " (default)" if m["default"] else (f" (retired: files in git commit {m['retired']})"
                                                   if m.get("retired") else "")
        stages = f", {m['stages']} residual stages" if m.get("stages", 1) > 1 else ""
        stages += f" in {m['blocks']} token blocks" if m.get("blocks", 1) > 1 else ""
        click.echo(f"{m['id']}{star}: {m['quantizer']}, stride {m['stride']}{stages}, {m['parameters'] / 1e6:.2f} M "
                   f"parameters, qualities 1..{m['qualities']} (default {m['default_quality']}), file {m['file']}")
        if m.get("kodak"):
            click.echo(f"  quality  groups   bpp     PSNR-RGB  MS-SSIM   (Kodak, 24 images, real files, "
                       f"{m.get('kodak_allocation', 'uniform')} allocation)")
            for r in m["kodak"]:
                click.echo(f"  {r['quality']:>7}  {r['groups']:>6}  {r['bpp']:.4f}  {r['psnr']:8.3f}  "
                           f"{r['ms_ssim']:.4f}")


@main.command("eval", context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("-q", "--quality", "qualities", default="all", show_default=True,
              help="'all' or a comma list of quality levels, e.g. 1,3,5")
@click.option("--bpp", "bpp_targets", default=None,
              help="instead of quality levels: a comma list of bpp targets, e.g. 0.2747,0.3 (rate control: per "
                   "image the largest file within the target; encode --bpp)")
@click.option("-m", "--model", "model_id", default=None, help="model id (default: the shipped default)")
@click.option("--compare", default="jpeg,webp,avif,jxl", show_default=True,
              help="classic codecs measured live ('' for none); missing plugins are skipped with a warning")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="write CompressAI-style JSON here")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path), help="write per-image and mean rows here")
@click.option("--plot", "plot_out", type=click.Path(path_type=Path), help="write RD plots (PNG) here")
@click.option("--log-rate", is_flag=True, help="logarithmic bpp axis in the plot")
@click.option("--update-registry", is_flag=True, help="store the measured means in models/zoo.json")
@PRIOR_OPTION
@EFFORT_OPTION
@REFINE_OPTION
@ALLOCATION_OPTION
@DEVICE_OPTION
def eval_command(dataset: Path, qualities: str, bpp_targets: str | None, model_id: str | None, compare: str,
                 json_out: Path | None, csv_out: Path | None, plot_out: Path | None, log_rate: bool,
                 update_registry: bool, prior: str, effort: int, refine: int, allocation: str, device: str) -> None:
    """Rate–distortion of leechcodec (real files) beside classic codecs, with BD-rates and plots."""
    from leechcodec import evaluate, zoo

    if update_registry and (refine or effort or allocation != "auto" or prior != "auto" or bpp_targets is not None):
        raise UserError("--update-registry records the default encoder's numbers; drop --effort, --refine, "
                        "--allocation, --prior and --bpp")
    if refine and effort:
        raise UserError("--refine and --effort are alternatives: give one of them")
    if bpp_targets is not None and qualities != "all":
        raise UserError("--bpp replaces -q")
    targets = None
    if bpp_targets is not None:
        try:
            targets = [float(t) for t in bpp_targets.split(",") if t.strip()]
        except ValueError:
            raise UserError(f"--bpp takes a comma list of numbers, not {bpp_targets!r}") from None
        if not targets or not all(math.isfinite(t) and t > 0 for t in targets):
            raise UserError(f"--bpp takes positive bpp targets, not {bpp_targets!r}")
    try:
        model = zoo.load_model(model_id, _device(device))
        n = model.qualities
        qs = list(range(1, n + 1)) if qualities == "all" else [int(q) for q in qualities.split(",") if q]
        for q in qs:
            model.groups_for(q)
        codecs = [c.strip() for c in compare.split(",") if c.strip()]
        result = evaluate.run(dataset, model, qs, codecs, json_out, csv_out, plot_out, log_rate, echo=click.echo,
                              prior=prior, refine=refine, allocation=allocation, bpp_targets=targets, effort=effort)
    except ValueError as e:
        raise UserError(str(e)) from None
    if update_registry:
        zoo.record_kodak(model.model_id, result)


def run() -> None:
    """Entry point that keeps Ctrl-C clean."""
    try:
        main()
    except KeyboardInterrupt:
        click.echo("leechcodec: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    run()
