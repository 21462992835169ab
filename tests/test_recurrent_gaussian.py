"""The recurrent nets' Gaussian likelihood: the head against a NumPy re-derivation, the NLL
against scipy, the closed loop that feeds back the mean, and the band of the forecasts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from test_models import np_lstm, np_rnn

from dljax import checks, evaluation, forecast
from dljax import examples as E
from dljax import models as M
from dljax import objectives as O

NP_CELLS = {"rnn": np_rnn, "lstm": np_lstm}


def _np_last_hidden(name, p, Y):
  """h after the last lag, from the NumPy cells: their yhat with V = I and c = 0."""
  eye = {**p, "V": np.eye(p["V"].shape[0]), "c": np.zeros((1, p["V"].shape[0]))}
  return NP_CELLS[name](eye, Y)


def _model_and_params(name, hidden=3, seed=0):
  model = getattr(M, name)(1, hidden, 1, likelihood="gaussian")
  params = model.init(jax.random.key(seed), jnp.float64)
  # Non-trivial weights everywhere (init has identity W and zero biases).
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  noisy = [a + 0.3 * jax.random.normal(k, a.shape, a.dtype) for a, k in zip(leaves, keys)]
  return model, jax.tree.unflatten(tree, noisy)


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_gaussian_head_matches_numpy(name):
  with jax.enable_x64(True):
    model, p = _model_and_params(name)
    Y = np.random.default_rng(3).standard_normal((7, 6, 1))
    mean, log_sigma = model.predict(p, jnp.asarray(Y))
    q = {k: np.asarray(v) for k, v in p.items()}
    h = _np_last_hidden(name, q, Y)
    np.testing.assert_allclose(mean, h @ q["V"] + q["c"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_sigma, h @ q["V_sigma"] + q["c_sigma"], rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(model.apply(p, jnp.asarray(Y)), mean)  # apply: the mean


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_gaussian_nll_matches_scipy(name):
  with jax.enable_x64(True):
    model, p = _model_and_params(name)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((9, 5, 1)), rng.standard_normal((9, 1))
    loss, terms = O.gaussian_nll(model)(p, {"x": jnp.asarray(x), "y": jnp.asarray(y)})
    mean, log_sigma = (np.asarray(a) for a in model.predict(p, jnp.asarray(x)))
    expected = -np.mean(stats.norm.logpdf(y, mean, np.exp(log_sigma)))
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    np.testing.assert_allclose(terms["mse"], np.mean((y - mean) ** 2), rtol=1e-12)


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_mse_parameters_unchanged_and_gaussian_adds_a_head(name):
  """likelihood='gaussian' adds V_sigma [H, out], c_sigma [1, out] and leaves the rest bitwise."""
  key = jax.random.key(5)
  plain = getattr(M, name)(1, 4, 1).init(key)
  gaussian = getattr(M, name)(1, 4, 1, likelihood="gaussian").init(key)
  assert set(gaussian) - set(plain) == {"V_sigma", "c_sigma"}
  assert gaussian["V_sigma"].shape == (4, 1) and gaussian["c_sigma"].shape == (1, 1)
  for k, v in plain.items():
    np.testing.assert_array_equal(gaussian[k], v)


def test_predict_needs_the_gaussian_likelihood_and_builders_check_it():
  with pytest.raises(checks.ArgumentError, match="likelihood must be 'gaussian' for predict"):
    M.lstm().predict(M.lstm().init(jax.random.key(0)), jnp.zeros((1, 3, 1)))
  with pytest.raises(checks.ArgumentError, match="likelihood must be one of"):
    M.rnn(likelihood="laplace")


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_closed_loop_predictive_feeds_back_the_mean(name):
  """Step t's window ends with the means of steps t-1, t-2, ...; its log sigma is predict's."""
  with jax.enable_x64(True):
    model, p = _model_and_params(name)
    window = jnp.asarray(np.random.default_rng(6).standard_normal((2, 4, 1)))
    mean, log_sigma = forecast.closed_loop_predictive(model, p, window, 5)
    np.testing.assert_array_equal(mean, forecast.closed_loop(model, p, window, 5))
    w = np.asarray(window)
    for t in range(5):
      m, ls = (np.asarray(a) for a in model.predict(p, jnp.asarray(w)))
      np.testing.assert_allclose(mean[:, t], m, rtol=1e-12)
      np.testing.assert_allclose(log_sigma[:, t], ls, rtol=1e-12)
      w = np.concatenate([w[:, 1:], m[:, None]], axis=1)


def test_closed_loop_predictive_refuses_an_mse_model():
  with pytest.raises(TypeError, match="likelihood='gaussian'"):
    forecast.closed_loop_predictive(M.rnn(), M.rnn().init(jax.random.key(0)),
                                    jnp.zeros((1, 5, 1)), 3)


def test_band_of_one_gaussian_and_of_a_mixture():
  """One member: mean +- 1.645 sigma; a mixture: its quantiles solve the mixture CDF."""
  mu, sigma = np.array([[0.5, -1.0]]), np.array([[2.0, 0.1]])
  b = evaluation.band(mu, sigma)
  z = stats.norm.ppf(0.95)
  np.testing.assert_allclose(b["low"], mu[0] - z * sigma[0], rtol=1e-12)
  np.testing.assert_allclose(b["high"], mu[0] + z * sigma[0], rtol=1e-12)
  mu2, sigma2 = np.array([[0.0], [3.0]]), np.array([[1.0], [0.5]])
  b2 = evaluation.band(mu2, sigma2)
  cdf = lambda v: np.mean(stats.norm.cdf(v, mu2[:, 0], sigma2[:, 0]))
  np.testing.assert_allclose([cdf(b2["low"][0]), cdf(b2["high"][0])], [0.05, 0.95], atol=1e-6)
  np.testing.assert_allclose(b2["std"] ** 2, np.mean(sigma2 ** 2 + mu2 ** 2, 0)
                             - np.mean(mu2, 0) ** 2, rtol=1e-12)


def test_tutorial_recurrent_example_with_a_gaussian_head():
  """The sine example trains by the NLL: the forecast has a band holding the forecast, and the
  MSE default is unchanged (no band)."""
  out = E.run_rnn(steps=300, likelihood="gaussian", ensemble=2, log_every=100)
  pred = out.predictions
  assert np.all(pred["forecast_low_90"] < pred["forecast"])
  assert np.all(pred["forecast"] < pred["forecast_high_90"])
  assert pred["forecast_std_members"].shape == (2, 95, 1)
  assert "nll" in out.fit.history
  plain = E.run_rnn(steps=300, log_every=100)
  assert "forecast_std" not in plain.predictions and "nll" not in plain.fit.history
