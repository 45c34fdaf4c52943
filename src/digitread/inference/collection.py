"""Reading a large collection of images into one JSONL file, in several processes, resumably.

    digitread read scans/ --jobs 2 --out results.jsonl                   # worker processes here
    digitread read scans/ --engine dask --scheduler tcp://host:8786 --out results.jsonl   # a cluster

Each result is a row appended to the file and flushed as soon as its image is read, so a run that
stops (Ctrl-C, a crash, a lost machine) loses at most the images being read; run the same command
again and it reads only what has no row yet. A file that cannot be read becomes a row with an
"error", never the end of the run. The file is locked while a run writes it, so two runs cannot
interleave rows.

The work goes out in chunks of a few images (the models run once per chunk, ``read_many``) to
processes that each load the reader once: here a ``ProcessPoolExecutor``; on a cluster, Dask
(docs/scaling.md says why Dask).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from digitread.errors import ConfigError, DigitreadError

CHUNK = 8  # images per task: enough to batch the models, few enough that a stop loses little
FSYNC_EVERY_S = 1.0  # rows are flushed at once and forced to disk at least this often
ENGINES = ("local", "dask")


class ResultsFile:
    """The JSONL results of a collection: which sources already have a row, and appending rows."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.done: set[str] = set()
        self._file = None
        self._synced = time.monotonic()

    def __enter__(self) -> ResultsFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")  # noqa: SIM115 - closed in __exit__
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            message = "another digitread read is writing to it; wait for it or choose another --out"
            raise DigitreadError(f"{self.path}: {message}") from None
        try:
            self._load()
        except BaseException:
            self._file.close()  # and with it the lock
            raise
        return self

    def _load(self) -> None:
        self._file.seek(0)
        data = self._file.read()
        whole = data.rfind(b"\n") + 1
        for number, line in enumerate(data[:whole].splitlines(), 1):
            try:
                self.done.add(json.loads(line)["source"])
            except (ValueError, KeyError, TypeError):
                raise DigitreadError(
                    f"{self.path}: line {number} is not a digitread result; choose another --out"
                ) from None
        if whole < len(data):  # checked to be a results file first: nothing else is ever cut
            self._file.truncate(whole)  # a row cut off by a crash: dropped, and its image read again

    def append(self, row: dict) -> None:
        self._file.write((json.dumps(row) + "\n").encode())
        self._file.flush()
        if time.monotonic() - self._synced >= FSYNC_EVERY_S:
            os.fsync(self._file.fileno())
            self._synced = time.monotonic()

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()


# ---- the worker side: one reader per process, loaded on first use ----

_READERS: dict[str, object] = {}


def _reader(options: dict, threads: int):
    key = json.dumps(options, sort_keys=True, default=str)
    if key not in _READERS:
        from digitread.inference.reader import DigitReader
        from digitread.runtime import set_threads

        set_threads(threads)
        _READERS.clear()  # one reader per process: the models of another run are not kept
        _READERS[key] = DigitReader.from_pretrained(**options)
    return _READERS[key]


def read_chunk(paths: list[str], options: dict, threads: int, pictures: dict[str, str] | None = None) -> list[dict]:
    """Rows for ``paths``: the reading, or {"source", "error"} for a file that cannot be read."""
    from digitread.errors import ImageError
    from digitread.inference.io import load_image

    reader = _reader(options, threads)
    rows: dict[str, dict] = {}
    loaded, names = [], []
    for path in paths:
        try:
            loaded.append(load_image(path, path))
            names.append(path)
        except ImageError as e:
            rows[path] = {"source": path, "error": str(e)}
        except OSError as e:  # unreadable (permissions, a vanished file, an I/O error): a row, not the end
            rows[path] = {"source": path, "error": f"{path}: {e.strerror or e}"}
    try:
        readings = reader.read_many(loaded, names)
    except Exception:  # noqa: BLE001 - one image breaking the batch must not cost the others: read each alone
        readings = []
        for gray, name in zip(loaded, names, strict=True):
            try:
                readings.append(reader.read(gray, name))
            except Exception as e:  # noqa: BLE001 - reported as this file's row
                readings.append(None)
                rows[name] = {"source": name, "error": f"{name}: could not be read ({type(e).__name__}: {e})"}
    for gray, name, reading in zip(loaded, names, readings, strict=True):
        if reading is None:
            continue
        rows[name] = reading.to_dict()
        if pictures and name in pictures:
            import cv2

            from digitread._io import atomic_write_bytes
            from digitread.inference.annotate import annotate

            _, png = cv2.imencode(".png", annotate(gray, reading))
            try:
                atomic_write_bytes(pictures[name], png.tobytes())
            except OSError as e:  # the reading stands; the picture's failure is said in its row
                rows[name]["annotation_error"] = f"{pictures[name]}: {e.strerror or e}"
    return [rows[p] for p in paths]


# ---- the driver side ----


@dataclass
class Summary:
    read: int  # images read this run
    failed: int  # images that gave an error row this run
    skipped: int  # images that already had a row


def _threads_per_worker(jobs: int) -> int:
    from digitread.runtime import available_cores

    return max(1, available_cores() // jobs)


def _run_local(chunks, jobs: int, options: dict, pictures: dict) -> Iterator[list[dict]]:
    threads = _threads_per_worker(jobs)
    if jobs == 1:
        for chunk in chunks:
            yield read_chunk(chunk, options, threads, _only(pictures, chunk))
        return
    # Spawned, not forked: a fork of a process holding PyTorch's thread pools can hang.
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        pending, todo = set(), iter(chunks)
        while True:
            while len(pending) < 2 * jobs:  # a few chunks ahead of the workers, not the whole collection
                chunk = next(todo, None)
                if chunk is None:
                    break
                pending.add(pool.submit(read_chunk, chunk, options, threads, _only(pictures, chunk)))
            if not pending:
                return
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    yield future.result()
                except BrokenProcessPool:
                    raise DigitreadError(
                        "a worker process died (out of memory?); the rows so far are kept: run the same "
                        "command again to go on, with fewer --jobs"
                    ) from None


def _run_dask(chunks, jobs: int, options: dict, pictures: dict, scheduler: str | None) -> Iterator[list[dict]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError("--engine dask needs Dask: pip install 'digitread[cluster]'") from None
    cluster = None
    if scheduler is None:  # a cluster on this machine: the same code path a real cluster takes
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
    threads = 1 if cluster is not None else 0  # on a real cluster each worker keeps its own core count
    try:
        with Client(cluster or scheduler) as client:
            todo = iter(chunks)
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            window = as_completed()
            for chunk in (next(todo, None) for _ in range(2 * workers)):
                if chunk is not None:
                    window.add(client.submit(read_chunk, chunk, options, threads, _only(pictures, chunk), pure=False))
            for future in window:
                try:
                    rows = future.result()
                except Exception as e:  # noqa: BLE001 - a lost worker or scheduler (KilledWorker, CancelledError...)
                    raise DigitreadError(
                        f"the Dask cluster failed ({type(e).__name__}: {e}); the rows so far are kept: run the "
                        "same command again to go on"
                    ) from None
                yield rows
                chunk = next(todo, None)
                if chunk is not None:
                    window.add(client.submit(read_chunk, chunk, options, threads, _only(pictures, chunk), pure=False))
    finally:
        if cluster is not None:
            cluster.close()


def _only(pictures: dict, chunk: list[str]) -> dict[str, str]:
    return {p: pictures[p] for p in chunk if p in pictures}


def read_collection(
    files: list[Path],
    out: str | Path,
    options: dict,
    jobs: int = 1,
    engine: str = "local",
    scheduler: str | None = None,
    pictures: dict[str, Path] | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> Summary:
    """Read every file of ``files`` that has no row in ``out`` yet, appending a row per file.

    ``options`` are DigitReader.from_pretrained's; ``progress(total, already_done)`` returns a tqdm-like
    bar (``update``, ``close``) or None."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose {', '.join(ENGINES)}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    pictures = {str(k): str(v) for k, v in (pictures or {}).items()}
    read = failed = 0
    with ResultsFile(out) as results:
        sources = [str(f) for f in files]
        todo = [s for s in dict.fromkeys(sources) if s not in results.done]
        skipped = len(sources) - len(todo)
        chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
        bar = progress(len(sources), skipped) if progress else None
        if engine == "dask":
            runs = _run_dask(chunks, jobs, options, pictures, scheduler)
        else:
            runs = _run_local(chunks, jobs, options, pictures)
        try:
            for rows in runs:
                for row in rows:
                    results.append(row)
                    failed += "error" in row
                    read += "error" not in row
                if bar is not None:
                    bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
    return Summary(read, failed, skipped)
