import pytest
import torch

from digitread import create_model, list_models, load_model, save_model
from digitread.errors import ConfigError
from digitread.models import count_parameters

ALL_MODELS = list_models()
# Models of single 28x28 digits; sequence models (task "strings") are tested in test_strings.py.
DIGIT_MODELS = [n for n in ALL_MODELS if getattr(create_model(n), "task", "digits") == "digits"]


def test_registry_holds_the_zoo_the_project_promises():
    expected = {"seed_mlp", "mlp", "cnn_small", "cnn", "resnet", "lstm_rows", "gru_rows", "bilstm_rows", "bigru_rows"}
    assert expected | {"crnn_digits"} <= set(ALL_MODELS)
    assert "digit_ensemble" not in ALL_MODELS  # built from trained models by `digitread ensemble`
    assert "crnn_digits" not in DIGIT_MODELS


def test_seed_mlp_is_exactly_the_study_network():
    model = create_model("seed_mlp")
    assert count_parameters(model) == 43_480
    widths = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [50, 50, 10, 10, 50, 10]
    assert not any(isinstance(m, torch.nn.Softmax) for m in model.modules())


@pytest.mark.parametrize("name", DIGIT_MODELS)
def test_model_maps_a_batch_of_digits_to_finite_logits(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", DIGIT_MODELS)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(8, 1, 28, 28)), torch.arange(8))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


@pytest.mark.parametrize("name", DIGIT_MODELS)
def test_save_then_load_gives_identical_outputs(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(5, 1, 28, 28)
    save_model(model, tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert loaded.arch == name
    assert torch.equal(model(x), loaded(x))


def test_overrides_reach_the_module_and_the_saved_config(tmp_path):
    model = create_model("cnn", widths=(8, 16, 32), dropout=0.0)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.model_args["widths"] == [8, 16, 32]
    assert count_parameters(loaded) == count_parameters(model)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown model 'resnet9000'.*cnn_small"):
        create_model("resnet9000")


def test_unknown_model_argument_is_named():
    with pytest.raises(ConfigError, match="has no argument colour"):
        create_model("cnn", colour="blue")


def test_list_models_filters_by_pattern():
    assert list_models("cnn*") == [
        "cnn",
        "cnn_deep",
        "cnn_fast",
        "cnn_fast24",
        "cnn_fast_wide",
        "cnn_fast_wide24",
        "cnn_small",
    ]
