"""What the examples' evaluations share: their keys, the members of an ensemble evaluated as one
program, draws from the mixture of the members, the held-out ELBO and IWAE bounds, and the
Gaussian band of a recurrent net's forecasts."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from dljax import checks, forecast, metrics

IWAE_KS = (1, 10, 100, 1000)  # the IWAE bound's sample counts reported by the VAE and CVAE


def eval_key(seed: int) -> jax.Array:
  """The key of a seed's evaluation draws, independent of its init and training keys."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED)


def members(fn, params, ensemble: int):
  """fn(params) for one member, or vmapped over the members' axis; compiled as one program."""
  return jax.jit(fn if ensemble == 1 else jax.vmap(fn))(params)


def pool(key: jax.Array, draws: np.ndarray, n: int) -> np.ndarray:
  """n draws of the mixture from the members' ``draws`` [K, M, ...]: for each, a member chosen
  uniformly and its next unused draw."""
  which = np.asarray(jax.random.randint(key, (n,), 0, draws.shape[0]))
  return draws[which, np.arange(n) % draws.shape[1]]


def check_ks(ks: Any) -> tuple[int, ...]:
  """The IWAE sample counts ``iwae_ks``, a sequence of integers >= 1 (may be empty)."""
  if isinstance(ks, (str, bytes)):
    checks.fail("iwae_ks", "be a sequence of integers >= 1", repr(ks))
  return checks.sizes("iwae_ks", ks)


def bound_scores(model, params, ensemble: int, seed: int, ks: tuple[int, ...], y, x=None):
  """Held-out ELBO and IWAE bounds (K in ks), mean per point; {} when ks is empty.

  An ensemble's IWAE is the mixture's (metrics.mixture_bound), its ELBO the members' mean (a
  log-mean-exp of one-draw ELBOs is no bound: log mean_m p_m >= mean_m log p_m >= mean_m
  ELBO_m); the members share the keys and are looped over, so every member and every call
  reuses one compiled program.
  """
  if not ks:
    return {}
  key = jax.random.fold_in(eval_key(seed), 0x1BAE)
  member = lambda m: params if ensemble == 1 else jax.tree.map(lambda a: a[m], params)
  bounds = np.stack([metrics.log_likelihood_bounds(model, member(m), key, y, ks, x)
                     for m in range(ensemble)])  # [K, 1 + len(ks), N]
  iwae_means = np.asarray(metrics.mixture_bound(bounds[:, 1:])).mean(-1)
  return {"elbo_held_out": float(bounds[:, 0].mean()),
          **{f"iwae_{k}": float(b) for k, b in zip(ks, iwae_means)}}


def closed_loop_band(model, params, ensemble: int, start, horizon: int) -> dict[str, np.ndarray]:
  """The closed-loop forecast [horizon, D] from ``start`` [1, lags, D] (an ensemble's: the
  members' mean, and each member's under ``forecast_members``); a Gaussian model's also with its
  band: ``forecast_std`` and the 90% interval ``forecast_low_90``, ``forecast_high_90``."""
  if model.likelihood != "gaussian":
    fc = np.asarray(members(lambda p: forecast.closed_loop(model, p, start, horizon)[0], params,
                            ensemble))  # [(K,) horizon, D]
    pred = {"forecast": fc if ensemble == 1 else fc.mean(0)}
    return {**pred, "forecast_members": fc} if ensemble > 1 else pred
  run = lambda p: [a[0] for a in forecast.closed_loop_predictive(model, p, start, horizon)]
  mu, log_sigma = (np.asarray(a, np.float64) for a in members(run, params, ensemble))
  return named_band("forecast", *as_members(mu, np.exp(log_sigma), ensemble=ensemble))


def as_members(*arrays: np.ndarray, ensemble: int) -> tuple[np.ndarray, ...]:
  """The arrays with a members' axis first: [1, ...] for one member (``ensemble`` 1)."""
  return tuple(a[None] if ensemble == 1 else a for a in arrays)


def named_band(name: str, mu: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
  """``band(mu, sigma)`` as predictions: NAME (the mean), NAME_std, NAME_low_90, NAME_high_90,
  and for an ensemble the members' NAME_members and NAME_std_members."""
  b = band(mu, sigma)
  pred = {name: b["mean"], f"{name}_std": b["std"], f"{name}_low_90": b["low"],
          f"{name}_high_90": b["high"]}
  if mu.shape[0] > 1:
    pred.update({f"{name}_members": mu, f"{name}_std_members": sigma})
  return pred


def band(mu: np.ndarray, sigma: np.ndarray, level: float = 0.9) -> dict[str, np.ndarray]:
  """The predictive of the members' Gaussians mu, sigma [K, ...] (a mixture for K > 1): its mean,
  standard deviation and central ``level`` interval, each [...]."""
  mean, std = metrics.mixture_moments(mu, sigma)
  low, high = (_quantile(q, mu, sigma) for q in (0.5 - level / 2, 0.5 + level / 2))
  return {"mean": mean, "std": std, "low": low, "high": high}


def _quantile(q: float, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  """The q-quantile of one Gaussian in closed form, of a mixture (K > 1) by bisection."""
  if mu.shape[0] > 1:
    return np.asarray(metrics.mixture_quantile(q, mu, sigma))
  from scipy import stats  # noqa: PLC0415 (imported when first needed, not by import dljax)

  return mu[0] + sigma[0] * float(stats.norm.ppf(q))
