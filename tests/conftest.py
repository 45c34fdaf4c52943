"""Shared fixtures: tiny generated IDX data sets (offline, instant) and the real MNIST when it is present."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from digitread.data.idx import encode_idx, write_idx
from digitread.data.mnist import DatasetFile, DatasetSpec


def _tiny_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Learnable fake digits: each class lights a different block of the 28x28 field, plus noise."""
    images = rng.integers(0, 40, size=(len(labels), 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 4)
        images[i, 2 + 7 * r : 8 + 7 * r, 2 + 6 * c : 8 + 6 * c] = 250
    return images


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> tuple[Path, DatasetSpec]:
    """A folder with four gzipped IDX files (600 train, 200 test) and the spec that verifies them."""
    folder = tmp_path_factory.mktemp("tiny_mnist")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 600), ("t10k", 200)):
        labels = np.tile(np.arange(10, dtype=np.uint8), n // 10)
        rng.shuffle(labels)
        arrays[f"{split}-images-idx3-ubyte.gz"] = _tiny_images(labels, rng)
        arrays[f"{split}-labels-idx1-ubyte.gz"] = labels
    files = []
    for name, array in arrays.items():
        write_idx(folder / name, array)
        files.append(DatasetFile(name, hashlib.md5(encode_idx(array)).hexdigest(), array.shape))
    spec = DatasetSpec("tiny", files[0], files[1], files[2], files[3])
    return folder, spec


def mnist_dir() -> Path | None:
    for candidate in (os.environ.get("DIGITREAD_DATA"), Path(__file__).parents[1] / ".." / "shared" / "data" / "mnist"):
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    path = mnist_dir()
    if path is None:
        pytest.fail("MNIST not found: set DIGITREAD_DATA to a folder with the four IDX files (see README)")
    return path


@pytest.fixture(scope="session")
def mnist(mnist_path):
    from digitread.data.mnist import load_mnist

    return load_mnist(mnist_path, val_size=5000, seed=0)


# ---- made-up files ----


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height``, with pixel data for one row at most."""

    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    one_row = zlib.compress(b"\x00" + b"\xff" * min(width, 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", one_row) + chunk(b"IEND", b"")


# ---- what every reading must be, whatever the input ----


def assert_well_formed(reading, shape: tuple[int, ...]) -> None:
    """Confidences in [0, 1], boxes inside the image, text made of digits, '.' and '-' only."""
    h, w = shape[:2]
    assert 0.0 <= reading.confidence <= 1.0
    assert set(reading.text) <= set("0123456789.-\n ")
    for line in reading.lines:
        assert 0.0 <= line.confidence <= 1.0
        assert set(line.text) <= set("0123456789.-")
        for d in line.digits:
            assert 0.0 <= d.confidence <= 1.0
            x, y, bw, bh = d.box
            assert min(x, y, bw, bh) >= 0 and x + bw <= w and y + bh <= h, (d.box, shape)
            assert all(0.0 <= p <= 1.0 for _, p in d.alternatives)


# ---- killing a training run in the middle of an epoch ----


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found


def kill_mid_epoch(command: list[str], epoch: int, timeout: float = 300) -> str:
    """Run the training ``command`` (progress bars on) in a session of its own and SIGKILL the whole
    session once the bar of ``epoch`` shows 20-80% done: inside the epoch whatever the machine's speed.
    Returns what it wrote to stderr."""
    import re
    import signal
    import subprocess
    import threading
    import time

    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = bytearray()
    reader = threading.Thread(
        target=lambda: [seen.extend(chunk) for chunk in iter(lambda: process.stderr.read1(4096), b"")]
    )
    reader.start()
    bar = re.compile(rb"epoch %d/\d+:\s+(\d+)%%" % epoch)
    deadline = time.monotonic() + timeout
    try:
        while True:
            done = [int(m.group(1)) for m in bar.finditer(bytes(seen))]
            if done and 20 <= done[-1] <= 80:
                break
            if process.poll() is not None or time.monotonic() > deadline or (done and done[-1] > 80):
                pytest.fail(f"could not catch epoch {epoch} in the middle: {bytes(seen)[-2000:]!r}")
            time.sleep(0.01)
    finally:
        # Every process of the tree at once, as a lost machine would: torchrun starts its workers in
        # sessions of their own, so killing the launcher's process group would not reach them.
        for pid in [*_descendants(process.pid), process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
        reader.join(timeout=10)
    return bytes(seen).decode(errors="replace")


# ---- a real server, for the browser tests and for several servers sharing one feedback store ----


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``digitread serve`` in a subprocess on a free loopback port; stopped by ``stop``."""

    def __init__(self, feedback_db: str, log_path: Path, *extra: str):
        import subprocess
        import sys

        self.port = free_port()
        self.feedback_db = feedback_db
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "digitread", "serve", "--port", str(self.port), "--feedback-db", feedback_db]
        self.process = subprocess.Popen([*command, *extra], stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0, workers: int = 1) -> LiveServer:
        """Wait for /healthz and for ``workers`` worker processes to finish starting (each logs it)."""
        import time
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    started = self.log_path.read_text().count("Application startup complete")
                    if response.status == 200 and started >= workers:
                        return self
                    time.sleep(0.2)
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"server not ready after {timeout} s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except Exception:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture()
def start_server(tmp_path):
    """Start servers with ``start_server(feedback_db)``; all are stopped after the test."""
    servers: list[LiveServer] = []

    def start(feedback_db: str, *extra: str) -> LiveServer:
        server = LiveServer(feedback_db, tmp_path / f"server-{len(servers)}.log", *extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def ctc_frames(*columns: dict[int, float], classes: int = 11) -> np.ndarray:
    """(T, classes) CTC probabilities from per-column {class: probability}; the rest goes to blank."""
    from digitread.models.crnn import BLANK

    probs = np.zeros((len(columns), classes), np.float32)
    for t, col in enumerate(columns):
        for c, p in col.items():
            probs[t, c] = p
        probs[t, BLANK] += 1 - probs[t].sum()
    return probs
