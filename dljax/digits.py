"""scikit-learn's digits (``--dataset=digits``), dequantised, and their exact classical baselines.

``load()`` gives the 1797 images of 8x8 pixels, values 0..16, from the file that scikit-learn
ships in its wheel (``pip install -e '.[data]'``; no network); the first 1500 train, the last
297 test. A pixel k becomes y = (k + u) / 17 with u ~ U(0, 1), so a log-likelihood is a density
on [0, 1]^64 in nats per image. The baselines: probabilistic PCA and a Gaussian mixture on the
images, and for completion (x the top four rows, y the bottom four) a linear-Gaussian model
y = x W + b + e, e ~ N(0, Sigma).
"""

from __future__ import annotations

import importlib
import math
from typing import Any, NamedTuple

import numpy as np

from dljax import checks

LEVELS = 17  # a pixel's values 0..16
N_TRAIN = 1500  # the first images train, the rest test
N_PIXELS = 64
SIDE = 8
TEST_SEED = 0  # the fixed draw of u for the test images


class LinearGaussian(NamedTuple):
  """y = x W + b + e, e ~ N(0, Sigma): W [P, R], b [R], Sigma [R, R]."""

  W: np.ndarray
  b: np.ndarray
  Sigma: np.ndarray


def _sklearn(module: str) -> Any:
  try:
    return importlib.import_module(f"sklearn.{module}")
  except ImportError as e:
    raise ImportError("dljax.digits needs scikit-learn: pip install -e '.[data]'") from e


def _matrix(name: str, a: Any, columns: int | None = None) -> np.ndarray:
  """A finite real array [N, columns] (any columns for None), as float64."""
  checks.shape(name, a, (None, columns))
  return checks.real_array(name, a)


def _pixels(name: str, pixels: Any) -> np.ndarray:
  """Integer pixel values in [0, 16], any shape, as float64."""
  pixels = checks.real_array(name, pixels)
  bad = pixels[(pixels != np.round(pixels)) | (pixels < 0) | (pixels >= LEVELS)]
  if bad.size:
    checks.fail(name, f"hold integers in [0, {LEVELS - 1}]",
                f"{bad.size} other values, e.g. {bad[0]}")
  return pixels


def _rows(names: tuple[str, str], a: np.ndarray, b: np.ndarray) -> None:
  if len(a) != len(b):
    checks.fail(names[1], f"have as many rows as {names[0]} ({len(a)})", len(b))


def _model(model: Any) -> LinearGaussian:
  """A LinearGaussian of finite float64 W [P, R], b [R] and Sigma [R, R]."""
  if not isinstance(model, LinearGaussian):
    checks.fail("model", "be a LinearGaussian", type(model).__name__,
                kind=checks.ArgumentTypeError)
  W = _matrix("model.W", model.W)
  checks.shape("model.b", model.b, (W.shape[1],))
  checks.shape("model.Sigma", model.Sigma, W.shape[1:] * 2)
  return LinearGaussian(W, checks.real_array("model.b", model.b),
                        checks.real_array("model.Sigma", model.Sigma))


def load() -> np.ndarray:
  """The 1797 images as float64 [1797, 64] pixel values 0..16, rows of 8 pixels in order."""
  return np.asarray(_sklearn("datasets").load_digits().data, np.float64)


def split(pixels: Any) -> tuple[np.ndarray, np.ndarray]:
  """(train [1500, 64], test [N - 1500, 64]): the first ``N_TRAIN`` images, the rest."""
  pixels = _matrix("pixels", pixels, N_PIXELS)
  if len(pixels) <= N_TRAIN:
    checks.fail("pixels", f"have more than {N_TRAIN} rows", len(pixels))
  return pixels[:N_TRAIN], pixels[N_TRAIN:]


def dequantise(pixels: Any, u: Any) -> np.ndarray:
  """(pixels + u) / 17 as float64, of pixels and u in [0, 1) of one shape (any)."""
  pixels = _pixels("pixels", pixels)
  u = checks.real_array("u", u)
  checks.shape("u", u, pixels.shape)
  if not np.all((u >= 0) & (u < 1)):
    checks.fail("u", "lie in [0, 1)", f"values in [{u.min()}, {u.max()}]")
  return (pixels + u) / LEVELS


def fixed_dequantisation(pixels: Any, seed: int = TEST_SEED) -> np.ndarray:
  """The test images' fixed dequantisation, float32 of the pixels' shape, u drawn by
  ``np.random.default_rng(seed).uniform``; each value is inside its pixel's cell."""
  pixels = _pixels("pixels", pixels)
  seed = checks.integer("seed", seed, 0)
  exact = dequantise(pixels, np.random.default_rng(seed).uniform(size=pixels.shape))
  y = exact.astype(np.float32)
  # Rounding to float32 can land on a cell's edge; one float32 step inward is inside the cell.
  y = np.where(y < pixels / LEVELS, np.nextafter(y, np.float32(1)), y)
  return np.where(y >= (pixels + 1) / LEVELS, np.nextafter(y, np.float32(0)), y)


def dequantisation_log_density(y: Any, pixels: Any) -> np.ndarray:
  """log q(y | pixels) of y [..., D] given pixels [..., D] (broadcast): log 17 per pixel with y
  in its cell [k / 17, (k + 1) / 17), else -inf; summed over the last axis, shape [...]."""
  y, pixels = checks.real_array("y", y), _pixels("pixels", pixels)
  try:
    shape = np.broadcast_shapes(y.shape, pixels.shape)
  except ValueError:
    checks.fail("pixels", f"broadcast against y's shape {y.shape}", pixels.shape)
  if not shape:
    checks.fail("y", "have a last axis of pixels", y.shape)
  inside = (y >= pixels / LEVELS) & (y < (pixels + 1) / LEVELS)
  return np.where(inside, math.log(LEVELS), -np.inf).sum(-1)


def halves(images: Any) -> tuple[np.ndarray, np.ndarray]:
  """(x [N, 32], y [N, 32]) of images [N, 64]: the top four rows, the bottom four."""
  checks.shape("images", images, (None, N_PIXELS))
  images = np.asarray(images)
  half = N_PIXELS // 2
  return images[:, :half], images[:, half:]


def ppca_log_likelihood(train: Any, test: Any, latent: int) -> float:
  """Mean test log-likelihood (nats per row) of probabilistic PCA with ``latent`` components
  fitted on train [N, D] (scikit-learn's PCA, covariance divided by N - 1); test [M, D]."""
  train = _matrix("train", train)
  test = _matrix("test", test, train.shape[1])
  latent = checks.integer("latent", latent, 1, min(train.shape))
  pca = _sklearn("decomposition").PCA(n_components=latent).fit(train)
  return float(pca.score(test))


def gmm_log_likelihood(train: Any, test: Any, n_components: int = 10, seed: int = 0) -> float:
  """Mean test log-likelihood (nats per row) of a full-covariance Gaussian mixture fitted on
  train [N, D] by scikit-learn (its reg_covar 1e-6 added to each covariance); test [M, D]."""
  train = _matrix("train", train)
  test = _matrix("test", test, train.shape[1])
  n_components = checks.integer("n_components", n_components, 1, len(train))
  seed = checks.integer("seed", seed, 0, checks.MAX_SEED)
  mixture = _sklearn("mixture").GaussianMixture(n_components, covariance_type="full",
                                                random_state=seed)
  return float(mixture.fit(train).score(test))


def linear_gaussian_fit(x: Any, y: Any) -> LinearGaussian:
  """Least squares of y [N, R] on [x, 1], x [N, P]; Sigma the residuals' covariance over N."""
  x = _matrix("x", x)
  y = _matrix("y", y)
  _rows(("x", "y"), x, y)
  need = x.shape[1] + 1 + y.shape[1]  # fewer rows leave Sigma singular
  if len(x) < need:
    checks.fail("x", f"have at least P + 1 + R = {need} rows", len(x))
  design = np.column_stack([x, np.ones(len(x))])
  coef, *_ = np.linalg.lstsq(design, y, rcond=None)
  residuals = y - design @ coef
  return LinearGaussian(coef[:-1], coef[-1], residuals.T @ residuals / len(x))


def linear_gaussian_log_likelihood(model: LinearGaussian, x: Any, y: Any) -> np.ndarray:
  """log N(y_n; x_n W + b, Sigma) [N] of x [N, P] and y [N, R], by Sigma's Cholesky factor."""
  from scipy import linalg  # noqa: PLC0415

  model = _model(model)
  P, R = model.W.shape
  x, y = _matrix("x", x, P), _matrix("y", y, R)
  _rows(("x", "y"), x, y)
  try:
    L = linalg.cholesky(model.Sigma, lower=True)
  except linalg.LinAlgError:
    checks.fail("model", "have a positive definite Sigma", "a singular or indefinite one")
  z = linalg.solve_triangular(L, (y - x @ model.W - model.b).T, lower=True)
  log_det = 2 * np.log(np.diag(L)).sum()
  return -0.5 * (np.square(z).sum(0) + log_det + R * math.log(2 * math.pi))
