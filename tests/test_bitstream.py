"""The .lsq format: golden bytes, and clean errors for every kind of damage."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from leechcodec import bitstream
from leechcodec.bitstream import FormatError, Header

# sha256 of the file for FIXED_INDICES under the synthetic prior: pins the layout, the index order's role in the
# payload and the constriction version together. Only integers go in, so this is exact on every machine.
GOLDEN_SHA256 = "601f9493502af02d6ec83afd5149ec41db55978b7565244154d847d4d3bdf6e3"


def fixed_indices() -> np.ndarray:
    return (np.arange(2 * 3 * 5).reshape(2, 3, 5) * 6553 + 17) % 196_560


def make_file(prior, indices=None, prior_hash=None) -> bytes:
    indices = fixed_indices() if indices is None else indices
    words = prior.encode(indices)
    header = Header("test-model", bytes(range(8)), 45, 77, indices.shape[0], indices.size, len(words), prior_hash)
    return bitstream.pack(header, words)


@pytest.fixture(params=[None, b"ctxprior"], ids=["v1", "v2"])
def prior_hash(request):
    """Both layouts: version 1 (static prior) and version 2 (with a conditional-prior hash)."""
    return request.param


def test_golden_bytes(synthetic_prior):
    data = make_file(synthetic_prior)
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256
    assert data[:4] == b"\x89LSQ" and data[4] == 1


def test_round_trip(synthetic_prior, prior_hash):
    data = make_file(synthetic_prior, prior_hash=prior_hash)
    header, words = bitstream.unpack(data)
    assert header == Header("test-model", bytes(range(8)), 45, 77, 2, 30, len(words), prior_hash)
    assert data[4] == header.version == (1 if prior_hash is None else 2)
    assert (synthetic_prior.decode(words, 2, 3, 5) == fixed_indices()).all()


def test_every_truncation_is_a_clean_error(synthetic_prior, prior_hash):
    data = make_file(synthetic_prior, prior_hash=prior_hash)
    for n in range(len(data)):
        with pytest.raises(FormatError):
            bitstream.unpack(data[:n])


def test_every_flipped_byte_is_a_clean_error(synthetic_prior, prior_hash):
    data = bytearray(make_file(synthetic_prior, prior_hash=prior_hash))
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        with pytest.raises(FormatError):
            bitstream.unpack(bytes(bad))


def test_distinct_messages(synthetic_prior):
    data = make_file(synthetic_prior)
    with pytest.raises(FormatError, match="magic"):
        bitstream.unpack(b"GIF89a" + data[6:])
    with pytest.raises(FormatError, match="version 7"):
        bitstream.unpack(data[:4] + bytes([7]) + data[5:])
    with pytest.raises(FormatError, match="truncated"):
        bitstream.unpack(data[:-1])
    with pytest.raises(FormatError, match="trailing"):
        bitstream.unpack(data + b"\0")
    with pytest.raises(FormatError, match="CRC"):
        bitstream.unpack(data[:-1] + bytes([data[-1] ^ 1]))


def test_absurd_sizes_rejected_before_allocation():
    huge = Header("m", bytes(8), 1, 1, 1, 1, 0)
    data = bytearray(bitstream.pack(huge, np.zeros(0, np.uint32)))
    # claim 2^32-1 words: must fail on length, not try to allocate
    data[-12:-4] = (1).to_bytes(4, "little") + (0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(FormatError, match="truncated"):
        bitstream.unpack(bytes(data))
    with pytest.raises(ValueError, match="outside"):
        bitstream.pack(Header("m", bytes(8), 70_000, 1, 1, 1, 0), np.zeros(0, np.uint32))
