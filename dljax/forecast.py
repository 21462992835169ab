"""Closed-loop forecasting: each prediction is fed back as the newest lag, as in the tutorial.

A Gaussian model (``likelihood="gaussian"``) feeds back its mean; ``closed_loop_predictive``
also returns the log sigma it predicts at each step (a band from the predicted variances, not
one that propagates the uncertainty of the values fed back).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checks

Array = jax.Array


def closed_loop(model: Any, params: Any, window: Array, horizon: int) -> Array:
  """Predicts ``horizon`` steps ahead from starting windows, as one compiled ``lax.scan``.

  Args:
    model: a recurrent model (``apply(params, Y [B, lags, D]) -> [B, D]``) whose output
      dimension equals its input dimension.
    params: the model's parameters.
    window: starting windows [B, lags, D], oldest value first, floating and finite.
    horizon: the number of predictions (>= 1).

  Returns:
    Predictions [B, horizon, D]; prediction t is made from the window that ends with
    predictions t - 1, t - 2, ... (and the starting values before them).

  The arguments are checked here, before anything is traced or compiled; the values of
  ``window`` too, unless it is a tracer (``closed_loop`` called inside a transformation).
  """
  return _closed_loop(model, params, window, _check(model, window, horizon))


def closed_loop_predictive(model: Any, params: Any, window: Array,
                           horizon: int) -> tuple[Array, Array]:
  """``closed_loop`` of a Gaussian model (``predict(params, Y) -> (mean, log sigma)``): the means
  fed back, [B, horizon, D], and the log sigma predicted at each step, [B, horizon, D]."""
  horizon = _check(model, window, horizon)
  if not callable(getattr(model, "predict", None)) or getattr(model, "likelihood",
                                                              "gaussian") != "gaussian":
    checks.fail("model", "have a Gaussian predict(params, window) (likelihood='gaussian')",
                type(model).__name__, kind=checks.ArgumentTypeError)
  return _closed_loop(model, params, window, horizon, True)


def _check(model: Any, window: Any, horizon: Any) -> int:
  """Checks closed_loop's arguments; returns the horizon."""
  horizon = checks.integer("horizon", horizon)
  if not callable(getattr(model, "apply", None)):
    checks.fail("model", "have an apply(params, window) method", type(model).__name__,
                kind=checks.ArgumentTypeError)
  shape = jnp.shape(window)
  if len(shape) != 3:
    checks.fail("window", "have shape [batch, lags, dim]", shape)
  if 0 in shape:
    checks.fail("window", "be non-empty, [batch >= 1, lags >= 1, dim >= 1]", shape)
  checks.floating("window", window)
  if getattr(model, "in_dim", shape[2]) != shape[2]:
    checks.fail("window", f"have the model's in_dim ({model.in_dim}) as its dim", f"shape {shape}")
  if getattr(model, "out_dim", shape[2]) != shape[2]:
    checks.fail("model", f"have an out_dim equal to the window's dim ({shape[2]}) to feed "
                "predictions back", f"out_dim {model.out_dim}")
  if not isinstance(window, jax.core.Tracer):
    checks.finite("window", np.asarray(window))
  return horizon


@functools.partial(jax.jit, static_argnames=("model", "horizon", "gaussian"))
def _closed_loop(model: Any, params: Any, window: Array, horizon: int, gaussian: bool = False):
  def step(window, _):
    out = model.predict(params, window) if gaussian else model.apply(params, window)  # [B, D]
    y = out[0] if gaussian else out
    return jnp.concatenate([window[:, 1:], y[:, None, :]], axis=1), out

  _, ys = jax.lax.scan(step, window, None, length=horizon)  # [horizon, B, D] (each)
  return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), ys)


# The compiled programs, as jax.jit has them.
closed_loop._cache_size = closed_loop_predictive._cache_size = _closed_loop._cache_size
