"""Models beyond the study, checked against what their papers define: TrellisNet's shared
weights and receptive field, MiniRocket's features, the Inception network's wiring, and the
regularised LSTMs. (The shared suite in test_models_common.py covers them too.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from flareseq.errors import ConfigError
from flareseq.models import MODELS, build_model, count_unique_parameters
from flareseq.models.inception import InceptionModule, Shortcut
from flareseq.models.minirocket import (
    KERNEL_POSITIONS,
    N_KERNELS,
    fit_dilations,
    quantile_sequence,
)
from flareseq.models.trellisnet import TrellisNet
from flareseq.training.estimator import FlareClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _x(batch=3, steps=10, features=3, seed=0, dtype=torch.float32):
    return torch.randn(batch, steps, features, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- TrellisNet -----------------------------------------------------------------------------
def test_trellisnet_parameter_count_does_not_depend_on_depth():
    counts = {levels: count_unique_parameters(build_model("trellisnet", 25, {"n_levels": levels}))
              for levels in (1, 4, 40, None)}
    assert len(set(counts.values())) == 1, counts
    H, F_, k = 32, 25, 2
    # one (4H, F + H, k) kernel, one bias, weight-norm gains (4H each), Dense(1)
    assert counts[1] == 4 * H * (F_ + H) * k + 4 * H + 2 * 4 * H + H + 1


def test_trellisnet_depth_sets_the_receptive_field():
    x = _x(steps=10).requires_grad_()
    for levels in (3, None):
        model = TrellisNet(3, hidden_size=4, n_levels=levels, weight_norm=False)
        model(x).sum().backward()
        reached = x.grad.abs().sum(dim=(0, 2)) > 0  # which steps the last output depends on
        expected = torch.arange(10) >= (10 - 1 - 3 if levels else 0)
        assert torch.equal(reached, expected), (levels, reached)
        x.grad = None
    assert TrellisNet(3, n_levels=None).levels_for(10) == 9
    assert TrellisNet(3, dilations=(1, 2, 4)).levels_for(16) == 7  # 1 + (1 + 2 + 4) * 2 + 1 = 16


def test_trellisnet_matches_its_recurrence_written_out():
    """Each level: gates from [x_{t-1}, x_t, h_{t-1}, h_t] with the one shared kernel, then
    c = sigmoid(f) c_prev_level[t-1] + sigmoid(i) tanh(g), h = sigmoid(o) tanh(c)."""
    torch.manual_seed(0)
    model = TrellisNet(2, hidden_size=3, n_levels=4, weight_norm=False).double().eval()
    x = _x(batch=2, steps=5, features=2, dtype=torch.float64)
    H = 3
    w_x, w_h, b = model.input_weight, model.hidden_weight, model.bias
    h = torch.zeros(2, 5, H, dtype=torch.float64)
    c = torch.zeros(2, 5, H, dtype=torch.float64)
    for _ in range(4):
        new_h, new_c = torch.zeros_like(h), torch.zeros_like(c)
        for t in range(5):
            pre = b + x[:, t] @ w_x[:, :, 1].T + h[:, t] @ w_h[:, :, 1].T
            if t > 0:
                pre = pre + x[:, t - 1] @ w_x[:, :, 0].T + h[:, t - 1] @ w_h[:, :, 0].T
            i, o, g, f = pre.split(H, dim=1)
            c_prev = c[:, t - 1] if t > 0 else torch.zeros(2, H, dtype=torch.float64)
            new_c[:, t] = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
            new_h[:, t] = torch.sigmoid(o) * torch.tanh(new_c[:, t])
        h, c = new_h, new_c
    expected = model.head(h[:, -1]).squeeze(1)
    torch.testing.assert_close(model(x), expected)


def test_trellisnet_weight_norm_starts_as_the_plain_kernel():
    torch.manual_seed(1)
    normed = TrellisNet(3, hidden_size=4)
    torch.manual_seed(1)
    plain = TrellisNet(3, hidden_size=4, weight_norm=False)
    x = _x()
    torch.testing.assert_close(normed(x), plain(x))


# -- MiniRocket -----------------------------------------------------------------------------
def _reference_ppv(sample: np.ndarray, mask: np.ndarray, kernel: int, dilation: int, bias: float,
                   unpadded: bool) -> float:
    """The paper's definition written out: sum the chosen channels, convolve with the kernel
    (-1, and 2 at three positions; zero padding), share of outputs above the bias."""
    T = sample.shape[0]
    series = sample @ mask  # (T,): the sum of the combination's channels
    weights = np.full(9, -1.0)
    weights[list(KERNEL_POSITIONS[kernel])] = 2.0
    out = np.zeros(T)
    for t in range(T):
        for j in range(9):
            s = t + (j - 4) * dilation
            if 0 <= s < T:
                out[t] += weights[j] * series[s]
    pad = 4 * dilation
    if unpadded and T > 2 * pad:
        out = out[pad : T - pad]
    return float(np.mean(out > bias))


def _fitted_minirocket(X, **params):
    torch.manual_seed(0)
    model = build_model("minirocket", X.shape[2], params)
    model.fit_features(X)
    return model


def test_minirocket_feature_count_and_dilations():
    X = np.random.default_rng(0).normal(size=(20, 60, 3)).astype(np.float32)
    model = _fitted_minirocket(X)
    assert model.n_outputs == 9_996 == N_KERNELS * 119
    assert model.transform(torch.from_numpy(X[:2])).shape == (2, 9_996)
    dilations, counts = fit_dilations(60, 119, 32)
    assert dilations == [1, 2, 3, 4, 5, 6, 7] and sum(counts) == 119 and counts[0] > counts[-1]
    assert (model.dilations[:7].tolist(), model.features_per_dilation[:7].tolist()) == (dilations, counts)
    assert fit_dilations(16, 119, 32) == ([1], [119])  # SMARP's 16 steps: dilation 1 only
    assert fit_dilations(5, 119, 32) == ([1], [119])  # shorter than a kernel: still runs


def test_minirocket_features_follow_the_papers_definition():
    X = np.random.default_rng(1).normal(size=(12, 40, 3)).astype(np.float32)
    model = _fitted_minirocket(X, n_ppv_features=840)
    features = model.transform(torch.from_numpy(X[:2])).numpy()
    rng = np.random.default_rng(2)
    assert len(model._slots()) > 1  # several dilations, padded and unpadded combinations
    for slot, dilation, per_kernel, offset in model._slots():
        for kernel in rng.choice(N_KERNELS, size=6, replace=False):
            for b in rng.choice(per_kernel, size=min(2, per_kernel), replace=False):
                index = offset + kernel * per_kernel + b
                mask = model.channel_mask[slot, kernel].numpy()
                unpadded = (slot + kernel) % 2 == 1
                for s in range(2):
                    expected = _reference_ppv(X[s], mask, kernel, dilation, float(model.biases[index]), unpadded)
                    assert features[s, index] == pytest.approx(expected, abs=1e-6)


def test_minirocket_biases_are_quantiles_of_a_training_sample():
    X = np.random.default_rng(3).normal(size=(1, 12, 2)).astype(np.float32)  # one sample: the one chosen
    model = _fitted_minirocket(X, n_ppv_features=168)
    quantiles = quantile_sequence(168)
    (slot, dilation, per_kernel, offset), = model._slots()
    for kernel in (0, 41, 83):
        mask = model.channel_mask[slot, kernel].numpy()
        weights = np.full(9, -1.0)
        weights[list(KERNEL_POSITIONS[kernel])] = 2.0
        conv = np.convolve(np.pad(X[0] @ mask, 4), weights[::-1], mode="valid")  # padded output, length T
        idx = slice(offset + kernel * per_kernel, offset + (kernel + 1) * per_kernel)
        np.testing.assert_allclose(model.biases[idx].numpy(), np.quantile(conv, quantiles[idx]), rtol=1e-5, atol=1e-5)


def test_minirocket_features_ignore_a_constant_offset_where_padding_does_not_reach():
    """The kernels' weights sum to zero, so outputs away from the zero padding (the
    combinations that drop the padded ends) ignore a constant added to a sample; the
    padded combinations see the offset at the ends, which shows this test can fail."""
    X = np.random.default_rng(4).normal(size=(10, 40, 3)).astype(np.float32)
    model = _fitted_minirocket(X, n_ppv_features=840)
    base = model.transform(torch.from_numpy(X[:3]))
    shifted = model.transform(torch.from_numpy(X[:3] + 5.0))
    unpadded = torch.zeros(model.n_outputs, dtype=torch.bool)
    for slot, _, per_kernel, offset in model._slots():
        for kernel in range(N_KERNELS):
            if (slot + kernel) % 2 == 1:
                unpadded[offset + kernel * per_kernel : offset + (kernel + 1) * per_kernel] = True
    torch.testing.assert_close(shifted[:, unpadded], base[:, unpadded])
    assert not torch.equal(shifted[:, ~unpadded], base[:, ~unpadded])


def test_minirocket_features_are_scale_invariant_when_fitted_on_the_scaled_data():
    X = np.random.default_rng(5).normal(size=(10, 30, 3)).astype(np.float32)
    a = _fitted_minirocket(X, n_ppv_features=336).transform(torch.from_numpy(X))
    b = _fitted_minirocket(2 * X, n_ppv_features=336).transform(torch.from_numpy(2 * X))  # x2 is exact in floats
    assert torch.equal(a, b)


def test_minirocket_fitted_state_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 36, 3)).astype(np.float32)
    y = (X[:, -5:, 0].mean(axis=1) > 0).astype(np.int8)
    clf = FlareClassifier("minirocket", {"n_ppv_features": 336}, epochs=2, batch_size=16, progress=False,
                          threshold_metric="", early_stopping=False).fit(X, y)
    assert bool(clf.model_.fitted) and clf.model_.features_per_dilation.count_nonzero() > 1
    clf.save(tmp_path / "m")
    loaded = FlareClassifier.load(tmp_path / "m", device="cpu")
    assert torch.equal(loaded.model_.biases, clf.model_.biases)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# -- Inception ------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [5, 60])
def test_inception_keeps_the_length_and_outputs_one_logit(steps):
    torch.manual_seed(0)
    module = InceptionModule(3, 4, (40, 20, 10), 8)
    h = module(_x(steps=steps).transpose(1, 2))
    assert h.shape == (3, 16, steps)  # 4 branches x 4 filters, 'same' length
    model = build_model("inception", 3)
    assert model(_x(steps=steps)).shape == (3,)


def test_inception_same_padding_is_keras_for_even_kernels():
    """Keras 'same' with kernel 4 pads 1 before and 2 after; the max-pool branch pads with
    -inf (an all-negative input must not see a padded 0)."""
    torch.manual_seed(0)
    module = InceptionModule(1, 1, (4,), 0).eval()  # one channel: no bottleneck
    x = -1.0 - torch.rand(1, 1, 7)
    conv = module.convs[0]
    torch.testing.assert_close(conv(module_padded(module, x, 4)), F.conv1d(F.pad(x, (1, 2)), conv.weight))
    pooled = F.max_pool1d(F.pad(x, (1, 1), value=float("-inf")), 3, stride=1)
    assert (pooled < 0).all()


def module_padded(module, x, k):
    padded = F.pad(x, (module._left, module._right))
    start = module._left - (k - 1) // 2
    return padded[:, :, start : start + x.shape[2] + k - 1]


@pytest.mark.parametrize("depth, residual, n_shortcuts", [(6, True, 2), (3, True, 1), (5, True, 1), (6, False, 0)])
def test_inception_has_a_shortcut_every_three_modules(depth, residual, n_shortcuts):
    model = build_model("inception", 3, {"n_filters": 2, "depth": depth, "bottleneck_size": 2,
                                         "kernel_sizes": [4, 2], "residual": residual})
    calls = []
    for module in model.modules():
        if isinstance(module, Shortcut):
            module.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[1]))
    model(_x())
    # The first shortcut carries the raw input (3 series), later ones the modules' width.
    assert calls == [3, 6][:n_shortcuts]


def test_inception_shortcut_changes_the_output():
    torch.manual_seed(0)
    model = build_model("inception", 3, {"n_filters": 2, "depth": 3, "bottleneck_size": 2, "kernel_sizes": [4, 2]})
    model.eval()
    x = _x()
    before = model(x)
    with torch.no_grad():
        model.shortcuts[0].conv.weight.zero_()
    assert not torch.allclose(model(x), before)


# -- regularised LSTMs ----------------------------------------------------------------------
def test_regularisation_is_off_in_the_study_models_and_counts_its_parameters():
    assert count_unique_parameters(build_model("stacked-lstm", 25)) == 15_777
    assert count_unique_parameters(build_model("regularised-lstm", 25)) == 15_777 + 2 * 2 * 32  # 2 LayerNorms
    batch = build_model("stacked-lstm", 25, {"normalization": "batch"})
    assert count_unique_parameters(batch) == 15_777 + 2 * 2 * 32


@pytest.mark.parametrize("name", ["lstm", "embed-tied-stacked-lstm", "tied-stacked-lstm"])
@pytest.mark.parametrize("normalization", ["layer", "batch"])
def test_every_study_model_takes_the_regularisation(name, normalization):
    params = {**MODELS[name].test_params, "input_dropout": 0.2, "output_dropout": 0.3, "normalization": normalization}
    torch.manual_seed(0)
    model = build_model(name, 3, params)
    x = _x(batch=8, steps=6)
    model.train()
    a, b = model(x), model(x)
    assert not torch.equal(a, b)  # dropout active in training
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def test_dropouts_act_only_in_training():
    torch.manual_seed(0)
    plain = build_model("lstm", 3, {"hidden_size": 4})
    torch.manual_seed(0)
    dropped = build_model("lstm", 3, {"hidden_size": 4, "input_dropout": 0.5, "output_dropout": 0.5})
    x = _x()
    torch.testing.assert_close(dropped.eval()(x), plain.eval()(x))


def test_batch_normalisation_learns_running_statistics():
    torch.manual_seed(0)
    model = build_model("lstm", 3, {"hidden_size": 4, "normalization": "batch"}).train()
    norm = model.norms[0].norm
    model(_x(batch=16) * 3 + 1)
    assert not torch.equal(norm.running_mean, torch.zeros(4))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"normalization": "group"}, r"normalization must be one of \['layer', 'batch'\] or None, got 'group'"),
        ({"input_dropout": 1.0}, r"input_dropout must be in \[0, 1\)"),
        ({"output_dropout": -0.1}, r"output_dropout must be in \[0, 1\)"),
    ],
)
def test_regularisation_errors(params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("lstm", 3, params)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("trellisnet", {"kernel_size": 1}, "kernel_size must be at least 2"),
        ("trellisnet", {"dilations": []}, "dilations must be a non-empty list"),
        ("trellisnet", {"n_levels": 0}, "n_levels must be None or at least 1"),
        ("minirocket", {"n_ppv_features": 10}, "n_ppv_features must be at least 84"),
        ("inception", {"depth": 0}, "depth must be at least 1"),
    ],
)
def test_beyond_models_configuration_errors(name, params, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name, 3, params)
