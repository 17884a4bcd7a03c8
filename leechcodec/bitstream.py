"""The .lsq header: byte layout, writing (``pack``) and validated reading (``unpack``).

The format (header fields of versions 1–3, payload streams, bpp, validation rules) is specified in docs/format.md;
this module implements its header and the checks that run before any payload is used: every size is checked against
limits and against the file length before anything is allocated, and the CRC before the payload is read. The
payload's streams are the token coder's (``token_coder``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"\x89LSQ"
FILE_FORMAT_VERSION = 3  # the newest .lsq format version this module writes (per-position token counts)
SUPPORTED_VERSIONS = (1, 2, 3)
MAX_ID_LEN = 64
MAX_SIDE = 1 << 16  # 65,536 pixels per side
MAX_PIXELS = 1 << 28  # 268 M pixels
HASH_LEN = 8
_FIXED = struct.Struct("<4sBB")  # magic, version, id length
_TAIL = {1: struct.Struct("<8sIIBII"),  # weights hash, H, W, groups, symbols, words
         2: struct.Struct("<8s8sIIBII"),  # weights hash, conditional-prior hash, H, W, groups, symbols, words
         3: struct.Struct("<8s8sIIBII")}  # as version 2
# coded symbols per token at most (v2: class, and bucket + symbol in it, or two steps), plus one gain symbol
# (v3: one count symbol per position, at most one per token, on top of v2)
_CODED_SYMBOLS_PER_TOKEN = {1: 2, 2: 5, 3: 6}
_CRC = struct.Struct("<I")


class FormatError(ValueError):
    """The bytes are not a valid .lsq file; the message says why."""


@dataclass(frozen=True)
class Header:
    model_id: str
    weights_hash: bytes  # 8 bytes
    height: int
    width: int
    groups: int
    symbols: int  # tokens: groups × latent positions
    words: int
    prior_hash: bytes | None = None  # 8 bytes in versions 2 and 3 (conditional prior); None in version 1 (static)
    token_counts: bool = False  # version 3: per-position token counts (needs the conditional prior)

    @property
    def version(self) -> int:
        return 1 if self.prior_hash is None else 3 if self.token_counts else 2

    def describe(self) -> dict:
        d = {"format_version": self.version, "model_id": self.model_id, "weights_hash": self.weights_hash.hex(),
             "height": self.height, "width": self.width, "groups": self.groups, "symbols": self.symbols,
             "payload_words": self.words}
        if self.prior_hash is not None:
            d["prior"], d["prior_hash"] = "conditional", self.prior_hash.hex()
        else:
            d["prior"] = "static"
        d["token_counts"] = "per position" if self.token_counts else "uniform"
        return d


def _check_dims(height: int, width: int) -> None:
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE) or height * width > MAX_PIXELS:
        raise FormatError(f"image size {width}x{height} is outside the supported range "
                          f"(sides 1..{MAX_SIDE}, at most {MAX_PIXELS} pixels)")


def pack(header: Header, words: np.ndarray) -> bytes:
    """Header fields + uint32 payload → the complete file bytes."""
    model_id = header.model_id.encode("ascii")
    if not 1 <= len(model_id) <= MAX_ID_LEN:
        raise ValueError(f"model id must be 1..{MAX_ID_LEN} ASCII characters")
    if header.token_counts and header.prior_hash is None:
        raise ValueError("per-position token counts need the conditional prior")
    if len(header.weights_hash) != HASH_LEN or (header.prior_hash is not None and len(header.prior_hash) != HASH_LEN):
        raise ValueError(f"hashes must be {HASH_LEN} bytes")
    _check_dims(header.height, header.width)
    if not 1 <= header.groups <= 255:
        raise ValueError("groups must be in 1..255")
    words = np.ascontiguousarray(words, dtype="<u4")
    hashes = (header.weights_hash,) if header.prior_hash is None else (header.weights_hash, header.prior_hash)
    body = (_FIXED.pack(MAGIC, header.version, len(model_id)) + model_id +
            _TAIL[header.version].pack(*hashes, header.height, header.width, header.groups, header.symbols,
                                       len(words)) +
            words.tobytes())
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes) -> tuple[Header, np.ndarray]:
    """Validate and split file bytes → (Header, uint32 payload words). Raises FormatError with a clear reason."""
    data = bytes(data)
    if len(data) < _FIXED.size:
        if MAGIC.startswith(data[:4]) and data:
            raise FormatError(f"truncated file ({len(data)} bytes)")
        raise FormatError("not a .lsq file (too short)" if not data else "not a .lsq file (wrong magic bytes)")
    magic, version, id_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("not a .lsq file (wrong magic bytes)")
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(f"unsupported .lsq format version {version} (this leechcodec reads "
                          f"{', '.join(map(str, SUPPORTED_VERSIONS))})")
    if not 1 <= id_len <= MAX_ID_LEN:
        raise FormatError(f"corrupt header (model id length {id_len})")
    tail = _TAIL[version]
    head_end = _FIXED.size + id_len + tail.size
    if len(data) < head_end + _CRC.size:
        raise FormatError(f"truncated file ({len(data)} bytes, header alone needs {head_end + _CRC.size})")
    fields = tail.unpack_from(data, _FIXED.size + id_len)
    weights_hash, prior_hash = fields[0], (fields[1] if version >= 2 else None)
    height, width, groups, symbols, words = fields[-5:]
    expected = head_end + 4 * words + _CRC.size
    if len(data) < expected:
        raise FormatError(f"truncated file ({len(data)} of {expected} bytes)")
    if len(data) > expected:
        raise FormatError(f"corrupt file ({len(data) - expected} unexpected trailing bytes)")
    (crc,) = _CRC.unpack_from(data, expected - _CRC.size)
    if zlib.crc32(data[: expected - _CRC.size]) != crc:
        raise FormatError("corrupt file (CRC32 checksum mismatch)")
    try:
        model_id = data[_FIXED.size: _FIXED.size + id_len].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("corrupt header (model id is not ASCII)") from None
    _check_dims(height, width)
    if groups < 1:
        raise FormatError("corrupt header (zero token groups)")
    # a 24-bit fixed-point coder spends at most 24 bits per coded symbol, plus the final words of (up to) two
    # streams and the gain stream's length word (v3: a third stream, its length word and its frequency table)
    if words > (24 * _CODED_SYMBOLS_PER_TOKEN[version] * symbols) // 32 + 5 + (3 + 128 if version == 3 else 0):
        raise FormatError("corrupt header (payload larger than the symbol count allows)")
    payload = np.frombuffer(data, dtype="<u4", count=words, offset=head_end).astype(np.uint32)
    return Header(model_id, weights_hash, height, width, groups, symbols, words, prior_hash, version == 3), payload
