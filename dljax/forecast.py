"""Closed-loop forecasting: each prediction is fed back as the newest lag, as in the tutorial."""

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
  return _closed_loop(model, params, window, horizon)


@functools.partial(jax.jit, static_argnames=("model", "horizon"))
def _closed_loop(model: Any, params: Any, window: Array, horizon: int) -> Array:
  def step(window, _):
    y = model.apply(params, window)  # [B, D]
    return jnp.concatenate([window[:, 1:], y[:, None, :]], axis=1), y

  _, ys = jax.lax.scan(step, window, None, length=horizon)  # [horizon, B, D]
  return jnp.swapaxes(ys, 0, 1)


closed_loop._cache_size = _closed_loop._cache_size  # the compiled programs, as jax.jit has it
