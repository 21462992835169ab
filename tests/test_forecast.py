"""dljax.forecast.closed_loop against a plain Python loop over model.apply."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dljax import forecast, models

_BUILDERS = {"rnn": models.rnn, "lstm": models.lstm}


def _random_params(model, seed, dtype=jnp.float32):
  """N(0, 0.5^2) parameters with the structure of model.init, by jax.eval_shape (no compile)."""
  shapes = jax.eval_shape(lambda k: model.init(k, dtype), jax.random.key(0))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.standard_normal(s.shape), dtype), shapes)


def _setup(kind, lags=5, batch=3, dim=2, seed=0):
  """A recurrent model with dim inputs and outputs, random float64 params and starting windows."""
  model = _BUILDERS[kind](in_dim=dim, hidden=4, out_dim=dim)
  params = _random_params(model, seed, jnp.float64)
  window = jnp.asarray(np.random.default_rng(seed + 1).normal(size=(batch, lags, dim)))
  return model, params, window


def _python_loop(model, params, window, horizon):
  preds, apply = [], jax.jit(model.apply)
  for _ in range(horizon):
    y = apply(params, window)  # [B, D]
    preds.append(np.asarray(y))
    window = jnp.concatenate([window[:, 1:, :], y[:, None, :]], axis=1)
  return np.stack(preds, axis=1)  # [B, horizon, D]


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_closed_loop_matches_python_loop(kind):
  """closed_loop(model, params, window [3, 5, 2], 7) is feeding apply's outputs back by hand."""
  with jax.enable_x64(True):
    model, params, window = _setup(kind)
    got = np.asarray(forecast.closed_loop(model, params, window, 7))
    want = _python_loop(model, params, window, 7)
  assert got.shape == (3, 7, 2)
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
  # Not constant: a loop that forgot to shift the window would repeat its first prediction.
  assert np.abs(got[:, 1] - got[:, 0]).max() > 1e-3


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_closed_loop_horizon_one_is_one_apply(kind):
  """With horizon 1 the forecast is a single model.apply on the starting windows."""
  with jax.enable_x64(True):
    model, params, window = _setup(kind, lags=4)
    got = np.asarray(forecast.closed_loop(model, params, window, 1))
    want = np.asarray(jax.jit(model.apply)(params, window))
  assert got.shape == (3, 1, 2)
  np.testing.assert_allclose(got[:, 0], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("horizon", [0, -1, 2.0, True])
def test_closed_loop_rejects_bad_horizon(horizon):
  """A horizon that is not an integer >= 1 raises a ValueError naming horizon."""
  model = models.rnn(in_dim=2, out_dim=2)
  params = _random_params(model, 0)
  with pytest.raises(ValueError, match="horizon"):
    forecast.closed_loop(model, params, jnp.zeros((3, 5, 2)), horizon)


def test_closed_loop_rejects_out_dim_not_equal_to_window_dim():
  """A model whose out_dim differs from the window's dim raises ValueError."""
  model = models.rnn(in_dim=2, out_dim=1)
  params = _random_params(model, 0)
  with pytest.raises(ValueError, match="out_dim"):
    forecast.closed_loop(model, params, jnp.zeros((3, 5, 2)), 4)


def test_closed_loop_rejects_window_of_wrong_rank():
  """A window that is not [batch, lags, dim] raises ValueError."""
  model = models.rnn()
  params = _random_params(model, 0)
  with pytest.raises(ValueError, match="window"):
    forecast.closed_loop(model, params, jnp.zeros((5, 1)), 4)


def test_closed_loop_does_not_recompile_for_same_shapes():
  """A second call with same shapes and an equal model reuses the compiled program."""
  model = models.rnn(in_dim=2, out_dim=2)
  params = _random_params(model, 0)
  window = jnp.zeros((3, 5, 2))
  forecast.closed_loop(model, params, window, 7)
  before = forecast.closed_loop._cache_size()
  params2 = _random_params(model, 1)
  out = forecast.closed_loop(models.rnn(in_dim=2, out_dim=2), params2, window + 1.0, 7)
  assert out.shape == (3, 7, 2)
  assert forecast.closed_loop._cache_size() == before
  forecast.closed_loop(model, params, window, 8)  # a new horizon is a new program
  assert forecast.closed_loop._cache_size() == before + 1


def test_closed_loop_traces_apply_once_per_shape():
  """model.apply is traced once per compilation (one scan body), not once per step or per call."""
  traces = []

  @dataclasses.dataclass(frozen=True)
  class CountingModel:
    out_dim: int = 2

    def apply(self, params, Y):
      traces.append(Y.shape)
      return Y[:, -1, :] * params["a"] + params["c"]  # y_t = a * y_{t-1} + c

  model = CountingModel()
  params = {"a": jnp.full((1, 2), 0.5), "c": jnp.ones((1, 2))}
  window = jnp.zeros((3, 4, 2))
  out = np.asarray(forecast.closed_loop(model, params, window, 6))
  forecast.closed_loop(model, params, window + 2.0, 6)
  assert traces == [(3, 4, 2)]
  # Closed form of y_t = a y_{t-1} + c from y_0 = 0: y_t = c (1 - a^t) / (1 - a).
  t = np.arange(1, 7)
  want = np.broadcast_to((2.0 * (1.0 - 0.5 ** t))[None, :, None], (3, 6, 2))
  np.testing.assert_allclose(out, want, rtol=1e-6)
