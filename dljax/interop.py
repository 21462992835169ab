"""The five models as Flax modules, with the very same parameters: ``linen(model)``, ``nnx(model)``.

The front-ends own no numerics: every method forwards its arguments to the dljax model's method
of the same name with the parameters, so ``module.apply(variables, x)`` is
``model.apply(variables["params"], x)`` bitwise (the same jaxpr, so a jitted step costs the same).
The parameter tree is the model's: the tutorial's symbols (``A1, b1, ..., U_f, W_f, ...``), one
Flax parameter per top-level symbol (a VAE's ``encoder`` and ``decoder`` are one nested dict
each in linen, one ``nnx.Param`` per leaf in NNX).

Sampling keys (``apply`` of the VAE and CVAE, ``sample``) come as the model's ``key`` argument
or, when it is not given, from a Flax stream: linen's ``rngs={"sample": key}`` (falling back to
``"params"``, so ``init`` needs no extra stream), NNX's ``rngs`` given to ``nnx()``.

Flax is imported when a front-end is first built, not by ``import dljax``.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checks
from dljax import models as M

SAMPLE_STREAM = "sample"  # the Flax RNG stream a missing sampling key is drawn from

_KINDS = (M.MLP, M.RNN, M.LSTM, M.VAE, M.CVAE)
# Besides ``__call__`` (the model's ``apply``), a front-end has those of these its model has.
_METHODS = ("predict", "prior", "encode", "decode", "sample")


def _methods(cls: type) -> tuple[str, ...]:
  return tuple(m for m in _METHODS if callable(getattr(cls, m, None)))


# ----------------------------------------------------------------------------------------------
# The parameter tree: checks and conversions shared by both front-ends.


def _check_model(model: Any) -> None:
  if type(model) not in _KINDS:
    checks.fail("model", "be a dljax model (dljax.mlp, rnn, lstm, vae or cvae)",
                type(model).__name__, kind=checks.ArgumentTypeError)


@functools.lru_cache(maxsize=256)
def _shapes(model: Any, dtype: Any) -> dict[str, Any]:
  """The model's parameter tree as ``jax.ShapeDtypeStruct``s (traced once per model and dtype)."""
  return jax.eval_shape(lambda k: model.init(k, dtype), jax.random.PRNGKey(0))


def _describe(value: Any) -> str:
  if isinstance(value, Mapping):
    return f"a dict of {sorted(map(str, value))}"
  shape = getattr(value, "shape", None)
  return f"shape {tuple(shape)}" if shape is not None else type(value).__name__


def _check_tree(name: str, got: Any, want: Mapping[str, Any]) -> None:
  if not isinstance(got, Mapping):
    checks.fail(name, f"be a dict of the symbols {list(want)}", _describe(got),
                kind=checks.ArgumentTypeError)
  for symbol in sorted(set(got) - set(want), key=str):
    checks.fail(f"{name}[{symbol!r}]", f"not be there (the symbols are {list(want)})",
                _describe(got[symbol]))
  for symbol, w in want.items():
    where = f"{name}[{symbol!r}]"
    if symbol not in got:
      what = f"shape {tuple(w.shape)}" if not isinstance(w, Mapping) else f"the symbols {list(w)}"
      checks.fail(where, f"be given: a parameter of {what}", "none (missing)")
    if isinstance(w, Mapping):
      _check_tree(where, got[symbol], w)
    elif isinstance(got[symbol], Mapping) or np.shape(got[symbol]) != w.shape:
      checks.fail(where, f"have shape {tuple(w.shape)}", _describe(got[symbol]))


def check_params(model: Any, params: Any) -> None:
  """Raises ``checks.ArgumentError`` unless ``params`` has exactly ``model.init``'s symbols and
  shapes, naming the first symbol that is missing, extra or of the wrong shape."""
  _check_model(model)
  _check_tree("params", params, _shapes(model, jnp.dtype(jnp.float32)))


def _plain(tree: Any) -> Any:
  """Nested plain dicts of arrays (from a FrozenDict, an ``nnx.State``, a checkpoint's NumPy)."""
  if isinstance(tree, Mapping):
    return {str(k): _plain(v) for k, v in tree.items()}
  return jnp.asarray(tree)


@functools.lru_cache(maxsize=256)
def _takes_key(cls: type, method: str) -> inspect.Signature | None:
  sig = inspect.signature(getattr(cls, method))
  return sig if "key" in sig.parameters else None


def _call(model: Any, method: str, params: Any, args: tuple, kwargs: dict, draw: Any) -> Any:
  """``model.<method>(params, *args, **kwargs)``, with ``key=draw()`` when the method takes a
  ``key`` that the arguments do not give."""
  sig = _takes_key(type(model), method)
  if sig is not None:
    try:
      given = "key" in sig.bind_partial(model, params, *args, **kwargs).arguments
    except TypeError:  # bad arguments: the model's own call says what is wrong
      given = True
    if not given:
      kwargs = {**kwargs, "key": draw()}
  return getattr(model, method)(params, *args, **kwargs)


# ----------------------------------------------------------------------------------------------
# Linen.


def linen(model: Any, *, dtype: Any = jnp.float32, name: str | None = None) -> Any:
  """A ``flax.linen.Module`` running ``model``: ``init(key, *inputs) -> {"params": tree}``.

  ``tree`` is ``model.init(k, dtype)`` bitwise, ``k`` the key Flax gives the module's first
  parameter (one ``model.init`` for the whole tree). ``apply(variables, *inputs, method=...)``
  calls the model's method of that name: ``__call__`` (the default) is ``apply``, then those of
  "predict", "prior", "encode", "decode", "sample" the model has, and "symbols" returns the tree
  (``init(key, method="symbols")`` needs no inputs). ``name``: the module's name in a parent.
  """
  _check_model(model)
  checks.float_dtype("dtype", dtype)
  return _linen_classes()[type(model)](model, jnp.dtype(dtype), name=name)


def _linen_setup(module: Any) -> None:
  """One linen param per top-level symbol: at init all from one ``model.init``, from the first
  symbol's key; at apply, cheap zeros for Flax's shape check of the given ones."""
  shapes = _shapes(module.model, module.dtype)
  given = module.variables.get("params", {})
  if given or not module.is_mutable_collection("params"):  # named by the path in a parent
    _check_tree("params" + "".join(f"[{p!r}]" for p in module.scope.path), given, shapes)
  tree = {}

  def init(rng, symbol):
    if not tree:
      tree.update(module.model.init(rng, module.dtype))
    return tree[symbol]

  def zeros(_, symbol):
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[symbol])

  fn = init if module.is_mutable_collection("params") else zeros
  for symbol in shapes:
    module.param(symbol, fn, symbol)


def _forwarder(name: str):
  """A front-end method that calls the model's method ``name``."""
  def forward(self, *args, **kwargs):
    return self._forward(name, args, kwargs)

  forward.__name__ = forward.__qualname__ = name
  forward.__doc__ = f"The model's ``{name}``."
  return forward


@functools.cache
def _linen_classes() -> dict[type, type]:
  import flax.linen as nn  # noqa: PLC0415 (lazy: import dljax does not pay for Flax)

  class _Linen(nn.Module):
    """The parameters of ``model``, one linen param per top-level symbol, and its methods."""

    model: Any
    dtype: Any = jnp.float32

    def setup(self):
      _linen_setup(self)

    def _forward(self, method: str, args: tuple, kwargs: dict) -> Any:
      params = self.variables["params"]
      return _call(self.model, method, params, args, kwargs, self._draw)

    def _draw(self) -> Any:
      if not (self.has_rng(SAMPLE_STREAM) or self.has_rng("params")):
        checks.fail("key", f"be given, or a {SAMPLE_STREAM!r} RNG stream "
                    f"(apply(..., rngs={{{SAMPLE_STREAM!r}: key}}))", "neither",
                    kind=checks.ArgumentTypeError)
      return self.make_rng(SAMPLE_STREAM)

    def __call__(self, *args, **kwargs):
      """The model's ``apply``."""
      return self._forward("apply", args, kwargs)

    def symbols(self) -> dict[str, Any]:
      """The parameter tree (``init(key, method="symbols")`` builds it without inputs)."""
      return self.variables["params"]

  return {cls: type(cls.__name__, (_Linen,), {m: _forwarder(m) for m in _methods(cls)})
          for cls in _KINDS}


# ----------------------------------------------------------------------------------------------
# NNX.


def nnx(model: Any, rngs: Any = None, *, dtype: Any = jnp.float32) -> Any:
  """A ``flax.nnx.Module`` running ``model``: one ``nnx.Param`` per leaf of the model's tree.

  The parameters are ``model.init(rngs.params(), dtype)``; ``rngs`` is an ``nnx.Rngs`` or a
  seed (default ``nnx.Rngs(0)``), kept by the module to draw a missing sampling key from
  ``rngs.sample()``. Methods: ``__call__`` (the model's ``apply``) and those of ``predict``,
  ``prior``, ``encode``, ``decode``, ``sample`` the model has. The CVAE's ``prior`` is a method
  and a parameter group: ``module.prior`` is the method, ``vars(module)["prior"]`` the group.
  """
  from flax import nnx as _nnx  # noqa: PLC0415

  _check_model(model)
  checks.float_dtype("dtype", dtype)
  if not isinstance(rngs, _nnx.Rngs):  # None or a seed
    rngs = _nnx.Rngs(0 if rngs is None else checks.integer("rngs", rngs, 0))
  return _nnx_classes()[type(model)](model, rngs, jnp.dtype(dtype))


def params_of(module: Any) -> dict[str, Any]:
  """An NNX front-end's parameters as the dljax tree (``nnx.state(module, nnx.Param)``, pure)."""
  from flax import nnx as _nnx  # noqa: PLC0415

  _check_nnx("module", module)
  return _nnx.to_pure_dict(_nnx.state(module, _nnx.Param))


def load_params(module: Any, params: Any) -> Any:
  """Writes a dljax params tree (from ``fit``, a checkpoint, a linen front-end) into an NNX
  front-end, in place, after checking its symbols and shapes; returns the module."""
  from flax import nnx as _nnx  # noqa: PLC0415

  _check_nnx("module", module)
  _check_tree("params", params, _shapes(module.model, module.dtype))
  state = _nnx.state(module, _nnx.Param)
  _nnx.replace_by_pure_dict(state, _plain(params))
  _nnx.update(module, state)
  return module


def _check_nnx(name: str, module: Any) -> None:
  if not isinstance(module, tuple(_nnx_classes().values())):
    checks.fail(name, "be a module built by dljax.nnx(model)", type(module).__name__,
                kind=checks.ArgumentTypeError)


class _Forward:
  """A method forwarded to the model's method of the same name. A data descriptor, so it wins
  over an instance attribute of that name: the CVAE's ``prior`` parameter group, which NNX keeps
  in the instance's ``__dict__`` (where ``nnx.state`` reads it) while ``module.prior`` stays the
  method."""

  def __init__(self, name: str):
    def forward(module, *args, **kwargs):
      return module._forward(name, *args, **kwargs)

    forward.__name__ = forward.__qualname__ = self.name = name
    forward.__doc__ = self.__doc__ = f"The model's ``{name}``."
    self.function = forward

  def __get__(self, obj: Any, cls: Any = None) -> Any:
    return self if obj is None else types.MethodType(self.function, obj)

  def __set__(self, obj: Any, value: Any) -> None:
    obj.__dict__[self.name] = value

  def __delete__(self, obj: Any) -> None:
    del obj.__dict__[self.name]


@functools.cache
def _nnx_classes() -> dict[type, type]:
  from flax import nnx as _nnx  # noqa: PLC0415

  def variables(value):  # a tree of arrays as a tree of nnx.Param (nnx.Dict for the groups)
    if isinstance(value, Mapping):
      return _nnx.Dict({k: variables(v) for k, v in value.items()})
    return _nnx.Param(value)

  def values(node):  # the inverse: the dljax tree of the current values
    if isinstance(node, _nnx.Dict):
      return {k: values(node[k]) for k in node}
    return node.get_value()

  class _NNX(_nnx.Module):
    """The parameters of ``model`` as ``nnx.Param``s named by its symbols, and its methods."""

    def __init__(self, model: Any, rngs: Any, dtype: Any):
      self.model, self.dtype = model, dtype  # static: hashable, part of the graph definition
      for symbol, value in model.init(rngs.params(), dtype).items():
        setattr(self, symbol, variables(value))
      self.rngs = rngs

    def _forward(self, method: str, *args, **kwargs) -> Any:
      params = {s: values(vars(self)[s]) for s in _shapes(self.model, self.dtype)}
      return _call(self.model, method, params, args, kwargs, self.rngs.sample)

    def __call__(self, *args, **kwargs):
      """The model's ``apply``."""
      return self._forward("apply", *args, **kwargs)

  return {cls: type(cls.__name__, (_NNX,), {m: _Forward(m) for m in _methods(cls)})
          for cls in _KINDS}


# ----------------------------------------------------------------------------------------------
# Back to dljax's engine.


def fit_state(model: Any, params: Any, optimizer: Any = None, step: int = 0) -> Any:
  """A ``train.TrainState`` at ``step`` holding ``params`` (trained in Flax, say) and a fresh
  ``optimizer`` state (default ``train.adam()``, fit's), to continue with ``fit(..., state=)``."""
  from dljax import train  # noqa: PLC0415

  check_params(model, params)
  optimizer = train.adam() if optimizer is None else optimizer
  params = _plain(params)
  return train.TrainState(jnp.asarray(checks.integer("step", step, 0), jnp.int32), params,
                          optimizer.init(params))
