"""The tutorial's five examples as plain functions: data, model, training and evaluation.

Each ``prepare_*`` function takes the example's settings as keyword arguments (defaults: the
tutorial's, see docs/settings.md), makes the data, model, objective and optimizer and checks
every argument (``dljax.checks``' errors, naming it) before anything is trained or compiled.
``run`` then trains with ``dljax.train.fit`` and evaluates, returning an ``Outcome`` whose
predictions are in the data's original units; ``run_*`` does both. ``ensemble=K`` trains seeds
seed, ..., seed+K-1 as one vmapped program; the predictions then describe the ensemble, and each
member's arrays are kept under a leading axis [K, ...] with a ``_members`` suffix. The
experiments' launchers, the benchmarks and the quality tests all call these functions.

A ``prepare_*``'s arguments before ``*`` are also its launcher's flags (``python -m
experiments.NAME``), with their names, defaults, annotated types and, as help, their lines under
``Args:`` (below for those of every ``prepare_*``); the arguments after ``*`` are the library's.

Args:
  seed: seed of the data, the initialisation and the minibatches.
  steps: optimizer steps.
  batch_size: minibatch size, drawn without replacement.
  learning_rate: Adam's (peak) learning rate.
  ensemble: members trained as one vmapped program (seeds seed, seed+1, ...).
  log_every: steps per compiled chunk and metrics line (progress lines: at most one a second).
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checks, forecast, metrics, sampler
from dljax import evaluation as V
from dljax import data as D
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
  # Batches that Floyd's sampler does not draw are drawn by epochs: each still a uniformly
  # random subset of distinct rows, at one sort of the rows per epoch instead of a top_k per step.
  n = len(next(iter(data.values())))
  epochs = batch_size < n and not sampler.draws_indices(n, batch_size)
  return Experiment(name, model, objective, data,
                    dict(fit_kwargs, optimizer=optimizer, sampling="epochs" if epochs else
                         "subsets"), evaluate, standardisers or {})


def _seeds(seed: int, ensemble: int) -> tuple[int, int | list[int]]:
  """(ensemble, the members' seeds for fit), checked first: the seed also seeds the data."""
  ensemble = checks.integer("ensemble", ensemble)
  seed = checks.integer("seed", seed, 0)
  return ensemble, seed if ensemble == 1 else list(range(seed, seed + ensemble))


def _check_range(name: str, value: Any, interval: tuple[float, float] = (0.0, 1.0),
                 n: int = 1000) -> tuple[float, float]:
  """(low, high), finite, with some of its ``n`` grid points inside the training ``interval``."""
  try:
    lo, hi = (float(v) for v in value)
  except (TypeError, ValueError):
    checks.fail(name, "be two numbers (low, high)", repr(value))
  a, b = interval
  if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi and lo <= b and hi >= a):
    checks.fail(name, f"be finite with low < high, overlapping the training inputs' [{a:g}, "
                f"{b:g}]", repr(value))
  if min(hi, b) - max(lo, a) < (hi - lo) / (n - 1):  # the RMSE is taken over those inputs
    checks.fail(name, f"put some of its {n} evenly spaced test inputs inside the training "
                f"inputs' [{a:g}, {b:g}]", repr(value))
  return lo, hi


def _scores(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, ensemble: int) -> dict[str, float]:
  """Proper scores of the (mixture) predictive on held-out y, per data point."""
  if ensemble == 1:
    mu, sigma = mu[None], sigma[None]  # a mixture of one
  mean, _ = metrics.mixture_moments(mu, sigma)
  from scipy import stats  # noqa: PLC0415 (imported when first needed, not by import dljax)

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


# cubic's eps is 0.05, not the paper's 0.01, which leaves its relu ensemble overconfident (its
# 90% intervals hold about half of fresh draws): BUILD_NOTES.md, Decisions.
MLP_DATASETS = {
    "wiggle": MLPDataset(D.sine_wiggle, D.wiggle, (0.0, 1.0), 100, 0.1, (0.0, 1.0), "tanh", 0.01),
    "cubic": MLPDataset(D.cubic, D.cube, D.CUBIC_TRAIN_RANGE, 20, 3.0, D.CUBIC_TEST_RANGE,
                        "relu", 0.05),
}


def prepare_mlp(seed: int = 0, steps: int = 10_000, batch_size: int = 10,
                learning_rate: float = 1e-3, hidden: tuple[int, ...] = (50, 50),
                n_train: int | None = None, noise: float | None = None, ensemble: int = 1,
                log_every: int = 1000, x_range: tuple[float, float] | None = None,
                dataset: str = "wiggle", heteroscedastic: bool = False, adversarial: bool = False,
                adversarial_epsilon: float | None = None,
                activation: str | None = None) -> Experiment:
  """The neural network: 1-50-50-1 tanh, Gaussian NLL with a learned sigma, on x sin(4 pi x).

  Args:
    hidden: hidden layer sizes.
    n_train: training points; None: the data set's (100 for wiggle, 20 for cubic).
    noise: standard deviation of the data's noise; None: the data set's (0.1 wiggle, 3 cubic).
    x_range: interval (low, high) of the 1000 test inputs and the figure, overlapping the
      training inputs' (the RMSE is over the test inputs inside those); None: the data set's (0,1
      for wiggle, -6,6 for cubic); e.g. -0.25,1.25 to see the predictive widen beyond the data.
    dataset: wiggle (the tutorial's x sin(4 pi x) + 0.1 eps, 100 points on [0, 1]) or cubic (the
      Deep Ensembles toy x^3 + 3 eps, 20 points x ~ U[-4, 4], plotted on [-6, 6]).
    heteroscedastic: a per-x noise head log sigma(x) instead of one learned sigma.
    adversarial: fast-gradient-sign training, loss(x) + loss(x + eps sign(grad_x)).
    adversarial_epsilon: eps of adversarial as a fraction of the standardised training inputs'
      range; None: the data set's (0.01 for wiggle, 0.05 for cubic).
    activation: hidden units, tanh or relu; None: the data set's (tanh wiggle, relu cubic).
  """
  ds = MLP_DATASETS[checks.choice("dataset", dataset, tuple(MLP_DATASETS))]
  ensemble, seeds = _seeds(seed, ensemble)
  noise = ds.noise if noise is None else noise
  n_train = checks.integer("n_train", ds.n_train if n_train is None else n_train, 2)
  lo, hi = _check_range("x_range", ds.x_range if x_range is None else x_range, ds.interval)
  epsilon = checks.non_negative("adversarial_epsilon", ds.adversarial_epsilon
                                if adversarial_epsilon is None else adversarial_epsilon)
  activation = ds.activation if activation is None else activation
  model = M.mlp(1, hidden, 1, heteroscedastic=bool(heteroscedastic), activation=activation)
  optimizer = T.adam(learning_rate)
  d = ds.make(seed, n=n_train, noise=noise)
  x_test = np.linspace(lo, hi, d.x_test.shape[0], dtype=np.float32)[:, None]
  d = d._replace(x_test=x_test, y_test=ds.f(x_test))
  sx, sy = D.Standardiser.fit(d.x), D.Standardiser.fit(d.y)
  objective = O.gaussian_nll(model)
  if adversarial:
    x_seen = sx.transform(d.x)
    objective = O.adversarial(objective, epsilon * float(x_seen.max() - x_seen.min()))
  # Fresh draws of the data process (x ~ U[interval], independent of the training draws), on
  # which the predictive is scored as a mixture of the members' Gaussians.
  fresh = np.random.default_rng([seed, FRESH_DATA_SEED_OFFSET])
  x_fresh = fresh.uniform(*ds.interval, (N_SAMPLES, 1)).astype(np.float32)
  y_fresh = ds.f(x_fresh) + noise * fresh.standard_normal((N_SAMPLES, 1))
  evaluate = _mlp_evaluate(model, ensemble, d, sx, sy, (x_fresh, y_fresh), ds.interval)
  return _prepare("mlp", model, objective,
                  {"x": sx.transform(d.x), "y": sy.transform(d.y)}, steps=steps,
                  batch_size=batch_size, seed=seeds, log_every=log_every,
                  optimizer=optimizer, evaluate=evaluate, standardisers={"x": sx, "y": sy})


def _mlp_evaluate(model, ensemble: int, d: D.Regression, sx: D.Standardiser, sy: D.Standardiser,
                  fresh_xy: tuple[np.ndarray, np.ndarray], interval: tuple[float, float]):
  """The network's evaluation: predictive on the test grid, scores on the fresh draws."""
  x_fresh, y_fresh = fresh_xy
  inside = (d.x_test[:, 0] >= interval[0]) & (d.x_test[:, 0] <= interval[1])

  def evaluate(params):
    x_all = jnp.asarray(sx.transform(np.concatenate([d.x_test, x_fresh])))
    F, log_sigma = V.members(lambda p: model.predict(p, x_all), params, ensemble)
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

  return evaluate


LAGS = {"rnn": 5, "lstm": 10}  # the tutorial's window length of each recurrent example


RECURRENT_DATASETS = ("sine", "sunspots")  # the tutorial's sin(pi t); dljax.realdata's


def prepare_recurrent(cell: str = "rnn", seed: int = 0, steps: int = 10_000, batch_size: int = 1,
                      learning_rate: float = 3e-3, decay: bool = True, lags: int | None = None,
                      hidden: int = 4, ensemble: int = 1, log_every: int = 1000,
                      likelihood: str = "mse", dataset: str = "sine", *,
                      n_points: int = 100, train_fraction: float = 2 / 3) -> Experiment:
  """The recurrent examples: an RNN (5 lags) or an LSTM (10 lags), hidden size 4, on sin(pi t).

  Trained on the windows of the first ``train_fraction`` of the series of ``n_points`` by MSE
  (or the Gaussian NLL); then a closed-loop forecast from the first window across the whole
  series (n_points - lags predictions), with the Gaussian's band.

  Args:
    cell: rnn or lstm.
    decay: cosine decay of the learning rate to 0 over the steps (BUILD_NOTES.md, Decisions).
    lags: lagged values in each input window; None: the cell's (LAGS: 5 for rnn, 10 for lstm).
    hidden: hidden size.
    likelihood: mse (the tutorial's) or gaussian (a mean and a log-variance per step, trained by
      the NLL; forecasts get a 90% band, a mixture's for an ensemble).
    dataset: sine (the tutorial's sin(pi t)) or sunspots (yearly, 1700-1968 train, 1969-2008
      test, with ARIMA, exponential smoothing and persistence in the same run; the data extra).
  """
  if checks.choice("dataset", dataset, RECURRENT_DATASETS) != "sine":
    return _on_real_data("prepare_sunspots", locals())
  cell = checks.choice("cell", cell, tuple(LAGS))
  ensemble, seeds = _seeds(seed, ensemble)
  lags = LAGS[cell] if lags is None else lags
  model = (M.rnn if cell == "rnn" else M.lstm)(1, hidden, 1, likelihood=likelihood)
  steps = checks.integer("steps", steps)  # before it sets the decay's length
  optimizer = T.adam(learning_rate, steps if decay else None)
  series = D.sine_series(n_points)
  train_part, _ = D.chronological_split(series, train_fraction)
  X, Y = D.lag_windows(train_part, lags)  # raises if lags >= len(train_part)
  n_train = train_part.shape[0]

  def evaluate(params):
    start, horizon = jnp.asarray(series[None, :lags]), n_points - lags
    pred = {"series": series, "n_train_windows": np.asarray(X.shape[0]),
            **V.closed_loop_band(model, params, ensemble, start, horizon)}
    held_out = metrics.rmse(pred["forecast"][n_train - lags:], series[n_train:])
    return pred, {"rmse_held_out": held_out,
                  "rmse_all": metrics.rmse(pred["forecast"], series[lags:])}

  return _prepare(cell, model, recurrent_objective(model), {"x": X, "y": Y}, steps=steps,
                  batch_size=batch_size, seed=seeds, log_every=log_every,
                  optimizer=optimizer, evaluate=evaluate)


def recurrent_objective(model: M.RNN | M.LSTM):
  """The recurrent net's loss: the tutorial's MSE, or the NLL of its Gaussian likelihood."""
  return O.gaussian_nll(model) if model.likelihood == "gaussian" else O.mse(model)


prepare_rnn = functools.partial(prepare_recurrent, "rnn")
prepare_lstm = functools.partial(prepare_recurrent, "lstm")


def prepare_vae(seed: int = 0, steps: int = 5000, batch_size: int = 200,
                learning_rate: float = 1e-3, latent: int = 2,
                encoder: tuple[int, ...] = (100, 50), decoder: tuple[int, ...] = (50, 100),
                n_train: int = 1000, beta: float = 1.0, ensemble: int = 1, log_every: int = 1000,
                dataset: str = "ring", *, iwae_ks: tuple[int, ...] = V.IWAE_KS) -> Experiment:
  """The VAE on a noisy ring; scored by the energy distance of 1000 decoder means to fresh data,
  and by the held-out ELBO and IWAE bounds with ``iwae_ks`` samples (none: skipped).

  Args:
    latent: latent dimension.
    encoder: encoder hidden sizes.
    decoder: decoder hidden sizes.
    n_train: training points.
    beta: weight of the KL term (1: the ELBO).
    dataset: ring (the tutorial's) or digits (scikit-learn's 8x8 digits, 1500 train, 297 test,
      dequantised to [0, 1]^64, against probabilistic PCA and a Gaussian mixture; the data extra).
  """
  if checks.choice("dataset", dataset, ("ring", "digits")) == "digits":
    return _on_real_data("prepare_digits_vae", locals())
  ensemble, seeds = _seeds(seed, ensemble)
  iwae_ks, n_train = V.check_ks(iwae_ks), checks.integer("n_train", n_train, 2)
  model = M.vae(2, latent, encoder, decoder)
  objective, optimizer = O.neg_elbo(model, beta), T.adam(learning_rate)
  y = D.noisy_ring(seed, n_train)
  sy = D.Standardiser.fit(y)

  def evaluate(params):
    k_sample, k_pool = jax.random.split(V.eval_key(seed))
    draw = lambda p: model.sample(p, k_sample, N_SAMPLES)
    means = sy.inverse(np.asarray(V.members(draw, params, ensemble)))  # [(K,) 1000, 2]
    pred = {"y_train": y,
            "sample_means": means if ensemble == 1 else V.pool(k_pool, means, N_SAMPLES)}
    if ensemble > 1:
      pred["sample_means_members"] = means
    fresh = D.noisy_ring(seed + FRESH_DATA_SEED_OFFSET, N_SAMPLES)
    y_fresh = jnp.asarray(sy.transform(fresh))  # standardised: add -sum(log sy.std) for y's units
    return pred, {"energy_distance": metrics.energy_distance(pred["sample_means"], fresh),
                  **V.bound_scores(model, params, ensemble, seed, iwae_ks, y_fresh)}

  return _prepare("vae", model, objective, {"y": sy.transform(y)}, steps=steps,
                  batch_size=batch_size, seed=seeds, log_every=log_every,
                  optimizer=optimizer, evaluate=evaluate, standardisers={"y": sy})


def prepare_cvae(seed: int = 0, steps: int = 5000, batch_size: int = 5,
                 learning_rate: float = 1e-3, latent: int = 2, hidden: tuple[int, ...] = (50, 50),
                 variant: str = "tutorial", n_train: int = 100, noise: float = 0.1,
                 beta: float = 1.0, ensemble: int = 1, log_every: int = 1000,
                 dataset: str = "step", *, iwae_ks: tuple[int, ...] = V.IWAE_KS) -> Experiment:
  """The CVAE on a noisy step; 100 curves, each with one noise draw shared by every x; the
  held-out ELBO and IWAE bounds of log p(y | x) with ``iwae_ks`` samples (none: skipped).

  Args:
    latent: latent dimension.
    hidden: hidden sizes of the prior, the encoder and the decoder.
    variant: tutorial (q(z|y), p(y|z)) or standard (q(z|x,y), p(y|x,z), Sohn et al. 2015).
    n_train: training points (Latin hypercube on [0, 1]).
    noise: standard deviation of the data's noise.
    beta: weight of the KL term (1: the ELBO).
    dataset: step (the tutorial's) or digits (the bottom four rows of scikit-learn's 8x8 digits
      given the top four, against a linear-Gaussian model; the data extra).
  """
  if checks.choice("dataset", dataset, ("step", "digits")) == "digits":
    return _on_real_data("prepare_digits_cvae", locals())
  ensemble, seeds = _seeds(seed, ensemble)
  iwae_ks, n_train = V.check_ks(iwae_ks), checks.integer("n_train", n_train, 2)
  hidden = checks.sizes("hidden", hidden)  # one size list for the three networks
  model = M.cvae(1, 1, latent, hidden, hidden, hidden, variant)
  objective, optimizer = O.neg_elbo(model, beta), T.adam(learning_rate)
  d = D.step_function(seed, n=n_train, noise=noise)
  sx, sy = D.Standardiser.fit(d.x), D.Standardiser.fit(d.y)

  def evaluate(params):
    x_test = jnp.asarray(sx.transform(d.x_test))
    k_sample, k_pool = jax.random.split(V.eval_key(seed))
    draw = lambda p: model.sample(p, k_sample, N_CURVES, x_test, shared_noise=True)
    curves = sy.inverse(np.asarray(V.members(draw, params, ensemble)))  # [(K,) 100, 400, 1]
    pred = {"x_test": d.x_test, "y_true": d.y_test,
            "sample_means": curves if ensemble == 1 else V.pool(k_pool, curves, N_CURVES),
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
                  **V.bound_scores(model, params, ensemble, seed, iwae_ks, y_fresh, x_fresh)}

  return _prepare("cvae", model, objective, {"x": sx.transform(d.x), "y": sy.transform(d.y)},
                  steps=steps, batch_size=batch_size, seed=seeds,
                  log_every=log_every, optimizer=optimizer, evaluate=evaluate,
                  standardisers={"x": sx, "y": sy})


_TUTORIAL_KEYWORDS = ("dataset", "iwae_ks", "n_points", "train_fraction")


def _on_real_data(preparer: str, arguments: dict[str, Any]) -> Experiment:
  """``dljax.realdata.<preparer>`` (the data extra) with a ``prepare_*``'s ``arguments`` (its
  locals() when nothing else is assigned yet), less ``dataset`` and the tutorial data's own
  keyword-only settings."""
  from dljax import realdata  # noqa: PLC0415 (needs the data extra: imported when used)

  kwargs = {k: v for k, v in arguments.items() if k not in _TUTORIAL_KEYWORDS}
  return getattr(realdata, preparer)(**kwargs)


PREPARERS = {"mlp": prepare_mlp, "rnn": prepare_rnn, "lstm": prepare_lstm, "vae": prepare_vae,
             "cvae": prepare_cvae}


def defaults(name: str) -> dict[str, Any]:
  """The default arguments of ``PREPARERS[name]``: the tutorial's settings of that example."""
  parameters = inspect.signature(PREPARERS[name]).parameters.values()
  return {p.name: p.default for p in parameters if p.default is not p.empty}


def run_mlp(**kwargs) -> Outcome:
  return run(prepare_mlp(**kwargs))


def run_recurrent(cell: str = "rnn", **kwargs) -> Outcome:
  return run(prepare_recurrent(cell, **kwargs))


run_rnn = functools.partial(run_recurrent, "rnn")
run_lstm = functools.partial(run_recurrent, "lstm")


def run_vae(**kwargs) -> Outcome:
  return run(prepare_vae(**kwargs))


def run_cvae(**kwargs) -> Outcome:
  return run(prepare_cvae(**kwargs))


RUNNERS = {"mlp": run_mlp, "rnn": run_rnn, "lstm": run_lstm, "vae": run_vae, "cvae": run_cvae}
