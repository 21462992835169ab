"""Quality figures: RMSE, the energy distance between two samples, and proper scores (NLL, CRPS,
interval coverage) of Gaussian and Gaussian-mixture (ensemble) predictives."""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def _check_real(name: str, a) -> np.ndarray:
  """``a`` as float64, checked to be a non-empty array of finite integers or floats."""
  a = np.asarray(a)
  if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
    raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype}")
  if a.size == 0:
    raise ValueError(f"{name} must be non-empty, got shape {a.shape}")
  a = a.astype(np.float64, copy=False)
  n_bad = a.size - np.count_nonzero(np.isfinite(a))
  if n_bad:
    raise ValueError(f"{name} must be finite, got {n_bad} NaN or inf values")
  return a


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
  """sqrt(mean((prediction - target)^2)) over every element."""
  prediction, target = _check_real("prediction", prediction), _check_real("target", target)
  if prediction.shape != target.shape:
    raise ValueError(f"prediction and target must have the same shape, got {prediction.shape} "
                     f"and {target.shape}")
  return float(np.sqrt(np.mean(np.square(prediction - target))))


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
  """mean over all pairs (i, j) of |a_i - b_j| (Euclidean), by blocks to bound memory."""
  total = 0.0
  for start in range(0, a.shape[0], 1024):
    block = a[start:start + 1024]
    total += np.sqrt(np.sum(np.square(block[:, None, :] - b[None, :, :]), axis=-1)).sum()
  return total / (a.shape[0] * b.shape[0])


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
  """Szekely's energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between samples x [n, d], y [m, d].

  The expectations are over the two empirical distributions (V-statistics, i.e. all pairs, the
  zero self-distances included). In one dimension this is the square of
  ``scipy.stats.energy_distance``.
  """
  x, y = _check_real("x", x), _check_real("y", y)
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
    raise ValueError(f"x and y must be non-empty [n, d] and [m, d], got {x.shape} and {y.shape}")
  return float(2.0 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y))


# ----------------------------------------------------------------------------------------------
# Proper scores of Gaussian and Gaussian-mixture predictives (an ensemble's predictive is the
# equal-weight mixture of its members' Gaussians; scores are computed on the mixture, never as
# the average of the members' scores). Arrays broadcast elementwise; members on axis 0.


def _check_members(mu, sigma, positive: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """mu and sigma [K, ...]: same shape, members on axis 0, finite, sigma > 0 (or >= 0)."""
  mu, sigma = _check_real("mu", mu), _check_real("sigma", sigma)
  if mu.shape != sigma.shape:
    raise ValueError(f"mu and sigma must have the same shape, got {mu.shape} and {sigma.shape}")
  if mu.ndim < 1:
    raise ValueError(f"mu and sigma must have the members on axis 0, [K, ...], got shape "
                     f"{mu.shape}")
  if not np.all(sigma > 0 if positive else sigma >= 0):
    raise ValueError(f"sigma must be {'positive' if positive else 'non-negative'} everywhere, "
                     f"got minimum {float(sigma.min())}")
  return mu, sigma


def _check_predictive(y, mu, sigma):
  mu, sigma = _check_members(mu, sigma)
  y = _check_real("y", y)
  try:
    np.broadcast_shapes(y[None].shape, mu.shape)
  except ValueError:
    raise ValueError(f"y must broadcast against one member's shape {mu.shape[1:]}, got shape "
                     f"{y.shape}") from None
  return y, mu, sigma


def mixture_moments(mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and standard deviation of the equal-weight mixture of N(mu_k, sigma_k^2), k on axis 0:

    mean = mean_k mu_k,   var = mean_k (sigma_k^2 + mu_k^2) - mean^2.
  """
  mu, sigma = _check_members(mu, sigma, positive=False)
  mean = mu.mean(0)
  return mean, np.sqrt(np.maximum(np.mean(sigma**2 + mu**2, axis=0) - mean**2, 0.0))


def mixture_nll(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  """-log (1/K) sum_k N(y | mu_k, sigma_k^2), elementwise (a log-mean-exp over members, axis 0)."""
  y, mu, sigma = _check_predictive(y, mu, sigma)
  log_pdf = stats.norm.logpdf(y[None], mu, sigma)  # [K, ...]
  return -(special.logsumexp(log_pdf, axis=0) - np.log(mu.shape[0]))


def _abs_moment(m: np.ndarray, s: np.ndarray) -> np.ndarray:
  """E|X| for X ~ N(m, s^2): 2 s phi(m / s) + m (2 Phi(m / s) - 1)."""
  z = m / s
  return 2.0 * s * stats.norm.pdf(z) + m * (2.0 * stats.norm.cdf(z) - 1.0)


def mixture_crps(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  """CRPS of the equal-weight Gaussian mixture, closed form (Grimit et al., 2006), elementwise:

    CRPS = E|X - y| - E|X - X'| / 2
         = mean_k A(y - mu_k, sigma_k) - mean_{k,l} A(mu_k - mu_l, sqrt(sigma_k^2 + sigma_l^2)) / 2,
  with A(m, s) = E|N(m, s^2)|. For one member it is the Gaussian CRPS
  sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)], z = (y - mu) / sigma.
  """
  y, mu, sigma = _check_predictive(y, mu, sigma)
  first = _abs_moment(y[None] - mu, sigma).mean(0)
  pair_m = mu[:, None] - mu[None, :]
  pair_s = np.sqrt(sigma[:, None] ** 2 + sigma[None, :] ** 2)
  return first - 0.5 * _abs_moment(pair_m, pair_s).mean((0, 1))


def mixture_quantile(q: float, mu: np.ndarray, sigma: np.ndarray, iters: int = 100) -> np.ndarray:
  """The q-quantile of the equal-weight Gaussian mixture, elementwise, by bisection on its CDF."""
  if (isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating))
      or not 0.0 < q < 1.0):
    raise ValueError(f"q must be a number in (0, 1), got {q!r}")
  if isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 1:
    raise ValueError(f"iters must be an integer >= 1, got {iters!r}")
  mu, sigma = _check_members(mu, sigma)
  lo = (mu - 10 * sigma).min(0)
  hi = (mu + 10 * sigma).max(0)
  for _ in range(iters):
    mid = 0.5 * (lo + hi)
    below = stats.norm.cdf(mid[None], mu, sigma).mean(0) < q
    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
  return 0.5 * (lo + hi)


def coverage(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
             levels: tuple[float, ...] = (0.5, 0.9, 0.95)) -> dict[float, float]:
  """Fraction of y inside the mixture's central interval at each level (members on axis 0)."""
  y, mu, sigma = _check_predictive(y, mu, sigma)
  if isinstance(levels, (str, bytes)) or not isinstance(levels, (tuple, list, np.ndarray)):
    raise TypeError(f"levels must be a sequence of numbers in (0, 1), got {levels!r}")
  for i, level in enumerate(levels):
    if (isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating))
        or not 0.0 < level < 1.0):
      raise ValueError(f"levels[{i}] must be a number in (0, 1), got {level!r}")
  out = {}
  for level in levels:
    lo = mixture_quantile(0.5 - level / 2, mu, sigma)
    hi = mixture_quantile(0.5 + level / 2, mu, sigma)
    out[level] = float(np.mean((y >= lo) & (y <= hi)))
  return out
