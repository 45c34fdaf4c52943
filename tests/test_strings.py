"""The sequence path: synthetic strips, CTC decoding, the CRNN, training with --task strings, reading modes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ctc_frames

from digitread.checkpoint import load_model, save_model
from digitread.cli import main
from digitread.data.strips import StripConfig, collate_strips, make_strips
from digitread.inference.ctc import beam_decode, greedy_decode, string_log_probs
from digitread.inference.strip import STRIP_HEIGHT
from digitread.models import create_model
from digitread.models.crnn import BLANK


def test_strips_are_seeded_digit_labelled_and_cut_the_readers_way(mnist):
    a = make_strips(mnist.train.images, mnist.train.labels, 6, seed=5)
    b = make_strips(mnist.train.images, mnist.train.labels, 6, seed=5)
    c = make_strips(mnist.train.images, mnist.train.labels, 6, seed=6)
    assert [s[1] for s in a] == [s[1] for s in b]
    assert all(np.array_equal(x[2], y[2]) for x, y in zip(a, b, strict=True))
    assert [s[1] for s in a] != [s[1] for s in c]
    for rendered, label, strip in a:
        assert label == "" or (label.isdigit() and len(label) <= 8)
        assert rendered.dtype == np.uint8 and rendered.ndim == 2
        assert strip.shape[0] == STRIP_HEIGHT and strip.max() > 0


def test_small_strips_are_the_same_numbers_scanned_small_and_still_cut_the_readers_way(mnist):
    from digitread.data.strips import SMALL_HEIGHT, StripConfig, compose_strip

    for seed in range(8):
        full, label = compose_strip(mnist.val.images, mnist.val.labels, np.random.default_rng(seed), StripConfig())
        small, same = compose_strip(
            mnist.val.images, mnist.val.labels, np.random.default_rng(seed), StripConfig(small=1.0)
        )
        assert same == label  # the same number, drawn the same way up to the scan
        height = full.shape[0] / 2.4  # the canvas is 2.4 digit heights tall
        if height > SMALL_HEIGHT[1]:
            assert small.shape[0] <= 2.4 * SMALL_HEIGHT[1] + 1 < full.shape[0]
    strips = make_strips(mnist.val.images, mnist.val.labels, 6, seed=3, cfg=StripConfig(small=1.0))
    assert all(strip.shape[0] == STRIP_HEIGHT and strip.max() > 0 for _, _, strip in strips)


def test_a_pen_underline_runs_under_the_whole_number_and_ends_where_it_says():
    from digitread.data.strips import _underline

    height, baseline = 30, 51
    for seed in range(20):
        canvas = np.zeros((72, 200), np.uint8)
        canvas[baseline - height : baseline, 20:120] = 255  # the number's ink
        before = canvas.copy()
        right = _underline(canvas, 20, 120, baseline, height, 3, np.random.default_rng(seed))
        added = (canvas > 100) & (before == 0)
        rows, cols = np.nonzero(added)
        assert cols.min() <= 20 + 0.1 * height and cols.max() >= 120 - 0.1 * height  # under all of it
        assert rows.max() >= baseline  # below the feet, not through the digits
        assert right == np.nonzero(canvas.any(axis=0))[0].max() + 1 >= cols.max() + 1


def test_a_rows_cross_after_the_number_is_small_set_apart_and_below_mid_height():
    from digitread.data.strips import _mark_after

    height, baseline, x, stroke = 40, 70, 50, 3
    gaps = []
    for seed in range(30):
        for kind in ("+", "x", "-"):
            canvas = np.zeros((100, 200), np.uint8)
            end = _mark_after(canvas, kind, x, baseline, height, stroke, np.random.default_rng(seed))
            rows, cols = np.nonzero(canvas)
            assert x < cols.min() and cols.max() < end  # after the number, and the returned column after it
            if kind == "-":
                assert cols.min() - x <= 0.2 * height + 2  # the other marks sit close
                continue
            assert rows.max() - rows.min() <= 0.6 * height + stroke  # arms under 0.3 of the digit height
            assert (rows.min() + rows.max()) / 2 >= baseline - height / 2 - 1  # from mid-height down
            gaps.append(cols.min() - x)
    assert max(gaps) > 0.5 * height  # often well apart from the number


def test_collate_pads_to_the_frame_width_and_concatenates_targets():
    strips = [np.full((STRIP_HEIGHT, 30), 200, np.uint8), np.full((STRIP_HEIGHT, 41), 100, np.uint8)]
    x, widths, targets, labels = collate_strips([(strips[0], "12"), (strips[1], "905")])
    assert x.shape == (2, 1, STRIP_HEIGHT, 44) and x.dtype == torch.uint8
    assert widths.tolist() == [30, 41]
    assert targets.tolist() == [1, 2, 9, 0, 5] and labels == ["12", "905"]
    assert x[0, 0, :, 30:].sum() == 0  # padding is background


def test_greedy_decoding_collapses_repeats_and_keeps_blank_separated_doubles():
    probs = ctc_frames({3: 0.9}, {3: 0.8}, {}, {3: 0.9}, {7: 0.6}, {})
    decoded = greedy_decode(probs)
    assert decoded.text == "337"
    assert decoded.spans == [(0, 2), (3, 4), (4, 5)]
    assert decoded.char_probs[0][3] == pytest.approx(0.9)


def test_beam_search_sums_alignments_that_greedy_decoding_misses():
    # Each column alone prefers blank, yet "1" is likelier than "" once its three alignments are summed.
    probs = ctc_frames({1: 0.35, 2: 0.25}, {1: 0.35, 2: 0.25})
    assert greedy_decode(probs).text == ""
    assert beam_decode(probs) == "1"
    log_p = string_log_probs(torch.from_numpy(np.log(np.maximum(probs, 1e-12)))[None], torch.tensor([2]), ["1"])
    assert math.exp(log_p.item()) == pytest.approx(0.4 * 0.35 * 2 + 0.35 * 0.35, rel=1e-5)
    log_empty = string_log_probs(torch.from_numpy(np.log(np.maximum(probs, 1e-12)))[None], torch.tensor([2]), [""])
    assert math.exp(log_empty.item()) == pytest.approx(0.16, rel=1e-5)


def test_crnn_reads_variable_width_strips_and_round_trips_through_a_model_folder(tmp_path):
    model = create_model("crnn_digits").eval()
    assert model.task == "strings"
    x = torch.rand(3, 1, STRIP_HEIGHT, 96)
    out = model(x)
    assert out.shape == (3, 24, 11)
    save_model(model, tmp_path / "seq", preprocess={"task": "strings"})
    loaded = load_model(tmp_path / "seq")
    assert torch.allclose(loaded(x), out, atol=1e-5)


def test_a_fine_column_member_grows_from_a_trained_one_reading_as_it_does_and_mixes_with_others(tmp_path):
    """crnn_points_fine scores a column every 2 pixels: it starts as a copy of a trained crnn_points,
    each column's scores given to both of its halves, so it reads what that model reads; padding a
    batch changes nothing; and in an ensemble its alignment is in strip pixels like the others'."""
    from digitread.checkpoint import load_weights_into
    from digitread.errors import ConfigError
    from digitread.inference.sequence import SequenceReader, strip_lengths
    from digitread.models.crnn import frame_width, reads_points

    trained = create_model("crnn_points").eval()
    save_model(trained, tmp_path / "points", preprocess={"task": "strings"})
    fine = create_model("crnn_points_fine").eval()
    load_weights_into(fine, tmp_path / "points")
    assert (frame_width(fine), frame_width(trained), reads_points(fine)) == (2, 4, True)
    x = torch.rand(2, 1, STRIP_HEIGHT, 96)
    x[1, :, :, 50:] = 0  # the second strip is 50 pixels wide, padded as the reader pads a batch
    coarse, halves = trained(x), fine(x)
    assert halves.shape == (2, 48, 12)
    assert torch.allclose(halves[:, 0::2], coarse, atol=1e-5) and torch.allclose(halves[:, 1::2], coarse, atol=1e-5)
    lengths = strip_lengths(torch.tensor([96, 50]), 96, frame_width(fine))
    assert lengths.tolist() == [48, 25]
    narrow = fine(x[1:, :, :, :52], lengths[1:])  # the narrow strip alone, against it padded in a batch
    assert torch.allclose(fine(x, lengths)[1, :25], narrow[0, :25], atol=2e-3)  # float noise grows in the LSTM
    save_model(create_model("crnn_wide"), tmp_path / "wide", preprocess={"task": "strings"})
    with pytest.raises(ConfigError, match="crnn_wide"):  # a point class and split columns at once: refused
        load_weights_into(create_model("crnn_points_fine"), tmp_path / "wide")
    save_model(fine, tmp_path / "fine", preprocess={"task": "strings", "frame_width": 2})
    assert torch.allclose(load_model(tmp_path / "fine")(x), halves, atol=1e-5)
    plain = _FixedStrip(0.9, 0.09)  # reads "12" at 4 pixels a column
    strip = np.zeros((STRIP_HEIGHT, 12), np.uint8)
    both = SequenceReader([plain, _Halved(_FixedStrip(0.9, 0.09))]).read([strip])[0]
    assert both.text == "12" and both.spans == [(0, 4), (8, 12)]
    assert SequenceReader([_Halved(_FixedStrip(0.9, 0.09))]).read([strip])[0].spans == [(0, 4), (8, 12)]


class _Halved(torch.nn.Module):
    """A stand-in scoring every column of ``inner`` twice, 2 pixels a column."""

    task = "strings"
    arch = "fixed"
    subframes = 2

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, x, lengths):
        return self.inner(x, (lengths + 1) // 2).repeat_interleave(2, dim=1)


def test_train_strings_writes_a_calibrated_sequence_model_the_reader_uses(tmp_path, mnist_path, capsys):
    out = tmp_path / "seq"
    args = ["train", "--task", "strings", "--model", "crnn_digits", "--out", str(out), "--data-dir", str(mnist_path)]
    args += ["--epochs", "1", "--batch-size", "16", "--strips-per-epoch", "32", "--workers", "0", "--quiet"]
    args += ["--val-strips", "40"]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "strings" and config["preprocess"]["height"] == STRIP_HEIGHT
    assert config["calibration"]["temperature"] > 0
    assert config["metrics"]["steps"] == 2
    capsys.readouterr()
    assert main(["read", "examples/numbers", "--sequence-model", str(out), "--mode", "sequence", "--jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    examples = len(list(Path("examples/numbers").glob("*.png")))
    assert len(rows) == examples and all(line["path"] == "sequence" for row in rows for line in row["lines"])


def test_a_model_of_the_wrong_task_is_refused_in_one_line(tmp_path, capsys):
    code = main(["train", "--task", "strings", "--model", "cnn", "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--task digits" in err[0]


def test_strips_command_writes_a_preview_grid(tmp_path, mnist_path, capsys):
    out = tmp_path / "strips.png"
    assert main(["strips", "--out", str(out), "--count", "4", "--data-dir", str(mnist_path)]) == 0
    import cv2

    grid = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    assert grid is not None and grid.shape[0] > 100 and grid.shape[1] > 700


@pytest.mark.parametrize("arch", ["crnn_digits", "crnn_points_fine"])
def test_export_to_onnx_matches_pytorch_for_any_batch_and_width(arch, tmp_path, capsys):
    save_model(create_model(arch), tmp_path / "seq", preprocess={"task": "strings"})
    assert main(["export", str(tmp_path / "seq"), "--out", str(tmp_path / "seq.onnx")]) == 0
    assert "matches PyTorch" in capsys.readouterr().out
    from digitread.export import export_onnx

    result = export_onnx(tmp_path / "seq", tmp_path / "again.onnx")
    assert result["task"] == "strings" and result["max_abs_diff"] < 1e-4


def test_export_of_a_folder_without_a_model_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "config.json is missing" in capsys.readouterr().err


def test_the_font_digit_bank_ships_every_digit_mnist_style():
    from digitread.data.font_digits import load_font_digits

    images, labels = load_font_digits()
    assert images.shape[1:] == (28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).min() >= 20  # every digit in every font
    for image in images:  # MNIST conventions: the ink's box fitted into 20x20
        ys, xs = np.nonzero(image)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 <= 21


def test_models_used_in_the_wrong_place_are_named(tmp_path, capsys):
    save_model(create_model("crnn_digits"), tmp_path / "seq", preprocess={"task": "strings"})
    assert main(["read", "examples/numbers", "--model", str(tmp_path / "seq")]) == 1
    assert "use it as the sequence model" in capsys.readouterr().err
    assert main(["read", "examples/numbers", "--sequence-model", "src/digitread/weights/default"]) == 1
    assert "reads single digits, not strings" in capsys.readouterr().err


def test_boxes_from_alignment_cut_in_the_gaps_wherever_the_spikes_sit():
    from digitread.inference.segment import Line, Piece
    from digitread.inference.strip import boxes_from_alignment

    def piece(x, w, kind="digit"):
        return Piece(x, 10, w, 30, np.full((30, w), 255, np.uint8), kind)

    line = Line([piece(0, 20), piece(30, 20), piece(55, 4, "dot"), piece(62, 20)], 30.0)
    expected = [(0, 10, 20, 40), (30, 10, 50, 40), (62, 10, 82, 40)]
    for centres in ([2, 31, 63], [10, 40, 72], [18, 48, 80], [-5, 28, 60]):  # left edges, centres, right edges
        assert boxes_from_alignment(line, centres) == expected, centres


def test_an_interrupted_strings_run_resumes_to_the_same_model(mnist, tmp_path):
    from digitread.config import RunConfig, TrainConfig
    from digitread.train.loop import seed_everything
    from digitread.train.strings import fit_strings

    class StopAfterFirstEpoch:
        def log_scalars(self, step, scalars): ...
        def message(self, text): ...
        def log_epoch(self, epoch, record):
            raise KeyboardInterrupt

    cfg = RunConfig(
        train=TrainConfig(
            task="strings", model="crnn_digits", epochs=2, batch_size=8, strips_per_epoch=16, val_strips=8,
            workers=0, label_smoothing=0.0,
        )
    )  # fmt: skip

    def train(out, **kwargs):
        seed_everything(0)
        return fit_strings(create_model("crnn_digits"), mnist, cfg, tmp_path / out, progress=False, **kwargs)

    whole = train("whole")
    with pytest.raises(KeyboardInterrupt):
        train("cut", logger=StopAfterFirstEpoch())
    resumed = train("cut", resume=True)
    assert resumed.metrics["steps"] == whole.metrics["steps"] == 4
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    a, b = load_model(whole.out_dir).state_dict(), load_model(resumed.out_dir).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _ensemble(tmp_path, names=("a", "b")):
    for seed, name in enumerate(names):
        torch.manual_seed(seed)
        save_model(create_model("crnn_digits"), tmp_path / "ens" / name, preprocess={"task": "strings"})
    (tmp_path / "ens" / "members.json").write_text(json.dumps({"members": list(names)}))
    return tmp_path / "ens"


class _FixedStrip(torch.nn.Module):
    """A stand-in sequence model: column 0 is surely a 1, column 1 blank, column 2 shares its
    probability between 2, 7 and blank as given; every later column is blank. So P("12") = p2,
    P("17") = p7 and P("1") = p_blank, whatever the strip shows."""

    task = "strings"
    arch = "fixed"

    def __init__(self, p2: float, p7: float):
        super().__init__()
        self.config = {"preprocess": {"task": "strings"}}
        self.column = torch.tensor([p2 if c == 2 else p7 if c == 7 else 0.0 for c in range(10)] + [1 - p2 - p7])

    def forward(self, x, lengths):
        probs = torch.zeros(x.shape[0], x.shape[-1] // 4, 11)
        probs[:, :, BLANK] = 1.0
        probs[:, 0] = torch.nn.functional.one_hot(torch.tensor(1), 11).float()
        probs[:, 2] = self.column
        return probs.clamp_min(1e-12).log()


def test_an_ensemble_keeps_the_proposal_with_the_highest_geometric_mean():
    from digitread.inference.sequence import SequenceReader

    strip = np.zeros((STRIP_HEIGHT, 12), np.uint8)  # 3 columns of 4 pixels
    # a alone reads "12" (0.9), b alone "17" (0.5). Geometric mean: "12" sqrt(0.9 * 0.01) = 0.095,
    # "17" sqrt(0.09 * 0.5) = 0.212; the arithmetic mean would choose "12" (0.455 against 0.295).
    a, b = _FixedStrip(0.9, 0.09), _FixedStrip(0.01, 0.5)
    assert SequenceReader(a).read([strip])[0].text == "12"
    assert SequenceReader(b).read([strip])[0].text == "17"
    both = SequenceReader([a, b]).read([strip])[0]
    assert both.text == "17"
    assert both.confidence == pytest.approx(math.sqrt(0.09 * 0.5), rel=1e-4)
    assert both.spans == [(0, 4), (8, 12)]  # b's greedy alignment, not a spread guess
    alone = SequenceReader([a]).read([strip])[0]
    assert (alone.text, alone.confidence) == ("12", pytest.approx(0.9, rel=1e-4))


def test_an_ensemble_scores_any_text_it_is_given_on_each_strip():
    from digitread.inference.sequence import POINT_COST, SequenceReader

    strip = np.zeros((STRIP_HEIGHT, 12), np.uint8)
    a, b = _FixedStrip(0.9, 0.09), _FixedStrip(0.01, 0.5)
    wide = np.zeros((STRIP_HEIGHT, 40), np.uint8)
    scores = SequenceReader([a, b]).score([strip, wide], [["12", "17", "1", "1.2"], ["17"]])
    # The log of the geometric mean of the members' P(text): "12" 0.9 and 0.01, "17" 0.09 and 0.5, "1"
    # (the column shared out to blank) 0.01 and 0.49; "1.2" no member can read (no point class), so
    # each scores it as "12", less POINT_COST. The wider strip's later columns are blank too.
    expected = [math.log(0.9 * 0.01) / 2, math.log(0.09 * 0.5) / 2, math.log(0.01 * 0.49) / 2]
    assert scores[0] == pytest.approx(expected + [expected[0] - POINT_COST], abs=1e-4)
    assert scores[1] == pytest.approx([expected[1]], abs=1e-4)


def test_ensemble_members_must_read_the_strips_this_reader_cuts():
    from digitread.errors import ConfigError, ModelFileError
    from digitread.inference.sequence import SequenceReader

    odd = _FixedStrip(0.5, 0.2)
    odd.config = {"preprocess": {"task": "strings", "height": 48}}
    with pytest.raises(ModelFileError, match="height"):
        SequenceReader([_FixedStrip(0.5, 0.2), odd])
    with pytest.raises(ConfigError, match="at least one"):
        SequenceReader([])


def test_a_shipped_style_ensemble_folder_loads_and_reads(tmp_path):
    from digitread.inference.sequence import SequenceReader

    folder = _ensemble(tmp_path)
    ensemble = SequenceReader.from_pretrained(folder)
    assert len(ensemble.models) == 2
    strips = [s for _, _, s in make_strips(*_digits(), 4, seed=3)]
    readings = ensemble.read(strips)
    assert len(readings) == 4 and all(0.0 <= r.confidence <= 1.0 for r in readings)


def _digits():
    import cv2

    rng = np.random.default_rng(0)
    images = np.zeros((20, 28, 28), np.uint8)
    for i, image in enumerate(images):  # blobs of ink standing in for digits: the tests are about loading
        cv2.circle(image, (14, 14), int(rng.integers(5, 9)), 255, 2 + i % 2)
    return images, np.arange(20) % 10


def test_a_one_member_ensemble_reads_like_its_member(tmp_path):
    from digitread.inference.sequence import SequenceReader

    folder = _ensemble(tmp_path, names=("only",))
    strips = [s for _, _, s in make_strips(*_digits(), 5, seed=1)]
    alone = SequenceReader.from_pretrained(folder / "only").read(strips)
    within = SequenceReader.from_pretrained(folder).read(strips)
    assert [r.text for r in alone] == [r.text for r in within]
    assert [math.log(r.confidence) for r in alone] == pytest.approx([math.log(r.confidence) for r in within])


@pytest.mark.parametrize(
    "listing",
    [
        '{"members": []}',
        '{"members": ["../x"]}',
        '{"members": "ab"}',
        '{"members": ["a", "a"]}',
        "[1, 2]",
        "not json",
        '{"members": ["a"], "shifts": [2, 3]}',
        '{"members": ["a"], "shifts": "0"}',
        '{"members": ["a"], "shifts": [0, 1.5]}',
    ],
)
def test_a_malformed_ensemble_listing_is_refused_by_name(tmp_path, listing, capsys):
    (tmp_path / "members.json").write_text(listing)
    from digitread.errors import ModelFileError
    from digitread.inference.sequence import SequenceReader

    with pytest.raises(ModelFileError, match="members.json"):
        SequenceReader.from_pretrained(tmp_path)
    examples = Path(__file__).parents[1] / "examples" / "numbers"
    assert main(["read", "--sequence-model", str(tmp_path), str(examples)]) == 1  # one line, no traceback
    assert "members.json" in capsys.readouterr().err


def test_an_ensemble_exports_each_member_to_its_own_onnx_file(tmp_path, capsys):
    folder = _ensemble(tmp_path)
    assert main(["export", str(folder), "--out", str(tmp_path / "seq.onnx")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "seq-a.onnx").is_file() and (tmp_path / "seq-b.onnx").is_file()
    assert out.count("matches PyTorch") == 2


def _pieces(mask: np.ndarray) -> list:
    from digitread.inference.segment import segment

    return [p for line in segment(mask) for p in line.pieces]


def test_thin_rules_far_taller_than_the_writing_are_not_digits():
    import cv2

    mask = np.zeros((200, 160), np.uint8)
    cv2.putText(mask, "38", (50, 110), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 3)  # digits about 22 px tall
    mask[20:180, 30:33] = 255  # a broken page edge: thin, far taller than the writing
    mask[150:172, 100:103] = 255  # a 1 as tall as the writing stays
    pieces = _pieces(mask)
    assert all(p.h < 60 for p in pieces)
    assert sum(p.kind == "digit" for p in pieces) == 3


@pytest.mark.parametrize("marks", ["point", "dash", "speck"])
def test_a_tall_1_beside_a_point_a_dash_or_a_speck_is_not_a_rule(marks):
    import cv2

    mask = np.zeros((200, 400), np.uint8)
    for x in (120, 180):
        cv2.line(mask, (x, 60), (x, 135), 255, 4)  # two 1s drawn as plain sticks
    if marks == "point":
        cv2.circle(mask, (150, 131), 4, 255, -1)
    elif marks == "dash":
        cv2.line(mask, (210, 100), (250, 100), 255, 4)
    else:
        cv2.circle(mask, (300, 30), 2, 255, -1)
    assert sum(p.kind == "digit" and p.h > 70 for p in _pieces(mask)) == 2


def test_a_1_written_as_a_long_slash_is_not_a_rule():
    import cv2

    from digitread.inference import segment as segment_module
    from digitread.inference.layout import find_lines
    from digitread.inference.segment import segment

    # Slanted writing with a 1 over twice the digits' height: upright once the slant is out, as thin as
    # what is left of a page edge, but it leaned as written.
    page = np.full((200, 320), 230, np.uint8)
    cv2.putText(page, "38", (120, 150), cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC, 2.0, 30, 4, cv2.LINE_AA)
    cv2.line(page, (80, 152), (110, 65), 30, 4, cv2.LINE_AA)
    prepared, lines = find_lines(page)
    assert prepared.shear > segment_module.RULE_LEAN
    assert [p.h > 80 for line in lines for p in line.pieces] == [True, False, False]
    # The same stroke standing upright as scanned is a rule.
    assert all(p.h < 80 for line in segment(prepared.mask, shear=0.0) for p in line.pieces)


def test_a_rule_is_told_by_how_it_stood_as_scanned_not_as_it_stands_upright():
    import cv2

    from digitread.inference.preprocess import ink_lean
    from digitread.inference.segment import _components, segment

    mask = np.zeros((200, 200), np.uint8)
    cv2.putText(mask, "38", (80, 160), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 3)  # digits about 22 px tall
    cv2.line(mask, (50, 170), (40, 70), 255, 3)  # thin, 100 px tall, its top 0.1 to the left once upright
    stroke = max(_components(mask), key=lambda p: p.h)
    assert ink_lean(stroke.mask) == pytest.approx(-0.1, abs=0.02)  # positive: the top to the right

    def kept(shear: float) -> bool:
        return any(p.h > 80 for line in segment(mask, shear=shear) for p in line.pieces)

    assert not kept(0.1)  # the slant taken out was 0.1: as scanned the stroke stood upright, a rule
    assert kept(-0.2)  # as scanned it leaned 0.3 to the left: written
    assert not kept(0.0)  # leaning 0.1 as scanned: within RULE_LEAN of upright


@pytest.mark.parametrize("tail", ["equals", "small 7", "raised zero", "broken 7", "small 7 after a tail"])
def test_a_fence_floating_after_a_number_is_not_a_digit_but_a_small_last_digit_is(tail):
    import cv2

    mask = np.zeros((150, 330), np.uint8)
    cv2.putText(mask, "20", (40, 100), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 4)  # digits 42 px tall, feet at 100
    x = 170
    if tail == "equals":  # the fence after a cheque amount, at mid-height, two strokes joined by a flourish
        cv2.line(mask, (170, 58), (205, 56), 255, 3)
        cv2.line(mask, (172, 78), (207, 76), 255, 3)
        cv2.line(mask, (205, 56), (172, 78), 255, 3)
    elif tail == "raised zero":  # a 0 written small and high, as cents are
        cv2.ellipse(mask, (185, 66), (9, 10), 0, 0, 360, 255, 3)
    elif tail == "broken 7":  # a 7 whose stem broke off under its bar, a speck left of it
        cv2.line(mask, (170, 56), (200, 56), 255, 3)
        cv2.line(mask, (200, 56), (194, 78), 255, 3)
        cv2.circle(mask, (190, 92), 3, 255, -1)
    else:  # a small open digit standing on the line: a 7 half the digits' height
        if tail == "small 7 after a tail":  # after a 9 whose stem runs far below the line
            cv2.circle(mask, (185, 72), 12, 255, 4)
            cv2.line(mask, (196, 74), (192, 125), 255, 4)
            x = 220
        cv2.line(mask, (x, 79), (x + 18, 79), 255, 3)
        cv2.line(mask, (x + 18, 79), (x + 8, 98), 255, 3)
    tail_piece = max((p for p in _pieces(mask) if p.x >= x - 2), key=lambda p: p.h)
    assert 0.5 < tail_piece.h / 42 < 0.65
    assert tail_piece.kind == ("fence" if tail == "equals" else "digit")


def test_a_decimal_point_under_a_slanted_digit_stays_a_point():
    import cv2

    mask = np.zeros((120, 200), np.uint8)
    cv2.line(mask, (60, 90), (80, 30), 255, 4)  # a slanted 1 ...
    cv2.circle(mask, (70, 88), 4, 255, -1)  # ... whose columns hold the point that follows it
    cv2.ellipse(mask, (120, 60), (14, 28), 0, 0, 360, 255, 4)
    kinds = [p.kind for p in _pieces(mask)]
    assert kinds.count("dot") == 1 and kinds.count("digit") == 2


def test_an_underlined_row_number_is_seen_again_without_its_underline_and_cross():
    import cv2

    from digitread.inference.segment import segment, without_underline

    mask = np.zeros((160, 220), np.uint8)
    cv2.putText(mask, "60", (60, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 255, 3)  # digits about 35 px tall
    cv2.line(mask, (50, 81), (150, 84), 255, 3)  # a pen underline touching their feet, a little tilted
    cv2.line(mask, (90, 83), (112, 108), 255, 3)  # and a clerk's cross hanging from it
    cv2.line(mask, (112, 83), (90, 108), 255, 3)
    cv2.line(mask, (185, 62), (185, 80), 255, 3)  # a short stroke after the number: a mark beside the tall piece
    [line] = segment(mask)
    assert [p.kind for p in line.pieces] == ["digit", "dot"]  # the underline joins digits and cross: one piece
    view = without_underline(line)
    assert view is not None and [p.kind for p in view.pieces] == ["digit", "digit", "digit"]
    assert all(p.y2 <= 84 for p in view.pieces) and 25 <= view.height <= 40
    # Beside digits of their own height the stroke is judged again, on copies: the line keeps its pieces.
    assert [p.kind for p in line.pieces] == ["digit", "dot"] and len(line.pieces) == 2


def test_a_narrow_underlined_number_with_a_cross_under_it_is_seen_again_too():
    import cv2

    from digitread.inference.segment import segment, without_underline

    # Two narrow digits over a short underline with a cross under it: one piece taller than wide.
    mask = np.zeros((160, 160), np.uint8)
    cv2.line(mask, (60, 40), (56, 70), 255, 3)  # two 1s, slanted a little
    cv2.line(mask, (76, 40), (72, 70), 255, 3)
    cv2.line(mask, (45, 71), (85, 73), 255, 3)  # the underline touching their feet
    cv2.line(mask, (56, 73), (74, 100), 255, 3)  # and a cross hanging from it
    cv2.line(mask, (74, 73), (56, 100), 255, 3)
    [line] = segment(mask)
    [piece] = line.pieces
    assert piece.w < 0.8 * piece.h
    view = without_underline(line)
    assert view is not None and [p.kind for p in view.pieces] == ["digit", "digit"]
    assert all(p.y2 <= 73 for p in view.pieces)


def test_the_bar_of_a_narrow_open_4_is_not_taken_for_an_underline():
    import cv2

    from digitread.inference.segment import segment, without_underline

    mask = np.zeros((160, 140), np.uint8)
    cv2.line(mask, (58, 30), (50, 78), 255, 3)  # the left arm
    cv2.line(mask, (50, 78), (88, 78), 255, 3)  # the bar, low: two "digits" stand above it
    cv2.line(mask, (80, 25), (78, 110), 255, 3)  # the stem, going on down under the bar
    [line] = segment(mask)
    [piece] = line.pieces
    assert piece.w < 0.8 * piece.h
    assert without_underline(line) is None


def test_a_fence_after_an_underlined_number_stays_a_fence_in_the_view_without_the_underline():
    import cv2

    from digitread.inference.segment import segment, without_underline

    mask = np.zeros((160, 300), np.uint8)
    cv2.putText(mask, "60", (60, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 255, 3)  # digits about 35 px tall
    cv2.line(mask, (50, 81), (150, 84), 255, 3)  # a pen underline touching their feet
    cv2.line(mask, (170, 50), (192, 48), 255, 3)  # and a '=' after the number, at mid-height
    cv2.line(mask, (171, 62), (193, 60), 255, 3)
    cv2.line(mask, (192, 48), (171, 62), 255, 3)
    [line] = segment(mask)
    view = without_underline(line)
    assert view is not None and [p.kind for p in view.pieces] == ["digit", "digit", "fence"]


def test_the_long_foot_of_a_wide_2_is_not_taken_for_an_underline():
    import cv2

    from digitread.inference.segment import segment, without_underline

    mask = np.zeros((140, 200), np.uint8)
    cv2.ellipse(mask, (100, 50), (55, 28), 0, 180, 360, 255, 3)  # the 2's arch, written wide
    cv2.line(mask, (155, 50), (40, 108), 255, 3)  # its diagonal
    cv2.line(mask, (40, 108), (165, 110), 255, 3)  # and its foot, as long as an underline
    [line] = segment(mask)
    assert without_underline(line) is None


def test_export_to_a_folder_is_one_line_not_a_traceback(tmp_path, capsys):
    save_model(create_model("crnn_digits"), tmp_path / "seq", preprocess={"task": "strings"})
    assert main(["export", str(tmp_path / "seq"), "--out", str(tmp_path)]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_ensemble_command_refuses_mixed_tasks_and_single_runs(tmp_path, capsys):
    shipped = Path(__file__).parents[1] / "src" / "digitread" / "weights"
    assert (
        main(["ensemble", str(shipped / "default"), str(shipped / "sequence" / "crnn_wide"), "--out", str(tmp_path)])
        == 1
    )
    assert "read different things" in capsys.readouterr().err
    assert main(["ensemble", str(shipped / "sequence" / "crnn_wide"), "--out", str(tmp_path / "e")]) == 1
    assert "at least two" in capsys.readouterr().err
    assert main(["ensemble", str(shipped / "default"), str(shipped / "default"), "--shifts=-2,0,2", "--out", "e"]) == 1
    assert "--shifts is for sequence models" in capsys.readouterr().err


def test_ensemble_command_calibrates_the_shipped_members_again(tmp_path, mnist_path, capsys):
    import cv2

    from digitread.inference.sequence import SequenceReader

    shipped = Path(__file__).parents[1] / "src" / "digitread" / "weights" / "sequence"
    out = tmp_path / "ensemble"
    out.mkdir()
    (out / "stale.txt").write_text("replaced only once the new folder is complete")
    runs = [str(shipped / m) for m in json.loads((shipped / "members.json").read_text())["members"]]
    command = ["ensemble", *runs, "--out", str(out), "--strips", "300", "--data-dir", str(mnist_path)]
    assert main([*command, "--shifts=-2,0,2"]) == 0
    assert "views shifted [-2, 0, 2] pixels" in capsys.readouterr().out
    assert main([*command, "--shifts", "0,x"]) == 1 and "--shifts" in capsys.readouterr().err
    assert main([*command, "--shifts", "1,2"]) == 1 and "include 0" in capsys.readouterr().err
    assert not (out / "stale.txt").exists() and not list(tmp_path.glob(".ensemble.*"))
    listing = json.loads((out / "members.json").read_text())
    assert listing["shifts"] == [-2, 0, 2] and SequenceReader.from_pretrained(out).shifts == (-2, 0, 2)
    a, _ = listing["calibration"]["logistic"]
    assert a > 0 and listing["calibration"]["ece_after"] <= listing["calibration"]["ece_before"] + 0.02
    page = np.full((60, 200), 255, np.uint8)
    cv2.putText(page, "407", (20, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.3, 0, 3)
    from digitread.inference.strip import image_strip

    reading = SequenceReader.from_pretrained(out).read([image_strip(page)])[0]
    assert 0 < reading.confidence < 1


def test_shifted_views_move_rows_and_vote_like_members():
    from digitread.inference.sequence import SequenceReader, shift_rows

    x = torch.arange(2 * 1 * 6 * 3, dtype=torch.uint8).reshape(2, 1, 6, 3)
    down, up = shift_rows(x, 2), shift_rows(x, -1)
    assert torch.equal(down[:, :, 2:], x[:, :, :-2]) and not down[:, :, :2].any()
    assert torch.equal(up[:, :, :-1], x[:, :, 1:]) and not up[:, :, -1:].any()
    # A member that reads the same whatever the view: three views of it read like it alone. An unsure
    # strip is read again in all three views in one call; a sure one only once.
    strip = np.zeros((STRIP_HEIGHT, 12), np.uint8)
    for p2, batches in ((0.6, [1, 3]), (0.95, [1])):
        member = _CountingStrip(p2, 0.3 * (1 - p2))
        alone = SequenceReader(member, backend="torch").read([strip])[0]
        member.batches.clear()
        viewed = SequenceReader(member, backend="torch", shifts=(-2, 0, 2)).read([strip])[0]
        assert member.batches == batches
        assert (viewed.text, viewed.spans) == (alone.text, alone.spans)
        assert viewed.confidence == pytest.approx(alone.confidence, rel=1e-4)


class _CountingStrip(_FixedStrip):
    def __init__(self, p2: float, p7: float):
        super().__init__(p2, p7)
        self.batches: list[int] = []

    def forward(self, x, lengths):
        self.batches.append(x.shape[0])
        return super().forward(x, lengths)


@pytest.mark.parametrize("shifts", [(1, 2), (0, 0), (0, 9), (0, "a")])
def test_bad_shifts_are_refused_by_name(shifts):
    from digitread.errors import ConfigError
    from digitread.inference.sequence import SequenceReader

    with pytest.raises(ConfigError, match="shifts"):
        SequenceReader(_FixedStrip(0.9, 0.09), shifts=shifts)


def test_train_refuses_a_share_of_small_strips_outside_0_to_1(tmp_path, mnist_path, capsys):
    args = ["train", "--recipe", "strings", "--out", str(tmp_path / "run"), "--data-dir", str(mnist_path)]
    assert main([*args, "--small-strips", "1.5"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--small-strips" in err[0] and "0 to 1" in err[0]
    assert not (tmp_path / "run" / "config.json").exists()
    digits = ["train", "--recipe", "fast", "--out", str(tmp_path / "digits"), "--data-dir", str(mnist_path)]
    assert main([*digits, "--small-strips", "0.2"]) != 0
    assert "--task strings" in capsys.readouterr().err


def test_train_draws_touching_digits_and_pen_commas_as_often_as_asked_and_refuses_a_chance_outside_0_to_1(
    tmp_path, mnist_path, capsys
):
    import json

    from digitread.config import DataConfig

    # The option's default is the strips' own chance, which validation strips keep.
    assert DataConfig().touching_strips == StripConfig().touching
    args = ["train", "--task", "strings", "--model", "crnn_digits", "--data-dir", str(mnist_path)]
    args += ["--epochs", "1", "--batch-size", "16", "--strips-per-epoch", "32", "--workers", "0", "--val-strips", "40"]
    assert main([*args, "--out", str(tmp_path / "bad"), "--touching-strips", "1.5", "--quiet"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--touching-strips" in err[0] and "0 to 1" in err[0]
    assert main([*args, "--out", str(tmp_path / "bad"), "--pen-commas", "-0.1", "--quiet"]) != 0
    assert "--pen-commas is a chance, from 0 to 1" in capsys.readouterr().err
    run = [*args, "--out", str(tmp_path / "run"), "--touching-strips", "0.9", "--pen-commas", "0.5", "--quiet"]
    assert main(run) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["strips"]["touching"] == 0.9 and config["train"]["data"]["touching_strips"] == 0.9
    assert config["strips"]["pen_commas"] == 0.5 and config["train"]["data"]["pen_commas"] == 0.5
    capsys.readouterr()
    digits = ["train", "--recipe", "fast", "--out", str(tmp_path / "digits"), "--data-dir", str(mnist_path)]
    for option, value in (("--touching-strips", "0.6"), ("--pen-commas", "0.5")):
        assert main([*digits, option, value]) != 0
        assert "--task strings" in capsys.readouterr().err


def _comma_line(comma: str):
    """The mask of '67', a mark, then '70' (digits about 42 px tall, feet at 100)."""
    import cv2

    mask = np.zeros((170, 420), np.uint8)
    cv2.putText(mask, "67", (40, 100), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 4)
    cv2.putText(mask, "70", (230, 100), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 4)
    if comma == "pen comma":  # from under the digits' middle down well below the line, as pens write it
        cv2.line(mask, (200, 82), (190, 122), 255, 4)
    elif comma == "1 on the line":  # a short 1, standing on the line like the digits beside it
        cv2.line(mask, (200, 70), (195, 100), 255, 4)
    else:  # a 9 whose stem runs below the line: it begins at the digits' top
        cv2.circle(mask, (200, 70), 12, 255, 4)
        cv2.line(mask, (211, 72), (206, 125), 255, 4)
    return mask


@pytest.mark.parametrize("mark", ["pen comma", "1 on the line", "9 with a long stem"])
def test_a_pen_comma_reaching_below_the_line_is_a_mark_but_digits_are_not(mark, monkeypatch):
    from digitread.inference import segment as segment_module

    def middle_kind() -> str:
        [piece] = [p for p in _pieces(_comma_line(mark)) if 185 <= p.x <= 200]
        return piece.kind

    assert middle_kind() == ("comma" if mark == "pen comma" else "digit")
    monkeypatch.setattr(segment_module, "COMMA_DROP", 0.0)
    assert middle_kind() == "digit"


def test_a_digit_read_on_a_pen_comma_is_dropped_but_one_read_just_before_its_digit_is_not(monkeypatch):
    from digitread.inference import reader as reader_module
    from digitread.inference.segment import Line, Piece
    from digitread.inference.sequence import StripReading

    def piece(x: int, w: int, kind: str = "digit") -> Piece:
        return Piece(
            x, 10, w, 40 if kind == "digit" else 10, np.full((40 if kind == "digit" else 10, w), 255, np.uint8), kind
        )

    # "30,000" as pieces: the 3, the 0, a pen's comma, three zeros.
    pieces = [piece(0, 25), piece(30, 25), piece(60, 6, "comma"), piece(75, 25), piece(105, 25), piece(135, 25)]
    line = Line(pieces, 40.0)
    text, centres = "3010000", [5, 35, 58, 73, 80, 110, 140]  # the 1 spiked just before the comma
    probs = [np.eye(10)[int(c)] for c in text]
    result = StripReading(text, 0.5, [(0, 1)] * len(text), probs)
    kept, kept_centres = reader_module._off_the_commas(result, centres, line)
    # The 0 spiked 2 px before its piece, beside the comma: the next piece within the lead is the 0's.
    assert kept.text == "300000" and kept_centres == [5, 35, 73, 80, 110, 140]
    monkeypatch.setattr(reader_module, "COMMAS_NOT_DIGITS", 0)
    assert reader_module._off_the_commas(result, centres, line)[0].text == text
    # A dot is not judged so: it may be a broken stroke of the digit the spike read.
    monkeypatch.setattr(reader_module, "COMMAS_NOT_DIGITS", 1)
    pieces[2].kind = "dot"
    assert reader_module._off_the_commas(result, centres, line)[0].text == text


def test_pen_commas_reach_below_the_line_and_segmentation_finds_them(mnist):
    from digitread.data.strips import _pen_comma, compose_strip
    from digitread.inference.layout import find_lines

    for seed in range(20):
        mark, above = _pen_comma(40, 3, np.random.default_rng(seed))
        below = mark.shape[0] - above
        assert 0.15 * 40 <= above <= 0.5 * 40 + 4 and below >= 0.15 * 40

    # Strips of 7 digits with thousands separators (half of them commas), rendered and segmented as
    # the reader does: the pen commas are found as commas, the generator's small ones never.
    def commas_found(pen_commas: float) -> int:
        cfg = StripConfig(min_digits=7, separators=1.0, trailing=0, pen_commas=pen_commas)
        strips = [compose_strip(mnist.val.images, mnist.val.labels, np.random.default_rng(s), cfg) for s in range(12)]
        return sum(p.kind == "comma" for image, _ in strips for line in find_lines(image)[1] for p in line.pieces)

    assert commas_found(1.0) > 0 and commas_found(0.0) == 0
