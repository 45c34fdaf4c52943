"""The service under load while clients misbehave: uploads cut off halfway, bodies sent a byte at a time,
bodies far over the limit (declared, and undeclared in chunks). Every well-behaved request is still
answered correctly, no worker dies or restarts, and the server says nothing of errors in its log."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2

NUMBER = Path(__file__).parents[1] / "examples" / "numbers" / "score_87.png"
LIMIT = 2_000_000  # --max-request-bytes for this server
BOUNDARY = "digitreadfaults"


def _multipart_head(port: int, length: int, extra: str = "") -> bytes:
    return (
        f"POST /v1/read HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{extra}"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _body() -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="n.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + NUMBER.read_bytes()
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def _status_line(sock: socket.socket) -> str:
    sock.settimeout(30)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def cut_off_mid_upload(port: int) -> None:
    body = _body()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_multipart_head(port, len(body)) + body[: len(body) // 2])
    # closed with half the body sent


def slow_body(port: int, stop: threading.Event) -> None:
    """A byte every 0.2 s until the test ends: a slow-loris upload that never finishes."""
    body = _body()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_multipart_head(port, len(body)))
        for byte in body:
            if stop.wait(0.2):
                break
            sock.sendall(bytes([byte]))


def oversized_declared(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_multipart_head(port, 10 * LIMIT))
        return _status_line(sock)


def oversized_chunked(port: int) -> str:
    """No length declared: a file part whose chunks keep coming past the limit until the server answers."""
    head = (
        f"POST /v1/read HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'.encode()
    head += b"%x\r\n" % len(part) + part + b"\r\n"  # a well-formed start: then a file that never ends
    chunk = b"%x\r\n" % 65536 + b"\0" * 65536 + b"\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        try:
            for _ in range(3 * LIMIT // 65536):
                sock.sendall(chunk)
        except OSError:  # the server answered and closed while we were still sending
            pass
        return _status_line(sock)


def test_faulty_clients_do_not_break_the_others_and_no_worker_dies(start_server, tmp_path):
    server = start_server(
        f"sqlite:///{tmp_path / 'f.db'}", "--workers", "2", "--max-request-bytes", str(LIMIT)
    ).wait_ready(workers=2)
    stop = threading.Event()
    slow = [threading.Thread(target=slow_body, args=(server.port, stop)) for _ in range(4)]
    for thread in slow:
        thread.start()

    def good(_) -> str:
        response = httpx2.post(f"{server.url}/v1/read", files={"file": (NUMBER.name, NUMBER.read_bytes())}, timeout=60)
        return f"{response.status_code} {response.json().get('text')}"

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = pool.map(good, range(40))
            cut = [pool.submit(cut_off_mid_upload, server.port) for _ in range(10)]
            declared = [pool.submit(oversized_declared, server.port) for _ in range(3)]
            chunked = [pool.submit(oversized_chunked, server.port) for _ in range(3)]
            answers = list(answers)
            for future in cut:
                future.result()
            statuses = [f.result() for f in declared + chunked]
        assert answers == ["200 87"] * 40
        assert all(" 413 " in status for status in statuses), statuses
        assert server.process.poll() is None
        assert httpx2.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        stop.set()
        for thread in slow:
            thread.join(timeout=10)
    time.sleep(0.5)  # let the log catch up
    log = server.log_path.read_text()
    assert log.count("Started server process") == 2, log[-3000:]  # the two workers, never restarted
    assert "died" not in log and "Traceback" not in log and "Exception" not in log, log[-3000:]
