"""Every argument check of dljax: one function per kind of value, one message format.

A bad value raises ``ArgumentError`` (a ValueError) or ``ArgumentTypeError`` (a TypeError) with
the message "NAME must EXPECTED, got RECEIVED" ("steps must be an integer >= 1, got 0") and the
argument's name in ``.argument``, so a launcher maps an error to its flag without reading the
message. Values are checked once, where
they enter the package (a builder, ``fit``, a public function), not again inside.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import numpy as np


class BadArgument(Exception):
  """Base of both argument errors; ``argument`` is the name, e.g. ``"hidden[1]"``."""

  def __init__(self, argument: str, message: str):
    super().__init__(message)
    self.argument = argument

  @property
  def root(self) -> str:
    """The argument's name without an index or key: ``"hidden"`` for ``"hidden[1]"``."""
    return self.argument.split("[", 1)[0]


class ArgumentError(BadArgument, ValueError):
  pass


class ArgumentTypeError(BadArgument, TypeError):
  pass


def fail(name: str, expected: str, got: Any, *,
         kind: type[BadArgument] = ArgumentError) -> NoReturn:
  """Raises ``kind`` with "NAME must EXPECTED, got GOT"; ``expected`` starts with its verb ("be an
  integer >= 1", "have shape [*, 2]") and ``got`` is shown as given (repr it yourself)."""
  raise kind(name, f"{name} must {expected}, got {got}")


def _is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
  """A real number that is not a bool (Python or NumPy)."""
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def integer(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
  """An integer in [minimum, maximum] (no bool)."""
  if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
    want = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    fail(name, f"be an integer {want}", repr(value))
  return int(value)


def sizes(name: str, values: Any) -> tuple[int, ...]:
  """Layer sizes: an integer >= 1 or a sequence of them (possibly empty)."""
  if _is_int(values):
    values = (values,)
  try:
    values = tuple(values)
  except TypeError:
    fail(name, "be a sequence of integers >= 1", repr(values))
  return tuple(integer(f"{name}[{i}]", v) for i, v in enumerate(values))


def non_negative(name: str, value: Any) -> float:
  """A finite number >= 0."""
  if not is_number(value) or not 0 <= value < math.inf:
    fail(name, "be a finite number >= 0", repr(value))
  return float(value)


def positive(name: str, value: Any) -> float:
  """A finite number > 0."""
  if not is_number(value) or not 0 < value < math.inf:
    fail(name, "be a positive finite number", repr(value))
  return float(value)


def fraction(name: str, value: Any) -> float:
  """A number in the open interval (0, 1)."""
  if not is_number(value) or not 0.0 < value < 1.0:
    fail(name, "be a number in (0, 1)", repr(value))
  return float(value)


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
  """One of ``choices`` (strings)."""
  if not isinstance(value, str) or value not in choices:
    fail(name, f"be one of {', '.join(map(repr, choices))}", repr(value))
  return value


def key(name: str, value: Any) -> None:
  """A typed key (``jax.random.key``, shape []) or raw key data (``PRNGKey``, uint32 [2])."""
  import jax  # noqa: PLC0415

  dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
  if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
    return
  if dtype == np.uint32 and shape is not None and len(shape) == 1:
    return
  got = f"an array of shape {shape} and dtype {dtype}" if dtype is not None else repr(value)
  fail(name, "be a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed))", got,
       kind=ArgumentTypeError)


def float_dtype(name: str, dtype: Any) -> np.dtype:
  """A floating dtype (bfloat16 included)."""
  import jax.numpy as jnp  # noqa: PLC0415 (jnp's issubdtype knows bfloat16)

  dtype = np.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    fail(name, "be a floating dtype", dtype, kind=ArgumentTypeError)
  return dtype


def shape_str(shape: Sequence[int | None], first: str = "*") -> str:
  """[N, *, 3]-style text of a shape; None is any size (``first`` names the leading one)."""
  return "[" + ", ".join((first if i == 0 else "*") if d is None else str(d)
                         for i, d in enumerate(shape)) + "]"


def shape(name: str, x: Any, want: Sequence[int | None]) -> None:
  """Rank and known sizes of ``x`` (None in ``want``: any size)."""
  got = np.shape(x)
  if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
    fail(name, f"have shape {shape_str(want)}", got)


def floating(name: str, x: Any) -> None:
  """A floating array (NumPy or JAX)."""
  dtype = getattr(x, "dtype", None)
  dtype = np.result_type(x) if dtype is None else dtype
  import jax.numpy as jnp  # noqa: PLC0415 (jnp's issubdtype knows bfloat16)

  if not jnp.issubdtype(dtype, jnp.floating):
    fail(name, "be a floating array", f"dtype {dtype}", kind=ArgumentTypeError)


def floating_input(name: str, x: Any, want: Sequence[int | None]) -> None:
  """``shape`` then ``floating``: every shape error comes before a dtype error."""
  shape(name, x, want)
  floating(name, x)


def finite(name: str, a: np.ndarray) -> None:
  """No NaN or inf in ``a``, counting them otherwise."""
  n_bad = a.size - np.count_nonzero(np.isfinite(a))
  if n_bad:
    fail(name, "be finite", f"{n_bad} NaN or inf values")


def finite_floats(name: str, a: np.ndarray) -> None:
  """A floating NumPy array without NaN or inf."""
  if not np.issubdtype(a.dtype, np.floating):
    fail(name, "be a floating array", f"dtype {a.dtype}", kind=ArgumentTypeError)
  finite(name, a)


def real_array(name: str, a: Any) -> np.ndarray:
  """A non-empty array of finite integers or floats, as float64."""
  a = np.asarray(a)
  if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
    fail(name, "be an array of real numbers", f"dtype {a.dtype}", kind=ArgumentTypeError)
  if a.size == 0:
    fail(name, "be non-empty", f"shape {a.shape}")
  a = a.astype(np.float64, copy=False)
  finite(name, a)
  return a


def callable_or_none(name: str, value: Any, expected: str) -> None:
  if value is not None and not callable(value):
    fail(name, expected, type(value).__name__, kind=ArgumentTypeError)


# ----------------------------------------------------------------------------------------------
# The arguments of train.fit: all checked before anything is compiled.

MAX_SEED = 2**31 - 1  # seeds become an int32 array (one per member) before PRNGKey


def seeds(seed: Any) -> tuple[list[int], bool]:
  """(the members' seeds, whether it is an ensemble) of an integer or a sequence of them."""
  import jax  # noqa: PLC0415

  if isinstance(seed, np.ndarray | jax.Array) and seed.ndim == 0:
    seed = seed.item()  # a 0-d array of NumPy or JAX is its one value
  if _is_int(seed):
    return [integer("seed", seed, 0, MAX_SEED)], False
  if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence | np.ndarray):
    fail("seed", "be an integer >= 0 or a sequence of them", repr(seed))
  members = [integer(f"seed[{i}]", s, 0, MAX_SEED) for i, s in enumerate(seed)]
  if not members:
    fail("seed", "be an integer >= 0 or a non-empty sequence of them", "[]")
  return members, True


def data_arrays(data: Any) -> dict[str, np.ndarray]:
  """A non-empty dict of finite floating NumPy arrays [N, ...] of one length N."""
  if not isinstance(data, Mapping) or not data:
    fail("data", "be a non-empty dict of arrays", type(data).__name__)
  arrays, n = {}, None
  for name, a in data.items():
    where = f"data[{name!r}]"
    try:
      a_np = np.asarray(a)
    except (TypeError, ValueError) as e:  # ragged nested lists, objects numpy cannot convert
      fail(where, "be an array", f"{type(a).__name__} ({e})", kind=ArgumentTypeError)
    if a_np.ndim < 1 or a_np.size == 0:
      fail(where, "be a non-empty array [N, ...]", f"shape {a_np.shape}")
    finite_floats(where, a_np)
    if n is not None and a_np.shape[0] != n:
      raise ArgumentError(where, f"data arrays must have the same length, got {n} and "
                          f"{a_np.shape[0]} for {where}")
    n = a_np.shape[0]
    arrays[name] = a_np
  return arrays


def _batch_against_objective(model: Any, objective: Any, arrays: Mapping[str, np.ndarray],
                             batch_size: int, dtype: Any) -> None:
  """The data against what the objective reads: the shapes it declares
  (``objective.batch_shapes()``), else a trace on one abstract minibatch (``jax.eval_shape``)."""
  import jax  # noqa: PLC0415

  declared = getattr(objective, "batch_shapes", None)
  shapes = declared() if callable(declared) else None
  if shapes is not None:
    if set(shapes) - set(arrays):
      fail("data", f"have the arrays {sorted(shapes)} that {type(objective).__name__} reads",
           sorted(arrays))
    owner = getattr(objective, "model", type(objective).__name__)
    for name, want in shapes.items():
      got = arrays[name].shape
      if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
        fail(f"data[{name!r}]", f"have shape {shape_str(want, 'N')} for {owner}", got)
    return
  key = jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0))[1])  # as fit's loss key
  params = jax.eval_shape(lambda k: model.init(k, dtype), key)
  batch = {name: jax.ShapeDtypeStruct((batch_size,) + a.shape[1:], dtype)
           for name, a in arrays.items()}
  try:
    out = jax.eval_shape(objective, params, batch, key)
  except (TypeError, ValueError, KeyError, IndexError) as e:
    got = {name: a.shape for name, a in arrays.items()}
    builtin = next(c for c in type(e).__mro__ if c.__module__ == "builtins").__name__
    raise ArgumentError("data", f"data must fit the objective, got shapes {got}, on which a "
                        f"minibatch of {batch_size} rows raised {builtin}: {e}") from e
  if (not isinstance(out, tuple) or len(out) != 2 or getattr(out[0], "shape", None) != ()
      or not isinstance(out[1], Mapping)):
    fail("objective", "return (a scalar loss, a dict of terms)", out)
  for name, term in out[1].items():  # the history keeps one value per step and term
    if getattr(term, "shape", None) != ():
      fail(f"objective's term {name!r}", "be a scalar (e.g. a minibatch mean)",
           f"shape {getattr(term, 'shape', type(term).__name__)}")


def member_arrays(data: Any, members: list[int], ensemble: bool) -> dict[str, np.ndarray]:
  """``data_arrays`` with a leading member axis: arrays [K, N, ...] of one K and one N."""
  if not ensemble:
    fail("member_data", "come with an ensemble (seed a sequence of K seeds)", "a single seed")
  arrays = data_arrays(data)
  K = len(members)
  for name, a in arrays.items():
    if a.ndim < 2 or a.shape[0] != K or a.shape[1] != next(iter(arrays.values())).shape[1]:
      fail(f"data[{name!r}]", f"have shape [K = {K}, N, ...] with one N (member_data)",
           f"shape {a.shape}")
  return arrays


def fit_arguments(model: Any, objective: Any, data: Mapping[str, Any], *, steps: int,
                  batch_size: int, seed: Any = 0, log_every: int = 1000,
                  dtype: Any = np.float32, member_data: bool = False) -> dict[str, Any]:
  """Checks the arguments of ``train.fit``, the data's shapes against the objective included;
  returns the data as device arrays of ``dtype``. Nothing is compiled. With ``member_data`` the
  arrays are [K, N, ...], one member's data each (the checks see member 0's rows)."""
  import jax  # noqa: PLC0415

  integer("steps", steps)
  integer("log_every", log_every)
  if member_data:
    arrays = member_arrays(data, *seeds(seed))
    rows = {name: a[0] for name, a in arrays.items()}
  else:
    seeds(seed)
    arrays = rows = data_arrays(data)
  n = next(iter(rows.values())).shape[0]
  batch_size = integer("batch_size", batch_size)
  if batch_size > n:
    fail("batch_size", f"be at most the number of data rows ({n})", batch_size)
  if not hasattr(model, "init"):
    fail("model", "have an init(key, dtype) method", type(model).__name__, kind=ArgumentTypeError)
  if not callable(objective):
    fail("objective", "be callable", type(objective).__name__, kind=ArgumentTypeError)
  own = getattr(objective, "model", None)
  if own is not None and own != model:
    fail("objective", "be built for the model trained",
         f"an objective of {own!r} and model {model!r}")
  dtype = jax.dtypes.canonicalize_dtype(float_dtype("dtype", dtype))  # float64: x64 only
  _batch_against_objective(model, objective, rows, batch_size, dtype)
  return {name: _device_array(data[name], a, dtype) for name, a in arrays.items()}


def _device_array(given: Any, host: np.ndarray, dtype: Any) -> Any:
  """``given`` as it is when it already is a JAX array of ``dtype`` on the default device (JAX
  arrays are immutable), else ``host`` converted on the host and copied there (jnp.asarray(a,
  dtype) would compile a program per shape)."""
  import jax  # noqa: PLC0415

  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])  # where device_put puts it
  if (isinstance(given, jax.Array) and given.dtype == dtype and not given.weak_type
      and jax.config.jax_default_device is None and given.sharding == device):
    return given
  return jax.device_put(np.asarray(host, dtype))


def optimizer_and_callback(optimizer: Any, callback: Any) -> None:
  if not all(callable(getattr(optimizer, f, None)) for f in ("init", "update")):
    fail("optimizer", "be an Optax GradientTransformation (init and update)",
         type(optimizer).__name__, kind=ArgumentTypeError)
  callable_or_none("callback", callback, "be callable as callback(state, terms, seconds) or None")


def train_state(state: Any, want: Any, state_type: type, what: str) -> None:
  """``state`` against ``want``, the abstract state (``jax.eval_shape``) it must match: its
  tree, shapes and dtypes; ``what`` says for which run, e.g. "(4 members, dtype float32)"."""
  import jax  # noqa: PLC0415

  if not isinstance(state, state_type):
    fail("state", "be a TrainState (as FitResult.state or init_state give)",
         type(state).__name__, kind=ArgumentTypeError)
  want_leaves, want_tree = jax.tree_util.tree_flatten_with_path(want)
  got_leaves, got_tree = jax.tree_util.tree_flatten_with_path(state)
  if got_tree != want_tree:
    want_paths, got_paths = ({jax.tree_util.keystr(p) for p, _ in leaves}
                             for leaves in (want_leaves, got_leaves))
    missing, extra = sorted(want_paths - got_paths), sorted(got_paths - want_paths)
    fail("state", "hold this model's parameters and this optimizer's state",
         f"a different tree (missing {missing or 'none'}, unexpected {extra or 'none'})")
  for (path, w), (_, g) in zip(want_leaves, got_leaves):
    g_shape, g_dtype = np.shape(g), getattr(g, "dtype", np.asarray(g).dtype)
    if g_shape != w.shape or g_dtype != w.dtype:
      fail(f"state{jax.tree_util.keystr(path)}", f"have shape {w.shape} and dtype {w.dtype} for "
           f"this model and optimizer {what}", f"shape {g_shape} and dtype {g_dtype}")
