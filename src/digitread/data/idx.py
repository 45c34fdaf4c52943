"""Read and write IDX files (the MNIST format), gzipped or raw, checking everything a header claims.

An IDX file is a 4-byte magic number (0, 0, dtype code, number of dimensions), one big-endian uint32
per dimension, then the data in C order.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from digitread.errors import DataError

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str: code for code, dt in _DTYPES.items()}


def read_raw_bytes(path: str | Path) -> bytes:
    """The decompressed content of ``path`` (gzip is recognised by its magic bytes, not its name)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return data


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array, failing with a message naming ``name`` on any inconsistency."""
    if len(data) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    zero1, zero2, code, ndim = struct.unpack(">BBBB", data[:4])
    if zero1 != 0 or zero2 != 0 or code not in _DTYPES or ndim == 0:
        raise DataError(f"{name}: not an IDX file (bad magic number {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got < expected:
        raise DataError(f"{name}: truncated: header promises shape {shape} ({expected} bytes), found {got} bytes")
    if got > expected:
        raise DataError(f"{name}: {got - expected} unexpected bytes after the data for shape {shape}")
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path, md5: str | None = None) -> np.ndarray:
    """Read an IDX file; with ``md5``, verify the decompressed content first.

    >>> images = read_idx("t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
    """
    data = read_raw_bytes(path)
    if md5 is not None:
        actual = hashlib.md5(data).hexdigest()
        if actual != md5:
            raise DataError(
                f"{path}: checksum mismatch (md5 of decompressed content {actual}, expected {md5}); "
                "the file is corrupt or not the one expected: delete it and fetch it again"
            )
    return parse_idx(data, str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes for ``array`` (used for tests and for exporting digit sets)."""
    array = np.ascontiguousarray(array)
    code = _CODES.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(_DTYPES[code], copy=False).tobytes()


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX (gzipped when the name ends in .gz, unless ``compress`` says otherwise)."""
    from digitread._io import atomic_write_bytes

    path = Path(path)
    data = encode_idx(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)
