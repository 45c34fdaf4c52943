"""DigitReader: an image with a handwritten number in, a Reading out.

load_image -> find_lines (prepare: polarity, lighting, binarise, rules; segment: components,
strokes, lines, marks; again enlarged for small writing) -> for each line, two readers:
- sequence: cut the line into a strip and read it whole with a CTC model (touching and cursive
  runs need no cutting); every line of every image in one batch;
- segment: normalise each piece MNIST-style and classify them all in one batch, then the candidate
  cuts of pieces that read badly whole in one more, and choose how to cut touching digits; in
  ``mode="auto"`` only for lines whose whole reading is unsure and those of comb fields, the only
  ones the choice consults;
-> keep the whole reading unless it is unsure and the cut one surer, or, in a comb field, both
   readers together prefer the cut one (``mode="auto"``) -> the Reading;
an image read empty is read once more, binarised at the contrast floor (pale writing beside bold ink);
an image read unsure is read again binarised above and below the usual threshold, the surest kept
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitread.errors import ConfigError, ImageError
from digitread.inference.io import ImageInput, load_image
from digitread.inference.layout import find_lines
from digitread.inference.normalize import fit_digit, saturate_ink, thicken_strokes
from digitread.inference.predictor import DigitClassifier
from digitread.inference.preprocess import Comb, Prepared
from digitread.inference.results import DigitReading, LineReading, Reading
from digitread.inference.segment import (
    DOTS,
    Line,
    Piece,
    split_candidates,
    without_trailing_stops,
    without_underline,
)
from digitread.inference.sequence import SequenceReader, StripReading
from digitread.inference.strip import Strip, boxes_from_alignment, line_strip

MODES = ("auto", "segment", "sequence")
# Auto consults the digit-by-digit reading only under this whole-line confidence. 0.1, 0.05, 0.02 and 0
# read every validation set and real scan alike (bench/validation.py, 2,100 validation readings, 1,779
# right each); under 0.02 the ensemble is sure the line holds no number, and the classifier, which
# reads specks of noise as sure 1s, read 19 of 30 uniform-noise images at 0.1, 4 at 0.02.
FALLBACK_BELOW = 0.02
# In a comb field each box holds one digit, so the digit-by-digit reading's pieces are the digits, and
# the classifier reads each as well as it reads MNIST: where its reading differs from the whole-line
# one, both are scored by both readers, the sequence models' log P(text) plus COMB_JOINT times the
# classifier's log probability of the text's digits, and the higher sum wins (``_weigh_in_combs``).
# Validation (bench/validation.py): comb fields 87.67 -> 89.67% at 0.5 (7 read right that were not, 1
# the other way; 1.0 the same share, 10 changed), every other set unchanged. Weighing every line so,
# not only comb fields', read tilted photos and comb fields better but underlined strips, pale numbers
# and fields worse (the digit-by-digit pieces hold underlines and lose faint strokes; docs/reading.md).
# 0: comb fields are read as any other line.
COMB_JOINT = 0.5
UNDERLINE_LOOK_BELOW = 0.5  # a line read less surely than this is read again without its pen underline
# The second look at an image read empty (binarised at the contrast floor) is kept from this confidence
# up: chosen on validation sets of pale numbers beside bold writing, letters and blank paper.
FAINT_LOOK_SURE = 0.5
# An image read less surely than 1 - VIEW_MARGIN is read again binarised at these multiples of Otsu's
# threshold, and the surest reading wins when it is surer by VIEW_MARGIN (``_look_at_other_thresholds``).
VIEW_SCALES = (0.6, 0.8, 1.25)
VIEW_MARGIN = 0.1
# Whether auto's digit-by-digit fallback (FALLBACK_BELOW) is consulted in those other views too. It is
# not: where a threshold lets the paper's pattern into the ink, the sequence models find nearly nothing
# and the digit-by-digit path can read the blobs surely (a cheque's guilloche at 0.6 times Otsu's
# threshold read "8888" at 0.6), and each view is one more chance for such a reading to win.
# Validation (bench/validation.py): strips 86.0 -> 86.5%, underlined strips 77.0 -> 77.5%, the other
# sets unchanged; 1 consults it (docs/reading.md).
VIEW_FALLBACK = 0
# Whether an image read empty even by the second look (at the contrast floor) is read in those views too,
# when its first look found some ink, and no more than VIEW_EMPTY_PIECES pieces of it (a field whose
# faint writing one threshold lost, not clutter: grain and texture give hundreds, and reading them
# three more times would cost seconds); a view's reading of it is kept from FAINT_LOOK_SURE up, as the
# second look's is.
VIEW_EMPTY = 1
VIEW_EMPTY_PIECES = 50
# A dot the segmentation found is a decimal point in the whole-line reading too when it looks like one
# (round, filled, pen-sized); 0 leaves the points to the sequence model alone.
PEN_POINT = 1
# A point the sequence model read just before a 1, where the segmentation found no dot of its own, is
# dropped: it is the 1's lead-in, an up-stroke from the baseline glued to its foot (script hands; the
# example tools' Hershey script, whose 1s read "35.19" for 3519 in 33 of 300 photos). The line's
# confidence stays the model's, that of the string with the point. 0 keeps such points (docs/reading.md).
DROP_LEAD_IN_POINTS = 1
# A digit the sequence model read on a pen's comma (``segment._pen_commas``) is the comma read as a digit,
# and dropped. A spike comes on its digit or a little before it: COMMA_SPIKE_LEAD line heights before a
# piece count as on it. 0 keeps such digits (docs/reading.md).
COMMAS_NOT_DIGITS = 1
COMMA_SPIKE_LEAD = 0.25
# A line that ends in a full stop or comma is read again without it (``_read_whole``); 0 does not.
# Validation (bench/validation.py): 3 more of the 400 comma strips read right, the other sets unchanged.
STOP_LOOK = 1
# Digits under this many pixels tall (median of a line's, in the image as given) are not writing
# anyone could read: specks of paper grain or what is left of a ruled line's ends. Chosen on validation
# strips (4 read one fewer than 5 and 6; of those two, 5 loses less where validation digits are shrunk
# until their boxes are 4-8 pixels tall).
MIN_DIGIT_HEIGHT = 5.0

# A handwritten digit is rarely wider than it is tall; wider pieces are probably digits that touch.
SPLIT_ASPECT = 1.0
# Expected width of one digit, as a share of the line height, when guessing how many digits touch.
DIGIT_WIDTH = 0.62
MAX_PARTS = 4
# Splitting: a piece narrower than KEEP_WHOLE digit widths that reads well whole stays whole; otherwise
# each cut is scored by the classifier and a Gaussian prior (spread COUNT_SPREAD) on the digit count.
KEEP_WHOLE = 1.15
COUNT_SPREAD = 0.8


@dataclass
class _Option:
    """One way to read a piece: as these sub-pieces, each a row in the batch of fields."""

    pieces: list[Piece]
    rows: list[int]


class DigitReader:
    """Read handwritten numbers from photos and scans.

    >>> reader = DigitReader.from_pretrained()  # the model shipped in the package
    >>> reading = reader.read("meter.jpg")  # doctest: +SKIP
    >>> reading.text, reading.value, reading.confidence  # doctest: +SKIP
    ('4096', 4096, 0.97)
    """

    def __init__(
        self,
        classifier: DigitClassifier,
        min_confidence: float = 0.5,
        reject_below: float = 0.25,
        one_number: bool = False,
        sequence: SequenceReader | None = None,
        mode: str | None = None,
        faint_look: bool = True,
        threshold_views: bool = True,
    ):
        """``min_confidence``: digits below it are marked uncertain. ``reject_below``: a line read less surely
        than this per digit (``_is_number``) is not a number (text, scribbles, clutter) and is dropped.
        ``one_number``: the image is a field holding one number (a form box, a cheque amount, a register
        cell); keep only its most prominent line, the one whose digits are largest and surest, nearest
        the field's middle (``CENTRE_SPREAD``).
        ``mode``: ``segment`` reads digit by digit, ``sequence`` reads each line whole with the
        ``sequence`` model, ``auto`` runs both and keeps, per line, the whole-line reading unless it is
        very likely wrong and the digit-by-digit one is surer (``_choose_reading``);
        by default ``auto`` when a sequence model is given, else ``segment``.
        ``faint_look``: an image read empty is read again, binarised at the contrast floor, for pale
        writing that bolder ink put under the usual threshold (``read_many``). ``threshold_views``: an
        image read unsure is read again binarised above and below the usual threshold, and the surest
        reading kept (``_look_at_other_thresholds``)."""
        mode = mode or ("auto" if sequence is not None else "segment")
        if mode not in MODES:
            raise ConfigError(f"unknown reading mode {mode!r}; choose {', '.join(MODES)}")
        if mode != "segment" and sequence is None:
            raise ConfigError(f"mode {mode!r} needs a sequence model; pass sequence= or use mode='segment'")
        self.classifier = classifier
        self.sequence = sequence
        self.mode = mode
        self.min_confidence = min_confidence
        self.reject_below = reject_below
        self.one_number = one_number
        self.faint_look = faint_look
        self.threshold_views = threshold_views

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        device: str | None = None,
        sequence_path: str | Path | None = None,
        mode: str = "auto",
        decoder: str = "greedy",
        backend: str = "auto",
        **kwargs,
    ) -> DigitReader:
        """The shipped models, or the model folders given; the sequence model is loaded only if ``mode``
        needs it, and decodes with ``decoder`` (greedy or beam). ``backend`` runs both models: ``torch``,
        ``onnx`` (ONNX Runtime) or ``auto`` (ONNX Runtime on the CPU when installed, ``inference.backends``)."""
        if mode not in MODES:
            raise ConfigError(f"unknown reading mode {mode!r}; choose {', '.join(MODES)}")
        classifier = DigitClassifier.from_pretrained(path, device=device, backend=backend)
        sequence = None
        if mode != "segment":
            sequence = SequenceReader.from_pretrained(sequence_path, device=device, decoder=decoder, backend=backend)
        return cls(classifier, sequence=sequence, mode=mode, **kwargs)

    def read(self, image: ImageInput, name: str | None = None) -> Reading:
        return self.read_many([image], [name])[0]

    def read_many(self, images: Sequence[ImageInput], names: Sequence[str | None] | None = None) -> list[Reading]:
        """Read several images; each model runs once over the pieces or lines of all of them, and once
        more over the images read empty, which are loaded again for a second look (``faint_look``)."""
        images = list(images)  # each is read twice when nothing is found in it the first time
        names = list(names) if names is not None else [None] * len(images)
        found = [find_lines(load_image(image, name)) for image, name in zip(images, names, strict=True)]
        pieces = [sum(len(line.pieces) for line in lines) for _, lines in found]
        readings = self._read_found(found, names)
        combs = [prepared.comb for prepared, _ in found]  # the later looks take out the same comb
        del found  # images can be large; the looks below load them again
        # An image where nothing was read is looked at again, binarised at the contrast floor instead of
        # Otsu's threshold: pale writing beside bolder ink (a faint row number beside a clerk's bold
        # notes) falls under the threshold the bold ink sets. Paper texture and clutter also come
        # through at that floor, so the look's reading is kept only when it is sure.
        empty = [k for k, reading in enumerate(readings) if not reading.text] if self.faint_look else []
        for k, reading in zip(empty, self._read_again(images, names, combs, empty, 0.0), strict=True):
            if reading.text and reading.confidence >= FAINT_LOOK_SURE:
                readings[k] = reading
        if self.threshold_views:
            self._look_at_other_thresholds(images, names, combs, readings, pieces)
        return readings

    def _read_again(
        self,
        images: list[ImageInput],
        names: list[str | None],
        combs: list[Comb | None],
        keys: list[int],
        threshold_scale: float,
        fallback: bool = True,
    ) -> list[Reading]:
        """The images ``keys`` names, loaded again and read binarised at ``threshold_scale`` times Otsu's
        threshold, in one batch, with the comb fields their first look found. Images are loaded again
        rather than kept: they can be large."""
        if not keys:
            return []
        found = [find_lines(load_image(images[k], names[k]), threshold_scale, combs[k]) for k in keys]
        return self._read_found(found, [names[k] for k in keys], fallback)

    def _look_at_other_thresholds(
        self,
        images: list[ImageInput],
        names: list[str | None],
        combs: list[Comb | None],
        readings: list[Reading],
        pieces: list[int],
    ) -> None:
        """Read the images read with text but unsure again, binarised at each of VIEW_SCALES times Otsu's
        threshold, and put the surest reading in ``readings`` where it is surer by VIEW_MARGIN; likewise
        the images read empty whose first look found a few pieces (``pieces``, VIEW_EMPTY), where the
        surest reading is kept from FAINT_LOOK_SURE up.

        One threshold for a whole image can be wrong for its number: bold ink elsewhere raises it and
        breaks a pale number's thin strokes (a 3 read 2, half a 0 read 6); pale paper lowers it and
        glues strokes and marks into the digits. The calibrated confidence tells the views apart. A
        reading at 1 - VIEW_MARGIN or surer could never be beaten, so it is not read again; an unsure
        one costs a reading per view, all the unsure images in one batch a view. In auto mode a view's
        lines are read whole only, unless VIEW_FALLBACK.
        """
        unsure = [
            k
            for k, r in enumerate(readings)
            if (r.text and r.confidence + VIEW_MARGIN < 1.0)
            or (not r.text and VIEW_EMPTY and 0 < pieces[k] <= VIEW_EMPTY_PIECES)
        ]
        surest = {k: readings[k] for k in unsure}
        for scale in VIEW_SCALES if unsure else ():
            views = self._read_again(images, names, combs, unsure, scale, bool(VIEW_FALLBACK))
            for k, reading in zip(unsure, views, strict=True):
                if reading.text and reading.confidence > surest[k].confidence:
                    surest[k] = reading
        for k, reading in surest.items():
            bar = readings[k].confidence + VIEW_MARGIN if readings[k].text else FAINT_LOOK_SURE
            if reading.text and reading.confidence > bar:
                readings[k] = reading

    def _read_found(
        self, found: list[tuple[Prepared, list[Line]]], names: list[str | None], fallback: bool = True
    ) -> list[Reading]:
        """Readings of prepared images and their lines (``layout.find_lines``); ``fallback`` False: auto
        keeps the whole-line readings, however unsure."""
        wholes, strips = self._read_whole(found) if self.mode != "segment" else ({}, {})
        weigh = self.mode == "auto" and fallback and COMB_JOINT > 0
        # The digit-by-digit reading, only for the lines that need it: in auto mode, those whose whole
        # reading is unsure (all that _choose_reading would consult it for), and those of comb fields.
        segmented = self._read_segmented(
            [
                (i, j)
                for i, (prepared, lines) in enumerate(found)
                for j in range(len(lines))
                if self.mode == "segment"
                or (self.mode == "auto" and fallback and wholes[i, j].confidence < FALLBACK_BELOW)
                or (weigh and prepared.comb is not None)
            ],
            found,
        )
        if weigh:
            self._weigh_in_combs(wholes, segmented, strips, found)
        readings = []
        for i, ((prepared, lines), name) in enumerate(zip(found, names, strict=True)):
            chosen = [_choose_reading(segmented.get((i, j)), wholes.get((i, j))) for j in range(len(lines))]
            chosen = [line for line in chosen if self._is_number(line)]
            if self.one_number and len(chosen) > 1:
                # The most prominent line, weighed by how near the middle it stands (CENTRE_SPREAD).
                height = prepared.original_shape[0]
                chosen = [max(chosen, key=lambda line: _prominence(line) * _centred(line, height))]
            readings.append(Reading.from_lines(chosen, name))
        return readings

    def _read_whole(
        self, found: list[tuple[Prepared, list[Line]]]
    ) -> tuple[dict[tuple[int, int], LineReading], dict[tuple[int, int], Strip]]:
        """(image, line) -> the whole-line reading, and the strip it was read from; the sequence model
        reads every line of every image at once.

        Two other views of a line are read, each in one more batch, and a view's reading replaces the
        line's when it is surer; neither is sure to be right where it applies, so neither stands alone:
        - a line read unsure (under UNDERLINE_LOOK_BELOW) that holds a pen underline, with the underline
          cut off and the ink under it (a clerk's cross) left out, so the strip is not shrunk to fit them
          (``segment.without_underline``); the cut can also take the foot off a digit;
        - a line that ends in a full stop or comma, without it (``segment.without_trailing_stops``,
          STOP_LOOK), when the reading differs: the stop changes how the digit before it is read, but a
          small last digit can pass for a stop. The same reading, surer, is not taken: the
          surer figure would only change which threshold's view of the image wins.
        """
        lines = [((i, j), line) for i, (_, image_lines) in enumerate(found) for j, line in enumerate(image_lines)]
        wholes, strips = {}, {}
        for ((i, j), line), (strip, result) in zip(lines, self._read_strips(found, lines), strict=True):
            wholes[i, j], strips[i, j] = self._assemble_sequence(line, strip, result, found[i][0]), strip
        unsure = [(k, line) for k, line in lines if wholes[k].confidence < UNDERLINE_LOOK_BELOW]
        views = [(k, view) for k, line in unsure if (view := without_underline(line)) is not None]
        for ((i, j), view), (strip, result) in zip(views, self._read_strips(found, views), strict=True):
            if result.confidence > wholes[i, j].confidence:
                wholes[i, j], strips[i, j] = self._assemble_sequence(view, strip, result, found[i][0]), strip
        stopped = [(k, view) for k, line in lines if STOP_LOOK and (view := without_trailing_stops(line)) is not None]
        for ((i, j), _), (strip, result) in zip(stopped, self._read_strips(found, stopped), strict=True):
            # Assembled with the line's own pieces: the stops are marks after the number, which it drops.
            reading = self._assemble_sequence(found[i][1][j], strip, result, found[i][0])
            if reading.text != wholes[i, j].text and reading.confidence > wholes[i, j].confidence:
                wholes[i, j], strips[i, j] = reading, strip
        return wholes, strips

    def _weigh_in_combs(
        self,
        wholes: dict[tuple[int, int], LineReading],
        segmented: dict[tuple[int, int], LineReading],
        strips: dict[tuple[int, int], Strip],
        found: list[tuple[Prepared, list[Line]]],
    ) -> None:
        """In comb fields, where a line's two readings differ and the digit-by-digit one read each piece
        whole as one digit (its box), each reading is scored by both readers and the higher sum replaces
        the whole reading in ``wholes``: the sequence models' log P(text) of the strip it was read from
        (``SequenceReader.score``), plus COMB_JOINT times the classifier's log probability of its digits,
        piece by piece (for the whole reading's digits, what the classifier gave them there)."""
        keys = []
        for k, cut in segmented.items():
            prepared, lines = found[k[0]]
            digits = sum(c.char.isdigit() for c in cut.digits)
            if (
                prepared.comb is not None
                and k in wholes
                and _spelled(cut) != _spelled(wholes[k])
                and digits == sum(p.kind == "digit" for p in lines[k[1]].pieces)  # no piece was cut
                and digits == sum(c.char.isdigit() for c in wholes[k].digits)
            ):
                keys.append(k)
        if not keys:
            return
        scores = self.sequence.score(
            [strips[k].image for k in keys], [[_spelled(segmented[k]), _spelled(wholes[k])] for k in keys]
        )
        for k, (cut_score, whole_score) in zip(keys, scores, strict=True):
            cut_digits = [c for c in segmented[k].digits if c.char.isdigit()]
            whole_digits = [c.char for c in wholes[k].digits if c.char.isdigit()]
            cut_log = sum(np.log(_probability_of(c.char, c)) for c in cut_digits)
            whole_log = sum(np.log(_probability_of(ch, c)) for ch, c in zip(whole_digits, cut_digits, strict=True))
            if cut_score + COMB_JOINT * cut_log > whole_score + COMB_JOINT * whole_log:
                wholes[k] = segmented[k]

    def _read_strips(
        self, found: list[tuple[Prepared, list[Line]]], lines: list[tuple[tuple[int, int], Line]]
    ) -> list[tuple[Strip, StripReading]]:
        """The strips of ``lines`` ((image, line) -> a line or a view of it) and the sequence model's
        readings of them, in one batch."""
        strips = [line_strip(found[i][0], line) for (i, _), line in lines]
        results = self.sequence.read([s.image for s in strips]) if strips else []
        return list(zip(strips, results, strict=True))

    def _read_segmented(
        self, keys: list[tuple[int, int]], found: list[tuple[Prepared, list[Line]]]
    ) -> dict[tuple[int, int], LineReading]:
        """Digit-by-digit readings of the lines ``keys`` names (image, line): whole pieces first, in one
        batch; then, in one more batch, candidate cuts of the pieces that do not read well whole."""
        fields: list[np.ndarray] = []
        plans = {(i, j): self._plan_line(found[i][1][j], found[i][0], fields) for i, j in keys}
        probs = self._classify(fields)
        whole_fields = len(fields)
        for (i, j), plan in plans.items():
            self._add_cuts(found[i][1][j], plan, probs, found[i][0], fields)
        if len(fields) > whole_fields:
            probs = np.concatenate([probs, self._classify(fields[whole_fields:])])
        return {(i, j): self._assemble(found[i][1][j], plan, probs, found[i][0]) for (i, j), plan in plans.items()}

    def _is_number(self, line: LineReading) -> bool:
        """Whether a line reads as a number: digits of a legible size, sure enough per digit. For a line
        read digit by digit that is the geometric mean of its digits' confidences; for a line read whole,
        the lower of that and the string's calibrated confidence per digit (its n-th root; n counts
        the digits, not points or marks, which errs towards keeping), the same measure for the whole
        line: the confidence at a digit's surest column can be high where the string is improbable (a
        stroke of a ruled line read '7' at 0.1 on blank paper)."""
        digits = [d for d in line.digits if d.char.isdigit()]
        if not digits or float(np.median([d.box[3] for d in digits])) < MIN_DIGIT_HEIGHT:
            return False
        sure = float(np.exp(np.mean(np.log(np.maximum([d.confidence for d in digits], 1e-9)))))
        if line.path == "sequence":
            sure = min(sure, line.confidence ** (1 / len(digits)))
        return sure >= self.reject_below

    # ---- planning: every field any option needs goes into one batch ----

    def _field(self, piece: Piece, prepared: Prepared) -> np.ndarray:
        crop = prepared.ink[piece.y : piece.y2, piece.x : piece.x2]
        crop = saturate_ink(np.where(piece.mask > 0, np.maximum(crop, 1), 0).astype(np.uint8))
        try:
            return thicken_strokes(fit_digit(crop))
        except ImageError:
            return np.zeros((28, 28), np.uint8)

    def _classify(self, fields: list[np.ndarray]) -> np.ndarray:
        return self.classifier.probabilities(np.stack(fields)) if fields else np.zeros((0, 10), np.float32)

    def _whole(self, piece: Piece, prepared: Prepared, fields: list[np.ndarray]) -> _Option:
        fields.append(self._field(piece, prepared))
        return _Option([piece], [len(fields) - 1])

    def _plan_line(self, line: Line, prepared: Prepared, fields: list[np.ndarray]) -> list:
        """Each piece of ``line`` with its options; at first only the piece read whole (``_add_cuts``)."""
        return [
            (piece, [self._whole(piece, prepared, fields)] if piece.kind == "digit" else []) for piece in line.pieces
        ]

    def _add_cuts(
        self, line: Line, plan: list, probs: np.ndarray, prepared: Prepared, fields: list[np.ndarray]
    ) -> None:
        """Candidate cuts for the pieces of ``line`` that may be touching digits, unless the piece is
        narrower than KEEP_WHOLE digits of this writer and reads well whole (``probs``): then it stays
        whole, and ``_choose`` has only the one option."""
        digit_width = _digit_width(line)
        for piece, options in plan:
            if not options or not (piece.w > SPLIT_ASPECT * piece.h or piece.w > 1.1 * line.height):
                continue
            if piece.w / digit_width < KEEP_WHOLE and probs[options[0].rows[0]].max() >= 0.5:
                continue
            expected = piece.w / (DIGIT_WIDTH * line.height)
            rows: dict[tuple[int, int], int] = {}  # candidate cuts share many slices: each is classified once
            for parts in range(2, min(MAX_PARTS, math.ceil(expected) + 1) + 1):
                for candidate in split_candidates(piece, parts):
                    for p in candidate:
                        if (p.x, p.w) not in rows:
                            rows[p.x, p.w] = len(fields)
                            fields.append(self._field(p, prepared))
                    options.append(_Option(candidate, [rows[p.x, p.w] for p in candidate]))

    # ---- assembling: pick the best option per piece, then marks and text ----

    def _choose(self, options: list[_Option], probs: np.ndarray, piece: Piece, digit_width: float) -> _Option:
        """The piece whole when it has no cuts (``_add_cuts`` decided it stays whole); otherwise each
        option weighed by how likely its digits are (the classifier) and how likely that many digits
        are at this width (a prior): the classifier alone is too happy with fragments."""
        if len(options) == 1:
            return options[0]
        expected = piece.w / digit_width

        def score(option: _Option) -> float:
            k = len(option.pieces)
            likelihood = float(np.log(probs[option.rows].max(axis=1) + 1e-6).sum())
            return likelihood - (k - expected) ** 2 / (2 * COUNT_SPREAD**2 * max(1.0, expected))

        return max(options, key=score)

    def _digit(self, piece: Piece, p: np.ndarray, prepared: Prepared) -> DigitReading:
        order = np.argsort(-p)
        best = int(order[0])
        alternatives = [(str(int(c)), float(p[c])) for c in order[1:3]]
        return DigitReading(
            str(best),
            float(p[best]),
            prepared.to_original(piece.x, piece.y, piece.w, piece.h),
            alternatives,
            uncertain=float(p[best]) < self.min_confidence,
        )

    def _assemble(self, line: Line, plan, probs: np.ndarray, prepared: Prepared) -> LineReading:
        items: list[DigitReading | tuple[str, Piece]] = []
        digit_width = _digit_width(line)
        for piece, options in plan:
            if not options:
                items.append((piece.kind, piece))
                continue
            chosen = self._choose(options, probs, piece, digit_width)
            items.extend(
                self._digit(p, probs[row], prepared) for p, row in zip(chosen.pieces, chosen.rows, strict=True)
            )
        chars = _with_marks(items, line, prepared)
        digits = [c for c in chars if c.char.isdigit()]
        confidence = float(np.prod([d.confidence for d in digits])) if digits else 0.0
        return _line_reading(chars, confidence, "segment")

    def _assemble_sequence(self, line: Line, strip: Strip, result: StripReading, prepared: Prepared) -> LineReading:
        """The sequence model's digits, boxed by where CTC read them (``boxes_from_alignment``), with the
        line's marks placed among them by position."""
        centres = [sum(strip.to_working(a, b)) / 2 for a, b in result.spans]
        result, centres = _end_at_last_digit(result, centres, line)
        result, centres = _off_the_commas(result, centres, line)
        items: list[tuple[float, DigitReading | tuple[str, Piece]]] = []
        digits = [(ch, c, p) for ch, c, p in zip(result.text, centres, result.char_probs, strict=True) if ch != "."]
        boxes = boxes_from_alignment(line, [c for _, c, _ in digits]) if digits else []
        for (char, _, p), (x0, y0, x1, y1) in zip(digits, boxes, strict=True):
            best = int(char)
            order = [int(c) for c in np.argsort(-p) if int(c) != best][:2]
            digit = DigitReading(
                char,
                float(p[best]),
                prepared.to_original(x0, y0, x1 - x0, y1 - y0),
                [(str(c), float(p[c])) for c in order],
                uncertain=float(p[best]) < self.min_confidence,
            )
            items.append(((x0 + x1) / 2, digit))
        # Points the model read (a model with a point class) go between the digits they were read between:
        # a CTC spike's column is not a box centre, and an early one would sort before its digit.
        middles = [x for x, _ in items]
        lead_ins = 0  # points dropped as a 1's lead-in: if they were all it read, a pen point may stand in
        for i, (char, centre) in enumerate(zip(result.text, centres, strict=True)):
            if char == ".":
                before = sum(c != "." for c in result.text[:i])
                if not 0 < before < len(middles):
                    continue
                if DROP_LEAD_IN_POINTS and result.text[i + 1 : i + 2] == "1" and _dot_near(centre, line) is None:
                    lead_ins += 1
                    continue
                items.append(((middles[before - 1] + middles[before]) / 2, ("point", _point_piece(centre, line))))
        # A model that reads points has seen the line's dots too: its word on which are points stands.
        if not self.sequence.reads_points:
            items.extend((q.x + q.w / 2, (q.kind, q)) for q in line.pieces if q.kind in DOTS)
        elif PEN_POINT and result.text.count(".") == lead_ins:
            # A point the model missed (tucked under the next digit) when the segmentation found one pen
            # point, and only one: a number holds one decimal point. Placed by its left edge, which
            # stays before the digit it is tucked under.
            pens = [q for q in line.pieces if q.kind == "dot" and _pen_point(q, line)]
            if len(pens) == 1:
                items.append((pens[0].x, ("dot", pens[0])))
        items.extend((q.x + q.w / 2, (q.kind, q)) for q in line.pieces if q.kind != "digit" and q.kind not in DOTS)
        items.sort(key=lambda item: item[0])
        chars = _with_marks([it for _, it in items], line, prepared)
        # An empty reading keeps its probability: the model's word that the line holds no digits
        # (letters, a scribble), which auto weighs against the digit-by-digit reading.
        return _line_reading(chars, result.confidence, "sequence")


def _end_at_last_digit(result: StripReading, centres: list[float], line: Line) -> tuple[StripReading, list[float]]:
    """The whole-line reading without the digits read past the right end of the line's last digit-sized
    piece, and their centres likewise.

    Segmentation calls a piece under 0.45 of the line's digit height a mark, and a small piece after
    the number that floats above the line a fence (``segment._raised_tail``); the digit-by-digit
    reading drops marks after a number (the comma, dash, '=' or '/-' that fences a cheque amount). The
    sequence models learned from strips where a small digit may follow a number, and read such a mark
    as a digit, most often a 1. So both readings now end the number at the same place. Its cost: a last
    digit written under half the height of the others, or small, open and raised, is lost by both. The
    confidence stays the model's: the marks' share of it is not split off."""
    ends = [p.x2 for p in line.pieces if p.kind == "digit"]
    if not ends:
        return result, centres
    return _keep(result, centres, [k for k, c in enumerate(centres) if c <= max(ends)])


def _off_the_commas(result: StripReading, centres: list[float], line: Line) -> tuple[StripReading, list[float]]:
    """The whole-line reading without the digits read on a pen's comma (COMMAS_NOT_DIGITS): the sequence
    models learned small, neat separators, and read a comma that reaches below the line as a 1 ("467,770"
    read 4677170). A spike belongs to the piece it falls on, or else to the next piece within
    COMMA_SPIKE_LEAD line heights: a spike comes on what it reads or a little before it. Dots are not
    judged so: a digit's broken stroke is a dot too, and its spike often falls there."""
    if not COMMAS_NOT_DIGITS or not any(p.kind == "comma" for p in line.pieces):
        return result, centres
    lead = COMMA_SPIKE_LEAD * line.height

    def read_on_a_comma(c: float) -> bool:
        on = [p for p in line.pieces if p.x <= c < p.x2]
        pieces = on or sorted((p for p in line.pieces if p.x - lead <= c < p.x), key=lambda p: p.x)[:1]
        return bool(pieces) and all(p.kind == "comma" for p in pieces)

    chars = enumerate(zip(result.text, centres, strict=True))
    return _keep(result, centres, [k for k, (char, c) in chars if char == "." or not read_on_a_comma(c)])


def _keep(result: StripReading, centres: list[float], keep: list[int]) -> tuple[StripReading, list[float]]:
    """The reading's characters ``keep`` names (all of them when it names none or every one). The
    confidence stays the model's: the dropped characters' share of it is not split off."""
    if not keep or len(keep) == len(centres):
        return result, centres
    reading = StripReading(
        "".join(result.text[k] for k in keep),
        result.confidence,
        [result.spans[k] for k in keep],
        [result.char_probs[k] for k in keep],
    )
    return reading, [centres[k] for k in keep]


def _dot_near(centre: float, line: Line) -> Piece | None:
    """The segmentation's dot nearest column ``centre`` within 0.6 line heights (CTC's column sits a
    little before the point), or None."""
    dots = [p for p in line.pieces if p.kind in DOTS and abs(p.x + p.w / 2 - centre) < 0.6 * line.height]
    return min(dots, key=lambda p: abs(p.x + p.w / 2 - centre)) if dots else None


def _point_piece(centre: float, line: Line) -> Piece:
    """A box for a point the sequence model read at column ``centre``: the segmentation's dot there, if
    it found one; else a dab on the line's baseline (a point glued to a digit has no ink of its own)."""
    if (dot := _dot_near(centre, line)) is not None:
        return Piece(dot.x, dot.y, dot.w, dot.h, dot.mask, "point")
    r = max(1, round(0.08 * line.height))
    x, y = round(centre) - r, round(line.baseline) - 2 * r
    return Piece(x, y, 2 * r, 2 * r, np.full((2 * r, 2 * r), 255, np.uint8), "point")


def _pen_point(piece: Piece, line: Line) -> bool:
    """Whether a dot looks like a point made with a pen: round, filled, 0.12-0.3 of the line's height,
    standing on the line (``Line.baseline``). Bits of broken strokes are smaller, longer or
    hollow, and lie anywhere."""
    size = max(piece.w, piece.h)
    if not (0.12 * line.height <= size <= 0.3 * line.height) or not (0.7 <= piece.w / piece.h <= 1.4):
        return False
    return abs(piece.y2 - line.baseline) <= 0.15 * line.height and float((piece.mask > 0).mean()) >= 0.6


def _choose_reading(segmented: LineReading | None, whole: LineReading | None) -> LineReading:
    """Auto: the whole-line reading, unless it is very likely wrong (its calibrated confidence under
    FALLBACK_BELOW) and the digit-by-digit reading is surer. When the two disagree the digit-by-digit
    reading is wrong more often than its confidence says, so "the surer of the two" trusted it too
    much. On the validation sets (bench/validation.py) 0.1 read 3 more of 1,700 than 0.2; 0.02 reads
    as 0.1 does, and reads far less of noise (FALLBACK_BELOW). The fallback stays for lines the
    whole reading is nearly sure it got wrong, writing the sequence models never saw (docs/reading.md)."""
    if whole is None or segmented is None:
        return whole or segmented  # type: ignore[return-value]
    if whole.confidence < FALLBACK_BELOW and segmented.confidence > whole.confidence:
        return segmented
    return whole


def _spelled(line: LineReading) -> str:
    """What the sequence models read of a line: its digits and the points between them."""
    return "".join(c.char for c in line.digits if c.char.isdigit() or c.char == ".")


def _probability_of(char: str, digit: DigitReading) -> float:
    """The classifier's probability of ``char`` for a digit it read: its own or an alternative's, else
    at most what the three it names leave to the other seven."""
    named = {digit.char: digit.confidence, **dict(digit.alternatives)}
    return max(named.get(char, (1.0 - sum(named.values())) / 7), 1e-6)


def _line_reading(chars: list[DigitReading], confidence: float, path: str) -> LineReading:
    if not chars:
        return LineReading("", confidence, (0, 0, 0, 0), [], path)
    x = min(c.box[0] for c in chars)
    y = min(c.box[1] for c in chars)
    x2 = max(c.box[0] + c.box[2] for c in chars)
    y2 = max(c.box[1] + c.box[3] for c in chars)
    return LineReading("".join(c.char for c in chars), confidence, (x, y, x2 - x, y2 - y), chars, path)


def _prominence(line: LineReading) -> float:
    """The line's typical digit height times its digits' mean confidence: the main number of a field is
    written largest and reads surest. Not a sum over digits, which would prefer a long line of small
    notes or print to a short number (a register's row number beside a clerk's remarks); but a second
    and third digit still count a little (square root), so a lone stroke read as a 1 does not beat a
    number written a little smaller."""
    digits = [d for d in line.digits if d.char.isdigit()]
    if not digits:
        return 0.0
    typical = float(np.median([d.box[3] for d in digits]) * np.mean([d.confidence for d in digits]))
    return typical * min(len(digits), 3) ** 0.5


# One-number mode weighs each line by how near the field's vertical centre it stands: a Gaussian of
# this spread (a share of the image's height). A field cropped from a column of numbers (a form's, a
# register's, a table's) holds its own number in the middle and bits of the rows above and below at
# its edges. Chosen on validation fields of that kind (bench/validation.py's "fields"): 0.1, 0.15,
# 0.2, 0.25, 0.3, 0.5 and none read 85.75, 86.0, 86.0, 85.5, 84.25, 79.5 and 73.75%; of the two
# best, the gentler.
CENTRE_SPREAD = 0.2


def _centred(line: LineReading, height: int) -> float:
    """How near the image's vertical centre the line stands: 1 there, falling off as a Gaussian."""
    if CENTRE_SPREAD <= 0 or height <= 0:
        return 1.0
    cy = (line.box[1] + line.box[3] / 2) / height
    return float(np.exp(-0.5 * ((cy - 0.5) / CENTRE_SPREAD) ** 2))


def _digit_width(line: Line) -> float:
    """This writer's width of one digit: the median width of the line's pieces that are not wide."""
    widths = [p.w for p in line.pieces if p.kind == "digit" and 0.35 * p.h <= p.w <= 0.9 * p.h]  # not 1s, not pairs
    return float(np.median(widths)) if len(widths) >= 2 else DIGIT_WIDTH * line.height


def _with_marks(items: list, line: Line, prepared: Prepared) -> list[DigitReading]:
    """Keep a leading minus and decimal points between digits; drop every other mark (trailing dashes,
    '=' and '/-' after amounts, stray dots)."""
    digit_idx = [i for i, it in enumerate(items) if isinstance(it, DigitReading)]
    if not digit_idx:
        return []
    first, last = digit_idx[0], digit_idx[-1]
    baseline = line.baseline
    out: list[DigitReading] = []
    for i, it in enumerate(items):
        if isinstance(it, DigitReading):
            out.append(it)
            continue
        kind, piece = it
        if kind == "dash" and i == first - 1:
            out.append(DigitReading("-", 1.0, prepared.to_original(piece.x, piece.y, piece.w, piece.h), []))
        # A decimal point sits between two digits (one per gap): a point the sequence model read, or
        # a dot low, near the baseline.
        elif (
            (kind == "point" or kind in DOTS)
            and first < i < last
            and out[-1].char.isdigit()
            and (kind == "point" or piece.cy > baseline - 0.35 * line.height)
        ):
            out.append(DigitReading(".", 1.0, prepared.to_original(piece.x, piece.y, piece.w, piece.h), []))
    return out
