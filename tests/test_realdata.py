"""The examples on real data (dljax.realdata; the data extra): sunspots against ARIMA, digits
against probabilistic PCA, digit completion against a linear-Gaussian model; the dequantised
objective; the Gaussian recurrent head's scores on a user's series; the launchers' flags."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from dljax import checks, digits, examples, realdata, userdata
from dljax import models as M
from dljax import objectives as O

pytest.importorskip("statsmodels", reason="the data extra: pip install -e '.[data]'")
pytest.importorskip("sklearn", reason="the data extra: pip install -e '.[data]'")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEW = dict(steps=40, log_every=20)


def test_dequantised_objective_sees_fresh_uniform_offsets():
  """The wrapped objective gets (k + u) / levels with u ~ U(0, 1) from the step's key: equal to
  the objective on that batch, inside each level's cell, and uniform within it (Monte Carlo)."""
  seen = []

  class Record:
    def __call__(self, params, batch, key):
      seen.append((batch["y"], key))
      return jnp.sum(batch["y"]), {}

  k = jnp.asarray(np.random.default_rng(0).integers(0, 17, (4000, 3)), jnp.float32)
  key = jax.random.key(3)
  loss, _ = O.dequantised(Record(), 17)(None, {"y": k}, key)
  y, objective_key = seen[0]
  k_u, k_expected = jax.random.split(key)
  u = jax.random.uniform(jax.random.split(k_u, 1)[0], k.shape, jnp.float32)
  np.testing.assert_array_equal(y, (k + u) / 17)
  np.testing.assert_array_equal(jax.random.key_data(objective_key),
                                jax.random.key_data(k_expected))
  offsets = np.asarray(y) * 17 - np.asarray(k)
  assert np.all((offsets >= 0) & (offsets < 1))
  assert stats.kstest(offsets.ravel(), "uniform").pvalue > 1e-3
  again, _ = O.dequantised(Record(), 17)(None, {"y": k}, jax.random.key(4))
  assert float(again) != float(loss)  # another step's key: other offsets


def test_dequantised_checks_its_arguments():
  with pytest.raises(checks.ArgumentError, match="levels must be an integer >= 2"):
    O.dequantised(O.neg_elbo(M.vae()), 1)
  with pytest.raises(checks.ArgumentError, match="names must be a non-empty sequence"):
    O.dequantised(O.neg_elbo(M.vae()), 17, "y")


def test_gaussian_series_scores_match_a_rederivation(tmp_path):
  """--likelihood=gaussian on a user's series: test_nll_one_step is the mixture's NLL (scipy),
  coverage_90_one_step the share of held-out points inside the band."""
  t = np.arange(90) * 0.1
  path = tmp_path / "s.txt"
  np.savetxt(path, 3 + np.sin(np.pi * t) + 0.05 * np.random.default_rng(1).standard_normal(90))
  out = examples.run(userdata.prepare_lstm(data=str(path), likelihood="gaussian", ensemble=3,
                                           **FEW))
  pred, m = out.predictions, out.metrics
  y = pred["series_test"][:, 0]
  mu, sd = pred["one_step_members"][..., 0], pred["one_step_std_members"][..., 0]
  nll = -np.mean(special.logsumexp(stats.norm.logpdf(y, mu, sd), axis=0) - np.log(3))
  np.testing.assert_allclose(m["test_nll_one_step"], nll, rtol=1e-6)
  inside = (pred["one_step_low_90"][:, 0] <= y) & (y <= pred["one_step_high_90"][:, 0])
  assert m["coverage_90_one_step"] == pytest.approx(inside.mean())
  assert np.all(pred["forecast_low_90"] < pred["forecast_high_90"])


def test_sunspots_validation_never_sees_the_test_years():
  """validation=True trains on 1700-1938 and scores on 1939-1968."""
  experiment = realdata.prepare_sunspots("rnn", validation=True,
                                         **{**examples.defaults("rnn"), **FEW, "lags": 5})
  train, held, train_years, held_years = realdata._sunspot_spans(True)
  assert train_years[-1] == 1938 and list(held_years[[0, -1]]) == [1939, 1968]
  assert experiment.data["x"].shape[0] == len(train) - 5  # windows of the training years only


@pytest.mark.parametrize("latent", [2, 8])
def test_digits_vae_against_ppca(latent):
  out = examples.run(examples.prepare_vae(dataset="digits", latent=latent, **FEW))
  m = out.metrics
  assert m["n_train"] == 1500 and m["n_test"] == 297
  assert m["test_iwae_1000"] >= m["test_elbo"] - 0.5  # the IWAE bound is the tighter (noise)
  train, test = digits.split(digits.load())
  fitted = realdata._fixed_training_images(train.astype(np.float32), 0)
  np.testing.assert_allclose(m["ppca_test_log_likelihood"], digits.ppca_log_likelihood(
      fitted, digits.fixed_dequantisation(test), latent))
  assert out.predictions["sample_means"].shape == (64, 64)


def test_digits_cvae_against_the_linear_gaussian_model():
  out = examples.run(examples.prepare_cvae(dataset="digits", variant="standard",
                                           batch_size=50, **FEW))
  assert out.experiment.model.x_dim == 32 and out.experiment.model.y_dim == 32
  assert out.predictions["completions"].shape == (5, 10, 32)
  assert np.isfinite(out.metrics["linear_gaussian_test_log_likelihood"])


def test_tutorial_only_settings_are_refused_with_digits():
  with pytest.raises(checks.ArgumentError, match="n_train must keep its default"):
    examples.prepare_vae(dataset="digits", n_train=50)
  with pytest.raises(checks.ArgumentError, match="dataset must be one of 'sine', 'sunspots'"):
    examples.prepare_rnn(dataset="lynx")


def test_launcher_writes_the_baselines_beside_ours(tmp_path):
  """One launcher run on sunspots: ours and the three baselines' scores in metrics.json, over
  the test years 1969-2008, consistent with the predictions it writes."""
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.lstm", "--dataset=sunspots", "--likelihood=gaussian",
       "--ensemble=2", "--steps=40", "--log_every=20", "--batch_size=8", f"--workdir={workdir}",
       "--compilation_cache="], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  m = json.loads((workdir / "metrics.json").read_text())
  pred = np.load(workdir / "predictions.npz")
  assert m["example"] == "lstm_sunspots" and len(m["arima_order"]) == 3
  assert m["n_train"] == 269 and m["n_test"] == 40
  assert pred["years_test"][0] == 1969 and pred["years_test"][-1] == 2008
  for key in ("test_rmse_one_step", "test_rmse_closed_loop", "test_nll_one_step",
              "coverage_90_one_step", "arima_rmse_one_step", "arima_nll_one_step",
              "arima_coverage_90_one_step", "ets_rmse_one_step", "persistence_rmse_one_step"):
    assert np.isfinite(m[key]), key
  held = pred["series_test"][:, 0]
  rmse = lambda mean: np.sqrt(np.mean((held - mean) ** 2))
  assert rmse(pred["persistence_mean_one_step"]) == pytest.approx(m["persistence_rmse_one_step"])
  assert rmse(pred["one_step"][:, 0]) == pytest.approx(m["test_rmse_one_step"], rel=1e-5)
  assert (workdir / "figure.png").read_bytes()[:4] == b"\x89PNG"
