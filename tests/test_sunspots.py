"""dljax.sunspots: the offline loader and its splits, and the classical baselines' one-step
forecasts against NumPy re-derivations (ARIMA's and exponential smoothing's recursions with the
training fit's parameters, persistence's closed form) and independent statsmodels fits."""

import json
import sys
import warnings

import numpy as np
import pytest
from helpers import modules_loaded_by

from dljax import checks
from dljax import sunspots as S

pytest.importorskip("statsmodels", reason="the data extra: pip install -e '.[data]'")
from statsmodels.tsa.arima.model import ARIMA  # noqa: E402
from statsmodels.tsa.holtwinters import ExponentialSmoothing  # noqa: E402

Z_95 = 1.6448536269514722  # the standard normal's 0.95 quantile


def ar2(n, seed=0, mean=10.0, phi=(0.75, -0.5), sd=2.0):
  """A stationary AR(2) series [n] about ``mean``, after a burn-in of 200 values."""
  rng = np.random.default_rng(seed)
  y = np.zeros(n + 200)
  for t in range(2, y.size):
    y[t] = phi[0] * y[t - 1] + phi[1] * y[t - 2] + sd * rng.standard_normal()
  return mean + y[200:]


def plain(value):
  """Whether ``value`` holds only JSON's own types (no NumPy scalars or arrays)."""
  if isinstance(value, dict):
    return all(isinstance(k, str) and plain(v) for k, v in value.items())
  if isinstance(value, list):
    return all(plain(v) for v in value)
  return value is None or type(value) in (bool, int, float, str)


def test_import_leaves_statsmodels_pandas_and_scipy_stats_for_later():
  loaded = modules_loaded_by("import dljax.sunspots", ["statsmodels", "pandas", "scipy.stats"])
  assert loaded == []


def test_load_and_split_offline(no_network):
  years, values = S.load()
  assert years.dtype == np.int64 and values.dtype == np.float64 and values.shape == (309,)
  assert years.tolist() == list(range(1700, 2009))
  assert values[:3].tolist() == [5.0, 11.0, 16.0] and values[-1] == 2.9  # 1700-1702, 2008
  train, test = S.split(years, values)
  assert train.size == 269 and test.size == 40
  assert np.array_equal(np.concatenate([train, test]), values)
  fit, validation = S.validation_split(years, values)
  assert fit.size == 239 and validation.size == 30  # 1700-1938 and 1939-1968
  assert np.array_equal(validation, values[(years >= 1939) & (years <= 1968)])
  assert np.array_equal(fit, values[years <= 1938])


def test_missing_statsmodels_names_the_data_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "statsmodels.api", None)  # import statsmodels.api fails
  for call in (S.load, lambda: S.arima(ar2(40), [1.0]),
               lambda: S.exponential_smoothing(ar2(40), [1.0])):
    with pytest.raises(ImportError, match=r"pip install -e '\.\[data\]'"):
      call()


def test_persistence_is_the_previous_year():
  train, test = np.array([1.0, 4.0, 2.0]), np.array([5.0, 3.0, 3.0, 8.0])
  got = S.persistence(train, test)
  assert got["mean"].tolist() == [2.0, 5.0, 3.0, 3.0]
  assert got["rmse"] == pytest.approx(np.sqrt((9 + 4 + 0 + 25) / 4), rel=1e-15)


def test_gaussian_scores_against_the_density_and_a_count():
  rng = np.random.default_rng(1)
  y, mean, sd = rng.normal(size=500), rng.normal(size=500), rng.uniform(0.5, 2.0, 500)
  got = S.gaussian_scores(y, mean, sd)
  nll = np.mean(0.5 * np.log(2 * np.pi * sd**2) + (y - mean) ** 2 / (2 * sd**2))
  inside = sum(m - Z_95 * s <= v <= m + Z_95 * s for v, m, s in zip(y, mean, sd))
  assert got["nll"] == pytest.approx(nll, rel=1e-12)
  assert got["coverage_90"] == inside / 500 and 0.3 < got["coverage_90"] < 0.95
  assert got["rmse"] == pytest.approx(np.sqrt(np.mean((y - mean) ** 2)), rel=1e-12)


def test_arima_one_step_is_the_ar_recursion_with_the_training_fit():
  y = ar2(280)
  train, test = y[:240], y[240:]
  got = S.arima(train, test, max_p=2, max_d=0, max_q=0)
  p = got["order"][0]
  assert got["order"] == (p, 0, 0) and p >= 1
  ref = ARIMA(train, order=(p, 0, 0)).fit(method_kwargs={"maxiter": S.MAX_ITER})
  assert got["params"] == pytest.approx(dict(zip(ref.param_names, ref.params)), rel=1e-10)
  whole = ARIMA(y, order=(p, 0, 0)).fit()  # what a re-estimation on the test years would give
  assert abs(whole.params[1] - got["params"]["ar.L1"]) > 1e-4
  mu, phi = got["params"]["const"], [got["params"][f"ar.L{i}"] for i in range(1, p + 1)]
  mean = [mu + sum(phi[i] * (y[t - 1 - i] - mu) for i in range(p)) for t in range(240, 280)]
  np.testing.assert_allclose(got["mean"], mean, rtol=1e-9)
  np.testing.assert_allclose(got["sd"], np.sqrt(got["params"]["sigma2"]), rtol=1e-9)
  changed = test.copy()
  changed[20:] += 50.0  # the years from 20 on: forecasts up to year 20 use none of them
  later = S.arima(train, changed, max_p=2, max_d=0, max_q=0)
  np.testing.assert_array_equal(later["mean"][:21], got["mean"][:21])
  assert abs(later["mean"][21] - got["mean"][21]) > 1.0


def test_arima_order_has_the_least_aic_of_the_grid():
  y = ar2(330, seed=2)
  train, test = y[:300], y[300:]
  got = S.arima(train, test, max_p=3, max_d=1, max_q=1)
  aics = {}
  with warnings.catch_warnings(), S._one_blas_thread():  # one thread: as fast, same numbers
    warnings.simplefilter("ignore")
    for p in range(4):
      for d in range(2):
        for q in range(2):
          fit = ARIMA(train, order=(p, d, q)).fit(method_kwargs={"maxiter": S.MAX_ITER})
          aics[(p, d, q)] = fit.aic
  assert len(aics) == 16 and got["order"] == min(aics, key=aics.get) == (2, 0, 0)
  assert got["aic"] == pytest.approx(min(aics.values()), rel=1e-10)
  assert got["skipped"] == [] and got["seconds"] > 0


def test_arima_skips_an_order_that_raises_and_fails_when_none_fits(monkeypatch):
  fit = S._fit_arima

  def failing(train, order):
    if order != (0, 0, 0):
      raise np.linalg.LinAlgError("Schur decomposition solver error.")
    return fit(train, order)

  y = ar2(60)
  monkeypatch.setattr(S, "_fit_arima", failing)
  got = S.arima(y[:50], y[50:], max_p=1, max_d=0, max_q=1)
  assert got["order"] == (0, 0, 0)
  assert [o for o, _ in got["skipped"]] == [[0, 0, 1], [1, 0, 0], [1, 0, 1]]
  assert "LinAlgError: Schur" in got["skipped"][0][1]
  monkeypatch.setattr(S, "_fit_arima", lambda train, order: failing(train, (1, 1, 1)))
  with pytest.raises(RuntimeError, match=r"no ARIMA order .*LinAlgError"):
    S.arima(y[:50], y[50:], max_p=1, max_d=0, max_q=1)


def test_simple_exponential_smoothing_is_the_level_recursion():
  rng = np.random.default_rng(3)
  y = 50 + np.cumsum(rng.normal(size=160)) + 2.0 * rng.normal(size=160)  # local level
  train, test = y[:120], y[120:]
  got = S.exponential_smoothing(train, test, configs=("none",))
  ref = ExponentialSmoothing(train, initialization_method="estimated").fit()
  assert got["config"] == "none" and got["trend"] is None
  alpha, level = ref.params["smoothing_level"], ref.params["initial_level"]
  assert got["params"] == pytest.approx({"smoothing_level": alpha, "initial_level": level})
  assert 0.05 < alpha < 0.95
  forecasts = []
  for value in y:
    forecasts.append(level)
    level = alpha * value + (1 - alpha) * level
  np.testing.assert_allclose(got["mean"], forecasts[120:], rtol=1e-10)
  assert got["rmse"] == pytest.approx(np.sqrt(np.mean((test - forecasts[120:]) ** 2)))


def holt_forecasts(y, params):
  """Holt's (damped) trend one-step forecasts [N] of y [N], l + phi b before each value; without
  a trend (b = 0) the simple level recursion, without damping phi = 1."""
  alpha, beta = params["smoothing_level"], params.get("smoothing_trend", 0.0)
  phi, level = params.get("damping_trend", 1.0), params["initial_level"]
  trend, forecasts = params.get("initial_trend", 0.0), []
  for value in y:
    forecasts.append(level + phi * trend)
    new = alpha * value + (1 - alpha) * (level + phi * trend)
    trend = beta * (new - level) + (1 - beta) * phi * trend
    level = new
  return np.array(forecasts)


def test_baselines_on_the_sunspots():
  years, values = S.load()
  train, test = S.split(years, values)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    got = S.baselines(train, test)  # statsmodels warns of replaced starting values here
  assert [str(w.message) for w in caught if "statsmodels" in w.filename] == []
  assert plain(got) and json.loads(json.dumps(got, allow_nan=False)) == got
  order = tuple(got["arima_order"])
  assert order[0] <= 10 and order[1] <= 1 and order[2] <= 2
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ref = ARIMA(train, order=order).fit(method_kwargs={"maxiter": S.MAX_ITER})
  assert got["arima_aic"] == pytest.approx(ref.aic, rel=1e-10)
  prediction = ref.apply(values).get_prediction(start=269, end=308)  # same params, whole series
  np.testing.assert_allclose(got["arima_mean_one_step"], prediction.predicted_mean, rtol=1e-6)
  np.testing.assert_allclose(got["arima_sd_one_step"], prediction.se_mean, rtol=1e-6)
  scores = S.gaussian_scores(test, prediction.predicted_mean, prediction.se_mean)
  assert got["arima_rmse_one_step"] == pytest.approx(scores["rmse"], rel=1e-6)
  assert got["arima_nll_one_step"] == pytest.approx(scores["nll"], rel=1e-6)
  assert got["arima_coverage_90_one_step"] == scores["coverage_90"]
  aics = got["ets_aics"]
  assert set(aics) == set(S.ETS_CONFIGS) and aics[got["ets_config"]] == min(aics.values())
  mean = holt_forecasts(values, got["ets_params"])[269:]
  np.testing.assert_allclose(got["ets_mean_one_step"], mean, rtol=1e-8)
  assert got["persistence_mean_one_step"] == values[268:308].tolist()
  assert got["ets_rmse_one_step"] < got["persistence_rmse_one_step"]
  assert got["arima_rmse_one_step"] < got["persistence_rmse_one_step"]


TRAIN, TEST = ar2(60), ar2(5, seed=1)
YEARS = np.arange(2000, 2060)


@pytest.mark.parametrize("call,name,kind", [
    (lambda: S.arima(TRAIN.reshape(6, 10), TEST), "train", checks.ArgumentError),
    (lambda: S.arima(TRAIN, [1.0, np.nan]), "test", checks.ArgumentError),
    (lambda: S.arima(TRAIN, np.array(["1"])), "test", checks.ArgumentTypeError),
    (lambda: S.arima(TRAIN, TEST, max_p=-1), "max_p", checks.ArgumentError),
    (lambda: S.arima(TRAIN, TEST, max_d=True), "max_d", checks.ArgumentError),
    (lambda: S.arima(TRAIN, TEST, max_q=1.5), "max_q", checks.ArgumentError),
    (lambda: S.arima(TRAIN[:28], TEST), "train", checks.ArgumentError),  # 29 for (10, 1, 2)
    (lambda: S.exponential_smoothing(TRAIN[:9], TEST), "train", checks.ArgumentError),
    (lambda: S.exponential_smoothing(TRAIN, TEST, configs="none"), "configs",
     checks.ArgumentError),
    (lambda: S.exponential_smoothing(TRAIN, TEST, configs=("none", "holt")), "configs[1]",
     checks.ArgumentError),
    (lambda: S.persistence([], TEST), "train", checks.ArgumentError),
    (lambda: S.gaussian_scores(TEST, TEST[:4], np.ones(5)), "mean", checks.ArgumentError),
    (lambda: S.gaussian_scores(TEST, TEST, np.zeros(5)), "sd", checks.ArgumentError),
    (lambda: S.split(YEARS.astype(float), TRAIN), "years", checks.ArgumentError),
    (lambda: S.split(YEARS[::-1], TRAIN), "years", checks.ArgumentError),
    (lambda: S.split(YEARS, TRAIN, 2059), "last_train_year", checks.ArgumentError),
    (lambda: S.validation_split(YEARS, TRAIN, 2030, held_out=31), "held_out",
     checks.ArgumentError),
])
def test_bad_arguments_name_the_argument(call, name, kind):
  with pytest.raises(kind) as e:
    call()
  assert type(e.value) is kind and e.value.argument == name
  assert str(e.value).startswith(f"{name} must ")
