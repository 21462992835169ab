r"""Trains the tutorial's five examples at its settings; prints quality and training steps/s.

  python -m experiments.speed                 # all five, median of 3 timed runs each
  python -m experiments.speed --examples=mlp,vae --repeats=5 --json=speed.json

Steps/s is ``steps / wall time of fit`` for an already compiled program (one warm-up run first),
so it includes initialisation, every chunk and the host round trips between chunks.
"""

import json
import os
import platform
import statistics

import jax
from absl import app, flags, logging

from dljax import examples as E
from experiments import common

_EXAMPLES = flags.DEFINE_list("examples", list(E.RUNNERS), "Examples to run.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per example, after one warm-up.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every run.")
_JSON = flags.DEFINE_string("json", None, "Also write the results to this JSON file.")

# Steps/s of the tutorial's published code (autograd NumPy) on the 2-core development machine.
TUTORIAL_STEPS_PER_S = {"mlp": 760, "rnn": 540, "lstm": 58, "vae": 127, "cvae": 196}


def measure(name: str, seed: int, repeats: int) -> dict:
  run = E.RUNNERS[name]
  warm = run(seed=seed)  # compiles
  walls = [run(seed=seed).fit.timings["total"] for _ in range(repeats)]
  steps = warm.fit.history["loss"].shape[-1]
  wall = statistics.median(walls)
  return {"example": name, "steps": steps, "median_fit_s": wall, "steps_per_s": steps / wall,
          "first_fit_s": warm.fit.timings["total"], "tutorial_steps_per_s": TUTORIAL_STEPS_PER_S[name],
          "speedup": steps / wall / TUTORIAL_STEPS_PER_S[name], "metrics": warm.metrics}


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  common.check_choices("examples", _EXAMPLES.value, E.RUNNERS)
  if _REPEATS.value < 1:
    common.fail(f"--repeats must be an integer >= 1, got {_REPEATS.value}")
  if _JSON.value is not None:
    if not _JSON.value or os.path.isdir(_JSON.value):
      common.fail(f"--json must be a file path, got {_JSON.value!r}")
    common.check_output_folder("json", os.path.dirname(os.path.abspath(_JSON.value)))
  logging.set_verbosity(logging.WARNING)
  for name in _EXAMPLES.value:  # every example's arguments (the seed) checked before any runs
    common.prepare_or_fail(name, {"seed": _SEED.value}, {"seed"})
  rows = [measure(name, _SEED.value, _REPEATS.value) for name in _EXAMPLES.value]
  lines = [f"machine: {platform.machine()}, {jax.device_count()} x {jax.devices()[0].device_kind}, "
           f"jax {jax.__version__}",
           "| example | quality | first fit (s, incl. compile) | steps/s (median) | tutorial's code | speed-up |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    quality = ", ".join(f"{k} {v:.4g}" for k, v in r["metrics"].items())
    lines.append(f"| {r['example']} | {quality} | {r['first_fit_s']:.2f} | {r['steps_per_s']:,.0f} "
                 f"| {r['tutorial_steps_per_s']} | {r['speedup']:.0f}x |")
  print("\n".join(lines))
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(rows, f, indent=1, default=float)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
