"""The two calls users make: ``compress`` (an image → .lsq bytes) and ``decompress`` (.lsq bytes → an image).

``compress`` applies the encoder's policy (``encoder``: quality level or bpp target, allocation, refinement);
``decompress`` reads the file (``container``) with the model it names. Files of every format version decode.
"""

from __future__ import annotations

from PIL import Image

from leechcodec.container import decode_indices, parse
from leechcodec.encoder import encode_at_rate, encode_image
from leechcodec.imageio import read_image
from leechcodec.zoo import load_model


def compress(image, *, quality: int | None = None, model: str | None = None, device: str = "cpu",
             prior: str = "auto", refine: int = 0, allocation: str = "auto", bpp: float | None = None,
             effort: int = 0) -> bytes:
    """An image (path, bytes, PIL image or uint8 [H, W, 3]) → .lsq bytes. quality: 1..N, lowest rate first;
    prior: "auto" (the conditional prior when the model has one), "conditional" or "static"; refine: steps of
    encoder-side latent refinement (slower encoding, the same token count and format, lower distortion, a few
    percent more bits; 0 = off); allocation: "auto" (adaptive where the model allows it), "uniform" or "adaptive"
    (the same mean token count spent where it removes the most latent error; format 3); bpp: instead of a quality
    level, the largest file of at most this many bits per pixel (``encode_at_rate``; with refinement too); effort:
    0 (the plain encoder) to 3, a slower rate-aware search for better tokens (``effort``; an alternative to refine;
    the same format)."""
    loaded, rgb = load_model(model, device), read_image(image)
    if bpp is None:
        return encode_image(loaded, rgb, quality=quality, prior=prior, refine=refine, allocation=allocation,
                            effort=effort).data
    if quality is not None:
        raise ValueError("a bpp target replaces the quality level")
    return encode_at_rate(loaded, rgb, bpp, prior=prior, allocation=allocation, refine=refine, effort=effort).data


def decompress(data: bytes, device: str = "cpu") -> Image.Image:
    """.lsq bytes → the decoded RGB image (the model named in the file)."""
    header, model, indices, gains = parse(data, device)
    return Image.fromarray(decode_indices(model, indices, header.height, header.width, gains), "RGB")
