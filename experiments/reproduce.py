r"""Runs the tutorial's five examples at its settings; prints and writes a summary table.

  python -m experiments.reproduce                         # -> runs/reproduce/{mlp,...}/, summary.md
  python -m experiments.reproduce --workdir=/tmp/r --compilation_cache=''   # no cache
  python -m experiments.reproduce --examples=mlp,vae --steps_scale=0.01    # a quick smoke run

Each example writes the same files as its own launcher (``python -m experiments.NAME``).
"""

import time

_START = time.perf_counter()  # before the heavy imports: the wall time includes start-up

import os  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from experiments import common  # noqa: E402

EXAMPLES = ("mlp", "rnn", "lstm", "vae", "cvae")
_WORKDIR = flags.DEFINE_string("workdir", os.path.join("runs", "reproduce"), "Output folder.")
_EXAMPLES = flags.DEFINE_list("examples", list(EXAMPLES), "Examples to run.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every example.")
_STEPS_SCALE = flags.DEFINE_float("steps_scale", 1.0, "Multiplies every example's steps (for "
                                  "smoke tests); 1 is the tutorial's settings.")
common.define_cache_flag()

_DEFAULT_STEPS = {"mlp": 10_000, "rnn": 10_000, "lstm": 10_000, "vae": 5000, "cvae": 5000}
_QUALITY = {"mlp": "RMSE {rmse:.3f}, sigma {sigma:.3f} (true 0.1)",
            "rnn": "held-out RMSE {rmse_held_out:.3f}",
            "lstm": "held-out RMSE {rmse_held_out:.3f}",
            "vae": "energy distance {energy_distance:.4f}",
            "cvae": "max error of mean {max_abs_error_of_mean_away_from_step:.3f}"}


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  unknown = [e for e in _EXAMPLES.value if e not in EXAMPLES]
  if unknown or not _EXAMPLES.value:
    common.fail(f"--examples must be some of {','.join(EXAMPLES)}, got {','.join(_EXAMPLES.value)!r}")
  if not 0 < _STEPS_SCALE.value <= 1e3:
    common.fail(f"--steps_scale must be in (0, 1000], got {_STEPS_SCALE.value}")
  logging.set_verbosity(logging.WARNING)
  common.quiet_backend_probe()
  if not _WORKDIR.value:
    common.fail("--workdir must be a folder path, got ''")
  common.enable_compilation_cache(_FLAGS.compilation_cache)
  prepared = {}
  for name in _EXAMPLES.value:  # every example checked before any is run
    steps = max(1, round(_DEFAULT_STEPS[name] * _STEPS_SCALE.value))
    log_every = min(1000, steps)
    settings = {"seed": _SEED.value, "steps": steps, "log_every": log_every}
    if name in ("vae", "cvae"):  # the tutorial's figures need no IWAE; the launchers report it
      settings["iwae_ks"] = ()
    prepared[name] = common.prepare_or_fail(name, settings, set())
  rows = []
  for name, experiment in prepared.items():
    workdir = os.path.join(_WORKDIR.value, name)
    config = {"seed": _SEED.value, **{k: v for k, v in experiment.fit_kwargs.items()
                                      if k in ("steps", "batch_size", "log_every")}}
    rows.append(common.run_and_write(experiment, workdir, config))
  total = time.perf_counter() - _START
  lines = ["| example | quality | steps | compile (s) | training (s) | steps/s | total (s) |",
           "|---|---|---|---|---|---|---|"]
  for r in rows:
    w = r["wall_s"]
    lines.append(f"| {r['example']} | {_QUALITY[r['example']].format(**r)} | {r['steps']} | "
                 f"{w['compile']:.2f} | {w['training']:.2f} | {r['steps_per_s']:,.0f} | "
                 f"{w['total']:.2f} |")
  cache = _FLAGS.compilation_cache or "off"
  lines.append(f"\nWall time of the whole command, start-up included: {total:.1f} s "
               f"(compilation cache: {cache}).")
  table = "\n".join(lines)
  print(table)
  figures = "\n".join(f"### {r['example']}\n\n![{r['example']}]({r['example']}/figure.png)\n"
                      for r in rows)
  with open(os.path.join(_WORKDIR.value, "summary.md"), "w") as f:
    f.write(f"# dljax: the tutorial's five examples\n\n{table}\n\n{figures}")


_FLAGS = flags.FLAGS

if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
