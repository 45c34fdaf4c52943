"""ONNX Runtime against PyTorch on the shipped models: the same probabilities (to 1e-4), the same readings.

These tests need onnx and onnxruntime and fail, never skip, without them: ONNX Runtime is what
``auto`` serves with, so a mismatch or a missing package must show.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from digitread.cli import main
from digitread.data.strips import collate_strips
from digitread.errors import ConfigError, DigitreadError
from digitread.inference import backends
from digitread.inference.backends import OnnxBackend, TorchBackend, load_backend
from digitread.inference.io import load_image
from digitread.inference.layout import find_lines
from digitread.inference.predictor import DigitClassifier
from digitread.inference.reader import DigitReader
from digitread.inference.sequence import RIGHT_MARGIN, SequenceReader, strip_lengths, strip_tensor
from digitread.inference.strip import line_strip
from digitread.models import create_model
from digitread.serve.app import create_app
from digitread.serve.settings import ServeSettings

EXAMPLES = Path(__file__).parents[1] / "examples"
DIGITS = sorted((EXAMPLES / "digits").glob("*.png"))
NUMBERS = sorted((EXAMPLES / "numbers").glob("*.png"))
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def classifiers() -> dict[str, DigitClassifier]:
    return {name: DigitClassifier.from_pretrained(backend=name) for name in ("torch", "onnx")}


@pytest.fixture(scope="module")
def sequence_readers() -> dict[str, SequenceReader]:
    return {name: SequenceReader.from_pretrained(backend=name) for name in ("torch", "onnx")}


@pytest.fixture(scope="module")
def strips() -> list[np.ndarray]:
    """Every line of the example numbers as the reader cuts it, and all of them side by side (wide)."""
    lines = []
    for path in NUMBERS:
        prepared, found = find_lines(load_image(path))
        lines += [line_strip(prepared, line).image for line in found]
    return [*lines, np.hstack(lines)]


def _digit_fields(classifier: DigitClassifier) -> np.ndarray:
    """The example digits as the network sees them, and each shifted and thickened: 30 real inputs."""
    fields = np.stack([classifier.prepare(p) for p in DIGITS])
    shifted = np.roll(fields, (2, -1), axis=(1, 2))
    thick = np.maximum(fields, np.roll(fields, 1, axis=2))
    return np.concatenate([fields, shifted, thick])


def test_the_shipped_digit_model_gives_the_same_probabilities_on_onnx_runtime(classifiers):
    torch_clf, onnx_clf = classifiers["torch"], classifiers["onnx"]
    assert isinstance(torch_clf.backend, TorchBackend) and isinstance(onnx_clf.backend, OnnxBackend)
    fields = _digit_fields(torch_clf)
    expected = torch_clf.probabilities(fields)
    batched = onnx_clf.probabilities(fields)
    one_by_one = np.concatenate([onnx_clf.probabilities(f[None]) for f in fields])
    assert np.abs(batched - expected).max() <= TOLERANCE
    assert np.abs(one_by_one - expected).max() <= TOLERANCE
    assert (batched.argmax(1)[:10] == np.arange(10)).all()  # real digits, read right: not a degenerate input


def _member_probs(reader: SequenceReader, member: int, strips: list[np.ndarray]) -> list[np.ndarray]:
    """One member's temperature-scaled probabilities for strips batched as the reader batches them,
    each cut to its own valid columns."""
    x, _, _, _ = collate_strips([(np.pad(s, ((0, 0), (0, RIGHT_MARGIN))), "") for s in strips])
    lengths = strip_lengths(torch.tensor([s.shape[1] for s in strips]), x.shape[-1], reader.frame_widths[member])
    logits = reader.backends[member](strip_tensor(x), lengths)
    probs = torch.softmax(logits / reader.temperatures[member], dim=2).numpy()
    return [p[:n] for p, n in zip(probs, lengths.tolist(), strict=True)]


def test_each_shipped_sequence_member_gives_the_same_probabilities_on_onnx_runtime(sequence_readers, strips):
    torch_seq, onnx_seq = sequence_readers["torch"], sequence_readers["onnx"]
    assert len(onnx_seq.models) == 3 and all(isinstance(b, OnnxBackend) for b in onnx_seq.backends)
    assert len({s.shape[1] for s in strips}) >= 4  # strips of several widths
    for member in range(len(onnx_seq.models)):
        for batch in [strips, *([s] for s in strips)]:  # all at once (padded to the widest), and one by one
            expected = _member_probs(torch_seq, member, batch)
            got = _member_probs(onnx_seq, member, batch)
            for e, g in zip(expected, got, strict=True):
                assert e.shape == g.shape and np.abs(g - e).max() <= TOLERANCE


def test_the_reader_reads_the_example_numbers_the_same_on_both_backends():
    readings = {name: DigitReader.from_pretrained(backend=name).read_many(NUMBERS) for name in ("torch", "onnx")}
    for t, o in zip(readings["torch"], readings["onnx"], strict=True):
        assert o.text == t.text and abs(o.confidence - t.confidence) <= TOLERANCE
        assert [d.char for d in o.digits] == [d.char for d in t.digits]
        assert np.allclose([d.confidence for d in o.digits], [d.confidence for d in t.digits], atol=TOLERANCE)
    assert [r.text for r in readings["onnx"]] == [p.stem.split("_", 1)[1] for p in NUMBERS]


def test_auto_runs_on_onnx_runtime_on_the_cpu_and_torch_is_kept_when_asked():
    model = create_model("cnn_small")
    assert load_backend(model, "auto").name == "onnx"
    assert load_backend(model, "torch").name == "torch"
    with pytest.raises(ConfigError, match="choose auto, torch, onnx"):
        load_backend(model, "tensorrt")


def test_without_onnxruntime_onnx_is_refused_with_the_install_hint_and_auto_uses_torch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    model = create_model("cnn_small")
    with pytest.raises(DigitreadError, match=r"pip install 'digitread\[onnx\]'"):
        load_backend(model, "onnx")
    assert load_backend(model, "auto").name == "torch"
    assert main(["predict", "default", str(DIGITS[7]), "--backend", "onnx"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "digitread[onnx]" in err[0]


def test_a_graph_that_disagrees_with_pytorch_is_refused_and_auto_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(backends, "onnx_parity", lambda model, session, shapes: (0.5, 0.01))
    model = create_model("cnn_small")
    with pytest.raises(DigitreadError, match="differ from PyTorch's by 1.0e-02"):
        load_backend(model, "onnx")
    assert load_backend(model, "auto").name == "torch"
    assert "running it with PyTorch instead" in caplog.text


def test_predict_and_read_run_on_onnx_runtime_from_the_command_line(capsys):
    assert main(["predict", "default", *map(str, DIGITS[:3]), "--backend", "onnx", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["digit"] for r in rows] == [0, 1, 2]
    assert main(["read", str(EXAMPLES / "numbers" / "meter_4096.png"), "--backend", "onnx", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["text"] == "4096"


def test_predict_reports_a_bad_file_and_still_classifies_the_rest(tmp_path, capsys):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    assert main(["predict", "default", str(DIGITS[4]), str(bad), str(DIGITS[5])]) == 1
    out, err = capsys.readouterr()
    assert [line.split()[1] for line in out.splitlines()] == ["4", "5"]
    assert "not_an_image.png" in err


def test_export_takes_the_output_file_as_onnx_as_the_issue_spells_it(tmp_path, capsys):
    assert main(["export", "default", "--onnx", str(tmp_path / "digits.onnx")]) == 0
    assert (tmp_path / "digits.onnx").is_file() and "matches PyTorch" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_service_runs_on_the_backend_it_is_set_to_and_says_so(backend, tmp_path):
    settings = ServeSettings(backend=backend, feedback_db=f"sqlite:///{tmp_path / 'feedback.db'}")
    with TestClient(create_app(settings=settings)) as client:  # loads the reader at start-up
        runtime = client.get("/v1/model").json()["runtime"]
        reading = client.post("/v1/read", files={"file": (NUMBERS[0].name, NUMBERS[0].read_bytes())}).json()
    assert runtime["backend"] == runtime["digit_model_backend"] == runtime["sequence_model_backend"] == backend
    assert reading["text"] == NUMBERS[0].stem.split("_", 1)[1]


def test_the_backend_setting_comes_from_the_environment_and_is_checked():
    assert ServeSettings.from_env({"DIGITREAD_BACKEND": "onnx"}).backend == "onnx"
    with pytest.raises(ConfigError, match="unknown backend 'cuda'"):
        ServeSettings(backend="cuda")
