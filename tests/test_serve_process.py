"""`digitread serve` as a process: several workers behind one port, and one-line errors for bad settings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2

from digitread.cli import main

NUMBER = Path(__file__).parents[1] / "examples" / "numbers" / "score_87.png"


def _metric(text: str, line_start: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(line_start)]
    assert lines, f"{line_start} not in /metrics"
    return float(lines[0].rsplit(" ", 1)[1])


def test_two_workers_serve_one_port_and_metrics_add_up_across_them(start_server, tmp_path):
    server = start_server(f"sqlite:///{tmp_path / 'f.db'}", "--workers", "2", "--mode", "segment").wait_ready(workers=2)
    sent = 12

    def read(_) -> None:
        # A fresh connection each time, several at once: the workers take turns accepting them.
        response = httpx2.post(f"{server.url}/v1/read", files={"file": (NUMBER.name, NUMBER.read_bytes())}, timeout=60)
        assert response.status_code == 200 and response.json()["text"] == "87", response.text

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(read, range(sent)))
    # Each worker keeps its own counters in files; whichever worker answers /metrics adds them all up.
    for _ in range(6):
        metrics = httpx2.get(f"{server.url}/metrics", timeout=30).text
        assert _metric(metrics, 'digitread_http_requests_total{method="POST",route="/v1/read",status="200"}') == sent
        assert _metric(metrics, "digitread_digit_confidence_count") == 2 * sent
    runtime = httpx2.get(f"{server.url}/v1/model", timeout=30).json()["runtime"]
    # Set by each worker at start-up; auto runs the digit model on ONNX Runtime (segment mode: no sequence model).
    backends = {"backend": "auto", "digit_model_backend": "onnx", "sequence_model_backend": None}
    assert runtime == {"inference_threads": 2, "torch_threads": 1, **backends}
    log = server.log_path.read_text()
    assert log.count("Application startup complete") == 2, log  # each worker loaded the model once


def test_serve_refuses_bad_settings_in_one_line(capsys, tmp_path):
    assert main(["serve", "--model", str(tmp_path / "missing"), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("digitread: error:") and "missing" in err
    assert main(["serve", "--max-pixels", "60000000", "--port", "1"]) == 1
    assert "max_pixels can be at most" in capsys.readouterr().err
