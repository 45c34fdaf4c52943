import numpy as np
import torch

from digitread.config import AugmentConfig
from digitread.data.augment import random_affine
from digitread.eval.metrics import ClassificationMetrics


def _batch() -> torch.Tensor:
    x = torch.zeros(16, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0  # a vertical bar
    return x


def test_affine_augmentation_is_seeded_and_keeps_shape_and_range():
    cfg = AugmentConfig(rotate=10, translate=0.1, scale=0.1, shear=0.3, stroke=0.5)
    a = random_affine(_batch(), cfg, torch.Generator().manual_seed(0))
    b = random_affine(_batch(), cfg, torch.Generator().manual_seed(0))
    c = random_affine(_batch(), cfg, torch.Generator().manual_seed(1))
    assert a.shape == (16, 1, 28, 28)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a[0], a[1]), "each image gets its own transform"


def test_no_augmentation_settings_leave_the_batch_alone():
    x = _batch()
    cfg = AugmentConfig(rotate=0, translate=0, scale=0, noise=0, shear=0, stroke=0)
    assert not cfg.enabled
    assert torch.equal(random_affine(x, cfg, torch.Generator()), x)


def test_translation_moves_the_ink_by_at_most_the_limit():
    cfg = AugmentConfig(rotate=0, translate=0.1, scale=0)
    out = random_affine(_batch(), cfg, torch.Generator().manual_seed(0))
    cols = (out[:, 0].sum(1) > 0.5).float()
    centres = (cols * torch.arange(28)).sum(1) / cols.sum(1)
    assert (centres - 13.5).abs().max() <= 0.1 * 28 + 1


def test_stroke_augmentation_makes_strokes_thicker_or_thinner():
    x = _batch()
    x[:, :, 8:20, 11] = x[:, :, 8:20, 16] = 0.4  # soft edges, as pen strokes have
    cfg = AugmentConfig(rotate=0, translate=0, scale=0, stroke=1.0)
    out = random_affine(x, cfg, torch.Generator().manual_seed(0))
    ink = (out > 0.1).flatten(1).sum(1)
    original = int((x[0] > 0.1).sum())
    assert (ink > original).any() and (ink < original).any()  # both thicker and thinner pens occur


def test_shear_slants_a_vertical_bar():
    cfg = AugmentConfig(rotate=0, translate=0, scale=0, shear=0.5)
    out = random_affine(_batch(), cfg, torch.Generator().manual_seed(0))[0, 0]
    top = (out[9] * torch.arange(28)).sum() / out[9].sum()
    bottom = (out[18] * torch.arange(28)).sum() / out[18].sum()
    assert abs(top - bottom) > 1.0  # the bar's centre moves across rows: it leans


def test_metrics_match_a_hand_count():
    m = ClassificationMetrics(num_classes=3)
    probs = np.eye(3)[[0, 1, 2, 2]]  # predictions 0, 1, 2, 2
    m.update(probs[:2], np.array([0, 1]))
    m.update(probs[2:], np.array([2, 1]))  # the last one is wrong: true 1, predicted 2
    r = m.compute()
    assert r["accuracy"] == 0.75 and r["errors"] == 1
    assert r["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert r["per_class"]["1"]["recall"] == 0.5 and r["per_class"]["2"]["precision"] == 0.5
    assert m.worst_mistakes() == [{"index": 3, "label": 1, "predicted": 2, "confidence": 1.0}]
