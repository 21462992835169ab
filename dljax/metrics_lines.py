"""A run's ``metrics.jsonl``: a line per ``log_every`` steps (the step, steps/s and the mean of
each loss term over those steps), appended as the run goes; on resume, the complete lines up to
the checkpoint's step are kept and the rest dropped (``dljax.run.Run``)."""

from __future__ import annotations

import json
import os
from typing import IO

import numpy as np

from dljax import checkpoint

METRICS = "metrics.jsonl"


def open_for_run(workdir: str, resumed: bool, start_step: int) -> IO[str]:
  """metrics.jsonl for appending, keeping (after a resume) the complete lines up to
  ``start_step``; rewritten atomically, so a kill leaves the old file or the new one."""
  path, kept = os.path.join(workdir, METRICS), []
  if resumed and os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          break  # a line cut short by a kill, and nothing after it
        if record.get("step", start_step + 1) > start_step:
          break
        kept.append(line if line.endswith("\n") else line + "\n")
  checkpoint.write_atomically(path, lambda tmp: _write(tmp, kept))
  return open(path, "a")


def _write(path: str, lines: list[str]) -> None:
  with open(path, "w") as f:
    f.writelines(lines)


def append(lines: IO[str], first: int, ends: list[int], terms: dict[str, np.ndarray],
           steps_per_s: float) -> None:
  """The lines of the steps after ``first`` (``terms``' first step is ``first`` + 1) ending at
  each of ``ends``, in one write, flushed."""
  text, start = [], first
  for end in ends:
    line = {"step": end, "steps_per_s": steps_per_s}
    line.update({k: _mean(v[..., start - first:end - first]) for k, v in terms.items()})
    text.append(json.dumps(line) + "\n")
    start = end
  lines.write("".join(text))
  lines.flush()


def _mean(v: np.ndarray) -> float:
  """The mean, summed in float64 (a float32 sum of finite values can overflow); of a contiguous
  copy, so that a slice of a chunk's [K, n] terms is summed in the order the line's own array is."""
  return float(np.mean(np.ascontiguousarray(v), dtype=np.float64))
