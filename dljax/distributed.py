"""Splitting an ensemble's members across devices, on one machine or several processes.

An ensemble's state has a leading member axis [K, ...]. ``fit`` puts that axis on a one-axis
``jax.sharding.Mesh`` named ``"members"`` over the chosen devices, K / D consecutive members per
device (``NamedSharding(mesh, P("members"))``), and the training data fully replicated
(``P()``). The compiled chunk is the same jitted, vmapped program: ``jit`` follows the inputs'
shardings, each device runs its own members and no data moves between devices during training.

With several processes (``jax.distributed.initialize``), ``jax.devices()`` lists every process's
devices, the mesh spans them all and each process holds only its own members' shards. Every
process computes the same initial state (cheap) and keeps the slices of its devices;
``addressable`` gathers the members back to every process (a collective) for callbacks,
results and evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dljax import checks

AXIS = "members"


def resolve_devices(devices: Sequence[jax.Device] | None, members: int, ensemble: bool,
                    name: str = "seed") -> list[jax.Device] | None:
  """The devices to split ``members`` members across; None: the default device, as before.

  ``devices=None`` means every device of every process (``jax.devices()``) for an ensemble, or
  whenever several processes run; a single seed in a single process stays on the default
  device. The number of members must be a multiple of the number of devices (ValueError naming
  ``name``, the number of devices and the number of members); a single seed is one member.
  """
  if devices is None:
    if not ensemble and jax.process_count() == 1:
      return None
    devices = jax.devices()
  if isinstance(devices, jax.Device) or not isinstance(devices, Sequence | np.ndarray):
    checks.fail("devices", "be a sequence of jax.Device", type(devices).__name__,
                kind=checks.ArgumentTypeError)
  devices = list(devices)
  if not devices or not all(isinstance(d, jax.Device) for d in devices):
    checks.fail("devices", "be a non-empty sequence of jax.Device", repr(devices),
                kind=checks.ArgumentTypeError)
  if len(set(devices)) != len(devices):
    checks.fail("devices", "be distinct", repr(devices))
  n = len(devices)
  if members % n:
    if ensemble:
      raise checks.ArgumentError(name, f"{name}: an ensemble of K={members} members cannot be split evenly across "
                       f"{n} devices; K must be a multiple of the device count {n} (pass "
                       f"devices=[...] to use fewer devices)")
    raise checks.ArgumentError(name, f"{name}: a single seed trains one model (K=1), which cannot be split across "
                     f"{n} devices; give an ensemble whose size K is a multiple of the device "
                     f"count {n}, or devices=[one device]")
  return devices


def usable_cores() -> int:
  """The CPU cores this process may run on (its affinity mask where the OS has one)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def cpu_devices_for(members: int, cores: int | None = None) -> int:
  """How many CPU devices to split an ensemble of ``members`` across: the largest divisor of
  ``members`` that is at most ``cores`` (default: ``usable_cores()``); 1 for a single model.

  XLA's CPU backend runs the tiny per-member operations of one program largely on one core; as
  several devices (``jax.config.update("jax_num_cpu_devices", n)`` before any JAX operation),
  each runs its own members' program beside the others (measured: BUILD_NOTES.md).
  """
  members = checks.integer("members", members)
  cores = checks.integer("cores", usable_cores() if cores is None else cores)
  return max(d for d in range(1, min(int(members), int(cores)) + 1) if members % d == 0)


def members_mesh(devices: Sequence[jax.Device]) -> Mesh:
  """A one-axis mesh named ``"members"`` over ``devices``, in their order."""
  return Mesh(np.asarray(devices, dtype=object), (AXIS,))


def member_sharding(devices: Sequence[jax.Device]) -> NamedSharding:
  """The leading (member) axis split across ``devices``; the other axes whole."""
  return NamedSharding(members_mesh(devices), PartitionSpec(AXIS))


def replicated(devices: Sequence[jax.Device]) -> NamedSharding:
  """A full copy on each of ``devices``."""
  return NamedSharding(members_mesh(devices), PartitionSpec())


def place(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """Every array of ``tree`` laid out by ``sharding``.

  In one process this is ``jax.device_put``. When the sharding spans other processes' devices,
  each process must pass the same full values; it keeps the slices of its own devices.
  """
  if sharding.is_fully_addressable:
    return jax.device_put(tree, sharding)

  def one(a):
    host = np.asarray(a)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  return jax.tree.map(one, tree)


def addressable(tree: Any) -> Any:
  """``tree`` with every array readable by this process: an array spread over other processes'
  devices is gathered (``multihost_utils.process_allgather``) into a full copy on this process's
  default device. Nothing happens (and nothing is copied) in a single process.

  A collective when something is gathered: every process must call it with the same tree.
  """
  if jax.process_count() == 1:
    return tree

  def one(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      return jax.numpy.asarray(multihost_utils.process_allgather(a, tiled=True))
    return a

  return jax.tree.map(one, tree)
