"""Pillow plugin: ``Image.open("x.lsq")`` decodes a .lsq file, ``img.save("x.lsq")`` encodes one.

Registered by ``import leechcodec`` (format name "LSQ", extension ".lsq", MIME type image/x-lsq). Opening reads and
validates the header only (size and mode are known at once); the pixels are decoded on first access (``load``),
as Pillow does for every format. Saving takes the encoder's keyword options: ``quality`` (the model's quality level
1..N, not JPEG's 0..100), ``bpp`` (rate control), ``model``, ``refine``, ``allocation``, ``prior``.
"""

from __future__ import annotations

from PIL import Image, ImageFile

# Registration runs on every ``import leechcodec``: the codec's modules (numpy, torch) are imported only when Pillow
# opens or saves a file of this format.
FORMAT = "LSQ"
SAVE_OPTIONS = ("quality", "bpp", "model", "effort", "refine", "allocation", "prior")


def _accept(prefix: bytes) -> bool:
    from leechcodec.bitstream import MAGIC

    return prefix[:4] == MAGIC


class LsqImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "leechcodec spherical Leech quantization"

    def _open(self) -> None:
        from leechcodec.bitstream import FormatError, unpack

        self._lsq = self.fp.read()
        try:
            header, _ = unpack(self._lsq)
        except FormatError as e:
            raise SyntaxError(str(e)) from None  # Pillow's signal for "not this format"
        self._mode = "RGB"
        self._size = (header.width, header.height)
        self.info["lsq_model"] = header.model_id
        self.tile = []

    def load(self):
        if self._im is None:
            from leechcodec.codec import decompress

            self.im = decompress(self._lsq).im
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    from leechcodec.codec import compress

    options = {k: im.encoderinfo[k] for k in SAVE_OPTIONS if im.encoderinfo.get(k) is not None}
    fp.write(compress(im.convert("RGB"), **options))


def register() -> None:
    Image.register_open(FORMAT, LsqImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".lsq")
    Image.register_mime(FORMAT, "image/x-lsq")
