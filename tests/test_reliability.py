"""Checkpoints, resumption, kills, signals and divergence (issue 6).

Library level: a checkpoint's checksum catches truncation and altered bytes, loading never
unpickles, a saved and restored training state continues bitwise, and a non-finite loss or
parameter stops ``fit`` naming the step and the term (checked against an independent replay of
the minibatch draws). Launcher level (subprocesses of ``python -m experiments.mlp``): SIGKILL
at random moments then ``--resume`` ends bitwise equal to an uninterrupted run; SIGINT and
SIGTERM write a checkpoint and exit 128 + signal; corrupt checkpoints are skipped with one line;
a checkpoint of another configuration or example is refused; divergence keeps the last finite
checkpoint and exits 1.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import nan_after

from dljax import checkpoint
from dljax import models as M
from dljax import objectives as O
from dljax import run
from dljax import sampler as S
from dljax import train as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ----------------------------------------------------------------------------------------------
# Library: checkpoint files.


def _saved(tmp_path, name="c.msgpack"):
  model = M.mlp(1, (8,), 1)
  params = model.init(jax.random.PRNGKey(0))
  path = tmp_path / name
  checkpoint.save(path, model, params, {"s": {"mean": np.ones((1, 1))}}, {"note": "x"})
  return path, model, params


def test_checkpoint_round_trip_is_exact(tmp_path):
  path, model, params = _saved(tmp_path)
  loaded_model, loaded, arrays, meta = checkpoint.load(path)
  assert loaded_model == model and meta == {"note": "x"}
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
    assert np.asarray(a).tobytes() == b.tobytes()
  assert arrays["s"]["mean"].tolist() == [[1.0]]


@pytest.mark.parametrize("keep", [0, 1, 17, 0.5, 0.9, -1])
def test_truncated_checkpoint_is_detected(tmp_path, keep):
  """A file cut at any length is a CheckpointError naming the file, never a silent result."""
  path, _, _ = _saved(tmp_path)
  blob = path.read_bytes()
  n = keep if isinstance(keep, int) and keep >= 0 else int(len(blob) * keep) if keep > 0 else len(blob) - 1
  path.write_bytes(blob[:n])
  with pytest.raises(checkpoint.CheckpointError, match=str(path)):
    checkpoint.load(path)


@pytest.mark.parametrize("where", [0.3, 0.6, 0.95])
def test_altered_byte_fails_the_checksum(tmp_path, where):
  """One flipped bit inside the parameters' bytes: the SHA-256 no longer matches."""
  path, _, _ = _saved(tmp_path)
  blob = bytearray(path.read_bytes())
  blob[int(len(blob) * where)] ^= 0x01
  path.write_bytes(bytes(blob))
  with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
    checkpoint.load(path)


def _open_fds():
  return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_a_failed_save_leaves_no_file_and_no_open_descriptor(tmp_path, monkeypatch):
  """A filesystem that refuses chmod still gets its checkpoint (mode left at mkstemp's 0600); a
  write that fails leaves the previous file intact, no temporary file and no open descriptor."""
  def refuse(*args):
    raise PermissionError(1, "Operation not permitted")

  monkeypatch.setattr(os, "fchmod", refuse)
  monkeypatch.setattr(os, "chmod", refuse)
  path, model, params = _saved(tmp_path)
  assert checkpoint.load(path)[0] == model
  before, old = _open_fds(), path.read_bytes()
  monkeypatch.setattr(os, "fsync", refuse)
  for _ in range(5):
    with pytest.raises(PermissionError):
      checkpoint.save(path, model, params)
  assert _open_fds() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["c.msgpack"]
  assert path.read_bytes() == old


def test_remove_temporaries_takes_only_what_a_killed_write_leaves(tmp_path):
  """A write killed before its rename leaves .tmp-*; remove_temporaries deletes those and nothing
  else (checkpoints, other files, a folder, an absent folder are left alone)."""
  path, model, _ = _saved(tmp_path)
  for name in (".tmp-abc123-c.msgpack", ".tmp-x-figure.png", "ckpt-000000010.msgpack",
               "tmp-a.json", "notes.msgpack"):
    (tmp_path / name).write_bytes(b"x")
  (tmp_path / ".tmp-folder").mkdir()
  removed = checkpoint.remove_temporaries(tmp_path)
  assert [os.path.basename(p) for p in removed] == [".tmp-abc123-c.msgpack", ".tmp-x-figure.png"]
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      ".tmp-folder", "c.msgpack", "ckpt-000000010.msgpack", "notes.msgpack", "tmp-a.json"]
  assert checkpoint.load(path)[0] == model
  assert checkpoint.remove_temporaries(tmp_path / "absent") == []


@pytest.mark.parametrize("links", [True, False])
def test_link_or_copy_names_the_same_bytes_atomically(tmp_path, monkeypatch, links):
  """link_or_copy makes ``path`` the same file as ``source`` (a hard link), replacing an older
  ``path`` whole; where hard links fail, a copy of the same bytes; no temporary is left."""
  source, model, _ = _saved(tmp_path)
  (tmp_path / "out").mkdir()
  target = tmp_path / "out" / "final.msgpack"
  target.write_bytes(b"an older file")
  if not links:
    monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError(18, "no links")))
  checkpoint.link_or_copy(source, target)
  assert target.read_bytes() == source.read_bytes()
  assert os.path.samefile(source, target) == links
  assert [p.name for p in (tmp_path / "out").iterdir()] == ["final.msgpack"]
  assert checkpoint.load(target)[0] == model


class _Marker:
  def __reduce__(self):
    return (open, (os.environ["DLJAX_TEST_MARKER"], "w"))


def test_a_pickle_is_refused_without_being_executed(tmp_path, monkeypatch):
  """A pickle whose unpickling would create a file: refused, and the file is never made."""
  marker = tmp_path / "executed"
  monkeypatch.setenv("DLJAX_TEST_MARKER", str(marker))
  path = tmp_path / "evil.msgpack"
  path.write_bytes(pickle.dumps(_Marker()))
  with pytest.raises(checkpoint.CheckpointError):
    checkpoint.load(path)
  assert not marker.exists()


def test_train_state_round_trip_continues_bitwise(tmp_path):
  """fit 60 steps == fit 25, save the state (params, Adam's moments and count, step), load, 35."""
  model = M.mlp(1, (16,), 1)
  rng = np.random.default_rng(0)
  data = {"x": rng.normal(size=(40, 1)).astype(np.float32),
          "y": rng.normal(size=(40, 1)).astype(np.float32)}
  optimizer = T.adam(1e-2, 60)  # a schedule: its count must come back too
  kw = dict(batch_size=8, seed=[3, 4], optimizer=optimizer, log_every=10)
  objective = O.gaussian_nll(model)
  whole = T.fit(model, objective, data, steps=60, **kw)
  first = T.fit(model, objective, data, steps=25, **kw)
  path = tmp_path / "t.msgpack"
  checkpoint.save(path, model, first.params, {"train": checkpoint.train_arrays(
      first.state.step, first.state.opt_state, first.history)})
  _, params, arrays, _ = checkpoint.load(path)
  params = jax.tree.map(jnp.asarray, params)
  state = T.TrainState(jnp.asarray(arrays["train"]["step"]), params,
                       checkpoint.restore_opt_state(optimizer, params, arrays["train"]["opt_state"]))
  rest = T.fit(model, objective, data, steps=35, state=state, **kw)
  for a, b in zip(jax.tree.leaves(whole.state), jax.tree.leaves(rest.state)):
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
  history = np.concatenate([arrays["train"]["history"]["loss"], rest.history["loss"]], axis=-1)
  assert history.tobytes() == whole.history["loss"].tobytes()


# ----------------------------------------------------------------------------------------------
# Library: divergence.


class _Poisoned:
  """The MSE plus a term ``poison`` that is NaN whenever the minibatch holds row ``row``."""

  def __init__(self, model, marker):
    self.inner, self.marker = O.mse(model), marker

  def __hash__(self):
    return hash((self.inner, self.marker))

  def __eq__(self, other):
    return isinstance(other, _Poisoned) and (self.inner, self.marker) == (other.inner, other.marker)

  def __call__(self, params, batch, key=None):
    loss, terms = self.inner(params, batch, key)
    poison = jnp.where(jnp.any(batch["y"] == self.marker), jnp.nan, 0.0)
    return loss + poison, {**terms, "poison": poison}


def _data(n=50):
  rng = np.random.default_rng(1)
  return {"x": rng.normal(size=(n, 1)).astype(np.float32),
          "y": rng.normal(size=(n, 1)).astype(np.float32)}


def test_nan_parameters_stop_fit_at_the_first_affected_step():
  """Update 38 makes the parameters NaN: the loss of step 39 is the first non-finite one; the
  callback saw only the chunks that ended at steps 10, 20 and 30, all finite."""
  model, data = M.mlp(1, (8,), 1), _data()
  seen = []
  callback = lambda state, terms, s: seen.append((int(state.step), all(
      bool(np.all(np.isfinite(np.asarray(a)))) for a in jax.tree.leaves(state.params))))
  optimizer = optax.chain(optax.adam(1e-3), nan_after(37))
  with pytest.raises(T.DivergenceError, match="step 39: non-finite loss terms 'loss', 'mse'$") as info:
    T.fit(model, O.mse(model), data, steps=100, batch_size=5, optimizer=optimizer, log_every=10,
          callback=callback)
  assert info.value.step == 39 and info.value.name == "mse"
  assert seen == [(10, True), (20, True), (30, True)]


def test_nan_parameters_at_a_chunks_end_are_caught_by_the_parameter_check():
  """Update 40 (the last of the 4th chunk) makes them NaN: the parameter check names step 40."""
  model, data = M.mlp(1, (8,), 1), _data()
  optimizer = optax.chain(optax.adam(1e-3), nan_after(39))
  with pytest.raises(T.DivergenceError, match=r"by step 40: parameter \['A'\] is not finite"):
    T.fit(model, O.mse(model), data, steps=100, batch_size=5, optimizer=optimizer, log_every=10)


@pytest.mark.parametrize("seed", [1, 2, 3])  # first drawn at steps 13, 2 and 4 (seeds 0 and 5: 1)
def test_a_nan_loss_term_names_the_term_and_the_step(seed):
  """The poisoned row is first drawn at a step found by replaying the minibatch draws in NumPy
  order (fold_in(train_key, t) for t = 0, 1, ...); fit names that step and the term 'poison'."""
  model, data = M.mlp(1, (8,), 1), _data()
  row, batch_size = 17, 5
  objective = _Poisoned(model, float(data["y"][row, 0]))
  _, train_key = T.keys_from_seed(seed)
  first = None
  for t in range(1000):
    batch_key = jax.random.split(jax.random.fold_in(train_key, t))[0]
    if row in np.asarray(S.minibatch_indices(batch_key, 50, batch_size)).tolist():
      first = t + 1  # steps are counted from 1
      break
  assert first is not None and first > 1
  with pytest.raises(T.DivergenceError, match=f"step {first}: non-finite loss terms 'loss', 'poison'$"):
    T.fit(model, objective, data, steps=1000, batch_size=batch_size, seed=seed, log_every=7)


def test_an_ensemble_with_one_diverging_member_stops():
  """Seed 6's draws reach the poisoned row first (step 9; seed 4's at 10): the ensemble of the
  two stops at that step."""
  model, data = M.mlp(1, (8,), 1), _data()
  objective = _Poisoned(model, float(data["y"][17, 0]))
  singles = []
  for seed in (4, 6):
    with pytest.raises(T.DivergenceError) as info:
      T.fit(model, objective, data, steps=1000, batch_size=5, seed=seed, log_every=7)
    singles.append(info.value.step)
  with pytest.raises(T.DivergenceError) as info:
    T.fit(model, objective, data, steps=1000, batch_size=5, seed=[4, 6], log_every=7)
  assert singles[1] < singles[0] and info.value.step == singles[1]


# ----------------------------------------------------------------------------------------------
# Library: dljax.run, training in a folder of its own.


def _run_kwargs():
  model = M.mlp(1, (8,), 1)
  return dict(model=model, objective=O.mse(model), data=_data(), steps=100, batch_size=5,
              seed=[1, 2], log_every=10, checkpoint_every=20, optimizer=T.adam(1e-2, 100))


def _same_state(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_library_run_stops_on_sigterm_then_resumes_bitwise(tmp_path):
  """SIGTERM during chunk 3: dljax.run.fit writes that chunk's checkpoint, raises Stopped (no
  exit) and puts the previous handler back; resume=True then ends bitwise as an uninterrupted
  run: state, history from step 1, metrics.jsonl's steps."""
  kw = _run_kwargs()
  whole = run.fit(workdir=tmp_path / "whole", **kw)

  def terminate_at_30(state, terms, seconds):
    if int(np.max(np.asarray(state.step))) == 30:
      os.kill(os.getpid(), signal.SIGTERM)

  before = signal.getsignal(signal.SIGTERM)
  with pytest.raises(run.Stopped) as stop:
    run.fit(workdir=tmp_path / "cut", callback=terminate_at_30, **kw)
  assert (stop.value.signum, stop.value.step) == (signal.SIGTERM, 30)
  assert stop.value.path == run.checkpoint_path(str(tmp_path / "cut"), 30)
  assert [s for s, _ in run.checkpoints(tmp_path / "cut")] == [30, 20]
  assert signal.getsignal(signal.SIGTERM) is before
  rest = run.fit(workdir=tmp_path / "cut", resume=True, **kw)
  assert (whole.start_step, rest.start_step) == (0, 30)
  _same_state(whole.state, rest.state)
  assert whole.history["loss"].shape == (2, 100)
  assert rest.history["loss"].tobytes() == whole.history["loss"].tobytes()
  steps = lambda w: [json.loads(line)["step"] for line in open(w / "metrics.jsonl")]
  assert steps(tmp_path / "cut") == steps(tmp_path / "whole") == list(range(10, 101, 10))
  assert [s for s, _ in run.checkpoints(tmp_path / "cut")] == [100, 80, 60]


def test_library_run_refuses_a_checkpoint_of_another_run(tmp_path, capsys):
  """resume=True with another config value or another model: ResumeError naming the key and both
  values, the folder untouched; a corrupt newest checkpoint is skipped with a warning line."""
  kw = dict(_run_kwargs(), steps=40)
  run.fit(workdir=tmp_path, config={"lr": 1}, **kw)
  before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
  with pytest.raises(run.ResumeError) as info:
    run.fit(workdir=tmp_path, resume=True, config={"lr": 2}, **kw)
  assert (info.value.key, info.value.stored, info.value.current) == ("lr", 1, 2)
  other = M.mlp(1, (9,), 1)
  with pytest.raises(run.ResumeError, match="holds a model") as info:
    run.fit(workdir=tmp_path, resume=True, config={"lr": 1},
            **dict(kw, model=other, objective=O.mse(other)))
  assert info.value.key == "model"
  assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
  newest = run.checkpoints(tmp_path)[0][1]
  with open(newest, "r+b") as f:
    f.truncate(100)
  capsys.readouterr()
  resumed = run.fit(workdir=tmp_path, resume=True, config={"lr": 1}, **kw)
  assert resumed.start_step == 20
  warnings = capsys.readouterr().err.splitlines()
  assert len(warnings) == 1 and warnings[0].startswith("warning:") and newest in warnings[0]


# ----------------------------------------------------------------------------------------------
# Launchers: kills, signals, corrupt checkpoints, other configurations, divergence.

RUN = ["--steps=40000", "--log_every=500", "--checkpoint_every=2000", "--keep_checkpoints=3",
       "--hidden=20,20"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("jax_cache"))


def _cmd(workdir, cache, *extra, module="experiments.mlp"):
  return [sys.executable, "-m", module, f"--workdir={workdir}", f"--compilation_cache={cache}",
          *RUN, *extra]


def _run(workdir, cache, *extra, module="experiments.mlp"):
  return subprocess.run(_cmd(workdir, cache, *extra, module=module), cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def _ok(proc):
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def _lines(workdir):
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return sum(1 for line in f if line.endswith("\n"))


def _interrupt(workdir, cache, after_lines, delay, sig, *extra):
  """Starts the run, waits for ``after_lines`` lines of metrics.jsonl and ``delay`` seconds more,
  sends ``sig``; returns the process once it has exited."""
  proc = subprocess.Popen(_cmd(workdir, cache, *extra), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 300
  while _lines(workdir) < after_lines and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.002)
  time.sleep(delay)
  proc.send_signal(sig)
  proc.stdout_text, proc.stderr_text = proc.communicate(timeout=300)
  return proc


def _final_state(workdir):
  _, params, arrays, meta = checkpoint.load(os.path.join(workdir, "checkpoint.msgpack"))
  return params, arrays["train"], meta


def _assert_same_run(a, b):
  """Bitwise: final parameters, Adam state, step, loss history, predictions, metrics.jsonl."""
  pa, ta, _ = _final_state(a)
  pb, tb, _ = _final_state(b)
  for x, y in zip(jax.tree.leaves((pa, ta)), jax.tree.leaves((pb, tb)), strict=True):
    assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
  with np.load(os.path.join(a, "predictions.npz")) as fa, \
       np.load(os.path.join(b, "predictions.npz")) as fb:
    assert {k: fa[k].tobytes() for k in fa} == {k: fb[k].tobytes() for k in fb}
  drop_rate = lambda path: [line.split(", ", 2)[::2] for line in open(path)]  # steps/s varies
  assert drop_rate(os.path.join(a, "metrics.jsonl")) == drop_rate(os.path.join(b, "metrics.jsonl"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache):
  workdir = tmp_path_factory.mktemp("reference")
  _ok(_run(workdir, cache))
  return str(workdir)


def test_uninterrupted_run_keeps_the_newest_checkpoints(reference):
  names = sorted(os.listdir(os.path.join(reference, "checkpoints")))
  assert names == ["ckpt-000036000.msgpack", "ckpt-000038000.msgpack", "ckpt-000040000.msgpack"]


KILL_POINTS = np.random.default_rng(20261125)


@pytest.mark.parametrize("kills", [1, 1, 2], ids=["kill-a", "kill-b", "kill-twice"])
def test_sigkill_then_resume_is_bitwise_equal(tmp_path, cache, reference, kills):
  """SIGKILL at a random moment of training (after a random number of progress lines plus a
  random delay, so also in the middle of a checkpoint write), then --resume to the end."""
  for i in range(kills):
    after, delay = int(KILL_POINTS.integers(0, 70)), float(KILL_POINTS.uniform(0, 0.05))
    proc = _interrupt(tmp_path, cache, after, delay, signal.SIGKILL, *(["--resume"] if i else []))
    assert proc.returncode == -signal.SIGKILL, proc.stderr_text[-2000:]
    if after == 0 or not os.path.exists(tmp_path / "metrics.jsonl"):
      continue
    assert not os.path.exists(tmp_path / "metrics.json")  # it died before the end
  resumed = _ok(_run(tmp_path, cache, "--resume"))
  assert "Traceback" not in resumed.stderr
  _assert_same_run(reference, str(tmp_path))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_write_a_checkpoint_then_exit(tmp_path, cache, reference, sig):
  proc = _interrupt(tmp_path, cache, 10, 0.0, sig)
  assert proc.returncode == 128 + sig, proc.stderr_text[-2000:]
  last = proc.stderr_text.strip().splitlines()[-1]
  step = int(last.split("after step ")[1].split(";")[0])
  assert f"stopped by {signal.Signals(sig).name}" in last and "--resume" in last
  assert os.path.exists(tmp_path / "checkpoints" / f"ckpt-{step:09d}.msgpack")
  assert "Traceback" not in proc.stderr_text
  _ok(_run(tmp_path, cache, "--resume"))
  _assert_same_run(reference, str(tmp_path))


def test_corrupt_checkpoints_are_reported_and_skipped(tmp_path, cache, reference):
  """Of the three kept, the newest is truncated and the next has a flipped byte: --resume says
  so in one line each, continues from the third (step 36000) and ends as the reference."""
  _ok(_run(tmp_path, cache))
  kept = sorted((tmp_path / "checkpoints").iterdir(), reverse=True)
  newest, second = kept[0], kept[1]
  newest.write_bytes(newest.read_bytes()[:1000])
  blob = bytearray(second.read_bytes())
  blob[len(blob) // 2] ^= 0x10
  second.write_bytes(bytes(blob))
  proc = _ok(_run(tmp_path, cache, "--resume"))
  warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
  assert len(warnings) == 2 and str(newest) in warnings[0] and str(second) in warnings[1]
  assert "ckpt-000036000.msgpack (step 36000)" in proc.stderr
  _assert_same_run(reference, str(tmp_path))


@pytest.mark.parametrize("extra,flag", [
    (["--hidden=30,30"], "hidden"), (["--learning_rate=0.002"], "learning_rate"),
    (["--seed=1"], "seed"), (["--steps=30000"], "steps")])
def test_a_checkpoint_of_another_configuration_is_refused(tmp_path, cache, reference, extra, flag):
  """--resume with another flag value: one line naming the flag, exit 2, nothing touched."""
  workdir = tmp_path / "w"
  import shutil

  shutil.copytree(reference, workdir)
  before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  cmd = _cmd(workdir, cache, "--resume")
  cmd = [c for c in cmd if not any(c.startswith(e.split("=")[0] + "=") for e in extra)] + extra
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 2
  lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("I")]
  assert len(lines) == 1 and f"--{flag}=" in lines[0] and "--resume" in lines[0], proc.stderr
  assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_a_checkpoint_of_another_device_count_is_refused(tmp_path, cache):
  """An ensemble's results depend on the devices its members are split across (to float
  rounding), so --resume with another --cpu_devices is refused, naming the count to give."""
  ens = ["--ensemble=2", "--steps=1000", "--checkpoint_every=500", "--log_every=500"]
  proc = _ok(_run(tmp_path, cache, *ens, "--cpu_devices=1"))
  before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
  proc = _run(tmp_path, cache, *ens, "--cpu_devices=2", "--resume")
  assert proc.returncode == 2
  lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("I")]
  assert len(lines) == 1 and "across 1 device(s), this run has 2" in lines[0], proc.stderr
  assert "--cpu_devices=1" in lines[0]
  assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
  _ok(_run(tmp_path, cache, *ens, "--cpu_devices=1", "--resume"))


def test_a_checkpoint_of_another_example_is_refused(tmp_path, cache, reference):
  workdir = tmp_path / "w"
  (workdir / "checkpoints").mkdir(parents=True)
  source = sorted(os.listdir(os.path.join(reference, "checkpoints")))[-1]
  data = open(os.path.join(reference, "checkpoints", source), "rb").read()
  (workdir / "checkpoints" / source).write_bytes(data)
  proc = subprocess.run([sys.executable, "-m", "experiments.rnn", f"--workdir={workdir}",
                         f"--compilation_cache={cache}", "--steps=50000", "--resume"],
                        cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 2 and "'mlp'" in proc.stderr and "'rnn'" in proc.stderr
  assert os.listdir(workdir) == ["checkpoints"]


def test_resume_without_checkpoints_starts_from_step_zero(tmp_path, cache, reference):
  """Also: the temporary files of saves killed before their rename are removed."""
  (tmp_path / "checkpoints").mkdir()
  for tmp in (tmp_path / ".tmp-k1.msgpack", tmp_path / "checkpoints" / ".tmp-k2.msgpack"):
    tmp.write_bytes(b"cut short")
  proc = _ok(_run(tmp_path, cache, "--resume"))
  assert "starting from step 0" in proc.stderr
  _assert_same_run(reference, str(tmp_path))
  assert not [p for p in tmp_path.rglob(".tmp-*")]


DRIVER = textwrap.dedent("""
    import sys
    import jax.numpy as jnp
    import optax
    from absl import app
    from dljax import examples
    from experiments import common, mlp

    def nan_after(n):  # fault injection: update n + 1 onwards is NaN
      init = lambda params: optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))
      def update(updates, state, params=None):
        poison = jnp.where(state.count >= n, jnp.nan, 1.0)
        return ({k: u * poison for k, u in updates.items()},
                optax.ScaleByScheduleState(count=state.count + 1))
      return optax.GradientTransformation(init, update)

    original = examples.PREPARERS["mlp"]

    def poisoned(**kwargs):
      e = original(**kwargs)
      optimizer = optax.chain(e.fit_kwargs["optimizer"], nan_after(12345))
      return e._replace(fit_kwargs=dict(e.fit_kwargs, optimizer=optimizer))

    examples.PREPARERS["mlp"] = poisoned
    app.run(mlp.main, flags_parser=common.parse_flags)
""")


def test_divergence_keeps_the_last_finite_checkpoint_and_exits_1(tmp_path, cache):
  """Update 12346 is NaN (injected): one line naming step 12347 and the term, exit status 1,
  the newest checkpoint is step 12000 and finite, and no final outputs are written: an earlier
  run's outputs in the same workdir are removed when this fresh run starts, not left beside its
  config.json."""
  driver = tmp_path / "driver.py"
  driver.write_text(DRIVER)
  workdir = tmp_path / "w"
  workdir.mkdir()
  for stale in ("metrics.json", "predictions.npz", "checkpoint.msgpack", "figure.png", "loss.png"):
    (workdir / stale).write_bytes(b"an earlier run's")
  proc = subprocess.run([sys.executable, str(driver), f"--workdir={workdir}",
                         f"--compilation_cache={cache}", *RUN], cwd=ROOT, capture_output=True,
                        text=True, timeout=600, env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.returncode == 1, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert "diverged at step 12347: non-finite loss terms 'loss', 'mse', 'nll'" in last, last
  assert "ckpt-000012000.msgpack" in last and "Traceback" not in proc.stderr
  kept = sorted(os.listdir(workdir / "checkpoints"))
  assert kept == ["ckpt-000008000.msgpack", "ckpt-000010000.msgpack", "ckpt-000012000.msgpack"]
  _, params, _, _ = checkpoint.load(workdir / "checkpoints" / kept[-1])
  assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(params))
  assert not any((workdir / f).exists() for f in ("metrics.json", "predictions.npz",
                                                 "checkpoint.msgpack", "figure.png", "loss.png"))


def test_launcher_divergence_before_any_checkpoint_says_so(tmp_path, cache):
  """rnn at a learning rate of 1e30: the loss of step 2 overflows; no checkpoint to keep."""
  proc = subprocess.run([sys.executable, "-m", "experiments.rnn", f"--workdir={tmp_path}",
                         f"--compilation_cache={cache}", "--learning_rate=1e30", "--nodecay",
                         "--steps=1000", "--log_every=100"], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert "diverged at step 2" in last and "no checkpoint was written" in last, proc.stderr
