import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from digitread.cli import build_parser, main
from digitread.data.synth import SynthConfig, make_numbers
from digitread.eval.reading import confidence_report, coverage_curve, edit_distance, score_readings
from digitread.inference.reader import MODES, DigitReader
from digitread.inference.results import parse_value

NUMBERS = sorted((Path(__file__).parents[1] / "examples" / "numbers").glob("*.png"))


@pytest.fixture(scope="module")
def reader():
    return DigitReader.from_pretrained()


def _expected(path: Path) -> str:
    return path.stem.split("_", 1)[1]


def test_the_example_numbers_are_read_exactly(reader):
    readings = reader.read_many(NUMBERS)
    assert [r.text for r in readings] == [_expected(p) for p in NUMBERS]
    assert readings[[p.stem for p in NUMBERS].index("temperature_-12.5")].value == -12.5


def test_comb_fields_are_read_without_the_teeth_between_their_boxes(mnist, monkeypatch):
    from digitread.data.synth import make_comb_fields
    from digitread.inference import preprocess

    # A form's row of printed boxes, one MNIST test digit in each: the teeth between boxes are as tall
    # as the digits and were read as 1s. Seeded: 31 of these 40 are read right, 11 with the teeth left in.
    fields = make_comb_fields(mnist.test.images, mnist.test.labels, 40, seed=8)
    reader = DigitReader.from_pretrained(one_number=True)
    right = {}
    for comb in (1, 0):
        monkeypatch.setattr(preprocess, "COMB_TEETH", comb)
        readings = reader.read_many([image for image, _ in fields])
        right[comb] = sum(r.text == e for r, (_, e) in zip(readings, fields, strict=True))
    assert right[1] >= 28 and right[0] <= 15, right


def test_in_comb_fields_the_classifier_is_weighed_in_where_each_box_holds_one_digit(mnist, monkeypatch):
    from digitread.data.synth import make_comb_fields
    from digitread.inference import reader as reader_module

    # Two comb fields of MNIST test digits whose 9 the sequence models read as a 7; the classifier,
    # reading the 9 alone in its box, is surer that it is a 9 than they are that it is a 7.
    fields = [
        make_comb_fields(mnist.test.images, mnist.test.labels, 20, seed=7)[19],
        make_comb_fields(mnist.test.images, mnist.test.labels, 101, seed=11)[100],
    ]
    assert [text for _, text in fields] == ["906", "0970456"]
    reader = DigitReader.from_pretrained(one_number=True)
    assert [r.text for r in reader.read_many([image for image, _ in fields])] == ["906", "0970456"]
    monkeypatch.setattr(reader_module, "COMB_JOINT", 0.0)
    assert [r.text for r in reader.read_many([image for image, _ in fields])] == ["706", "0770456"]


def test_reading_is_well_formed_and_json_ready(reader):
    image = cv2.imread(str(NUMBERS[0]), cv2.IMREAD_GRAYSCALE)
    reading = reader.read(image)
    data = json.loads(json.dumps(reading.to_dict()))
    assert data["text"] == reading.text and len(data["lines"]) == 1
    h, w = image.shape
    for d in reading.digits:
        x, y, bw, bh = d.box
        assert 0 <= d.confidence <= 1
        assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h, d.box
        assert all(c.isdigit() for c, _ in d.alternatives)


def test_light_ink_on_a_dark_board_reads_like_dark_ink_on_paper(reader):
    image = cv2.imread(str(NUMBERS[0]), cv2.IMREAD_GRAYSCALE)
    assert reader.read(255 - image).text == reader.read(image).text


def test_a_scan_whose_black_margin_outweighs_the_paper_reads_the_writing(reader):
    # A scanner's black margin beside a narrow strip of page: the paper is under half the image, so
    # "the background is what most pixels are" would take the margin for the board and the paper for ink.
    rng = np.random.default_rng(1)
    for path in NUMBERS[:3]:
        image = 255 - (255 - cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.int16)) // 2  # faint ink
        image = image.astype(np.uint8)
        grain = rng.normal(25, 12, (image.shape[0], int(1.4 * image.shape[1])))
        margin = cv2.GaussianBlur(np.clip(grain, 0, 255).astype(np.uint8), (0, 0), 1)
        assert reader.read(np.hstack([margin, image])).text == _expected(path)


def test_thick_chalk_filling_a_tight_crop_is_still_light_ink_on_a_board():
    from digitread.inference.preprocess import ink_is_dark

    board = np.full((60, 50), 40, np.uint8)
    cv2.putText(board, "0", (2, 55), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 230, 11)  # a third of the crop is chalk
    assert not ink_is_dark(board)
    assert ink_is_dark(255 - board)


def test_chalk_on_an_unevenly_lit_board_is_light_ink():
    from digitread.inference.preprocess import ink_is_dark

    # The board's light falls from one side to the other: Otsu's threshold splits it into a darker and a
    # lighter half, the lighter one as solid as paper; the chalk is what stands far above that half.
    board = np.tile(np.linspace(20, 140, 80), (90, 1)).astype(np.uint8)
    cv2.putText(board, "7", (18, 70), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 235, 4)
    assert not ink_is_dark(board)
    assert ink_is_dark(255 - board)


def test_single_digits_chalked_on_boards_are_read(reader, mnist):
    # One test digit per generated photo, every one light on a dark, unevenly lit board: with the light
    # half of the board taken for paper, 56 of these 60 were read right (one read empty).
    photos = make_numbers(
        mnist.test.images, mnist.test.labels, 60, seed=3, cfg=SynthConfig(1, 1, decimal_point=0, minus=0, invert=1.0)
    )
    texts = [r.text for r in reader.read_many([image for image, _ in photos])]
    assert sum(t == e for t, (_, e) in zip(texts, photos, strict=True)) >= 58


def test_a_blank_page_gives_an_empty_reading(reader):
    for blank in (np.full((200, 300), 230, np.uint8), np.random.default_rng(0).normal(200, 3, (200, 300))):
        reading = reader.read(np.clip(blank, 0, 255).astype(np.uint8))
        assert reading.text == "" and reading.value is None and reading.digits == []


def test_blank_paper_with_ruled_lines_texture_and_jpeg_reads_empty(reader):
    from digitread.data.synth import make_blank_pages

    # Blank pages as the generator makes them (lighting, grain, ruled lines in 3 of 10, blur, JPEG).
    # Ends of ruled lines and grain once came back as 7s and 1s: 11 of these 120 pages before lines
    # read whole were held to their calibrated confidence and digits to a legible height.
    read = [r.text for r in reader.read_many(make_blank_pages(120, seed=5)) if r.text]
    assert len(read) <= 3, read


def test_a_line_is_a_number_only_when_sure_per_digit_and_legibly_tall(reader):
    from digitread.inference.reader import MIN_DIGIT_HEIGHT
    from digitread.inference.results import DigitReading, LineReading

    def line(confidence: float, path: str, height: int = 30, digits: int = 1) -> LineReading:
        chars = [DigitReading("7", 0.9, (10 * k, 0, 8, height), []) for k in range(digits)]
        return LineReading("7" * digits, confidence, (0, 0, 10 * digits, height), chars, path)

    assert reader._is_number(line(0.9, "sequence"))
    # Each digit 0.9 sure at its surest column, the string 0.1 likely: not a number when read whole.
    assert not reader._is_number(line(0.1, "sequence"))
    assert reader._is_number(line(0.1, "sequence", digits=4))  # 0.56 per digit
    assert reader._is_number(line(0.1, "segment"))  # digit by digit, the digits' own confidences count
    assert not reader._is_number(line(0.9, "sequence", height=int(MIN_DIGIT_HEIGHT) - 1))
    assert reader._is_number(line(0.9, "sequence", height=int(MIN_DIGIT_HEIGHT)))
    low = line(0.9, "sequence", digits=2)
    low.digits[0].confidence = low.digits[1].confidence = 0.2  # the digits' mean is the lower measure
    assert not reader._is_number(low)


def _pale_number_beside_a_bold_word() -> np.ndarray:
    page = np.full((220, 360), 225, np.uint8)
    cv2.putText(page, "47", (60, 90), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 170, 3, cv2.LINE_AA)  # pale: 55 grey levels
    cv2.putText(page, "mum", (40, 180), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 2.2, 20, 6, cv2.LINE_AA)  # bold, no digits
    return np.clip(page + np.random.default_rng(0).normal(0, 2, page.shape), 0, 255).astype(np.uint8)


def test_a_faint_number_beside_bold_writing_is_found_by_a_second_look(reader):
    page = _pale_number_beside_a_bold_word()
    assert reader.read(page).text == "47"
    # Otsu's threshold falls between paper and the bold word, so the first look loses the pale digits.
    first_only = DigitReader(reader.classifier, sequence=reader.sequence, faint_look=False)
    assert first_only.read(page).text == ""


def test_only_images_read_empty_get_the_second_look_and_readings_keep_their_places(reader, monkeypatch):
    from digitread.inference import reader as reader_module

    number = cv2.imread(str(NUMBERS[0]), cv2.IMREAD_GRAYSCALE)
    looks = []
    real_find_lines = reader_module.find_lines

    def counting_find_lines(gray, threshold_scale=1.0, comb=None):
        looks.append((gray.shape, threshold_scale))
        return real_find_lines(gray, threshold_scale, comb)

    monkeypatch.setattr(reader_module, "find_lines", counting_find_lines)
    pale, blank = _pale_number_beside_a_bold_word(), np.full((120, 160), 230, np.uint8)
    readings = reader.read_many(iter([number, pale, blank]), ["number", "pale", "blank"])  # any iterable
    assert [r.source for r in readings] == ["number", "pale", "blank"]
    assert [scale for _, scale in looks] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert [shape for shape, scale in looks if scale == 0.0] == [pale.shape, blank.shape]  # not the number's
    assert readings[0].text == reader.read(number).text != "" and readings[1].text == "47" and readings[2].text == ""
    assert reader.read_many([]) == []


def test_two_lines_are_read_as_two_numbers(reader):
    top = cv2.imread(str(NUMBERS[0]), cv2.IMREAD_GRAYSCALE)
    bottom = cv2.imread(str(NUMBERS[1]), cv2.IMREAD_GRAYSCALE)
    width = max(top.shape[1], bottom.shape[1])
    page = np.vstack(
        [np.pad(im, ((0, 0), (0, width - im.shape[1])), constant_values=int(np.median(im))) for im in (top, bottom)]
    )
    reading = reader.read(page)
    assert [line.text for line in reading.lines] == [_expected(NUMBERS[0]), _expected(NUMBERS[1])]
    assert reading.value is None and reading.text == "\n".join(line.text for line in reading.lines)


def test_read_many_matches_one_by_one(reader):
    together = [r.text for r in reader.read_many(NUMBERS[:3])]
    assert together == [reader.read(p).text for p in NUMBERS[:3]]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4096", 4096),
        ("-12.5", -12.5),
        ("0042", 42),
        ("12,500", 12.5),
        ("1.250.000", 1250000),
        ("-1.250.000", -1250000),
        ("1.234.56", 1234.56),
        ("1,234,567.5", 1234567.5),
        ("9.03.2", None),
        ("1234.567.8", None),
        ("1.234.", None),
        ("", None),
        ("-", None),
    ],
)
def test_values_parse_from_text(text, value):
    assert parse_value(text) == value


def test_scores_count_exact_numbers_and_character_errors():
    assert edit_distance("1234", "124") == 1 and edit_distance("", "12") == 2
    score = score_readings(["123", "45"], ["123", "46"])
    assert score["exact"] == 0.5 and abs(score["char_accuracy"] - 0.8) < 1e-9


def test_confidence_report_says_how_many_are_accepted_at_each_bar_and_how_many_of_those_are_right():
    report = confidence_report([0.99, 0.95, 0.6, 0.3], [True, False, True, False], bars=(0.5, 0.9, 0.995))
    assert [a["accepted"] for a in report["accept"]] == [0.75, 0.5, 0.0]
    assert report["accept"][0]["exact_when_accepted"] == pytest.approx(2 / 3)
    assert report["accept"][1]["exact_when_accepted"] == 0.5 and report["accept"][2]["exact_when_accepted"] is None
    # 15 bins: 0.99 and 0.95 share one (half right at 0.97 sure), 0.6 right, 0.3 wrong.
    assert report["calibration_error"] == pytest.approx(0.5 * 0.47 + 0.25 * 0.4 + 0.25 * 0.3)
    sure = confidence_report([0.9] * 10, [True] * 9 + [False])
    assert sure["calibration_error"] == pytest.approx(0.0)


def test_coverage_curve_accepts_equally_sure_readings_together():
    covered, exact = coverage_curve([0.9, 0.5, 0.9, 0.1], [True, True, False, False])
    assert covered.tolist() == [0.5, 0.75, 1.0]
    assert exact.tolist() == pytest.approx([0.5, 2 / 3, 0.5])


def test_the_confidence_picture_is_written(tmp_path):
    from digitread.eval.report import plot_reading_confidence

    rng = np.random.default_rng(0)
    sets = {name: (rng.random(50).tolist(), (rng.random(50) < 0.8).tolist()) for name in ("a", "b")}
    plot_reading_confidence(sets, tmp_path / "confidence.png")
    picture = cv2.imread(str(tmp_path / "confidence.png"))
    assert picture is not None and picture.shape[1] > 800 and picture.std() > 10


def test_cli_read_prints_a_line_per_image_and_survives_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    code = main(["read", str(NUMBERS[0]), str(bad), str(NUMBERS[1]), "--annotate", str(tmp_path / "ann")])
    captured = capsys.readouterr()
    assert code == 1
    assert "bad.jpg" in captured.err and "Traceback" not in captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[1] == _expected(NUMBERS[0])
    expected = sorted(f"{p.stem}.annotated.png" for p in NUMBERS[:2])
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == expected


def test_cli_read_json_gives_every_detail_for_a_folder(capsys):
    assert main(["read", str(NUMBERS[0].parent), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(NUMBERS)
    assert {"text", "value", "confidence", "digits", "lines", "source"} <= set(rows[0])
    assert {"char", "confidence", "box", "alternatives", "uncertain"} <= set(rows[0]["digits"][0])


@pytest.mark.parametrize("shape", [(1, 1), (1, 100000), (100000, 1), (3, 5)])
def test_degenerate_image_sizes_give_a_reading_not_a_crash(reader, shape):
    image = np.full(shape, 255, np.uint8)
    image[..., : max(1, shape[-1] // 2)] = 0
    reading = reader.read(image)
    assert isinstance(reading.text, str) and 0 <= reading.confidence <= 1


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    from conftest import png_header_only

    from digitread.errors import ImageError
    from digitread.inference.io import load_image

    # A valid PNG header claiming 8,000 x 7,000 pixels (56 M: over digitread's limit, under Pillow's own
    # bomb check), with almost no data behind it: refused from the header, nothing decoded.
    with pytest.raises(ImageError, match="over the limit"):
        load_image(png_header_only(8_000, 7_000))


def test_zero_size_and_blank_single_digit_images_are_named_errors(tmp_path):
    from PIL import Image

    from digitread import DigitClassifier
    from digitread.errors import ImageError
    from digitread.inference.io import load_image

    with pytest.raises(ImageError, match="no pixels"):
        load_image(Image.new("L", (0, 5)))
    blank = tmp_path / "blank.png"
    Image.new("L", (30, 30), 255).save(blank)
    with pytest.raises(ImageError, match="blank.png: no ink"):
        DigitClassifier.from_pretrained().classify([str(blank)], [str(blank)])
    assert DigitClassifier.from_pretrained().classify(np.zeros((0, 28, 28), np.uint8)) == []


def test_annotations_never_overwrite_inputs_or_each_other(tmp_path, capsys):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.png").write_bytes(NUMBERS[0].read_bytes())
    assert main(["read", str(tmp_path / "a"), str(tmp_path / "b"), "--annotate", str(tmp_path / "a")]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["x.annotated-2.png", "x.annotated.png", "x.png"]
    assert (tmp_path / "a" / "x.png").read_bytes() == NUMBERS[0].read_bytes()


def test_read_refuses_a_batch_of_zero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["read", str(NUMBERS[0]), "--batch", "0"])
    assert exit_info.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_one_number_mode_keeps_the_most_prominent_line():
    amount, form = (next(p for p in NUMBERS if p.stem == stem) for stem in ("amount_1250", "form_507318"))
    big = cv2.imread(str(amount), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(cv2.imread(str(form), cv2.IMREAD_GRAYSCALE), None, fx=0.5, fy=0.5)
    small = np.pad(small, ((0, 0), (0, big.shape[1] - small.shape[1])), constant_values=int(np.median(small)))
    page = np.vstack([small, big])
    field_reader = DigitReader.from_pretrained(one_number=True)
    assert field_reader.read(page).text == _expected(amount)
    assert len(DigitReader(field_reader.classifier).read(page).lines) == 2
    # A short number above a longer line of smaller writing (a register's row number over a clerk's
    # notes): the field's number is the one written largest, not the line with the most digits.
    page = np.full((260, 420), 235, np.uint8)
    cv2.putText(page, "37", (150, 100), cv2.FONT_HERSHEY_SIMPLEX, 2.6, 30, 6, cv2.LINE_AA)
    cv2.putText(page, "19 4 1942 18", (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 1.1, 30, 3, cv2.LINE_AA)
    assert [line.text for line in DigitReader(field_reader.classifier).read(page).lines] == ["37", "194194218"]
    assert field_reader.read(page).text == "37"
    # But a lone stroke below a number, read as a 1 and taller than its digits, is not the field's number.
    page = np.full((300, 520), 235, np.uint8)
    cv2.putText(page, "4096", (60, 100), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 30, 5, cv2.LINE_AA)
    cv2.line(page, (250, 190), (250, 250), 30, 5)
    assert [line.text for line in DigitReader(field_reader.classifier).read(page).lines] == ["4096", "1"]
    assert field_reader.read(page).text == "4096"


def test_arrays_over_the_pixel_limit_are_refused():
    from digitread.errors import ImageError
    from digitread.inference.io import MAX_PIXELS, load_image

    side = int(MAX_PIXELS**0.5) + 1
    with pytest.raises(ImageError, match="over the limit"):
        load_image(np.broadcast_to(np.uint8(255), (side, side)))  # no memory spent: a broadcast view


@pytest.fixture(scope="module")
def readers(reader):
    return {mode: DigitReader(reader.classifier, sequence=reader.sequence, mode=mode) for mode in MODES}


def test_the_default_reader_runs_both_paths(reader):
    assert reader.mode == "auto" and reader.sequence is not None


def test_every_mode_reads_the_example_numbers(readers):
    for mode, r in readers.items():
        readings = r.read_many(NUMBERS)
        assert [x.text for x in readings] == [_expected(p) for p in NUMBERS], mode
        if mode != "auto":
            assert {line.path for x in readings for line in x.lines} == {mode}


def test_auto_keeps_the_whole_reading_unless_it_is_unsure_and_the_cut_one_surer(readers, mnist):
    from digitread.inference.reader import FALLBACK_BELOW

    images = [*NUMBERS, *_touching_numbers(mnist, 8)[0]]
    auto, segment, sequence = (readers[m].read_many(images) for m in ("auto", "segment", "sequence"))
    compared = 0
    for a, g, q in zip(auto, segment, sequence, strict=True):
        if len(g.lines) == len(q.lines) == 1:  # one line: the whole reading is that line's choice
            expected = g if q.confidence < FALLBACK_BELOW and g.confidence > q.confidence else q
            assert a.text == expected.text and a.confidence == pytest.approx(expected.confidence)
            compared += 1
    assert compared >= 10


def test_auto_falls_back_to_the_cut_reading_only_when_the_whole_one_is_very_likely_wrong():
    from digitread.inference.reader import FALLBACK_BELOW, _choose_reading
    from digitread.inference.results import LineReading

    def line(text, confidence, path):
        return LineReading(text, confidence, (0, 0, 1, 1), [], path)

    assert FALLBACK_BELOW == 0.02
    assert _choose_reading(line("12", 0.9, "segment"), line("17", 0.4, "sequence")).path == "sequence"
    assert _choose_reading(line("12", 0.9, "segment"), line("17", 0.05, "sequence")).path == "sequence"
    assert _choose_reading(line("12", 0.9, "segment"), line("17", 0.01, "sequence")).path == "segment"
    assert _choose_reading(line("12", 0.008, "segment"), line("17", 0.01, "sequence")).path == "sequence"
    assert _choose_reading(None, line("17", 0.1, "sequence")).path == "sequence"
    assert _choose_reading(line("12", 0.1, "segment"), None).path == "segment"
    # The CLI's help states the threshold (it does not import the reader to ask it): it must agree.

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    help_text = " ".join(subcommands.choices["read"].format_help().split())
    assert f"very likely wrong (under {FALLBACK_BELOW})" in help_text


def test_noise_is_read_empty_unless_the_whole_reading_gives_the_digit_path_a_say(reader, monkeypatch):
    from digitread.inference import reader as reader_module

    # Uniform noise: the sequence ensemble is sure no line of it holds a number, while the classifier
    # reads a speck of it as a sure 1. Below FALLBACK_BELOW auto asks the classifier.
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (300, 400), dtype=np.uint8) for _ in range(30)]
    readings = reader.read_many(noise)
    read = [r for r in readings if r.text]
    assert len(read) <= 8 and sum(r.confidence >= 0.5 for r in read) <= 2, [(r.text, r.confidence) for r in read]
    monkeypatch.setattr(reader_module, "FALLBACK_BELOW", 0.1)  # 19 of 30 read so, 5 of them 0.5 sure or more
    assert sum(bool(r.text) for r in reader.read_many(noise)) >= 12


def test_sequence_readings_have_boxes_inside_the_image_and_marks_from_segmentation(readers):
    image = cv2.imread(str(next(p for p in NUMBERS if "-12.5" in p.stem)), cv2.IMREAD_GRAYSCALE)
    reading = readers["sequence"].read(image)
    assert reading.text == "-12.5" and reading.lines[0].path == "sequence"
    h, w = image.shape
    xs = []
    for d in reading.digits:
        x, y, bw, bh = d.box
        assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h and bw > 0 and bh > 0, d.box
        xs.append(x)
    assert xs == sorted(xs)  # left to right, marks in place


def _touching_numbers(data, count: int):
    """Generated numbers (MNIST test digits) in which every digit touches the one before."""
    from digitread.data.strips import StripConfig, compose_strip

    rng = np.random.default_rng(99)
    cfg = StripConfig(min_digits=3, max_digits=6, touching=1.0, ligature=0.3, words=0, underline=0)
    samples = [compose_strip(data.test.images, data.test.labels, rng, cfg) for _ in range(count)]
    return [s for s, _ in samples], [label for _, label in samples]


def test_the_sequence_path_reads_touching_digits_better_than_cutting(readers, mnist):
    images, labels = _touching_numbers(mnist, 40)
    exact = {}
    for mode in ("segment", "sequence"):
        texts = [r.text.replace(".", "").replace("-", "") for r in readers[mode].read_many(images)]
        exact[mode] = sum(t == label for t, label in zip(texts, labels, strict=True)) / len(labels)
    assert exact["sequence"] >= exact["segment"] + 0.2, exact


def test_modes_are_checked(reader):
    from digitread.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown reading mode"):
        DigitReader(reader.classifier, sequence=reader.sequence, mode="whole")
    with pytest.raises(ConfigError, match="needs a sequence model"):
        DigitReader(reader.classifier, mode="sequence")
    assert DigitReader(reader.classifier).mode == "segment"


def test_cli_read_mode_segment_reports_its_path(capsys):
    assert main(["read", str(NUMBERS[0]), "--mode", "segment", "--jsonl"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["lines"][0]["path"] == "segment" and row["text"] == _expected(NUMBERS[0])


def test_a_sequence_reading_does_not_depend_on_its_batch(readers):
    many = readers["sequence"].read_many(NUMBERS)
    for path, reading in zip(NUMBERS, many, strict=True):
        alone = readers["sequence"].read(path)
        assert alone.text == reading.text and alone.confidence == pytest.approx(reading.confidence, rel=1e-5)


def test_cli_read_with_beam_decoding_reads_the_examples(capsys):
    assert main(["read", *map(str, NUMBERS), "--mode", "sequence", "--decoder", "beam", "--jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["text"] for row in rows] == [_expected(p) for p in NUMBERS]


def test_small_writing_is_prepared_again_at_a_size_where_strokes_have_pixels():
    import cv2

    from digitread.inference.layout import MIN_WRITING, find_lines

    page = np.full((240, 320), 235, np.uint8)
    cv2.putText(page, "4096", (120, 130), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 30, 1, cv2.LINE_AA)  # 13 px digits
    prepared, lines = find_lines(page)
    assert prepared.scale > 2  # worked on enlarged, boxes still map back to the page
    assert len(lines) == 1 and lines[0].height >= 0.8 * MIN_WRITING
    assert sum(p.kind == "digit" for p in lines[0].pieces) == 4
    big = np.full((240, 320), 235, np.uint8)
    cv2.putText(big, "4096", (40, 150), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 30, 4, cv2.LINE_AA)
    assert find_lines(big)[0].scale == 1.0  # writing big enough: no second pass


def test_an_enlarged_look_that_loses_the_writing_is_not_taken(monkeypatch):
    import cv2

    from digitread.inference import layout

    page = np.full((240, 320), 235, np.uint8)
    cv2.putText(page, "4096", (120, 130), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 30, 1, cv2.LINE_AA)
    real_prepare = layout.prepare

    def edge_joins_in_when_enlarged(gray, zoom=1.0, writing=0.0, threshold_scale=1.0, comb=None, tilt=True):
        prepared = real_prepare(gray, zoom, writing, threshold_scale, comb, tilt)
        if zoom > 1:  # what a page edge or a margin's border did on real scans: one piece far taller
            h, w = prepared.mask.shape
            prepared.mask[h // 4 : 3 * h // 4, w // 2 - 60 : w // 2 + 60] = 255
        return prepared

    monkeypatch.setattr(layout, "prepare", edge_joins_in_when_enlarged)
    prepared, lines = layout.find_lines(page)
    assert prepared.scale == 1.0  # the first look kept, faded strokes and all
    assert lines and max(line.height for line in lines) < layout.MIN_WRITING


@pytest.mark.parametrize("mode", ["auto", "segment", "sequence"])
def test_a_stick_1_drawn_at_the_pages_default_stroke_is_read(mode):
    import cv2

    page = np.full((300, 900), 255, np.uint8)  # the web page's canvas, ink 16 pixels wide
    cv2.line(page, (120, 60), (120, 240), 20, 16)  # 1, a plain vertical bar
    cv2.polylines(page, [np.array([[220, 60], [330, 60], [250, 240]])], False, 20, 16)  # 7
    cv2.ellipse(page, (440, 150), (50, 90), 0, 0, 360, 20, 16)  # 0
    cv2.polylines(page, [np.array([[620, 60], [560, 180], [680, 180]])], False, 20, 16)  # 4
    cv2.line(page, (650, 110), (650, 240), 20, 16)
    assert DigitReader.from_pretrained(mode=mode).read(page).text == "1704"


def test_auto_cuts_digits_only_on_lines_whose_whole_reading_is_unsure(readers):
    """A confidently read line never reaches the digit classifier in auto mode; segment mode uses it."""
    calls = []
    for mode in ("auto", "segment"):
        r = readers[mode]
        original = r.classifier.probabilities
        r.classifier.probabilities = lambda digits, _o=original, _m=mode: calls.append(_m) or _o(digits)
        try:
            reading = r.read(NUMBERS[0])
        finally:
            del r.classifier.probabilities  # back to the class's method
        assert reading.text == _expected(NUMBERS[0])
    whole = readers["sequence"].read(NUMBERS[0])
    assert whole.confidence >= 0.5  # the premise: this example reads surely as a whole line
    assert "auto" not in calls and "segment" in calls


def test_components_are_found_where_they_are_in_the_whole_image():
    from digitread.inference.segment import _components

    mask = np.zeros((200, 300), np.uint8)
    cv2.circle(mask, (220, 150), 12, 255, 3)
    cv2.rectangle(mask, (60, 40), (70, 90), 255, -1)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    expected = sorted(tuple(int(v) for v in stats[i][:4]) for i in range(1, count))
    pieces = _components(mask)
    assert sorted((p.x, p.y, p.w, p.h) for p in pieces) == expected
    for p in pieces:
        assert np.array_equal(p.mask > 0, mask[p.y : p.y2, p.x : p.x2] > 0)
    assert _components(np.zeros((50, 50), np.uint8)) == []


@pytest.mark.parametrize("shear", [0.3, -0.2, 0.0])
def test_the_slant_found_undoes_a_known_shear(shear):
    from digitread.inference.preprocess import _shear, estimate_slant

    bars = np.zeros((120, 300), np.uint8)
    for x in range(40, 280, 40):
        bars[20:100, x : x + 6] = 255
    sheared, _ = _shear(bars, shear, 60, cv2.INTER_NEAREST)
    assert estimate_slant(sheared) == pytest.approx(-shear, abs=1e-9)


def test_a_margin_wider_than_the_page_is_still_left_out():
    from digitread.inference.preprocess import _solid

    background = np.full((100, 250), 20, np.uint8)  # the page, on the ink-bright scale
    background[:, :150] = 225  # a black margin, 60% of the image
    solid = _solid(background, 11)
    assert solid is not None and solid[:, :150].all() and not solid[:, 160:].any()


def test_a_whole_line_reading_ends_at_the_last_digit_sized_piece():
    from digitread.inference.reader import _end_at_last_digit
    from digitread.inference.segment import Line, Piece
    from digitread.inference.sequence import StripReading

    def piece(x, w, h, kind):
        return Piece(x, 40 - h, w, h, np.full((h, w), 255, np.uint8), kind)

    # "230," : three digits 30 pixels tall, then a comma a third as tall, read as a fourth digit.
    line = Line(
        [piece(0, 20, 30, "digit"), piece(25, 20, 30, "digit"), piece(50, 20, 30, "digit"), piece(75, 5, 10, "dot")], 30
    )
    probs = [np.eye(10)[d] for d in (2, 3, 0, 1)]
    reading = StripReading("2301", 0.6, [(0, 4), (4, 8), (8, 12), (12, 16)], probs)
    kept, centres = _end_at_last_digit(reading, [8.0, 33.0, 58.0, 77.0], line)
    assert kept.text == "230" and centres == [8.0, 33.0, 58.0] and len(kept.spans) == len(kept.char_probs) == 3
    assert kept.confidence == 0.6 and kept.char_probs[2][0] == 1
    # A digit read on a digit-sized piece stays, wherever its spike sits on it; so does a line without marks.
    same, _ = _end_at_last_digit(reading, [8.0, 33.0, 58.0, 69.0], line)
    assert same.text == "2301"
    bare = Line(line.pieces[:3], 30)
    assert (
        _end_at_last_digit(StripReading("230", 0.9, reading.spans[:3], probs[:3]), [8.0, 33.0, 58.0], bare)[0].text
        == "230"
    )


def test_one_number_keeps_the_number_in_the_middle_of_the_field_over_a_bigger_one_at_its_edge(monkeypatch):
    import digitread.inference.reader as reader_module

    # A field cropped from a column of numbers: its own number in the middle, the row above's, written
    # bigger, cut into at the top.
    field = np.full((300, 220), 230, np.uint8)
    cv2.putText(field, "47", (50, 165), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 30, 4, cv2.LINE_AA)
    cv2.putText(field, "8", (80, 62), cv2.FONT_HERSHEY_SIMPLEX, 2.6, 30, 6, cv2.LINE_AA)
    reader = DigitReader.from_pretrained(one_number=True)
    assert DigitReader.from_pretrained().read(field).text.split("\n") == ["8", "47"]  # both are read
    assert reader.read(field).text == "47"
    monkeypatch.setattr(reader_module, "CENTRE_SPREAD", 0.0)  # largest and surest alone: the edge's 8
    assert reader.read(field).text == "8"


def _threshold_scales_read(monkeypatch) -> list[float]:
    """The threshold scale of every look the reader takes from now on (1: Otsu's; 0: the contrast floor)."""
    from digitread.inference import reader as reader_module

    scales = []
    real_find_lines = reader_module.find_lines

    def counting_find_lines(gray, threshold_scale=1.0, comb=None):
        scales.append(threshold_scale)
        return real_find_lines(gray, threshold_scale, comb)

    monkeypatch.setattr(reader_module, "find_lines", counting_find_lines)
    return scales


def test_numbers_read_unsure_are_read_again_at_other_thresholds_and_the_surest_kept(reader, mnist, monkeypatch):
    from digitread.data.strips import StripConfig, compose_strip
    from digitread.inference import reader as reader_module

    # Underlined numbers: where Otsu's threshold joins the underline, a stroke or a mark to the digits,
    # or breaks a thin stroke, another threshold often reads the number surely.
    rng = np.random.default_rng(41)
    cfg = StripConfig(min_digits=1, max_digits=4, underline=1.0, words=0)
    samples = [compose_strip(mnist.test.images, mnist.test.labels, rng, cfg) for _ in range(80)]
    images, labels = [s for s, _ in samples], [label for _, label in samples]
    one_view = DigitReader(reader.classifier, sequence=reader.sequence, threshold_views=False)
    scales = _threshold_scales_read(monkeypatch)
    views, plain = reader.read_many(images), one_view.read_many(images)
    exact = [sum(r.text == label for r, label in zip(rs, labels, strict=True)) for rs in (views, plain)]
    assert exact[0] >= exact[1] + 5, exact  # 47 and 38 of 80 when this was written
    # Only the readings under 1 - VIEW_MARGIN were read again, once per view, and none was made less sure
    # (an empty reading's confidence is 0: each of these strips has a few pieces, VIEW_EMPTY_PIECES).
    unsure = sum(r.confidence + reader_module.VIEW_MARGIN < 1.0 for r in plain)
    assert 0 < unsure < len(images)
    assert all(scales.count(s) == unsure for s in reader_module.VIEW_SCALES), (unsure, scales)
    assert all(v.confidence >= p.confidence for v, p in zip(views, plain, strict=True))


def test_images_read_empty_with_a_few_pieces_of_ink_are_read_at_the_other_thresholds_too(reader, mnist, monkeypatch):
    from digitread.eval.reading import digits_only
    from digitread.inference import reader as reader_module

    # Pale numbers beside a bold word that the first look and the second (at the contrast floor) leave
    # empty: one of these, a pale 1, is read at another threshold (bench/reading.py's faint_numbers).
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "bench"))
    from reading import faint_numbers

    samples = faint_numbers(mnist.test.images, mnist.test.labels, 100, seed=3)[80:]
    images, labels = [image for image, _ in samples], [label for _, label in samples]
    field = DigitReader(reader.classifier, one_number=True, sequence=reader.sequence)

    def exact() -> int:
        return sum(digits_only(r.text) == label for r, label in zip(field.read_many(images), labels, strict=True))

    with_views = exact()
    monkeypatch.setattr(reader_module, "VIEW_EMPTY", 0)
    assert with_views > exact(), with_views
    # Neither clutter (hundreds of pieces) nor a page with no ink at all is read again: reading grain
    # at three more thresholds would cost seconds.
    monkeypatch.setattr(reader_module, "VIEW_EMPTY", 1)
    scales = _threshold_scales_read(monkeypatch)
    noise = np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8)
    assert [r.text for r in reader.read_many([noise, np.full((120, 160), 230, np.uint8)])] == ["", ""]
    assert scales == [1.0, 1.0, 0.0, 0.0], scales


def test_auto_reads_the_other_threshold_views_whole_only(reader, mnist, monkeypatch):
    from digitread.data.strips import StripConfig, compose_strip
    from digitread.inference import reader as reader_module

    # Strips with pen underlines, where some views' whole readings are very unsure: the digit-by-digit
    # fallback may be consulted for the image as binarised first, never in the other views.
    rng = np.random.default_rng(43)
    cfg = StripConfig(min_digits=1, max_digits=4, underline=1.0, words=0)
    images = [compose_strip(mnist.test.images, mnist.test.labels, rng, cfg)[0] for _ in range(60)]
    consulted = {}  # threshold scale -> lines read digit by digit at it
    real_read_again, real_read_segmented = DigitReader._read_again, DigitReader._read_segmented
    scale = [1.0]

    def spy_read_again(self, images, names, combs, keys, threshold_scale, *args):
        scale[0] = threshold_scale
        try:
            return real_read_again(self, images, names, combs, keys, threshold_scale, *args)
        finally:
            scale[0] = 1.0

    def spy_read_segmented(self, keys, found):
        consulted[scale[0]] = consulted.get(scale[0], 0) + len(keys)
        return real_read_segmented(self, keys, found)

    monkeypatch.setattr(DigitReader, "_read_again", spy_read_again)
    monkeypatch.setattr(DigitReader, "_read_segmented", spy_read_segmented)
    assert reader_module.VIEW_FALLBACK == 0
    monkeypatch.setattr(reader_module, "FALLBACK_BELOW", 0.1)  # a higher bar: some view lines fall under it
    reader.read_many(images)
    assert set(consulted) >= set(reader_module.VIEW_SCALES), consulted  # every view was read
    assert all(consulted[s] == 0 for s in reader_module.VIEW_SCALES), consulted
    # With VIEW_FALLBACK the views consult it too, as the first reading does (the test can fail).
    consulted.clear()
    monkeypatch.setattr(reader_module, "VIEW_FALLBACK", 1)
    reader.read_many(images)
    assert sum(consulted[s] for s in reader_module.VIEW_SCALES) > 0, consulted


def _script_numbers_with_ones(count: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """Numbers in OpenCV's Hershey script, each with a 1 after its first digit: that 1 begins with an
    up-stroke from the baseline, glued to its foot."""
    rng = np.random.default_rng(seed)
    font, images, texts = cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, [], []
    for _ in range(count):
        digits = [str(d) for d in rng.integers(0, 10, int(rng.integers(3, 6)))]
        digits.insert(int(rng.integers(1, len(digits) + 1)), "1")
        text = "".join(digits)
        page = np.full((120, 60 * len(text) + 80), 255, np.uint8)
        x = 40
        for ch in text:
            cv2.putText(page, ch, (x, 90), font, 2.5, 0, int(rng.integers(3, 6)), cv2.LINE_AA)
            x += cv2.getTextSize(ch, font, 2.5, 4)[0][0] + int(rng.integers(0, 12))
        images.append(page)
        texts.append(text)
    return images, texts


def test_a_script_ones_lead_in_stroke_is_not_read_as_a_decimal_point(reader, monkeypatch):
    from digitread.inference import reader as reader_module

    images, texts = _script_numbers_with_ones(40, seed=3)
    kept = reader.read_many(images)
    monkeypatch.setattr(reader_module, "DROP_LEAD_IN_POINTS", 0)
    before = reader.read_many(images)
    exact = [sum(r.text == t for r, t in zip(rs, texts, strict=True)) for rs in (kept, before)]
    assert exact[0] >= exact[1] + 4, exact  # 40 and 32 of 40 when this was written
    assert not any("." in r.text for r in kept)


def _number_with_a_full_stop(number: str) -> np.ndarray:
    """``number`` in a thick pen, then a full stop on the line after it."""
    page = np.full((120, 60 + 45 * len(number)), 235, np.uint8)
    cv2.putText(page, number, (20, 85), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 20, 5)
    cv2.circle(page, (30 + 42 * len(number), 80), 5, 20, -1)
    return page


def test_a_full_stop_after_the_number_is_a_stop_but_a_small_last_digit_or_a_decimal_point_is_not():
    from digitread.inference.segment import Line, Piece, without_trailing_stops

    def piece(x, y, w, h, kind, loop=False):
        mask = np.full((h, w), 255, np.uint8)
        if loop:
            mask[2:-2, 2:-2] = 0
        return Piece(x, y, w, h, mask, kind)

    digits = [piece(0, 10, 20, 30, "digit"), piece(25, 10, 20, 30, "digit")]  # feet on the line at 40

    def view(*after):
        return without_trailing_stops(Line([*digits, *after], 30))

    # A round dot on the line, and a comma reaching below it (0.1 line heights or more): stops.
    assert [p.x for p in view(piece(50, 33, 7, 7, "dot")).pieces] == [0, 25]
    assert [p.x for p in view(piece(50, 30, 5, 14, "comma")).pieces] == [0, 25]
    # A last digit written small stands on the line and is larger than a stop, or has a loop.
    assert view(piece(50, 27, 8, 13, "dot")) is None
    assert view(piece(50, 33, 7, 7, "dot", loop=True)) is None
    # A point between digits, or a dash after them, is no stop.
    assert without_trailing_stops(Line([digits[0], piece(21, 36, 3, 4, "dot"), digits[1]], 30)) is None
    assert view(piece(50, 25, 12, 3, "dash")) is None


def test_a_line_ending_in_a_full_stop_is_read_again_without_it_when_that_reads_otherwise_and_surer(monkeypatch):
    import digitread.inference.reader as reader_module
    from digitread.inference.sequence import StripReading

    reader = DigitReader.from_pretrained(threshold_views=False)
    image = _number_with_a_full_stop("741")
    widths = []

    def read(strips, with_stop=("746", 0.7), without=("741", 0.85)):
        # The strip with the stop is the widest this image gives; the one without it is narrower.
        readings = []
        for strip in strips:
            widths.append(strip.shape[1])
            text, confidence = with_stop if strip.shape[1] == max(widths) else without
            step = (strip.shape[1] - 16) // 3
            spans = [(8 + k * step, 9 + k * step) for k in range(3)]
            readings.append(StripReading(text, confidence, spans, [np.eye(10)[int(c)] for c in text]))
        return readings

    monkeypatch.setattr(reader.sequence, "read", read)
    reading = reader.read(image)
    assert len(set(widths)) == 2, "the line was read twice: with its stop and without it"
    assert (reading.text, round(reading.confidence, 2)) == ("741", 0.85)
    monkeypatch.setattr(reader_module, "STOP_LOOK", 0)
    widths.clear()
    assert (reader.read(image).text, len(set(widths))) == ("746", 1)
    monkeypatch.setattr(reader_module, "STOP_LOOK", 1)
    # Not taken when it reads the same (only surer: that would only change which threshold's view wins),
    # nor when it is less sure.
    for without in (("746", 0.9), ("741", 0.6)):
        monkeypatch.setattr(reader.sequence, "read", lambda strips, without=without: read(strips, without=without))
        reading = reader.read(image)
        assert (reading.text, round(reading.confidence, 2)) == ("746", 0.7)
