"""The fused loop a competent JAX user writes by hand, for the benchmark's ``baseline`` section.

``jax.jit`` of a ``lax.scan`` over ``optax`` steps of the example's own model, objective and
optimizer; minibatches drawn by ``jax.random.randint`` inside the scan (with replacement, as such
a loop does); K members as ``jax.vmap`` of the whole thing over seeds, on one device. dljax's
``fit`` is timed against it on the same example, interleaved in one process: on one device too,
and, given ``spread``, as the launchers run an ensemble, split across one CPU device per core.
"""

import functools
import math
import statistics
import time

import jax
import jax.numpy as jnp
import optax


MAX_REPEATS = 201  # against_fit's most repeats


@functools.partial(jax.jit, static_argnames=("model", "objective", "optimizer", "batch_size",
                                             "steps"))
def hand_written(seeds, data, *, model, objective, optimizer, batch_size, steps):
  """Trains one member per seed for ``steps`` steps; returns the params and the losses [K, steps]."""
  n = next(iter(data.values())).shape[0]

  def member(seed):
    init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
    params = model.init(init_key)

    def step(carry, t):
      params, opt_state = carry
      batch_key, loss_key = jax.random.split(jax.random.fold_in(train_key, t))
      idx = jax.random.randint(batch_key, (batch_size,), 0, n)
      batch = {k: v[idx] for k, v in data.items()}
      (loss, _), grads = jax.value_and_grad(objective, has_aux=True)(params, batch, loss_key)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), jnp.arange(steps))
    return params, losses

  return jax.vmap(member)(seeds)


def against_fit(exp, members: int, steps: int, repeats: int, timed_s: float = 1.0,
                spread=None) -> dict:
  """steps/s of ``fit`` and of the hand-written loop on prepared example ``exp`` with ``members``
  seeds (``exp`` prepared with ``ensemble=members``), medians of interleaved repeats: at least
  ``repeats``, and enough for ``timed_s`` seconds of each side (at most MAX_REPEATS). Given
  ``spread`` (several devices), ``fit`` with the members split across them is timed too, in
  the same turns, against the same one-device hand-written loop."""
  from dljax import train  # noqa: PLC0415

  kw = dict(exp.fit_kwargs, steps=steps, log_every=min(steps, exp.fit_kwargs["log_every"]),
            devices=jax.devices()[:1])  # one device, as the hand-written loop
  seeds = jnp.arange(members, dtype=jnp.int32)
  static = dict(model=exp.model, objective=exp.objective, optimizer=kw["optimizer"],
                batch_size=kw["batch_size"], steps=steps)
  fit_on = lambda devices: lambda: train.fit(exp.model, exp.objective, exp.data,
                                             **dict(kw, devices=devices)).params
  runs = {"fit": fit_on(kw["devices"]), "baseline": lambda: hand_written(seeds, exp.data, **static)}
  if spread:
    runs["fit_spread"] = fit_on(list(spread))
  times = {name: [] for name in runs}
  for name, run in runs.items():  # compile and warm up, then one call each timed
    jax.block_until_ready(run())
    t0 = time.perf_counter()
    jax.block_until_ready(run())
    times[name].append(time.perf_counter() - t0)
  # calls of a few milliseconds (the RNN's 5000 steps: 3 ms) vary by 10-20% from one to the
  # next: more repeats, so that each side is timed for at least timed_s in all
  repeats = max(repeats, min(MAX_REPEATS, math.ceil(timed_s / min(map(min, times.values())))))
  times = {name: [] for name in runs}
  for r in range(repeats):
    for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
      t0 = time.perf_counter()
      jax.block_until_ready(runs[name]())
      times[name].append(time.perf_counter() - t0)
  rate = {name: steps / statistics.median(t) for name, t in times.items()}
  # each repeat's own ratio (each fit call is next to the baseline's in every turn): their
  # quartiles show the noise
  quartiles = {}
  for name in [n for n in runs if n != "baseline"]:
    pairs = [b / f for f, b in zip(times[name], times["baseline"])]
    q1, _, q3 = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else pairs * 3
    quartiles[name] = [q1, q3]
  out = {"members": members, "steps": steps, "fit_steps_per_s": rate["fit"],
         "baseline_steps_per_s": rate["baseline"],
         "fit_over_baseline": rate["fit"] / rate["baseline"], "repeats": repeats,
         "ratio_quartiles": quartiles["fit"]}
  if spread:
    out.update(spread_devices=len(spread), fit_spread_steps_per_s=rate["fit_spread"],
               fit_spread_over_baseline=rate["fit_spread"] / rate["baseline"],
               spread_ratio_quartiles=quartiles["fit_spread"])
  return out
