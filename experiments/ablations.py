"""A/B measurements behind BUILD_NOTES.md: minibatch draw (top_k vs a permutation), the LSTM's
fused gate matmul vs four separate ones, and donation of the chunk's state.

  python -m experiments.ablations

Each line compares two variants in the same process (median of 5 fits after a warm-up). It
swaps engine internals for the comparison, so it is a measurement script, not library code.
"""
import statistics
import time

import jax
import jax.numpy as jnp

from dljax import examples as E, train as T, models as M
from dljax import sampler as S

def bench(exp, model=None, objective=None, reps=5):
  m = model or exp.model; o = objective or exp.objective
  T.fit(m, o, exp.data, **exp.fit_kwargs)
  ts = []
  for _ in range(reps):
    t = time.perf_counter(); T.fit(m, o, exp.data, **exp.fit_kwargs); ts.append(time.perf_counter() - t)
  return exp.fit_kwargs["steps"] / statistics.median(ts)

orig = S.minibatch_indices
choice = lambda key, n, b: jax.random.choice(key, n, (b,), replace=False)
for name in ["mlp", "vae", "cvae", "rnn"]:
  exp = E.PREPARERS[name]()
  a = bench(exp)
  S.minibatch_indices = choice
  T._chunk = jax.jit(T._checked(T._run_chunk), static_argnames=T._STATIC, donate_argnums=0)
  b = bench(exp)
  S.minibatch_indices = orig
  T._chunk = jax.jit(T._checked(T._run_chunk), static_argnames=T._STATIC, donate_argnums=0)
  print(f"minibatch {name}: top_k {a:,.0f} steps/s, choice(replace=False) {b:,.0f} steps/s", flush=True)

class LSTMSeparate(M.LSTM):
  def apply(self, params, Y):
    H = self.hidden
    def cell(carry, y):
      h, s = carry
      g = lambda k: h @ params[f"W_{k}"] + y @ params[f"U_{k}"] + params[f"b_{k}"]
      f, i, o = jax.nn.sigmoid(g("f")), jax.nn.sigmoid(g("i")), jax.nn.sigmoid(g("o"))
      s = f * s + i * jnp.tanh(g("s"))
      return (o * jnp.tanh(s), s), None
    z = jnp.zeros((Y.shape[0], H), Y.dtype)
    (h, _), _ = jax.lax.scan(cell, (z, z), jnp.swapaxes(Y, 0, 1), unroll=True)
    return h @ params["V"] + params["c"]

exp = E.prepare_lstm()
sep = LSTMSeparate(1, 4, 1, None)
a = bench(exp); b = bench(exp, sep, type(exp.objective)(sep))
print(f"lstm gates: fused [H,4H] matmul {a:,.0f} steps/s, four separate gates {b:,.0f} steps/s", flush=True)

nodonate = jax.jit(T._checked(T._run_chunk), static_argnames=T._STATIC)
for name in ["mlp", "vae"]:
  exp = E.PREPARERS[name]()
  a = bench(exp)
  T._chunk, keep = nodonate, T._chunk
  b = bench(exp)
  T._chunk = keep
  print(f"donation {name}: donated {a:,.0f} steps/s, not donated {b:,.0f} steps/s", flush=True)
