"""dljax.metrics: RMSE and the energy distance against NumPy, SciPy and brute force."""

import numpy as np
import pytest
import scipy.integrate
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


# ----------------------------------------------------------------------------------------------
# Proper scores of Gaussian mixtures, each against an independent computation.

_RNG = np.random.default_rng(7)
_MU = _RNG.normal(size=(3, 5))  # 3 members, 5 points
_SIGMA = _RNG.uniform(0.3, 1.5, size=(3, 5))
_Y = _RNG.normal(size=5)


def _mixture_cdf(x, mu, sigma):
  return np.mean(scipy.stats.norm.cdf(x, mu, sigma))


def test_mixture_nll_against_scipy_density():
  """mixture_nll equals -log of the mean of scipy's normal pdfs over members."""
  want = -np.log(np.mean(scipy.stats.norm.pdf(_Y, _MU, _SIGMA), axis=0))
  np.testing.assert_allclose(metrics.mixture_nll(_Y, _MU, _SIGMA), want, rtol=1e-12)


def test_mixture_nll_is_not_the_members_average():
  """The mixture's NLL is at most the average of the members' NLLs (Jensen), strictly here."""
  members = -scipy.stats.norm.logpdf(_Y, _MU, _SIGMA).mean(0)
  assert np.all(metrics.mixture_nll(_Y, _MU, _SIGMA) < members)


def test_mixture_moments_against_monte_carlo():
  """Mixture mean and std against 400k draws of the mixture."""
  rng = np.random.default_rng(0)
  k = rng.integers(0, 3, size=400_000)
  draws = rng.normal(_MU[k, 0], _SIGMA[k, 0])
  mean, std = metrics.mixture_moments(_MU[:, 0], _SIGMA[:, 0])
  assert abs(mean - draws.mean()) < 5 * draws.std() / np.sqrt(len(draws))
  assert abs(std - draws.std()) < 0.01 * std


def test_mixture_moments_far_from_zero():
  """Means of 1e8 and a spread of 1e-3: the variance is exact (float64), not lost to cancellation."""
  mu = np.array([[1e8], [1e8 + 1.0]])
  sigma = np.full((2, 1), 1e-3)
  mean, std = metrics.mixture_moments(mu, sigma)
  np.testing.assert_allclose(mean, [1e8 + 0.5], rtol=0, atol=1e-7)
  np.testing.assert_allclose(std, [np.sqrt(0.25 + 1e-6)], rtol=1e-9)
  mean, std = metrics.mixture_moments(np.full((3, 1), 3e4), np.full((3, 1), 1e-4))
  np.testing.assert_allclose(std, [1e-4], rtol=1e-9)


@pytest.mark.parametrize("i", range(3))
def test_mixture_crps_against_integral(i):
  """CRPS = integral of (F(x) - 1{x >= y})^2 dx, computed by quadrature."""
  mu, sigma, y = _MU[:, i], _SIGMA[:, i], _Y[i]
  f = lambda x: (_mixture_cdf(x, mu, sigma) - (x >= y)) ** 2
  want = sum(scipy.integrate.quad(f, a, b, limit=200)[0] for a, b in ((-np.inf, y), (y, np.inf)))
  np.testing.assert_allclose(metrics.mixture_crps(y, mu, sigma), want, rtol=1e-6)


def test_gaussian_crps_closed_form():
  """For one member the CRPS is sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)]."""
  z = (_Y - _MU[0]) / _SIGMA[0]
  want = _SIGMA[0] * (z * (2 * scipy.stats.norm.cdf(z) - 1) + 2 * scipy.stats.norm.pdf(z) - 1 / np.sqrt(np.pi))
  np.testing.assert_allclose(metrics.mixture_crps(_Y, _MU[:1], _SIGMA[:1]), want, rtol=1e-10)


def test_mixture_quantile_inverts_the_cdf():
  """The mixture's CDF at its q-quantile is q."""
  for q in (0.05, 0.25, 0.5, 0.975):
    x = metrics.mixture_quantile(q, _MU, _SIGMA)
    got = np.mean(scipy.stats.norm.cdf(x[None], _MU, _SIGMA), axis=0)
    np.testing.assert_allclose(got, q, atol=1e-10)


def test_coverage_of_a_calibrated_predictive():
  """Data drawn from the predictive itself are covered at the nominal rates (20k points)."""
  rng = np.random.default_rng(1)
  n = 20_000
  mu = rng.normal(size=(4, n))
  sigma = rng.uniform(0.2, 1.0, size=(4, n))
  k = rng.integers(0, 4, size=n)
  y = rng.normal(mu[k, np.arange(n)], sigma[k, np.arange(n)])
  for level, got in metrics.coverage(y, mu, sigma).items():
    assert abs(got - level) < 4 * np.sqrt(level * (1 - level) / n)


def test_scores_reject_bad_predictives():
  """Non-positive sigma and mismatched shapes raise ValueError naming the argument."""
  with pytest.raises(ValueError, match="sigma"):
    metrics.mixture_nll(_Y, _MU, -_SIGMA)
  with pytest.raises(ValueError, match="mu and sigma"):
    metrics.mixture_crps(_Y, _MU, _SIGMA[:2])
  with pytest.raises(ValueError, match="q"):
    metrics.mixture_quantile(1.5, _MU, _SIGMA)


@pytest.mark.parametrize("score", [metrics.mixture_nll, metrics.mixture_crps, metrics.coverage])
def test_scores_refuse_y_that_would_broadcast_beyond_one_member(score):
  """y [N] against members [K, N, 1] would score an [N, N] grid, and y [K, N] per member would
  score each member alone: both are refused, naming y. y [N] against [K, N], and a scalar, are
  fine and equal the explicit shapes."""
  mu, sigma = _MU[:, :, None], _SIGMA[:, :, None]  # [3, 5, 1]
  for y in (_Y, np.broadcast_to(_Y[:, None], (3, 5, 1))):
    with pytest.raises(ValueError, match=r"y must broadcast to one member's shape \(5, 1\)"):
      score(y, mu, sigma)
  a, b = score(_Y[:, None], mu, sigma), score(_Y, _MU, _SIGMA)
  if isinstance(a, dict):
    assert a == b
  else:
    np.testing.assert_array_equal(np.ravel(a), b)
  np.testing.assert_array_equal(
      np.ravel(metrics.mixture_nll(0.5, mu, sigma)), metrics.mixture_nll(np.full(5, 0.5), _MU, _SIGMA))
