"""dljax.metrics: RMSE and the energy distance against NumPy, SciPy and brute force."""

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats

from dljax import metrics


def _energy_brute_force(x, y):
  """2 E|X - Y| - E|X - X'| - E|Y - Y'| over all pairs, by explicit double loops."""

  def mean_dist(a, b):
    return sum(np.linalg.norm(ai - bj) for ai in a for bj in b) / (len(a) * len(b))

  return 2.0 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)


def test_energy_distance_1d_is_scipy_squared():
  """In 1-D the energy distance equals scipy.stats.energy_distance(x, y) ** 2."""
  rng = np.random.default_rng(0)
  for n, m, shift in ((50, 70, 0.5), (200, 30, 0.0), (1, 5, 2.0)):
    x = rng.normal(size=n)
    y = rng.normal(size=m) * 1.5 + shift
    want = scipy.stats.energy_distance(x, y) ** 2
    np.testing.assert_allclose(metrics.energy_distance(x[:, None], y[:, None]), want, rtol=1e-9)


def test_energy_distance_2d_matches_brute_force():
  """In 2-D the energy distance equals a brute-force double loop over all pairs."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(30, 2))
  y = rng.normal(size=(20, 2)) + np.array([0.3, -0.2])
  np.testing.assert_allclose(metrics.energy_distance(x, y), _energy_brute_force(x, y), rtol=1e-10)


def test_energy_distance_over_several_blocks_matches_cdist():
  """Samples larger than the 1024-row blocks give the all-pairs value from scipy's cdist."""
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2500, 3))
  y = rng.normal(size=(1100, 3)) * 1.2
  cd = scipy.spatial.distance.cdist
  want = 2.0 * cd(x, y).mean() - cd(x, x).mean() - cd(y, y).mean()
  np.testing.assert_allclose(metrics.energy_distance(x, y), want, rtol=1e-9)


def test_energy_distance_symmetric_zero_and_positive():
  """D(x, y) = D(y, x); D(x, x) = 0; a shifted sample gives D > 0 close to the population value."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=(400, 2))
  y = rng.normal(size=(300, 2))
  d_xy, d_yx = metrics.energy_distance(x, y), metrics.energy_distance(y, x)
  np.testing.assert_allclose(d_xy, d_yx, rtol=1e-12)
  assert abs(metrics.energy_distance(x, x)) < 1e-12
  assert abs(metrics.energy_distance(x, x.copy()[::-1])) < 1e-12
  d_same = metrics.energy_distance(x, y)
  d_shift = metrics.energy_distance(x, y + np.array([1.0, 0.0]))
  assert d_same >= 0.0 and d_shift > 0.2 > d_same


def test_energy_distance_rejects_bad_shapes():
  """Samples of another dimension, without a feature axis, or empty raise ValueError."""
  for x, y in ((np.zeros((5, 2)), np.zeros((5, 3))), (np.zeros(5), np.zeros(5)),
               (np.zeros((0, 2)), np.zeros((3, 2)))):
    with pytest.raises(ValueError):
      metrics.energy_distance(x, y)


def test_rmse_matches_numpy():
  """rmse is sqrt(mean((prediction - target)^2)) over every element, as a Python float."""
  rng = np.random.default_rng(4)
  p, t = rng.normal(size=(2, 17, 3))
  got = metrics.rmse(p, t)
  assert isinstance(got, float)
  np.testing.assert_allclose(got, np.sqrt(np.mean((p - t) ** 2)), rtol=1e-12)
  np.testing.assert_allclose(metrics.rmse(p.astype(np.float32), p.astype(np.float32) + 0.5), 0.5,
                             rtol=1e-6)
  assert metrics.rmse(p, p) == 0.0


def test_rmse_rejects_shape_mismatch():
  """A prediction [N] against a target [N, 1] (or any other shape) raises ValueError."""
  with pytest.raises(ValueError, match="same shape"):
    metrics.rmse(np.zeros(5), np.zeros((5, 1)))
  with pytest.raises(ValueError, match="same shape"):
    metrics.rmse(np.zeros((5, 2)), np.zeros((5, 1)))
