"""One corpus of bad inputs, made here, through every way in: the Python API, the CLI and HTTP.

Each input is either refused with a named error (Python: ImageError; CLI: one line on stderr and exit
1; HTTP: a 4xx JSON body) or read into a well-formed, possibly empty, reading; never a traceback, a
500, a hang, or memory past the bound the README states.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_well_formed, png_header_only
from fastapi.testclient import TestClient
from PIL import Image

from digitread.cli import main
from digitread.errors import ImageError
from digitread.inference.reader import DigitReader
from digitread.serve.app import create_app
from digitread.serve.settings import ServeSettings

REFUSED, READ = "refused", "read"
# What reading the whole corpus through the CLI may take at most (peak resident memory of the process,
# model and libraries included: 358 MB measured, 346 MB for one blank image); decoding the bomb alone
# would take 10 GB.
MEMORY_BOUND_MB = 600


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _digit_page(mode: str = "L", size: tuple[int, int] = (160, 60)) -> Image.Image:
    """'42' in thick strokes on white: a real number, so the formats below carry something to read."""
    import cv2

    page = np.full((size[1], size[0]), 255, np.uint8)
    cv2.putText(page, "42", (20, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 0, 5)
    return Image.fromarray(page).convert(mode)


def _animated_gif() -> bytes:
    first, second = _digit_page("P"), Image.new("P", (160, 60), 0)
    return _encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def _alpha_only() -> bytes:
    """Black everywhere; the digits exist only in the alpha channel (a transparent PNG from a canvas)."""
    alpha = 255 - np.asarray(_digit_page())
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., 3] = alpha
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def _gray16() -> bytes:
    wide = np.asarray(_digit_page(), np.uint16) * 257
    return _encode(Image.fromarray(wide), "PNG")


def corpus() -> dict[str, tuple[bytes, str]]:
    """File name -> (bytes, what must happen)."""
    good_png = _encode(_digit_page(), "PNG")
    good_jpeg = _encode(_digit_page("RGB"), "JPEG", quality=90)
    noise = np.random.default_rng(0).integers(0, 256, (120, 200), dtype=np.uint8)
    return {
        "empty.png": (b"", REFUSED),
        "text_renamed.png": (b"just some text, saved with the wrong name\n" * 20, REFUSED),
        "html_renamed.png": (b"<!doctype html><html><body><img src=x></body></html>", REFUSED),
        "truncated.png": (good_png[: len(good_png) // 2], REFUSED),
        "truncated.jpg": (good_jpeg[: len(good_jpeg) // 3], REFUSED),
        "header_only.jpg": (good_jpeg[:20], REFUSED),
        "bomb_100000x100000.png": (png_header_only(100_000, 100_000), REFUSED),
        "postscript.eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", REFUSED),
        "one_pixel.png": (_encode(Image.new("L", (1, 1), 0), "PNG"), READ),
        "one_by_100000.png": (_encode(Image.new("L", (100_000, 1), 0), "PNG"), READ),
        "100000_by_one.png": (_encode(Image.new("L", (1, 100_000), 255), "PNG"), READ),
        "animated.gif": (_animated_gif(), READ),
        "cmyk.jpg": (_encode(_digit_page("CMYK"), "JPEG"), READ),
        "gray16.png": (_gray16(), READ),
        "alpha_only.png": (_alpha_only(), READ),
        "palette.png": (_encode(_digit_page("P"), "PNG"), READ),
        "noise.png": (_encode(Image.fromarray(noise), "PNG"), READ),
        "blank.png": (_encode(Image.new("L", (300, 200), 255), "PNG"), READ),
    }


CORPUS = corpus()
# Inputs that name a number it must find, not just any well-formed reading.
HOLDS_42 = {"animated.gif", "cmyk.jpg", "gray16.png", "alpha_only.png", "palette.png"}


@pytest.fixture(scope="module")
def reader() -> DigitReader:
    return DigitReader.from_pretrained()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_inputs")
    for name, (data, _) in CORPUS.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("name", CORPUS)
def test_python_api_refuses_with_image_error_or_reads(reader, corpus_dir, name):
    data, outcome = CORPUS[name]
    for source in (corpus_dir / name, data):  # a path and the same bytes
        if outcome == REFUSED:
            with pytest.raises(ImageError) as error:
                reader.read(source)
            assert str(error.value).strip() and "\n" not in str(error.value)
        else:
            reading = reader.read(source)
            size = Image.open(io.BytesIO(data)).size
            assert_well_formed(reading, (size[1], size[0]))
            if name in HOLDS_42:
                assert reading.text == "42", name
            if name == "blank.png":
                assert reading.text == "" and reading.digits == []


@pytest.mark.parametrize(
    "array",
    [
        np.full((40, 60), np.nan),
        np.full((40, 60), np.inf),
        np.array([["a", "b"], ["c", "d"]]),
        np.zeros((40, 60), complex),
        np.empty((0, 10), np.uint8),
        np.zeros((2, 3, 4, 5), np.uint8),
        np.zeros((40, 60, 7), np.uint8),
        np.array(3.0),
        np.zeros((40, 60), object),
    ],
    ids=["nan", "inf", "strings", "complex", "empty", "4d", "7-channels", "scalar", "objects"],
)
def test_arrays_that_are_no_image_are_refused_by_name(reader, array):
    with pytest.raises(ImageError, match="numpy.ndarray|ndarray"):
        reader.read(array)


@pytest.mark.parametrize(
    "array",
    [np.zeros((40, 60), bool), np.full((40, 60), 70000, np.int64), np.random.default_rng(1).random((40, 60))],
    ids=["bool", "wide-ints", "floats-0-1"],
)
def test_arrays_of_other_dtypes_are_read(reader, array):
    assert_well_formed(reader.read(array), array.shape)


@pytest.mark.parametrize("name", CORPUS)
def test_cli_answers_each_bad_file_in_one_line_and_a_nonzero_exit(corpus_dir, name, capsys):
    code = main(["read", str(corpus_dir / name), "--quiet"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if CORPUS[name][1] == REFUSED:
        assert code == 1 and out == ""
        assert err.count("\n") == 1 and err.startswith("digitread: error:") and name in err, err
    else:
        assert code == 0 and err == "" and out.startswith(str(corpus_dir / name)) and out.count("\n") == 1, (out, err)


@pytest.fixture(scope="module")
def client(reader, tmp_path_factory) -> TestClient:
    db = tmp_path_factory.mktemp("feedback") / "f.db"
    # The service's own limits (file bytes, pixels) at their defaults, as deployed.
    return TestClient(create_app(reader=reader, settings=ServeSettings(feedback_db=f"sqlite:///{db}")))


@pytest.mark.parametrize("name", CORPUS)
def test_http_answers_each_bad_file_with_a_4xx_json_error_or_a_reading(client, name):
    data, outcome = CORPUS[name]
    response = client.post("/v1/read", files={"file": (name, data)})
    body = response.json()
    if outcome == REFUSED:
        assert 400 <= response.status_code < 500, (response.status_code, body)
        assert set(body) >= {"error", "detail"} and body["detail"], body
    else:
        assert response.status_code == 200, body
        assert set(body["text"]) <= set("0123456789.-\n") and 0 <= body["confidence"] <= 1


def test_the_whole_corpus_reads_within_the_memory_bound(corpus_dir):
    # A process of its own, so its peak memory is this job's alone.
    # VmHWM is this process's own peak; ru_maxrss would also count the pytest process it was forked from.
    script = (
        "import re, sys; from pathlib import Path; from digitread.cli import main; "
        "code = main(['read', *sys.argv[1:], '--jsonl', '--quiet']); "
        "kb = re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1); "
        "print(int(kb) // 1024, file=sys.stderr); sys.exit(code)"
    )
    files = [str(corpus_dir / name) for name in CORPUS]
    done = subprocess.run([sys.executable, "-c", script, *files], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    failed = {row["source"].rsplit("/", 1)[-1] for row in rows if "error" in row}
    assert failed == {name for name, (_, outcome) in CORPUS.items() if outcome == REFUSED}
    assert len(rows) == len(CORPUS)
    peak_mb = int(done.stderr.strip().splitlines()[-1])
    assert peak_mb < MEMORY_BOUND_MB, f"peak memory {peak_mb} MB"
