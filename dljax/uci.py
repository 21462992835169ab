"""The UCI regression benchmark with Deep Ensembles (Lakshminarayanan, Pritzel and Blundell 2017).

The protocol of Hernandez-Lobato and Adams (2015): the 90/10 splits of ``datasets.uci_splits``;
on each split, inputs and target standardised with the training rows' statistics (a constant
input keeps a scale of 1, as the benchmark's code), one hidden layer of ReLU units with a mean
and a log-variance head, trained by the Gaussian NLL plus its fast-gradient-sign term

  l(x) + l(x + eps_j sign(grad_x l)),   eps_j = 0.01 (max - min) of input j's standardised
  training values,

with batches of 100 rows and Adam for ``n_epochs`` epochs (n_epochs n_train / 100 steps; each
epoch a fresh permutation of the rows, ``fit(sampling="epochs")``). Adam's learning rate and a
cosine decay are chosen per split on a validation part of its training rows (``select``). All
splits' members (S K networks: Boston's 20 x 5 = 100) train as one vmapped program, each member
on its own split (``fit(member_data=True)``) at its own learning rate (``member_optimizer``).
Scores, in y's original units, per split: the NLL of the members' equal-weight mixture, mean
over the test rows, and the RMSE of the mixture mean; then mean and standard error over splits.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dljax import checks, datasets, metrics
from dljax import models as M
from dljax import objectives as O
from dljax import train as T

BATCH_SIZE = 100
MEMBERS = 5
EPSILON = 0.01  # of each input's standardised training range
SCALE = "x_range"  # the batch array that holds each input's training range, per row


class Prepared(NamedTuple):
  """Every member's training arrays [S K, N, ...] and the rows to score [S, N_eval, ...]."""

  data: dict[str, np.ndarray]  # x, y (standardised) and x_range, member s K + k on split s
  x_eval: np.ndarray  # [S, N_eval, P] standardised
  y_eval: np.ndarray  # [S, N_eval, 1] in y's original units
  y_mean: np.ndarray  # [S, 1, 1]: y's training mean and standard deviation per split
  y_std: np.ndarray
  members: int


def prepare(d: datasets.Regression, parts: Sequence[tuple[np.ndarray, np.ndarray]],
            members: int = MEMBERS) -> Prepared:
  """Standardised arrays of each (training rows, scored rows) part, repeated for its members."""
  rows = {"x": [], "y": [], SCALE: []}
  x_eval, y_eval, y_mean, y_std = [], [], [], []
  for fit_rows, eval_rows in parts:
    x, y = d.x[fit_rows].astype(np.float64), d.y[fit_rows].astype(np.float64)
    mx, sx = x.mean(0), x.std(0)
    sx[sx == 0] = 1.0  # a constant input (Naval has two) stays 0, as in the benchmark's code
    my, sy = y.mean(0), y.std(0)
    z = (x - mx) / sx
    for name, a in (("x", z), ("y", (y - my) / sy),
                    (SCALE, np.broadcast_to(z.max(0) - z.min(0), z.shape))):
      rows[name].append(np.broadcast_to(a.astype(np.float32), (members, *a.shape)))
    x_eval.append(((d.x[eval_rows] - mx) / sx).astype(np.float32))
    y_eval.append(d.y[eval_rows].astype(np.float64))
    y_mean.append(my[None])
    y_std.append(sy[None])
  data = {k: np.concatenate(v) for k, v in rows.items()}
  return Prepared(data, *(np.stack(a) for a in (x_eval, y_eval, y_mean, y_std)), members)


def network(d: datasets.Regression, hidden: int | None = None):
  """The benchmark's network for ``d``: P-H-(1, 1) ReLU with a log-variance head, and its
  adversarial Gaussian NLL."""
  model = M.mlp(d.x.shape[1], (hidden or d.n_hidden,), 1, heteroscedastic=True,
                activation="relu")
  return model, O.adversarial(O.gaussian_nll(model), EPSILON, scale=SCALE)


def steps_for(n_rows: int, epochs: int, batch_size: int = BATCH_SIZE) -> int:
  """Optimizer steps of ``epochs`` passes over ``n_rows`` rows in batches of ``batch_size``."""
  return math.ceil(epochs * n_rows / batch_size)


def member_devices(members: int) -> list[jax.Device]:
  """The most devices (of ``jax.devices()``) that ``members`` members split across evenly."""
  devices = jax.devices()
  return devices[:max(n for n in range(1, len(devices) + 1) if members % n == 0)]


class _Rates(NamedTuple):
  """Each member's learning rate, in the optimizer's state: a peak and a cosine switch."""

  count: jax.Array
  peak: jax.Array
  cosine: jax.Array


@functools.cache
def member_optimizer(steps: int) -> optax.GradientTransformation:
  """Adam (b1 0.9, b2 0.999, eps 1e-8) whose learning rate each member holds in its state:

    lr_t = peak (cosine: peak (1 + cos(pi min(t, steps) / steps)) / 2, to 0 at ``steps``),

  so that members with different rates train in one vmapped program (``initial_state``)."""
  def init(params):
    return _Rates(jnp.zeros([], jnp.int32), jnp.ones([], jnp.float32), jnp.zeros([], jnp.float32))

  def update(updates, state, params=None):
    frac = jnp.minimum(state.count, steps).astype(jnp.float32) / steps
    lr = state.peak * jnp.where(state.cosine > 0, 0.5 * (1.0 + jnp.cos(jnp.pi * frac)), 1.0)
    return jax.tree.map(lambda u: -lr * u, updates), state._replace(count=state.count + 1)

  return optax.chain(optax.scale_by_adam(0.9, 0.999, 1e-8), optax.GradientTransformation(init,
                                                                                        update))


def initial_state(model, seeds, steps: int, rates, cosine) -> T.TrainState:
  """``train.init_state`` of ``member_optimizer(steps)`` with each member's (peak, cosine)."""
  state = T.init_state(model, seeds, member_optimizer(steps))
  adam, own = state.opt_state
  own = own._replace(peak=jnp.asarray(rates, jnp.float32), cosine=jnp.asarray(cosine, jnp.float32))
  return state._replace(opt_state=(adam, own))


def train(d: datasets.Regression, prepared: Prepared, rates, cosine, epochs: int, seed: int = 0,
          hidden: int | None = None) -> T.FitResult:
  """All members of all parts as one vmapped program: member i (seed + i) on its part's rows,
  at learning rate ``rates[i]``, decayed by a cosine where ``cosine[i]``."""
  model, objective = network(d, hidden)
  K, n = prepared.data["x"].shape[:2]
  steps, seeds = steps_for(n, epochs), list(range(seed, seed + K))
  rates, cosine = (np.broadcast_to(np.asarray(a, np.float32), (K,)) for a in (rates, cosine))
  return T.fit(model, objective, prepared.data, steps=steps, batch_size=min(BATCH_SIZE, n),
               seed=seeds, optimizer=member_optimizer(steps), log_every=steps,
               state=initial_state(model, seeds, steps, rates, cosine), member_data=True,
               devices=member_devices(K), sampling="epochs")


@functools.partial(jax.jit, static_argnames=("model",))
def _predict(model, params, x):
  return jax.vmap(model.predict)(params, x)


def scores(d: datasets.Regression, params, prepared: Prepared,
           hidden: int | None = None) -> dict[str, np.ndarray]:
  """Per part [S]: the mixture's NLL (mean over rows) and its mean's RMSE, in y's units."""
  model, _ = network(d, hidden)
  S, K = prepared.x_eval.shape[0], prepared.members
  x = np.repeat(prepared.x_eval, K, axis=0)  # member s K + k scores its part s
  F, log_sigma = (np.asarray(a, np.float64) for a in _predict(model, params, x))
  mu = F.reshape(S, K, *F.shape[1:]) * prepared.y_std[:, None] + prepared.y_mean[:, None]
  sigma = np.exp(log_sigma).reshape(mu.shape) * prepared.y_std[:, None]
  nll = [np.mean(metrics.mixture_nll(y, m, s)) for y, m, s in zip(prepared.y_eval, mu, sigma)]
  rmse = [metrics.rmse(m.mean(0), y) for y, m in zip(prepared.y_eval, mu)]
  return {"nll": np.asarray(nll), "rmse": np.asarray(rmse)}


def summary(values: np.ndarray) -> dict[str, float]:
  """Mean and standard error (sample standard deviation / sqrt(n)) over splits."""
  values = np.asarray(values, np.float64)
  se = values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else float("nan")
  return {"mean": float(values.mean()), "se": float(se)}


def validation_parts(splits, fraction: float) -> list[tuple[np.ndarray, np.ndarray]]:
  """Each split's training rows, the last ``fraction`` of them (a random subset: the rows are a
  permutation) held out to score on; the test rows are not used."""
  fraction = checks.fraction("validation_fraction", fraction)
  parts = []
  for train_rows, _ in splits:
    n_fit = len(train_rows) - max(1, int(round(fraction * len(train_rows))))
    parts.append((train_rows[:n_fit], train_rows[n_fit:]))
  return parts


def select(d: datasets.Regression, splits, candidates: Sequence[tuple[float, bool]],
           fraction: float, epochs: int, seed: int = 0, hidden: int | None = None,
           members: int = MEMBERS) -> tuple[list[int], np.ndarray, np.ndarray]:
  """Each split's candidate (learning rate, cosine decay) of lowest validation NLL, on its own
  training rows only (``validation_parts``): (choice per split, NLL and RMSE [candidates,
  splits]); the candidates all run one compiled program."""
  prepared = prepare(d, validation_parts(splits, fraction), members)
  nll, rmse = [], []
  for lr, cosine in candidates:
    fitted = train(d, prepared, lr, cosine, epochs, seed, hidden)
    s = scores(d, fitted.params, prepared, hidden)
    nll.append(s["nll"])
    rmse.append(s["rmse"])
  nll, rmse = np.array(nll), np.array(rmse)
  choice = np.argmin(np.where(np.isfinite(nll), nll, np.inf), axis=0)
  return [int(c) for c in choice], nll, rmse


def member_rates(candidates, choice: Sequence[int], members: int) -> tuple[np.ndarray, ...]:
  """Each member's (learning rate, cosine) from its split's chosen candidate."""
  picked = np.repeat(np.asarray(choice), members)
  return (np.array([candidates[c][0] for c in picked], np.float32),
          np.array([candidates[c][1] for c in picked], np.float32))


def one_after_another(d: datasets.Regression, prepared: Prepared, rates, cosine, epochs: int,
                      seed: int = 0, hidden: int | None = None) -> list[float]:
  """Seconds of each of ``train``'s networks trained alone, one ``fit`` after another (the
  first includes the one compilation they share)."""
  model, objective = network(d, hidden)
  K, n = prepared.data["x"].shape[:2]
  steps, seconds = steps_for(n, epochs), []
  for i in range(K):
    t0 = time.perf_counter()
    state = initial_state(model, seed + i, steps, rates[i], cosine[i])
    fitted = T.fit(model, objective, {k: a[i] for k, a in prepared.data.items()}, steps=steps,
                   batch_size=min(BATCH_SIZE, n), seed=seed + i, state=state,
                   optimizer=member_optimizer(steps), log_every=steps, sampling="epochs")
    jax.block_until_ready(fitted.params)
    seconds.append(time.perf_counter() - t0)
  return seconds


def linear_baseline(d: datasets.Regression, splits) -> dict[str, np.ndarray]:
  """Per split [S]: a linear-Gaussian baseline by statsmodels' OLS, y = [1, x] beta + e,
  e ~ N(0, s^2) with s^2 the residual mean square (n - p - 1 degrees of freedom): its test NLL
  and RMSE in y's units, as ``scores``."""
  try:
    import statsmodels.api as sm  # noqa: PLC0415 (the data extra, imported when first used)
  except ImportError as e:
    raise ImportError("the linear baseline needs statsmodels: pip install -e '.[data]'") from e
  nll, rmse = [], []
  for train_rows, test_rows in splits:
    ones = lambda rows: sm.add_constant(d.x[rows].astype(np.float64), has_constant="add")
    fit = sm.OLS(d.y[train_rows, 0].astype(np.float64), ones(train_rows)).fit()
    residual = d.y[test_rows, 0] - fit.predict(ones(test_rows))
    nll.append(np.mean(0.5 * math.log(2 * math.pi * fit.scale) + 0.5 * residual**2 / fit.scale))
    rmse.append(math.sqrt(np.mean(residual**2)))
  return {"nll": np.asarray(nll), "rmse": np.asarray(rmse)}
