"""Fault injection (issue 17): runs too large for the memory, two runs on one workdir, values
that overflow float32, impossible workdirs, and SIGTERM at any moment of a run.

Each row of the issue's table has a test here: an ensemble of 100,000 and a VAE of 10^8 points
refused in one line (on a machine of 20 GiB, injected by $DLJAX_MEMORY_LIMIT, so that the tests
do not depend on this one's memory); a second run on a workdir refused while the first holds it;
--noise=1e30 and --workdir=/proc/x refused before any work. SIGTERM during the first chunk
(compilation included), during long chunks and while the outputs are written stops the run
within 3 s with exit status 143, and --resume then ends bitwise equal to an uninterrupted run.
"""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
import pytest

from dljax import checkpoint, checks, examples, metrics_lines, resources, run
from dljax import data as D
from dljax import models as M
from dljax import objectives as O
from dljax import train as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STOP_WITHIN_S = 3.0


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("jax_cache"))


def _cmd(module, *args):
  return [sys.executable, "-m", module, *args]


def _launch(module, *args, env=None, timeout=600):
  return subprocess.run(_cmd(module, *args), cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout, env={**os.environ, **(env or {})})


def _one_line(proc):
  """stderr's one non-empty line after a non-zero exit (no traceback)."""
  assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1, proc.stderr[-3000:]
  return lines[0]


def _files(folder):
  """{path: bytes} of every file under ``folder``."""
  return {p: open(os.path.join(d, p), "rb").read() for d, _, names in os.walk(folder)
          for p in names}


# ----------------------------------------------------------------------------------------------
# The memory guard.

# (launcher, flags, $DLJAX_MEMORY_LIMIT, the flag named): the first two rows with a limit
# below what this machine has free (the tests run two at a time), then sizes no machine holds.
TOO_LARGE = [
    ("mlp", ["--ensemble=100000"], "12G", "--ensemble=100000"),
    ("vae", ["--n_train=100000000"], "4G", "--n_train=100000000"),
    ("cvae", ["--n_train=1000000000000"], None, "--n_train=1000000000000"),
    ("rnn", ["--ensemble=1099511627776"], None, "--ensemble=1099511627776"),
    ("mlp", ["--steps=1099511627776"], None, "--steps=1099511627776"),
    ("lstm", ["--hidden=100000"], None, "--hidden=100000"),
]


def test_runs_too_large_are_refused_in_one_line_before_any_work(tmp_path, cache):
  """Exit 2, one line naming the flag, the estimate and what is available, nothing written; the
  data of the VAE's 10^8 points is never made (it took 21 s and 6 GiB)."""
  def refuse(case):
    name, args, limit, flag = case
    t = time.monotonic()
    proc = _launch(f"experiments.{name}", f"--workdir={tmp_path / name}",
                   f"--compilation_cache={cache}", *args,
                   env={resources.MEMORY_LIMIT_ENV: limit} if limit else None)
    return proc, time.monotonic() - t

  with ThreadPoolExecutor(2) as pool:
    results = list(pool.map(refuse, TOO_LARGE))
  for (name, args, limit, flag), (proc, seconds) in zip(TOO_LARGE, results):
    line = _one_line(proc)
    assert proc.returncode == 2, line
    assert line.startswith(f"{name}.py: error: {flag}: the run needs an estimated "), line
    assert "iB is available" in line and line.endswith("--allow_large runs it anyway"), line
    if limit:
      assert f"is available (${resources.MEMORY_LIMIT_ENV})" in line, line
    assert seconds < (15 if name == "vae" else 60), (name, seconds)  # 21 s to make the VAE's
  assert os.listdir(tmp_path) == []


def test_allow_large_runs_what_the_guard_refuses_and_resume_with_nothing_starts_fresh(tmp_path,
                                                                                      cache):
  """Under a 100 KiB limit a tiny run is refused (naming a flag given); --allow_large runs it.
  --resume with nothing to resume says so in one line and starts from step 0."""
  args = [f"--workdir={tmp_path}", f"--compilation_cache={cache}", "--steps=40",
          "--log_every=20"]
  limit = {resources.MEMORY_LIMIT_ENV: "100K"}
  assert "--log_every=20: " in _one_line(_launch("experiments.mlp", *args, env=limit))
  assert os.listdir(tmp_path) == []
  proc = _launch("experiments.mlp", *args, "--allow_large", "--resume", env=limit)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "no checkpoint to resume from" in proc.stderr and "starting from step 0" in proc.stderr
  assert json.load(open(tmp_path / "metrics.json"))["resumed_from_step"] == 0


def test_the_estimate_allocates_nothing_and_the_run_compiles_its_chunk_once(tmp_path):
  """10^6 members (their state alone is 33 GB) are estimated without allocating them; for a
  small run the guard compiles the chunk and the run reuses it (one XLA compilation)."""
  import logging
  import resource

  big = examples.prepare_mlp(ensemble=10**6)
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  estimate = resources.estimate(big.model, big.objective, big.data, **big.fit_kwargs)
  assert estimate.host["state"] > 5 * 30 * 2**30 and estimate.host["chunk"] > 30 * 2**30
  assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 2**20  # KiB: < 1 GiB
  with pytest.raises(resources.TooLarge) as info:
    resources.check(estimate)
  assert info.value.part in ("chunk", "history", "state")

  small = examples.prepare_mlp(steps=202, log_every=101, hidden=(7,))  # compiled nowhere else
  messages, logger = [], logging.getLogger("jax")
  handler, level = logging.Handler(), logger.level
  handler.emit = lambda record: messages.append(record.getMessage())
  logger.addHandler(handler)
  logger.setLevel(logging.DEBUG)
  try:
    with jax.log_compiles():
      resources.estimate(small.model, small.objective, small.data, **small.fit_kwargs)
      in_guard = len(messages)
      run.fit(small.model, small.objective, small.data, tmp_path, **small.fit_kwargs)
  finally:
    logger.removeHandler(handler)
    logger.setLevel(level)
  chunks = [i for i, m in enumerate(messages) if "compilation of jit(_run_chunk)" in m]
  assert len(chunks) == 1 and chunks[0] < in_guard, messages


def test_memory_limit_and_what_is_available(monkeypatch):
  """$DLJAX_MEMORY_LIMIT caps what is available; a malformed value is an argument error."""
  assert resources.available(device=False).host > 0
  monkeypatch.setenv(resources.MEMORY_LIMIT_ENV, "1.5G")
  have = resources.available(device=False)
  assert have.host == int(1.5 * 2**30) and have.source == f"${resources.MEMORY_LIMIT_ENV}"
  monkeypatch.setenv(resources.MEMORY_LIMIT_ENV, "lots")
  with pytest.raises(checks.ArgumentError, match=resources.MEMORY_LIMIT_ENV):
    resources.available(device=False)
  assert resources.size_text(3 * 2**30) == "3.0 GiB" and resources.size_text(10) == "10 B"


# ----------------------------------------------------------------------------------------------
# One run per workdir.

HOLDER = "from dljax import resources; import sys, time; resources.WorkdirLock(sys.argv[1]); " \
         "print('held', flush=True); time.sleep(60)"


def test_workdir_lock_is_exclusive_and_released_by_the_os(tmp_path):
  """A lock held by another process: WorkdirBusy naming it; once that process is killed the
  lock is free again (its file left behind is taken over); release removes the file."""
  holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(resources.WorkdirBusy) as info:
      resources.WorkdirLock(tmp_path)
    assert info.value.pid == holder.pid and f"process {holder.pid}" in str(info.value)
  finally:
    holder.kill()
    holder.wait()
  assert os.listdir(tmp_path) == [resources.LOCK_FILE]  # a killed holder's file stays
  lock = resources.WorkdirLock(tmp_path)
  again = resources.WorkdirLock(tmp_path)  # the same process: counted, not refused
  again.release()
  assert open(tmp_path / resources.LOCK_FILE).read().strip() == str(os.getpid())
  lock.release()
  assert os.listdir(tmp_path) == []


def test_a_second_run_on_a_workdir_is_refused_and_touches_nothing(tmp_path, cache):
  """The issue's third row: the first run (held still by SIGSTOP once it has written a
  checkpoint) keeps every file byte for byte while a second run is refused in one line naming the
  workdir and the first run's pid; after the first is killed (SIGKILL), --resume goes ahead."""
  workdir = tmp_path / "w"
  args = [f"--workdir={workdir}", f"--compilation_cache={cache}", "--steps=50000",
          "--log_every=1000", "--checkpoint_every=1000"]
  first = subprocess.Popen(_cmd("experiments.lstm", *args), cwd=ROOT, stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 120
    while not run.checkpoints(workdir):
      assert first.poll() is None and time.monotonic() < deadline
      time.sleep(0.01)
    first.send_signal(signal.SIGSTOP)
    time.sleep(0.2)  # a write in flight ends
    before = _files(workdir)
    second = _launch("experiments.lstm", *args)
    line = _one_line(second)
    assert second.returncode == 2
    assert f"{workdir} is in use by another run (process {first.pid})" in line, line
    assert _files(workdir) == before
  finally:
    first.kill()
    first.wait()
  resumed = _launch("experiments.lstm", *args, "--resume")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert json.load(open(workdir / "metrics.json"))["resumed_from_step"] >= 1000
  assert resources.LOCK_FILE not in os.listdir(workdir)


# ----------------------------------------------------------------------------------------------
# Bad inputs: one line naming the flag, exit 2, nothing written.

BAD = [
    ("experiments.mlp", ["--noise=1e30"], "--noise"),
    ("experiments.mlp", ["--noise=3e38"], "--noise"),
    ("experiments.mlp", ["--dataset=cubic", "--noise=1e20"], "--noise"),
    ("experiments.cvae", ["--noise=1e30"], "--noise"),
    ("experiments.mlp", ["--workdir=/proc/x"], "--workdir"),
    ("experiments.mlp", ["--workdir=/proc/x/y"], "--workdir"),
    ("experiments.vae", ["--compilation_cache=/proc/x"], "--compilation_cache"),
    ("experiments.reproduce", ["--workdir=/proc/x"], "--workdir"),
    ("experiments.benchmark", ["--workdir=/proc/x", "--tiny"], "--workdir"),
]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_bad_inputs_fail_in_one_line_before_any_work(tmp_path, cache):
  def launch(case):
    module, args, _ = case
    first = [f"--workdir={tmp_path / str(BAD.index(case))}", f"--compilation_cache={cache}"]
    return _launch(module, *[a for a in first if a.split("=")[0] not in
                             {b.split("=")[0] for b in args}], *args)

  with ThreadPoolExecutor(2) as pool:
    procs = list(pool.map(launch, BAD))
  for (module, args, flag), proc in zip(BAD, procs):
    assert proc.returncode == 2, (module, args, proc.stderr[-2000:])
    assert flag in _one_line(proc), (module, args)
  assert os.listdir(tmp_path) == []


def test_float32_overflow_in_the_data_is_refused_naming_the_argument():
  """Data whose float32 values or statistics overflow (the standardiser's mean and variance)."""
  cases = [(D.sine_wiggle, dict(noise=1e30)), (D.cubic, dict(noise=1e19)),
           (D.step_function, dict(noise=3e38)), (examples.prepare_mlp, dict(noise=1e30)),
           (examples.prepare_cvae, dict(noise=1e25))]
  for fn, kwargs in cases:
    with pytest.raises(checks.ArgumentError) as info:
      fn(**kwargs)
    assert info.value.argument == "noise" and "float32" in str(info.value)
  with pytest.raises(checks.ArgumentError, match="can hold") as info:
    D.Standardiser.fit(np.array([[1e30], [-1e30], [3e30]], np.float32))
  assert info.value.argument == "v"
  assert np.isfinite(D.sine_wiggle(noise=1e17).y).all()  # large but representable


def test_a_float32_mean_that_overflows_is_written_in_float64():
  """A metrics line's mean of finite float32 losses whose sum overflows is finite; a chunk of
  several lines' steps is split at their ends (the last line may be shorter)."""
  out = io.StringIO()
  loss = np.concatenate([np.full(100, 3e37, np.float32), [1.0, 2.0, 3.0]]).astype(np.float32)
  metrics_lines.append(out, 40, [140, 142, 143], {"loss": loss, "nll": -loss}, 7.5)
  lines = [json.loads(line) for line in out.getvalue().splitlines()]
  assert [line["step"] for line in lines] == [140, 142, 143]
  assert lines[0]["loss"] == pytest.approx(3e37, rel=1e-6) and np.isfinite(lines[0]["loss"])
  assert [line["loss"] for line in lines[1:]] == [1.5, 3.0]
  assert [line["nll"] for line in lines[1:]] == [-1.5, -3.0]
  assert {line["steps_per_s"] for line in lines} == {7.5}


# ----------------------------------------------------------------------------------------------
# Chunks bounded from the measured step time; stops at any moment.


def _mlp_run(**kw):
  model = M.mlp(1, (8,), 1)
  rng = np.random.default_rng(0)
  data = {"x": rng.normal(size=(40, 1)).astype(np.float32),
          "y": rng.normal(size=(40, 1)).astype(np.float32)}
  return dict(model=model, objective=O.mse(model), data=data, steps=100, batch_size=5,
              seed=[1, 2], log_every=20, checkpoint_every=40, optimizer=T.adam(1e-2, 100), **kw)


def _same(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def _lines(workdir):
  return [{k: v for k, v in json.loads(line).items() if k != "steps_per_s"}
          for line in open(os.path.join(workdir, "metrics.jsonl"))]


def test_shorter_chunks_and_a_stop_between_them_change_nothing(tmp_path, monkeypatch):
  """Chunks judged too long go on in 5 steps (a divisor of log_every 20): the state, history,
  metrics lines and checkpoints equal a run in chunks of 20; a SIGTERM after step 45 (inside a
  metrics line's 20 steps) checkpoints step 45, and --resume (5-step chunks from the start,
  recorded in the checkpoint) still ends bitwise equal, metrics lines included."""
  whole = run.fit(workdir=tmp_path / "whole", **_mlp_run())
  shortened = []
  original = run.Run._shorten

  def five(self, n, seconds):
    if self.length == 20:
      shortened.append(self.step)
      raise run._Shorter(5)

  monkeypatch.setattr(run.Run, "_shorten", five)
  short = run.fit(workdir=tmp_path / "short", **_mlp_run())
  assert shortened == [20]
  _same(whole.state, short.state)
  assert short.history["loss"].tobytes() == whole.history["loss"].tobytes()
  assert _lines(tmp_path / "short") == _lines(tmp_path / "whole")
  assert run.checkpoints(tmp_path / "short")[0][0] == 100

  def stop_at_45(self, n, seconds):  # the signal comes during the chunk from step 40
    five(self, n, seconds)
    if self.step == 40:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(run.Run, "_shorten", stop_at_45)
  with pytest.raises(run.Stopped) as info:
    run.fit(workdir=tmp_path / "cut", **_mlp_run())
  assert (info.value.step, [s for s, _ in run.checkpoints(tmp_path / "cut")]) == (45, [45, 40])
  assert [line["step"] for line in _lines(tmp_path / "cut")] == [20, 40]
  meta = checkpoint.load(run.checkpoint_path(str(tmp_path / "cut"), 45))[3]
  assert meta["chunk_length"] == 5
  monkeypatch.setattr(run.Run, "_shorten", original)
  rest = run.fit(workdir=tmp_path / "cut", resume=True, **_mlp_run())
  _same(whole.state, rest.state)
  assert rest.history["loss"].tobytes() == whole.history["loss"].tobytes()
  assert _lines(tmp_path / "cut") == _lines(tmp_path / "whole")


def _long_run(**kw):
  """log_every 20, checkpoint_every 80: long chunks of 80 steps at most, the last 50 steps in
  chunks of 20 (and 10)."""
  return dict(_mlp_run(), steps=1010, checkpoint_every=80, keep_checkpoints=100, **kw)


def test_short_chunks_go_on_in_longer_ones_and_change_nothing(tmp_path, monkeypatch):
  """Chunks whose host work would outweigh a compilation (CHUNK_HOST_S raised to 1 s) go on in
  chunks of 80 steps from step 80 to 960 (the longest that divide checkpoint_every): the
  state, history, metrics lines (one per log_every steps) and checkpoints equal those of a run
  in chunks of 20. A SIGTERM during them checkpoints the chunk's end, and --resume ends bitwise
  equal; with a callback (promised a call per log_every steps) nothing is lengthened."""
  monkeypatch.setattr(run, "CHUNK_HOST_S", 0.0)
  whole = run.fit(workdir=tmp_path / "whole", **_long_run())
  monkeypatch.setattr(run, "CHUNK_HOST_S", 1.0)
  monkeypatch.setattr(run, "CHUNK_LONG_S", 1e9)
  lengths = []
  original_fit = T.fit
  monkeypatch.setattr(T, "fit", lambda *a, **k: lengths.append(k["log_every"]) or
                      original_fit(*a, **k))
  long = run.fit(workdir=tmp_path / "long", **_long_run())
  assert lengths == [20, 80, 20]
  _same(whole.state, long.state)
  assert long.history["loss"].tobytes() == whole.history["loss"].tobytes()
  assert _lines(tmp_path / "long") == _lines(tmp_path / "whole")
  assert len(_lines(tmp_path / "long")) == 51
  assert run.checkpoints(tmp_path / "long") == [
      (s, run.checkpoint_path(str(tmp_path / "long"), s)) for s, _ in run.checkpoints(
          tmp_path / "whole")]
  assert [s for s, _ in run.checkpoints(tmp_path / "long")][:2] == [1010, 960]

  original_append = metrics_lines.append

  def stop_at_400(lines, first, ends, *rest):
    original_append(lines, first, ends, *rest)
    if ends[-1] == 400:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(metrics_lines, "append", stop_at_400)
  with pytest.raises(run.Stopped) as info:
    run.fit(workdir=tmp_path / "cut", **_long_run())
  assert info.value.step == 400 and run.checkpoints(tmp_path / "cut")[0][0] == 400
  meta = checkpoint.load(run.checkpoint_path(str(tmp_path / "cut"), 400))[3]
  assert meta["chunk_length"] == 20  # a resume measures the pace again
  monkeypatch.setattr(metrics_lines, "append", original_append)
  rest = run.fit(workdir=tmp_path / "cut", resume=True, **_long_run())
  _same(whole.state, rest.state)
  assert rest.history["loss"].tobytes() == whole.history["loss"].tobytes()
  assert _lines(tmp_path / "cut") == _lines(tmp_path / "whole")

  calls, lengths[:] = [], []
  run.fit(workdir=tmp_path / "called", callback=lambda *a: calls.append(a), **_long_run())
  assert len(calls) == 51 and lengths == [20]


def test_short_chunks_are_lengthened_when_the_host_work_saved_outweighs_a_compilation():
  """Chunks of 1000 steps at 1 us a step: 32 of them (32 ms, the most powers of two within
  CHUNK_LONG_S = 50 ms) from a multiple of 32,000, when the host work saved (CHUNK_HOST_S =
  0.1 ms a chunk over the steps left) exceeds the longest compilation; within checkpoint_every."""
  def lengthen(step=32000, compile_s=0.2, every=None, callback=None, steps=3010000, tail=False,
               seconds=1e-3):
    fake = types.SimpleNamespace(log_every=1000, length=1000, step=step, steps=steps,
                                 compile_s=compile_s, callback=callback, tail=tail,
                                 schedule=types.SimpleNamespace(every=every))
    try:
      run.Run._lengthen(fake, 1000, seconds)
    except run._Longer as longer:
      return longer.length
    return None

  assert lengthen() == 32000  # 2976 chunks' 0.1 ms: 0.30 s > 0.2 s
  assert lengthen(step=0) == 32000 and lengthen(every=48000) == 16000
  assert lengthen(every=0) == 32000 and lengthen(every=1000) is None
  for kw in ({"compile_s": 0.5}, {"step": 33000}, {"callback": print}, {"steps": 63999},
             {"tail": True}, {"seconds": 0.0}):
    assert lengthen(**kw) is None, kw


def test_a_chunk_too_long_goes_on_in_a_divisor_of_its_length():
  """Over CHUNK_MAX_S (1 s) at the measured pace: the largest divisor that takes at most
  CHUNK_TARGET_S (0.5 s), else chunks of one step; under it, nothing changes."""
  shorten = lambda length, n, seconds: run.Run._shorten(type("R", (), {"length": length})(), n,
                                                        seconds)
  shorten(1000, 1000, 0.9)
  for length, n, seconds, expected in [(1000, 1000, 4.0, 125), (1000, 250, 1.0, 125),
                                       (7, 7, 7.0, 1), (150000, 150000, 2.5, 30000)]:
    with pytest.raises(run._Shorter) as info:
      shorten(length, n, seconds)
    assert info.value.length == expected


LSTM = ["--steps=2000000", "--log_every=1000000", "--checkpoint_every=1000000"]  # 2.5 s a chunk
MOMENTS = np.random.default_rng(20261201)


@pytest.fixture(scope="module")
def lstm_reference(tmp_path_factory, cache):
  workdir = tmp_path_factory.mktemp("lstm_reference")
  proc = _launch("experiments.lstm", f"--workdir={workdir}", f"--compilation_cache={cache}",
                 *LSTM)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


def _final(workdir):
  _, params, arrays, _ = checkpoint.load(os.path.join(workdir, "checkpoint.msgpack"))
  with np.load(os.path.join(workdir, "predictions.npz")) as f:
    return params, arrays["train"], {k: f[k] for k in f}


def _terminate(cmd, when, env=None):
  """Starts ``cmd``; SIGTERM ``when(proc)`` seconds or once ``when`` returns True (polled); the
  exit status and the seconds from the signal to the exit."""
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env={**os.environ, **(env or {})})
  if callable(when):
    while not when(proc) and proc.poll() is None:
      time.sleep(0.005)
  else:
    time.sleep(when)
  t = time.monotonic()
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=60)
  return proc.returncode, time.monotonic() - t, err


@pytest.mark.parametrize("phase", ["first chunk", "long chunks"])
def test_sigterm_at_a_random_moment_of_an_lstm_then_resume_is_bitwise(tmp_path, cache,
                                                                     lstm_reference, phase):
  """An LSTM in chunks of 1,000,000 steps (2.5 s each here, then shorter: 0.5 s): SIGTERM at a
  random moment of the first seconds (start-up, compilation, the first chunk) or of the rest
  stops it within 3 s (exit 143, one line, no temporaries, no lock); --resume then ends with
  the parameters, Adam state, history, predictions and metrics lines of the uninterrupted run."""
  low, high = (0.5, 2.5) if phase == "first chunk" else (3.5, 6.0)
  moment = float(MOMENTS.uniform(low, high))
  cmd = _cmd("experiments.lstm", f"--workdir={tmp_path}", f"--compilation_cache={cache}", *LSTM)
  status, seconds, err = _terminate(cmd, moment)
  if status == 0:
    pytest.skip(f"the run ended before the signal at {moment:.2f} s (a fast machine)")
  assert seconds < STOP_WITHIN_S and "Traceback" not in err, (moment, seconds, err)
  if status == -signal.SIGTERM:  # before the launcher started (Python's default): no files
    assert not os.listdir(tmp_path), (moment, err)
  else:  # the launcher's handler: before its run started (nothing to resume yet), or in it
    assert status == 128 + signal.SIGTERM, (moment, status, err)
    last = err.strip().splitlines()[-1]
    assert last.endswith(("before the run started", "continue with --resume")), err
  left = [p for _, _, names in os.walk(tmp_path) for p in names]
  assert not [p for p in left if p.startswith(".tmp-") or p == resources.LOCK_FILE], left
  proc = _launch("experiments.lstm", f"--workdir={tmp_path}", f"--compilation_cache={cache}",
                 *LSTM, "--resume")
  assert proc.returncode == 0, proc.stderr[-3000:]
  for a, b in zip(jax.tree.leaves(_final(lstm_reference)), jax.tree.leaves(_final(tmp_path)),
                  strict=True):
    assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
  assert _lines(tmp_path) == _lines(lstm_reference)


SLOW_FIGURE = textwrap.dedent("""
    import sys, time
    from absl import app
    from experiments import common, figures, mlp

    def slow(predictions, path):  # fault injection: the figure takes a minute to draw
      sys.stderr.write("drawing\\n")
      sys.stderr.flush()
      time.sleep(60)

    figures.FIGURES["mlp"] = slow
    app.run(mlp.main, flags_parser=common.parse_flags)
""")


def test_sigterm_while_the_outputs_are_written(tmp_path, cache):
  """SIGTERM while figure.png is drawn (a minute, injected): exit 143 within 3 s, no temporary
  or half-written file; the files written so far are whole; --resume writes the rest."""
  driver = tmp_path / "driver.py"
  driver.write_text(SLOW_FIGURE)
  workdir = tmp_path / "w"
  args = [f"--workdir={workdir}", f"--compilation_cache={cache}", "--steps=2000"]
  drawing = lambda p: "drawing" in (p.stderr.readline() or "drawing")  # or it ended

  status, seconds, err = _terminate([sys.executable, str(driver), *args], drawing,
                                    env={"PYTHONPATH": ROOT})
  assert status == 128 + signal.SIGTERM and seconds < STOP_WITHIN_S, (seconds, err)
  names = sorted(os.listdir(workdir))
  assert names == ["checkpoint.msgpack", "checkpoints", "config.json", "metrics.jsonl",
                   "predictions.npz"], names
  with np.load(workdir / "predictions.npz") as f:
    first = {k: f[k] for k in f}
  checkpoint.load(workdir / "checkpoint.msgpack")  # whole: its checksum holds
  again = _launch("experiments.mlp", *args, "--resume")
  assert again.returncode == 0, again.stderr[-3000:]
  assert json.load(open(workdir / "metrics.json"))["resumed_from_step"] == 2000
  with np.load(workdir / "predictions.npz") as f:
    assert {k: f[k].tobytes() for k in f} == {k: v.tobytes() for k, v in first.items()}
