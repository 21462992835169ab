"""Small helpers shared by several test modules (imported as ``helpers``: pytest puts tests/ on
the path)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import optax

from dljax import models as M
from dljax import objectives as O

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def objective_for(model):
  """The objective each of the tutorial's models trains on: Gaussian NLL for the network, MSE for
  the recurrent ones, the negative ELBO for the VAEs."""
  if isinstance(model, M.MLP):
    return O.gaussian_nll(model)
  if isinstance(model, (M.RNN, M.LSTM)):
    return O.mse(model)
  return O.neg_elbo(model)


def modules_loaded_by(statement, prefixes):
  """The modules among ``prefixes`` (a name or any submodule of it) that ``statement`` loads in
  a fresh interpreter started in the repository, sorted."""
  code = (f"import json, sys; {statement}; print(json.dumps(sorted({{p for p in "
          f"{list(prefixes)!r} for m in sys.modules if m == p or m.startswith(p + '.')}})))")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  return json.loads(out.stdout)


def nan_after(n):
  """Passes updates through, except that update number n + 1 onwards (1-based) are NaN."""

  def init(params):
    return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

  def update(updates, state, params=None):
    poison = jnp.where(state.count >= n, jnp.nan, 1.0)
    updates = jax.tree.map(lambda u: u * poison.astype(u.dtype), updates)
    return updates, optax.ScaleByScheduleState(count=state.count + 1)

  return optax.GradientTransformation(init, update)
