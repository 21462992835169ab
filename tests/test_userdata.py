"""The five examples on the user's own files (dljax.userdata, the launchers' --data): small
files the tests write; metrics in original units; bad data refused before any work."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dljax import checks, examples, userdata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEW = dict(steps=30, log_every=30)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
  """A regression table with a header: y = sin(a) + b / 2 + noise, 60 rows, y in thousands."""
  rng = np.random.default_rng(0)
  x = rng.uniform(-2, 2, (60, 2))
  y = 1000 * (np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.standard_normal(60))
  path = tmp_path_factory.mktemp("data") / "reg.csv"
  np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="a,b,y", comments="",
             fmt="%.6f")
  return str(path), np.column_stack([x, y])


@pytest.fixture(scope="module")
def series(tmp_path_factory):
  t = np.arange(80) * 0.1
  path = tmp_path_factory.mktemp("data") / "series.txt"
  np.savetxt(path, np.column_stack([t, 5 + 2 * np.sin(np.pi * t)]), fmt="%.6f")
  return str(path)


def test_mlp_rows_units_and_test_fraction(table):
  path, values = table
  out = examples.run(userdata.prepare_mlp(data=path, ensemble=2, **FEW))
  assert out.experiment.name == "mlp_data"
  pred, m = out.predictions, out.metrics
  assert set(m) >= {"test_rmse", "test_nll", "test_crps", "coverage_50", "coverage_90",
                    "coverage_95"} and m["n_test"] == 6 and m["n_train"] == 54
  held = np.column_stack([pred["x_test"], pred["y_test"]])  # rows of the file, as written
  assert np.all(np.abs(held[:, None] - values[None]).max(-1).min(1) < 1e-3 * 1000)
  assert np.all(pred["y_low_90"] < pred["y_high_90"]) and pred["y_mean_members"].shape == (2, 6, 1)
  assert 100 < m["test_rmse"] < 5000  # original units (thousands), not standardised ones
  again = userdata.prepare_mlp(data=path, **FEW).evaluate  # the same seed: the same test rows
  assert again is not None


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_recurrent_on_a_series(series, name):
  out = examples.run(userdata.PREPARERS[name](data=series, column="1", ensemble=2, **FEW))
  m, pred = out.metrics, out.predictions
  assert set(m) >= {"test_rmse_one_step", "test_rmse_closed_loop"} and m["n_test"] == 8
  np.testing.assert_allclose(pred["series_test"][:, 0],
                             5 + 2 * np.sin(np.pi * np.arange(72, 80) * 0.1), atol=1e-5)
  assert pred["forecast"].shape == (8, 1) and pred["forecast_members"].shape == (2, 8, 1)


def test_vae_and_cvae_bounds(table, tmp_path):
  path, values = table
  test_path = tmp_path / "held.csv"
  np.savetxt(test_path, values[:10], delimiter=",", header="a,b,y", comments="", fmt="%.6f")
  vae = examples.run(userdata.prepare_vae(data=path, columns=("a", "b"), test_data=str(test_path),
                                          batch_size=20, iwae_ks=(), **FEW))
  assert set(vae.metrics) >= {"test_elbo", "test_iwae_1000"} and vae.metrics["n_test"] == 10
  cvae = examples.run(userdata.prepare_cvae(data=path, features=("a", "b"), test_fraction=0.2,
                                            **FEW))
  assert np.isfinite(cvae.metrics["test_iwae_1000"]) and cvae.metrics["n_test"] == 12


def _error(fn, **kwargs):
  with pytest.raises(checks.BadArgument) as e:
    fn(**kwargs)
  assert "\n" not in str(e.value)
  return e.value.argument, str(e.value)


def test_bad_data_is_refused_naming_the_argument(table, series, tmp_path):
  path, values = table
  const = tmp_path / "const.csv"
  np.savetxt(const, np.column_stack([values[:, 0], np.ones(60), values[:, 2]]), delimiter=",",
             header="a,c,y", comments="", fmt="%.6f")
  argument, message = _error(userdata.prepare_mlp, data=str(const))
  assert argument == "features" and "'c' constant at 1 over the 54 training rows" in message
  small = tmp_path / "small.csv"
  np.savetxt(small, values[:5], delimiter=",", fmt="%.6f")
  argument, message = _error(userdata.prepare_mlp, data=str(small), test_fraction=0.0)
  assert argument == "batch_size" and "at most the 5 training rows" in message
  one = tmp_path / "one.csv"
  np.savetxt(one, values[:2], delimiter=",", fmt="%.6f")
  argument, message = _error(userdata.prepare_mlp, data=str(one), batch_size=1)
  assert argument == "data" and "at least 2 training rows" in message
  argument, message = _error(userdata.prepare_rnn, data=series, lags=80)
  assert argument == "data" and "lags + 2 = 82 training points, got 72" in message
  assert _error(userdata.prepare_mlp, data=path, n_train=10)[0] == "n_train"
  assert _error(userdata.prepare_mlp, data=path, test_fraction=1.0)[0] == "test_fraction"
  assert _error(userdata.prepare_mlp, data=path, features=("a",), target=("a",))[0] == "target"


def _launch(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)


def test_launcher_end_to_end_on_a_csv(table, tmp_path):
  path, _ = table
  workdir = tmp_path / "run"
  proc = _launch("experiments.mlp", f"--data={path}", "--features=a,b", "--target=y",
                 "--ensemble=2", "--cpu_devices=1", "--steps=40", "--log_every=20",
                 "--heteroscedastic", "--adversarial", f"--workdir={workdir}",
                 "--compilation_cache=")
  assert proc.returncode == 0, proc.stderr[-3000:]
  for name in ("metrics.json", "predictions.npz", "figure.png", "loss.png", "config.json",
               "checkpoint.msgpack"):
    assert (workdir / name).is_file(), name
  with open(workdir / "metrics.json") as f:
    m = json.load(f)
  assert m["example"] == "mlp_data" and np.isfinite(m["test_nll"]) and m["n_test"] == 6
  with open(workdir / "config.json") as f:
    assert json.load(f)["flags"]["data"] == path
  assert (workdir / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,flag,parts", [
    (["--data={bad}"], "--data", ["'x' at line 3, column 1 ('b')"]),
    (["--data={path}", "--target=z"], "--target[0]", ["(a, b, y)", "'z'"]),
    (["--features=a"], "--features", ["needs --data"]),
])
def test_launcher_bad_data_is_one_line(table, tmp_path, args, flag, parts):
  bad = tmp_path / "bad.csv"
  bad.write_text("a,b,y\n1,2,3\n4,x,6\n")
  args = [a.format(bad=bad, path=table[0]) for a in args]
  workdir = tmp_path / "run"
  proc = _launch("experiments.mlp", *args, f"--workdir={workdir}", "--compilation_cache=")
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr
  assert flag in lines[0] and all(p in lines[0] for p in parts), lines[0]
  assert not workdir.exists()
