r"""Runs the tutorial's five examples at its settings; prints and writes a summary table.

  python -m experiments.reproduce                         # -> runs/reproduce/{mlp,...}/, summary.md
  python -m experiments.reproduce --workdir=/tmp/r --compilation_cache=''   # no cache
  python -m experiments.reproduce --examples=mlp,vae --steps_scale=0.01    # a quick smoke run
  python -m experiments.reproduce --jobs=1                # all in this process, one at a time

Each example writes the same files as its own launcher (``python -m experiments.NAME``). The
examples are independent, so on a CPU they run ``--jobs`` at a time (default: the cores this
process may use), each in a process of its own; their files are the same bit for bit whatever
``--jobs`` is. On an accelerator they run one at a time in one process (several processes would
each claim the device's memory).
"""

import time
from concurrent.futures import ProcessPoolExecutor

_START = time.perf_counter()  # before the heavy imports: the wall time includes start-up

import atexit  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from experiments import common  # noqa: E402

EXAMPLES = ("mlp", "rnn", "lstm", "vae", "cvae")
_WORKDIR = flags.DEFINE_string("workdir", os.path.join("runs", "reproduce"), "Output folder.")
_EXAMPLES = flags.DEFINE_list("examples", list(EXAMPLES), "Examples to run.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every example.")
_STEPS_SCALE = flags.DEFINE_float("steps_scale", 1.0, "Multiplies every example's steps (for "
                                  "smoke tests); 1 is the tutorial's settings.")
_JOBS = flags.DEFINE_integer("jobs", None, "Examples run at once on a CPU, each in its own "
                             "process (default: the cores this process may use, at most the "
                             "number of examples); 1 runs them one after another in this process.")
common.define_cache_flag()
common.define_allow_large_flag()

# Warm wall time of each example at the tutorial's settings on the 2-core development CPU (s): the
# longest are handed out first, so that the last one to finish starts as early as it can.
_COST = {"vae": 3.0, "lstm": 1.8, "cvae": 1.6, "mlp": 1.4, "rnn": 1.2}
_QUALITY = {"mlp": "RMSE {rmse:.3f}, sigma {sigma:.3f} (true 0.1)",
            "rnn": "held-out RMSE {rmse_held_out:.3f}",
            "lstm": "held-out RMSE {rmse_held_out:.3f}",
            "vae": "energy distance {energy_distance:.4f}",
            "cvae": "max error of mean {max_abs_error_of_mean_away_from_step:.3f}"}


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  _check_flags()
  logging.set_verbosity(logging.WARNING)
  common.quiet_backend_probe()
  # dljax.distributed.usable_cores(), without importing JAX before the helpers start.
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  jobs = min(_JOBS.value or cores or 1, len(_EXAMPLES.value))
  # The helpers start first, so that their start-up (~2.5 s of imports) overlaps this process's.
  helpers = _start_helpers(jobs - 1, _FLAGS.compilation_cache) if jobs > 1 else None
  common.enable_compilation_cache(_FLAGS.compilation_cache)
  import jax  # noqa: PLC0415 (after the flags are checked, so that a bad flag fails fast)

  if helpers is not None and jax.default_backend() != "cpu":
    helpers.shutdown(cancel_futures=True)  # one process on an accelerator
    helpers, jobs = None, 1
  rows = _run_all(_prepare_all(), helpers, jobs - 1, _SEED.value)
  _summarise(rows, time.perf_counter() - _START)
  if __name__ == "__main__":  # run as the command, not main() called from other code
    atexit.register(_exit_now)  # only once all is written: a failure keeps its exit status


def _check_flags() -> None:
  """Every flag of this command, before any work (one line and exit status 2 if one is bad)."""
  common.check_choices("examples", _EXAMPLES.value, EXAMPLES)
  if not 0 < _STEPS_SCALE.value <= 1e3:
    common.fail(f"--steps_scale must be in (0, 1000], got {_STEPS_SCALE.value}")
  for folder in (_WORKDIR.value, *(_workdir(name) for name in _EXAMPLES.value)):
    common.check_output_folder("workdir", folder)  # a file in the way fails now, not mid-run
  if _JOBS.value is not None and _JOBS.value < 1:
    common.fail(f"--jobs must be an integer >= 1, got {_JOBS.value}")


def _prepare_all() -> dict:
  """{name: (settings, prepared example)}, every example checked before any is run: the
  tutorial's settings, its steps scaled by --steps_scale."""
  from dljax import examples  # noqa: PLC0415

  prepared = {}
  for name in _EXAMPLES.value:
    default = examples.defaults(name)
    steps = max(1, round(default["steps"] * _STEPS_SCALE.value))
    settings = {"seed": _SEED.value, "steps": steps, "log_every": min(default["log_every"], steps)}
    if name in ("vae", "cvae"):  # the tutorial's figures need no IWAE; the launchers report it
      settings["iwae_ks"] = ()
    prepared[name] = settings, common.prepare_or_fail(name, settings, {"seed"})
  if not _FLAGS.allow_large:
    _check_memory(prepared)
  return prepared


def _check_memory(prepared: dict) -> None:
  """Each example's memory, estimated without compiling (each run then checks its own with
  XLA's analysis), against what is available: one line and exit 2 before any example runs."""
  from dljax import resources  # noqa: PLC0415

  for name, (_, e) in prepared.items():
    try:
      resources.check(resources.estimate(e.model, e.objective, e.data, compile=False,
                                         **e.fit_kwargs))
    except resources.TooLarge as err:
      common.fail(f"--steps_scale={_STEPS_SCALE.value}: {name}: {err}; --allow_large runs it "
                  "anyway")


def _summarise(rows: list[dict], total: float) -> None:
  """Prints the table of the examples' metrics and times, and writes it with the figures."""
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


def _config(experiment, seed: int) -> dict:
  return {"seed": seed, **{k: v for k, v in experiment.fit_kwargs.items()
                           if k in ("steps", "batch_size", "log_every")}}


def _workdir(name: str) -> str:
  return os.path.join(_WORKDIR.value, name)


def _start_helpers(count: int, cache: str) -> ProcessPoolExecutor:
  """``count`` helper processes, their imports started at once.

  They run only on a CPU (see ``main``); JAX_PLATFORMS=cpu keeps them off any accelerator
  before this process has found out which backend it has.
  """
  # spawn: a forked child would not carry over this process's threads (absl's, JAX's).
  pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_helper_init, initargs=(cache,))
  for _ in range(count):
    pool.submit(_helper_ready)  # the imports start at once, not at the first example
  return pool


def _exit_now() -> None:
  """Ends the process at once, at its exit (``atexit``, after the helpers have been joined). All
  its files are written and closed; what is skipped is the interpreter's teardown of JAX and of
  the loaded modules, about 1 s in each process (BUILD_NOTES.md, log 2026-12-08)."""
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(0)


def _helper_init(cache: str) -> None:
  atexit.register(_exit_now)  # a helper exits once the pool is shut down, its results sent
  os.environ["JAX_PLATFORMS"] = "cpu"
  logging.set_verbosity(logging.WARNING)
  common.quiet_backend_probe()
  common.enable_compilation_cache(cache)
  from dljax import examples  # noqa: F401, PLC0415
  from experiments import figures  # noqa: F401, PLC0415


def _helper_ready() -> None:
  pass


def _run_one(name: str, settings: dict, workdir: str, config: dict, allow_large: bool) -> dict:
  """One example in a helper process: prepared from the same (already checked) settings."""
  from dljax import examples  # noqa: PLC0415

  return common.run_and_write(examples.PREPARERS[name](**settings), workdir, config,
                              allow_large=allow_large)


def _run_all(prepared: dict, helpers: ProcessPoolExecutor | None, n_helpers: int,
             seed: int) -> list[dict]:
  """Each example's metrics, in the order given. The longest are handed out first, each to
  whoever is free: this process, or a helper (from the pool's thread, as each one finishes)."""
  if helpers is None:
    return [common.run_and_write(e, _workdir(n), _config(e, seed), allow_large=_FLAGS.allow_large)
            for n, (_, e) in prepared.items()]
  queue = sorted(prepared, key=lambda n: -_COST[n])
  mine = queue.pop(0)  # this process is ready now; a helper may still be importing
  lock, futures, results = threading.Lock(), {}, {}

  def next_name() -> str | None:
    with lock:
      return queue.pop(0) if queue else None

  def feed(future=None) -> None:
    with lock:  # popped and submitted together: once the queue is empty, futures is complete
      if not queue:
        return
      name = queue.pop(0)
      settings, e = prepared[name]
      futures[name] = helpers.submit(_run_one, name, settings, _workdir(name), _config(e, seed),
                                     _FLAGS.allow_large)
    futures[name].add_done_callback(feed)

  try:
    for _ in range(n_helpers):
      feed()
    while mine is not None:
      e = prepared[mine][1]
      results[mine] = common.run_and_write(e, _workdir(mine), _config(e, seed),
                                           allow_large=_FLAGS.allow_large)
      mine = next_name()
    with lock:
      pending = dict(futures)
    results.update({name: f.result() for name, f in pending.items()})
  finally:  # not waiting: the helpers' exit (~0.7 s of interpreter teardown) overlaps this one's
    with lock:
      queue.clear()  # a helper finishing now hands out nothing more (e.g. after a refusal)
    helpers.shutdown(wait=False, cancel_futures=True)
  return [results[n] for n in prepared]


_FLAGS = flags.FLAGS

if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
