import gzip

import numpy as np
import pytest

from digitread.data.idx import encode_idx, parse_idx, read_idx, write_idx
from digitread.errors import DataError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_write_then_read_gives_the_same_array(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    assert np.array_equal(read_idx(path), array)
    assert read_idx(path).dtype == array.dtype


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(gzip.compress(encode_idx(array)))
    assert np.array_equal(read_idx(path), array)


def test_bad_magic_number_names_the_file(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 20)
    with pytest.raises(DataError, match=r"bad\.idx: not an IDX file"):
        read_idx(path)


def test_truncated_data_is_reported_with_sizes(tmp_path):
    data = encode_idx(np.zeros((5, 28, 28), np.uint8))
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(data[:-100])
    with pytest.raises(DataError, match=r"short-idx3-ubyte: truncated"):
        read_idx(path)


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "cut.gz"
    noise = np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)
    path.write_bytes(gzip.compress(encode_idx(noise))[:2000])
    with pytest.raises(DataError, match=r"cut\.gz: corrupt or truncated gzip"):
        read_idx(path)


def test_trailing_bytes_are_refused():
    with pytest.raises(DataError, match="unexpected bytes"):
        parse_idx(encode_idx(np.zeros(4, np.uint8)) + b"xx", "x")


def test_checksum_mismatch_names_the_file(tmp_path):
    path = tmp_path / "labels.gz"
    write_idx(path, np.arange(10, dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels\.gz: checksum mismatch"):
        read_idx(path, md5="0" * 32)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "nope.gz")
