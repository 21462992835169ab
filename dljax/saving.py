"""A run's training checkpoints: where they are, when one is due, and their writes, which run on
a thread of their own (``BackgroundWriter``) while training goes on."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

CHECKPOINT_DIR = "checkpoints"


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


class BackgroundWriter:
  """Runs jobs on a background thread, one at a time and in the order given.

  ``submit`` waits for the job before (so at most one is running and none is queued), then
  starts the new one and returns. ``wait`` returns once none is running. A job's exception is
  raised on the caller's thread by the next ``submit``, ``wait`` or ``check``; the job itself
  must leave nothing half-done (``dljax.checkpoint.write_atomically``). After ``close``,
  ``submit`` runs nothing, so that what is written can be tidied safely. The threads are not
  daemons: a process whose main thread ends lets the running write finish first.
  """

  def __init__(self, name: str = "dljax-writer"):
    self.name, self.closed = name, False
    self._thread: threading.Thread | None = None
    self._error: BaseException | None = None
    self._lock = threading.Lock()

  def submit(self, job: Callable[[], Any]) -> None:
    """Starts ``job`` once the job before has ended (its error raised here, if it failed)."""
    self.wait()
    with self._lock:
      if self.closed:
        return
      self._thread = threading.Thread(target=self._run, args=(job,), name=self.name)
      self._thread.start()

  def _run(self, job: Callable[[], Any]) -> None:
    try:
      job()
    except BaseException as e:  # handed to the caller's thread by check()
      self._error = e

  def busy(self) -> bool:
    """Whether a job is running."""
    thread = self._thread
    return thread is not None and thread.is_alive()

  def wait(self, raise_error: bool = True) -> None:
    """Returns once no job is running; then, with ``raise_error``, raises a job's error."""
    thread = self._thread
    if thread is not None:
      thread.join()
    if raise_error:
      self.check()

  def check(self) -> None:
    """Raises the error of a job that failed (once)."""
    error, self._error = self._error, None
    if error is not None:
      raise error

  def close(self) -> None:
    """No job starts from now on; returns once the running one (if any) has ended."""
    with self._lock:
      self.closed = True
    self.wait(raise_error=False)


class Schedule:
  """When a run's checkpoints are due, and their writes into ``workdir``'s checkpoints folder
  (on ``writer``, a ``BackgroundWriter``), the newest ``keep`` kept.

  ``every``: steps between checkpoints (0: none but those a run asks for); None: by time, one
  at the first step ``seconds`` or more after the last write ended (or ``restart``), while no
  write is in flight. ``saved_step``: the newest checkpoint asked for; ``written_step``: the
  newest written.
  """

  def __init__(self, workdir: str, every: int | None, seconds: float, keep: int):
    self.workdir, self.every, self.seconds, self.keep = workdir, every, seconds, keep
    self.writer, self.saved_at = BackgroundWriter("dljax-checkpoints"), time.monotonic()
    self.saved_step = self.written_step = None

  def restart(self, step: int | None = None) -> None:
    """A new writer and the time counted from now (and, with ``step``, the newest checkpoint)."""
    self.writer, self.saved_at = BackgroundWriter("dljax-checkpoints"), time.monotonic()
    if step is not None:
      self.saved_step = self.written_step = step

  def due(self, step: int) -> bool:
    """Whether the line ending at ``step`` is checkpointed (besides a run's last step)."""
    if self.every is not None:
      return self.every > 0 and step // self.every > self.saved_step // self.every
    return not self.writer.busy() and time.monotonic() - self.saved_at >= self.seconds

  def write(self, step: int, save: Callable[[str], Any], background: bool = True) -> None:
    """``save(path)`` of the checkpoint at ``step``, then the older ones beyond ``keep`` removed;
    on the writer's thread, or (not ``background``) on this one."""
    self.saved_step = step
    job = lambda: self._write(step, save)
    if background:
      self.writer.submit(job)
    else:
      job()

  def _write(self, step: int, save: Callable[[str], Any]) -> None:
    save(checkpoint_path(self.workdir, step))
    self.written_step, self.saved_at = step, time.monotonic()
    for _, old in checkpoints(self.workdir)[self.keep:]:
      os.unlink(old)
