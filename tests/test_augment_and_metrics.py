import numpy as np
import torch

from digitread.config import AugmentConfig
from digitread.data.augment import _affine_grid, dilate3x3, random_affine
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


def test_broadcast_affine_grid_matches_pytorchs():
    theta = torch.randn(8, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.affine_grid(theta, [8, 1, 28, 20], align_corners=False)
    assert torch.allclose(_affine_grid(theta, 28, 20), expected, atol=1e-6)


def test_shifted_maximum_dilation_matches_max_pool():
    x = torch.rand(6, 1, 28, 20, generator=torch.Generator().manual_seed(0)) ** 3  # non-negative pixels
    assert torch.equal(dilate3x3(x), torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1))


def test_stroke_augmentation_leaves_its_input_and_the_unchosen_images_alone():
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    out = random_affine(x, AugmentConfig(rotate=0, translate=0, scale=0, stroke=0.5), torch.Generator().manual_seed(2))
    assert torch.equal(x, before)
    chosen = torch.rand(64, generator=torch.Generator().manual_seed(2)) < 0.5  # the draw that picks them
    assert 0 < chosen.sum() < 64
    assert torch.equal(out[~chosen], x[~chosen]), "the images not drawn for pen width are kept as they are"
    assert (out[chosen] != x[chosen]).flatten(1).any(1).all(), "each chosen image is drawn thicker or thinner"


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


def test_elastic_distortion_bends_strokes_smoothly_by_at_most_about_its_limit():
    from digitread.data.augment import _elastic_field

    field = _elastic_field(64, 28, 28, 2.0, torch.Generator().manual_seed(0)) * 14  # grid units -> pixels
    assert field.shape == (64, 28, 28, 2)
    assert 1.0 < field.abs().max() <= 2.0
    assert (field[:, 1:] - field[:, :-1]).abs().max() < 1.0  # smooth: neighbours move almost alike
    cfg = AugmentConfig(rotate=0, translate=0, scale=0, elastic=2.0)
    a = random_affine(_batch(), cfg, torch.Generator().manual_seed(0))
    assert not torch.equal(a, _batch()) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, random_affine(_batch(), cfg, torch.Generator().manual_seed(0)))


def test_random_erasing_blanks_one_rectangle_in_the_share_asked_for():
    x = torch.ones(400, 1, 28, 28)
    out = random_affine(x, AugmentConfig(rotate=0, translate=0, scale=0, erase=0.5), torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).sum(1)
    hit = erased > 0
    assert 0.4 < hit.float().mean() < 0.6
    areas = erased[hit].float() / (28 * 28)
    assert areas.min() >= 0.02 and areas.max() <= 0.27
    for i in torch.nonzero(hit)[:20, 0]:  # each blank is one filled rectangle
        ys, xs = torch.nonzero(out[i, 0] == 0, as_tuple=True)
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert int(box) == int(erased[i])


def test_augment_preview_writes_a_grid_of_each_digit_and_its_variants(tmp_path, mnist_path, capsys):
    import cv2

    from digitread.cli import main

    out = tmp_path / "aug.png"
    args = ["augment-preview", "--out", str(out), "--count", "3", "--variants", "4", "--data-dir", str(mnist_path)]
    assert main([*args, "--recipe", "best", "--aug-elastic", "1.5", "--aug-erase", "0.2"]) == 0
    grid = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    assert grid.shape == (24 + 3 * 60, 5 * 60 + 8)  # a header; rows of 60-pixel cells; a gap after the original
    assert "elastic 1.5" in capsys.readouterr().out
    assert main(["augment-preview", "--out", str(tmp_path / "x.jpg"), "--data-dir", str(mnist_path)]) == 1


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
