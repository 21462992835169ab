"""dljax.data: the four data sets of docs/settings.md; lag windows, split, standardiser."""

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.stats

from dljax import data

_REGRESSION = {
    "sine_wiggle": (data.sine_wiggle, lambda x: x * np.sin(4.0 * np.pi * x), 1000),
    "step_function": (data.step_function, lambda x: np.where(x <= 0.5, 1.0, 2.5), 400),
}


# ----------------------------------------------------------------------------------------------
# The regression data sets (neural network: sine_wiggle; CVAE: step_function).


@pytest.mark.parametrize("name", list(_REGRESSION))
def test_regression_shapes_dtypes_and_test_grid(name):
  """N = 100 training pairs [100, 1], the noise-free f on np.linspace(0, 1, N_test); all float32."""
  make, f, n_test = _REGRESSION[name]
  d = make()
  assert [a.shape for a in d] == [(100, 1), (100, 1), (n_test, 1), (n_test, 1)]
  assert all(a.dtype == np.float32 for a in d)
  grid = np.linspace(0.0, 1.0, n_test)
  np.testing.assert_array_equal(d.x_test[:, 0], grid.astype(np.float32))
  np.testing.assert_array_equal(d.y_test[:, 0], f(grid).astype(np.float32))


@pytest.mark.parametrize("name", list(_REGRESSION))
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_regression_inputs_are_a_latin_hypercube_of_unit_interval(name, seed):
  """x lies in [0, 1] with exactly one point in each of the N strata [k/N, (k+1)/N)."""
  make = _REGRESSION[name][0]
  for n in (100, 37):
    x = make(seed=seed, n=n).x[:, 0].astype(np.float64)
    assert x.min() >= 0.0 and x.max() <= 1.0
    strata = np.minimum(np.floor(x * n), n - 1).astype(int)
    np.testing.assert_array_equal(np.sort(strata), np.arange(n))


@pytest.mark.parametrize("name", list(_REGRESSION))
def test_regression_noise_has_std_one_tenth_at_default_size(name):
  """At N = 100, y - f(x) has std in [0.07, 0.13] (about 4 SE), mean within 0.04 of 0."""
  make, f, _ = _REGRESSION[name]
  for seed in range(5):
    d = make(seed=seed)
    r = d.y[:, 0].astype(np.float64) - f(d.x[:, 0].astype(np.float64))
    assert 0.07 < r.std() < 0.13, (seed, r.std())
    assert abs(r.mean()) < 0.04, (seed, r.mean())


@pytest.mark.parametrize("name", list(_REGRESSION))
def test_regression_noise_is_gaussian_with_std_one_tenth_at_large_size(name):
  """At n = 20000, y - f(x) has std 0.1 and mean 0 within 5 SE, and is N(0, 0.01) by KS."""
  make, f, _ = _REGRESSION[name]
  n = 20_000
  d = make(seed=3, n=n)
  r = d.y[:, 0].astype(np.float64) - f(d.x[:, 0].astype(np.float64))
  assert abs(r.std() - 0.1) < 5.0 * 0.1 / np.sqrt(2.0 * n)
  assert abs(r.mean()) < 5.0 * 0.1 / np.sqrt(n)
  assert scipy.stats.kstest(r, scipy.stats.norm(0.0, 0.1).cdf).pvalue > 1e-3


@pytest.mark.parametrize("name", list(_REGRESSION))
def test_regression_is_reproducible_by_seed(name):
  """The same seed gives identical arrays; another seed gives other inputs and noise."""
  make = _REGRESSION[name][0]
  a, b, c = make(seed=4), make(seed=4), make(seed=5)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  assert not np.array_equal(a.x, c.x) and not np.array_equal(a.y, c.y)
  np.testing.assert_array_equal(a.x_test, c.x_test)


@pytest.mark.parametrize("name", list(_REGRESSION))
def test_regression_noise_argument_scales_residuals(name):
  """noise = 0 gives y = f(x) exactly (to float32), and the residuals scale linearly with noise."""
  make, f, _ = _REGRESSION[name]
  d0, d1, d3 = make(seed=2, noise=0.0), make(seed=2, noise=0.1), make(seed=2, noise=0.3)
  x = d0.x[:, 0].astype(np.float64)
  np.testing.assert_allclose(d0.y[:, 0], f(x), atol=1e-6)
  r1, r3 = d1.y[:, 0] - f(x), d3.y[:, 0] - f(x)
  np.testing.assert_allclose(r3, 3.0 * r1, atol=1e-5)


@pytest.mark.parametrize("name", list(_REGRESSION))
@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_regression_rejects_bad_sizes(name, n):
  """n and n_test must be integers >= 1."""
  make = _REGRESSION[name][0]
  with pytest.raises(ValueError, match=r"^n must"):
    make(n=n)
  with pytest.raises(ValueError, match=r"^n_test must"):
    make(n_test=n)


# ----------------------------------------------------------------------------------------------
# The VAE's noisy ring.


def test_noisy_ring_shape_dtype_and_reproducibility():
  """The default ring is [1000, 2] float32; equal seeds give equal arrays, other seeds others."""
  y = data.noisy_ring()
  assert y.shape == (1000, 2) and y.dtype == np.float32
  np.testing.assert_array_equal(y, data.noisy_ring(seed=0))
  assert not np.array_equal(y, data.noisy_ring(seed=1))


def test_noisy_ring_radius_is_one_plus_a_tenth_of_a_rayleigh():
  """|y| = 1 + |z| / 10, |z| Rayleigh(1): |y| >= 1, mean 1 + sqrt(pi/2)/10 within 5 SE, KS."""
  n = 10_000
  y = data.noisy_ring(seed=3, n=n).astype(np.float64)
  radius = np.linalg.norm(y, axis=1)
  assert radius.min() >= 1.0 - 1e-6
  mean, sd = 1.0 + np.sqrt(np.pi / 2.0) / 10.0, np.sqrt(2.0 - np.pi / 2.0) / 10.0
  assert abs(radius.mean() - mean) < 5.0 * sd / np.sqrt(n), radius.mean()
  assert abs(radius.mean() - 1.0) < 0.15  # a ring of radius about 1
  assert scipy.stats.kstest(10.0 * (radius - 1.0), "rayleigh").pvalue > 1e-3


def test_noisy_ring_angle_is_uniform():
  """The angle of y is uniform on [-pi, pi] and z = 10 (|y| - 1) y / |y| is N(0, I), by KS."""
  n = 10_000
  y = data.noisy_ring(seed=4, n=n).astype(np.float64)
  angle = np.arctan2(y[:, 1], y[:, 0])
  assert scipy.stats.kstest(angle, scipy.stats.uniform(-np.pi, 2.0 * np.pi).cdf).pvalue > 1e-3
  radius = np.linalg.norm(y, axis=1, keepdims=True)
  z = 10.0 * (radius - 1.0) * y / radius
  for j in range(2):
    assert scipy.stats.kstest(z[:, j], "norm").pvalue > 1e-3
  assert abs(np.corrcoef(z.T)[0, 1]) < 5.0 / np.sqrt(n)


# ----------------------------------------------------------------------------------------------
# The recurrent networks' series, its split and lag windows.


def test_sine_series_is_sin_pi_t():
  """sine_series() is sin(pi t) for t = 0, 0.1, ..., 9.9, [100, 1] float32, to float32 precision."""
  s = data.sine_series()
  assert s.shape == (100, 1) and s.dtype == np.float32
  np.testing.assert_allclose(s[:, 0], np.sin(np.pi * np.arange(100) * 0.1), rtol=0, atol=1e-6)
  np.testing.assert_allclose(s[:, 0], np.sin(np.pi * np.linspace(0.0, 9.9, 100)), rtol=0, atol=1e-6)


def test_chronological_split_is_66_34():
  """The default split of the 100-point series trains on its first 66 points, tests on 34."""
  s = data.sine_series()
  train, test = data.chronological_split(s)
  assert train.shape == (66, 1) and test.shape == (34, 1)
  np.testing.assert_array_equal(np.concatenate([train, test]), s)
  np.testing.assert_array_equal(train, s[:66])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 1.5, 0.001])
def test_chronological_split_rejects_empty_parts(fraction):
  """A fraction outside (0, 1), or one that leaves a part empty, raises ValueError."""
  with pytest.raises(ValueError, match="train_fraction"):
    data.chronological_split(np.zeros((100, 1)), fraction)


def _lag_windows_loop(series, lags):
  X, Y = [], []
  for t in range(series.shape[0] - lags):
    X.append([series[t + k] for k in range(lags)])
    Y.append(series[t + lags])
  return np.array(X), np.array(Y)


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(st.integers(2, 30).flatmap(
    lambda T: st.tuples(st.just(T), st.integers(1, 3), st.integers(1, T - 1))))
def test_lag_windows_matches_python_loop(sizes):
  """lag_windows is a Python loop: X [T - lags, lags, D], X[t, k] = s[t + k], Y[t] = s[t + lags]."""
  T, D, lags = sizes
  series = np.random.default_rng(T * 100 + D * 10 + lags).normal(size=(T, D))
  X, Y = data.lag_windows(series, lags)
  assert X.shape == (T - lags, lags, D) and Y.shape == (T - lags, D)
  X_ref, Y_ref = _lag_windows_loop(series, lags)
  np.testing.assert_array_equal(X, X_ref)
  np.testing.assert_array_equal(Y, Y_ref)


def test_lag_windows_of_the_tutorials_training_series():
  """Windows of 5 (RNN) and 10 (LSTM) lags of the 66 training points give 61 and 56 pairs."""
  train, _ = data.chronological_split(data.sine_series())
  for lags, count in ((5, 61), (10, 56)):
    X, Y = data.lag_windows(train, lags)
    assert X.shape == (count, lags, 1) and Y.shape == (count, 1)
    np.testing.assert_array_equal(X[-1, :, 0], train[-lags - 1:-1, 0])
    np.testing.assert_array_equal(Y[-1], train[-1])


@pytest.mark.parametrize("T,lags", [(5, 5), (5, 6), (1, 1), (10, 0), (10, -2)])
def test_lag_windows_rejects_bad_lags(T, lags):
  """lags >= T or lags < 1 raises a ValueError naming lags."""
  with pytest.raises(ValueError, match="lags"):
    data.lag_windows(np.zeros((T, 2)), lags)


def test_lag_windows_rejects_series_without_feature_axis():
  """A series [T] (no feature axis) raises ValueError."""
  with pytest.raises(ValueError, match="series"):
    data.lag_windows(np.zeros(10), 3)


# ----------------------------------------------------------------------------------------------
# Standardiser.


def test_standardiser_transform_and_inverse():
  """transform gives mean 0, std 1 per feature on the fitting data; inverse(transform(v)) = v."""
  rng = np.random.default_rng(6)
  v = rng.normal(size=(200, 3)) * np.array([0.01, 1.0, 300.0]) + np.array([5.0, -2.0, 1e3])
  s = data.Standardiser.fit(v)
  assert s.mean.shape == (1, 3) and s.std.shape == (1, 3)
  z = s.transform(v)
  np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-10)
  np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-10)
  np.testing.assert_allclose(s.inverse(z), v, rtol=1e-12, atol=1e-12)
  w = rng.normal(size=(7, 3))
  np.testing.assert_allclose(s.inverse(s.transform(w)), w, rtol=1e-10, atol=1e-10)
  np.testing.assert_allclose(s.inverse_scale(np.ones((1, 3))), v.std(axis=0, keepdims=True))


def test_standardiser_rejects_constant_columns_and_bad_shapes():
  """A constant column, a single row or a 1-D array raises ValueError."""
  v = np.random.default_rng(7).normal(size=(10, 3))
  v[:, 1] = 4.0
  with pytest.raises(ValueError, match="vary"):
    data.Standardiser.fit(v)
  with pytest.raises(ValueError):
    data.Standardiser.fit(np.ones((1, 3)))
  with pytest.raises(ValueError):
    data.Standardiser.fit(np.arange(10.0))
