import numpy as np
import torch

from digitread.eval.calibration import calibration_entry, expected_calibration_error, fit_temperature


def _overconfident(n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a model that is right 80% of the time but says so with near certainty."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    predicted = torch.where(torch.rand(n, generator=g) < 0.8, labels, torch.randint(0, 10, (n,), generator=g))
    logits = torch.randn(n, 10, generator=g)
    logits[torch.arange(n), predicted] += 8.0
    return logits, labels


def test_ece_is_zero_for_a_perfectly_calibrated_set_and_large_for_an_overconfident_one():
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) < 1e-9
    logits, labels = _overconfident()
    assert expected_calibration_error(torch.softmax(logits, 1).numpy(), labels.numpy()) > 0.1


def test_temperature_scaling_cuts_the_calibration_error_and_keeps_predictions():
    logits, labels = _overconfident()
    t = fit_temperature(logits, labels)
    assert t > 1.5  # an overconfident model is cooled down
    entry = calibration_entry(logits, labels, "synthetic")
    assert entry["ece_after"] < entry["ece_before"] / 2
    assert torch.equal((logits / t).argmax(1), logits.argmax(1))


def test_shipped_model_is_calibrated_on_validation_data():
    from digitread import DigitClassifier

    calibration = DigitClassifier.from_pretrained().config["calibration"]
    assert calibration["ece_after"] < calibration["ece_before"]
    assert "validation" in calibration["fitted_on"]


def test_shipped_model_scores_on_the_mnist_test_set(mnist):
    from digitread import DigitClassifier

    classifier = DigitClassifier.from_pretrained()
    accuracy = (classifier.probabilities(mnist.test.images).argmax(1) == mnist.test.labels).mean()
    assert accuracy >= 0.995, accuracy
    assert abs(accuracy - classifier.config["metrics"]["test_accuracy"]) < 1e-3
