"""Segmentation's joining and grouping give what their plain definitions give, at any number of pieces."""

import cv2
import numpy as np
import pytest

from digitread.inference import segment


def _join_starting_over(pieces, height):
    """The definition: join the first pair (left to right) that belongs together, then start over."""
    joined = True
    while joined:
        joined = False
        pieces.sort(key=lambda p: p.x)
        for i, a in enumerate(pieces):
            for j in range(i + 1, len(pieces)):
                if pieces[j].x > a.x2:
                    break
                if segment._belong_together(a, pieces[j], height):
                    pieces[i] = segment._union(a, pieces.pop(j))
                    joined = True
                    break
            if joined:
                break
    return pieces


def _group_by_median(pieces, height):
    """The definition: each piece joins the first line whose median centre (of its tall pieces) is near."""
    lines = []
    for p in sorted(pieces, key=lambda p: p.cy):
        for line in lines:
            centre = np.median([q.cy for q in line if q.h > 0.5 * height] or [q.cy for q in line])
            if abs(p.cy - centre) < 0.6 * height:
                line.append(p)
                break
        else:
            lines.append([p])
    return [sorted(line, key=lambda p: p.x) for line in lines]


def _cluttered_mask(seed: int) -> np.ndarray:
    """Specks, strokes and blobs of every size: many pieces that belong together and many that do not."""
    rng = np.random.default_rng(seed)
    mask = (rng.random((150, 200)) < 0.03).astype(np.uint8) * 255
    for _ in range(30):
        x, y = (int(v) for v in rng.integers(0, 150, 2))
        cv2.line(mask, (x, y), (x + int(rng.integers(-20, 20)), y + int(rng.integers(-30, 30))), 255, 2)
    for _ in range(10):
        cv2.circle(mask, tuple(int(v) for v in rng.integers(0, 150, 2)), int(rng.integers(2, 12)), 255, 1)
    return mask


def _boxes(pieces):
    return [(p.x, p.y, p.w, p.h, int(np.count_nonzero(p.mask))) for p in pieces]


@pytest.mark.parametrize("seed", range(6))
def test_joining_strokes_gives_what_starting_over_after_every_join_gives(seed):
    pieces = segment._components(_cluttered_mask(seed))
    assert len(pieces) > 150
    for height in (8.0, 20.0, 40.0):
        expected = _join_starting_over(list(pieces), height)
        joined = segment._merge_strokes(list(pieces), height)
        assert len(joined) < len(pieces)  # some joins happened
        assert _boxes(joined) == _boxes(expected)


@pytest.mark.parametrize("seed", range(3))
def test_grouping_lines_gives_what_the_median_of_each_line_gives(seed):
    pieces = segment._components(_cluttered_mask(seed))
    for height in (8.0, 20.0, 40.0):
        expected = _group_by_median(pieces, height)
        lines = segment._group_lines(pieces, height)
        assert len(lines) > 1
        assert [[id(p) for p in line] for line in lines] == [[id(p) for p in line] for line in expected]
