"""The host work between chunks off the device's way: the next chunk dispatched before the last
one's outputs are handled (``dljax.chunks``), checkpoints written on a thread of their own and
by default at most one every ``checkpoint_seconds`` (``dljax.saving``); the results unchanged,
bitwise, and a stop, a divergence and a failed write behaving as before."""

import os
import signal
import threading
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import nan_after

from dljax import checkpoint, chunks, run, saving
from dljax import models as M
from dljax import objectives as O
from dljax import train as T

_MODEL = M.mlp(1, (8,), 1)
_DISPATCH = chunks._dispatch


def _data(n=50):
  rng = np.random.default_rng(1)
  return {"x": rng.normal(size=(n, 1)).astype(np.float32),
          "y": rng.normal(size=(n, 1)).astype(np.float32)}


def _fit(**kw):
  return T.fit(_MODEL, O.mse(_MODEL), _data(), **{**dict(steps=60, batch_size=5, log_every=10),
                                                  **kw})


def _same(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def _spy_dispatches(monkeypatch, record):
  """Calls ``record(end)`` with each chunk's (steps done after it, length, chunks joined) as
  fit dispatches it."""

  def spy(chunk, state, end):
    record(end)
    return _DISPATCH(chunk, state, end)

  monkeypatch.setattr(chunks, "_dispatch", spy)


def _events(monkeypatch, ahead_max_s):
  """fit's dispatches and callbacks in order: ("dispatch", steps done after the chunk) and
  ("callback", step), with chunks.AHEAD_MAX_S set to ``ahead_max_s``."""
  events = []
  monkeypatch.setattr(chunks, "AHEAD_MAX_S", ahead_max_s)
  _spy_dispatches(monkeypatch, lambda end: events.append(("dispatch", end[0])))
  result = _fit(callback=lambda state, terms, s: events.append(("callback", int(state.step))))
  return events, result


def test_the_next_chunk_is_dispatched_before_the_last_ones_callback(monkeypatch):
  """Chunks measured at most AHEAD_MAX_S: chunk k + 1 is dispatched before chunk k's callback
  (the second as soon as the first is seen short, the others before the last one's end is
  seen); over it (here: a bound below any time), each after; the same results."""
  ahead, fast = _events(monkeypatch, 1e9)
  assert ahead == [("dispatch", 10), ("dispatch", 20), ("callback", 10),
                   ("dispatch", 30), ("callback", 20), ("dispatch", 40), ("callback", 30),
                   ("dispatch", 50), ("callback", 40), ("dispatch", 60), ("callback", 50),
                   ("callback", 60)]
  after, slow = _events(monkeypatch, -1.0)
  assert after == [e for k in range(10, 61, 10) for e in (("dispatch", k), ("callback", k))]
  _same(fast.state, slow.state)
  assert fast.history["loss"].tobytes() == slow.history["loss"].tobytes()


def test_a_callback_that_raises_stops_training_with_a_chunk_in_flight(monkeypatch):
  """The exception leaves fit although the next chunk was dispatched; the state the callback
  kept equals a run that ends there."""
  monkeypatch.setattr(chunks, "AHEAD_MAX_S", 1e9)
  kept = []

  def stop_at_30(state, terms, seconds):
    kept.append(state)
    if int(state.step) == 30:
      raise KeyError("enough")

  with pytest.raises(KeyError, match="enough"):
    _fit(callback=stop_at_30)
  assert [int(s.step) for s in kept] == [10, 20, 30]
  _same(kept[-1], _fit(steps=30).state)


def test_divergence_with_chunks_dispatched_ahead_is_raised_before_the_callback(monkeypatch):
  """Update 38 makes the parameters NaN: DivergenceError names step 39 and the callback never
  saw the chunk that ends at step 40; the one after it, already dispatched, is not used."""
  monkeypatch.setattr(chunks, "AHEAD_MAX_S", 1e9)
  seen = []
  with pytest.raises(T.DivergenceError, match="step 39") as info:
    _fit(steps=100, optimizer=optax.chain(optax.adam(1e-3), nan_after(37)),
         callback=lambda state, terms, s: seen.append(int(state.step)))
  assert info.value.step == 39 and seen == [10, 20, 30]


# ----------------------------------------------------------------------------------------------
# Joined chunks: without a callback, whole chunks run several to a program.


def _joins(monkeypatch, join_s, events=None, **kw):
  """fit's dispatches as (steps done after, length, chunks joined), chunks.JOIN_S = join_s."""
  events = [] if events is None else events
  monkeypatch.setattr(chunks, "JOIN_S", join_s)
  _spy_dispatches(monkeypatch, events.append)
  return events, _fit(**kw)


@pytest.mark.parametrize("kw", [dict(), dict(seed=[0, 1, 2]), dict(sampling="epochs"),
                                dict(steps=97, state=T.init_state(_MODEL, 0, T.adam()))])
def test_joined_chunks_train_bitwise_as_one_program_a_chunk(monkeypatch, kw):
  """Without a callback, once a chunk is seen, whole chunks of log_every steps run up to
  JOIN_MOST to a program (part chunks alone): the same state and history, bitwise, as a run
  whose callback sees every chunk; one program for any number joined (no recompilation)."""
  if "state" in kw:  # a resumed run from step 13: a part chunk first
    kw["state"] = T.fit(_MODEL, O.mse(_MODEL), _data(), steps=13, batch_size=5, log_every=10).state
  programs = lambda: T._chunk._cache_size() + T._chunk_ensemble._cache_size()
  joined, fast = _joins(monkeypatch, 1e9, **kw)
  again, count = _joins(monkeypatch, 0.0, **kw)[0], programs()
  _joins(monkeypatch, 1e9, **kw)
  assert programs() == count
  slow = _fit(callback=lambda *a: None, **kw)
  _same(fast.state, slow.state)
  for name in slow.history:
    assert fast.history[name].tobytes() == slow.history[name].tobytes()
  assert max(c for _, _, c in joined) > 1 and {c for _, _, c in again} == {1}
  start = 13 if "state" in kw else 0
  lengths = [(length, c) for _, length, c in joined]
  assert sum(length * c for length, c in lengths) == kw.get("steps", 60)
  assert all(c == 1 for length, c in lengths if length != 10)
  assert [done for done, _, _ in joined] == sorted({done for done, _, _ in joined})
  assert all((start + done) % 10 == 0 or done == kw.get("steps", 60) for done, _, _ in joined)


def test_nan_parameters_inside_a_joined_chunk_name_the_step_of_their_part(monkeypatch):
  """Update 40 makes the parameters NaN inside a joined chunk (steps 11-100): the verdict after
  each part names step 40 and the parameter, as when every chunk is a program of its own."""
  events = []
  with pytest.raises(T.DivergenceError, match=r"by step 40: parameter \['A'\] is not finite"):
    _joins(monkeypatch, 1e9, events, steps=100,
           optimizer=optax.chain(optax.adam(1e-3), nan_after(39)))
  assert max(c for _, _, c in events) > 1


def test_join_most_only_without_a_callback_on_one_device(monkeypatch):
  """Joining is off with a callback, with devices given, or for a large terms buffer; runs of
  one whole chunk and of several share one program."""
  assert T.join_most(None, 1, 1000) == T.JOIN_MOST
  assert T.join_most(jax.devices()[:1], 1, 1000) == 1
  assert T.join_most(None, 4, 1000) == T.JOIN_TERM_BYTES // 16_000  # as many as the buffer holds
  assert T.join_most(None, 64, 1000) == 1 and T.join_most(None, 64, 10) == T.JOIN_MOST
  events = _joins(monkeypatch, 1e9, callback=lambda *a: None)[0]
  assert {c for _, _, c in events} == {1}
  model = M.mlp(1, (5,), 1)  # compiled nowhere else
  fit = lambda steps: T.fit(model, O.mse(model), _data(), steps=steps, batch_size=5,
                            log_every=10, optimizer=T.adam(2e-3))
  fit(10)
  programs = T._chunk._cache_size()
  fit(60)
  assert T._chunk._cache_size() == programs


# ----------------------------------------------------------------------------------------------
# Checkpoints: when, and on which thread.


class _Clock:
  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


def test_the_default_schedule_is_at_most_one_checkpoint_every_ten_seconds(monkeypatch, tmp_path):
  """Run's default: checkpoint_every unset, checkpoint_seconds 10. A line is checkpointed once
  10 s have passed since the last write ended (or the start), and not while a write is in
  flight; with checkpoint_every, by steps as before."""
  clock = _Clock()
  monkeypatch.setattr(saving, "time", types.SimpleNamespace(monotonic=clock))
  default = run.Run(_MODEL, O.mse(_MODEL), _data(), tmp_path, steps=10, batch_size=5)
  assert (default.schedule.every, default.schedule.seconds) == (None, 10.0)
  schedule = saving.Schedule(str(tmp_path), None, 10.0, 3)
  clock.now += 9
  assert not schedule.due(1000)
  clock.now += 1
  assert schedule.due(2000)
  os.makedirs(tmp_path / "checkpoints")
  schedule.write(2000, lambda path: open(path, "wb").close(), background=False)
  clock.now += 9.0
  assert not schedule.due(3000)
  clock.now += 1.0
  assert schedule.due(4000)
  release = threading.Event()
  schedule.write(4000, lambda path: release.wait(10))
  assert schedule.writer.busy() and not schedule.due(5000)
  release.set()
  schedule.writer.wait()
  assert schedule.written_step == 4000
  steps = saving.Schedule(str(tmp_path), 1000, 10.0, 3)
  steps.restart(0)
  assert [steps.due(s) for s in (500, 1000)] == [False, True]


def _run_kwargs(**kw):
  return {**dict(model=_MODEL, objective=O.mse(_MODEL), data=_data(), steps=100, batch_size=5,
                 seed=[1, 2], log_every=10, optimizer=T.adam(1e-2, 100)), **kw}


def test_checkpoints_are_written_off_the_training_thread(tmp_path, monkeypatch):
  """checkpoint_seconds=0: every line end is checkpointed (none is in flight: each write waited
  for here) on the writer's thread, the last one before fit returns; each is encoded on the
  training thread, so that the writer's thread makes no large allocations of its own."""
  threads, encoded, write, encode = [], [], run.Run._write, run.Run._encode

  def recording(self, path, *args):
    threads.append((threading.current_thread().name, path))
    write(self, path, *args)

  def encoding(self, *args):
    encoded.append(threading.current_thread() is threading.main_thread())
    return encode(self, *args)

  monkeypatch.setattr(run.Run, "_write", recording)
  monkeypatch.setattr(run.Run, "_encode", encoding)
  wait = lambda state, terms, s: run_.schedule.writer.wait()
  run_ = run.Run(**_run_kwargs(checkpoint_seconds=0, keep_checkpoints=20, callback=wait),
                 workdir=tmp_path)
  with run_:
    run_.fit()
  steps = [s for s, _ in run.checkpoints(tmp_path)]
  assert steps == list(range(100, 0, -10))
  assert {name for name, _ in threads} == {"dljax-checkpoints"}
  assert len(threads) == 10 and encoded == [True] * 10


def test_time_based_checkpoints_then_a_stop_resume_bitwise(tmp_path, monkeypatch):
  """Checkpoints every line (checkpoint_seconds=0), a slow write in flight when SIGTERM comes
  at step 50: the stop waits for it, writes step 50, leaves no temporaries; resume ends
  bitwise as an uninterrupted run (state, history, metrics lines' steps)."""
  whole = run.fit(workdir=tmp_path / "whole", **_run_kwargs())
  write = run.Run._write

  def slow(self, path, *args):
    time.sleep(0.2)
    write(self, path, *args)

  monkeypatch.setattr(run.Run, "_write", slow)

  def terminate_at_50(state, terms, seconds):
    if int(np.max(np.asarray(state.step))) == 50:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(run.Stopped) as stop:
    run.fit(workdir=tmp_path / "cut", checkpoint_seconds=0, callback=terminate_at_50,
            **_run_kwargs())
  assert stop.value.step == 50 and run.checkpoints(tmp_path / "cut")[0][0] == 50
  left = [n for _, _, names in os.walk(tmp_path / "cut") for n in names]
  assert not [n for n in left if n.startswith(checkpoint.TMP_PREFIX)], left
  monkeypatch.setattr(run.Run, "_write", write)
  rest = run.fit(workdir=tmp_path / "cut", resume=True, **_run_kwargs())
  assert rest.start_step == 50
  _same(whole.state, rest.state)
  assert rest.history["loss"].tobytes() == whole.history["loss"].tobytes()
  steps = lambda w: [line.split(",")[0] for line in open(w / "metrics.jsonl")]
  assert steps(tmp_path / "cut") == steps(tmp_path / "whole")


def test_a_failed_background_write_is_raised_on_the_training_thread(tmp_path, monkeypatch):
  """The write of step 20 fails on the writer's thread (its fsync): fit raises that OSError on
  its own thread, at the end of the next chunk, with no temporary file left and the checkpoint
  before it intact."""
  fsync, failed = checkpoint._fsync, []

  def full_at_20(path):
    if "ckpt-000000020" in path:
      failed.append(threading.current_thread().name)
      raise OSError(28, "No space left on device")
    fsync(path)

  monkeypatch.setattr(checkpoint, "_fsync", full_at_20)
  wait = lambda state, terms, s: run_.schedule.writer.wait(raise_error=False)
  run_ = run.Run(**_run_kwargs(checkpoint_every=10, callback=wait), workdir=tmp_path)
  with run_, pytest.raises(OSError, match="No space left") as info:
    run_.fit()
  assert failed == ["dljax-checkpoints"] and info.value.errno == 28
  assert [s for s, _ in run.checkpoints(tmp_path)] == [10]
  assert run_.step == 20  # raised before the next chunk (to step 30) was taken in
  checkpoint.load(run.checkpoint_path(str(tmp_path), 10))
  left = os.listdir(tmp_path / "checkpoints")
  assert not [n for n in left if n.startswith(checkpoint.TMP_PREFIX)], left


def test_background_writer_runs_jobs_in_order_and_hands_back_errors():
  """One job at a time, in order; a job's error raised once by the next check; after close,
  nothing more runs."""
  writer, done = saving.BackgroundWriter(), []
  for k in range(5):
    writer.submit(lambda k=k: (time.sleep(0.01), done.append(k)))
  writer.wait()
  assert done == [0, 1, 2, 3, 4]

  def fail():
    raise ValueError("disk")

  writer.submit(fail)
  with pytest.raises(ValueError, match="disk"):
    writer.wait()
  writer.check()  # raised once
  writer.close()
  writer.submit(lambda: done.append("late"))
  writer.wait()
  assert done == [0, 1, 2, 3, 4]
