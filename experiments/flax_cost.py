"""The Flax front-ends' cost: jitted programs of ``dljax.linen`` / ``dljax.nnx`` against the model's.

Three programs per model and variant: ``fwd``, the jitted apply; ``step``, one jitted Adam step
(value_and_grad of a squared output, the optax update), called once per step as in a user's
loop; ``fused``, FUSED such steps in one ``lax.scan``, timed per step. Variants: ``dljax``
(``model.apply(params, ...)``), ``linen`` (``module.apply({"params": params}, ...)``), ``nnx``
(``nnx.split`` outside, ``nnx.merge`` inside ``jax.jit``), and ``nnx.jit`` of ``module(x)`` for
fwd. The variants are interleaved repeat by repeat in one process; a time is the median over
repeats; ratio = variant / dljax (goal: linen within 5%). ``same HLO``: the optimised HLO,
names and metadata stripped, equals dljax's. ``experiments.benchmark --sections=flax`` runs it.
"""

import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx as fnnx

import dljax
from dljax.interop import linen, nnx

FUSED = 100  # Adam steps per call of the fused program


def _problems():
  rng = np.random.default_rng(0)
  f32 = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
  key = jax.random.PRNGKey(1)
  return {
      "mlp 1-50-50-1, N=100": (dljax.mlp(), (f32(100, 1),)),
      "rnn H=4, 5 lags, N=66": (dljax.rnn(), (f32(66, 5, 1),)),
      "lstm H=4, 10 lags, N=61": (dljax.lstm(), (f32(61, 10, 1),)),
      "vae tutorial, N=200": (dljax.vae(), (f32(200, 2), key)),
      "cvae standard, N=100": (dljax.cvae(variant="standard"), (f32(100, 1), key, f32(100, 1))),
  }


def _hlo(jitted, *args):
  """The optimised HLO without names, metadata and source-location tables."""
  text = jitted.lower(*args).compile().as_text()
  text = re.sub(r"^(FileNames|FunctionNames|FileLocations|StackFrames)\n.*?\n\n", "", text,
                flags=re.S | re.M)
  text = re.sub(r", metadata=\{[^}]*\}", "", text)
  text = re.sub(r",? ?stack_frame_id=\d+", "", text)
  text = re.sub(r"_value(?=\.\d)", "", text)  # NNX's argument names: p__A___value for p__A__
  text = re.sub(r"^HloModule \S+", "HloModule", text, flags=re.M)
  return re.sub(r"jit_\w+", "jit", text)


def _sq(out):
  return sum(jnp.mean(jnp.square(a)) for a in jax.tree.leaves(out))


def _programs(model, inputs):
  """{variant: {program: (jitted, args)}} and the NNX module: ``fwd``, the jitted apply;
  ``step``, one jitted Adam step; ``fused``, FUSED Adam steps in one ``lax.scan``."""
  tx = optax.adam(1e-3)
  params = model.init(jax.random.PRNGKey(0))
  module = linen(model)
  net = nnx(model)
  graphdef, nparams, rest = fnnx.split(net, fnnx.Param, ...)  # split outside jit

  def make(apply, p):
    def update(p, o, x):
      loss, g = jax.value_and_grad(lambda p: _sq(apply(p, *x)))(p)
      u, o = tx.update(g, o, p)
      return optax.apply_updates(p, u), o, loss

    def fused(p, o, *x):
      (p, o), losses = jax.lax.scan(lambda c, _: (update(*c, x)[:2], None), (p, o), None,
                                    length=FUSED)
      return p, o

    o = tx.init(p)
    return {"fwd": (jax.jit(lambda p, *x: apply(p, *x)), (p, *inputs)),
            "step": (jax.jit(lambda p, o, *x: update(p, o, x)), (p, o, *inputs)),
            "fused": (jax.jit(fused), (p, o, *inputs))}

  nnx_apply = lambda p, *x: fnnx.merge(graphdef, p, rest)(*x)
  return {"dljax": make(model.apply, params),
          "linen": make(lambda p, *x: module.apply({"params": p}, *x), params),
          "nnx": make(nnx_apply, nparams)}, net


def _time(fn, calls):
  out = fn()
  jax.block_until_ready(out)
  t0 = time.perf_counter()
  for _ in range(calls):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / calls


def interop_cost(model, inputs, repeats=21, calls=200) -> list[dict]:
  """One row per program (fwd, step, fused) for ``model`` on ``inputs``: median microseconds
  per call (fused: per step) of each variant, the ratios to dljax and whether the HLO is dljax's.
  A section of experiments/benchmark.py can return these rows as they are."""
  progs, net = _programs(model, inputs)
  jit_fwd = fnnx.jit(lambda m, *x: m(*x))
  rows = []
  for kind in ("fwd", "step", "fused"):
    runs = {v: progs[v][kind] for v in progs}
    ref = _hlo(*_unpack(runs["dljax"]))
    same = {v: _hlo(*_unpack(runs[v])) == ref for v in ("linen", "nnx")}
    if kind == "fwd":
      runs["nnx.jit"] = (lambda *x: jit_fwd(net, *x), tuple(inputs))
    n_calls = max(calls // 10, 1) if kind == "fused" else calls
    per = FUSED if kind == "fused" else 1
    times = {v: [] for v in runs}
    names = list(runs)
    for r in range(repeats):  # interleaved and rotated: drift and order hit every variant alike
      for v in names[r % len(names):] + names[:r % len(names)]:
        f, a = runs[v]
        times[v].append(_time(lambda: f(*a), n_calls) / per)
    med = {v: statistics.median(t) * 1e6 for v, t in times.items()}
    rows.append({"program": kind, **{f"{v}_us": m for v, m in med.items()},
                 **{f"{v}_ratio": m / med["dljax"] for v, m in med.items() if v != "dljax"},
                 **{f"{v}_same_hlo": same[v] for v in same}})
  return rows


def _unpack(call):
  fn, args = call
  return (fn, *args)
