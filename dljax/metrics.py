"""Quality figures for the examples: RMSE and the energy distance between two samples."""

from __future__ import annotations

import numpy as np


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
  """sqrt(mean((prediction - target)^2)) over every element."""
  prediction, target = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
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
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
    raise ValueError(f"x and y must be non-empty [n, d] and [m, d], got {x.shape} and {y.shape}")
  return float(2.0 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y))
