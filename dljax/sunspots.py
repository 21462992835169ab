"""Yearly sunspot numbers and the classical one-step forecasts the LSTM ensemble is compared with.

``load`` reads statsmodels' copy of the yearly sunspot numbers, 1700 to 2008 (309 values, shipped
in statsmodels' wheel: ``pip install -e '.[data]'``; no network). ``split`` cuts them at a year:
train 1700-1968, test 1969-2008 by default; ``validation_split`` holds out the last 30 training
years (1939-1968), on which the neural model's settings are chosen, never on the test years.

The baselines are fitted on the training values only and forecast each held-out year from the
true previous years, their parameters fixed: ARIMA (order by AIC), exponential smoothing
(configuration by AIC) and persistence (next year = this year). statsmodels and pandas are
imported inside the functions, never by ``import dljax.sunspots``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from dljax import checks

FIRST_YEAR = 1700
LAST_TRAIN_YEAR = 1968
LAST_YEAR = 2008
VALIDATION_YEARS = 30
MAX_ITER = 500  # L-BFGS iterations per ARIMA fit (statsmodels' 50 stop some orders short)
# Exponential smoothing's candidates (statsmodels' ExponentialSmoothing arguments, no season:
# the solar cycle's length varies from 9 to 14 years, so no fixed seasonal period fits it).
ETS_CONFIGS = {"none": {"trend": None, "damped_trend": False},
               "additive": {"trend": "add", "damped_trend": False},
               "additive damped": {"trend": "add", "damped_trend": True}}


def _statsmodels() -> Any:
  try:
    import statsmodels.api as sm  # noqa: PLC0415 (the data extra)
  except ImportError as e:
    raise ImportError("the sunspot data and baselines need statsmodels, in the data extra: "
                      "pip install -e '.[data]'") from e
  return sm


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
  """statsmodels' warnings of unconverged fits, replaced starting values and missing dates."""
  from statsmodels.tools import sm_exceptions as e  # noqa: PLC0415

  with warnings.catch_warnings():
    for category in (e.ConvergenceWarning, e.EstimationWarning, e.ValueWarning):
      warnings.simplefilter("ignore", category)
    yield


def _one_blas_thread() -> contextlib.AbstractContextManager:
  """One BLAS thread (threadpoolctl, if installed): the state-space filter's matrices have at most
  max(p, q + 1) + d rows, too few to share, and a second thread spins on a busy machine."""
  try:
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 (with scikit-learn)
  except ImportError:
    return contextlib.nullcontext()
  return threadpool_limits(1, user_api="blas")


def _series(name: str, a: Any, minimum: int = 1) -> np.ndarray:
  """A 1-D finite array of at least ``minimum`` values, as float64."""
  a = checks.real_array(name, a)
  if a.ndim != 1:
    checks.fail(name, "be a 1-D array [N]", f"shape {a.shape}")
  if a.size < minimum:
    checks.fail(name, f"have at least {minimum} values", a.size)
  return a


def load() -> tuple[np.ndarray, np.ndarray]:
  """(years int64 [309], values float64 [309]): the sunspot numbers of 1700 to 2008."""
  frame = _statsmodels().datasets.sunspots.load_pandas().data
  years, values = (frame[c].to_numpy(np.float64) for c in ("YEAR", "SUNACTIVITY"))
  if not np.array_equal(years, np.arange(FIRST_YEAR, LAST_YEAR + 1)):
    raise RuntimeError(f"statsmodels' sunspots must hold the years {FIRST_YEAR} to {LAST_YEAR}, "
                       f"got {years.size} years from {years[:1]} to {years[-1:]}")
  return years.astype(np.int64), values


def split(years: Any, values: Any,
          last_train_year: int = LAST_TRAIN_YEAR) -> tuple[np.ndarray, np.ndarray]:
  """(train [N_train], test [N - N_train]): ``values`` [N] of the consecutive ``years`` [N] up to
  ``last_train_year`` and after it."""
  values = _series("values", values)
  years = np.asarray(years)
  if not np.issubdtype(years.dtype, np.integer) or years.shape != values.shape:
    checks.fail("years", f"be an integer array of shape {list(values.shape)} (as values)",
                f"dtype {years.dtype} and shape {list(years.shape)}")
  if years.size < 2 or np.any(np.diff(years) != 1):
    checks.fail("years", "be at least 2 consecutive years", years.tolist())
  checks.integer("last_train_year", last_train_year, int(years[0]), int(years[-2]))
  n_train = int(last_train_year - years[0]) + 1
  return values[:n_train], values[n_train:]


def validation_split(years: Any, values: Any, last_train_year: int = LAST_TRAIN_YEAR,
                     held_out: int = VALIDATION_YEARS) -> tuple[np.ndarray, np.ndarray]:
  """(train [N_train - held_out], validation [held_out]): the training span's last ``held_out``
  years held out (1939-1968 by default); the test years are left out of both."""
  train, _ = split(years, values, last_train_year)
  held_out = checks.integer("held_out", held_out, 1, train.size - 1)
  return train[:-held_out], train[-held_out:]


def gaussian_scores(y: Any, mean: Any, sd: Any) -> dict[str, float]:
  """rmse, nll (the mean negative log density, per value) and coverage_90 (the fraction of y
  within the central 90% interval) of Gaussian forecasts; y, mean and sd [H], sd > 0."""
  from scipy.stats import norm  # noqa: PLC0415 (scipy.stats loads slowly)

  y = _series("y", y)
  mean, sd = _series("mean", mean), _series("sd", sd)
  for name, a in (("mean", mean), ("sd", sd)):
    if a.shape != y.shape:
      checks.fail(name, f"have the shape of y {list(y.shape)}", f"shape {list(a.shape)}")
  if np.any(sd <= 0):
    checks.fail("sd", "be > 0", f"{np.count_nonzero(sd <= 0)} values <= 0")
  inside = np.abs(y - mean) <= norm.ppf(0.95) * sd
  return {"rmse": _rmse(y, mean), "nll": float(-np.mean(norm.logpdf(y, mean, sd))),
          "coverage_90": float(np.mean(inside))}


def _rmse(y: np.ndarray, forecast: np.ndarray) -> float:
  return float(np.sqrt(np.mean((y - forecast) ** 2)))


def _fit_arima(train: np.ndarray, order: tuple[int, int, int]) -> Any:
  """statsmodels' ARIMA results of ``order`` on ``train``: a constant mean without differencing,
  none with it (statsmodels' default trend)."""
  from statsmodels.tsa.arima.model import ARIMA  # noqa: PLC0415

  with _quiet():
    return ARIMA(train, order=order).fit(method_kwargs={"maxiter": MAX_ITER})


def _arima_one_step(results: Any, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean [H], sd [H]) of each test value given the true values before it, by the Kalman filter
  of ``results`` continued over ``test`` with its parameters fixed (``append(refit=False)``)."""
  n = results.model.nobs
  with _quiet():
    prediction = results.append(test, refit=False).get_prediction(start=n, end=n + test.size - 1)
  return np.asarray(prediction.predicted_mean), np.asarray(prediction.se_mean)


def _search(train: np.ndarray, orders: Iterable[tuple[int, int, int]]) -> tuple[Any, list, list]:
  """(the results of least AIC or None, [[order, why]] of the fits that raised or gave no AIC,
  the orders whose optimizer did not converge)."""
  best, skipped, unconverged = None, [], []
  for order in orders:
    try:
      results = _fit_arima(train, order)
    except (ValueError, ArithmeticError) as e:  # LinAlgError is a ValueError
      skipped.append([list(order), f"{type(e).__name__}: {e}"])
      continue
    if not math.isfinite(results.aic):
      skipped.append([list(order), f"AIC {results.aic}"])
      continue
    if not results.mle_retvals.get("converged", True):
      unconverged.append(list(order))
    if best is None or results.aic < best.aic:
      best = results
  return best, skipped, unconverged


def arima(train: Any, test: Any, max_p: int = 10, max_d: int = 1, max_q: int = 2) -> dict:
  """ARIMA(p, d, q) of least AIC on ``train`` [N] over p <= max_p, d <= max_d, q <= max_q, and its
  one-step forecasts of ``test`` [H]: order, aic, params, mean [H], sd [H], rmse, nll, coverage_90,
  the orders whose fit raised (skipped) or did not converge (unconverged), and seconds searched.

  With d = 1 statsmodels differences inside the state space (a diffuse first value), so every
  order's likelihood is of the same values and their AICs compare (up to that first value). The
  fits run on one BLAS thread, which changes no result."""
  max_p, max_d, max_q = (checks.integer(k, v, 0) for k, v in
                         (("max_p", max_p), ("max_d", max_d), ("max_q", max_q)))
  train = _series("train", train, 2 * (max_p + max_q + 2) + max_d)
  test = _series("test", test)
  _statsmodels()
  start = time.perf_counter()
  with _one_blas_thread():
    orders = itertools.product(range(max_p + 1), range(max_d + 1), range(max_q + 1))
    best, skipped, unconverged = _search(train, orders)
    if best is None:
      raise RuntimeError(f"no ARIMA order with p <= {max_p}, d <= {max_d}, q <= {max_q} could "
                         f"be fitted to the {train.size} training values: {skipped}")
    mean, sd = _arima_one_step(best, test)
  return {"order": tuple(int(k) for k in best.model.order), "aic": float(best.aic),
          "params": {k: float(v) for k, v in zip(best.param_names, best.params)},
          "mean": mean, "sd": sd, **gaussian_scores(test, mean, sd), "skipped": skipped,
          "unconverged": unconverged, "seconds": time.perf_counter() - start}


def _fit_ets(values: np.ndarray, config: str, fixed: dict[str, float] | None = None) -> Any:
  """ExponentialSmoothing of ``config`` on ``values``: fitted, or with ``fixed`` parameters and
  initial states (statsmodels' names: smoothing_level, initial_level, ...)."""
  from statsmodels.tsa.holtwinters import ExponentialSmoothing  # noqa: PLC0415

  settings = ETS_CONFIGS[config]
  if fixed is None:
    return ExponentialSmoothing(values, **settings, initialization_method="estimated").fit()
  initial = {k: v for k, v in fixed.items() if k.startswith("initial_")}
  rest = {k: v for k, v in fixed.items() if not k.startswith("initial_")}
  model = ExponentialSmoothing(values, **settings, initialization_method="known", **initial)
  return model.fit(**rest, optimized=False)


def exponential_smoothing(train: Any, test: Any, configs: Sequence[str] = tuple(ETS_CONFIGS)
                          ) -> dict:
  """Exponential smoothing (Holt's linear trend, damped or not, or none) with the configuration of
  ``configs`` (keys of ETS_CONFIGS) of least AIC on ``train`` [N], and its one-step forecasts of
  ``test`` [H] with the training fit's parameters and initial states: config, trend, damped_trend,
  aics (each candidate's), params, mean [H], rmse.

  statsmodels' AIC here is n log(SSE / n) + 2 k of the one-step fitted values, k counting the
  initial states; damping_trend stays in statsmodels' default bounds [0.8, 0.995]."""
  train, test = _series("train", train, 10), _series("test", test)
  if isinstance(configs, str) or not isinstance(configs, Sequence) or not configs:
    checks.fail("configs", f"be a non-empty sequence of {', '.join(ETS_CONFIGS)}", repr(configs))
  for i, config in enumerate(configs):
    checks.choice(f"configs[{i}]", config, tuple(ETS_CONFIGS))
  _statsmodels()
  with _quiet(), _one_blas_thread():
    fits = {config: _fit_ets(train, config) for config in configs}
    config = min(fits, key=lambda c: fits[c].aic)
    names = ["smoothing_level", "initial_level"]
    if ETS_CONFIGS[config]["trend"]:
      names += ["smoothing_trend", "initial_trend"]
    if ETS_CONFIGS[config]["damped_trend"]:
      names.append("damping_trend")
    params = {k: float(fits[config].params[k]) for k in names}
    full = _fit_ets(np.concatenate([train, test]), config, params)
  mean = np.asarray(full.fittedvalues)[train.size:]
  return {"config": config, **ETS_CONFIGS[config], "params": params, "mean": mean,
          "aics": {c: float(f.aic) for c, f in fits.items()}, "rmse": _rmse(test, mean)}


def persistence(train: Any, test: Any) -> dict:
  """Next year = this year: mean [H] (the last training value, then test[:-1]) and rmse of
  ``test`` [H] after ``train`` [N]."""
  train, test = _series("train", train), _series("test", test)
  mean = np.concatenate([train[-1:], test[:-1]])
  return {"mean": mean, "rmse": _rmse(test, mean)}


def baselines(train: Any, test: Any) -> dict[str, Any]:
  """The three baselines' one-step forecasts of ``test`` [H] after ``train`` [N], as plain floats,
  ints, strings and lists (for a metrics.json)."""
  a, e, p = arima(train, test), exponential_smoothing(train, test), persistence(train, test)
  return {"arima_order": list(a["order"]), "arima_aic": a["aic"], "arima_params": a["params"],
          "arima_rmse_one_step": a["rmse"], "arima_nll_one_step": a["nll"],
          "arima_coverage_90_one_step": a["coverage_90"],
          "arima_mean_one_step": a["mean"].tolist(), "arima_sd_one_step": a["sd"].tolist(),
          "arima_skipped": a["skipped"], "arima_unconverged": a["unconverged"],
          "ets_config": e["config"], "ets_aics": e["aics"], "ets_params": e["params"],
          "ets_rmse_one_step": e["rmse"], "ets_mean_one_step": e["mean"].tolist(),
          "persistence_rmse_one_step": p["rmse"],
          "persistence_mean_one_step": p["mean"].tolist()}
