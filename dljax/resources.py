"""What a run needs and holds: an estimate of its memory against what is available, and its
workdir's lock.

``estimate`` adds up a training run's memory before any of it is allocated (``jax.eval_shape``
and XLA's memory analysis of the compiled chunk, lowered on abstract arguments): the compiled
chunk (state in and out, loss terms out, temporaries), the copies of the parameters and
optimizer state that the run keeps, and the loss history. It compiles the very program that
``fit`` then runs (same function, static arguments and argument types), so JAX's caches make
the run's own compilation free. ``making_data`` estimates the host memory that making a
synthetic data set takes, from its size alone. ``available`` is what the process can still
get; ``check`` raises ``TooLarge`` when an estimate exceeds it.

``WorkdirLock``: an exclusive ``fcntl.flock`` on ``workdir/run.lock``, so that one run at a time
writes a workdir; the OS releases it when the process dies, so a killed run leaves no stale lock.
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checks
from dljax import distributed as _dist
from dljax import train as T

MEMORY_LIMIT_ENV = "DLJAX_MEMORY_LIMIT"  # e.g. 4G: at most this much is taken as available
# Host bytes at the peak of making one value of a synthetic data set (float64 draws and their
# temporaries, then the float32 arrays): measured 32 for the VAE's ring, 19 for the others.
MAKE_BYTES_PER_VALUE = 40
# Copies of the loss history at the peak: the chunks' terms, fit's concatenation, and a
# checkpoint's (its concatenation, NumPy tree, payload and file bytes); of the state: the copy
# the run keeps and a checkpoint's. Measured: BUILD_NOTES.md, Log (the guard's estimate).
HISTORY_COPIES = STATE_COPIES = 5
PARTS = {"data": "making the data", "chunk": "compiled chunk", "history": "loss history",
         "state": "copies of the parameters and optimizer state"}
LOCK_FILE = "run.lock"


class Estimate(NamedTuple):
  """Bytes by part (keys of ``PARTS``), in host memory and in accelerator memory (empty on a
  CPU, where everything is host memory)."""

  host: dict[str, int]
  device: dict[str, int]


class Available(NamedTuple):
  host: int | None  # None: unknown (no check)
  device: int | None  # None: a CPU, or an accelerator that does not report its memory
  source: str  # what limits host: "MemAvailable", "the cgroup's limit" or $DLJAX_MEMORY_LIMIT


class TooLarge(Exception):
  """An estimate exceeds the available memory: ``part`` is its largest part, ``memory`` "memory"
  or "accelerator memory"."""

  def __init__(self, part: str, memory: str, needed: int, available: int, source: str,
               parts: dict[str, int]):
    listed = ", ".join(f"{PARTS[k]} {size_text(v)}" for k, v in parts.items() if v)
    super().__init__(f"the run needs an estimated {size_text(needed)} of {memory} ({listed}) and "
                     f"{size_text(available)} is available ({source})")
    self.part, self.memory, self.needed, self.available = part, memory, needed, available
    self.parts = parts


def size_text(n: float) -> str:
  for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n >= size:
      return f"{n / size:.1f} {unit}"
  return f"{int(n)} B"


def making_data(rows: int, values_per_row: int) -> Estimate:
  """The host memory that making ``rows`` rows of ``values_per_row`` values takes at its peak."""
  return Estimate({"data": int(rows) * int(values_per_row) * MAKE_BYTES_PER_VALUE}, {})


def history(members: int, steps: int, terms: int = 1, itemsize: int = 4) -> Estimate:
  """The host memory of a loss history of ``terms`` float32 terms per step and member."""
  return Estimate({"history": HISTORY_COPIES * int(members) * int(steps) * terms * itemsize}, {})


def _nbytes(tree: Any) -> int:
  return sum(int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize for a in jax.tree.leaves(tree))


def _abstract(tree: Any, sharding: Any = None) -> Any:
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)


def _program(ensemble: bool, member_data: bool, epochs: bool, devices, state, key, data,
             objective, batch_size):
  """(the jitted chunk ``fit`` runs, its extra static arguments, devices, abstract arguments)."""
  group = T.member_group(objective, state, data, batch_size, devices, member_data)
  program, static = T._chunk_program(ensemble, devices, member_data, epochs, group)
  if devices is None:
    return program, static, 1, (state, key, data)
  split, data_split = T._shardings(ensemble, devices, member_data)
  arguments = (_abstract(state, split), _abstract(key, split), _abstract(data, data_split))
  return program, static, len(devices), arguments


def estimate(model: Any, objective: Any, data: dict[str, Any], *, steps: int, batch_size: int,
             seed: Any = 0, optimizer: Any = None, log_every: int = 1000,
             dtype: Any = jnp.float32, devices: Any = None, member_data: bool = False,
             sampling: str = "subsets", compile: bool = True, joined: bool = False) -> Estimate:
  """The memory of ``train.fit`` with these arguments (checked as ``fit`` checks them), with
  nothing allocated. ``compile=False`` skips XLA's analysis: the chunk is then its state and
  loss terms only, without temporaries. ``joined``: of ``fit`` without a callback, whose program
  may join chunks (``train.join_most``); else of ``fit`` with one, as ``dljax.run`` calls it."""
  seeds, ensemble = checks.seeds(seed)
  optimizer = T.adam() if optimizer is None else optimizer
  dtype, members = jnp.dtype(dtype), len(seeds) if ensemble else 1
  init = lambda s: T._init_one(model, optimizer, dtype, s)
  state, key = jax.eval_shape(jax.vmap(init) if ensemble else init,
                              jax.ShapeDtypeStruct((members,) if ensemble else (), jnp.int32))
  cast = jax.dtypes.canonicalize_dtype(dtype)  # fit's arrays, as checks.fit_arguments casts them
  arrays = {name: jax.ShapeDtypeStruct(np.shape(a), cast) for name, a in data.items()}
  length = min(int(log_every), int(steps))
  program, static, n_devices, arguments = _program(
      ensemble, member_data, sampling == "epochs", T._check_devices(devices, seeds, ensemble),
      state, key, arrays, objective, int(batch_size))
  static = dict(static, objective=objective, optimizer=optimizer, batch_size=batch_size,
                length=length)
  most = T.join_most(T._check_devices(devices, seeds, ensemble), members,
                     int(log_every)) if joined and length == int(log_every) else 1
  if most > 1:  # fit without a callback: the program that joins chunks, its terms [most L]
    static["most"], arguments = most, (*arguments, 1)
  if not compile:
    terms = jax.eval_shape(functools.partial(program, **static), *arguments)[1]
    chunk = _nbytes(state) + _nbytes(terms)  # {name: [(K,) length]}
  else:
    lowered = program.lower(*arguments, **static)
    terms, m = lowered.out_info[1], lowered.compile().memory_analysis()
    chunk = n_devices * (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                         - m.alias_size_in_bytes) - _nbytes(arrays)
  history = HISTORY_COPIES * _nbytes(terms) * int(steps) // (length * most)
  if jax.default_backend() == "cpu":
    return Estimate({"chunk": chunk, "history": history, "state": STATE_COPIES * _nbytes(state)},
                    {})
  # The kept state is on the device, a checkpoint's copy on the host.
  return Estimate({"history": history, "state": _nbytes(state)},
                  {"chunk": chunk, "state": (STATE_COPIES - 1) * _nbytes(state)})


def _read_int(path: str) -> int | None:
  try:
    with open(path) as f:
      text = f.read().strip()
  except OSError:
    return None
  return int(text) if text.isdigit() else None


def _cgroup_headroom() -> int | None:
  """The process's cgroup memory limit less its usage (cgroup v2 or v1); None without one."""
  try:
    with open("/proc/self/cgroup") as f:
      entries = [line.strip().split(":", 2) for line in f if line.count(":") >= 2]
  except OSError:
    return None
  for _, controllers, path in entries:
    v2 = controllers == ""
    if not (v2 or "memory" in controllers.split(",")):
      continue
    root = "/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/memory"
    files = ("memory.max", "memory.current") if v2 else ("memory.limit_in_bytes",
                                                           "memory.usage_in_bytes")
    for folder in (root + path, root):  # a container often sees its own cgroup as the root
      limit, usage = (_read_int(os.path.join(folder, name)) for name in files)
      if limit is not None and usage is not None and limit < 2**60:
        return max(limit - usage, 0)
  return None


def _env_limit() -> int | None:
  text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
  if not text:
    return None
  match = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([KMGT]?)(?:i?B)?", text, re.IGNORECASE)
  if not match:
    checks.fail(MEMORY_LIMIT_ENV, "be a size such as 4G, 512M or 1000000 (bytes)", repr(text))
  return int(float(match[1]) * 1024 ** "_KMGT".index(match[2].upper() or "_"))


def available(device: bool = True) -> Available:
  """Host memory the process can still get (the least of the kernel's MemAvailable, its cgroup's
  limit less usage and $DLJAX_MEMORY_LIMIT) and, on an accelerator (with ``device``: this
  starts JAX's backend), its devices' free memory."""
  host, source = None, "MemAvailable"
  try:
    with open("/proc/meminfo") as f:
      host = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
  except (OSError, StopIteration):
    pass
  for limit, what in ((_cgroup_headroom(), "the cgroup's limit"),
                      (_env_limit(), f"${MEMORY_LIMIT_ENV}")):
    if limit is not None and (host is None or limit < host):
      host, source = limit, what
  device = None
  if device and jax.default_backend() != "cpu":
    stats = [d.memory_stats() for d in jax.local_devices()]
    if all(s and "bytes_limit" in s for s in stats):
      device = sum(s["bytes_limit"] - s.get("bytes_in_use", 0) for s in stats)
  return Available(host, device, source)


def check(needed: Estimate, have: Available | None = None) -> None:
  """Raises ``TooLarge`` when ``needed`` exceeds what is available (``available()`` if None)."""
  have = available(device=bool(needed.device)) if have is None else have
  for parts, limit, memory, source in ((needed.host, have.host, "memory", have.source),
                                       (needed.device, have.device, "accelerator memory",
                                        "its devices' free memory")):
    total = sum(parts.values())
    if limit is not None and parts and total > limit:
      raise TooLarge(max(parts, key=parts.get), memory, total, limit, source, parts)


class WorkdirBusy(RuntimeError):
  """Another process holds ``workdir``'s lock; ``pid`` is its process id (None: not known)."""

  def __init__(self, workdir: str, pid: int | None):
    holder = "another process" if pid is None else f"process {pid}"
    super().__init__(f"{workdir} is in use by another run ({holder})")
    self.workdir, self.pid = workdir, pid


_HELD: dict[str, list] = {}  # real path of a workdir -> [descriptor, holders, lock, created]


class WorkdirLock:
  """Holds ``workdir/run.lock`` (created with the workdir if needed) until ``release``; taking it
  again in the same process only counts. Raises WorkdirBusy when another process holds it. The
  file holds the holder's pid and is removed on release; ``created`` is whether the workdir
  was made for it (``release(remove_workdir=True)`` then removes it if still empty)."""

  def __init__(self, workdir: str):
    self.workdir, self.created = os.fspath(workdir), not os.path.isdir(workdir)
    os.makedirs(self.workdir, exist_ok=True)
    self.key, self.path = os.path.realpath(self.workdir), os.path.join(self.workdir, LOCK_FILE)
    self.held = True
    if self.key in _HELD:
      _HELD[self.key][1] += 1
      return
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise WorkdirBusy(self.workdir, int(text) if text.isdigit() else None) from None
      try:  # its previous holder may have removed it meanwhile: then lock the new one
        if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
          break
      except FileNotFoundError:
        pass
      os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[self.key] = [fd, 1, self.path, self.created]

  def release(self, remove_workdir: bool = False) -> None:
    held = _HELD.get(self.key) if self.held else None
    if held is None:
      return
    self.held, held[1] = False, held[1] - 1
    if held[1] == 0:
      _unlock(self.key)
    if remove_workdir and self.created and not os.listdir(self.workdir):
      os.rmdir(self.workdir)


def _unlock(key: str) -> str | None:
  """Releases ``key``'s lock; the workdir if it was made for the lock, else None."""
  fd, _, path, created = _HELD.pop(key)
  if os.path.exists(path):
    os.unlink(path)  # while still locked, so that nobody else holds this file
  os.close(fd)
  return os.path.dirname(path) if created else None


def release_all() -> None:
  """Releases every workdir this process holds (before ``os._exit``); one made for its lock
  is removed if it is still empty."""
  for key in list(_HELD):
    made = _unlock(key)
    if made and not os.listdir(made):
      os.rmdir(made)
