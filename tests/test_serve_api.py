"""The HTTP API through an in-process client: every endpoint, and every limit answering as a JSON error.

The client re-raises any exception the app lets escape, so a request that would end in a 500 fails here.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

import httpx2
import numpy as np
import pytest
from conftest import png_header_only
from fastapi.testclient import TestClient
from PIL import Image

from digitread.inference.reader import DigitReader
from digitread.serve.app import create_app
from digitread.serve.settings import ServeSettings

EXAMPLES = Path(__file__).parents[1] / "examples"
NUMBER = EXAMPLES / "numbers" / "amount_1250.png"
# Pillow opens EPS by running Ghostscript: a format that must be refused, never decoded.
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
SMALL = ServeSettings(max_request_bytes=1_000_000, max_image_bytes=300_000, max_pixels=1_000_000, max_batch=3)


@pytest.fixture(scope="module")
def reader() -> DigitReader:
    return DigitReader.from_pretrained()


@pytest.fixture()
def client(reader, tmp_path) -> TestClient:
    settings = ServeSettings(**{**SMALL.__dict__, "feedback_db": f"sqlite:///{tmp_path / 'feedback.db'}"})
    return TestClient(create_app(reader=reader, settings=settings))


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def assert_error(response: httpx2.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["detail"], body
    return body


# ---- endpoints ----


def test_read_takes_a_multipart_upload_and_returns_the_number_with_boxes(client):
    response = client.post("/v1/read", files={"file": (NUMBER.name, NUMBER.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "1250" and body["value"] == 1250 and body["source"] == NUMBER.name
    with Image.open(NUMBER) as picture:
        width, height = picture.size
    assert (body["width"], body["height"]) == (width, height)
    assert [d["char"] for d in body["digits"]] == list("1250")
    for digit in body["digits"]:
        x, y, w, h = digit["box"]
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert 0 < digit["confidence"] <= 1 and len(digit["alternatives"]) == 2


def test_read_takes_base64_and_canvas_data_urls(client):
    plain = client.post("/v1/read", json={"image": b64(NUMBER), "name": "amount"})
    data_url = client.post("/v1/read", json={"image": "data:image/png;base64," + b64(NUMBER)})
    assert plain.status_code == data_url.status_code == 200
    assert plain.json()["text"] == data_url.json()["text"] == "1250"
    assert plain.json()["source"] == "amount"


def test_batch_reads_every_image_in_order(client):
    paths = sorted((EXAMPLES / "numbers").glob("*.png"))[:3]
    expected = [p.stem.split("_", 1)[1] for p in paths]
    as_json = client.post("/v1/read/batch", json={"images": [{"image": b64(p), "name": p.name} for p in paths]})
    as_form = client.post("/v1/read/batch", files=[("files", (p.name, p.read_bytes(), "image/png")) for p in paths])
    for response in (as_json, as_form):
        assert response.status_code == 200, response.text
        readings = response.json()["readings"]
        assert [r["text"] for r in readings] == expected
        assert [r["source"] for r in readings] == [p.name for p in paths]


def test_classify_gives_ten_probabilities_for_an_image_and_for_a_28x28_array(client, reader):
    seven = EXAMPLES / "digits" / "digit_7.png"
    by_image = client.post("/v1/classify", files={"file": (seven.name, seven.read_bytes())})
    assert by_image.status_code == 200, by_image.text
    body = by_image.json()
    assert body["digit"] == 7 and len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    field = reader.classifier.prepare(str(EXAMPLES / "digits" / "digit_3.png"))
    by_pixels = client.post("/v1/classify", json={"pixels": field.tolist()})
    assert by_pixels.status_code == 200, by_pixels.text
    assert by_pixels.json()["digit"] == 3
    assert by_pixels.json()["probabilities"] == pytest.approx(reader.classifier.probabilities(field[None])[0], abs=1e-5)


def test_model_health_docs_and_page_are_served(client):
    model = client.get("/v1/model").json()
    assert model["mode"] == "auto" and model["digit_model"]["arch"] == "cnn"
    assert model["digit_model"]["calibration"]["temperature"] > 0
    assert model["sequence_model"]["task"] == "strings"
    assert [m["arch"] for m in model["sequence_model"]["members"]] == ["crnn_wide", "crnn_digits", "crnn_points"]
    assert model["limits"]["max_batch"] == SMALL.max_batch
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/read", "/v1/read/batch", "/v1/classify", "/v1/feedback", "/v1/model"} <= set(spec["paths"])
    assert set(spec["paths"]["/v1/read"]["post"]["requestBody"]["content"]) == {
        "application/json",
        "multipart/form-data",
    }
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200


def test_the_page_and_the_api_docs_load_nothing_from_outside_the_server(client):
    import re

    for path in ("/", "/static/app.js", "/static/style.css", "/docs"):
        text = client.get(path).text
        # Links to this server are relative; an absolute URL would be a CDN or an outside asset.
        assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text), path
        assert not re.search(r"""url\(\s*["']?(https?:)?//""", text), path
        assert "import(" not in text and "@import" not in text, path


def test_metrics_count_requests_digits_errors_and_confidences(client):
    client.post("/v1/read", files={"file": (NUMBER.name, NUMBER.read_bytes())})
    client.post("/v1/read", json={"image": "not base64!"})
    text = client.get("/metrics").text

    def value(line_start: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(line_start)]
        assert lines, f"{line_start} not in /metrics"
        return float(lines[0].rsplit(" ", 1)[1])

    assert value('digitread_http_requests_total{method="POST",route="/v1/read",status="200"}') == 1
    assert value('digitread_http_requests_total{method="POST",route="/v1/read",status="422"}') == 1
    assert value('digitread_errors_total{code="malformed_base64"}') == 1
    assert value("digitread_images_read_total") == 1
    assert value("digitread_digits_read_total") == 4
    assert value("digitread_digit_confidence_count") == 4
    assert value('digitread_digit_confidence_bucket{le="1.0"}') == 4
    assert value('digitread_http_request_duration_seconds_count{method="POST",route="/v1/read"}') == 2


def test_reading_runs_off_the_event_loop(reader, tmp_path):
    """While one request is being read, the server still answers others at once."""

    class SlowReader:
        def __init__(self):
            self.mode, self.classifier, self.sequence = reader.mode, reader.classifier, reader.sequence

        def read_many(self, images, names=None):
            time.sleep(1.5)
            return reader.read_many(images, names)

    app = create_app(reader=SlowReader(), settings=ServeSettings(feedback_db=f"sqlite:///{tmp_path / 'f.db'}"))

    async def scenario():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
            slow = asyncio.create_task(http.post("/v1/read", json={"image": b64(NUMBER)}))
            await asyncio.sleep(0.2)
            start = time.perf_counter()
            health = await http.get("/healthz")
            health_seconds = time.perf_counter() - start
            return health, health_seconds, await slow

    health, health_seconds, slow = asyncio.run(scenario())
    assert health.status_code == 200 and health_seconds < 0.5
    assert slow.status_code == 200 and slow.json()["text"] == "1250"


# ---- limits and errors ----


def test_a_request_body_over_the_limit_is_refused_with_413(client):
    big = b"x" * (SMALL.max_request_bytes + 1)
    declared = client.post("/v1/read", content=big, headers={"content-type": "application/json"})
    assert_error(declared, 413, "request_too_large")

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(4):
            yield b"x" * (SMALL.max_request_bytes // 3)

    streamed = client.post("/v1/read", content=chunks(), headers={"content-type": "application/json"})
    assert_error(streamed, 413, "request_too_large")

    def form_chunks():  # the same for a multipart upload, refused while the form parser reads it
        yield b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        yield from chunks()

    form_type = {"content-type": "multipart/form-data; boundary=xx"}
    assert_error(client.post("/v1/read", content=form_chunks(), headers=form_type), 413, "request_too_large")


def test_an_image_file_over_the_limit_is_refused_with_413(client):
    noise = np.random.default_rng(0).integers(0, 255, (600, 600), dtype=np.uint8)  # incompressible
    data = png(Image.fromarray(noise))
    assert SMALL.max_image_bytes < len(data) < SMALL.max_request_bytes
    assert_error(client.post("/v1/read", files={"file": ("n.png", data)}), 413, "image_too_large")
    as_text = base64.b64encode(data).decode()
    assert_error(client.post("/v1/classify", json={"image": as_text}), 413, "image_too_large")


def test_too_many_pixels_is_refused_from_the_header_before_decoding(client):
    # A header alone: were the pixels decoded, this would fail as a corrupt file, not as too many pixels.
    for width, height in ((9_000, 9_000), (100_000, 100_000)):
        header = png_header_only(width, height)
        body = assert_error(client.post("/v1/read", files={"file": ("huge.png", header)}), 413, "too_many_pixels")
        assert f"{SMALL.max_pixels:,}" in body["detail"]
    real = png(Image.new("L", (1500, 800), 255))  # 1.2 million pixels, a small file
    assert_error(client.post("/v1/read", json={"image": base64.b64encode(real).decode()}), 413, "too_many_pixels")


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"just some text, not an image", 415, "unsupported_image"),
        (EPS, 415, "unsupported_image"),
        (NUMBER.read_bytes()[:300], 422, "corrupt_image"),  # truncated
        (b"", 422, "empty_image"),
    ],
    ids=["text", "eps", "truncated", "empty"],
)
def test_unsupported_and_corrupt_files_are_refused(client, data, status, code):
    assert_error(client.post("/v1/read", files={"file": ("upload", data)}), status, code)


def test_an_image_format_pillow_reads_but_the_service_does_not_is_refused_with_415(client):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(buffer, format="ICO")
    assert_error(client.post("/v1/read", files={"file": ("x.ico", buffer.getvalue())}), 415, "unsupported_image")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b'{"image": "@@@@"}', "malformed_base64"),
        (b'{"image": "data:image/png,abc"}', "malformed_base64"),
        (b'{"picture": "abc"}', "invalid_request"),
        (b'{"image": 12}', "invalid_request"),
        (b'["image"]', "invalid_request"),
    ],
    ids=["json", "base64", "data-url-not-base64", "missing-field", "wrong-type", "not-an-object"],
)
def test_malformed_json_and_base64_are_refused_with_422(client, body, code):
    assert_error(client.post("/v1/read", content=body, headers={"content-type": "application/json"}), 422, code)


def test_a_body_that_is_neither_json_nor_multipart_is_refused_with_415(client):
    response = client.post("/v1/read", content=NUMBER.read_bytes(), headers={"content-type": "image/png"})
    assert_error(response, 415, "unsupported_media_type")


def test_a_broken_multipart_form_is_refused_with_422(client):
    response = client.post("/v1/read", content=b"garbage", headers={"content-type": "multipart/form-data"})
    assert_error(response, 422, "malformed_multipart")
    assert_error(client.post("/v1/read", data={"note": "no file"}, files={}), 415, "unsupported_media_type")
    no_file = client.post("/v1/read", files={"other": ("a.png", NUMBER.read_bytes())})
    assert_error(no_file, 422, "no_image")


def test_too_many_images_in_a_batch_is_refused_with_413(client):
    tiny = base64.b64encode(png(Image.new("L", (8, 8), 255))).decode()
    count = SMALL.max_batch + 1
    assert_error(client.post("/v1/read/batch", json={"images": [{"image": tiny}] * count}), 413, "too_many_images")
    files = [("files", (f"{i}.png", base64.b64decode(tiny))) for i in range(count)]
    assert_error(client.post("/v1/read/batch", files=files), 413, "too_many_images")
    assert_error(client.post("/v1/read/batch", json={"images": []}), 422, "no_image")


def test_a_bad_image_in_a_batch_is_named(client):
    images = [{"image": b64(NUMBER)}, {"image": base64.b64encode(b"text").decode()}]
    body = assert_error(client.post("/v1/read/batch", json={"images": images}), 415, "unsupported_image")
    assert body["detail"].startswith("images[1]")


def test_classify_refuses_arrays_that_are_not_28x28_in_0_255_and_blank_images(client):
    assert_error(client.post("/v1/classify", json={"pixels": [[0] * 28] * 27}), 422, "invalid_request")
    assert_error(client.post("/v1/classify", json={"pixels": [[0] * 27] * 28}), 422, "invalid_request")
    assert_error(client.post("/v1/classify", json={"pixels": [[300] * 28] * 28}), 422, "invalid_request")
    blank = png(Image.new("L", (40, 40), 255))
    assert_error(client.post("/v1/classify", files={"file": ("blank.png", blank)}), 422, "no_digit")


def test_unknown_routes_and_methods_answer_in_json(client):
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    assert_error(client.get("/v1/read"), 405, "method_not_allowed")


def test_settings_travel_through_the_environment():
    from digitread.errors import ConfigError

    settings = ServeSettings(mode="segment", max_batch=4, feedback_db="sqlite:///x.db")
    assert ServeSettings.from_env(settings.to_env()) == settings
    assert ServeSettings.from_env({"DIGITREAD_MAX_BATCH": "7"}, max_batch=9).max_batch == 9
    with pytest.raises(ConfigError, match="DIGITREAD_MAX_PIXELS"):
        ServeSettings.from_env({"DIGITREAD_MAX_PIXELS": "lots"})
    with pytest.raises(ConfigError, match="mode"):
        ServeSettings(mode="fast")
