"""A launcher's cost per step against the engine's, for the benchmark's ``launcher`` section.

For each example and each of two step counts N1 < N2: a launcher run in a subprocess with the
default flags (``python -m experiments.NAME --workdir=DIR --steps=N``: progress lines, metrics
lines, checkpoints and outputs included; more flags with --launcher_flags), and ``dljax.fit`` on
the same ``prepare_NAME(steps=N)`` in a fresh process of its own (``python -m
experiments.launcher_cost NAME N1 N2 CACHE``: after a warm-up fit that compiles the same
programs, one timed fit at each count, progress lines off as in experiments.speed). A fresh
process for each side and each repeat, as some processes run the same program a few percent
faster than others throughout. Each side's marginal steps/s is (N2 - N1) / (its seconds at N2 -
at N1), so what every run pays once (start-up, imports, data, evaluation) cancels. A launcher's
seconds are the run's own wall time in its metrics.json (``wall_s``: from the parsed flags to
the last output file, so every cost that grows with the steps is in) less the compilation
seconds it reports there, a fixed cost whose run-to-run spread is as large as the difference.
The subprocess's wall time less the same is kept as a cross-check (it adds the interpreter's
start-up and imports: fixed, but noisy). The runs are interleaved repeat by repeat (the order
reversed every other repeat); medians of the repeats; ratio = launcher / in-process (goal: >=
0.9).
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import flags, logging

# Step counts N1:N2 per example: N2 - N1 is about 2 s of the engine's training on 2 CPU cores.
DEFAULT_STEPS = ("mlp=10000:210000", "rnn=10000:1010000", "lstm=10000:110000", "vae=1000:8000",
                 "cvae=1000:51000")
TINY_STEPS = ("mlp=200:2200",)
_STEPS = flags.DEFINE_list("launcher_steps", None, "The launcher section's examples and step "
                           "counts, NAME=N1:N2 each (default: all five, about 2 s of training "
                           f"between N1 and N2: {','.join(DEFAULT_STEPS)}).")
_FLAGS = flags.DEFINE_list("launcher_flags", [], "More flags for the launcher section's launcher "
                           "runs (e.g. --checkpoint_every=1000; default: none, the defaults).")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_steps(values: list[str]) -> dict[str, tuple[int, int]]:
  """{example: (N1, N2)} of --launcher_steps; one line naming the flag and exit 2 when bad."""
  from experiments import common  # noqa: PLC0415

  out = {}
  for value in values:
    name, _, counts = value.partition("=")
    n1, _, n2 = counts.partition(":")
    if (name not in ("mlp", "rnn", "lstm", "vae", "cvae") or not (n1.isdigit() and n2.isdigit())
        or not 0 < int(n1) < int(n2)):
      common.fail(f"--launcher_steps must be NAME=N1:N2 with NAME an example and 0 < N1 < N2, "
                  f"got {value!r}")
    out[name] = (int(n1), int(n2))
  return out


def steps_flag(tiny: bool) -> dict[str, tuple[int, int]]:
  return parse_steps(_STEPS.value or list(TINY_STEPS if tiny else DEFAULT_STEPS))


def _python(*args: str) -> subprocess.CompletedProcess:
  command = [sys.executable, "-m", *args]
  proc = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True)
  if proc.returncode:
    raise RuntimeError(f"{' '.join(command)} failed: {proc.stderr[-2000:]}")
  return proc


def launcher_seconds(name: str, steps: int, workdir: str, cache: str) -> dict:
  """One launcher run (with --launcher_flags): its wall time, its own (metrics.json) and the
  compilation seconds."""
  folder = os.path.join(workdir, f"{name}-{steps}")
  t = time.perf_counter()
  _python(f"experiments.{name}", f"--workdir={folder}", f"--steps={steps}",
          f"--compilation_cache={cache}", *_FLAGS.value)
  wall = time.perf_counter() - t
  with open(os.path.join(folder, "metrics.json")) as f:
    reported = json.load(f)
  spent = reported["wall_s"]
  return {"wall_s": wall, "run_s": spent["total"], "compile_s": spent["compile"],
          "seconds": spent["total"] - spent["compile"], "wall_seconds": wall - spent["compile"],
          "fit_steps_per_s": reported["steps_per_s"]}


def in_process_seconds(name: str, n1: int, n2: int, cache: str) -> list[float]:
  """fit's wall seconds at n1 and n2 steps, in a fresh process (``main``)."""
  return json.loads(_python("experiments.launcher_cost", name, str(n1), str(n2),
                            cache).stdout.splitlines()[-1])


def measure(repeats: int, examples: dict[str, tuple[int, int]], workdir: str,
            cache: str, warm: bool = True) -> list[dict]:
  """Every example's launcher and in-process runs at both step counts, ``repeats`` times,
  interleaved (after a launcher run that fills the compilation cache, if ``warm``); each
  repeat's marginal steps/s, then their medians and ratio."""
  runs = {name: {"launcher": [], "in_process": []} for name in examples}
  for name, ns in examples.items() if warm else ():  # the persistent compilation cache filled
    launcher_seconds(name, ns[0], workdir, cache)
  for r in range(repeats):
    for name, (n1, n2) in examples.items() if r % 2 == 0 else reversed(examples.items()):
      runs[name]["in_process"].append(in_process_seconds(name, n1, n2, cache))
      runs[name]["launcher"].append([launcher_seconds(name, n, workdir, cache) for n in (n1, n2)])
  return [{**_row(name, *examples[name], runs[name]), "launcher_flags": _FLAGS.value}
          for name in examples]


def _row(name: str, n1: int, n2: int, runs: dict) -> dict:
  """One example's table row: each repeat's marginal steps/s, their medians and ratios."""
  rate = lambda a, z: (n2 - n1) / (z - a) if z > a else float("inf")
  inside = [rate(a, z) for a, z in runs["in_process"]]
  outside = [rate(a["seconds"], z["seconds"]) for a, z in runs["launcher"]]
  walls = [rate(a["wall_seconds"], z["wall_seconds"]) for a, z in runs["launcher"]]
  row = {"example": name, "steps": [n1, n2], "in_process_steps_per_s": inside,
         "launcher_steps_per_s": outside, "launcher_wall_steps_per_s": walls,
         "launcher_runs": runs["launcher"], "in_process_runs": runs["in_process"],
         "in_process": statistics.median(inside), "launcher": statistics.median(outside),
         "launcher_wall": statistics.median(walls),
         "ratios": [o / i for o, i in zip(outside, inside)]}
  row["ratio"] = row["launcher"] / row["in_process"]
  row["wall_ratio"] = row["launcher_wall"] / row["in_process"]
  return row


def section(b, workdir: str, cache: str) -> list[dict]:
  """The benchmark's ``launcher`` section (--launcher_steps; --tiny: the MLP, few steps, no
  warm-up run)."""
  rows = measure(b.repeats, steps_flag(b.tiny), os.path.join(workdir, "launcher"), cache,
                 warm=not b.tiny)
  for r in rows:
    logging.warning("launcher %s: in-process %.0f, launcher %.0f marginal steps/s (ratio %.2f)",
                    r["example"], r["in_process"], r["launcher"], r["ratio"])
  return rows


def table(rows: list[dict], repeats: int) -> list[str]:
  """The section's markdown table."""
  given = f", plus {' '.join(_FLAGS.value)}" if _FLAGS.value else ""
  return ["", f"A launcher's marginal steps/s (default flags{given}, checkpoints included; from "
          f"its metrics.json, compilation less) against fit's in a process of its own, between N1 "
          f"and N2 steps; medians of {repeats} interleaved repeats; goal: ratio >= 0.9. Last "
          "column: the ratio from the launcher subprocess's wall time instead.", "",
          "| example | N1 -> N2 | in-process steps/s | launcher steps/s | ratio | "
          "ratio per repeat | ratio (wall) |", "|---|---|---|---|---|---|---|",
          *(f"| {r['example']} | {r['steps'][0]:,} -> {r['steps'][1]:,} | "
            f"{r['in_process']:,.0f} | {r['launcher']:,.0f} | {r['ratio']:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in r['ratios'])} | {r['wall_ratio']:.2f} |"
            for r in rows)]


def main(name: str, n1: str, n2: str, cache: str) -> None:
  """Prints [seconds of fit at n1 steps, at n2] as JSON: the example prepared at each count, a
  warm-up fit of its chunk lengths (compiling), then one timed fit each."""
  from experiments import common  # noqa: PLC0415

  common.enable_compilation_cache(cache)
  from dljax import examples, train  # noqa: PLC0415

  seconds = []
  for steps in (int(n1), int(n2)):
    exp = examples.PREPARERS[name](steps=steps)
    every = exp.fit_kwargs["log_every"]
    warm = min(steps, every + steps % every)  # a chunk of log_every steps and the rest
    train.fit(exp.model, exp.objective, exp.data, **dict(exp.fit_kwargs, steps=warm))
    t = time.perf_counter()
    train.fit(exp.model, exp.objective, exp.data, **exp.fit_kwargs)
    seconds.append(time.perf_counter() - t)
  print(json.dumps(seconds))


if __name__ == "__main__":
  main(*sys.argv[1:])
