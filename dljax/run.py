"""Training in a folder of its own: checkpoints, resume, a clean stop on a signal, metrics lines.

``dljax.fit`` is the engine; a ``Run`` makes one call of it in ``workdir`` and adds what a long
run needs, for the launchers and for any caller:

- ``workdir/checkpoints/ckpt-<step>.msgpack`` (``dljax.checkpoint``: atomic, with a checksum)
  at the end of the first chunk past each multiple of ``checkpoint_every`` steps, at the last
  step and after SIGINT or SIGTERM; the newest ``keep_checkpoints`` are kept;
- ``resume=True`` continues from the newest good checkpoint (a corrupt one is skipped with a
  warning, one of another run is refused with ``ResumeError``) and ends bitwise where an
  uninterrupted run ends;
- SIGINT or SIGTERM: the checkpoint of the last completed chunk, then ``Stopped``;
- ``workdir/metrics.jsonl``: a line per chunk (step, steps/s, the chunk's mean of each loss term).

With several processes (``jax.process_count() > 1``) they agree on the step to resume from and
on when to stop, and process 0 writes the files.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checkpoint, checks
from dljax import train as T

CHECKPOINT_DIR = "checkpoints"
METRICS = "metrics.jsonl"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

log = logging.getLogger(__name__)


class Stopped(Exception):
  """SIGINT or SIGTERM stopped the run after ``step``; that step's checkpoint is ``path``."""

  def __init__(self, signum: int, step: int, path: str):
    super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; checkpoint "
                     f"written to {path}")
    self.signum, self.step, self.path = signum, step, path


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


def checkpoint_path(workdir: str, step: int) -> str:
  return os.path.join(workdir, CHECKPOINT_DIR, f"ckpt-{step:09d}.msgpack")


def checkpoints(workdir: str) -> list[tuple[int, str]]:
  """The (step, path) of the training checkpoints in ``workdir``, newest first."""
  folder = os.path.join(workdir, CHECKPOINT_DIR)
  found = []
  for name in os.listdir(folder) if os.path.isdir(folder) else []:
    stem = name.removeprefix("ckpt-").removesuffix(".msgpack")
    if name.startswith("ckpt-") and name.endswith(".msgpack") and stem.isdigit():
      found.append((int(stem), os.path.join(folder, name)))
  return sorted(found, reverse=True)


def fit(model: Any, objective: Any, data: Any, workdir: str, **kwargs: Any) -> Result:
  """``Run(model, objective, data, workdir, **kwargs).fit()``: ``dljax.fit``'s arguments plus
  ``Run``'s (``resume``, ``checkpoint_every``, ...)."""
  return Run(model, objective, data, workdir, **kwargs).fit()


class Run:
  """One ``dljax.fit`` call that owns ``workdir`` (see the module's docstring).

  ``fit_kwargs`` are ``dljax.fit``'s (``steps`` is the total, resumed steps included; a
  ``callback`` is called after this run's own work on each chunk).

  Args:
    resume: continue from the newest good checkpoint in workdir (from step 0 when there is
      none); it must have been written with this config, model and number of devices.
    checkpoint_every: steps between checkpoints in workdir/checkpoints, written at the end of the
      first chunk of log_every steps past each multiple (0: only at the end); SIGINT and SIGTERM
      also write one before the run stops.
    keep_checkpoints: how many of the newest checkpoints to keep.
    config: what the run computes, as plain values (stored in each checkpoint, compared on resume).
    arrays: more named arrays for each checkpoint (``checkpoint.save``'s ``arrays``).
    meta: more plain values for each checkpoint's ``meta``.
  """

  def __init__(self, model: Any, objective: Any, data: Any, workdir: str, resume: bool = False,
               checkpoint_every: int = 1000, keep_checkpoints: int = 3, *,
               config: dict[str, Any] | None = None, arrays: dict[str, Any] | None = None,
               meta: dict[str, Any] | None = None, **fit_kwargs: Any):
    self.checkpoint_every = checks.integer("checkpoint_every", checkpoint_every, 0)
    self.keep_checkpoints = checks.integer("keep_checkpoints", keep_checkpoints, 1)
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
    self.state, self.chunks = None, []
    self.start_step = self.saved_step = None
    self.resumed = False

  def start(self) -> int:
    """The step to start from (with ``resume``, the newest good checkpoint's; else 0), agreed by
    every process, then the workdir tidied: the temporaries of a killed write removed and, for a
    fresh start, an earlier run's checkpoints. Raises ResumeError with nothing touched."""
    if self.start_step is not None:
      return self.start_step
    found = self._newest_good() if self.resume else None
    step = 0 if found is None else int(np.max(np.asarray(found[0].step)))
    if jax.process_count() > 1:
      steps = np.asarray(_from_every_process(np.int64(step)))
      if np.any(steps != step):
        raise ResumeError(f"the processes found checkpoints at different steps {steps.tolist()}; "
                          "with several processes the workdir must be one folder that all of "
                          "them can read", None, "step", steps.tolist(), step)
    if found is not None:
      self.state, self.chunks = found[0], [found[1]]
    self.start_step = self.saved_step = step
    self.resumed = found is not None
    if self.writer:
      self._tidy()
    return step

  def fit(self) -> Result:
    """Trains from the start step to ``steps`` (``start`` first, if not called yet).

    Raises:
      Stopped: after SIGINT or SIGTERM, once the last completed chunk's checkpoint is written.
      dljax.train.DivergenceError: the checkpoints, all finite, are left as they were.
    """
    start = self.start()
    fitted = None
    with self._metrics_file() as lines, _StopSignals() as signals:
      if start < self.steps:
        kwargs = dict(self.fit_kwargs, steps=self.steps - start, state=self.state,
                      callback=functools.partial(self._after_chunk, lines, signals))
        fitted = T.fit(self.model, self.objective, self.data, **kwargs)
    if fitted is not None:
      self.state = fitted.state
    return Result(self.state, self.history(), {} if fitted is None else fitted.timings, start)

  def history(self) -> dict[str, np.ndarray]:
    """The per-step loss terms so far, from step 1."""
    chunks = [c for c in self.chunks if c]
    return {k: np.concatenate([c[k] for c in chunks], axis=-1) for k in chunks[0]} if chunks else {}

  def save(self, path: str, state: T.TrainState) -> None:
    """A checkpoint of ``state`` that resumes: the parameters, the Optax state, the step and the
    history so far, with this run's arrays and meta."""
    arrays = dict(self.arrays, train=checkpoint.train_arrays(state.step, state.opt_state,
                                                             self.history()))
    checkpoint.save(path, self.model, state.params, arrays,
                    dict(self.meta, step=int(np.max(np.asarray(state.step)))))

  def _after_chunk(self, lines, signals: _StopSignals, state, terms, seconds) -> None:
    """fit's callback: the metrics line, the checkpoint when due, the stop after a signal."""
    step = int(np.max(np.asarray(state.step)))
    self.chunks.append(terms)
    if self.callback is not None:
      self.callback(state, terms, seconds)
    signum = signals.agreed()
    if self.writer:
      _write_line(lines, step, terms, seconds)
      every = self.checkpoint_every
      due = every and step // every > self.saved_step // every
      if due or step == self.steps or signum:
        self._rotate(step, state)
    if signum:
      raise Stopped(signum, step, checkpoint_path(self.workdir, step))

  def _rotate(self, step: int, state: T.TrainState) -> None:
    self.save(checkpoint_path(self.workdir, step), state)
    self.saved_step = step
    for _, old in checkpoints(self.workdir)[self.keep_checkpoints:]:
      os.unlink(old)

  def _newest_good(self) -> tuple[T.TrainState, dict[str, np.ndarray]] | None:
    """(state, history) of the newest checkpoint that loads, or None (none: from step 0)."""
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
      return state, {k: np.asarray(v) for k, v in train["history"].items()}
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
    path, kept = os.path.join(self.workdir, METRICS), []
    if self.resumed and os.path.exists(path):
      with open(path) as f:
        for line in f:
          try:
            record = json.loads(line)
          except json.JSONDecodeError:
            break  # a line cut short by a kill, and nothing after it
          if record.get("step", self.start_step + 1) > self.start_step:
            break
          kept.append(line if line.endswith("\n") else line + "\n")
    with open(path, "w") as f:
      f.writelines(kept)
    return open(path, "a")


def _write_line(lines, step: int, terms: dict[str, np.ndarray], seconds: float) -> None:
  steps = terms["loss"].shape[-1]
  line = {"step": step, "steps_per_s": steps / seconds}
  line.update({k: float(np.mean(v[..., -steps:])) for k, v in terms.items()})
  lines.write(json.dumps(line) + "\n")
  lines.flush()


def _from_every_process(value: np.ndarray) -> np.ndarray:
  """The value of every process (a collective: every process must call it), flattened."""
  from jax.experimental import multihost_utils  # noqa: PLC0415

  return np.asarray(multihost_utils.process_allgather(value)).ravel()


class _StopSignals:
  """While entered, SIGINT and SIGTERM only note the first signal (in the main thread; other
  threads cannot set handlers). ``agreed`` is the signal, after any process got one."""

  def __enter__(self) -> _StopSignals:
    self.signum, self.previous = 0, {}
    if threading.current_thread() is threading.main_thread():
      self.previous = {sig: signal.signal(sig, self._note) for sig in STOP_SIGNALS}
    return self

  def __exit__(self, *exc_info) -> None:
    for sig, handler in self.previous.items():
      signal.signal(sig, handler)

  def _note(self, signum, frame) -> None:
    self.signum = self.signum or signum

  def agreed(self) -> int:
    """The signal to stop at (0: none); a collective with several processes, so that a signal to
    any of them stops them all after the same chunk."""
    if jax.process_count() > 1:
      signums = _from_every_process(np.int32(self.signum))
      if np.any(signums) and not self.signum:
        self.signum = int(np.max(signums))
    return self.signum
