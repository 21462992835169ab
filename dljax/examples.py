"""The tutorial's five examples as plain functions: data, model, training and evaluation.

Each ``prepare_*`` function takes the example's settings as keyword arguments (defaults: the
tutorial's, from SETTINGS.md), makes the data, model, objective and optimizer and checks every
argument (ValueError or TypeError naming it) before anything is trained or compiled. ``run``
then trains with ``dljax.train.fit`` and evaluates, returning an ``Outcome`` whose predictions
are in the data's original units; ``run_*`` does both. ``ensemble=K`` trains seeds seed, ..., seed+K-1
as one vmapped program; the predictions then describe the ensemble, and each member's arrays
are kept under a leading axis [K, ...] with a ``_members`` suffix. The experiments' launchers,
the benchmarks and the quality tests all call these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from dljax import data as D
from dljax import forecast, metrics
from dljax import models as M
from dljax import objectives as O
from dljax import train as T

N_SAMPLES = 1000  # VAE: draws z ~ N(0, I) for the figure and the energy distance
N_CURVES = 100  # CVAE: conditional curves drawn for the figure
FRESH_DATA_SEED_OFFSET = 10_000  # seed of the independent data the VAE's samples are scored on


class Experiment(NamedTuple):
  """A prepared example: everything ``fit`` needs, and how to evaluate its parameters."""

  name: str
  model: Any
  objective: Any
  data: dict[str, Any]
  fit_kwargs: dict[str, Any]  # steps, batch_size, seed, log_every, optimizer
  evaluate: Callable[[Any], tuple[dict[str, np.ndarray], dict[str, float]]]
  standardisers: dict[str, D.Standardiser]  # to map predictions back to the data's units


class Outcome(NamedTuple):
  experiment: Experiment
  fit: T.FitResult
  predictions: dict[str, np.ndarray]
  metrics: dict[str, float]

  @property
  def model(self) -> Any:
    return self.experiment.model


def run(experiment: Experiment, callback: Callable | None = None) -> Outcome:
  """Trains a prepared example and evaluates the trained parameters."""
  fit = T.fit(experiment.model, experiment.objective, experiment.data, callback=callback,
              **experiment.fit_kwargs)
  predictions, metrics_ = experiment.evaluate(fit.params)
  return Outcome(experiment, fit, predictions, metrics_)


def _prepare(name, model, objective, data, *, steps, batch_size, seed, log_every, optimizer,
             evaluate, standardisers=None) -> Experiment:
  fit_kwargs = dict(steps=steps, batch_size=batch_size, seed=seed, log_every=log_every)
  data = T.check_fit_arguments(model, objective, data, **fit_kwargs)
  return Experiment(name, model, objective, data, dict(fit_kwargs, optimizer=optimizer),
                    evaluate, standardisers or {})


def _seeds(seed: int, ensemble: int) -> int | list[int]:
  """The seeds of an ensemble's members (checked first: they also seed the data)."""
  seed = T._check_int("seed", seed, 0)
  return seed if ensemble == 1 else list(range(seed, seed + ensemble))


def _members(fn, params, ensemble: int):
  """fn(params) for one member, or vmapped over the members' axis; compiled as one program."""
  return jax.jit(fn if ensemble == 1 else jax.vmap(fn))(params)


def eval_key(seed: int) -> jax.Array:
  """The key of a seed's evaluation draws, independent of its init and training keys."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED)


def _check_ensemble(ensemble: Any) -> int:
  return T._check_int("ensemble", ensemble, 1)


def _check_range(name: str, value: Any, interval: tuple[float, float] = (0.0, 1.0)
                 ) -> tuple[float, float]:
  """(low, high), finite, low < high, overlapping ``interval`` (the training inputs' interval)."""
  try:
    lo, hi = (float(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be two numbers (low, high), got {value!r}") from None
  a, b = interval
  if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi and lo <= b and hi >= a):
    raise ValueError(f"{name} must be finite with low < high, overlapping the training inputs' "
                     f"[{a:g}, {b:g}], got {value!r}")
  return lo, hi


def _scores(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, ensemble: int) -> dict[str, float]:
  """Proper scores of the (mixture) predictive on held-out y, per data point."""
  if ensemble == 1:
    mu, sigma = mu[None], sigma[None]  # a mixture of one
  mean, _ = metrics.mixture_moments(mu, sigma)
  members_nll = -np.mean(stats.norm.logpdf(y[None], mu, sigma))  # the members' average NLL
  cover = metrics.coverage(y, mu, sigma)
  return {"fresh_nll": float(np.mean(metrics.mixture_nll(y, mu, sigma))),
          "fresh_members_nll": float(members_nll),
          "fresh_crps": float(np.mean(metrics.mixture_crps(y, mu, sigma))),
          "fresh_rmse": metrics.rmse(mean, y),
          **{f"coverage_{round(100 * level)}": c for level, c in cover.items()}}


class MLPDataset(NamedTuple):
  """A data set of the network example: how to make it, and its defaults."""

  make: Callable[..., D.Regression]  # (seed, n=, noise=) -> training pairs and a test grid
  f: Callable[[np.ndarray], np.ndarray]  # the noise-free function
  interval: tuple[float, float]  # the training inputs' interval; fresh x ~ U[interval]
  n_train: int
  noise: float
  x_range: tuple[float, float]  # default interval of the test inputs and the figure
  activation: str  # default hidden units: the tutorial's tanh; relu for the Deep Ensembles toy
  adversarial_epsilon: float  # default FGSM eps, a fraction of the standardised inputs' range


# The cubic toy's relu ensemble at the paper's eps = 0.01 fits its per-x noise to the 20 points
# (members' sigma down to 0.1-0.8 where the truth is 3): fresh draws fall in its 50/90/95%
# intervals 25/52/58% of the time (seeds 0-4, 10,000 steps; 4,000 steps: 27/57/64%). eps = 0.05
# keeps them near the nominal levels (50/80/84% at 4,000 steps, 49/78/82% at 10,000; seeds 5-9
# at 4,000: 57/88/92%).
MLP_DATASETS = {
    "wiggle": MLPDataset(D.sine_wiggle, D.wiggle, (0.0, 1.0), 100, 0.1, (0.0, 1.0), "tanh", 0.01),
    "cubic": MLPDataset(D.cubic, D.cube, D.CUBIC_TRAIN_RANGE, 20, 3.0, D.CUBIC_TEST_RANGE,
                        "relu", 0.05),
}


def _check_dataset(dataset: Any) -> MLPDataset:
  if not isinstance(dataset, str) or dataset not in MLP_DATASETS:
    raise ValueError(f"dataset must be one of {', '.join(map(repr, MLP_DATASETS))}, "
                     f"got {dataset!r}")
  return MLP_DATASETS[dataset]


def _check_epsilon(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < np.inf:
    raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
  return float(value)


def prepare_mlp(seed: int = 0, steps: int = 10_000, batch_size: int = 10,
                learning_rate: float = 1e-3, hidden: Any = (50, 50), n_train: int | None = None,
                noise: float | None = None, ensemble: int = 1, log_every: int = 1000,
                x_range: tuple[float, float] | None = None, dataset: str = "wiggle",
                heteroscedastic: bool = False, adversarial: bool = False,
                adversarial_epsilon: float | None = None,
                activation: str | None = None) -> Experiment:
  """The neural network: 1-50-50-1 tanh, Gaussian NLL with a learned sigma, on x sin(4 pi x).

  ``dataset``: "wiggle" (the tutorial's: 100 points on [0, 1], noise 0.1) or "cubic" (the Deep
  Ensembles toy: y = x^3 + 3 eps, 20 points x ~ U[-4, 4], test grid on [-6, 6]); ``n_train``,
  ``noise`` and ``x_range`` default (None) to the data set's. ``x_range`` is the interval of the
  1000 test inputs, e.g. (-0.25, 1.25) to see the predictive widen away from the data; it must
  overlap the training inputs' interval, and the RMSE is taken over the test inputs inside it.
  ``heteroscedastic``: a per-x noise head log sigma(x) instead of one learned sigma.
  ``adversarial``: FGSM training (``objectives.adversarial``) with epsilon =
  ``adversarial_epsilon`` times the range of the standardised training inputs (the units the
  model sees; the same fraction of the range in original units); None (the default) is the data
  set's: 0.01 for wiggle, 0.05 for cubic (the paper's 0.01 leaves the relu ensemble
  overconfident, see MLP_DATASETS).
  ``activation``: the hidden units, "tanh" or "relu" (``models.MLP_ACTIVATIONS``); None (the
  default) is the data set's: tanh for wiggle (the tutorial's network), relu for cubic (the Deep
  Ensembles paper's; tanh units extrapolate flat, so the members agree off the data).
  """
  ds = _check_dataset(dataset)
  ensemble = _check_ensemble(ensemble)
  n_train = ds.n_train if n_train is None else n_train
  noise = ds.noise if noise is None else noise
  seeds, n_train = _seeds(seed, ensemble), T._check_int("n_train", n_train, 2)
  lo, hi = _check_range("x_range", ds.x_range if x_range is None else x_range, ds.interval)
  adversarial_epsilon = _check_epsilon("adversarial_epsilon", ds.adversarial_epsilon
                                       if adversarial_epsilon is None else adversarial_epsilon)
  activation = ds.activation if activation is None else activation
  model = M.mlp(1, hidden, 1, heteroscedastic=bool(heteroscedastic), activation=activation)
  optimizer = T.adam(learning_rate)
  d = ds.make(seed, n=n_train, noise=noise)
  x_test = np.linspace(lo, hi, d.x_test.shape[0], dtype=np.float32)[:, None]
  d = d._replace(x_test=x_test, y_test=ds.f(x_test))
  inside = (x_test[:, 0] >= ds.interval[0]) & (x_test[:, 0] <= ds.interval[1])
  sx, sy = D.Standardiser.fit(d.x), D.Standardiser.fit(d.y)
  objective = O.gaussian_nll(model)
  if adversarial:
    x_seen = sx.transform(d.x)
    objective = O.adversarial(objective, adversarial_epsilon * float(x_seen.max() - x_seen.min()))

  # Fresh draws of the data process (x ~ U[interval], independent of the training draws), on
  # which the predictive is scored as a mixture of the members' Gaussians.
  fresh = np.random.default_rng([seed, FRESH_DATA_SEED_OFFSET])
  x_fresh = fresh.uniform(*ds.interval, (N_SAMPLES, 1)).astype(np.float32)
  y_fresh = ds.f(x_fresh) + noise * fresh.standard_normal((N_SAMPLES, 1))

  def evaluate(params):
    x_all = jnp.asarray(sx.transform(np.concatenate([d.x_test, x_fresh])))
    F, log_sigma = _members(lambda p: model.predict(p, x_all), params, ensemble)
    mu_all = np.asarray(sy.inverse(np.asarray(F)))  # [(K,) 1000 + 1000, 1]
    sigma_all = np.asarray(sy.inverse_scale(np.exp(np.asarray(log_sigma))))
    n_test = d.x_test.shape[0]
    mu, sigma = mu_all[..., :n_test, :], sigma_all[..., :n_test, :]
    scores = _scores(y_fresh, mu_all[..., n_test:, :], sigma_all[..., n_test:, :], ensemble)
    if ensemble == 1:
      y_mean, y_std = mu, sigma
    else:  # the mixture of the members' Gaussians: its mean and standard deviation
      y_mean, y_std = (m.astype(mu.dtype) for m in metrics.mixture_moments(mu, sigma))
    # The learned noise sigma: [(K,) R] when homoscedastic (the same at every x); per test input,
    # [(K,) N_test, R], when heteroscedastic. "sigma" is its members' mean.
    sigma_learned = sigma if model.heteroscedastic else sigma[..., 0, :]
    pred = {"x_test": d.x_test, "y_true": d.y_test, "y_mean": y_mean, "y_std": y_std,
            "sigma": sigma_learned if ensemble == 1 else sigma_learned.mean(0),
            "x_train": d.x, "y_train": d.y}
    if ensemble > 1:
      pred.update(y_mean_members=mu, y_std_members=sigma, sigma_members=sigma_learned)
    sigma_inside = pred["sigma"][inside] if model.heteroscedastic else pred["sigma"]
    return pred, {"rmse": metrics.rmse(y_mean[inside], d.y_test[inside]),
                  "sigma": float(np.mean(sigma_inside)),  # over the training inputs' interval
                  **scores}

  return _prepare("mlp", model, objective,
                  {"x": sx.transform(d.x), "y": sy.transform(d.y)}, steps=steps,
                  batch_size=batch_size, seed=seeds, log_every=log_every,
                  optimizer=optimizer, evaluate=evaluate, standardisers={"x": sx, "y": sy})


def prepare_recurrent(cell: str = "rnn", seed: int = 0, steps: int = 10_000, batch_size: int = 1,
                      learning_rate: float = 3e-3, decay: bool = True, lags: int | None = None,
                      hidden: int = 4, n_points: int = 100, train_fraction: float = 2 / 3,
                      ensemble: int = 1, log_every: int = 1000) -> Experiment:
  """The recurrent examples: an RNN (5 lags) or an LSTM (10 lags), hidden size 4, on sin(pi t).

  Trained on the windows of the first two thirds of the series by MSE; then a closed-loop
  forecast from the first window across the whole series (100 - lags predictions). With
  ``decay`` the learning rate follows a cosine to 0 over the steps (see BUILD_NOTES.md).
  """
  if cell not in ("rnn", "lstm"):
    raise ValueError(f"cell must be 'rnn' or 'lstm', got {cell!r}")
  ensemble = _check_ensemble(ensemble)
  seeds = _seeds(seed, ensemble)
  lags = (5 if cell == "rnn" else 10) if lags is None else lags
  model = (M.rnn if cell == "rnn" else M.lstm)(1, hidden, 1)
  steps = T._check_int("steps", steps, 1)  # before it sets the decay's length
  optimizer = T.adam(learning_rate, steps if decay else None)
  series = D.sine_series(n_points)
  train_part, _ = D.chronological_split(series, train_fraction)
  X, Y = D.lag_windows(train_part, lags)  # raises if lags >= len(train_part)
  n_train = train_part.shape[0]

  def evaluate(params):
    start, horizon = jnp.asarray(series[None, :lags]), n_points - lags
    fc = _members(lambda p: forecast.closed_loop(model, p, start, horizon)[0], params, ensemble)
    fc = np.asarray(fc)  # [(K,) horizon, 1]
    pred = {"series": series, "forecast": fc if ensemble == 1 else fc.mean(0),
            "n_train_windows": np.asarray(X.shape[0])}
    if ensemble > 1:
      pred["forecast_members"] = fc
    return pred, {"rmse_held_out": metrics.rmse(pred["forecast"][n_train - lags:], series[n_train:]),
                  "rmse_all": metrics.rmse(pred["forecast"], series[lags:])}

  return _prepare(cell, model, O.mse(model), {"x": X, "y": Y}, steps=steps,
                  batch_size=batch_size, seed=seeds, log_every=log_every,
                  optimizer=optimizer, evaluate=evaluate)


def prepare_rnn(**kwargs) -> Experiment:
  return prepare_recurrent("rnn", **kwargs)


def prepare_lstm(**kwargs) -> Experiment:
  return prepare_recurrent("lstm", **kwargs)


def _pool(key: jax.Array, members: np.ndarray, n: int) -> np.ndarray:
  """n draws of the mixture: for each, a member chosen uniformly and its next unused draw."""
  K = members.shape[0]
  which = np.asarray(jax.random.randint(key, (n,), 0, K))
  return members[which, np.arange(n) % members.shape[1]]


IWAE_KS = (1, 10, 100, 1000)  # the IWAE bound's sample counts reported by the VAE and CVAE


def _check_ks(ks: Any) -> tuple[int, ...]:
  if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
    raise ValueError(f"iwae_ks must be a sequence of integers >= 1, got {ks!r}")
  return tuple(T._check_int(f"iwae_ks[{i}]", k, 1) for i, k in enumerate(ks))


def _bound_scores(model, params, ensemble: int, seed: int, ks: tuple[int, ...], y, x=None):
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


def prepare_vae(seed: int = 0, steps: int = 5000, batch_size: int = 200,
                learning_rate: float = 1e-3, latent: int = 2, encoder: Any = (100, 50),
                decoder: Any = (50, 100), n_train: int = 1000, beta: float = 1.0,
                ensemble: int = 1, log_every: int = 1000,
                iwae_ks: Any = IWAE_KS) -> Experiment:
  """The VAE on a noisy ring; scored by the energy distance of 1000 decoder means to fresh data,
  and by the held-out ELBO and IWAE bounds with ``iwae_ks`` samples (none: skipped)."""
  ensemble, iwae_ks = _check_ensemble(ensemble), _check_ks(iwae_ks)
  seeds, n_train = _seeds(seed, ensemble), T._check_int("n_train", n_train, 2)
  model = M.vae(2, latent, encoder, decoder)
  objective, optimizer = O.neg_elbo(model, beta), T.adam(learning_rate)
  y = D.noisy_ring(seed, n_train)
  sy = D.Standardiser.fit(y)

  def evaluate(params):
    k_sample, k_pool = jax.random.split(eval_key(seed))
    draw = lambda p: model.sample(p, k_sample, N_SAMPLES)
    means = sy.inverse(np.asarray(_members(draw, params, ensemble)))  # [(K,) 1000, 2]
    pred = {"y_train": y,
            "sample_means": means if ensemble == 1 else _pool(k_pool, means, N_SAMPLES)}
    if ensemble > 1:
      pred["sample_means_members"] = means
    fresh = D.noisy_ring(seed + FRESH_DATA_SEED_OFFSET, N_SAMPLES)
    y_fresh = jnp.asarray(sy.transform(fresh))  # standardised: add -sum(log sy.std) for y's units
    return pred, {"energy_distance": metrics.energy_distance(pred["sample_means"], fresh),
                  **_bound_scores(model, params, ensemble, seed, iwae_ks, y_fresh)}

  return _prepare("vae", model, objective, {"y": sy.transform(y)}, steps=steps,
                  batch_size=batch_size, seed=seeds, log_every=log_every,
                  optimizer=optimizer, evaluate=evaluate, standardisers={"y": sy})


def prepare_cvae(seed: int = 0, steps: int = 5000, batch_size: int = 5,
                 learning_rate: float = 1e-3, latent: int = 2, hidden: Any = (50, 50),
                 variant: str = "tutorial", n_train: int = 100, noise: float = 0.1,
                 beta: float = 1.0, ensemble: int = 1, log_every: int = 1000,
                 iwae_ks: Any = IWAE_KS) -> Experiment:
  """The CVAE on a noisy step; 100 curves, each with one noise draw shared by every x; the
  held-out ELBO and IWAE bounds of log p(y | x) with ``iwae_ks`` samples (none: skipped)."""
  ensemble, iwae_ks = _check_ensemble(ensemble), _check_ks(iwae_ks)
  seeds, n_train = _seeds(seed, ensemble), T._check_int("n_train", n_train, 2)
  hidden = M._check_sizes("hidden", hidden)  # one size list for the three networks
  model = M.cvae(1, 1, latent, hidden, hidden, hidden, variant)
  objective, optimizer = O.neg_elbo(model, beta), T.adam(learning_rate)
  d = D.step_function(seed, n=n_train, noise=noise)
  sx, sy = D.Standardiser.fit(d.x), D.Standardiser.fit(d.y)

  def evaluate(params):
    x_test = jnp.asarray(sx.transform(d.x_test))
    k_sample, k_pool = jax.random.split(eval_key(seed))
    draw = lambda p: model.sample(p, k_sample, x_test, N_CURVES, shared_noise=True)
    curves = sy.inverse(np.asarray(_members(draw, params, ensemble)))  # [(K,) 100, 400, 1]
    pred = {"x_test": d.x_test, "y_true": d.y_test,
            "sample_means": curves if ensemble == 1 else _pool(k_pool, curves, N_CURVES),
            "x_train": d.x, "y_train": d.y}
    if ensemble > 1:
      pred["sample_means_members"] = curves
    away = (d.x_test[:, 0] < 0.45) | (d.x_test[:, 0] > 0.55)
    err = np.abs(pred["sample_means"].mean(0) - d.y_test)[away]
    # Bounds on log p(y | x) for fresh draws of the data process, in standardised units of y
    # (for the original units add -log sy.std).
    held = D.step_function(seed + FRESH_DATA_SEED_OFFSET, n=N_SAMPLES, noise=noise)
    x_fresh, y_fresh = jnp.asarray(sx.transform(held.x)), jnp.asarray(sy.transform(held.y))
    return pred, {"max_abs_error_of_mean_away_from_step": float(err.max()),
                  **_bound_scores(model, params, ensemble, seed, iwae_ks, y_fresh, x_fresh)}

  return _prepare("cvae", model, objective, {"x": sx.transform(d.x), "y": sy.transform(d.y)},
                  steps=steps, batch_size=batch_size, seed=seeds,
                  log_every=log_every, optimizer=optimizer, evaluate=evaluate,
                  standardisers={"x": sx, "y": sy})


PREPARERS = {"mlp": prepare_mlp, "rnn": prepare_rnn, "lstm": prepare_lstm, "vae": prepare_vae,
             "cvae": prepare_cvae}


def run_mlp(**kwargs) -> Outcome:
  return run(prepare_mlp(**kwargs))


def run_recurrent(cell: str = "rnn", **kwargs) -> Outcome:
  return run(prepare_recurrent(cell, **kwargs))


def run_rnn(**kwargs) -> Outcome:
  return run(prepare_rnn(**kwargs))


def run_lstm(**kwargs) -> Outcome:
  return run(prepare_lstm(**kwargs))


def run_vae(**kwargs) -> Outcome:
  return run(prepare_vae(**kwargs))


def run_cvae(**kwargs) -> Outcome:
  return run(prepare_cvae(**kwargs))


RUNNERS = {"mlp": run_mlp, "rnn": run_rnn, "lstm": run_lstm, "vae": run_vae, "cvae": run_cvae}
