"""The absl-flag launchers (python -m experiments.NAME) end to end, each run in a subprocess.

Every launcher configuration runs once per module, with few steps and a shared compilation
cache, and the checks below read the files it wrote.
"""

import hashlib
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import flax
import jax
import jax.numpy as jnp
import matplotlib.image
import msgpack
import numpy as np
import optax
import pytest

from dljax import checkpoint, examples, forecast, saving

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = ("mlp", "rnn", "lstm", "vae", "cvae")
STEPS, LOG_EVERY = 40, 20
RUN_FILES = {"figure.png", "loss.png", "config.json", "metrics.jsonl", "metrics.json",
             "predictions.npz", "checkpoint.msgpack", "checkpoints"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Common flags passed explicitly (batch sizes and learning rates off the defaults, so that the
# config check shows the flags reach the run).
COMMON = {
    "mlp": dict(seed=1, steps=STEPS, batch_size=20, learning_rate=2e-3, log_every=LOG_EVERY,
                ensemble=1),
    "rnn": dict(seed=1, steps=STEPS, batch_size=2, learning_rate=2e-3, log_every=LOG_EVERY,
                ensemble=1),
    "lstm": dict(seed=1, steps=STEPS, batch_size=2, learning_rate=2e-3, log_every=LOG_EVERY,
                 ensemble=1),
    "vae": dict(seed=1, steps=STEPS, batch_size=100, learning_rate=2e-3, log_every=LOG_EVERY,
                ensemble=1),
    "cvae": dict(seed=1, steps=STEPS, batch_size=10, learning_rate=2e-3, log_every=LOG_EVERY,
                 ensemble=1),
}


def _flags(values):
  return [f"--{k}={v}" for k, v in values.items()]


# Launcher configurations, each run at most once per module: key -> (launcher, arguments).
CONFIGS = {
    **{name: (name, _flags(COMMON[name])) for name in EXAMPLES},
    "rnn_again": ("rnn", _flags(COMMON["rnn"])),
    "mlp_ensemble": ("mlp", _flags(dict(COMMON["mlp"], ensemble=3))),
    "mlp_ensemble4": ("mlp", _flags(dict(COMMON["mlp"], ensemble=4))),  # default: 2 devices here
    "mlp_ensemble4_one_device": ("mlp", _flags(dict(COMMON["mlp"], ensemble=4)) + ["--cpu_devices=1"]),
    "rnn_ensemble": ("rnn", _flags(dict(COMMON["rnn"], ensemble=3))),
    "cvae_ensemble": ("cvae", _flags(dict(COMMON["cvae"], ensemble=3, steps=20))),
    "cvae_standard": ("cvae", _flags(COMMON["cvae"]) + ["--variant=standard"]),
}

SHAPES = {
    "mlp": {"x_test": (1000, 1), "y_true": (1000, 1), "y_mean": (1000, 1), "y_std": (1000, 1),
            "sigma": (1,), "x_train": (100, 1), "y_train": (100, 1)},
    "rnn": {"series": (100, 1), "forecast": (95, 1), "n_train_windows": ()},
    "lstm": {"series": (100, 1), "forecast": (90, 1), "n_train_windows": ()},
    "vae": {"y_train": (1000, 2), "sample_means": (1000, 2)},
    "cvae": {"x_test": (400, 1), "y_true": (400, 1), "sample_means": (100, 400, 1),
             "x_train": (100, 1), "y_train": (100, 1)},
}
QUALITY = {"mlp": ("rmse", "sigma"), "rnn": ("rmse_held_out", "rmse_all"),
           "lstm": ("rmse_held_out", "rmse_all"), "vae": ("energy_distance",),
           "cvae": ("max_abs_error_of_mean_away_from_step",)}


def _launch(module, args, cwd=ROOT):
  """Runs python -m <module> with args; returns the CompletedProcess (text output). The jobs
  launch from threads while tests run, so the child gets a copy of the environment, not libc's
  own array (one run here failed its exec with EFAULT)."""
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                        text=True, timeout=600, env=dict(os.environ))


def _output(proc):
  return (f"exit status {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
          f"stderr:\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="session")
def compilation_cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("jax_cache"))


class _Jobs:
  """Each subprocess of this module, started at most once, two at a time in the background.

  ``get(key)`` starts the job (after the one it depends on) and the next few in ORDER, so that
  the next tests' subprocesses run while this test checks files; returns (process, workdir).
  """

  LOOKAHEAD = 3

  def __init__(self, root, compilation_cache):
    self.root, self.cache = root, compilation_cache
    self.pool = ThreadPoolExecutor(max_workers=2)
    self.futures = {}

  def _command(self, key):
    """(module, args, cwd, workdir) of a job."""
    cache = f"--compilation_cache={self.cache}"
    workdir = self.root / key.replace(":", "-").replace("=", "-").replace(",", "-")
    if key in CONFIGS:
      name, args = CONFIGS[key]
      workdir = workdir / name
      return f"experiments.{name}", [*args, f"--workdir={workdir}", cache], ROOT, workdir
    if key in BAD_FLAG_ARGS:
      name, args = BAD_FLAG_ARGS[key]
      workdir = workdir / name
      # Few steps first, so that a wrongly accepted flag trains briefly; the bad flag comes last.
      return (f"experiments.{name}", [*_flags(COMMON[name]), f"--workdir={workdir}", cache, *args],
              ROOT, workdir)
    if key == "empty_workdir":  # run elsewhere, so that a wrongly accepted '' writes nothing here
      workdir.mkdir()
      return "experiments.mlp", [*_flags(COMMON["mlp"]), "--workdir=", cache], workdir, workdir
    if key == "reproduce":
      return ("experiments.reproduce", [f"--workdir={workdir}", "--steps_scale=0.004", "--jobs=2",
                                        cache], ROOT, workdir)
    if key == "reproduce_one_job":
      return ("experiments.reproduce", [f"--workdir={workdir}", "--steps_scale=0.004", "--jobs=1",
                                        "--examples=cvae,mlp,rnn", cache], ROOT, workdir)
    if key == "reproduce_bad_jobs":
      return ("experiments.reproduce", [f"--workdir={workdir}", "--jobs=0", cache], ROOT, workdir)
    if key == "reproduce_unknown":
      return ("experiments.reproduce", [f"--workdir={workdir}", "--examples=mlp,foo", cache], ROOT,
              workdir)
    if key == "helpfull":
      return "experiments.mlp", ["--helpfull"], ROOT, workdir
    raise KeyError(key)

  def _submit(self, key):
    if key in self.futures:
      return
    after = DEPENDS.get(key)
    if after:
      self._submit(after)
    module, args, cwd, workdir = self._command(key)

    def job():
      if after:
        self.futures[after].result()  # shares its compiled programs, read from the cache
      return _launch(module, args, cwd), workdir

    self.futures[key] = self.pool.submit(job)

  def get(self, key):
    self._submit(key)
    i = ORDER.index(key)
    for ahead in ORDER[i + 1:i + 1 + self.LOOKAHEAD]:
      self._submit(ahead)
    return self.futures[key].result()

  def close(self):
    self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, compilation_cache):
  runner = _Jobs(tmp_path_factory.mktemp("runs"), compilation_cache)
  yield runner
  runner.close()


@pytest.fixture(scope="module")
def launched(jobs):
  """A function key -> workdir of CONFIGS[key], run once per module and checked to succeed."""

  def get(key):
    proc, workdir = jobs.get(key)
    assert proc.returncode == 0, _output(proc)
    assert "Traceback" not in proc.stdout + proc.stderr, _output(proc)
    return workdir

  return get


def _predictions(workdir):
  with np.load(workdir / "predictions.npz") as f:
    return {k: f[k] for k in f.files}


def _json(path):
  with open(path) as f:
    return json.load(f)


def _leaves(tree):
  return jax.tree.leaves(tree)


# ----------------------------------------------------------------------------------------------
# Each launcher's run and its files.


@pytest.mark.parametrize("name", EXAMPLES)
def test_run_writes_exactly_its_files(launched, name):
  """A run with few steps exits 0 and writes exactly the seven run files."""
  assert set(os.listdir(launched(name))) == RUN_FILES


@pytest.mark.parametrize("name", EXAMPLES)
def test_predictions_have_the_specified_arrays_and_shapes(launched, name):
  """predictions.npz holds exactly the example's arrays, finite, with the specified shapes."""
  pred = _predictions(launched(name))
  assert {k: v.shape for k, v in pred.items()} == SHAPES[name]
  for k, v in pred.items():
    assert np.all(np.isfinite(v)), k


def test_mlp_predictions_truth_and_positive_std(launched):
  """mlp: x_test is a grid of [0, 1], y_true = x sin(4 pi x) there, y_std and sigma > 0."""
  pred = _predictions(launched("mlp"))
  x = pred["x_test"].astype(np.float64)
  np.testing.assert_allclose(x[:, 0], np.linspace(0.0, 1.0, 1000), atol=1e-6)
  np.testing.assert_allclose(pred["y_true"], x * np.sin(4 * np.pi * x), atol=1e-6)
  assert np.all(pred["y_std"] > 0)
  assert np.all(pred["sigma"] > 0)
  assert np.all((pred["x_train"] >= 0) & (pred["x_train"] <= 1))


@pytest.mark.parametrize("name,lags,windows", [("rnn", 5, 61), ("lstm", 10, 56)])
def test_recurrent_series_and_training_windows(launched, name, lags, windows):
  """rnn/lstm: series = sin(pi t) at t = 0, 0.1, ..., and 66 - lags training windows."""
  pred = _predictions(launched(name))
  t = 0.1 * np.arange(100)
  np.testing.assert_allclose(pred["series"][:, 0], np.sin(np.pi * t), atol=1e-6)
  assert int(pred["n_train_windows"]) == windows == 66 - lags
  assert pred["forecast"].shape == (100 - lags, 1)


def test_cvae_truth_is_the_step(launched):
  """cvae: y_true is 1 up to x = 0.5 and 2.5 after it, on a grid of [0, 1]."""
  pred = _predictions(launched("cvae"))
  x = pred["x_test"][:, 0]
  np.testing.assert_allclose(x, np.linspace(0.0, 1.0, 400), atol=1e-6)
  np.testing.assert_array_equal(pred["y_true"][:, 0], np.where(x <= 0.5, 1.0, 2.5))


@pytest.mark.parametrize("name", EXAMPLES)
def test_metrics_jsonl_has_a_line_per_chunk(launched, name):
  """metrics.jsonl: one line per chunk of log_every steps, with step, loss and steps_per_s."""
  with open(launched(name) / "metrics.jsonl") as f:
    lines = [json.loads(line) for line in f if line.strip()]
  assert [line["step"] for line in lines] == [20, 40]
  for line in lines:
    assert {"step", "loss", "steps_per_s"} <= set(line)
    assert np.isfinite(line["loss"])
    assert line["steps_per_s"] > 0


@pytest.mark.parametrize("name", EXAMPLES)
def test_metrics_json_has_quality_and_wall_times(launched, name):
  """metrics.json: the example's quality figures and wall_s with total, compile and training."""
  m = _json(launched(name) / "metrics.json")
  assert m["example"] == name
  assert m["steps"] == STEPS
  for key in QUALITY[name]:
    assert isinstance(m[key], float) and np.isfinite(m[key]), key
  for key in ("total", "compile", "training"):
    assert isinstance(m["wall_s"][key], float) and m["wall_s"][key] >= 0, key
  assert m["wall_s"]["total"] >= m["wall_s"]["training"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_config_json_records_flags_and_versions(launched, name):
  """config.json: every common flag at the value given, and the python/jax/flax/optax versions."""
  config = _json(launched(name) / "config.json")
  assert config["example"] == name
  for key, value in COMMON[name].items():
    assert config["flags"][key] == value, key
  versions = config["versions"]
  assert versions["python"] == platform.python_version()
  assert versions["jax"] == jax.__version__
  assert versions["flax"] == flax.__version__
  assert versions["optax"] == optax.__version__


@pytest.mark.parametrize("name", EXAMPLES)
def test_figures_are_real_pngs(launched, name):
  """figure.png and loss.png are PNG files over 10 kB; figure.png reads as a plausible image."""
  workdir = launched(name)
  for png in ("figure.png", "loss.png"):
    with open(workdir / png, "rb") as f:
      assert f.read(8) == PNG_MAGIC, png
    assert os.path.getsize(workdir / png) > 10_000, png
  image = matplotlib.image.imread(workdir / "figure.png")
  height, width, channels = image.shape
  assert 300 <= height <= 3000 and 300 <= width <= 3000
  assert channels in (3, 4)


@pytest.mark.parametrize("name", EXAMPLES)
def test_checkpoint_is_msgpack_not_pickle(launched, name):
  """checkpoint.msgpack is a msgpack map {format, sha256, payload}, the payload a msgpack map
  of model/params/arrays/meta whose SHA-256 (hashlib) is the one stored; not a pickle."""
  with open(launched(name) / "checkpoint.msgpack", "rb") as f:
    raw = f.read()
  assert not raw.startswith(b"\x80\x04")
  assert raw[0] in range(0x80, 0x90) or raw[0] in (0xDE, 0xDF)  # a msgpack map
  outer = msgpack.unpackb(raw, raw=False, strict_map_key=False)
  assert set(outer) == {"format", "sha256", "payload"}
  assert outer["format"] == checkpoint.FORMAT
  assert hashlib.sha256(outer["payload"]).hexdigest() == outer["sha256"]
  payload = msgpack.unpackb(outer["payload"], raw=False, strict_map_key=False)
  assert set(payload) == {"model", "params", "arrays", "meta"}


@pytest.mark.parametrize("name", ["mlp", "vae"])
def test_final_checkpoint_is_the_last_training_checkpoint(launched, name):
  """checkpoint.msgpack is a second name of the newest training checkpoint, which holds the same
  state at the last step: the history is encoded and written once, not twice."""
  workdir = launched(name)
  step, newest = saving.checkpoints(str(workdir))[0]
  assert step == _json(workdir / "metrics.json")["steps"]
  assert os.path.samefile(workdir / "checkpoint.msgpack", newest)


@pytest.mark.parametrize("name", EXAMPLES)
def test_checkpoint_reloads_the_launchers_model(launched, name):
  """checkpoint.load gives the launcher's model, params shaped like its init, the run's flags."""
  workdir = launched(name)
  model, params, _, meta = checkpoint.load(workdir / "checkpoint.msgpack")
  assert model == examples.PREPARERS[name]().model
  shapes = jax.eval_shape(lambda k: model.init(k, jnp.float32), jax.random.key(0))
  assert jax.tree.structure(params) == jax.tree.structure(shapes)
  assert [a.shape for a in _leaves(params)] == [s.shape for s in _leaves(shapes)]
  assert meta["example"] == name and meta["ensemble"] == 1
  assert meta["flags"] == _json(workdir / "config.json")["flags"]


def _reloaded_mlp(workdir):
  """(model, params, predictions, standardised x_test, y's standardiser) of an mlp run."""
  model, params, arrays, _ = checkpoint.load(workdir / "checkpoint.msgpack")
  pred = _predictions(workdir)
  sx, sy = arrays["standardisers"]["x"], arrays["standardisers"]["y"]
  return model, params, pred, jnp.asarray((pred["x_test"] - sx["mean"]) / sx["std"]), sy


def test_mlp_checkpoint_reproduces_predictions(launched):
  """mlp: standardise x_test, predict with the reloaded params, un-standardise: y_mean again."""
  model, params, pred, x, sy = _reloaded_mlp(launched("mlp"))
  F, log_sigma = model.predict(params, x)
  np.testing.assert_allclose(np.asarray(F) * sy["std"] + sy["mean"], pred["y_mean"], rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(np.exp(np.asarray(log_sigma)) * sy["std"], pred["y_std"], rtol=1e-5)


@pytest.mark.parametrize("name,lags", [("rnn", 5), ("lstm", 10)])
def test_recurrent_checkpoint_reproduces_forecast(launched, name, lags):
  """rnn/lstm: closed_loop of the reloaded params from the first window gives the forecast."""
  workdir = launched(name)
  model, params, _, _ = checkpoint.load(workdir / "checkpoint.msgpack")
  pred = _predictions(workdir)
  start = jnp.asarray(pred["series"][None, :lags])
  fc = forecast.closed_loop(model, params, start, 100 - lags)
  np.testing.assert_allclose(np.asarray(fc[0]), pred["forecast"], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Determinism, ensembles and the CVAE variant.


def test_rnn_is_deterministic(launched):
  """Two rnn runs with the same seed: bitwise-identical predictions and checkpoint params."""
  first, second = launched("rnn"), launched("rnn_again")
  a, b = _predictions(first), _predictions(second)
  assert set(a) == set(b)
  for k in a:
    assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
  _, pa, _, _ = checkpoint.load(first / "checkpoint.msgpack")
  _, pb, _, _ = checkpoint.load(second / "checkpoint.msgpack")
  assert jax.tree.structure(pa) == jax.tree.structure(pb)
  for x, y in zip(_leaves(pa), _leaves(pb)):
    assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


@pytest.mark.parametrize("key,members", [
    ("mlp_ensemble", {"y_mean_members": (3, 1000, 1), "y_std_members": (3, 1000, 1),
                      "sigma_members": (3, 1)}),
    ("rnn_ensemble", {"forecast_members": (3, 95, 1)}),
    ("cvae_ensemble", {"sample_means_members": (3, 100, 400, 1)}),
])
def test_ensemble_members_have_a_leading_axis(launched, key, members):
  """--ensemble=3: the _members arrays have a leading axis of 3; the others keep their shapes."""
  workdir = launched(key)
  name = CONFIGS[key][0]
  pred = _predictions(workdir)
  assert {k: v.shape for k, v in pred.items()} == {**SHAPES[name], **members}
  _, params, _, meta = checkpoint.load(workdir / "checkpoint.msgpack")
  assert meta["ensemble"] == 3
  assert _json(workdir / "config.json")["flags"]["ensemble"] == 3
  assert all(a.shape[0] == 3 for a in _leaves(params))


def test_mlp_ensemble_is_the_mixture_of_its_members(launched):
  """mlp --ensemble=3: y_mean is the members' mean and y_std^2 the mixture's variance."""
  pred = {k: v.astype(np.float64) for k, v in _predictions(launched("mlp_ensemble")).items()}
  mu, sd = pred["y_mean_members"], pred["y_std_members"]
  np.testing.assert_allclose(pred["y_mean"], mu.mean(0), rtol=1e-5, atol=1e-6)
  variance = np.mean(sd**2 + mu**2, axis=0) - pred["y_mean"]**2
  np.testing.assert_allclose(pred["y_std"]**2, variance, rtol=1e-4, atol=1e-6)


def test_mlp_ensemble_checkpoint_reproduces_members(launched):
  """mlp --ensemble=3: each reloaded member's prediction is its y_mean_members slice."""
  model, params, pred, x, sy = _reloaded_mlp(launched("mlp_ensemble"))
  F = np.asarray(jax.vmap(lambda p: model.predict(p, x)[0])(params))
  np.testing.assert_allclose(F * sy["std"] + sy["mean"], pred["y_mean_members"], rtol=1e-5,
                             atol=1e-6)


def test_mlp_ensemble_split_across_cpu_devices_matches_one_device(launched):
  """mlp --ensemble=4 by default splits the members across min(2, cores) CPU devices (recorded in
  config.json); its predictions equal --cpu_devices=1's to float rounding."""
  split, one = launched("mlp_ensemble4"), launched("mlp_ensemble4_one_device")
  from dljax import distributed  # noqa: PLC0415

  expected = distributed.cpu_devices_for(4)
  assert len(_json(split / "config.json")["versions"]["devices"]) == expected
  assert len(_json(one / "config.json")["versions"]["devices"]) == 1
  a, b = _predictions(split), _predictions(one)
  for k in ("y_mean_members", "y_std_members"):
    np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_rnn_ensemble_forecast_is_the_members_mean(launched):
  """rnn --ensemble=3: the forecast is the mean of the members' forecasts."""
  pred = _predictions(launched("rnn_ensemble"))
  np.testing.assert_allclose(pred["forecast"], pred["forecast_members"].mean(0), rtol=1e-5,
                             atol=1e-6)


def test_cvae_standard_variant(launched):
  """cvae --variant=standard runs, and its checkpoint's model has variant 'standard'."""
  workdir = launched("cvae_standard")
  assert set(os.listdir(workdir)) == RUN_FILES
  model, _, _, _ = checkpoint.load(workdir / "checkpoint.msgpack")
  assert model.variant == "standard"
  assert model == examples.prepare_cvae(variant="standard").model
  assert _json(workdir / "config.json")["flags"]["variant"] == "standard"


# ----------------------------------------------------------------------------------------------
# Bad flags: one line on stderr naming the flag, non-zero exit, no traceback, nothing written.

BAD_FLAGS = [
    pytest.param("mlp", ["--steps=0"], "--steps", id="mlp-steps=0"),
    pytest.param("mlp", ["--batch_size=0"], "--batch_size", id="mlp-batch_size=0"),
    pytest.param("mlp", ["--batch_size=101"], "--batch_size", id="mlp-batch_size=101"),
    pytest.param("mlp", ["--learning_rate=0"], "--learning_rate", id="mlp-learning_rate=0"),
    pytest.param("mlp", ["--ensemble=0"], "--ensemble", id="mlp-ensemble=0"),
    pytest.param("mlp", ["--cpu_devices=0"], "--cpu_devices", id="mlp-cpu_devices=0"),
    pytest.param("mlp", ["--ensemble=4", "--cpu_devices=3"], "--cpu_devices",
                 id="mlp-cpu_devices=3-ensemble=4"),
    pytest.param("mlp", ["--hidden=50,abc"], "--hidden", id="mlp-hidden=50,abc"),
    pytest.param("mlp", ["--hidden=0"], "--hidden", id="mlp-hidden=0"),
    pytest.param("rnn", ["--lags=66"], "--lags", id="rnn-lags=66"),
    pytest.param("rnn", ["--lags=0"], "--lags", id="rnn-lags=0"),
    pytest.param("lstm", ["--lags=100"], "--lags", id="lstm-lags=100"),
    pytest.param("vae", ["--batch_size=1001"], "--batch_size", id="vae-batch_size=1001"),
    pytest.param("vae", ["--latent=0"], "--latent", id="vae-latent=0"),
    pytest.param("cvae", ["--variant=foo"], "--variant", id="cvae-variant=foo"),
    pytest.param("rnn", ["unexpected_positional"], "unexpected_positional", id="rnn-positional"),
    pytest.param("mlp", ["--seed=-1"], "--seed", id="mlp-seed=-1"),
    pytest.param("mlp", ["--n_train=0"], "--n_train", id="mlp-n_train=0"),
    pytest.param("mlp", ["--steps=abc"], "--steps", id="mlp-steps=abc"),
    pytest.param("mlp", ["--x_range=2,1"], "--x_range", id="mlp-x_range=2,1"),
    pytest.param("mlp", ["--x_range=a"], "--x_range", id="mlp-x_range=a"),
    pytest.param("mlp", ["--x_range=-1e30,1e30"], "--x_range", id="mlp-x_range=huge"),
    pytest.param("vae", ["--bogus=1"], "bogus", id="vae-unknown-flag"),
    pytest.param("mlp", ["--noise=-1"], "--noise", id="mlp-noise=-1"),
    pytest.param("cvae", ["--noise=nan"], "--noise", id="cvae-noise=nan"),
    pytest.param("rnn", ["--checkpoint_every=-1"], "--checkpoint_every", id="rnn-checkpoint_every=-1"),
    pytest.param("vae", ["--keep_checkpoints=0"], "--keep_checkpoints", id="vae-keep_checkpoints=0"),
    pytest.param("lstm", ["--steps=-5"], "--steps", id="lstm-steps=-5"),
    pytest.param("rnn", ["--batch_size=-1"], "--batch_size", id="rnn-batch_size=-1"),
    pytest.param("cvae", ["--learning_rate=-0.1"], "--learning_rate", id="cvae-learning_rate=-0.1"),
    pytest.param("vae", ["--learning_rate=inf"], "--learning_rate", id="vae-learning_rate=inf"),
    pytest.param("vae", ["--encoder=100,-3"], "--encoder", id="vae-encoder=100,-3"),
    pytest.param("cvae", ["--hidden=0,50"], "--hidden", id="cvae-hidden=0,50"),
    pytest.param("lstm", ["--hidden=0"], "--hidden", id="lstm-hidden=0"),
    pytest.param("cvae", ["--ensemble=-2"], "--ensemble", id="cvae-ensemble=-2"),
    pytest.param("rnn", ["--lags=-3"], "--lags", id="rnn-lags=-3"),
    pytest.param("mlp", ["--log_every=0"], "--log_every", id="mlp-log_every=0"),
    pytest.param("vae", ["--n_train=1"], "--n_train", id="vae-n_train=1"),
    pytest.param("cvae", ["--batch_size=101"], "--batch_size", id="cvae-batch_size=101"),
    pytest.param("vae", ["--beta=-1"], "--beta", id="vae-beta=-1"),
    pytest.param("mlp", ["--noise=inf"], "--noise", id="mlp-noise=inf"),
]
BAD_FLAG_ARGS = {f"bad:{p.id}": p.values[:2] for p in BAD_FLAGS}


def _one_line(proc):
  """stderr's non-empty lines, checked to be exactly one (after a non-zero exit, no traceback)."""
  assert proc.returncode != 0, _output(proc)
  assert "Traceback" not in proc.stdout + proc.stderr, _output(proc)
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1, _output(proc)
  return lines[0]


@pytest.mark.parametrize("name,args,flag", BAD_FLAGS)
def test_bad_flag_fails_with_one_line(request, jobs, name, args, flag):
  """A bad flag: non-zero exit, exactly one stderr line naming it, no traceback, no workdir."""
  proc, workdir = jobs.get(f"bad:{request.node.callspec.id}")
  line = _one_line(proc)
  assert flag in line
  if flag == "--variant":
    assert "tutorial" in line and "standard" in line  # says what is expected
  assert not workdir.exists()


def test_empty_workdir_fails_with_one_line(jobs):
  """--workdir= (empty): a one-line error naming --workdir, not a traceback."""
  proc, cwd = jobs.get("empty_workdir")
  assert "--workdir" in _one_line(proc)
  assert os.listdir(cwd) == []


def test_output_folders_that_cannot_be_written_fail_before_any_work(tmp_path):
  """A workdir or cache under a file, a cache that is a file, reproduce's per-example folder
  taken by a file, and speed's bad flags: one line naming the flag, exit 2, nothing written."""
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  taken = tmp_path / "taken"
  taken.mkdir()
  (taken / "rnn").write_text("x")
  cases = [
      ("experiments.mlp", [f"--workdir={a_file}/sub"], "--workdir"),
      ("experiments.mlp", [f"--workdir={tmp_path}/w", f"--compilation_cache={a_file}"],
       "--compilation_cache"),
      ("experiments.reproduce", [f"--workdir={taken}", "--steps_scale=0.004"], "--workdir"),
      ("experiments.reproduce", [f"--workdir={tmp_path}/r", "--seed=-1"], "--seed"),
      ("experiments.benchmark", [f"--workdir={a_file}", "--tiny"], "--workdir"),
      ("experiments.speed", ["--repeats=0"], "--repeats"),
      ("experiments.speed", ["--examples=mlp,foo"], "--examples"),
      ("experiments.speed", ["--repeats=abc"], "--repeats"),
      ("experiments.speed", ["--seed=-1"], "--seed"),
      ("experiments.speed", [f"--json={a_file}/x.json"], "--json"),
  ]
  with ThreadPoolExecutor(max_workers=2) as pool:
    procs = list(pool.map(lambda c: _launch(c[0], c[1]), cases))
  for (module, args, flag), proc in zip(cases, procs):
    assert proc.returncode == 2, (module, args, _output(proc))
    assert flag in _one_line(proc), (module, args)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "taken"]
  assert sorted(p.name for p in taken.iterdir()) == ["rnn"]


# ----------------------------------------------------------------------------------------------
# reproduce and --helpfull.


def test_reproduce_prints_a_table_row_per_example(jobs):
  """reproduce exits 0 and prints a Markdown table with a row for each of the five examples."""
  proc, _ = jobs.get("reproduce")
  assert proc.returncode == 0, _output(proc)
  assert "Traceback" not in proc.stdout + proc.stderr
  lines = proc.stdout.splitlines()
  assert lines[0].startswith("| example |") and lines[1].startswith("|---|")
  rows = [line for line in lines if line.startswith("| ") and not line.startswith("| example")]
  assert [row.split("|")[1].strip() for row in rows] == list(EXAMPLES)


def test_reproduce_writes_summary_and_each_example(jobs):
  """reproduce writes summary.md embedding the five figures, and each example's run files."""
  proc, workdir = jobs.get("reproduce")
  assert proc.returncode == 0, _output(proc)
  summary = (workdir / "summary.md").read_text()
  for name in EXAMPLES:
    assert f"![{name}]({name}/figure.png)" in summary
    assert f"| {name} |" in summary
    assert set(os.listdir(workdir / name)) == RUN_FILES
    assert _json(workdir / name / "metrics.json")["example"] == name
  assert set(os.listdir(workdir)) == {"summary.md", *EXAMPLES}


def test_reproduce_unknown_example_fails_with_one_line(jobs):
  """reproduce --examples=mlp,foo: non-zero exit, one line naming --examples, nothing written."""
  proc, workdir = jobs.get("reproduce_unknown")
  assert "--examples" in _one_line(proc)
  assert not workdir.exists()


def test_reproduce_files_do_not_depend_on_jobs(jobs):
  """Two processes (--jobs=2) and one (--jobs=1) write the same predictions and checkpoints,
  byte for byte."""
  two, one = jobs.get("reproduce"), jobs.get("reproduce_one_job")
  assert one[0].returncode == 0, _output(one[0])
  for name in ("cvae", "mlp", "rnn"):
    for f in ("predictions.npz", "checkpoint.msgpack"):
      assert (two[1] / name / f).read_bytes() == (one[1] / name / f).read_bytes(), (name, f)


def test_reproduce_bad_jobs_fails_with_one_line(jobs):
  """reproduce --jobs=0: non-zero exit, one line naming --jobs, nothing written."""
  proc, workdir = jobs.get("reproduce_bad_jobs")
  assert "--jobs" in _one_line(proc)
  assert not workdir.exists()


def test_helpfull_documents_every_flag(jobs):
  """mlp --helpfull documents every common flag, --workdir, --compilation_cache and --hidden."""
  proc, _ = jobs.get("helpfull")
  assert "Traceback" not in proc.stdout + proc.stderr
  for flag in ("seed", "steps", "batch_size", "learning_rate", "log_every", "ensemble", "workdir",
               "compilation_cache", "hidden", "n_train", "noise"):
    assert f"--{flag}:" in proc.stdout, flag


def test_every_flag_of_a_launcher_is_a_documented_argument_of_its_example():
  """Each launcher's flags are its prepare_*'s arguments before ``*``: every one has a help line
  under ``Args:`` (its own docstring's or, for the common ones, the module's), and the ones after
  ``*`` (e.g. iwae_ks) are not flags."""
  import inspect  # noqa: PLC0415

  from experiments import common  # noqa: PLC0415

  for name in EXAMPLES:
    fn = examples.PREPARERS[name]
    helps = {**common.args_help(examples.__doc__),
             **common.args_help(inspect.getdoc(getattr(fn, "func", fn)))}
    names = [p.name for p in common.flag_parameters(fn)]
    assert {"seed", "steps", "batch_size", "learning_rate", "log_every", "ensemble"} <= set(names)
    assert all(helps.get(n) for n in names), (name, [n for n in names if not helps.get(n)])
    assert "iwae_ks" not in names and "n_points" not in names and "cell" not in names


# Every job in the order the tests above ask for them (what _Jobs starts ahead), except that the
# long reproduce run starts early to overlap the others; and the runs a job waits for: the second
# rnn run reads the first's compiled programs from the cache.
ORDER = [*EXAMPLES, "reproduce", *[k for k in CONFIGS if k not in EXAMPLES], *BAD_FLAG_ARGS,
         "empty_workdir", "reproduce_unknown", "reproduce_one_job", "reproduce_bad_jobs",
         "helpfull"]
DEPENDS = {"rnn_again": "rnn"}


def test_loss_figure_draws_a_term_equal_to_the_loss_in_the_loss_panel(monkeypatch, tmp_path):
  """loss.png: a panel per term, but a term equal to the loss at every step (MSE's ``mse``)
  shares the loss's panel; a term that differs once gets its own; bands per member."""
  from experiments import figures

  drawn = []
  monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(
      [(ax.get_title(), len(ax.collections)) for ax in fig.axes]))
  loss = np.random.default_rng(0).random((2, 900)).astype(np.float32) + 0.1
  other = loss.copy()
  other[1, 5] += 1.0
  figures.loss_curves({"loss": loss, "mse": loss.copy()}, str(tmp_path / "a.png"))
  figures.loss_curves({"loss": loss, "mse": other, "kl": loss}, str(tmp_path / "b.png"))
  assert drawn == [[("loss = mse", 2)], [("loss = kl", 2), ("mse", 2)]]
