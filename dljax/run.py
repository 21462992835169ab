"""Training in a folder of its own: checkpoints, resume, a clean stop on a signal, metrics lines.

``dljax.fit`` is the engine; a ``Run`` makes one call of it in ``workdir`` and adds what a long
run needs, for the launchers and for any caller:

- ``workdir/checkpoints/ckpt-<step>.msgpack`` (``dljax.checkpoint``: atomic, with a checksum)
  at the end of the first log_every steps that end ``checkpoint_seconds`` after the last one was
  written (or past each multiple of ``checkpoint_every`` steps, if given), at the last step and
  after SIGINT or SIGTERM; the newest ``keep_checkpoints`` are kept. Written on a thread of
  their own (``dljax.saving``) while training goes on; a stop, and the end of ``fit``, first
  wait for the write in flight, and its error is raised on the training thread;
- ``resume=True`` continues from the newest good checkpoint (a corrupt one is skipped with a
  warning, one of another run is refused with ``ResumeError``) and ends bitwise where an
  uninterrupted run ends;
- SIGINT or SIGTERM: the checkpoint of the last completed chunk, then ``Stopped``, within
  seconds even during a compilation (``dljax.stop.StopSignals``); a chunk predicted to take
  more than ``CHUNK_MAX_S`` seconds is split into shorter ones (a divisor of ``log_every``
  steps), and without a callback chunks of about a millisecond are joined into longer ones (a
  multiple; results do not depend on the chunking);
- ``workdir/metrics.jsonl``: a line per ``log_every`` steps (step, steps/s, their mean of each
  loss term), written at the end of the chunk that holds them;
- ``workdir/run.lock`` while it runs (``dljax.resources.WorkdirLock``): a second run on the
  workdir is refused with ``resources.WorkdirBusy``.

With several processes (``jax.process_count() > 1``) they agree on the step to resume from and
on when to stop, and process 0 writes the files.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checkpoint, checks, metrics_lines, resources
from dljax.chunks import COMPILE_SECONDS, timings as _timings
from dljax import train as T
from dljax.saving import CHECKPOINT_DIR, Schedule, checkpoint_path, checkpoints
from dljax.stop import StopSignals, Stopped, from_every_process, writing  # noqa: F401

METRICS = metrics_lines.METRICS
# A chunk predicted to run longer than CHUNK_MAX_S (its compilation not counted) makes the run
# go on in chunks of the largest divisor of the chunk's length that take at most CHUNK_TARGET_S.
CHUNK_MAX_S, CHUNK_TARGET_S = 1.0, 0.5
# Chunks of log_every steps so short that the host's work after each (about CHUNK_HOST_S: the
# checks, the state's copy, the metrics line) shows are lengthened to about CHUNK_LONG_S
# (``Run._lengthen``; BUILD_NOTES.md, Decisions: long chunks).
CHUNK_HOST_S, CHUNK_LONG_S = 1e-4, 0.05

log = logging.getLogger(__name__)


class _Shorter(Exception):
  """Raised by the callback: continue in chunks of ``length`` steps."""

  def __init__(self, length: int):
    super().__init__(length)
    self.length = length


class _Longer(_Shorter):
  """Raised by the callback: continue in chunks of ``length`` (a multiple of log_every) steps."""


class ResumeError(ValueError):
  """``workdir`` holds a checkpoint of another run: ``key`` is what differs (a key of ``config``,
  "model", "devices", or "step" between processes), ``stored`` and ``current`` its two values."""

  def __init__(self, message: str, path: str | None, key: str, stored: Any, current: Any):
    super().__init__(message)
    self.path, self.key, self.stored, self.current = path, key, stored, current


class Result(NamedTuple):
  state: T.TrainState
  history: dict[str, np.ndarray]  # per-step loss terms from step 1, the resumed ones included
  timings: dict[str, float]  # fit's, of the steps trained by this call ({} when none were left)
  start_step: int  # the checkpoint's step this call resumed from; 0 for a fresh start

  @property
  def params(self) -> Any:
    return self.state.params


def fit(model: Any, objective: Any, data: Any, workdir: str, **kwargs: Any) -> Result:
  """``Run(model, objective, data, workdir, **kwargs).fit()``, the workdir released at the end:
  ``dljax.fit``'s arguments plus ``Run``'s (``resume``, ``checkpoint_every``, ...)."""
  with Run(model, objective, data, workdir, **kwargs) as started:
    return started.fit()


class Run:
  """One ``dljax.fit`` call that owns ``workdir`` (see the module's docstring).

  ``fit_kwargs`` are ``dljax.fit``'s (``steps`` is the total, resumed steps included; a
  ``callback`` is called after this run's own work on each ``log_every`` steps). ``start``
  takes the workdir's lock; ``close`` (or the end of a ``with`` block, or of the process)
  releases it.

  Args:
    resume: continue from the newest good checkpoint in workdir (from step 0 when there is
      none); it must have been written with this config, model and number of devices.
    checkpoint_every: steps between checkpoints in workdir/checkpoints, written at the end of the
      first chunk of log_every steps past each multiple (0: only at the end); unset (the
      default): by time, see checkpoint_seconds. SIGINT and SIGTERM also write one before the
      run stops.
    keep_checkpoints: how many of the newest checkpoints to keep.
    checkpoint_seconds: without checkpoint_every, a checkpoint at the end of the first log_every
      steps that end at least this many seconds after the last checkpoint was written (or
      training started): at most one every checkpoint_seconds, and one at the last step.
    config: what the run computes, as plain values (stored in each checkpoint, compared on resume).
    arrays: more named arrays for each checkpoint (``checkpoint.save``'s ``arrays``).
    meta: more plain values for each checkpoint's ``meta``.
  """

  def __init__(self, model: Any, objective: Any, data: Any, workdir: str, resume: bool = False,
               checkpoint_every: int | None = None, keep_checkpoints: int = 3,
               checkpoint_seconds: float = 10.0, *, config: dict[str, Any] | None = None,
               arrays: dict[str, Any] | None = None, meta: dict[str, Any] | None = None,
               **fit_kwargs: Any):
    every = None if checkpoint_every is None else checks.integer("checkpoint_every",
                                                                 checkpoint_every, 0)
    self.schedule = Schedule(os.fspath(workdir), every,
                             checks.non_negative("checkpoint_seconds", checkpoint_seconds),
                             checks.integer("keep_checkpoints", keep_checkpoints, 1))
    self.steps = checks.integer("steps", fit_kwargs.get("steps"))
    self.model, self.objective, self.data = model, objective, data
    self.workdir, self.resume = os.fspath(workdir), bool(resume)
    self.callback = fit_kwargs.pop("callback", None)
    optimizer = fit_kwargs.get("optimizer")
    self.fit_kwargs = dict(fit_kwargs, optimizer=T.adam() if optimizer is None else optimizer)
    members, ensemble = checks.seeds(fit_kwargs.get("seed", 0))
    devices = fit_kwargs.get("devices")
    # The devices the members are split across: each device's program rounds its own way.
    n_devices = (jax.device_count() if devices is None else len(devices)) if ensemble else 1
    self.config, self.arrays = dict(config or {}), dict(arrays or {})
    self.meta = dict(meta or {}, config=self.config, ensemble=len(members), devices=n_devices)
    self.writer = jax.process_index() == 0  # with several processes, the first writes the files
    self.log_every = self.length = checks.integer("log_every", fit_kwargs.get("log_every", 1000))
    self.state, self.chunks, self.pending, self.timed = None, [], [], []
    self.start_step = self.step = self.lock = None
    self.line_start, self.line_seconds, self.compiled = 0, 0.0, COMPILE_SECONDS.seconds
    self.compile_s, self.tail = 0.0, False  # the most compilation seconds a chunk waited for
    self.resumed, self.encoded, self.rotated = False, None, None  # the last encoding and write

  def __enter__(self) -> Run:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def close(self) -> None:
    """Releases the workdir (its lock file removed)."""
    signals = StopSignals.current()
    if signals is not None and signals.run is self:
      signals.run = None
    if self.lock is not None:
      self.lock.release()

  def start(self) -> int:
    """The step to start from (with ``resume``, the newest good checkpoint's; else 0), agreed by
    every process, then the workdir tidied: the temporaries of a killed write removed and, for a
    fresh start, an earlier run's checkpoints. Process 0 first takes the workdir's lock.

    Raises:
      ResumeError: with nothing touched.
      dljax.resources.WorkdirBusy: another run holds the workdir.
    """
    if self.start_step is not None:
      return self.start_step
    if self.writer:
      self.lock = resources.WorkdirLock(self.workdir)
    try:
      return self._start()
    except BaseException:
      self.close()
      raise

  def _start(self) -> int:
    found = self._newest_good() if self.resume else None
    step = 0 if found is None else int(np.max(np.asarray(found[0].step)))
    if jax.process_count() > 1:
      steps = np.asarray(from_every_process(np.int64(step)))
      if np.any(steps != step):
        raise ResumeError(f"the processes found checkpoints at different steps {steps.tolist()}; "
                          "with several processes the workdir must be one folder that all of "
                          "them can read", None, "step", steps.tolist(), step)
    if found is not None:
      self.state, history, length = found
      cut = step - step % self.log_every  # steps after it belong to the next metrics line
      self.chunks = [{k: v[..., :cut] for k, v in history.items()}]
      self.pending = [{k: v[..., cut:] for k, v in history.items()}] if step > cut else []
      if length and self.log_every % length == 0:  # the chunks it had found short enough
        self.length = length
    self.start_step = self.step = step
    self.schedule.restart(step)
    self.resumed = found is not None
    if self.writer:
      with writing():
        self._tidy()
    return step

  def fit(self) -> Result:
    """Trains from the start step to ``steps`` (``start`` first, if not called yet).

    Raises:
      Stopped: after SIGINT or SIGTERM, once the last completed chunk's checkpoint is written.
      dljax.train.DivergenceError: the checkpoints, all finite, are left as they were.
      OSError: a checkpoint's write failed (on the writer's thread; raised here at the end of
        the next chunk, or at the end).
    """
    start = self.start()
    signals = StopSignals.current() or StopSignals()
    with signals:
      signals.run = self
      signals.check()
      with signals.lock:
        lines = self._metrics_file()
      with lines:
        self.compiled = COMPILE_SECONDS.seconds
        self.schedule.restart()
        try:
          self._chunks(lines, signals)
        except BaseException:
          self.schedule.writer.wait(raise_error=False)
          raise
        self.schedule.writer.wait()
    return Result(self.state, self.history(), _timings(self.timed), start)

  def _chunks(self, lines, signals: StopSignals) -> None:
    """fit's calls of the engine, again from the last state after ``_Shorter`` or ``_Longer``;
    long chunks end at the last multiple of their length, and the rest runs in log_every's."""
    while self.step < self.steps:
      long = self.length > self.log_every
      end = self.steps - self.steps % self.length if long else self.steps
      kwargs = dict(self.fit_kwargs, steps=end - self.step, state=self.state,
                    log_every=self.length,
                    callback=functools.partial(self._after_chunk, lines, signals))
      try:
        T.fit(self.model, self.objective, self.data, **kwargs)
        if long:  # the rest in log_every's chunks, not lengthened again
          self.length, self.tail = self.log_every, True
      except _Shorter as resized:
        self.length = resized.length

  def history(self) -> dict[str, np.ndarray]:
    """The per-step loss terms so far, from step 1."""
    chunks = [c for c in [*self.chunks, *self.pending] if c and c["loss"].shape[-1]]
    return {k: np.concatenate([c[k] for c in chunks], axis=-1) for k in chunks[0]} if chunks else {}

  def save(self, path: str, state: T.TrainState) -> None:
    """A checkpoint of ``state`` that resumes: the parameters, the Optax state, the step and the
    history so far, with this run's arrays and meta; for the state of the training checkpoint
    this run wrote last, a second name (a hard link) of that file, unless it was rotated away."""
    blob, step = self._encode(state), int(np.max(np.asarray(state.step)))
    with contextlib.suppress(FileNotFoundError):
      if blob is self.rotated and self.schedule.written_step == step:
        return checkpoint.link_or_copy(checkpoint_path(self.workdir, step), path)
    self._write(path, blob)

  def _write(self, path: str, blob: bytes) -> None:
    checkpoint.write_bytes(path, blob)

  def _encode(self, state: T.TrainState) -> bytes:
    """The checkpoint's bytes; the same object again for the same state and history."""
    key = (len(self.chunks), len(self.pending), self.length)
    if self.encoded is not None and self.encoded[0] is state and self.encoded[1] == key:
      return self.encoded[2]
    arrays = dict(self.arrays, train=checkpoint.train_arrays(state.step, state.opt_state,
                                                             self.history()))
    step, length = int(np.max(np.asarray(state.step))), min(self.length, self.log_every)
    blob = checkpoint.encode(self.model, state.params, arrays,
                             dict(self.meta, step=step, chunk_length=length))  # long: not kept
    self.encoded = (state, key, blob)
    return blob

  def stopped(self, signum: int) -> Stopped:
    """The ``Stopped`` of a stop now: the newest checkpoint's step and path."""
    kept = checkpoints(self.workdir)
    return Stopped(signum, *(kept[0] if kept else (None, None)))

  def stop_now(self, signum: int, save: bool = True) -> Stopped:
    """The stop: the write in flight ended, the last completed chunk's checkpoint (with
    ``save``: under ``StopSignals.lock``), and no temporaries of a write cut short."""
    self.schedule.writer.close()
    newer = self.state is not None and self.step > self.schedule.written_step
    if self.writer and save and newer:
      self._rotate(self.step, self.state, background=False)
    if self.writer:
      for directory in (self.workdir, os.path.join(self.workdir, CHECKPOINT_DIR)):
        checkpoint.remove_temporaries(directory)
    return self.stopped(signum)

  def _after_chunk(self, lines, signals: StopSignals, state, terms, seconds) -> None:
    """fit's callback after each chunk: at each multiple of log_every (and the end) the metrics
    line(s), the checkpoint when due and the caller's callback; then the stop after a signal, or
    shorter chunks when this one took too long, or longer ones when it was very short."""
    self.schedule.writer.check()  # a failed background write stops the run here
    step, n = int(np.max(np.asarray(state.step))), terms["loss"].shape[-1]
    compiling, self.compiled = COMPILE_SECONDS.seconds - self.compiled, COMPILE_SECONDS.seconds
    with signals.lock:
      self.state, self.step = state, step
      self.pending.append(terms)
      self.timed.append((n, seconds))
      done = step % self.log_every == 0 or step == self.steps
      if done:
        terms = self._end_of_line(lines, step, state)
    if done and self.callback is not None:
      self.callback(state, terms, self.line_seconds)
    signum = signals.agreed()
    if signum:
      with signals.lock:
        raise self.stop_now(signum)
    self.compile_s = max(self.compile_s, compiling)
    if step < self.steps and jax.process_count() == 1:
      if self.length > self.log_every:  # long chunks, all whole: one too long ends them
        if seconds - compiling > CHUNK_MAX_S:
          raise _Shorter(self.log_every)
        return
      self._shorten(n, seconds - compiling)
      if not compiling:  # a chunk that waited for a compilation gives no pace
        self._lengthen(n, seconds)

  def _end_of_line(self, lines, step: int, state) -> dict[str, np.ndarray]:
    """The pending chunks as one (their terms returned): their metrics lines (one, or a long
    chunk's one per log_every steps) and the checkpoint."""
    pending = self.pending
    terms = pending[0] if len(pending) == 1 else {
        k: np.concatenate([p[k] for p in pending], axis=-1) for k in pending[0]}
    self.chunks.append(terms)
    timed_steps, self.line_seconds = map(sum, zip(*self.timed[self.line_start:]))
    self.pending, self.line_start = [], len(self.timed)
    if self.writer:
      first = step - terms["loss"].shape[-1]
      ends = [*range(first + self.log_every, step, self.log_every), step]
      metrics_lines.append(lines, first, ends, terms, timed_steps / self.line_seconds)
      if self.schedule.due(step) or step == self.steps:
        self._rotate(step, state)
    return terms

  def _shorten(self, n: int, seconds: float) -> None:
    """_Shorter when a chunk of ``length`` steps would take over CHUNK_MAX_S at this pace."""
    step_s = max(seconds, 0.0) / n
    if self.length > 1 and step_s * self.length > CHUNK_MAX_S:
      most = min(int(CHUNK_TARGET_S / step_s), self.length - 1, 10**6)
      raise _Shorter(next((d for d in range(most, 1, -1) if self.length % d == 0), 1))

  def _lengthen(self, n: int, seconds: float) -> None:
    """_Longer when chunks of log_every steps are so short that the host's work after each,
    over the steps left, would cost more than compiling a longer chunk (as long as the longest
    compilation a chunk has waited for): chunks of m log_every steps (m a power of two, dividing
    checkpoint_every / log_every if given) taking about CHUNK_LONG_S, from this step, if it is a
    multiple of that, to the last multiple before the end. Not with a callback, which is
    promised a call per log_every steps, nor for chunks of one step, which round differently,
    nor for the steps after the long chunks."""
    length, step_s, every = self.log_every, seconds / n, self.schedule.every
    if self.callback is not None or self.length != length or length < 2 or self.tail or (
        step_s <= 0):
      return
    m = 1
    while m < 2**20 and step_s * 2 * m * length <= CHUNK_LONG_S:
      m *= 2
    while every and m > 1 and every % (m * length):
      m //= 2
    long = m * length
    end = self.steps - self.steps % long
    if m > 1 and self.step % long == 0 and end > self.step and (
        (end - self.step) // length * CHUNK_HOST_S > self.compile_s):
      raise _Longer(long)

  def _rotate(self, step: int, state: T.TrainState, background: bool = True) -> None:
    """The checkpoint of ``state`` at ``step`` with the history so far, encoded here (the writer
    thread's own allocations stayed in its malloc arena: BUILD_NOTES.md) and written
    (``Schedule.write``) on the writer's thread, or (not ``background``) on this one."""
    blob = self.rotated = self._encode(state)
    self.schedule.write(step, lambda path: self._write(path, blob), background)

  def _newest_good(self) -> tuple[T.TrainState, dict[str, np.ndarray], int | None] | None:
    """(state, history, chunk length) of the newest checkpoint that loads, or None (none: from
    step 0)."""
    for _, path in checkpoints(self.workdir):
      try:
        model, params, arrays, meta = checkpoint.load(path)
      except (checkpoint.CheckpointError, OSError) as e:
        sys.stderr.write(f"warning: {e}; trying the previous checkpoint\n")
        continue
      self._check_same_run(path, model, meta)
      train = arrays["train"]
      log.info("resuming from %s (step %d)", path, int(np.max(train["step"])))
      params = jax.tree.map(jnp.asarray, params)
      opt_state = checkpoint.restore_opt_state(self.fit_kwargs["optimizer"], params,
                                               train["opt_state"])
      state = T.TrainState(jnp.asarray(train["step"], jnp.int32), params, opt_state)
      history = {k: np.asarray(v) for k, v in train["history"].items()}
      return state, history, meta.get("chunk_length")
    log.info("no checkpoint to resume from in %s: starting from step 0", self.workdir)
    return None

  def _check_same_run(self, path: str, model: Any, meta: dict[str, Any]) -> None:
    """ResumeError naming the first of config (in its order), model and devices that differs."""
    stored, current = meta.get("config", {}), self.config
    for key in [*current, *(k for k in sorted(stored) if k not in current)]:
      if stored.get(key) != current.get(key):
        raise ResumeError(f"{path} was written with {key}={stored.get(key)!r}, this run has "
                          f"{key}={current.get(key)!r}", path, key, stored.get(key),
                          current.get(key))
    if model != self.model:
      stored, current = checkpoint.model_config(model), checkpoint.model_config(self.model)
      raise ResumeError(f"{path} holds a model {stored}, this run builds {current}", path,
                        "model", stored, current)
    stored, current = meta.get("devices"), self.meta["devices"]
    if stored is not None and stored != current:
      raise ResumeError(f"{path} was written by a run that split its members across {stored} "
                        f"device(s), this run has {current} (its results would differ by float "
                        "rounding)", path, "devices", stored, current)

  def _tidy(self) -> None:
    folder = os.path.join(self.workdir, CHECKPOINT_DIR)
    os.makedirs(folder, exist_ok=True)
    for directory in (self.workdir, folder):  # what a kill during a write left
      checkpoint.remove_temporaries(directory)
    if not self.resumed:  # a fresh start: an earlier run's checkpoints must not be resumed
      for _, old in checkpoints(self.workdir):
        os.unlink(old)

  def _metrics_file(self):
    """metrics.jsonl for appending (process 0), keeping the complete lines up to the start."""
    if not self.writer:
      return contextlib.nullcontext()
    return metrics_lines.open_for_run(self.workdir, self.resumed, self.start_step)
