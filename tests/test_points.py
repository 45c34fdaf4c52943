"""Sequence models with a point class: strips that label their points, decoding, growing a trained
member's output layer, an ensemble mixing members with and without the class, and the reader's marks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import ctc_frames

from digitread.checkpoint import load_weights_into, save_model
from digitread.data.strips import StripConfig, collate_strips, make_strips
from digitread.errors import ConfigError
from digitread.inference.ctc import beam_decode, greedy_decode, string_log_probs
from digitread.inference.results import DigitReading
from digitread.inference.segment import Line, Piece
from digitread.inference.strip import STRIP_HEIGHT
from digitread.models import create_model
from digitread.models.crnn import BLANK, POINT, reads_points


def test_point_strips_label_the_points_between_digits_and_draw_the_same_strips(mnist):
    images, labels = mnist.val.images, mnist.val.labels
    plain = make_strips(images, labels, 60, seed=4)
    pointed = make_strips(images, labels, 60, seed=4, cfg=StripConfig(points=True))
    assert [label for _, label, _ in plain] == [label.replace(".", "") for _, label, _ in pointed]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(plain, pointed, strict=True))  # only the labels differ
    assert any("." in label for _, label, _ in pointed)  # thousands separators are points now
    decimal = make_strips(images, labels, 40, seed=4, cfg=StripConfig(min_digits=2, decimal_point=1.0, points=True))
    for _, label, _ in decimal:
        assert label == "" or ("." in label and label[0] != "." and label[-1] != "." and ".." not in label)


def test_collate_gives_a_point_its_class():
    strip = np.zeros((STRIP_HEIGHT, 20), np.uint8)
    _, _, targets, _ = collate_strips([(strip, "1.5"), (strip, "7")])
    assert targets.tolist() == [1, POINT, 5, 7]


def test_decoders_read_the_point_class_and_plain_members_score_past_points():
    probs = ctc_frames({1: 0.9}, {}, {POINT: 0.6}, {POINT: 0.8}, {}, {5: 0.7}, {5: 0.9}, classes=12)
    decoded = greedy_decode(probs)
    assert decoded.text == "1.5" and decoded.spans == [(0, 1), (2, 4), (5, 7)]
    assert decoded.char_probs[2][5] == pytest.approx(0.9)  # a character's surest column
    assert beam_decode(probs) == "1.5"
    assert string_log_probs(torch.from_numpy(np.log(np.maximum(probs, 1e-12)))[None], torch.tensor([7]), ["1.5"]) < 0
    plain = torch.from_numpy(np.log(np.maximum(ctc_frames({1: 0.9}, {}, {5: 0.9}), 1e-12)))[None]
    both = string_log_probs(plain.repeat(2, 1, 1), torch.tensor([3, 3]), ["1.5", "15"])
    assert both[0].item() == pytest.approx(both[1].item())  # a model with no point class reads past it
    assert math.exp(both[0].item()) == pytest.approx(0.81, rel=1e-4)


def test_a_point_member_grows_from_a_trained_members_weights(tmp_path):
    torch.manual_seed(0)
    wide = create_model("crnn_wide")
    save_model(wide, tmp_path / "wide", preprocess={"task": "strings"})
    points = create_model("crnn_points")
    fresh = points.head.weight[BLANK + 1 :].detach().clone()
    load_weights_into(points, tmp_path / "wide")
    assert reads_points(points) and not reads_points(wide)
    assert torch.equal(points.head.weight[: BLANK + 1], wide.head.weight)  # the trained rows
    assert torch.equal(points.head.weight[BLANK + 1 :], fresh)  # the point's row starts fresh
    assert torch.equal(points.features[0].weight, wide.features[0].weight)
    save_model(create_model("crnn_digits"), tmp_path / "small", preprocess={"task": "strings"})
    with pytest.raises(ConfigError, match="crnn_digits"):  # narrower layers: not a grown head
        load_weights_into(create_model("crnn_points"), tmp_path / "small")


class _Reads(torch.nn.Module):
    """A stand-in sequence model that reads 1, then (with a point class) a point, then 5."""

    task = "strings"
    arch = "fixed"

    def __init__(self, classes: int, point: float):
        super().__init__()
        self.config = {"preprocess": {"task": "strings"}}
        self.head = torch.nn.Linear(1, classes)
        self.classes, self.point = classes, point

    def forward(self, x, lengths):
        probs = torch.zeros(x.shape[0], x.shape[-1] // 4, self.classes)
        probs[:, :, BLANK] = 1.0
        probs[:, 0] = torch.nn.functional.one_hot(torch.tensor(1), self.classes).float()
        if self.classes > POINT:
            probs[:, 2, POINT], probs[:, 2, BLANK] = self.point, 1 - self.point
        probs[:, 4] = torch.nn.functional.one_hot(torch.tensor(5), self.classes).float()
        return probs.clamp_min(1e-12).log()


def test_an_ensemble_takes_its_points_from_the_member_that_reads_them():
    from digitread.inference.sequence import SequenceReader

    strip = np.zeros((STRIP_HEIGHT, 24), np.uint8)
    mixed = SequenceReader([_Reads(11, 0.0), _Reads(12, 0.9)])
    assert mixed.reads_points and not SequenceReader([_Reads(11, 0.0)]).reads_points
    reading = mixed.read([strip])[0]
    assert reading.text == "1.5"
    assert reading.confidence == pytest.approx(math.sqrt(1.0 * 0.9), rel=1e-3)  # the plain member reads "15"
    assert SequenceReader([_Reads(11, 0.0), _Reads(12, 0.1)]).read([strip])[0].text == "15"


def test_a_point_must_be_clearly_likelier_than_none_to_be_read(monkeypatch):
    from digitread.inference import sequence
    from digitread.inference.sequence import SequenceReader

    strip = np.zeros((STRIP_HEIGHT, 24), np.uint8)
    # The point member: P("1.5") = 0.6, P("15") = 0.4. Geometric means with the plain member: 0.77 and
    # 0.63, a ratio of 1.22, under exp(POINT_COST) = 2.23: the point is not read. At 0.9 (a ratio of 3) it is.
    assert SequenceReader([_Reads(11, 0.0), _Reads(12, 0.6)]).read([strip])[0].text == "15"
    assert SequenceReader([_Reads(11, 0.0), _Reads(12, 0.9)]).read([strip])[0].text == "1.5"
    monkeypatch.setattr(sequence, "POINT_COST", 0.0)
    reading = SequenceReader([_Reads(11, 0.0), _Reads(12, 0.6)]).read([strip])[0]
    assert reading.text == "1.5" and reading.confidence == pytest.approx(math.sqrt(0.6), rel=1e-3)


class _Spread(torch.nn.Module):
    """A stand-in whose two columns each prefer blank, yet "1" is likelier than "" summed over its
    alignments: greedy decoding reads nothing, beam search reads "1"."""

    task = "strings"
    arch = "fixed"

    def __init__(self, classes: int):
        super().__init__()
        self.config = {"preprocess": {"task": "strings"}}
        self.head = torch.nn.Linear(1, classes)
        self.classes = classes

    def forward(self, x, lengths):
        probs = torch.zeros(x.shape[0], x.shape[-1] // 4, self.classes)
        probs[:, :, BLANK] = 1.0
        probs[:, :2, 1], probs[:, :2, 2], probs[:, :2, BLANK] = 0.35, 0.25, 0.4
        return probs.clamp_min(1e-12).log()


def test_beam_search_reads_through_an_ensemble_mixing_point_and_plain_members():
    from digitread.inference.sequence import SequenceReader

    strip = np.zeros((STRIP_HEIGHT, 8), np.uint8)
    mixed = SequenceReader([_Spread(11), _Spread(12)], decoder="beam")
    reading = mixed.read([strip])[0]
    assert reading.text == "1" and len(reading.spans) == 1  # beam's string, given an alignment
    assert SequenceReader([_Spread(11), _Spread(12)]).read([strip])[0].text == ""


def _piece(x: int, w: int, h: int, kind: str = "digit", y: int = 0) -> Piece:
    return Piece(x, y, w, h, np.full((h, w), 255, np.uint8), kind)


def test_a_point_the_model_read_takes_the_segmentations_dot_for_its_box_or_sits_on_the_baseline():
    from digitread.inference.reader import _point_piece

    line = Line([_piece(0, 10, 20), _piece(13, 4, 4, "dot", 16), _piece(20, 10, 20)], 20.0)
    near = _point_piece(12.0, line)  # CTC's column, a little before the dot
    assert (near.x, near.y, near.w, near.h, near.kind) == (13, 16, 4, 4, "point")
    glued = _point_piece(40.0, line)  # no dot there: a dab on the baseline (y = 20)
    assert glued.kind == "point" and glued.y + glued.h == 20 and abs(glued.x + glued.w / 2 - 40) <= 1


def test_a_point_the_model_read_is_kept_between_digits_once_and_dropped_after_the_number():
    from digitread.inference.preprocess import Prepared
    from digitread.inference.reader import _with_marks

    line = Line([_piece(0, 10, 20), _piece(14, 10, 20), _piece(26, 3, 3, "dot", 17), _piece(30, 10, 20)], 20.0)
    prepared = Prepared(np.zeros((20, 50), np.uint8), np.zeros((20, 50), np.uint8), 1.0, False, (20, 50))
    one, two, five = (DigitReading(c, 0.9, (0, 0, 1, 1), []) for c in "125")
    point = ("point", _piece(25, 3, 3, "point", 17))
    dot = ("dot", line.pieces[2])
    assert "".join(d.char for d in _with_marks([one, two, point, dot, five], line, prepared)) == "12.5"
    assert "".join(d.char for d in _with_marks([one, point, two, five, point], line, prepared)) == "1.25"


def test_a_pen_point_is_a_round_filled_dot_on_the_line_and_nothing_else():
    import cv2

    from digitread.inference.reader import _pen_point

    def dot(x: int, y: int, w: int, h: int, mask: np.ndarray | None = None) -> Piece:
        return Piece(x, y, w, h, np.full((h, w), 255, np.uint8) if mask is None else mask, "dot")

    digits = [_piece(0, 12, 40), _piece(30, 12, 40)]  # feet at y = 40: the line
    ring = np.zeros((8, 8), np.uint8)
    cv2.circle(ring, (4, 4), 3, 255, 1)
    assert _pen_point(dot(17, 33, 7, 7), Line([*digits, dot(17, 33, 7, 7)], 40.0))  # a point on the line
    for other in (
        dot(17, 36, 3, 3),  # a speck: under 0.12 of the line's height
        dot(17, 36, 12, 4),  # a stroke's bit, long
        dot(17, 15, 7, 7),  # round and filled, but halfway up the digits
        dot(17, 32, 8, 8, ring),  # hollow
    ):
        assert not _pen_point(other, Line([*digits, other], 40.0)), (other.w, other.h, other.y)


def test_a_pen_point_the_sequence_model_missed_is_read_once(mnist, monkeypatch):
    from dataclasses import replace

    import digitread.inference.reader as reader_module
    from digitread.data.synth import MODERATE, make_numbers
    from digitread.inference.reader import DigitReader

    # Every number has a point, and every digit is pushed left until it touches the ink before it: a
    # point often ends up under the next digit, apart from its ink, where the models miss it.
    cfg = replace(MODERATE, decimal_point=1.0, touching=1.0, minus=0.0, min_digits=3, max_digits=6)
    samples = make_numbers(mnist.test.images, mnist.test.labels, 60, seed=8, cfg=cfg)
    reader = DigitReader.from_pretrained()
    texts, placed = {}, {}
    for on in (0, 1):
        monkeypatch.setattr(reader_module, "PEN_POINT", on)
        texts[on] = [r.text for r in reader.read_many([image for image, _ in samples])]
        placed[on] = sum(got.find(".") == text.find(".") for got, (_, text) in zip(texts[on], samples, strict=True))
    assert placed[1] >= placed[0] + 2, placed
    for without, with_pen in zip(texts[0], texts[1], strict=True):
        # Only a reading without a point gains one, and only a point: the digits stay.
        assert with_pen == without or ("." not in without and with_pen.replace(".", "", 1) == without)


def test_train_grows_a_point_member_from_a_trained_one_and_labels_its_strips(tmp_path, mnist_path, capsys):
    import json

    from digitread.checkpoint import load_model
    from digitread.cli import main

    torch.manual_seed(0)
    save_model(create_model("crnn_wide"), tmp_path / "wide", preprocess={"task": "strings"})
    out = tmp_path / "points"
    args = ["train", "--task", "strings", "--model", "crnn_points", "--init", str(tmp_path / "wide")]
    args += ["--out", str(out), "--data-dir", str(mnist_path), "--epochs", "1", "--batch-size", "16"]
    args += ["--strips-per-epoch", "32", "--workers", "0", "--val-strips", "40", "--quiet"]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["strips"]["points"] is True and config["strips"]["decimal_point"] > 0
    assert reads_points(load_model(out))
    capsys.readouterr()
    assert main(["read", "examples/numbers", "--sequence-model", str(out), "--mode", "sequence"]) == 0


def test_the_sequence_path_reads_decimal_points_glued_to_a_digit_that_cutting_loses(mnist):
    from dataclasses import replace

    from digitread.data.synth import MODERATE, make_numbers
    from digitread.inference.reader import DigitReader

    # Every number has a point, and every digit is pushed left until it touches the ink before it
    # (the point, after one): segmentation merges the point into a digit.
    cfg = replace(MODERATE, decimal_point=1.0, touching=1.0, minus=0.0, min_digits=3, max_digits=5)
    samples = make_numbers(mnist.test.images, mnist.test.labels, 40, seed=5, cfg=cfg)
    placed = {}
    for mode in ("auto", "segment"):
        readings = DigitReader.from_pretrained(mode=mode).read_many([image for image, _ in samples])
        placed[mode] = sum(r.text.find(".") == text.find(".") for r, (_, text) in zip(readings, samples, strict=True))
    assert placed["auto"] >= 12 and placed["auto"] >= 3 * placed["segment"], placed


def test_validation_loss_stays_finite_when_a_label_cannot_be_aligned_in_its_strip():
    import json

    from digitread.train.strings import evaluate_strips

    torch.manual_seed(0)
    model = create_model("crnn_points")
    wide, narrow = np.zeros((STRIP_HEIGHT, 64), np.uint8), np.zeros((STRIP_HEIGHT, 8), np.uint8)
    # Two columns cannot hold five characters: CTC's loss for that strip is infinite.
    result = evaluate_strips(model, [(wide, "1.5", wide), (narrow, "12.45", narrow)])
    assert result["unalignable"] == 1 and math.isfinite(result["loss"])
    json.loads(json.dumps({"val_loss": result["loss"]}, allow_nan=False))  # history.json stays valid JSON
