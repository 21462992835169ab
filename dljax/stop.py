"""Stopping a run promptly on SIGINT or SIGTERM: ``StopSignals`` and ``Stopped``.

A signal only sets a flag; the run stops at its next safe point (``dljax.run``: the end of a
chunk, and in the launchers between output files). A watcher thread, woken at once through
``signal.set_wakeup_fd`` even while the main thread is inside a compilation or a long chunk,
stops the process itself ``GRACE_S`` seconds after the signal if that has not happened: it saves
the last completed chunk, removes what a write cut short left and exits with 128 + the signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

import jax
import numpy as np

from dljax import resources

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 2.0  # after a signal, the time to reach a safe point before the watcher stops it
LOCK_WAIT_S = 0.5  # then how long it waits for a write in progress


class Stopped(Exception):
  """SIGINT or SIGTERM stopped the run after ``step``, whose checkpoint is ``path`` (both None:
  no checkpoint was written)."""

  def __init__(self, signum: int, step: int | None, path: str | None):
    name = signal.Signals(signum).name
    super().__init__(f"stopped by {name} before any checkpoint was written" if path is None else
                     f"stopped by {name} after step {step}; checkpoint written to {path}")
    self.signum, self.step, self.path = signum, step, path


class StopSignals:
  """While entered in the main thread: SIGINT and SIGTERM are noted (``signum``: the first) and
  a run stops at its next safe point (the end of a chunk; ``check`` elsewhere). If it has not
  stopped ``GRACE_S`` seconds after the signal (a compilation, a long chunk), a watcher thread
  (woken at once by ``signal.set_wakeup_fd``) takes ``lock``, which each write of the run
  holds (waiting at most LOCK_WAIT_S: every write is atomic anyway); has ``run`` save its last
  completed chunk and remove what a write cut short left; reports the stop (``report``) and
  ends the process with 128 + the signal. With several processes there is no forced stop: they
  agree on the chunk to stop after. Entered again (a launcher's, then its run's), it is the same
  object; ``current()`` is the one entered in the main thread."""

  active: StopSignals | None = None

  def __init__(self, report: Callable[[Stopped], None] | None = None):
    self.report = report or (lambda stopped: sys.stderr.write(f"{stopped}\n"))
    self.lock, self.done = threading.RLock(), threading.Event()
    self.run, self.signum, self.depth, self.previous, self.watcher = None, 0, 0, {}, None

  @classmethod
  def current(cls) -> StopSignals | None:
    """The StopSignals entered, when called in the main thread (else None)."""
    return cls.active if threading.current_thread() is threading.main_thread() else None

  def __enter__(self) -> StopSignals:
    self.depth += 1
    if self.depth == 1 and threading.current_thread() is threading.main_thread():
      self.done = threading.Event()
      StopSignals.active = self
      self.previous = {sig: signal.signal(sig, self._note) for sig in STOP_SIGNALS}
      self.wake, wake_write = socket.socketpair()
      wake_write.setblocking(False)
      self.wake_write, self.wake_fd = wake_write, signal.set_wakeup_fd(wake_write.fileno(),
                                                                       warn_on_full_buffer=False)
      self.watcher = threading.Thread(target=self._watch, name="dljax-stop", daemon=True)
      self.watcher.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self.depth -= 1
    if self.depth:
      return
    if StopSignals.active is self:
      StopSignals.active = None
    self.done.set()
    if self.watcher is not None:
      signal.set_wakeup_fd(self.wake_fd)
      self.wake_write.send(b"\0")
      self.watcher.join(timeout=1.0)
      self.wake.close()
      self.wake_write.close()
    for sig, handler in self.previous.items():
      signal.signal(sig, handler)
    self.previous, self.watcher = {}, None

  def _note(self, signum, frame) -> None:
    self.signum = self.signum or signum

  def _watch(self) -> None:
    while not self.done.is_set():
      byte = self.wake.recv(1)
      if byte and byte[0] in STOP_SIGNALS and not self.done.is_set():
        self.signum = self.signum or byte[0]
        if not self.done.wait(GRACE_S):
          self._force_stop()
        return

  def _force_stop(self) -> None:
    locked = self.lock.acquire(timeout=LOCK_WAIT_S)  # a write in progress ends first
    if self.done.is_set() or jax.distributed.is_initialized():
      if locked:
        self.lock.release()
      return
    run, signum = self.run, self.signum
    self.report(run.stop_now(signum, save=locked) if run else Stopped(signum, None, None))
    sys.stdout.flush()
    sys.stderr.flush()
    resources.release_all()
    os._exit(128 + signum)

  def check(self) -> None:
    """Raises the run's Stopped (``Run.stopped``) if a signal came: a safe point."""
    if self.signum:
      raise self.run.stopped(self.signum) if self.run else Stopped(self.signum, None, None)

  def agreed(self) -> int:
    """The signal to stop at (0: none); a collective with several processes, so that a signal to
    any of them stops them all after the same chunk."""
    if jax.process_count() > 1:
      signums = from_every_process(np.int32(self.signum))
      if np.any(signums) and not self.signum:
        self.signum = int(np.max(signums))
    return self.signum


def writing():
  """The current StopSignals' lock (a forced stop waits for the write), else nothing."""
  signals = StopSignals.current()
  return contextlib.nullcontext() if signals is None else signals.lock


def from_every_process(value: np.ndarray) -> np.ndarray:
  """The value of every process (a collective: every process must call it), flattened."""
  from jax.experimental import multihost_utils  # noqa: PLC0415

  return np.asarray(multihost_utils.process_allgather(value)).ravel()
