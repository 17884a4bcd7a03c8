#!/usr/bin/env python3
"""Print the Markdown tables for the README from a `leechcodec eval --json` result, and optionally redraw its plot.

    bin/rd_table.py docs/kodak_eval.json [--plot docs/kodak_rd.png] [--against docs/other_eval.json ...]
                    [--with-their-comparisons] [--plot-also docs/other_eval.json ...]

--against adds the BD-rate of this result's leechcodec curve against the leechcodec curve of other results (another
model, or the same model with other encoder settings, measured on the same images); with --with-their-comparisons
also against the curves those results measured beside it (the Pillow codecs). --plot-also draws the leechcodec
curves of other results into the plot too.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import json
import math
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result", type=Path, help="JSON written by leechcodec eval --json")
    p.add_argument("--plot", type=Path, help="redraw the rate-distortion plot into this PNG")
    p.add_argument("--against", type=Path, nargs="*", default=[], help="other eval results to compare with")
    p.add_argument("--with-their-comparisons", action="store_true",
                   help="--against also takes the other results' measured comparison curves")
    p.add_argument("--plot-also", type=Path, nargs="*", default=[], help="eval results whose curve joins the plot")
    args = p.parse_args(argv)

    def load(path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
            data["results"], data["comparisons"], data["bd_rate"]  # the fields the tables need
        except (OSError, ValueError, KeyError, TypeError) as e:
            p.exit(1, f"rd_table.py: error: {path} is not a leechcodec eval result ({e})\n")
        return data

    data = load(args.result)
    others = [load(path) for path in args.against]
    if args.plot:
        from leechcodec.evaluate import curves_from_json, load_anchors, plot

        plot(curves_from_json(data) + [curves_from_json(load(path))[0] for path in args.plot_also], load_anchors(),
             args.plot)
    r = data["results"]
    print(f"**{data['name']}** — {data['description']}; mean over {data['images']} images.\n")
    print("| quality | bpp | PSNR-RGB (dB) | MS-SSIM | encode (s) | decode (s) |")
    print("|---|---|---|---|---|---|")
    for i, q in enumerate(r["quality"]):
        print(f"| {q} | {r['bpp'][i]:.4f} | {r['psnr-rgb'][i]:.2f} | {r['ms-ssim-rgb'][i]:.4f} | "
              f"{r['encoding_time'][i]:.3f} | {r['decoding_time'][i]:.3f} |")
    print("\nMeasured in the same run (Pillow codecs; our static-prior files, when the model has a conditional "
          "prior):\n")
    print("| codec | quality | bpp | PSNR-RGB (dB) | MS-SSIM |")
    print("|---|---|---|---|---|")
    for c in data["comparisons"]:
        cr = c["results"]
        for i, q in enumerate(cr["quality"]):
            print(f"| {c['name']} | {q} | {cr['bpp'][i]:.4f} | {cr['psnr-rgb'][i]:.2f} | {cr['ms-ssim-rgb'][i]:.4f} |")
    print("\nBD-rate (PSNR) of leechcodec against each curve (negative: fewer bits at equal PSNR; n/a: the PSNR "
          "ranges do not overlap):\n")
    print("| reference | BD-rate |")
    print("|---|---|")
    for t in data["bd_rate"]:
        v = t["bd_rate_percent"]
        print(f"| {t['reference']} | {'n/a' if v is None or math.isnan(v) else f'{v:+.1f}%'} |")
    if others:
        from leechcodec.metrics import bd_rate

        r = data["results"]
        for other in others:
            for i, c in enumerate([other] + (other["comparisons"] if args.with_their_comparisons else [])):
                o = c["results"]
                v = bd_rate(o["bpp"], o["psnr-rgb"], r["bpp"], r["psnr-rgb"])
                where = c["description"] if i == 0 else f"measured beside {other['name']}"
                print(f"| {c['name']} ({where}) | {'n/a' if math.isnan(v) else f'{v:+.1f}%'} |")


if __name__ == "__main__":
    main()
