"""Closed-loop forecasting: each prediction is fed back as the newest lag, as in the tutorial."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array


@functools.partial(jax.jit, static_argnames=("model", "horizon"))
def closed_loop(model: Any, params: Any, window: Array, horizon: int) -> Array:
  """Predicts ``horizon`` steps ahead from starting windows, as one ``lax.scan``.

  Args:
    model: a recurrent model (``apply(params, Y [B, lags, D]) -> [B, D]``) whose output
      dimension equals its input dimension.
    params: the model's parameters.
    window: starting windows [B, lags, D], oldest value first.
    horizon: the number of predictions (>= 1).

  Returns:
    Predictions [B, horizon, D]; prediction t is made from the window that ends with
    predictions t - 1, t - 2, ... (and the starting values before them).
  """
  if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
    raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
  if window.ndim != 3:
    raise ValueError(f"window must have shape [batch, lags, dim], got {window.shape}")
  if getattr(model, "out_dim", window.shape[2]) != window.shape[2]:
    raise ValueError(f"the model's out_dim ({model.out_dim}) must equal the window's dim "
                     f"({window.shape[2]}) to feed predictions back")

  def step(window, _):
    y = model.apply(params, window)  # [B, D]
    return jnp.concatenate([window[:, 1:], y[:, None, :]], axis=1), y

  _, ys = jax.lax.scan(step, window, None, length=horizon)  # [horizon, B, D]
  return jnp.swapaxes(ys, 0, 1)
