"""Load test of `digitread serve` on this machine: many clients posting phone-sized photos at once.

Starts the server on a free loopback port (or uses --url, which must be a loopback address), sends
photos of numbers from --clients concurrent clients for --seconds (and at most --max-requests), and
writes requests per second, latency percentiles, errors, how many numbers were read exactly and the
server's memory over the run (all its processes, sampled twice a second) to bench/results/load.json,
with the machine described.

The photos are made here with the example tools (examples/make_examples.py: script digits with pen
jitter on paper), laid on a page of --size pixels and saved as JPEG, as a phone's browser uploads them.

    .venv/bin/python bench/load.py                          # 32 clients, 60 s, one server process
    .venv/bin/python bench/load.py --clients 8 --seconds 10 --workers 2
    .venv/bin/python bench/load.py --clients 8 --max-requests 3000 --seconds 600 --workers 2 \
        --size 1280x960 --out bench/results/soak.json      # the soak: does memory stay flat?
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "examples"))
from make_examples import draw_number, on_paper  # noqa: E402
from run import machine  # noqa: E402

from digitread._io import atomic_write_json  # noqa: E402


def phone_photo(text: str, rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    """A JPEG of ``size`` (width, height) with ``text`` written somewhere on a page, as a phone shoots it."""
    width, height = size
    ink = draw_number(text, rng, height=int(height * rng.uniform(0.1, 0.16)))
    page = np.zeros((height, width), np.uint8)
    h, w = min(ink.shape[0], height), min(ink.shape[1], width)
    y = int(rng.integers(0, height - h + 1))
    x = int(rng.integers(0, width - w + 1))
    page[y : y + h, x : x + w] = ink[:h, :w]
    photo = on_paper(page, rng, dark_board=False)[..., ::-1]  # BGR -> RGB
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(photo)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def make_photos(count: int, size: tuple[int, int], seed: int) -> list[tuple[bytes, str]]:
    rng = np.random.default_rng(seed)
    photos = []
    for _ in range(count):
        text = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(3, 7))))
        photos.append((phone_photo(text, rng, size), text))
    return photos


def require_loopback(url: str) -> None:
    """This benchmark loads only a server on this machine."""
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"load.py: error: {url} is not a loopback address (127.0.0.0/8, ::1, localhost)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workers: int, threads: int, torch_threads: int, mode: str, db: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "digitread", "serve", "--port", str(port), "--workers", str(workers)]
    command += ["--inference-threads", str(threads), "--torch-threads", str(torch_threads)]
    command += ["--mode", mode, "--feedback-db", f"sqlite:///{db}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"load.py: error: the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("load.py: error: the server did not start within 120 s")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (the server and its workers), in MB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # gone between listing and reading
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        todo += [int(c) for c in children]
    return round(total / 1024, 1)


class MemoryWatch:
    """Samples the server's memory twice a second while the load runs, with how many requests were done."""

    def __init__(self, pid: int):
        self.pid, self.samples = pid, []  # (requests answered, MB)

    async def run(self, answered) -> None:
        while True:
            self.samples.append((answered(), tree_rss_mb(self.pid)))
            await asyncio.sleep(0.5)

    def summary(self) -> dict:
        """Memory at the start, once a tenth of the requests were answered (caches filled), at the end and
        at its peak: a leak shows as growth from the tenth to the end."""
        if not self.samples:
            return {}
        total = self.samples[-1][0]
        warm = next((mb for done, mb in self.samples if done >= total / 10), self.samples[0][1])
        return {
            "start_mb": self.samples[0][1],
            "after_tenth_mb": warm,
            "end_mb": self.samples[-1][1],
            "peak_mb": max(mb for _, mb in self.samples),
            "growth_after_tenth_mb": round(self.samples[-1][1] - warm, 1),
            "samples": len(self.samples),
        }


async def run_load(
    url: str, photos, clients: int, seconds: float, max_requests: int, watch: MemoryWatch | None = None
) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    exact = 0
    sent = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient, k: int) -> None:
        nonlocal sent, exact
        i = k
        while time.perf_counter() < deadline and sent < max_requests:
            sent += 1
            data, text = photos[i % len(photos)]
            i += clients
            start = time.perf_counter()
            try:
                response = await http.post("/v1/read", files={"file": ("photo.jpg", data, "image/jpeg")})
                status = str(response.status_code)
                if response.status_code == 200 and response.json()["text"] == text:
                    exact += 1
            except httpx.HTTPError as e:
                status = type(e).__name__
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        sampler = asyncio.create_task(watch.run(lambda: len(latencies))) if watch else None
        started = time.perf_counter()
        await asyncio.gather(*(client(http, k) for k in range(clients)))
        elapsed = time.perf_counter() - started
        if sampler is not None:
            watch.samples.append((len(latencies), tree_rss_mb(watch.pid)))
            sampler.cancel()
    ms = sorted(x * 1000 for x in latencies)

    def percentile(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 1) if ms else 0.0

    ok = statuses.get("200", 0)
    return {
        "requests": len(ms),
        "errors": len(ms) - ok,
        "statuses": statuses,
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(len(ms) / elapsed, 2),
        "latency_ms": {
            "p50": percentile(50),
            "p95": percentile(95),
            "p99": percentile(99),
            "max": round(ms[-1], 1) if ms else 0.0,
            "mean": round(statistics.fmean(ms), 1) if ms else 0.0,
        },
        "read_exactly": round(exact / ok, 4) if ok else 0.0,
        **({"server_memory": watch.summary()} if watch else {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default: 32)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send (default: 60)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="stop after this many (default: 20000)")
    parser.add_argument("--size", default="1600x1200", help="photo width x height (default: 1600x1200)")
    parser.add_argument("--photos", type=int, default=24, help="distinct photos, sent in turn (default: 24)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default: 1)")
    parser.add_argument("--inference-threads", type=int, default=2, help="readings at once per worker (default: 2)")
    parser.add_argument("--torch-threads", type=int, default=1, help="PyTorch threads per reading (default: 1)")
    parser.add_argument("--mode", choices=["auto", "segment", "sequence"], default="auto", help="reading mode")
    parser.add_argument("--url", help="a server already running on this machine (default: start one)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"), help="JSON to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (1 <= args.clients <= 256 and 0 < args.seconds <= 600 and 1 <= args.max_requests <= 100_000):
        raise SystemExit("load.py: error: keep to 1-256 clients, at most 600 s and 100,000 requests")
    width, height = (int(v) for v in args.size.lower().split("x"))
    photos = make_photos(args.photos, (width, height), args.seed)
    # Other work on the machine takes cores from the server: say how busy it was when the run began.
    load_before = [round(x, 2) for x in os.getloadavg()]
    process = None
    db = Path(args.out).with_suffix(".feedback.db")
    if args.url:
        require_loopback(args.url)
        url = args.url
    else:
        process, url = start_server(args.workers, args.inference_threads, args.torch_threads, args.mode, db)
    try:
        watch = MemoryWatch(process.pid) if process is not None else None
        result = asyncio.run(run_load(url, photos, args.clients, args.seconds, args.max_requests, watch))
        model = httpx.get(f"{url}/v1/model", timeout=10).json()
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        db.unlink(missing_ok=True)  # no feedback is sent; a store is never created, but be sure
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/load.py " + " ".join(sys.argv[1:]),
        "clients": args.clients,
        "seconds": args.seconds,
        "server": {
            "workers": None if args.url else args.workers,
            "inference_threads": None if args.url else args.inference_threads,
            "torch_threads": None if args.url else args.torch_threads,
            "mode": model["mode"],
            "url": url,
        },
        "photos": {
            "count": len(photos),
            "size": f"{width}x{height}",
            "format": "JPEG q85",
            "mean_bytes": int(statistics.fmean(len(p) for p, _ in photos)),
        },
        **result,
        "load_average_before": load_before,
        "machine": machine(),
    }
    atomic_write_json(args.out, report)
    print(json.dumps({k: report[k] for k in ("requests", "errors", "requests_per_s", "latency_ms", "read_exactly")}))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
