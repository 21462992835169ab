"""The five examples on the user's own files: ``prepare_<name>(data=PATH, ..., **settings)``.

``settings`` are ``dljax.examples.prepare_<name>``'s (model, training); the arguments below say
which columns to use and what to test on. Rows are standardised with the training rows'
statistics; predictions and every metric are in the data's original units, on the test rows.
Every bad file or column is a ``checks.ArgumentError`` naming the argument (a launcher's flag),
with the line and column where it applies, before anything is trained or compiled.

Args:
  data: your own file to train on instead of the tutorial's data (.csv, .tsv, whitespace .txt with
    an optional header row, .npy, .npz); None: the tutorial's data.
  test_data: a file with the columns of --data to test on; None: --test_fraction of its rows.
  test_fraction: of --data's rows held out to test on when there is no --test_data, drawn at
    random from --seed for a table, the end of a series; 0: no test rows.
  missing: refuse (an error) or drop the rows with NaN, inf or empty cells in the columns used.
  features: columns of x, by header name or 0-based index (-1 the last); None: all but the target.
  target: columns of y (names or indices); None: the last column.
  column: the series' column (name or index); None: the last column.
  columns: the columns of y (names or indices); None: all.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checks, files, forecast, metrics
from dljax import evaluation as V
from dljax import data as D
from dljax import examples as E
from dljax import models as M
from dljax import objectives as O
from dljax import train as T

LEVELS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))  # the calibration panel's levels
N_DRAWS = 1000  # VAE / CVAE samples drawn for the figure
TUTORIAL_ONLY = {"mlp": ("n_train", "noise", "x_range", "dataset"), "vae": ("n_train", "dataset"),
                 "cvae": ("n_train", "noise", "dataset"), "rnn": ("dataset",),
                 "lstm": ("dataset",)}  # settings of the tutorial's data, not a file's


class Rows(NamedTuple):
  """The training and test rows of each group of columns (test None: no test rows)."""

  train: dict[str, np.ndarray]
  test: dict[str, np.ndarray] | None
  names: dict[str, tuple[str, ...]]


def _settings(name: str, settings: dict[str, Any]) -> dict[str, Any]:
  """``examples.prepare_<name>``'s defaults updated by ``settings``; the tutorial's data's own
  settings (n_train, noise, x_range) must keep their defaults."""
  merged = {**E.defaults(name), **settings}
  for key in TUTORIAL_ONLY.get(name, ()):
    if merged[key] != E.defaults(name)[key]:
      checks.fail(key, "keep its default with data (it sets the tutorial's data)",
                  repr(merged[key]))
  return merged


def _check_fraction(value: Any) -> float:
  if not checks.is_number(value) or not 0 <= value < 1:
    checks.fail("test_fraction", "be a number in [0, 1)", repr(value))
  return float(value)


def load_rows(data: str, columns: dict[str, Any], *, test_data: str | None = None,
              test_fraction: float = 0.1, missing: str = "refuse", seed: int = 0,
              series: bool = False) -> Rows:
  """The columns of ``data`` (and of ``test_data``, or ``test_fraction`` of ``data``'s rows:
  at random from ``seed`` for a table, the last ones for a series), checked."""
  test_fraction = _check_fraction(test_fraction)
  got = files.load_columns(data, columns, name="data", missing=missing)
  n, test = len(got.lines), None
  if test_data is not None:
    held = files.load_columns(test_data, columns, name="test_data", missing=missing,
                              like=got.table)
    train, test = got.arrays, held.arrays
  elif test_fraction > 0:
    n_test = max(1, int(round(test_fraction * n)))
    order = np.arange(n) if series else np.random.default_rng(seed).permutation(n)
    rows, held = np.sort(order[:n - n_test]), np.sort(order[n - n_test:])
    train = {k: a[rows] for k, a in got.arrays.items()}
    test = {k: a[held] for k, a in got.arrays.items()}
  else:
    train = got.arrays
  n_train = len(next(iter(train.values())))
  if n_train < 2:
    checks.fail("data", "have at least 2 training rows", f"{n_train} of {n} rows in {data}")
  for key, a in train.items():
    files.check_varies(key, a, got.names[key], "training rows")
  return Rows(train, test, got.names)


def _batch(batch_size: Any, n_train: int, data: str) -> int:
  batch_size = checks.integer("batch_size", batch_size)
  if batch_size > n_train:
    checks.fail("batch_size", f"be at most the {n_train} training rows of {data}", batch_size)
  return batch_size


def _xy(name, data, features, target, test_data, test_fraction, missing, settings):
  """(settings, (ensemble, seeds), rows of features and target, batch size) of a table."""
  s = _settings(name, settings)
  members = E._seeds(s["seed"], s["ensemble"])
  rows = load_rows(data, {"features": features, "target": target if target else (-1,)},
                   test_data=test_data, test_fraction=test_fraction, missing=missing,
                   seed=s["seed"])
  return s, members, rows, _batch(s["batch_size"], len(rows.train["target"]), data)


def _mixture(model, params, ensemble: int, x, sx, sy) -> tuple[np.ndarray, np.ndarray]:
  """The members' predictive means and standard deviations [K, N, R] in y's units."""
  F, log_sigma = V.members(lambda p: model.predict(p, jnp.asarray(sx.transform(x))), params,
                            ensemble)
  mu = np.asarray(sy.inverse(np.asarray(F, np.float64)))
  sigma = np.asarray(sy.inverse_scale(np.exp(np.asarray(log_sigma, np.float64))))
  sigma = np.broadcast_to(sigma, mu.shape)  # one learned sigma: the same at every row
  return (mu, sigma) if ensemble > 1 else (mu[None], sigma[None])


def _regression_scores(y, mu, sigma) -> dict[str, Any]:
  """The mixture's scores on test rows y [N, R] (per point: summed over R, mean over N)."""
  mean, _ = metrics.mixture_moments(mu, sigma)
  cover = metrics.coverage(y, mu, sigma, (0.5, 0.9, 0.95, *LEVELS))
  return {"test_rmse": metrics.rmse(mean, y),
          "test_nll": float(metrics.mixture_nll(y, mu, sigma).sum(-1).mean()),
          "test_crps": float(metrics.mixture_crps(y, mu, sigma).sum(-1).mean()),
          **{f"coverage_{round(100 * q)}": cover[q] for q in (0.5, 0.9, 0.95)},
          "calibration": np.array([cover[q] for q in LEVELS])}


def prepare_mlp(data: str | None = None, features: tuple[str, ...] | None = None,
                target: tuple[str, ...] | None = None, test_data: str | None = None,
                test_fraction: float = 0.1, missing: str = "refuse",
                **settings) -> E.Experiment:
  """The network on ``data``'s ``features`` (x) and ``target`` (y); ``settings`` as
  ``examples.prepare_mlp``'s (adversarial eps: a fraction of each input's training range)."""
  if data is None:
    return E.prepare_mlp(**settings)
  s, (ensemble, seeds), rows, batch_size = _xy("mlp", data, features, target, test_data,
                                               test_fraction, missing, settings)
  x, y = rows.train["features"], rows.train["target"]
  epsilon = checks.non_negative("adversarial_epsilon", 0.01 if s["adversarial_epsilon"] is None
                                else s["adversarial_epsilon"])
  model = M.mlp(x.shape[1], s["hidden"], y.shape[1], heteroscedastic=bool(s["heteroscedastic"]),
                activation=s["activation"] or "tanh")
  sx, sy = D.Standardiser.fit(x), D.Standardiser.fit(y)
  z = sx.transform(x)
  arrays = {"x": z, "y": sy.transform(y)}
  objective = O.gaussian_nll(model)
  if s["adversarial"]:
    arrays["x_range"] = np.broadcast_to(z.max(0) - z.min(0), z.shape).astype(np.float32)
    objective = O.adversarial(objective, epsilon, scale="x_range")
  held = rows.test or rows.train  # no test rows: the figure shows the training rows

  def evaluate(params):
    mu, sigma = _mixture(model, params, ensemble, held["features"], sx, sy)
    mean, std = metrics.mixture_moments(mu, sigma)
    pred = {"x_test": held["features"], "y_test": held["target"], "y_mean": mean, "y_std": std,
            "y_low_90": metrics.mixture_quantile(0.05, mu, sigma),
            "y_high_90": metrics.mixture_quantile(0.95, mu, sigma), "x_train": x, "y_train": y}
    if ensemble > 1:
      pred.update(y_mean_members=mu, y_std_members=sigma)
    if rows.test is None:
      return pred, {"n_train": len(x)}
    scores = _regression_scores(held["target"], mu, sigma)
    pred.update(calibration_levels=np.array(LEVELS), calibration=scores.pop("calibration"))
    return pred, {**scores, "n_train": len(x), "n_test": len(held["target"])}

  return E._prepare("mlp_data", model, objective, arrays, steps=s["steps"],
                    batch_size=batch_size, seed=seeds, log_every=s["log_every"],
                    optimizer=T.adam(s["learning_rate"]), evaluate=evaluate,
                    standardisers={"x": sx, "y": sy})


def _series(data: str, column: str | None, lags: int, **kwargs) -> Rows:
  rows = load_rows(data, {"column": (column if column is not None else -1,)}, series=True,
                   **kwargs)
  n_train = len(rows.train["column"])
  if n_train < lags + 2:
    checks.fail("data", f"have a series of at least lags + 2 = {lags + 2} training points",
                f"{n_train} in {data}")
  return rows


def prepare_recurrent(cell: str = "rnn", data: str | None = None, column: str | None = None,
                      test_data: str | None = None, test_fraction: float = 0.1,
                      missing: str = "refuse", **settings) -> E.Experiment:
  """The RNN or LSTM on ``data``'s ``column``, a series in file order; scored on the held-out
  end (or ``test_data``, its continuation): one step ahead from the true values before each
  point, and closed loop from the training series' last window."""
  if data is None:
    return E.prepare_recurrent(cell, **settings)
  s = _settings(cell, settings)
  lags = checks.integer("lags", E.LAGS[cell] if s["lags"] is None else s["lags"])
  rows = _series(data, column, lags, test_data=test_data, test_fraction=test_fraction,
                 missing=missing)
  held = rows.test["column"] if rows.test is not None else None
  return series_experiment(f"{cell}_data", cell, rows.train["column"], held, s, data)


def series_experiment(name: str, cell: str, series: np.ndarray, held: np.ndarray | None,
                      settings: dict[str, Any], source: str = "the series") -> E.Experiment:
  """The RNN or LSTM (``settings`` as ``examples.prepare_recurrent``'s, all given) trained on
  ``series`` [N, 1], standardised by its statistics, and scored on its continuation ``held``
  [H, 1] (None: no test span) in the series' units."""
  s = settings
  cell = checks.choice("cell", cell, tuple(E.LAGS))
  ensemble, seeds = E._seeds(s["seed"], s["ensemble"])
  lags = checks.integer("lags", E.LAGS[cell] if s["lags"] is None else s["lags"])
  sy = D.Standardiser.fit(series)
  X, Y = D.lag_windows(sy.transform(series), lags)
  batch_size = _batch(s["batch_size"], len(X), source)
  model = (M.rnn if cell == "rnn" else M.lstm)(1, s["hidden"], 1, likelihood=s["likelihood"])
  steps = checks.integer("steps", s["steps"])
  optimizer = T.adam(s["learning_rate"], steps if s["decay"] else None)
  held = series[len(series) - lags:][:0] if held is None else held
  evaluate = functools.partial(_recurrent_evaluate, model, ensemble, series, held, sy, lags)
  return E._prepare(name, model, E.recurrent_objective(model), {"x": X, "y": Y}, steps=steps,
                    batch_size=batch_size, seed=seeds, log_every=s["log_every"],
                    optimizer=optimizer, evaluate=evaluate, standardisers={"y": sy})


@functools.partial(jax.jit, static_argnames=("model", "horizon"))
def _forecasts(model, params, windows, start, horizon):
  """The one-step predictions of ``windows`` and the closed loop from ``start``, standardised:
  (mean,) each, or (mean, log sigma) for a Gaussian model."""
  if model.likelihood == "gaussian":
    one_step = model.predict(params, windows)
    closed = (forecast.closed_loop_predictive(model, params, start, horizon) if horizon
              else (one_step[0][None, :0],) * 2)
    return one_step, tuple(a[0] for a in closed)
  one_step = model.apply(params, windows)
  closed = forecast.closed_loop(model, params, start, horizon)[0] if horizon else one_step[:0]
  return (one_step,), (closed,)


def _recurrent_evaluate(model, ensemble, series, held, sy, lags, params):
  """Forecasts of the held-out span [H, 1] in original units, and their scores."""
  z_train, z_held = sy.transform(series), sy.transform(held)
  context = np.concatenate([z_train[-lags:], z_held])
  windows = D.lag_windows(context, lags)[0] if len(z_held) else z_train[None, :lags][:0]
  start = z_train[None, -lags:]
  run = lambda p: _forecasts(model, p, jnp.asarray(windows), jnp.asarray(start), len(z_held))
  one, closed = (V.as_members(*_units(sy, *a), ensemble=ensemble)
                 for a in V.members(run, params, ensemble))
  pred = {"series_train": series, "series_test": held,
          **_predictive("one_step", *one), **_predictive("forecast", *closed)}
  if not len(held):
    return pred, {"n_train": len(series)}
  scores = {"test_rmse_one_step": metrics.rmse(pred["one_step"], held),
            "test_rmse_closed_loop": metrics.rmse(pred["forecast"], held)}
  if len(one) == 2:
    inside = (pred["one_step_low_90"] <= held) & (held <= pred["one_step_high_90"])
    scores.update(test_nll_one_step=float(np.mean(metrics.mixture_nll(held, *one))),
                  coverage_90_one_step=float(np.mean(inside)))  # of the band just drawn
  return pred, {**scores, "n_train": len(series), "n_test": len(held)}


def _units(sy, mean, log_sigma=None) -> tuple[np.ndarray, ...]:
  """Standardised (mean[, log sigma]) in the series' units, float64: (mean[, sigma])."""
  mean = np.asarray(sy.inverse(np.asarray(mean, np.float64)))
  if log_sigma is None:
    return (mean,)
  return mean, np.asarray(sy.inverse_scale(np.exp(np.asarray(log_sigma, np.float64))))


def _predictive(name: str, mean: np.ndarray, sigma: np.ndarray | None = None):
  """Predictions NAME [H, 1] (the members' mean), NAME_members [K, H, 1] for an ensemble; with
  sigma, the band's too (``evaluation.named_band``)."""
  if sigma is not None:
    return V.named_band(name, mean, sigma)
  pred = {name: mean[0] if len(mean) == 1 else mean.mean(0)}
  return {**pred, f"{name}_members": mean} if len(mean) > 1 else pred


prepare_rnn = functools.partial(prepare_recurrent, "rnn")
prepare_lstm = functools.partial(prepare_recurrent, "lstm")


def _bounds(model, params, ensemble, seed, sy, y, x=None) -> dict[str, float]:
  """test_elbo and test_iwae_1000 per point in y's original units: log p(y) = log p(z) -
  sum_j log std_j for standardised z = (y - mean) / std."""
  scores = V.bound_scores(model, params, ensemble, seed, (1000,), y, x)
  shift = float(np.sum(np.log(sy.std)))
  return {"test_elbo": scores["elbo_held_out"] - shift,
          "test_iwae_1000": scores["iwae_1000"] - shift}


def prepare_vae(data: str | None = None, columns: tuple[str, ...] | None = None,
                test_data: str | None = None, test_fraction: float = 0.1,
                missing: str = "refuse", **settings) -> E.Experiment:
  """The VAE on ``data``'s ``columns`` (y); scored by the test rows' ELBO and IWAE bound."""
  if data is None:
    return E.prepare_vae(**settings)
  s = _settings("vae", settings)
  ensemble, seeds = E._seeds(s["seed"], s["ensemble"])
  rows = load_rows(data, {"columns": columns}, test_data=test_data, test_fraction=test_fraction,
                   missing=missing, seed=s["seed"])
  y = rows.train["columns"]
  batch_size = _batch(s["batch_size"], len(y), data)
  model = M.vae(y.shape[1], s["latent"], s["encoder"], s["decoder"])
  sy = D.Standardiser.fit(y)

  def evaluate(params):
    draw = lambda p: model.sample(p, V.eval_key(s["seed"]), N_DRAWS)
    means = sy.inverse(np.asarray(V.members(draw, params, ensemble)))
    k_pool = jax.random.fold_in(V.eval_key(s["seed"]), 1)
    pred = {"y_train": y, "sample_means": means if ensemble == 1 else
            V.pool(k_pool, means, N_DRAWS)}
    if rows.test is None:
      return pred, {"n_train": len(y)}
    held = rows.test["columns"]
    pred["y_test"] = held
    scores = _bounds(model, params, ensemble, s["seed"], sy, jnp.asarray(sy.transform(held)))
    return pred, {**scores, "n_train": len(y), "n_test": len(held)}

  return E._prepare("vae_data", model, O.neg_elbo(model, s["beta"]), {"y": sy.transform(y)},
                    steps=s["steps"], batch_size=batch_size, seed=seeds,
                    log_every=s["log_every"], optimizer=T.adam(s["learning_rate"]),
                    evaluate=evaluate, standardisers={"y": sy})


def prepare_cvae(data: str | None = None, features: tuple[str, ...] | None = None,
                 target: tuple[str, ...] | None = None, test_data: str | None = None,
                 test_fraction: float = 0.1, missing: str = "refuse",
                 **settings) -> E.Experiment:
  """The CVAE of ``target`` (y) given ``features`` (x); scored by the test rows' bounds of
  log p(y | x)."""
  if data is None:
    return E.prepare_cvae(**settings)
  s, (ensemble, seeds), rows, batch_size = _xy("cvae", data, features, target, test_data,
                                               test_fraction, missing, settings)
  x, y = rows.train["features"], rows.train["target"]
  hidden = checks.sizes("hidden", s["hidden"])
  model = M.cvae(x.shape[1], y.shape[1], s["latent"], hidden, hidden, hidden, s["variant"])
  sx, sy = D.Standardiser.fit(x), D.Standardiser.fit(y)
  held = rows.test or rows.train

  def evaluate(params):
    xz = jnp.asarray(sx.transform(held["features"]))
    draw = lambda p: model.sample(p, V.eval_key(s["seed"]), 20, xz)  # [(K,) 20, N, R]
    draws = sy.inverse(np.asarray(V.members(draw, params, ensemble)))
    pred = {"x_test": held["features"], "y_test": held["target"], "x_train": x, "y_train": y,
            "samples": draws if ensemble == 1 else draws.reshape(-1, *draws.shape[2:])}
    if rows.test is None:
      return pred, {"n_train": len(x)}
    yz = jnp.asarray(sy.transform(held["target"]))
    scores = _bounds(model, params, ensemble, s["seed"], sy, yz, xz)
    return pred, {**scores, "n_train": len(x), "n_test": len(held["target"])}

  return E._prepare("cvae_data", model, O.neg_elbo(model, s["beta"]),
                    {"x": sx.transform(x), "y": sy.transform(y)}, steps=s["steps"],
                    batch_size=batch_size, seed=seeds, log_every=s["log_every"],
                    optimizer=T.adam(s["learning_rate"]), evaluate=evaluate,
                    standardisers={"x": sx, "y": sy})


PREPARERS = {"mlp": prepare_mlp, "rnn": prepare_rnn, "lstm": prepare_lstm, "vae": prepare_vae,
             "cvae": prepare_cvae}
