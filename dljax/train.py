"""One training engine for every model: many Optax steps fused into one compiled ``lax.scan``.

Data flow: ``fit`` checks its arguments (``dljax.checks``), puts the training arrays on the
device once, builds the initial ``TrainState`` from the seed (or a vmapped batch of them for an
ensemble) and then calls one jitted chunk program ``steps / log_every`` times. Each chunk draws
every step's minibatch on the device (``dljax.sampler``) and applies one Optax update per step;
the program returns to Python only between chunks, to log a progress line and collect the
per-step loss terms (``dljax.chunks``: the loop, which dispatches each short chunk before the
host handles the last one's outputs). Checkpoints, resume and signals around ``fit``:
``dljax.run``.

Randomness: ``key = PRNGKey(seed)``, ``init_key, train_key = split(key)``, and step ``t`` uses
``fold_in(train_key, t)``, split into a minibatch key and a key for the objective. So a result
depends only on (seed, step), not on how the steps are grouped into chunks or blocks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dljax import checks, chunks, sampler
from dljax import distributed as _dist
from dljax.chunks import DivergenceError  # noqa: F401 (raised by fit; dljax.train's name for it)
from dljax.groups import member_group

Array = jax.Array
Params = Any
Objective = Callable[[Params, dict, Array], tuple[Array, dict]]
Callback = Callable[["TrainState", dict[str, np.ndarray], float], None]

check_fit_arguments = checks.fit_arguments  # what fit checks first; examples check ahead with it

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


def adam(learning_rate: float = 1e-3,
         decay_steps: int | None = None) -> optax.GradientTransformation:
  """``optax.adam`` with b1 = 0.9, b2 = 0.999, eps = 1e-8, as the tutorial.

  With ``decay_steps`` the learning rate follows a cosine from ``learning_rate`` down to 0 at
  step ``decay_steps`` (``optax.cosine_decay_schedule``); without, it is constant (the tutorial).
  Cached: the same arguments return the same object, so the compiled training program, which
  is keyed on the optimizer, is reused across calls of ``fit``. The arguments are checked
  before the cache sees them (a list would otherwise fail as unhashable).
  """
  learning_rate = checks.positive("learning_rate", learning_rate)
  if decay_steps is not None:
    decay_steps = checks.integer("decay_steps", decay_steps)
  return _adam(learning_rate, decay_steps)


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


def _take(data: Mapping[str, Array], idx: Array) -> dict[str, Array]:
  # The indices are in bounds by construction, so no bounds handling: take's default "fill"
  # adds a mask per row, "clip" a clamp of the indices (BUILD_NOTES.md, Decisions: the gather).
  return {name: a.at[idx].get(mode="promise_in_bounds") for name, a in data.items()}


# A single model's gradient is taken under a vmap over a singleton axis when its minibatches have
# at least this many rows: XLA's CPU backend then computes the weight gradients (dW = H^T G, which
# contract the batch) in the faster orientation (BUILD_NOTES.md, Decisions: the lifted gradient).
LIFT_MIN_ROWS = 100


def _update(state: TrainState, batch: Mapping[str, Array], key: Array, objective: Objective,
            optimizer: optax.GradientTransformation,
            lifted: bool | None = None) -> tuple[TrainState, dict[str, Array]]:
  """One Optax step on the objective: (loss, terms), grads -> updates -> params. ``lifted``: the
  gradient of a vmap over a singleton axis (the same maths, compiled to other loops); None: from
  LIFT_MIN_ROWS rows a minibatch (an ensemble's members, already vmapped, pass False)."""
  grad = jax.value_and_grad(objective, has_aux=True)
  if lifted is None:
    lifted = next(iter(batch.values())).shape[0] >= LIFT_MIN_ROWS
  if lifted:
    one = lambda tree: jax.tree.map(lambda a: a[None], tree)
    out = jax.vmap(grad)(one(state.params), one(batch), one(key))
    (loss, terms), grads = jax.tree.map(lambda a: a[0], out)
  else:
    (loss, terms), grads = grad(state.params, batch, key)
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
BLOCK_MEMBER_STEPS = 16_000  # an ensemble's blocks: at most this many steps x members
SAMPLING = ("subsets", "epochs")  # fit's minibatches: random subsets, or epochs of permutations


def _run_chunk(state: TrainState, train_key: Array, data: Mapping[str, Array], objective: Objective,
               optimizer: optax.GradientTransformation, batch_size: int, length: int,
               block: int = DRAW_BLOCK, epochs: bool = False,
               lifted: bool | None = None) -> tuple[TrainState, dict[str, Array]]:
  """``length`` steps as ``lax.scan``s; returns the new state and per-step terms [length].

  The steps run in blocks of ``block`` steps and a last one of the rest. Each block first makes
  every step's random draws at once (``draw`` vmapped over its step numbers), then scans the updates
  over them; the draws are those of one step at a time, so the blocking changes no draw (a loop
  compiled as one kernel may round its step differently). A chunk longer than ``block`` and not a
  multiple of it compiles the step twice (BUILD_NOTES.md, Decisions: draw blocks). With ``epochs``
  the minibatches come from ``sampler.epoch_indices``, the objective keys as always. ``lifted``
  is ``_update``'s.
  """
  n = next(iter(data.values())).shape[0]
  indices = epochs or sampler.draws_indices(n, batch_size)

  def draw(t):  # step t's minibatch indices (or the key to draw them with) and objective key
    batch_key, loss_key = jax.random.split(jax.random.fold_in(train_key, t))
    return (sampler.minibatch_indices(batch_key, n, batch_size) if indices else batch_key), loss_key

  def step(state, drawn):
    batch_draw, loss_key = drawn
    idx = batch_draw if indices else sampler.minibatch_indices(batch_draw, n, batch_size)
    return _update(state, _take(data, idx), loss_key, objective, optimizer, lifted)

  def run_block(state, size):
    steps = state.step + jnp.arange(size, dtype=state.step.dtype)
    if not epochs:
      return _scan(step, state, jax.vmap(draw)(steps))
    loss_keys = jax.vmap(lambda t: jax.random.split(jax.random.fold_in(train_key, t))[1])(steps)
    epochs_key = jax.random.fold_in(train_key, sampler.EPOCHS_TAG)
    rows = sampler.epoch_indices(epochs_key, state.step, size, n, batch_size)
    return _scan(step, state, (rows, loss_keys))

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


def _scan(step, state, drawn):
  """``lax.scan(step, state, drawn)``, a loop even over one step: XLA removes a loop it sees run
  once, and compiled apart from the loop its step may round differently (``dljax.xla_flags``);
  a trip count XLA cannot see keeps it a loop."""
  if jax.tree.leaves(drawn)[0].shape[0] != 1:
    return jax.lax.scan(step, state, drawn)
  once = jax.lax.optimization_barrier(jnp.int32(1))
  drawn = jax.tree.map(lambda a: a[0], drawn)
  terms = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(step, state, drawn)[1])
  body = lambda c: (c[0] + 1, *step(c[1], drawn))
  _, state, terms = jax.lax.while_loop(lambda c: c[0] < once, body, (jnp.int32(0), state, terms))
  return state, jax.tree.map(lambda a: a[None], terms)


def _checked(run: Callable, verdict: Callable = chunks.verdict) -> Callable:
  """``run``'s (state, terms) and ``verdict`` on the new parameters; jitted, in one program: a
  check of its own would run between two chunks, on their critical path (BUILD_NOTES.md,
  Decisions: the verdict in the chunk).

  Given ``most`` > 1 (static) and ``count`` <= ``most`` (traced), the program runs ``count``
  chunks of ``length`` steps one after another in a loop: the terms [..., most * length] (the
  first ``count * length`` written) and a verdict after each chunk, stacked [most]. ``fit``
  joins chunks so without a callback, one program for any ``count`` (Decisions: joined chunks).
  """
  def chunk(state, train_key, data, count=1, *, most=1, **static):
    one = lambda s: run(s, train_key, data, **static)
    if most == 1:
      state, terms = one(state)
      return state, terms, verdict(state.params)
    from jax.extend import core as jax_core  # noqa: PLC0415 (20 ms of import, only here)

    length = static["length"]
    # traced once: its shapes size the buffers, and the loop's body runs the same jaxpr
    traced, shapes = jax.make_jaxpr(one, return_shape=True)(state)
    run_traced, outputs = jax_core.jaxpr_as_fun(traced), jax.tree.structure(shapes)
    chunk_once = lambda s: jax.tree.unflatten(outputs, run_traced(*jax.tree.leaves(s)))
    stack = lambda a: jnp.zeros((most, *a.shape), a.dtype)
    verdicts = jax.tree.map(stack, jax.eval_shape(lambda s: verdict(s.params), state))
    terms = jax.tree.map(lambda a: jnp.zeros((*a.shape[:-1], most * length), a.dtype),
                         shapes[1])

    def body(i, carry):
      state, terms, verdicts = carry
      state, new = chunk_once(state)
      put = lambda a, b: jax.lax.dynamic_update_slice_in_dim(a, b, i * length, a.ndim - 1)
      verdicts = jax.tree.map(lambda a, b: a.at[i].set(b), verdicts, verdict(state.params))
      return state, jax.tree.map(put, terms, new), verdicts

    return jax.lax.fori_loop(0, count, body, (state, terms, verdicts))
  chunk.__name__ = getattr(run, "func", run).__name__  # a partial's: its function's
  return chunk


_STATIC = ("objective", "optimizer", "batch_size", "length", "epochs", "most")
_chunk = jax.jit(_checked(_run_chunk), static_argnames=_STATIC, donate_argnums=0)
_ENSEMBLE_STATIC = (*_STATIC, "group")  # the ensembles' programs also take their member groups


def _in_groups(run, group, *members):
  """``run(*members)``, or ``lax.map`` of it over consecutive groups of ``group`` members."""
  k = jax.tree.leaves(members[0])[0].shape[0]
  if group is None or group >= k:
    return run(*members)
  split = lambda a: a.reshape(k // group, group, *a.shape[1:])
  out = jax.lax.map(lambda m: run(*m), jax.tree.map(split, members))
  return jax.tree.map(lambda a: a.reshape(k, *a.shape[2:]), out)


def _member_block(state, group) -> int:
  """An ensemble's draw block: the most steps (a divisor of DRAW_BLOCK) whose draws for a group
  stay within BLOCK_MEMBER_STEPS, so that its loop is under XLA's small-loop threshold."""
  members = group or state.step.shape[0]
  return max(d for d in range(1, DRAW_BLOCK + 1)
             if DRAW_BLOCK % d == 0 and (d == 1 or d * members <= BLOCK_MEMBER_STEPS))


def _run_ensemble(state, train_key, data, objective, optimizer, batch_size, length,
                  epochs=False, group=None, member_data=False):
  """The same chunk for K members at once: vmap over (state, train_key), the data shared or, with
  ``member_data``, each member's own (arrays [K, N, ...]); ``group`` members at a time."""
  run = lambda s, k, d=data: _run_chunk(s, k, d, objective, optimizer, batch_size, length,
                                        block=_member_block(state, group), epochs=epochs,
                                        lifted=False)
  return _in_groups(jax.vmap(run), group, state, train_key, *([data] if member_data else []))


_chunk_ensemble = jax.jit(_checked(_run_ensemble), static_argnames=_ENSEMBLE_STATIC,
                          donate_argnums=0)
_chunk_members = jax.jit(_checked(functools.partial(_run_ensemble, member_data=True)),
                         static_argnames=_ENSEMBLE_STATIC, donate_argnums=0)


@functools.partial(jax.jit, static_argnames=("objective", "optimizer", "batch_size", "length",
                                             "epochs", "group", "mesh", "member_data"),
                   donate_argnums=0)
def _chunk_sharded(state, train_key, data, objective, optimizer, batch_size, length, mesh,
                   member_data=False, epochs=False, group=None):
  """``_chunk_ensemble`` (``_chunk_members``) with the members split across ``mesh``'s
  ``"members"`` axis.

  ``shard_map``: each device runs the vmapped chunk on its own K / D members and the whole data
  (its members' data), with no communication. (Plain ``jit`` of ``_chunk_ensemble`` on the
  sharded state also runs, but XLA does not split ``top_k`` along the member axis: it
  all-gathers every member's minibatch uniforms to every device at every step.)
  """
  run = functools.partial(_run_ensemble, objective=objective, optimizer=optimizer,
                          batch_size=batch_size, length=length, epochs=epochs, group=group,
                          member_data=member_data)
  members = jax.sharding.PartitionSpec(_dist.AXIS)
  data_spec = members if member_data else jax.sharding.PartitionSpec()
  # check_vma=False: the models' scans start from constants (e.g. h0 = 0), which shard_map's
  # type check would count as the same on every device; every output is per-member anyway.
  return jax.shard_map(run, mesh=mesh, in_specs=(members, members, data_spec),
                       out_specs=members, check_vma=False)(state, train_key, data)


# The sharded chunk's verdict, a program of its own after it: inside the chunk it would add a
# collective across the devices (and processes) to a program that has none.
_verdict = jax.jit(chunks.verdict)


def init_state(model: Any, seed: int | Sequence[int], optimizer: optax.GradientTransformation,
               dtype: Any = jnp.float32) -> TrainState:
  """The state at step 0: ``model.init(init_key)`` and the optimizer's state; vmapped for seeds."""
  seeds, ensemble = checks.seeds(seed)
  return _init_and_keys(model, optimizer, dtype, seeds, ensemble)[0]


def _init_and_keys(model, optimizer, dtype, seeds, ensemble) -> tuple[TrainState, Array]:
  """The initial state and the training key(s), in one compiled program."""
  seeds = jnp.asarray(seeds if ensemble else seeds[0])
  return _init(seeds, model=model, optimizer=optimizer, dtype=jnp.dtype(dtype), ensemble=ensemble)


def _init_one(model, optimizer, dtype, seed):
  init_key, train_key = keys_from_seed(seed)
  params = model.init(init_key, dtype)
  return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params)), train_key


# Initialisation is mostly threefry hashing: at optimisation level 0 it compiles in a third of
# the time, to the same values (BUILD_NOTES.md, Decisions).
@functools.partial(jax.jit, static_argnames=("model", "optimizer", "dtype", "ensemble"),
                   compiler_options={"xla_backend_optimization_level": 0})
def _init(seeds, model, optimizer, dtype, ensemble):
  init = lambda s: _init_one(model, optimizer, dtype, s)
  return (jax.vmap(init) if ensemble else init)(seeds)


@functools.partial(jax.jit, static_argnames=("ensemble",))
def _train_keys(seeds, ensemble):
  train_key = lambda s: keys_from_seed(s)[1]
  return (jax.vmap(train_key) if ensemble else train_key)(seeds)


def _check_state(state: Any, model: Any, optimizer: Any, dtype: Any, seeds: list[int],
                 ensemble: bool) -> None:
  """``state`` against the tree, shapes and dtypes of ``init_state(model, seed, optimizer,
  dtype)`` (``jax.eval_shape``: traced, nothing compiled or run)."""
  init = lambda s: _init_one(model, optimizer, jnp.dtype(dtype), s)[0]
  want = jax.eval_shape(jax.vmap(init) if ensemble else init,
                        jax.ShapeDtypeStruct((len(seeds),) if ensemble else (), jnp.int32))
  members = f"{len(seeds)} members" if ensemble else "one seed"
  checks.train_state(state, want, TrainState,
                     f"({members}, dtype {jax.dtypes.canonicalize_dtype(dtype)})")


def _check_devices(devices: Any, seeds: list[int], ensemble: bool) -> list[jax.Device] | None:
  """The devices to split the members across, or None for today's single-device program."""
  devices = _dist.resolve_devices(devices, len(seeds), ensemble)
  if (devices is not None and len(devices) == 1 and jax.process_count() == 1
      and jax.config.jax_default_device is None and devices[0] == jax.devices()[0]):
    return None  # the default device: the very same program and arrays as without devices
  return devices


def _start(model, objective, optimizer, dtype, seeds, ensemble, state, arrays, devices,
           batch_size, member_data=False, epochs=False):
  """(state, train_key, arrays, chunk program, first step): the seed's initial state or a copy of
  ``state``, placed on ``devices`` with the program that runs a chunk there."""
  if state is None:  # step 0, known without waiting for the initial state
    (state, train_key), start_step = _init_and_keys(model, optimizer, dtype, seeds, ensemble), 0
  else:  # resume: only the keys; the caller's arrays must survive the donation to the chunk
    state = _dist.addressable(state)
    start_step = int(np.max(np.asarray(state.step)))  # before the state is split across processes
    state = chunks.copied(state)
    train_key = _train_keys(jnp.asarray(seeds if ensemble else seeds[0]), ensemble=ensemble)
  if devices is not None:  # members split across the devices; jit follows these shardings
    split, data_split = _shardings(ensemble, devices, member_data)
    state, train_key = _dist.place((state, train_key), split)
    arrays = _dist.place(arrays, data_split)
  group = member_group(objective, state, arrays, batch_size, devices, member_data)
  run, static = _chunk_program(ensemble, devices, member_data, epochs, group)
  run = _checked(run, _verdict) if run is _chunk_sharded else run
  return state, train_key, arrays, functools.partial(run, **static), start_step


def _shardings(ensemble: bool, devices, member_data: bool = False):
  """(the state's and training keys' sharding, the data's) on ``devices``."""
  split = _dist.member_sharding(devices) if ensemble else _dist.replicated(devices)
  return split, (_dist.member_sharding if member_data else _dist.replicated)(devices)


def _chunk_program(ensemble: bool, devices, member_data: bool = False, epochs: bool = False,
                   group: int | None = None):
  """(the jitted chunk ``fit`` runs for these members and devices, its extra static arguments);
  ``dljax.resources`` lowers the same one to estimate a run's memory."""
  run = (_chunk_members if member_data else _chunk_ensemble) if ensemble else _chunk
  static = {"epochs": True} if epochs else {}
  if group is not None:
    static["group"] = group
  if devices is not None and len(devices) > 1:
    run = _chunk_sharded
    static.update(mesh=_dist.members_mesh(devices), **({"member_data": True} if member_data
                                                        else {}))
  return run, static


JOIN_MOST = 16  # chunks of log_every steps joined into one program at most (without a callback)
# ... while a loss term's buffer for them stays within this: the program fills and carries the
# whole buffer on every call, which costs more than joining saves once chunks are long
# (BUILD_NOTES.md, Decisions: joined chunks)
JOIN_TERM_BYTES = 64 * 2**10


def join_most(devices, members: int, log_every: int) -> int:
  """How many chunks of ``log_every`` steps ``fit``'s program may join when it has no callback
  (which is promised each chunk): on the default device, the most (up to JOIN_MOST) whose terms
  buffer stays within JOIN_TERM_BYTES a term; 1 (the chunk program alone) when that is under
  two. Not the steps: runs of any length share a program."""
  if devices is not None:
    return 1
  return max(1, min(JOIN_MOST, JOIN_TERM_BYTES // (4 * members * log_every)))


def fit(model: Any, objective: Objective, data: Mapping[str, Any], *, steps: int, batch_size: int,
        seed: int | Sequence[int] = 0, optimizer: optax.GradientTransformation | None = None,
        log_every: int = 1000, dtype: Any = jnp.float32, state: TrainState | None = None,
        callback: Callback | None = None, devices: Sequence[jax.Device] | None = None,
        member_data: bool = False, sampling: str = "subsets") -> FitResult:
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
    log_every: steps per chunk (progress lines: at most one a second). Without a callback,
      whole chunks are joined, up to JOIN_MOST to one call of the same program.
    dtype: the floating dtype of parameters and data.
    state: continue from this state instead of the seed's initial one (its tree, shapes and
      dtypes must be ``init_state(model, seed, optimizer, dtype)``'s).
    callback: called after each chunk as ``callback(state, terms, seconds)`` with the state (a
      copy the callback may keep), that chunk's per-step terms and its wall time. Chunks end at
      multiples of ``log_every`` steps counted from step 0; the next chunk may already be running
      while the callback runs (``dljax.chunks``). An exception raised by the callback stops
      training.
    devices: the devices an ensemble's members are split across, K / D consecutive members per
      device (a ``"members"`` mesh axis, see ``dljax.distributed``); the data is copied to each.
      K must be a multiple of D. None: every device JAX sees (``jax.devices()``, which spans all
      processes after ``jax.distributed.initialize``) for an ensemble, the default device for a
      single seed in a single process. With one device nothing is split: the same program as
      without devices. With several processes, the state given to the callback and returned is
      gathered onto every process, so each can read (and evaluate) every member.
    member_data: each member trains on its own data: every array of ``data`` is [K, N, ...],
      member k's rows ``data[name][k]`` (e.g. the splits of a benchmark, all in one program).
    sampling: subsets (each step's minibatch a uniformly random subset of the rows) or epochs
      (each epoch a random permutation of the rows, cut into consecutive minibatches; fast for
      large data sets, see ``dljax.sampler.epoch_indices``).

  Returns:
    ``FitResult(state, history, timings)``.

  Raises:
    ValueError: for a bad argument, e.g. an ensemble size that is not a multiple of the number of
      devices; before anything is compiled.
    DivergenceError: at the end of the first chunk whose loss terms or parameters are not
      finite, naming the step and the term; the callback does not see that chunk.
  """
  arrays = checks.fit_arguments(model, objective, data, steps=steps, batch_size=batch_size,
                                seed=seed, log_every=log_every, dtype=dtype,
                                member_data=member_data)
  seeds, ensemble = checks.seeds(seed)
  epochs = checks.choice("sampling", sampling, SAMPLING) == "epochs"
  optimizer = adam() if optimizer is None else optimizer
  checks.optimizer_and_callback(optimizer, callback)
  if state is not None:
    _check_state(state, model, optimizer, dtype, seeds, ensemble)
  devices = _check_devices(devices, seeds, ensemble)
  state, train_key, arrays, run, start_step = _start(model, objective, optimizer, dtype, seeds,
                                                     ensemble, state, arrays, devices,
                                                     int(batch_size), bool(member_data), epochs)
  most = 1 if callback is not None else join_most(devices, len(seeds) if ensemble else 1,
                                                   int(log_every))
  static = dict(objective=objective, optimizer=optimizer, batch_size=int(batch_size))

  def chunk(s, length, count=1):
    if most > 1 and length == log_every:  # count whole chunks joined in one program
      return run(s, train_key, arrays, count, most=most, length=length, **static)
    return run(s, train_key, arrays, length=length, **static)

  return FitResult(*chunks.run(chunk, state, start_step, int(steps), int(log_every), callback,
                               most))
