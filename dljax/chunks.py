"""The loop over one ``fit``'s compiled chunks: after each, its checks, progress line (at most
one a second) and callback.

Once a chunk has been seen to take at most ``AHEAD_MAX_S`` seconds, each next chunk is
dispatched before the last one's outputs are handled: JAX runs it while the host reads the
loss terms, checks them, logs the line and calls the callback, so the device does not wait for
the host. A chunk dispatched ahead and then not wanted (the callback raised, or training
diverged) is at most that much work thrown away; results are the same either way, since a
chunk's outputs depend only on its input state and steps. With several processes each chunk
is dispatched after the last one's callback, as the callbacks' collectives must be.

``COMPILE_SECONDS`` counts JAX's compilation seconds (``dljax.run`` sizes its chunks by the
time less them); ``timings`` sums a ``Run``'s chunks as ``run`` does its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dljax import distributed as _dist

AHEAD_MAX_S = 0.25  # chunks this short (as last measured) are dispatched one ahead
PROGRESS_S = 1.0  # at most one progress line a second, and the last chunk's
JOIN_S = 0.1  # joined chunks (fit without a callback) take about this long

log = logging.getLogger("dljax.train")  # the progress lines are fit's


class DivergenceError(FloatingPointError):
  """Training produced a non-finite loss or parameter; ``step`` is the first step affected and
  ``name`` the loss term (the last of them in order, so a named term before the total 'loss')
  or the parameter."""

  def __init__(self, message: str, step: int, name: str):
    super().__init__(message)
    self.step, self.name = step, name


def verdict(params: Any) -> tuple[jax.Array, Any]:
  """(whether every parameter is finite; the same per parameter): computed at the end of each
  chunk program (``dljax.train``), so that no program of its own runs between two chunks."""
  finite = jax.tree.map(lambda a: jnp.all(jnp.isfinite(a)), params)
  return jnp.all(jnp.stack(jax.tree.leaves(finite))), finite


copied = jax.jit(lambda state: jax.tree.map(jnp.copy, state))  # one program for every leaf


def _check_finite(terms: Mapping[str, np.ndarray], every: Any, finite: Any, first_step: int,
                  length: int) -> None:
  """Raises DivergenceError naming the first step and loss term (or parameter) not finite.

  ``terms[name][..., i]`` is the loss at step ``first_step + i + 1`` (counting steps from 1);
  ``every`` and ``finite`` are the chunk's ``verdict`` on its parameters, or a joined chunk's
  verdicts after each ``length`` steps (stacked), checked in order after that part's terms.
  """
  # a scalar per part to the host (a joined program's [most], the first parts written); the
  # parameters' names only on failure
  parts = -(-next(iter(terms.values())).shape[-1] // length)
  every = np.asarray(every).reshape(-1)[:parts]
  if every.all() and all(np.isfinite(v).all() for v in terms.values()):
    return
  for j in range(parts):
    part = {k: v[..., j * length:(j + 1) * length] for k, v in terms.items()}
    _check_part(part, bool(every[j]), finite, j, first_step + j * length)


def _check_part(terms: Mapping[str, np.ndarray], every: bool, finite: Any, j: int,
                first_step: int) -> None:
  """_check_finite of part ``j``: its terms, then (``every`` false) its verdict in ``finite``."""
  first = {}
  for name, v in terms.items():
    if not np.isfinite(v).all():  # which step, only on failure
      first[name] = int(np.flatnonzero(~np.isfinite(v).reshape(-1, v.shape[-1]).all(0))[0])
  if first:
    at = min(first.values())
    names = sorted((k for k, i in first.items() if i == at), key=lambda k: (k != "loss", k))
    step = first_step + at + 1
    listed = ", ".join(repr(k) for k in names)
    raise DivergenceError(f"training diverged at step {step}: non-finite loss terms {listed}",
                          step, names[-1])
  if every:
    return
  for path, ok in jax.tree_util.tree_flatten_with_path(finite)[0]:
    if not np.asarray(ok).reshape(-1)[j]:
      name = jax.tree_util.keystr(path)
      step = first_step + next(iter(terms.values())).shape[-1]
      raise DivergenceError(f"training diverged by step {step}: parameter {name} is not finite",
                            step, name)


class _Plan:
  """The chunks' ends: (steps done after the chunk, its length, chunks of log_every joined in
  it). Chunks end at multiples of log_every (counted from step 0), so a resumed run stops where
  an uninterrupted one does, and callbacks (checkpoints) see the same steps; whole chunks may be
  joined, a part chunk (the first after a resume, the last) never is."""

  def __init__(self, start_step: int, steps: int, log_every: int):
    self.start_step, self.steps, self.log_every, self.done = start_step, steps, log_every, 0

  def next(self, count: int = 1) -> tuple[int, int, int]:
    length = min(self.log_every - (self.start_step + self.done) % self.log_every,
                 self.steps - self.done)
    count = min(count, (self.steps - self.done) // length) if length == self.log_every else 1
    self.done += length * count
    return self.done, length, count


def _dispatch(chunk: Callable, state: Any, end: tuple[int, int, int]) -> tuple:
  """A dispatched chunk: (its state, terms, verdict, steps done after it, length, joined count,
  when dispatched)."""
  done, length, count = end
  t = time.perf_counter()
  return (*chunk(state, length, count), done, length, count, t)


def run(chunk: Callable[[Any, int, int], tuple[Any, dict, tuple]], state: Any, start_step: int,
        steps: int, log_every: int, callback: Callable | None,
        most: int = 1) -> tuple[Any, dict, dict[str, float]]:
  """``steps`` steps from ``start_step``, ``chunk(state, length, count) -> (state, terms,
  verdict)`` at a time, each followed by its checks, a progress line (the first chunk's, then
  at most one a PROGRESS_S, and the last's) and ``callback(state, terms, seconds)``; returns the
  final state, the history and the timings (seconds: total, first_chunk with compilation, and
  steps_per_s after it). A chunk's seconds run from its start (its dispatch, or the last chunk's
  end if later) to when its end is seen. With ``most`` > 1, once a chunk's time is seen, whole
  chunks are joined ``count`` (at most ``most``) to a program, about JOIN_S seconds of steps."""
  plan, chunks, timings, count = _Plan(start_step, steps, log_every), [], {}, 1
  t0 = seen = time.perf_counter()
  logged = t0 - PROGRESS_S  # so that the first chunk has its line
  flight, ahead = _dispatch(chunk, state, plan.next()), False
  while flight is not None:
    state, terms, (every, finite), done, length, parts, dispatched = flight
    last = done == steps
    kept = copied(state) if callback is not None and not last else None
    flight = _dispatch(chunk, state, plan.next(count)) if ahead and not last else None
    terms = jax.tree.map(lambda a: np.asarray(a)[..., :length * parts], _dist.addressable(terms))
    chunk_s, seen = time.perf_counter() - max(dispatched, seen), time.perf_counter()
    ahead = chunk_s <= AHEAD_MAX_S and jax.process_count() == 1
    if most > 1:  # chunks of about JOIN_S from now on
      count = max(1, min(most, int(JOIN_S * parts / max(chunk_s, 1e-9))))
    if ahead and flight is None and not last:  # seen short: the next one goes before the host work
      flight = _dispatch(chunk, state, plan.next(count))
    _check_finite(terms, every, finite, start_step + done - length * parts, length)
    timings.setdefault("first_chunk", chunk_s)
    if last or seen - logged >= PROGRESS_S:
      logged, rate = seen, done / (seen - t0)
      log.info("step %d/%d  loss %.5g  %.0f steps/s  %.1f s left", start_step + done,
               start_step + steps, float(np.mean(terms["loss"][..., -1])), rate,
               (steps - done) / rate)
    chunks.append(terms)
    if callback is not None:  # a copy: the chunk's state is donated to (deleted by) the next
      callback(_dist.addressable(state) if last else _dist.addressable(kept), terms, chunk_s)
    if flight is None and not last:
      flight = _dispatch(chunk, state, plan.next(count))
  timings["total"] = time.perf_counter() - t0
  rest, rest_steps = timings["total"] - timings["first_chunk"], steps - chunks[0]["loss"].shape[-1]
  timings["steps_per_s"] = rest_steps / rest if rest_steps else steps / timings["total"]
  history = {k: np.concatenate([c[k] for c in chunks], axis=-1) for k in chunks[0]}
  return _dist.addressable(state), history, timings


class _CompileSeconds:
  """``seconds``: JAX's tracing, lowering, compilation and compilation-cache reads so far."""

  EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
            "/jax/core/compile/jaxpr_to_mlir_module_duration",
            "/jax/core/compile/backend_compile_duration",
            "/jax/compilation_cache/cache_retrieval_time_sec")

  def __init__(self):
    self.seconds = 0.0
    jax.monitoring.register_event_duration_secs_listener(self._listen)

  def _listen(self, event: str, duration: float, **kwargs) -> None:
    if event in self.EVENTS:
      self.seconds += duration


COMPILE_SECONDS = _CompileSeconds()


def timings(timed: list[tuple[int, float]]) -> dict[str, float]:
  """A ``Run``'s timings of its (steps, seconds) chunks, as fit's: total, first_chunk (compilation
  included) and steps_per_s after it; {} when none."""
  if not timed:
    return {}
  steps, total = map(sum, zip(*timed))
  rest_steps, rest = steps - timed[0][0], total - timed[0][1]
  return {"first_chunk": timed[0][1], "total": total,
          "steps_per_s": rest_steps / rest if rest_steps and rest > 0 else steps / total}
