"""Weight tying: kernels shared, biases not; the embedding that sets the tied width apart from F."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flareseq.errors import ConfigError
from flareseq.models import build_model, count_unique_parameters
from flareseq.training.estimator import FlareClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def keras_lstm_count(n_inputs: int, width: int) -> int:
    """Keras's LSTM: 4 gates x width x (inputs + width + 1 bias)."""
    return 4 * width * (n_inputs + width + 1)


def test_tied_width_is_the_input_width_on_four_features():
    # The referee's numbers: on SMARP's 4 parameters the study's tied stack is 4 wide.
    tied = build_model("tied-stacked-lstm", 4)
    assert tied.lstms[0].weight_hh.shape == (16, 4)
    assert count_unique_parameters(tied) == keras_lstm_count(4, 4) + 4 * 4 + 5 == 165
    assert count_unique_parameters(build_model("stacked-lstm", 4)) == 13_089


@pytest.mark.parametrize("width", [8, 25])
def test_embedding_size_widens_the_tied_stack(width):
    tied = build_model("tied-stacked-lstm", 4, {"embedding_size": width})
    untied = build_model("tied-stacked-lstm", 4, {"embedding_size": width, "tie_weights": False})
    for model in (tied, untied):
        assert all(layer.weight_hh.shape == (4 * width, width) for layer in model.lstms)
        assert model.decoder is None and model.decoder_bias is None  # the head reads the LSTM state
    embedding, head = 4 * width + width, width + 1
    assert count_unique_parameters(tied) == embedding + keras_lstm_count(width, width) + 4 * width + head
    assert count_unique_parameters(untied) == embedding + 2 * keras_lstm_count(width, width) + head
    assert count_unique_parameters(build_model("tied-stacked-lstm", 4, {"embedding_size": 25})) == 5_351


def test_study_defaults_on_25_features_are_unchanged_by_the_new_parameter():
    assert count_unique_parameters(build_model("tied-stacked-lstm", 25)) == 5_226
    assert count_unique_parameters(build_model("tied-stacked-lstm", 25, {"embedding_size": None})) == 5_226


def test_untied_twin_takes_any_width():
    model = build_model("tied-stacked-lstm", 25, {"hidden_size": 17, "tie_weights": False})
    assert count_unique_parameters(model) == keras_lstm_count(25, 17) + keras_lstm_count(17, 17) + 18


@pytest.mark.parametrize("params", [{}, {"embedding_size": 6}])
def test_layers_share_kernels_but_not_biases(params):
    torch.manual_seed(0)
    model = build_model("tied-stacked-lstm", 4, {**params, "n_layers": 3, "dropout": 0.0,
                                                  "recurrent_dropout": 0.0})
    first, *others = model.lstms
    for layer in others:
        assert layer.weight_ih is first.weight_ih and layer.weight_hh is first.weight_hh
        assert layer.bias is not first.bias
    model(torch.randn(5, 7, 4)).sum().backward()
    grads = [layer.bias.grad for layer in model.lstms]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert not torch.allclose(grads[0], grads[1])  # each bias learns its own depth's role


def test_tied_decoder_shares_the_kernel_but_keeps_its_bias():
    model = build_model("embed-tied-stacked-lstm", 4, {"embedding_size": 6})
    names = dict(model.named_parameters())
    assert "decoder_bias" in names and names["decoder_bias"].shape == (4,)
    assert model.tied_parameter_names()["embedding.weight"] == ["decoder kernel (transposed)"]


def test_widened_tied_stack_equals_its_twin_holding_copies_and_sums_gradients():
    """The tied model is its untied twin with both layers holding the same kernel values,
    and the shared kernel's gradient is the sum of the twin's two kernels' gradients."""
    params = {"embedding_size": 6, "dropout": 0.0, "recurrent_dropout": 0.0}
    torch.manual_seed(1)
    tied = build_model("tied-stacked-lstm", 4, params).double()
    twin = build_model("tied-stacked-lstm", 4, {**params, "tie_weights": False}).double()
    state = tied.state_dict()
    twin.load_state_dict({k: state.get(k, state.get("lstms.0." + k.rsplit(".", 1)[1])) for k in twin.state_dict()})
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    out_tied, out_twin = tied(x), twin(x)
    torch.testing.assert_close(out_tied, out_twin)
    out_tied.sum().backward()
    out_twin.sum().backward()
    for kind in ("weight_ih", "weight_hh"):
        expected = getattr(twin.lstms[0], kind).grad + getattr(twin.lstms[1], kind).grad
        torch.testing.assert_close(getattr(tied.lstms[0], kind).grad, expected)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"embedding_size": 8, "hidden_size": 6}, r"tied LSTM layers need input width = hidden_size, got 8 inputs"),
        ({"hidden_size": 6}, r"set hidden_size=4, or embedding_size=6 to widen"),
        ({"embedding_size": 0}, "embedding_size must be a positive integer, got 0"),
    ],
)
def test_width_errors(params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("tied-stacked-lstm", 4, params)


def test_widened_tied_stack_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 6, 4)).astype(np.float32)
    y = np.array([0, 0, 0, 1] * 8, dtype=np.int8)
    clf = FlareClassifier("tied-stacked-lstm", {"embedding_size": 8}, epochs=2, batch_size=8, progress=False,
                          threshold_metric="", early_stopping=False, random_state=0).fit(X, y)
    clf.save(tmp_path / "m")
    loaded = FlareClassifier.load(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert count_unique_parameters(loaded.model_) == count_unique_parameters(clf.model_) == 8 * 5 + 544 + 32 + 9
