import dataclasses
import functools
import hashlib
import http.server
import multiprocessing
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from digitread.data import mnist as mnist_module
from digitread.data.mnist import MNIST, load_mnist, locate, stratified_split
from digitread.errors import DataError


def test_real_mnist_loads_verified_and_split_55000_5000(mnist):
    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (55000, 5000, 10000)
    assert mnist.train.images.shape == (55000, 28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.checksums == {f.name: f.md5 for f in MNIST.files()}
    # Stratified: every class keeps its share of the 60,000 within a fraction of a percent.
    share_val = np.bincount(mnist.val.labels, minlength=10) / 5000
    share_train = np.bincount(mnist.train.labels, minlength=10) / 55000
    assert np.abs(share_val - share_train).max() < 0.002


def test_split_depends_on_seed_only():
    labels = np.repeat(np.arange(10), 100)
    a = stratified_split(labels, 100, seed=1)[1]
    assert np.array_equal(a, stratified_split(labels, 100, seed=1)[1])
    assert not np.array_equal(a, stratified_split(labels, 100, seed=2)[1])
    assert np.array_equal(np.bincount(labels[a]), np.full(10, 10))


def test_tiny_dataset_loads_with_its_spec(tiny_dataset):
    folder, spec = tiny_dataset
    data = load_mnist(folder, val_size=100, seed=0, spec=spec)
    assert (len(data.train), len(data.val), len(data.test)) == (500, 100, 200)


def test_a_file_that_is_not_the_expected_one_is_refused(tiny_dataset, tmp_path):
    folder, spec = tiny_dataset
    for f in spec.files():
        (tmp_path / f.name).write_bytes((folder / f.name).read_bytes())
    wrong = dataclasses.replace(spec, test_labels=dataclasses.replace(spec.test_labels, md5="f" * 32))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: checksum mismatch"):
        load_mnist(tmp_path, val_size=100, spec=wrong)


def test_lookup_order_is_argument_then_variable_then_cache(tiny_dataset, tmp_path, monkeypatch):
    folder, spec = tiny_dataset
    monkeypatch.setenv("DIGITREAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIGITREAD_DATA", str(folder))
    assert locate(spec, download=False) == folder
    other = tmp_path / "other"
    other.mkdir()
    for f in spec.files():
        (other / f.name).write_bytes((folder / f.name).read_bytes())
    assert locate(spec, other) == other  # the argument wins over the variable
    monkeypatch.delenv("DIGITREAD_DATA")
    cache = tmp_path / "cache" / "mnist"
    cache.mkdir(parents=True)
    for f in spec.files():
        (cache / f.name).write_bytes((folder / f.name).read_bytes())
    assert locate(spec, download=False) == cache


def test_offline_without_data_says_how_to_point_at_local_files(tiny_dataset, tmp_path, monkeypatch):
    _, spec = tiny_dataset
    monkeypatch.delenv("DIGITREAD_DATA", raising=False)
    monkeypatch.setenv("DIGITREAD_CACHE", str(tmp_path))
    dead = dataclasses.replace(spec, mirrors=("http://127.0.0.1:9/",))
    monkeypatch.setattr(mnist_module.time, "sleep", lambda s: None)
    with pytest.raises(DataError, match="--data-dir DIR or set DIGITREAD_DATA"):
        locate(dead)


@pytest.mark.parametrize("val_size", [5, 591])
def test_a_validation_split_too_small_or_too_large_is_refused(tiny_dataset, val_size):
    folder, spec = tiny_dataset
    with pytest.raises(DataError, match="validation size"):
        load_mnist(folder, val_size=val_size, spec=spec)


def test_missing_data_folder_and_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        locate(MNIST, tmp_path / "absent")
    with pytest.raises(DataError, match="lacks train-images-idx3-ubyte.gz"):
        locate(MNIST, tmp_path)


@pytest.fixture()
def loopback_mirror(tiny_dataset, tmp_path):
    """An HTTP server on 127.0.0.1 serving a copy of the tiny data set; one file is served corrupt."""
    folder, spec = tiny_dataset
    served = tmp_path / "served"
    served.mkdir()
    for f in spec.files():
        (served / f.name).write_bytes((folder / f.name).read_bytes())
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield spec, served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_from_mirrors_verifies_and_caches(loopback_mirror, tmp_path, monkeypatch):
    spec, served, url = loopback_mirror
    monkeypatch.delenv("DIGITREAD_DATA", raising=False)
    monkeypatch.setenv("DIGITREAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_module.time, "sleep", lambda s: None)
    # The first mirror refuses connections, the second answers 404, the third serves the files.
    spec = dataclasses.replace(spec, mirrors=("http://127.0.0.1:9/", url + "missing/", url))
    data = load_mnist(val_size=100, spec=spec)
    assert len(data.train) == 500
    cache = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f.name for f in spec.files())
    for f in spec.files():
        assert hashlib.md5(mnist_module.read_raw_bytes(cache / f.name)).hexdigest() == f.md5


def test_a_mirror_serving_a_wrong_file_is_never_cached(loopback_mirror, tmp_path, monkeypatch):
    spec, served, url = loopback_mirror
    (served / spec.test_images.name).write_bytes(b"\x1f\x8b garbage")
    monkeypatch.delenv("DIGITREAD_DATA", raising=False)
    monkeypatch.setenv("DIGITREAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_module.time, "sleep", lambda s: None)
    with pytest.raises(DataError, match="could not be downloaded"):
        locate(dataclasses.replace(spec, mirrors=(url,)))
    assert not (tmp_path / "cache" / "mnist" / spec.test_images.name).exists()


class _CutOffHandler(_QuietHandler):
    """Declares the whole file, sends half of it and hangs up: a download cut off by the network."""

    def do_GET(self):
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


def test_a_download_cut_off_halfway_is_never_used_or_cached(loopback_mirror, tmp_path, monkeypatch):
    spec, served, _ = loopback_mirror
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_CutOffHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv("DIGITREAD_DATA", raising=False)
    monkeypatch.setenv("DIGITREAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_module.time, "sleep", lambda s: None)
    try:
        with pytest.raises(DataError, match="could not be downloaded"):
            locate(dataclasses.replace(spec, mirrors=(f"http://127.0.0.1:{server.server_address[1]}/",)))
    finally:
        server.shutdown()
    cache = tmp_path / "cache" / "mnist"
    assert not cache.exists() or not any(cache.iterdir()), list(cache.iterdir())


def _download_into(cache: str, spec, url: str) -> list[str]:
    os.environ.pop("DIGITREAD_DATA", None)
    os.environ["DIGITREAD_CACHE"] = cache
    data = load_mnist(val_size=100, spec=dataclasses.replace(spec, mirrors=(url,)))
    return sorted(data.checksums.values())


def test_two_processes_downloading_into_one_cache_at_once_leave_it_whole(loopback_mirror, tmp_path):
    spec, _, url = loopback_mirror
    cache = str(tmp_path / "cache")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_download_into, [(cache, spec, url)] * 2)
    assert results[0] == results[1] == sorted(f.md5 for f in spec.files())
    folder = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.name for f in spec.files())  # no temporaries
    for f in spec.files():
        assert hashlib.md5(mnist_module.read_raw_bytes(folder / f.name)).hexdigest() == f.md5
