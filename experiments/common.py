"""What the five launchers share: common flags, the compilation cache, and writing a run's files.

Flags are defined here (common ones) and in each launcher (its model's sizes); ``main`` of a
launcher turns them into plain keyword arguments of ``dljax.examples.prepare_<name>``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from absl import flags, logging

from experiments import distributed

COMMON_FLAGS = ("seed", "steps", "batch_size", "learning_rate", "log_every", "ensemble")
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "dljax", "jax")
CACHE_ENV = "DLJAX_COMPILATION_CACHE"


def define_common_flags(name: str, *, steps: int, batch_size: int, learning_rate: float) -> None:
  """--workdir, --seed, --steps, --batch_size, --learning_rate, --log_every, --ensemble, cache."""
  flags.DEFINE_string("workdir", os.path.join("runs", name), "Where the run writes its files.")
  flags.DEFINE_integer("seed", 0, "Seed of the data, the initialisation and the minibatches.")
  flags.DEFINE_integer("steps", steps, "Optimizer steps (the tutorial's default).")
  flags.DEFINE_integer("batch_size", batch_size, "Minibatch size, drawn without replacement.")
  flags.DEFINE_float("learning_rate", learning_rate, "Adam's (peak) learning rate.")
  flags.DEFINE_integer("log_every", 1000, "Steps per compiled chunk, between progress lines.")
  flags.DEFINE_integer("ensemble", 1, "Members trained as one vmapped program (seeds seed, "
                       "seed+1, ...).")
  define_cache_flag()
  distributed.define_flags()  # --coordinator_address, --num_processes, --process_id


def define_cache_flag() -> None:
  flags.DEFINE_string("compilation_cache", os.environ.get(CACHE_ENV, DEFAULT_CACHE),
                      f"JAX's persistent compilation cache folder; '' switches it off. Default: "
                      f"${CACHE_ENV} if set, else {DEFAULT_CACHE}.")


def enable_compilation_cache(path: str) -> None:
  """Caches every compiled program in ``path`` (nothing when ``path`` is empty)."""
  import jax  # noqa: PLC0415 (imported late so that --help stays fast)

  if not path:
    return
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a malformed value reported as one line (``app.run``'s parser)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(str(e).splitlines()[0])


def quiet_backend_probe() -> None:
  """JAX logs at INFO that it found no TPU; absl shows INFO, so keep that line off stderr."""
  import logging as std_logging  # noqa: PLC0415

  std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)


def fail(message: str) -> None:
  """Bad input: one line on stderr, exit status 2, no traceback."""
  prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "dljax"
  sys.stderr.write(f"{prog}: error: {message}\n")
  sys.exit(2)


def _flag_message(error: Exception, flag_names: set[str]) -> str:
  """The library names the argument first; the launcher's flag has the same name."""
  message = str(error).splitlines()[0] if str(error) else type(error).__name__
  first = message.split(" ", 1)[0].split("[", 1)[0]
  return f"--{message}" if first in flag_names else message


class _CompileTimer:
  """Sums JAX's tracing, lowering and compilation event durations (seconds)."""

  EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
            "/jax/core/compile/jaxpr_to_mlir_module_duration",
            "/jax/core/compile/backend_compile_duration")

  def __init__(self):
    import jax  # noqa: PLC0415

    self.seconds = 0.0
    jax.monitoring.register_event_duration_secs_listener(self._listen)

  def _listen(self, event: str, duration: float, **kwargs) -> None:
    if event in self.EVENTS:
      self.seconds += duration


_TIMER: _CompileTimer | None = None


def compile_timer() -> _CompileTimer:
  global _TIMER
  if _TIMER is None:
    _TIMER = _CompileTimer()
  return _TIMER


def versions() -> dict[str, str]:
  import flax  # noqa: PLC0415
  import jax  # noqa: PLC0415
  import optax  # noqa: PLC0415

  return {"python": platform.python_version(), "jax": jax.__version__, "jaxlib":
          jax.lib.__version__ if hasattr(jax.lib, "__version__") else jax.__version__,
          "flax": flax.__version__, "optax": optax.__version__, "numpy": np.__version__,
          "platform": platform.platform(), "devices": [str(d) for d in jax.devices()]}


def prepare_or_fail(name: str, settings: dict[str, Any], flag_names: set[str]):
  """Builds the example (every argument checked) or stops with a one-line error."""
  from dljax import examples  # noqa: PLC0415

  try:
    return examples.PREPARERS[name](**settings)
  except (ValueError, TypeError) as e:
    fail(_flag_message(e, flag_names))


def run_and_write(experiment, workdir: str, config: dict[str, Any]) -> dict[str, Any]:
  """Trains a prepared example and writes the run's files into ``workdir``; returns metrics.json."""
  from dljax import checkpoint, examples  # noqa: PLC0415
  from experiments import figures  # noqa: PLC0415

  timer = compile_timer()
  compile_before, t0 = timer.seconds, time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  _write_json(os.path.join(workdir, "config.json"), {"example": experiment.name,
                                                    "flags": config, "versions": versions()})
  jsonl = open(os.path.join(workdir, "metrics.jsonl"), "w")
  state = {"step": 0}

  def log_chunk(train_state, terms, seconds):
    steps = terms["loss"].shape[-1]
    state["step"] += steps
    line = {"step": state["step"], "steps_per_s": steps / seconds}
    line.update({k: float(np.mean(v[..., -steps:])) for k, v in terms.items()})
    jsonl.write(json.dumps(line) + "\n")
    jsonl.flush()

  with jsonl:
    outcome = examples.run(experiment, callback=log_chunk)
  t_trained = time.perf_counter()
  np.savez(os.path.join(workdir, "predictions.npz"), **outcome.predictions)
  std = {k: {"mean": s.mean, "std": s.std} for k, s in experiment.standardisers.items()}
  checkpoint.save(os.path.join(workdir, "checkpoint.msgpack"), outcome.model, outcome.fit.params,
                  {"standardisers": std}, {"example": experiment.name, "flags": config,
                                           "ensemble": int(config.get("ensemble", 1))})
  figures.FIGURES[experiment.name](outcome.predictions, os.path.join(workdir, "figure.png"))
  figures.loss_curves(outcome.fit.history, os.path.join(workdir, "loss.png"), experiment.name)
  fit_s = outcome.fit.timings["total"]
  steps = outcome.fit.history["loss"].shape[-1]
  result = {"example": experiment.name, **{k: float(v) for k, v in outcome.metrics.items()},
            "wall_s": {"total": time.perf_counter() - t0, "compile": timer.seconds - compile_before,
                       "training": fit_s, "outputs": time.perf_counter() - t_trained},
            "steps": steps, "steps_per_s": outcome.fit.timings["steps_per_s"],
            "final_loss": float(np.mean(outcome.fit.history["loss"][..., -1]))}
  _write_json(os.path.join(workdir, "metrics.json"), result)
  logging.info("%s: %s", experiment.name, json.dumps(result))
  return result


def _write_json(path: str, obj: Any) -> None:
  with open(path, "w") as f:
    json.dump(obj, f, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    f.write("\n")


def launch(name: str, settings_from_flags: Callable[[], dict[str, Any]], model_flags: tuple[str, ...]) -> None:
  """The body of a launcher's main(): flags -> prepared example -> run -> files."""
  FLAGS = flags.FLAGS
  quiet_backend_probe()
  names = set(COMMON_FLAGS) | set(model_flags)
  try:
    settings = settings_from_flags()
  except ValueError as e:
    fail(_flag_message(e, names))
  settings.update({k: FLAGS[k].value for k in COMMON_FLAGS})
  enable_compilation_cache(FLAGS.compilation_cache)
  workdir = FLAGS.workdir
  if not workdir:
    fail("--workdir must be a folder path, got ''")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    fail(f"--workdir {workdir!r} exists and is not a folder")
  distributed.initialize_from_flags()  # before any JAX computation; checks --ensemble
  experiment = prepare_or_fail(name, settings, names)
  config = {k: FLAGS[k].value for k in sorted(names | {"workdir", "compilation_cache"})}
  run_and_write(experiment, workdir, config)


def int_list(flag: str, values: list[str]) -> tuple[int, ...]:
  """A comma-separated flag of layer sizes as integers (ValueError naming the flag)."""
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise ValueError(f"{flag} must be comma-separated integers, got {','.join(values)!r}") from None


def float_list(flag: str, values: list[str]) -> tuple[float, ...]:
  """A comma-separated flag of numbers as floats (ValueError naming the flag)."""
  try:
    return tuple(float(v) for v in values)
  except ValueError:
    raise ValueError(f"{flag} must be comma-separated numbers, got {','.join(values)!r}") from None
