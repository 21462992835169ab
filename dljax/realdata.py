"""The examples on real data sets that install with the ``data`` extra, each scored on its test
part beside the classical baseline a user would otherwise reach for, computed in the same run.

- ``prepare_sunspots``: the RNN or LSTM on the yearly sunspot numbers (``dljax.sunspots``),
  trained on 1700-1968, forecast over 1969-2008 one step ahead and closed loop; ARIMA (order by
  AIC), exponential smoothing and persistence beside it.
- ``prepare_digits_vae``: the VAE on scikit-learn's 8x8 digits (``dljax.digits``), dequantised
  afresh at each step; its test ELBO and IWAE bound beside probabilistic PCA's and a Gaussian
  mixture's exact test log-likelihood, in nats per image.
- ``prepare_digits_cvae``: the CVAE completing the bottom four rows of a digit from the top
  four; its bounds of log p(y | x) beside a linear-Gaussian model's exact one.

``validation=True`` holds out the end of the training part instead (the last 30 training years;
the last 300 training images) and never touches the test part: settings are chosen on it.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checks, digits, sunspots, userdata
from dljax import evaluation as V
from dljax import examples as E
from dljax import models as M
from dljax import objectives as O
from dljax import train as T

N_VALIDATION_IMAGES = 300  # the last training images, held out with validation=True
N_SHOWN = 64  # decoded samples and test digits in the VAE's figure (an 8 x 8 grid of each)
N_COMPLETED, N_COMPLETIONS = 10, 5  # test digits completed in the CVAE's figure, and per digit


def _sunspot_spans(validation: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(training values, held-out values, their years) of the test split (1700-1968, 1969-2008)
  or the validation split (1700-1938, 1939-1968)."""
  years, values = sunspots.load()
  split = sunspots.validation_split if validation else sunspots.split
  train, held = split(years, values)
  return train, held, years[:len(train)], years[len(train):len(train) + len(held)]


@functools.cache
def _sunspot_baselines(validation: bool) -> dict[str, Any]:
  """``sunspots.baselines`` of the test (or validation) split, computed once per process."""
  train, held = _sunspot_spans(validation)[:2]
  return sunspots.baselines(train, held)


def prepare_sunspots(cell: str, validation: bool = False, **settings: Any) -> E.Experiment:
  """The RNN or LSTM (``settings``: ``examples.prepare_recurrent``'s, all given) on the yearly
  sunspot numbers; metrics and the baselines' in sunspot units."""
  train, held, train_years, held_years = _sunspot_spans(validation)
  name = f"{cell}_sunspots" + ("_validation" if validation else "")
  experiment = userdata.series_experiment(name, cell, train[:, None].astype(np.float32),
                                          held[:, None].astype(np.float32), settings, "sunspots")

  def evaluate(params):
    pred, scores = experiment.evaluate(params)
    baselines = dict(_sunspot_baselines(validation))
    per_year = [k for k in baselines if k.endswith(("_mean_one_step", "_sd_one_step"))]
    pred.update(years_train=train_years, years_test=held_years,
                **{k: np.asarray(baselines.pop(k)) for k in per_year})
    return pred, {**scores, **baselines}

  return experiment._replace(evaluate=evaluate)


def _digit_images(validation: bool) -> tuple[np.ndarray, np.ndarray]:
  """(training pixels [N, 64] float32, held-out pixels [M, 64]): the test split, or the last
  N_VALIDATION_IMAGES training images with validation."""
  train, test = digits.split(digits.load())
  if validation:
    train, test = train[:-N_VALIDATION_IMAGES], train[-N_VALIDATION_IMAGES:]
  return train.astype(np.float32), test


def _fixed_training_images(train: np.ndarray, seed: int) -> np.ndarray:
  """One dequantisation of the training images (from ``seed``) for the baselines' fits."""
  u = np.random.default_rng([seed, digits.TEST_SEED + 1]).uniform(size=train.shape)
  return digits.dequantise(train, u)


def _digits_settings(name: str, settings: dict[str, Any]) -> dict[str, Any]:
  """``settings`` (all of the example's), checked: the ring's or step's own keep their defaults."""
  for key in ("n_train", "noise"):
    if key in settings and settings[key] != E.defaults(name)[key]:
      checks.fail(key, "keep its default with dataset=digits (it sets the tutorial's data)",
                  repr(settings[key]))
  return settings


def prepare_digits_vae(validation: bool = False, **settings: Any) -> E.Experiment:
  """The VAE (``settings``: ``examples.prepare_vae``'s, all given) on the dequantised digits."""
  s = _digits_settings("vae", settings)
  ensemble, seeds = E._seeds(s["seed"], s["ensemble"])
  train, test = _digit_images(validation)
  model = M.vae(digits.N_PIXELS, s["latent"], s["encoder"], s["decoder"])
  objective = O.dequantised(O.neg_elbo(model, s["beta"]), digits.LEVELS)
  y_test = digits.fixed_dequantisation(test)

  def evaluate(params):
    draw = lambda p: model.sample(p, V.eval_key(s["seed"]), N_SHOWN)
    means = np.clip(np.asarray(V.members(draw, params, ensemble)), 0.0, 1.0)
    k_pool = jax.random.fold_in(V.eval_key(s["seed"]), 1)
    pred = {"sample_means": means if ensemble == 1 else V.pool(k_pool, means, N_SHOWN),
            "y_test": y_test[:N_SHOWN]}
    scores = V.bound_scores(model, params, ensemble, s["seed"], (1000,), jnp.asarray(y_test))
    fitted = _fixed_training_images(train, s["seed"])
    return pred, {"test_elbo": scores["elbo_held_out"], "test_iwae_1000": scores["iwae_1000"],
                  "ppca_test_log_likelihood": digits.ppca_log_likelihood(fitted, y_test,
                                                                         s["latent"]),
                  "gmm_test_log_likelihood": digits.gmm_log_likelihood(fitted, y_test),
                  "n_train": len(train), "n_test": len(test)}

  return E._prepare("vae_digits" + ("_validation" if validation else ""), model, objective,
                    {"y": train}, steps=s["steps"], batch_size=s["batch_size"], seed=seeds,
                    log_every=s["log_every"], optimizer=T.adam(s["learning_rate"]),
                    evaluate=evaluate)


def prepare_digits_cvae(validation: bool = False, **settings: Any) -> E.Experiment:
  """The CVAE (``settings``: ``examples.prepare_cvae``'s, all given) of a digit's bottom four
  rows y given its top four x, both dequantised."""
  s = _digits_settings("cvae", settings)
  ensemble, seeds = E._seeds(s["seed"], s["ensemble"])
  train, test = _digit_images(validation)
  hidden = checks.sizes("hidden", s["hidden"])
  half = digits.N_PIXELS // 2
  model = M.cvae(half, half, s["latent"], hidden, hidden, hidden, s["variant"])
  objective = O.dequantised(O.neg_elbo(model, s["beta"]), digits.LEVELS, ("x", "y"))
  x_train, y_train = digits.halves(train)
  x_test, y_test = digits.halves(digits.fixed_dequantisation(test))

  def evaluate(params):
    shown = jnp.asarray(x_test[:N_COMPLETED])
    draw = lambda p: model.sample(p, V.eval_key(s["seed"]), N_COMPLETIONS, shown,
                                  shared_noise=False)  # [(K,) 5, 10, 32]
    completions = np.clip(np.asarray(V.members(draw, params, ensemble)), 0.0, 1.0)
    pred = {"x_test": x_test[:N_COMPLETED], "y_test": y_test[:N_COMPLETED],
            "completions": completions if ensemble == 1 else completions[0]}
    scores = V.bound_scores(model, params, ensemble, s["seed"], (1000,), jnp.asarray(y_test),
                            jnp.asarray(x_test))
    linear = digits.linear_gaussian_fit(*digits.halves(_fixed_training_images(train,
                                                                              s["seed"])))
    baseline = digits.linear_gaussian_log_likelihood(linear, x_test, y_test)
    return pred, {"test_elbo": scores["elbo_held_out"], "test_iwae_1000": scores["iwae_1000"],
                  "linear_gaussian_test_log_likelihood": float(np.mean(baseline)),
                  "n_train": len(train), "n_test": len(test)}

  return E._prepare("cvae_digits" + ("_validation" if validation else ""), model, objective,
                    {"x": x_train, "y": y_train}, steps=s["steps"],
                    batch_size=s["batch_size"], seed=seeds, log_every=s["log_every"],
                    optimizer=T.adam(s["learning_rate"]), evaluate=evaluate)
