"""dljax.digits: the offline loader (no network), the dequantisation's density, and each
baseline against an independent reference: PPCA's closed form (Tipping and Bishop 1999), one
Gaussian's maximum-likelihood fit, the normal equations, and a large sample from a known model."""

import math
import sys

import numpy as np
import pytest
from scipy import integrate, stats
from helpers import modules_loaded_by

from dljax import checks, digits

# The first image of scikit-learn's digits (a zero), as published with the data set.
FIRST_IMAGE = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0,
               0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0,
               0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]


def _sklearn():
  pytest.importorskip("sklearn", reason="the data extra: pip install -e '.[data]'")


def test_loader_reads_the_wheels_file_without_network(no_network):
  _sklearn()
  pixels = digits.load()
  assert pixels.shape == (1797, 64) and pixels.dtype == np.float64
  assert np.array_equal(pixels, np.round(pixels)) and set(np.unique(pixels)) == set(range(17))
  assert pixels[0].tolist() == FIRST_IMAGE
  train, test = digits.split(pixels)
  assert train.shape == (1500, 64) and test.shape == (297, 64)
  assert np.array_equal(np.concatenate([train, test]), pixels)
  x, y = digits.halves(pixels)
  assert np.array_equal(x[0], np.reshape(FIRST_IMAGE, (8, 8))[:4].ravel())
  assert np.array_equal(y[0], np.reshape(FIRST_IMAGE, (8, 8))[4:].ravel())


def test_import_leaves_sklearn_for_later_and_its_absence_says_what_to_install(monkeypatch):
  assert modules_loaded_by("import dljax.digits", ["sklearn"]) == []
  monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
  with pytest.raises(ImportError, match=r"pip install -e '\.\[data\]'"):
    digits.load()


@pytest.mark.parametrize("k", [0, 7, 16])
def test_dequantisation_density_is_one_on_its_cell_and_zero_off_it(k):
  density = lambda y: math.exp(digits.dequantisation_log_density([y], [k]))  # noqa: E731
  lo, hi = k / 17, (k + 1) / 17
  mass, _ = integrate.quad(density, lo, hi)
  assert mass == pytest.approx(1.0, abs=1e-10)
  assert integrate.quad(density, 0, 1, points=[lo, hi])[0] == pytest.approx(1.0, abs=1e-10)
  assert digits.dequantisation_log_density([lo - 1e-9], [k]) == -np.inf
  assert digits.dequantisation_log_density([hi], [k]) == -np.inf  # the cell is half-open


def test_cells_partition_the_unit_interval_and_bound_the_discrete_likelihood():
  """A density p on [0, 1] gives pixel k the mass P(k) of its cell: the masses sum to 1, and
  E_u[log p(y) - log q(y | k)] <= log P(k) (Jensen), the bound a dequantised model reports."""
  p = stats.truncnorm(-0.4 / 0.3, 0.6 / 0.3, loc=0.4, scale=0.3)
  mass = np.array([integrate.quad(p.pdf, k / 17, (k + 1) / 17)[0] for k in range(17)])
  assert mass.sum() == pytest.approx(1.0, abs=1e-10)

  def log_ratio(u, k):
    y = (k + u) / 17
    return p.logpdf(y) - digits.dequantisation_log_density([y], [k])

  for k in (0, 5, 16):
    bound, _ = integrate.quad(log_ratio, 0, 1, args=(k,))
    assert bound <= math.log(mass[k]) < bound + 0.01


def test_test_images_are_one_fixed_draw_inside_each_pixels_cell():
  rng = np.random.default_rng(5)
  pixels = rng.integers(0, 17, (297, 64)).astype(np.float64)
  images = digits.fixed_dequantisation(pixels)
  assert images.dtype == np.float32 and images.shape == (297, 64)
  assert np.array_equal(images, digits.fixed_dequantisation(pixels))
  assert not np.array_equal(images, digits.fixed_dequantisation(pixels, seed=1))
  u = np.random.default_rng(0).uniform(size=pixels.shape)
  assert np.allclose(images, (pixels + u) / 17, rtol=0, atol=1e-7)
  offset = images.astype(np.float64) * 17 - pixels
  assert offset.min() >= 0 and offset.max() < 1
  np.testing.assert_allclose(digits.dequantisation_log_density(images, pixels),
                             64 * math.log(17), rtol=1e-14)
  assert np.array_equal(digits.dequantise(pixels, 0 * u), pixels / 17)


def test_test_images_stay_inside_where_float32_rounding_would_leave_a_cell():
  """Seed 66 on all-16 pixels rounds one value of (16 + u) / 17 up to 1 in float32."""
  pixels = np.full((297, 64), 16.0)
  rounded = ((pixels + np.random.default_rng(66).uniform(size=pixels.shape)) / 17)
  rounded = rounded.astype(np.float32)
  assert np.isinf(digits.dequantisation_log_density(rounded, pixels)).any()
  images = digits.fixed_dequantisation(pixels, seed=66)
  assert np.all(np.isfinite(digits.dequantisation_log_density(images, pixels)))
  assert np.abs(images - rounded).max() <= np.spacing(np.float32(1))


def _correlated(n, d, seed):
  rng = np.random.default_rng(seed)
  return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)


@pytest.mark.parametrize("latent", [1, 2, 5])
def test_ppca_equals_the_closed_form(latent):
  """Tipping and Bishop's maximum of the likelihood, with scikit-learn's sample covariance
  (divided by N - 1): sigma^2 the mean of the discarded eigenvalues, W = U_q (L_q - sigma^2)^1/2."""
  _sklearn()
  train, test = _correlated(200, 6, 0), _correlated(50, 6, 0) + 0.1
  eigenvalues, vectors = np.linalg.eigh(np.cov(train.T, ddof=1))
  eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
  sigma2 = eigenvalues[latent:].mean()
  W = vectors[:, :latent] * np.sqrt(eigenvalues[:latent] - sigma2)
  reference = stats.multivariate_normal(train.mean(0), W @ W.T + sigma2 * np.eye(6))
  got = digits.ppca_log_likelihood(train, test, latent)
  assert got == pytest.approx(reference.logpdf(test).mean(), rel=1e-10, abs=1e-8)


def test_gmm_of_one_component_is_the_gaussian_maximum_likelihood_fit():
  _sklearn()
  train, test = _correlated(300, 5, 1), _correlated(80, 5, 2)
  covariance = np.cov(train.T, ddof=0) + 1e-6 * np.eye(5)  # scikit-learn's reg_covar
  reference = stats.multivariate_normal(train.mean(0), covariance).logpdf(test).mean()
  assert digits.gmm_log_likelihood(train, test, n_components=1) == pytest.approx(
      reference, rel=1e-9)
  assert digits.gmm_log_likelihood(train, test, n_components=3) > reference - 1


def test_linear_gaussian_equals_the_normal_equations_and_scipy():
  x, y = _correlated(300, 4, 3), _correlated(300, 3, 4)
  y = y + x[:, :3] @ np.diag([1.0, -2.0, 0.5])
  design = np.column_stack([x, np.ones(300)])
  coef = np.linalg.solve(design.T @ design, design.T @ y)
  residuals = y - design @ coef
  Sigma = residuals.T @ residuals / 300
  model = digits.linear_gaussian_fit(x, y)
  assert model.W.shape == (4, 3) and model.b.shape == (3,) and model.Sigma.shape == (3, 3)
  np.testing.assert_allclose(model.W, coef[:4], rtol=1e-9, atol=1e-10)
  np.testing.assert_allclose(model.b, coef[4], rtol=1e-9, atol=1e-10)
  np.testing.assert_allclose(model.Sigma, Sigma, rtol=1e-9)
  x_test, y_test = _correlated(40, 4, 5), _correlated(40, 3, 6)
  want = [stats.multivariate_normal(x_n @ coef[:4] + coef[4], Sigma).logpdf(y_n)
          for x_n, y_n in zip(x_test, y_test)]
  got = digits.linear_gaussian_log_likelihood(model, x_test, y_test)
  assert got.shape == (40,)
  np.testing.assert_allclose(got, want, rtol=1e-9)


def test_linear_gaussian_recovers_a_known_model_and_its_entropy():
  """200000 draws: W and b within 0.02 (~9 standard errors), Sigma within 2%, and the mean
  log-likelihood of fresh data within 0.01 nats of -(R log 2 pi + log det Sigma + R) / 2."""
  rng = np.random.default_rng(7)
  W, b = np.array([[1.0, -0.5], [0.3, 2.0], [0.0, 0.7]]), np.array([0.2, -1.0])
  Sigma = np.array([[0.5, 0.3], [0.3, 0.4]])
  draw = lambda n: (lambda x: (x, x @ W + b + rng.multivariate_normal(  # noqa: E731
      np.zeros(2), Sigma, n)))(rng.standard_normal((n, 3)))
  model = digits.linear_gaussian_fit(*draw(200_000))
  assert np.abs(model.W - W).max() < 0.02 and np.abs(model.b - b).max() < 0.02
  np.testing.assert_allclose(model.Sigma, Sigma, rtol=0.02)
  closed_form = -0.5 * (2 * math.log(2 * math.pi) + math.log(np.linalg.det(Sigma)) + 2)
  mean = digits.linear_gaussian_log_likelihood(model, *draw(200_000)).mean()
  assert mean == pytest.approx(closed_form, abs=0.01)


def test_baselines_on_the_real_digits():
  """The linear-Gaussian completion on the real, ill-conditioned halves agrees with scipy."""
  _sklearn()
  train, test = digits.split(digits.load())
  train = digits.dequantise(train, np.random.default_rng(1).uniform(size=train.shape))
  test = digits.fixed_dequantisation(test)
  model = digits.linear_gaussian_fit(*digits.halves(train))
  x, y = digits.halves(test)
  got = digits.linear_gaussian_log_likelihood(model, x, y)
  want = stats.multivariate_normal(np.zeros(32), model.Sigma).logpdf(y - x @ model.W - model.b)
  np.testing.assert_allclose(got, want, rtol=1e-8)
  assert digits.ppca_log_likelihood(train, test, 8) > digits.ppca_log_likelihood(train, test, 2)


def _model():
  return digits.LinearGaussian(np.zeros((2, 1)), np.zeros(1), np.eye(1))


@pytest.mark.parametrize("call,argument", [
    (lambda: digits.split(np.zeros((100, 64))), "pixels"),
    (lambda: digits.split(np.zeros((1797, 63))), "pixels"),
    (lambda: digits.halves(np.zeros((5, 63))), "images"),
    (lambda: digits.dequantise(np.full(3, 17.0), np.zeros(3)), "pixels"),
    (lambda: digits.dequantise(np.full(3, 1.5), np.zeros(3)), "pixels"),
    (lambda: digits.dequantise(np.zeros(3), np.ones(3)), "u"),
    (lambda: digits.dequantise(np.zeros(3), np.zeros(4)), "u"),
    (lambda: digits.fixed_dequantisation(np.zeros((2, 64)), seed=-1), "seed"),
    (lambda: digits.dequantisation_log_density(np.zeros((2, 3)), np.zeros(4)), "pixels"),
    (lambda: digits.dequantisation_log_density([np.nan], [0]), "y"),
    (lambda: digits.ppca_log_likelihood(np.zeros((20, 6)), np.zeros((5, 6)), 0), "latent"),
    (lambda: digits.ppca_log_likelihood(np.zeros((20, 6)), np.zeros((5, 6)), 7), "latent"),
    (lambda: digits.ppca_log_likelihood(np.zeros((20, 6)), np.zeros((5, 5)), 2), "test"),
    (lambda: digits.ppca_log_likelihood(np.full((20, 6), np.inf), np.zeros((5, 6)), 2), "train"),
    (lambda: digits.ppca_log_likelihood(np.zeros(20), np.zeros((5, 6)), 2), "train"),
    (lambda: digits.gmm_log_likelihood(np.zeros((20, 6)), np.zeros((5, 6)), 0), "n_components"),
    (lambda: digits.linear_gaussian_fit(np.zeros((20, 2)), np.zeros((19, 1))), "y"),
    (lambda: digits.linear_gaussian_fit(np.zeros((3, 2)), np.zeros((3, 1))), "x"),
    (lambda: digits.linear_gaussian_log_likelihood(_model(), np.zeros((4, 3)), np.zeros((4, 1))),
     "x"),
    (lambda: digits.linear_gaussian_log_likelihood(_model()._replace(Sigma=-np.eye(1)),
                                                   np.zeros((4, 2)), np.zeros((4, 1))), "model"),
    (lambda: digits.linear_gaussian_log_likelihood(_model()._replace(b=np.zeros(2)),
                                                   np.zeros((4, 2)), np.zeros((4, 1))), "model.b"),
])
def test_bad_arguments_name_the_argument(call, argument):
  with pytest.raises(checks.ArgumentError, match=f"^{argument} must ") as e:
    call()
  assert e.value.argument == argument


def test_a_model_that_is_not_a_linear_gaussian_is_a_type_error():
  with pytest.raises(checks.ArgumentTypeError, match="^model must be a LinearGaussian"):
    digits.linear_gaussian_log_likelihood((1, 2, 3), np.zeros((4, 2)), np.zeros((4, 1)))
