"""The feedback store (SQLite, two servers writing at once), the /v1/feedback endpoint and `feedback export`."""

from __future__ import annotations

import base64
import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from digitread.cli import main
from digitread.data.idx import read_idx
from digitread.feedback import store as store_module
from digitread.feedback.export import export_feedback
from digitread.feedback.store import FeedbackStore
from digitread.inference.reader import DigitReader
from digitread.serve.app import create_app
from digitread.serve.settings import ServeSettings

NUMBERS = Path(__file__).parents[1] / "examples" / "numbers"
METER = NUMBERS / "meter_4096.png"


@pytest.fixture(scope="module")
def reader() -> DigitReader:
    return DigitReader.from_pretrained()


def test_feedback_is_stored_with_the_image_the_number_and_the_services_reading(reader, tmp_path):
    db = tmp_path / "nested" / "feedback.db"
    url = f"sqlite:///{db}"
    client = TestClient(create_app(reader=reader, settings=ServeSettings(feedback_db=url)))
    assert not db.exists()  # created on first use, not at start-up
    as_form = client.post("/v1/feedback", files={"file": (METER.name, METER.read_bytes())}, data={"number": "4096"})
    image = base64.b64encode(METER.read_bytes()).decode()
    as_json = client.post("/v1/feedback", json={"image": f"data:image/png;base64,{image}", "number": "4097"})
    assert as_form.status_code == as_json.status_code == 201, (as_form.text, as_json.text)
    assert as_form.json() == {"id": 1, "number": "4096", "read": "4096"}
    assert as_json.json()["id"] == 2
    assert db.is_file()
    rows = list(FeedbackStore(url))
    assert [r.number for r in rows] == ["4096", "4097"]
    assert rows[0].image == rows[1].image == METER.read_bytes() and rows[0].image_format == "PNG"
    assert rows[0].source == METER.name and rows[1].read_text == "4096"
    assert [d["char"] for d in rows[0].reading["digits"]] == list("4096")
    metrics = client.get("/metrics").text
    assert "digitread_feedback_total 2.0" in metrics


@pytest.mark.parametrize("number", ["", "12a", "1.2.3", "--4", "4" * 65])
def test_feedback_refuses_what_is_not_a_number(reader, tmp_path, number):
    client = TestClient(create_app(reader=reader, settings=ServeSettings(feedback_db=f"sqlite:///{tmp_path}/f.db")))
    response = client.post("/v1/feedback", files={"file": (METER.name, METER.read_bytes())}, data={"number": number})
    assert response.status_code == 422 and response.json()["error"] == "invalid_number", response.text
    as_json = client.post(
        "/v1/feedback", json={"image": base64.b64encode(METER.read_bytes()).decode(), "number": number}
    )
    assert as_json.status_code == 422 and as_json.json()["error"] == "invalid_request", as_json.text
    assert not (tmp_path / "f.db").exists()


def test_two_servers_write_to_one_sqlite_store_at_once(start_server, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    servers = [start_server(url, "--mode", "segment"), start_server(url, "--mode", "segment")]
    for server in servers:
        server.wait_ready()
    image = (NUMBERS / "score_87.png").read_bytes()
    per_server = 12

    def post_all(server) -> list[int]:
        ids = []
        with httpx2.Client(base_url=server.url, timeout=60) as http:
            for i in range(per_server):
                response = http.post("/v1/feedback", files={"file": ("s.png", image)}, data={"number": str(80 + i)})
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])
        return ids

    # Both servers start writing together, each from several client threads.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(post_all, servers * 2))
    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids)) == 4 * per_server
    store = FeedbackStore(url)
    assert store.count() == 4 * per_server
    assert sorted(r.number for r in store) == sorted(str(80 + i) for i in range(per_server) for _ in range(4))
    store.close()


def test_a_store_opening_while_another_process_creates_the_table_waits_for_it(tmp_path, monkeypatch):
    # Two servers' first requests at once: the other process's CREATE lands between this one's check
    # and its own CREATE, and SQLite says "locked", then "already exists", before the table is seen.
    url = f"sqlite:///{tmp_path / 'race.db'}"
    other = create_engine(url)
    real_create_all = store_module._Base.metadata.create_all
    failures = iter(["database is locked", "table digitread_feedback already exists"])

    def create_all_racing(engine):
        message = next(failures, None)
        if message is None:
            return real_create_all(engine)
        real_create_all(other)  # the other process wins the race
        raise OperationalError("CREATE TABLE digitread_feedback", {}, Exception(message))

    monkeypatch.setattr(store_module._Base.metadata, "create_all", create_all_racing)
    store = FeedbackStore(url)
    assert store.add(b"png", "PNG", "12", "12", {}) == 1
    assert store.count() == 1
    store.close()
    other.dispose()


def _store_with(reader, url: str, items: list[tuple[Path, str]]) -> FeedbackStore:
    store = FeedbackStore(url)
    for path, number in items:
        reading = reader.read(str(path), path.name)
        store.add(path.read_bytes(), "PNG", number, reading.text, reading.to_dict(), path.name)
    return store


def test_export_cuts_each_digit_where_the_boxes_match_the_corrected_number(reader, tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    items = [
        (NUMBERS / "meter_4096.png", "4096"),
        (NUMBERS / "score_87.png", "81"),
        (NUMBERS / "amount_1250.png", "12500"),
    ]
    store = _store_with(reader, url, items)
    out = tmp_path / "export"
    summary = export_feedback(store, out)
    assert summary.to_dict() == {"images": 3, "digits": 6, "images_not_cut": 1}  # 12500: five digits, four boxes
    with open(out / "labels.csv") as f:
        labels = list(csv.DictReader(f))
    assert [(r["number"], r["read"], r["digits_cut"]) for r in labels] == [
        ("4096", "4096", "4"),
        ("81", "87", "2"),
        ("12500", "1250", "0"),
    ]
    for row in labels:
        assert (out / row["file"]).read_bytes() in {p.read_bytes() for p, _ in items}
    with open(out / "digits.csv") as f:
        digits = list(csv.DictReader(f))
    assert [d["label"] for d in digits] == list("4096") + list("81")
    # The cut digits are the digits: the classifier reads each cut as the digit it was written as; the
    # corrected 1 in 81 is where the 7 was, so it is labelled 1 and still looks like a 7.
    fields = read_idx(out / "digits-images-idx3-ubyte.gz")
    labels_idx = read_idx(out / "digits-labels-idx1-ubyte.gz")
    assert fields.shape == (6, 28, 28) and labels_idx.tolist() == [4, 0, 9, 6, 8, 1]
    predicted = reader.classifier.probabilities(fields).argmax(axis=1).tolist()
    assert predicted == [4, 0, 9, 6, 8, 7]
    crop = np.asarray(Image.open(out / digits[0]["file"]))
    assert crop.ndim == 2 and min(crop.shape) >= 10
    store.close()


def test_feedback_export_command_writes_the_folder_and_reports_in_one_line(reader, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    _store_with(reader, url, [(NUMBERS / "meter_4096.png", "4096")]).close()
    assert main(["feedback", "export", str(tmp_path / "out"), "--db", url]) == 0
    assert capsys.readouterr().out.strip() == f"1 images and 4 digits written to {tmp_path / 'out'}"
    assert sorted(p.name for p in (tmp_path / "out" / "digits").iterdir()) == ["0", "4", "6", "9"]
    assert not list((tmp_path / "out").rglob("*.tmp"))  # atomic writes leave no temporary file behind


def test_feedback_export_says_in_one_line_when_there_is_no_database(tmp_path, capsys):
    missing = tmp_path / "nothing.db"
    assert main(["feedback", "export", str(tmp_path / "out"), "--db", f"sqlite:///{missing}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"digitread: error: no feedback database at {missing}; pass --db with the server's URL"
    assert not missing.exists()
    assert main(["feedback", "export", str(tmp_path / "out"), "--db", "not a url"]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_the_stored_reading_is_plain_json(reader, tmp_path):
    store = _store_with(reader, f"sqlite:///{tmp_path / 'f.db'}", [(METER, "4096")])
    (row,) = list(store)
    assert json.loads(json.dumps(row.reading))["text"] == "4096"
    store.close()
