"""The tutorial's four synthetic data sets, a standardiser, lag windows and a chronological split.

Data are made on the host with NumPy (seeded ``numpy.random.default_rng`` and SciPy's Latin
hypercube), as float32 arrays with a trailing feature axis: ``x [N, P]``, ``y [N, R]``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dljax import checks
from dljax.files import Columns, Table, load_columns, read_table  # noqa: F401 (the user's files)


class Regression(NamedTuple):
  """Training pairs and a noise-free test grid."""

  x: np.ndarray  # [N, P]
  y: np.ndarray  # [N, R]
  x_test: np.ndarray  # [N_test, P]
  y_test: np.ndarray  # [N_test, R], the noise-free function


def _float32(name: str, value: float, x, y, x_test, y_test) -> Regression:
  """The arrays as float32; ArgumentError naming ``name`` (the value that scales y) when float32
  cannot hold y or its mean and variance (a standardiser's statistics would overflow)."""
  with np.errstate(over="ignore", invalid="ignore"):
    x, y, x_test, y_test = (a.astype(np.float32) for a in (x, y, x_test, y_test))
    finite = np.all(np.isfinite(y)) and np.all(np.isfinite([y.mean(axis=0), y.std(axis=0)]))
  if not finite:
    checks.fail(name, "be small enough that the float32 data and their variance are finite",
                repr(value))
  return Regression(x, y, x_test, y_test)


def _latin_hypercube(n: int, seed: int) -> np.ndarray:
  """n points of [0, 1] by Latin hypercube sampling, [n, 1]."""
  from scipy.stats import qmc  # noqa: PLC0415 (scipy.stats takes ~0.3 s to import)

  return qmc.LatinHypercube(d=1, rng=np.random.default_rng(seed)).random(n)


def wiggle(x: np.ndarray) -> np.ndarray:
  """The network's noise-free function f(x) = x sin(4 pi x)."""
  return x * np.sin(4.0 * np.pi * x)


def sine_wiggle(seed: int = 0, n: int = 100, noise: float = 0.1, n_test: int = 1000) -> Regression:
  """The network's data: x in [0, 1] by Latin hypercube, y = x sin(4 pi x) + noise eps."""
  seed = checks.integer("seed", seed, 0)
  n, n_test = checks.integer("n", n), checks.integer("n_test", n_test)
  noise = checks.non_negative("noise", noise)
  f = wiggle
  x = _latin_hypercube(n, seed)
  eps = np.random.default_rng([seed, 1]).standard_normal((n, 1))
  x_test = np.linspace(0.0, 1.0, n_test)[:, None]
  return _float32("noise", noise, x, f(x) + noise * eps, x_test, f(x_test))


CUBIC_TRAIN_RANGE = (-4.0, 4.0)  # the Deep Ensembles toy's training inputs, x ~ U[-4, 4]
CUBIC_TEST_RANGE = (-6.0, 6.0)  # and its plotting range, beyond the data on both sides


def cube(x: np.ndarray) -> np.ndarray:
  """The Deep Ensembles toy's noise-free function f(x) = x^3."""
  return x**3


def cubic(seed: int = 0, n: int = 20, noise: float = 3.0, n_test: int = 1000) -> Regression:
  """The Deep Ensembles toy (Lakshminarayanan et al. 2017, Figure 1; from Hernandez-Lobato and
  Adams 2015): x ~ U[-4, 4] i.i.d., y = x^3 + noise eps, eps ~ N(0, 1); test grid on [-6, 6].

  x from ``default_rng(seed)``, eps from ``default_rng([seed, 1])`` (as the tutorial's data).
  """
  seed = checks.integer("seed", seed, 0)
  n, n_test = checks.integer("n", n), checks.integer("n_test", n_test)
  noise = checks.non_negative("noise", noise)
  x = np.random.default_rng(seed).uniform(*CUBIC_TRAIN_RANGE, (n, 1))
  eps = np.random.default_rng([seed, 1]).standard_normal((n, 1))
  x_test = np.linspace(*CUBIC_TEST_RANGE, n_test)[:, None]
  return _float32("noise", noise, x, cube(x) + noise * eps, x_test, cube(x_test))


def step_function(seed: int = 0, n: int = 100, noise: float = 0.1, n_test: int = 400) -> Regression:
  """The CVAE's data: x in [0, 1] by Latin hypercube, y = 1 (x <= 0.5) or 2.5 (x > 0.5), + noise eps."""
  seed = checks.integer("seed", seed, 0)
  n, n_test = checks.integer("n", n), checks.integer("n_test", n_test)
  noise = checks.non_negative("noise", noise)
  f = lambda x: np.where(x <= 0.5, 1.0, 2.5)
  x = _latin_hypercube(n, seed)
  eps = np.random.default_rng([seed, 1]).standard_normal((n, 1))
  x_test = np.linspace(0.0, 1.0, n_test)[:, None]
  return _float32("noise", noise, x, f(x) + noise * eps, x_test, f(x_test))


def noisy_ring(seed: int = 0, n: int = 1000) -> np.ndarray:
  """The VAE's data [n, 2]: y = z / 10 + z / |z|, z ~ N(0, I_2), a noisy ring of radius about 1."""
  seed, n = checks.integer("seed", seed, 0), checks.integer("n", n)
  z = np.random.default_rng(seed).standard_normal((n, 2))
  return (z / 10.0 + z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def sine_series(n: int = 100, dt: float = 0.1) -> np.ndarray:
  """The recurrent networks' series [n, 1]: y_t = sin(pi t), t = 0, dt, ..., (n - 1) dt."""
  n = checks.integer("n", n)
  dt = checks.positive("dt", dt)
  t = np.arange(n) * dt
  return np.sin(np.pi * t)[:, None].astype(np.float32)


class Standardiser(NamedTuple):
  """z = (v - mean) / std per feature, fitted on training data; a pytree of two arrays."""

  mean: np.ndarray  # [1, P]
  std: np.ndarray  # [1, P]

  @classmethod
  def fit(cls, v: np.ndarray) -> "Standardiser":
    v = np.asarray(v)
    if v.ndim != 2 or v.shape[0] < 2 or v.shape[1] < 1:
      checks.fail("v", "have shape [N >= 2, P >= 1]", v.shape)
    checks.finite_floats("v", v)
    with np.errstate(over="ignore", invalid="ignore"):
      mean, std = v.mean(axis=0, keepdims=True), v.std(axis=0, keepdims=True)
    if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(std)):
      checks.fail("v", f"have a mean and standard deviation that {v.dtype} can hold (its "
                  "arithmetic overflows)", f"mean {mean.ravel()}, std {std.ravel()}")
    if not np.all(std > 0):
      checks.fail("v", "vary in every feature to be standardised", f"std {std.ravel()}")
    return cls(mean, std)

  def _check_features(self, name: str, v) -> None:
    """v [..., P] (or a scalar): the features on the last axis, as fitted."""
    shape, P = np.shape(v), self.mean.shape[-1]
    if shape and shape[-1] != P:
      checks.fail(name, f"have the {P} fitted features on its last axis, [..., {P}]",
                  f"shape {shape}")

  def transform(self, v):
    self._check_features("v", v)
    return (v - self.mean) / self.std

  def inverse(self, z):
    self._check_features("z", z)
    return z * self.std + self.mean

  def inverse_scale(self, s):
    """A standard deviation in standardised units back in original units."""
    self._check_features("s", s)
    return s * self.std


def lag_windows(series: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
  """Windows X [T - lags, lags, D] of lagged values (oldest first) and targets Y [T - lags, D].

  X[t] = series[t : t + lags] predicts Y[t] = series[t + lags].
  """
  series = np.asarray(series)
  if series.ndim != 2 or 0 in series.shape:
    checks.fail("series", "have shape [T >= 1, D >= 1]", series.shape)
  checks.finite_floats("series", series)
  lags = checks.integer("lags", lags)
  T = series.shape[0]
  if lags >= T:
    checks.fail("lags", f"be shorter than the series (T = {T})", lags)
  idx = np.arange(T - lags)[:, None] + np.arange(lags)[None, :]  # [T - lags, lags]
  return series[idx], series[lags:]


def chronological_split(series: np.ndarray,
                        train_fraction: float = 2 / 3) -> tuple[np.ndarray, np.ndarray]:
  """The first int(train_fraction T) points for training, the rest for testing (66 / 34 of 100)."""
  series = np.asarray(series)
  if series.ndim < 1:
    checks.fail("series", "be an array [T, ...]", f"shape {series.shape}")
  train_fraction = checks.fraction("train_fraction", train_fraction)
  n_train = int(train_fraction * series.shape[0])
  if n_train < 1 or n_train >= series.shape[0]:
    raise checks.ArgumentError("train_fraction", f"train_fraction {train_fraction} leaves an "
                               f"empty part of a series of length {series.shape[0]}")
  return series[:n_train], series[n_train:]
