"""One training engine for every model: many Optax steps fused into one compiled ``lax.scan``.

Data flow: ``fit`` checks its arguments, puts the training arrays on the device once, builds the
initial ``TrainState`` from the seed (or a vmapped batch of them for an ensemble) and then calls
one jitted chunk program ``steps / log_every`` times. Each chunk draws a minibatch on the device,
without replacement, for every step (a block of steps' draws at once) and applies one Optax
update per step; the program returns to Python only between chunks, to log a progress line and
collect the per-step loss terms.

Randomness: ``key = PRNGKey(seed)``, ``init_key, train_key = split(key)``, and step ``t`` uses
``fold_in(train_key, t)``, split into a minibatch key and a key for the objective. So a result
depends only on (seed, step), not on how the steps are grouped into chunks or blocks.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dljax import distributed as _dist

Array = jax.Array
Params = Any
Objective = Callable[[Params, dict, Array], tuple[Array, dict]]

log = logging.getLogger(__name__)


class TrainState(NamedTuple):
  """What a step changes. For an ensemble every leaf has a leading member axis [K, ...]."""

  step: Array  # int32 scalar: the number of steps taken
  params: Params
  opt_state: optax.OptState


class FitResult(NamedTuple):
  state: TrainState
  history: dict[str, np.ndarray]  # per-step loss terms, [steps] or [K, steps]
  timings: dict[str, float]  # seconds: total, first_chunk (includes compilation), steps_per_s

  @property
  def params(self) -> Params:
    return self.state.params


def adam(learning_rate: float = 1e-3, decay_steps: int | None = None) -> optax.GradientTransformation:
  """``optax.adam`` with b1 = 0.9, b2 = 0.999, eps = 1e-8, as the tutorial.

  With ``decay_steps`` the learning rate follows a cosine from ``learning_rate`` down to 0 at
  step ``decay_steps`` (``optax.cosine_decay_schedule``); without, it is constant (the tutorial).
  Cached: the same arguments return the same object, so the compiled training program, which
  is keyed on the optimizer, is reused across calls of ``fit``. The arguments are checked
  before the cache sees them (a list would otherwise fail as unhashable).
  """
  if not (isinstance(learning_rate, (int, float, np.integer, np.floating))
          and not isinstance(learning_rate, bool) and math.isfinite(learning_rate)
          and learning_rate > 0):
    raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate!r}")
  if decay_steps is not None:
    decay_steps = _check_int("decay_steps", decay_steps, 1)
  return _adam(float(learning_rate), decay_steps)


@functools.cache
def _adam(learning_rate: float, decay_steps: int | None) -> optax.GradientTransformation:
  if decay_steps is None:
    return optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8)
  schedule = optax.cosine_decay_schedule(learning_rate, decay_steps)
  return optax.adam(schedule, b1=0.9, b2=0.999, eps=1e-8)


def keys_from_seed(seed: int | Array) -> tuple[Array, Array]:
  """(init_key, train_key) of a seed."""
  init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
  return init_key, train_key


# Floyd's algorithm below is unrolled: its comparisons grow as batch_size^2 / 2, and its index
# arithmetic is exact in 32 bits for n up to 2^16. Larger draws use top_k of n uniforms.
FLOYD_MAX_BATCH = 32
FLOYD_MAX_N = 1 << 16


def minibatch_indices(key: Array, n: int, batch_size: int) -> Array:
  """``batch_size`` distinct indices in [0, n), a uniformly random subset, int32 [batch_size].

  Small batches (``batch_size <= 32`` and ``n <= 65536``; the tutorial's are 1, 5 and 10) use
  Floyd's algorithm (Bentley and Floyd, "A sample of brilliance", 1987): for j = n - b, ..., n - 1
  draw t uniformly from {0, ..., j} and keep t, or j if t is already kept. Every b-subset is
  equally likely, it needs b random words instead of n, and its b (b - 1) / 2 comparisons are
  elementwise, so vmapped over an ensemble it stays a few fused loops (``top_k`` over a batch of
  rows runs row by row on XLA's CPU backend: at 64 members it made the draw 4-7x dearer). t is
  floor(u (j + 1) / 2^32) for a uniform 32-bit word u (Lemire's multiply-shift), which is off
  uniform by at most (j + 1) / 2^32 relative. The order of the indices is not uniform; the
  objectives sum or average over the minibatch, so it does not matter.

  Larger batches: the ``batch_size`` largest of n i.i.d. uniforms are at a uniformly random subset
  of positions, and ``top_k`` finds them without sorting all n.
  """
  n, batch_size = _check_int("n", n, 1), _check_int("batch_size", batch_size, 1)
  if batch_size > n:
    raise ValueError(f"batch_size must be at most n ({n}), got {batch_size}")
  if batch_size == n:
    return jnp.arange(n, dtype=jnp.int32)
  if batch_size <= FLOYD_MAX_BATCH and n <= FLOYD_MAX_N:
    return _floyd(key, n, batch_size)
  return jax.lax.top_k(jax.random.uniform(key, (n,)), batch_size)[1]


def _scale_bits(u: Array, m: Array) -> Array:
  """floor(u m / 2^32) for uint32 words u and 1 <= m <= 2^16, in uint32 arithmetic.

  With u = hi 2^16 + lo: floor(u m / 2^32) = floor((hi m + floor(lo m / 2^16)) / 2^16), and
  m <= 2^16 keeps hi m + floor(lo m / 2^16) below 2^32.
  """
  return ((u >> 16) * m + (((u & 0xFFFF) * m) >> 16)) >> 16


def _floyd(key: Array, n: int, b: int) -> Array:
  j = jnp.arange(n - b, n, dtype=jnp.uint32)
  t = _scale_bits(jax.random.bits(key, (b,), jnp.uint32), j + 1)  # uniform on {0, ..., j}
  kept = [t[0]]
  for i in range(1, b):
    taken = jnp.any(jnp.stack(kept) == t[i])
    kept.append(jnp.where(taken, j[i], t[i]))
  return jnp.stack(kept).astype(jnp.int32)


def _take(data: Mapping[str, Array], idx: Array) -> dict[str, Array]:
  return {name: jnp.take(a, idx, axis=0) for name, a in data.items()}


def _update(state: TrainState, batch: Mapping[str, Array], key: Array, objective: Objective,
            optimizer: optax.GradientTransformation) -> tuple[TrainState, dict[str, Array]]:
  """One Optax step on the objective: (loss, terms), grads -> updates -> params."""
  (loss, terms), grads = jax.value_and_grad(objective, has_aux=True)(state.params, batch, key)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return TrainState(state.step + 1, params, opt_state), {"loss": loss, **terms}


@functools.partial(jax.jit, static_argnames=("objective", "optimizer"))
def train_step(state: TrainState, batch: Mapping[str, Array], key: Array, *, objective: Objective,
               optimizer: optax.GradientTransformation) -> tuple[TrainState, dict[str, Array]]:
  """One jitted step on a given minibatch, for users who write their own loop.

  ``key`` is the objective's key (used by the VAEs' reparameterisation). ``fit`` runs the same
  update, with ``key = split(fold_in(train_key, step))[1]``.
  """
  return _update(state, batch, key, objective, optimizer)


# Steps per block whose random draws are made at once, before the block's scan (see _run_chunk).
DRAW_BLOCK = 1000


def _draws_indices(n: int, batch_size: int) -> bool:
  """Whether a block's draws (see _run_chunk) hold the indices themselves: for Floyd's few words per step; not for
  ``top_k`` over n uniforms per step, whose [block, n] uniforms would be large, nor for the whole
  data set (``batch_size == n``), whose indices are a constant."""
  return batch_size < n and batch_size <= FLOYD_MAX_BATCH and n <= FLOYD_MAX_N


def _run_chunk(state: TrainState, train_key: Array, data: Mapping[str, Array], objective: Objective,
               optimizer: optax.GradientTransformation, batch_size: int,
               length: int, block: int = DRAW_BLOCK) -> tuple[TrainState, dict[str, Array]]:
  """``length`` steps as ``lax.scan``s; returns the new state and per-step terms [length].

  The steps run in blocks of ``block`` steps and a last one of the rest. Each block first makes
  every step's random draws at once (``draw`` vmapped over the block's step numbers: one
  vectorised threefry call for the whole block instead of up to three small ones inside every
  step, which XLA's CPU backend runs as loops of their own), then scans the updates over them. At
  the tutorial's sizes this made a single member's step 1.2-1.7x faster (BUILD_NOTES.md). The
  draws are the same numbers as one step at a time, so results do not depend on the blocking.
  A chunk longer than ``block`` and not a multiple of it compiles the step twice (the full
  blocks' scan and the rest's); a loop with the rest's length as a bound instead compiles it
  once but rounds an ensemble's batched matmuls differently from a plain scan.
  """
  n = next(iter(data.values())).shape[0]
  indices = _draws_indices(n, batch_size)

  def draw(t):  # step t's minibatch indices (or the key to draw them with) and objective key
    batch_key, loss_key = jax.random.split(jax.random.fold_in(train_key, t))
    return (minibatch_indices(batch_key, n, batch_size) if indices else batch_key), loss_key

  def step(state, drawn):
    batch_draw, loss_key = drawn
    idx = batch_draw if indices else minibatch_indices(batch_draw, n, batch_size)
    return _update(state, _take(data, idx), loss_key, objective, optimizer)

  def run_block(state, size):
    steps = state.step + jnp.arange(size, dtype=state.step.dtype)
    return jax.lax.scan(step, state, jax.vmap(draw)(steps))

  full, rest = divmod(length, block)
  parts = []
  if full == 1:
    state, terms = run_block(state, block)
    parts.append(terms)
  elif full > 1:
    state, terms = jax.lax.scan(lambda s, _: run_block(s, block), state, None, length=full)
    parts.append(jax.tree.map(lambda a: a.reshape(full * block, *a.shape[2:]), terms))
  if rest:
    state, terms = run_block(state, rest)
    parts.append(terms)
  if len(parts) == 1:
    return state, parts[0]
  return state, jax.tree.map(lambda *a: jnp.concatenate(a), *parts)


_STATIC = ("objective", "optimizer", "batch_size", "length")
_chunk = jax.jit(_run_chunk, static_argnames=_STATIC, donate_argnums=0)


def _run_ensemble(state, train_key, data, objective, optimizer, batch_size, length):
  """The same chunk for K members at once: vmap over (state, train_key), the data shared."""
  run = lambda s, k: _run_chunk(s, k, data, objective, optimizer, batch_size, length)
  return jax.vmap(run)(state, train_key)


_chunk_ensemble = jax.jit(_run_ensemble, static_argnames=_STATIC, donate_argnums=0)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "mesh"), donate_argnums=0)
def _chunk_sharded(state, train_key, data, objective, optimizer, batch_size, length, mesh):
  """``_chunk_ensemble`` with the members split across ``mesh``'s ``"members"`` axis.

  ``shard_map``: each device runs the vmapped chunk on its own K / D members and the whole data,
  with no communication. (Plain ``jit`` of ``_chunk_ensemble`` on the sharded state also runs,
  but XLA does not split ``top_k`` along the member axis: it all-gathers every member's
  minibatch uniforms to every device at every step.)
  """
  run = functools.partial(_run_ensemble, objective=objective, optimizer=optimizer,
                          batch_size=batch_size, length=length)
  members = jax.sharding.PartitionSpec(_dist.AXIS)
  # check_vma=False: the models' scans start from constants (e.g. h0 = 0), which shard_map's
  # type check would count as the same on every device; every output is per-member anyway.
  return jax.shard_map(run, mesh=mesh, in_specs=(members, members, jax.sharding.PartitionSpec()),
                       out_specs=members, check_vma=False)(state, train_key, data)


def init_state(model: Any, seed: int | Sequence[int], optimizer: optax.GradientTransformation,
               dtype: Any = jnp.float32) -> TrainState:
  """The state at step 0: ``model.init(init_key)`` and the optimizer's state; vmapped for seeds."""
  seeds, ensemble = _check_seed(seed)
  return _init_and_keys(model, optimizer, dtype, seeds, ensemble)[0]


def _init_and_keys(model, optimizer, dtype, seeds, ensemble) -> tuple[TrainState, Array]:
  """The initial state and the training key(s), in one compiled program."""
  seeds = jnp.asarray(seeds if ensemble else seeds[0])
  return _init(seeds, model=model, optimizer=optimizer, dtype=jnp.dtype(dtype), ensemble=ensemble)


def _init_one(model, optimizer, dtype, seed):
  init_key, train_key = keys_from_seed(seed)
  params = model.init(init_key, dtype)
  return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params)), train_key


# Initialisation is mostly threefry hashing, which XLA's optimiser spends a second on for the
# tutorial's VAE; at optimisation level 0 it compiles in a third of the time, to the same values.
@functools.partial(jax.jit, static_argnames=("model", "optimizer", "dtype", "ensemble"),
                   compiler_options={"xla_backend_optimization_level": 0})
def _init(seeds, model, optimizer, dtype, ensemble):
  init = lambda s: _init_one(model, optimizer, dtype, s)
  return (jax.vmap(init) if ensemble else init)(seeds)


@functools.partial(jax.jit, static_argnames=("ensemble",))
def _train_keys(seeds, ensemble):
  train_key = lambda s: keys_from_seed(s)[1]
  return (jax.vmap(train_key) if ensemble else train_key)(seeds)


# ----------------------------------------------------------------------------------------------
# Argument checks: all before anything is compiled.


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
  if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum
      or (maximum is not None and value > maximum)):
    want = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    raise ValueError(f"{name} must be an integer {want}, got {value!r}")
  return int(value)


MAX_SEED = 2**31 - 1  # seeds become an int32 array (one per member) before PRNGKey


def _check_seed(seed: Any) -> tuple[list[int], bool]:
  if isinstance(seed, np.ndarray | jax.Array) and seed.ndim == 0:
    seed = seed.item()  # a 0-d array of NumPy or JAX is its one value (checked below)
  if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
    return [_check_int("seed", seed, 0, MAX_SEED)], False
  if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence | np.ndarray):
    raise ValueError(f"seed must be an integer >= 0 or a sequence of them, got {seed!r}")
  seeds = [_check_int(f"seed[{i}]", s, 0, MAX_SEED) for i, s in enumerate(seed)]
  if not seeds:
    raise ValueError("seed must be an integer >= 0 or a non-empty sequence of them, got []")
  return seeds, True


def _check_data(data: Any) -> dict[str, np.ndarray]:
  if not isinstance(data, Mapping) or not data:
    raise ValueError(f"data must be a non-empty dict of arrays, got {type(data).__name__}")
  arrays, n = {}, None
  for name, a in data.items():
    try:
      a_np = np.asarray(a)
    except (TypeError, ValueError) as e:  # ragged nested lists, objects numpy cannot convert
      raise TypeError(f"data[{name!r}] must be an array, got {type(a).__name__} ({e})") from None
    if a_np.ndim < 1 or a_np.size == 0:
      raise ValueError(f"data[{name!r}] must be a non-empty array [N, ...], got shape {a_np.shape}")
    if not np.issubdtype(a_np.dtype, np.floating):
      raise TypeError(f"data[{name!r}] must be a floating array, got dtype {a_np.dtype}")
    if not np.all(np.isfinite(a_np)):
      raise ValueError(f"data[{name!r}] must be finite, got {np.sum(~np.isfinite(a_np))} NaN or "
                       f"inf values")
    if n is not None and a_np.shape[0] != n:
      raise ValueError(f"data arrays must have the same length, got {n} and "
                       f"{a_np.shape[0]} for data[{name!r}]")
    n = a_np.shape[0]
    arrays[name] = a_np
  return arrays


def _shape_str(shape: tuple[int | None, ...]) -> str:
  return "[" + ", ".join("N" if i == 0 else "*" if d is None else str(d)
                         for i, d in enumerate(shape)) + "]"


def _check_batch(model: Any, objective: Objective, arrays: Mapping[str, np.ndarray],
                 batch_size: int, dtype: Any) -> None:
  """The data against what the objective reads, before anything is compiled: against the shapes
  it declares (``objective.batch_shapes()``, as dljax's objectives do), else by tracing it on
  one minibatch of abstract arrays (``jax.eval_shape``: shapes only, nothing compiled or run),
  an error of that trace becoming a ValueError that names the data."""
  declared = getattr(objective, "batch_shapes", None)
  shapes = declared() if callable(declared) else None
  if shapes is not None:
    if set(shapes) - set(arrays):
      raise ValueError(f"data must have the arrays {sorted(shapes)} that "
                       f"{type(objective).__name__} reads, got {sorted(arrays)}")
    for name, want in shapes.items():
      got = arrays[name].shape
      if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
        raise ValueError(f"data[{name!r}] must have shape {_shape_str(want)} for "
                         f"{getattr(objective, 'model', type(objective).__name__)}, got {got}")
    return
  key = jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0))[1])  # as fit's loss key
  params = jax.eval_shape(lambda k: model.init(k, dtype), key)
  batch = {name: jax.ShapeDtypeStruct((batch_size,) + a.shape[1:], dtype)
           for name, a in arrays.items()}
  try:
    out = jax.eval_shape(objective, params, batch, key)
  except (TypeError, ValueError, KeyError, IndexError) as e:
    got = {name: a.shape for name, a in arrays.items()}
    raise ValueError(f"data must fit the objective, got shapes {got}, on which a minibatch of "
                     f"{batch_size} rows raised {type(e).__name__}: {e}") from e
  if (not isinstance(out, tuple) or len(out) != 2 or getattr(out[0], "shape", None) != ()
      or not isinstance(out[1], Mapping)):
    raise ValueError(f"objective must return (a scalar loss, a dict of terms), got {out}")
  for name, term in out[1].items():  # the history keeps one value per step and term
    if getattr(term, "shape", None) != ():
      raise ValueError(f"objective's term {name!r} must be a scalar (e.g. a minibatch mean), "
                       f"got shape {getattr(term, 'shape', type(term).__name__)}")


def check_fit_arguments(model: Any, objective: Objective, data: Mapping[str, Any], *, steps: int,
                        batch_size: int, seed: int | Sequence[int] = 0, log_every: int = 1000,
                        dtype: Any = jnp.float32) -> dict[str, Array]:
  """Checks the arguments of ``fit`` (ValueError or TypeError naming the bad one, what was
  expected and what it got), the data's shapes against the objective included; returns the
  data as device arrays of ``dtype``. Nothing is compiled."""
  _check_int("steps", steps, 1)
  _check_int("log_every", log_every, 1)
  _check_seed(seed)
  arrays = _check_data(data)
  n = next(iter(arrays.values())).shape[0]
  batch_size = _check_int("batch_size", batch_size, 1)
  if batch_size > n:
    raise ValueError(f"batch_size must be at most the number of data rows ({n}), got {batch_size}")
  if not hasattr(model, "init"):
    raise TypeError(f"model must have an init(key, dtype) method, got {type(model).__name__}")
  if not callable(objective):
    raise TypeError(f"objective must be callable, got {type(objective).__name__}")
  own = getattr(objective, "model", None)
  if own is not None and own != model:
    raise ValueError(f"objective must be built for the model trained, got an objective of "
                     f"{own!r} and model {model!r}")
  dtype = jnp.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"dtype must be a floating dtype, got {dtype}")
  dtype = jax.dtypes.canonicalize_dtype(dtype)  # float64 is float32 unless x64 is on
  _check_batch(model, objective, arrays, batch_size, dtype)
  # Only now touch the device: converted on the host and copied, so nothing is compiled here
  # (jnp.asarray(a, dtype) would compile a conversion program per shape).
  return {name: jax.device_put(np.asarray(a, dtype)) for name, a in arrays.items()}


class DivergenceError(FloatingPointError):
  """Training produced a non-finite loss or parameter; ``step`` is the first step affected and
  ``name`` the loss term (the last of them in order, so a named term before the total 'loss')
  or the parameter."""

  def __init__(self, message: str, step: int, name: str):
    super().__init__(message)
    self.step, self.name = step, name


@jax.jit
def _copy(tree: Any) -> Any:
  return jax.tree.map(jnp.copy, tree)


@jax.jit
def _finite_leaves(params: Params) -> Params:
  return jax.tree.map(lambda a: jnp.all(jnp.isfinite(a)), params)


@jax.jit
def _all_finite(params: Params) -> Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(params)]))


def _check_finite(terms: Mapping[str, np.ndarray], params: Params, first_step: int) -> None:
  """Raises DivergenceError naming the first step and loss term (or parameter) not finite.

  ``terms[name][..., i]`` is the loss at step ``first_step + i + 1`` (counting steps from 1).
  """
  first = {name: np.flatnonzero(~np.isfinite(v).reshape(-1, v.shape[-1]).all(0))
           for name, v in terms.items()}
  first = {name: int(idx[0]) for name, idx in first.items() if idx.size}
  if first:
    at = min(first.values())
    names = sorted((k for k, i in first.items() if i == at), key=lambda k: (k != "loss", k))
    step = first_step + at + 1
    listed = ", ".join(repr(k) for k in names)
    raise DivergenceError(f"training diverged at step {step}: non-finite loss terms {listed}",
                          step, names[-1])
  if bool(_all_finite(params)):  # one scalar to the host per chunk; the names only on failure
    return
  finite = jax.tree_util.tree_flatten_with_path(_finite_leaves(params))[0]
  for path, ok in finite:
    if not bool(ok):
      name = jax.tree_util.keystr(path)
      step = first_step + next(iter(terms.values())).shape[-1]
      raise DivergenceError(f"training diverged by step {step}: parameter {name} is not finite",
                            step, name)


def _check_optimizer_and_callback(optimizer: Any, callback: Any) -> None:
  if not all(callable(getattr(optimizer, f, None)) for f in ("init", "update")):
    raise TypeError(f"optimizer must be an Optax GradientTransformation (init and update), got "
                    f"{type(optimizer).__name__}")
  if callback is not None and not callable(callback):
    raise TypeError(f"callback must be callable as callback(state, terms, seconds) or None, got "
                    f"{type(callback).__name__}")


def _check_state(state: Any, model: Any, optimizer: Any, dtype: Any, seeds: list[int],
                 ensemble: bool) -> None:
  """``state`` against the tree, shapes and dtypes of ``init_state(model, seed, optimizer,
  dtype)`` (``jax.eval_shape``: traced, nothing compiled or run)."""
  if not isinstance(state, TrainState):
    raise TypeError(f"state must be a TrainState (as FitResult.state or init_state give), got "
                    f"{type(state).__name__}")
  init = lambda s: _init_one(model, optimizer, jnp.dtype(dtype), s)[0]
  want = jax.eval_shape(jax.vmap(init) if ensemble else init,
                        jax.ShapeDtypeStruct((len(seeds),) if ensemble else (), jnp.int32))
  want_leaves, want_tree = jax.tree_util.tree_flatten_with_path(want)
  got_leaves, got_tree = jax.tree_util.tree_flatten_with_path(state)
  members = f"{len(seeds)} members" if ensemble else "one seed"
  if got_tree != want_tree:
    want_paths, got_paths = ({jax.tree_util.keystr(p) for p, _ in leaves}
                             for leaves in (want_leaves, got_leaves))
    missing, extra = sorted(want_paths - got_paths), sorted(got_paths - want_paths)
    raise ValueError(f"state must hold this model's parameters and this optimizer's state, got "
                     f"a different tree (missing {missing or 'none'}, unexpected {extra or 'none'})")
  for (path, w), (_, g) in zip(want_leaves, got_leaves):
    g_shape, g_dtype = np.shape(g), getattr(g, "dtype", np.asarray(g).dtype)
    if g_shape != w.shape or g_dtype != w.dtype:
      raise ValueError(f"state{jax.tree_util.keystr(path)} must have shape {w.shape} and dtype "
                       f"{w.dtype} for this model and optimizer ({members}, dtype "
                       f"{jax.dtypes.canonicalize_dtype(dtype)}), got shape {g_shape} and dtype "
                       f"{g_dtype}")


def _check_devices(devices: Any, seeds: list[int], ensemble: bool) -> list[jax.Device] | None:
  """The devices to split the members across, or None for today's single-device program."""
  devices = _dist.resolve_devices(devices, len(seeds), ensemble)
  if (devices is not None and len(devices) == 1 and jax.process_count() == 1
      and jax.config.jax_default_device is None and devices[0] == jax.devices()[0]):
    return None  # the default device: the very same program and arrays as without devices
  return devices


def fit(model: Any, objective: Objective, data: Mapping[str, Any], *, steps: int, batch_size: int,
        seed: int | Sequence[int] = 0, optimizer: optax.GradientTransformation | None = None,
        log_every: int = 1000, dtype: Any = jnp.float32, state: TrainState | None = None,
        callback: Callable[[TrainState, dict[str, np.ndarray], float], None] | None = None,
        devices: Sequence[jax.Device] | None = None) -> FitResult:
  """Trains ``model`` on ``objective`` for ``steps`` steps of minibatch ``batch_size``.

  Args:
    model: a dljax model (anything with ``init(key, dtype) -> params``).
    objective: ``(params, batch, key) -> (loss, terms)``, e.g. ``objectives.mse(model)``.
    data: the training arrays, ``{name: [N, ...]}``; each minibatch takes the same rows of each.
    steps: number of optimizer steps (more steps on top of ``state.step`` when resuming).
    batch_size: rows per minibatch, drawn without replacement at every step.
    seed: an integer, or a sequence of integers to train an ensemble as one vmapped program.
    optimizer: an Optax optimizer; default ``adam(1e-3)``. Pass the same object again to reuse
      the compiled program.
    log_every: steps per compiled chunk, between progress lines.
    dtype: the floating dtype of parameters and data.
    state: continue from this state instead of the seed's initial one (its tree, shapes and
      dtypes must be ``init_state(model, seed, optimizer, dtype)``'s).
    callback: called after each chunk as ``callback(state, terms, seconds)`` with the state (a
      copy the callback may keep), that chunk's per-step terms and its wall time. Chunks end at
      multiples of ``log_every`` steps counted from step 0. An exception raised by the callback
      stops training.
    devices: the devices an ensemble's members are split across, K / D consecutive members per
      device (a ``"members"`` mesh axis, see ``dljax.distributed``); the data is copied to each.
      K must be a multiple of D. None: every device JAX sees (``jax.devices()``, which spans all
      processes after ``jax.distributed.initialize``) for an ensemble, the default device for a
      single seed in a single process. With one device nothing is split: the same program as
      without devices. With several processes, the state given to the callback and returned is
      gathered onto every process, so each can read (and evaluate) every member.

  Returns:
    ``FitResult(state, history, timings)``.

  Raises:
    ValueError: for a bad argument, e.g. an ensemble size that is not a multiple of the number of
      devices; before anything is compiled.
    DivergenceError: at the end of the first chunk whose loss terms or parameters are not
      finite, naming the step and the term; the callback does not see that chunk.
  """
  arrays = check_fit_arguments(model, objective, data, steps=steps, batch_size=batch_size,
                               seed=seed, log_every=log_every, dtype=dtype)
  seeds, ensemble = _check_seed(seed)
  optimizer = adam() if optimizer is None else optimizer
  _check_optimizer_and_callback(optimizer, callback)
  if state is not None:
    _check_state(state, model, optimizer, dtype, seeds, ensemble)
  devices = _check_devices(devices, seeds, ensemble)
  steps, batch_size, log_every = int(steps), int(batch_size), int(log_every)

  if state is None:
    state, train_key = _init_and_keys(model, optimizer, dtype, seeds, ensemble)
  else:  # resume: only the keys; the caller's arrays must survive the donation to the chunk
    state = jax.tree.map(jnp.copy, _dist.addressable(state))
    train_key = _train_keys(jnp.asarray(seeds if ensemble else seeds[0]), ensemble=ensemble)
  start_step = int(np.max(np.asarray(state.step)))
  if devices is not None:  # members split across the devices; jit follows these shardings
    split = _dist.member_sharding(devices) if ensemble else _dist.replicated(devices)
    state, train_key = _dist.place((state, train_key), split)
    arrays = _dist.place(arrays, _dist.replicated(devices))
  run = _chunk_ensemble if ensemble else _chunk
  if devices is not None and len(devices) > 1:
    run = functools.partial(_chunk_sharded, mesh=_dist.members_mesh(devices))

  chunks, done, t0 = [], 0, time.perf_counter()
  timings = {}
  while done < steps:
    # Chunks end at multiples of log_every (counted from step 0), so a resumed run stops where
    # an uninterrupted one does, and callbacks (checkpoints) see the same steps.
    length = min(log_every - (start_step + done) % log_every, steps - done)
    t_chunk = time.perf_counter()
    state, terms = run(state, train_key, arrays, objective=objective, optimizer=optimizer,
                       batch_size=batch_size, length=length)
    terms = jax.tree.map(np.asarray, _dist.addressable(terms))  # waits for the chunk to finish
    _check_finite(terms, state.params, start_step + done)
    done += length
    elapsed, chunk_s = time.perf_counter() - t0, time.perf_counter() - t_chunk
    timings.setdefault("first_chunk", chunk_s)
    rate = done / elapsed
    log.info("step %d/%d  loss %.5g  %.0f steps/s  %.1f s left", start_step + done,
             start_step + steps, float(np.mean(terms["loss"][..., -1])), rate,
             (steps - done) / rate)
    chunks.append(terms)
    if callback is not None:  # a copy: the chunk's state is donated to (deleted by) the next
      callback(_copy(_dist.addressable(state)) if done < steps else _dist.addressable(state),
               terms, chunk_s)
  timings["total"] = time.perf_counter() - t0
  rest = timings["total"] - timings["first_chunk"]
  rest_steps = steps - chunks[0]["loss"].shape[-1]
  timings["steps_per_s"] = rest_steps / rest if rest_steps else steps / timings["total"]
  history = {k: np.concatenate([c[k] for c in chunks], axis=-1) for k in chunks[0]}
  return FitResult(_dist.addressable(state), history, timings)
