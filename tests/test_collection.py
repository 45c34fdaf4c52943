"""Reading a collection into a JSONL file: worker processes, a row per image as it is read, errors as
rows, stopping and resuming without reading anything twice or losing a row, and the Dask engine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digitread.cli import main
from digitread.inference.collection import ResultsFile

NUMBERS = sorted((Path(__file__).parents[1] / "examples" / "numbers").glob("*.png"))
EXPECTED = {"amount_1250": "1250", "form_507318": "507318", "meter_4096": "4096", "score_87": "87"}
EXPECTED["temperature_-12.5"] = "-12.5"
EXPECTED["boxes_20931"] = "20931"


def _collection(folder: Path, copies: int) -> Path:
    """``copies`` of each example number in subfolders, and one file that is not an image."""
    for i in range(copies):
        sub = folder / f"box{i:02d}"
        sub.mkdir(parents=True)
        for number in NUMBERS:
            shutil.copy(number, sub / number.name)
    (folder / "box00" / "not_an_image.png").write_text("this is text")
    return folder


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check(rows: list[dict], images: int) -> None:
    sources = [row["source"] for row in rows]
    assert len(sources) == len(set(sources)) == images, "every image exactly once"
    for row in rows:
        if row["source"].endswith("not_an_image.png"):
            assert "not an image" in row["error"]
        else:
            assert row["text"] == EXPECTED[Path(row["source"]).stem], row


def test_two_workers_write_a_row_per_image_and_errors_as_rows(tmp_path, capsys):
    folder = _collection(tmp_path / "scans", 2)
    out = tmp_path / "results.jsonl"
    code = main(["read", str(folder), "--jobs", "2", "--out", str(out), "--annotate", str(tmp_path / "pics")])
    assert code == 1  # one file could not be read
    _check(_rows(out), 2 * len(NUMBERS) + 1)
    assert f"{2 * len(NUMBERS)} images read, 1 could not be read" in capsys.readouterr().err
    assert len(list((tmp_path / "pics").glob("*.png"))) == 2 * len(NUMBERS)


def test_a_second_run_reads_only_what_has_no_row_and_drops_a_torn_row(tmp_path, capsys):
    folder = _collection(tmp_path / "scans", 2)
    out = tmp_path / "results.jsonl"
    assert main(["read", str(folder), "--out", str(out), "--quiet"]) == 1
    rows = out.read_text().splitlines()
    # As a crash leaves it: three whole rows and half of the fourth.
    out.write_text("\n".join(rows[:3]) + "\n" + rows[3][:25])
    capsys.readouterr()
    assert main(["read", str(folder), "--out", str(out), "--quiet"]) in (0, 1)
    assert "3 already there" in capsys.readouterr().err
    assert out.read_text().splitlines()[:3] == rows[:3]  # what was there is kept as it was
    _check(_rows(out), len(rows))


def test_a_run_killed_midway_resumes_without_losing_or_repeating_a_row(tmp_path):
    folder = _collection(tmp_path / "scans", 12)
    total = 12 * len(NUMBERS) + 1
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "digitread", "read", str(folder), "--jobs", "2", "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not out.exists() or out.read_text().count("\n") < 10:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its workers, at once
    process.wait(timeout=30)
    before = out.read_text().count("\n")
    assert 10 <= before < total, "the run finished before the kill"
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    _check(_rows(out), total)


def test_the_dask_engine_reads_the_same_on_a_local_cluster(tmp_path):
    folder = _collection(tmp_path / "scans", 2)
    out = tmp_path / "dask.jsonl"
    assert main(["read", str(folder), "--engine", "dask", "--jobs", "2", "--out", str(out), "--quiet"]) == 1
    _check(_rows(out), 2 * len(NUMBERS) + 1)


def test_a_results_file_being_written_is_not_written_by_a_second_run(tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    with ResultsFile(out):
        assert main(["read", str(NUMBERS[0]), "--out", str(out)]) == 1
    assert "another digitread read is writing to it" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "2"], "add --out RESULTS.jsonl"),
        (["--scheduler", "tcp://127.0.0.1:1", "--out", "{tmp}/r.jsonl"], "add --engine dask"),
        (["--out", "{tmp}/notes.txt"], "line 1 is not a digitread result"),
    ],
)
def test_mistakes_are_one_line(tmp_path, capsys, args, message):
    (tmp_path / "notes.txt").write_text("my notes\nno newline at the end")
    assert main(["read", str(NUMBERS[0]), *(a.format(tmp=tmp_path) for a in args)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert (tmp_path / "notes.txt").read_text() == "my notes\nno newline at the end"  # a file not ours is left whole
