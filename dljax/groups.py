"""An ensemble's members in groups on a CPU: how many run at once in a chunk (``dljax.train``).

A group's steps' values (every intermediate array of a step, unfused, from the jaxpr of the
objective's gradient) must fit in a cache-sized budget, so that the group's working set stays
in the cache while the groups run one after another.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

# On a CPU an ensemble's chunk runs its members in groups whose steps' values (all of a step's
# intermediate arrays, unfused) total at most this many bytes over the process's devices (or
# one member at a time), one group after another, so that the groups' working sets stay in the
# cache (BUILD_NOTES.md, Decisions: member groups).
MEMBER_GROUP_BYTES = 24 * 2**20


def jaxpr_bytes(jaxpr) -> int:
  """The bytes of every value a jaxpr's equations make, those of inner jaxprs included."""
  total = 0
  for eqn in jaxpr.eqns:
    total += sum(int(np.prod(v.aval.shape)) * v.aval.dtype.itemsize for v in eqn.outvars
                 if hasattr(v.aval, "shape"))
    for param in eqn.params.values():
      for inner in param if isinstance(param, (tuple, list)) else (param,):
        inner = getattr(inner, "jaxpr", inner)  # a ClosedJaxpr's Jaxpr
        total += jaxpr_bytes(inner) if hasattr(inner, "eqns") else 0
  return total


@functools.cache
def step_bytes(objective, treedef, leaves, batch) -> int:
  """The bytes of a step's values for one member (params given as a treedef and abstract leaves)."""
  params, key = jax.tree.unflatten(treedef, leaves), jax.eval_shape(jax.random.PRNGKey, 0)
  grad = jax.value_and_grad(objective, has_aux=True)
  return jaxpr_bytes(jax.make_jaxpr(grad)(params, dict(batch), key).jaxpr)


def member_group(objective: Callable, state: Any, data: Mapping[str, Any],
                 batch_size: int, devices=None, member_data: bool = False) -> int | None:
  """Members per group in an ensemble's chunk (``state``'s leaves [K, ...]): on a CPU, the most
  members of a device (a divisor of its K / D) whose steps' values fit in its share of
  MEMBER_GROUP_BYTES among this process's devices; None, all at once, on an accelerator or when
  they all fit, and for a single seed (a scalar ``state.step``)."""
  platform = devices[0].platform if devices else jax.default_backend()
  if platform != "cpu" or state.step.ndim == 0:
    return None
  members = state.step.shape[0] // (len(devices) if devices else 1)
  if members < 2:
    return None
  local = sum(d.process_index == jax.process_index() for d in devices) if devices else 1
  lead = 2 if member_data else 1
  batch = tuple((name, jax.ShapeDtypeStruct((batch_size, *a.shape[lead:]), a.dtype))
                for name, a in data.items())
  leaves, treedef = jax.tree.flatten(state.params)
  leaves = tuple(jax.ShapeDtypeStruct(a.shape[1:], a.dtype) for a in leaves)
  per_member = step_bytes(objective, treedef, leaves, batch)
  group = max(g for g in range(1, members + 1)
              if members % g == 0 and (g == 1 or g * per_member * local <= MEMBER_GROUP_BYTES))
  return None if group == members else group
