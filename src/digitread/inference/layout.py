"""A grey image -> its prepared ink and lines of candidate characters, at a size where writing reads.

Binarisation and morphology need a few pixels per pen stroke. Small writing in a big crop (a row
number in a scanned register column, digits 20 pixels tall with 1-pixel strokes) merges into blobs
and fades: so when the tallest line's writing comes out under ``MIN_WRITING`` pixels, the image is
prepared again, enlarged until it does not (within ``preprocess.MAX_SIDE``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from digitread.inference.preprocess import Comb, Prepared, prepare, turn_level, working_scale
from digitread.inference.segment import Line, segment

MIN_WRITING = 40  # pixels of digit height: chosen on generated numbers with small digits (MNIST validation digits)
MAX_GROWTH = 1.6  # enlarged writing taller than this many MIN_WRITINGs is not the same writing


def find_lines(gray: np.ndarray, threshold_scale: float = 1.0, comb: Comb | None = None) -> tuple[Prepared, list[Line]]:
    """The prepared image and its lines of candidate characters (``segment``), binarised at
    ``threshold_scale`` times the usual threshold (see ``preprocess.prepare``). ``comb``: a comb field
    an earlier look at the image found (``Prepared.comb``): another threshold can join its teeth to
    the digits, and an enlarged look can lose them among line leftovers, where the first look did not.
    Writing whose lines tilt (``preprocess.estimate_tilt``) is looked at again turned level; its boxes
    still map to the image as given (``Prepared.to_original``)."""
    prepared, lines = _look(gray, threshold_scale, comb)
    if prepared.tilt:
        level, unrotate = turn_level(gray, prepared.tilt)
        turned, lines = _look(level, threshold_scale, None, tilt=False)
        # A comb found on the turned image is in its pixels, not the original's: later looks find their own.
        prepared = replace(turned, original_shape=gray.shape, unrotate=unrotate, comb=None, tilt=prepared.tilt)
    return prepared, lines


def _look(
    gray: np.ndarray, threshold_scale: float, comb: Comb | None, tilt: bool = True
) -> tuple[Prepared, list[Line]]:
    """``find_lines`` at the image's tilt: prepared, and again enlarged where the writing is small;
    ``tilt`` False: an image already turned level, whose tilt is not measured again."""
    prepared = prepare(gray, threshold_scale=threshold_scale, comb=comb, tilt=tilt)
    lines = segment(prepared.mask, prepared.shear)
    writing = max((line.height for line in lines), default=0.0)
    if 0 < writing < MIN_WRITING:
        zoom = MIN_WRITING / writing
        if working_scale(gray.shape, zoom) > 1.05 * prepared.scale:  # not already as large as allowed
            enlarged = prepare(gray, zoom, MIN_WRITING, threshold_scale, comb=prepared.comb or comb, tilt=tilt)
            more = segment(enlarged.mask, enlarged.shear)
            # Enlarged, the writing should come out about MIN_WRITING tall. Far taller means the new
            # preparation joined something else into the lines (a page edge, a margin's border) and
            # lost the writing: the first look is the better one.
            if max((line.height for line in more), default=0.0) <= MAX_GROWTH * MIN_WRITING:
                prepared, lines = enlarged, more
    return prepared, lines
