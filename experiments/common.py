"""What the five launchers share: their flags, the compilation cache, and writing a run's files.

A launcher's flags come from the signatures of its example's ``dljax.examples.prepare_<name>``
(the arguments before ``*``) and of ``dljax.run.Run`` (--resume, --checkpoint_every,
--keep_checkpoints): the same names and defaults, a type from each annotation, and as help the
lines under ``Args:`` in their docstrings. ``main`` turns the flags back into those arguments;
an argument error (``dljax.checks.BadArgument``) about a flag's argument names the flag.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import platform
import sys
import time
import typing
from collections.abc import Callable
from typing import Any

import numpy as np
from absl import app, flags, logging

from experiments import distributed

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "dljax", "jax")
CACHE_ENV = "DLJAX_COMPILATION_CACHE"
# A run's outputs besides config.json and metrics.jsonl (both rewritten when it starts).
OUTPUTS = ("metrics.json", "predictions.npz", "checkpoint.msgpack", "figure.png", "loss.png")
_FLAG_TYPES = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
               str: flags.DEFINE_string}


def launcher(name: str, module: str, **defaults: Any) -> Callable[[list[str]], None]:
  """Defines the flags of example ``name``'s launcher (``defaults`` override its signature's) and
  returns its main(argv), which it runs with absl when ``module`` (the caller's ``__name__``) is
  "__main__"."""
  from dljax import examples  # noqa: PLC0415

  key_module = sys.argv[0] if module == "__main__" else module  # absl's name for the module
  arguments = define_flags(examples.PREPARERS[name], key_module, defaults, examples.__doc__)
  define_common_flags(name)

  def main(argv):
    if len(argv) > 1:
      fail(f"unexpected arguments {argv[1:]}")
    launch(name, arguments)

  if module == "__main__":
    app.run(main, flags_parser=parse_flags)
  return main


def define_common_flags(name: str) -> None:
  """--workdir, dljax.run.Run's flags, --compilation_cache and the multi-process flags."""
  from dljax import run  # noqa: PLC0415

  flags.DEFINE_string("workdir", os.path.join("runs", name), "Where the run writes its files.")
  define_flags(run.Run, __name__)
  define_cache_flag()
  distributed.define_flags()  # --coordinator_address, --num_processes, --process_id


def define_flags(fn: Callable, module_name: str, defaults: dict[str, Any] | None = None,
                 docs: str | None = None) -> dict[str, Callable[[str, Any], Any]]:
  """An absl flag for each argument of ``fn`` before ``*`` that has a default: its name, its
  default (or ``defaults[name]``), its type from the annotation, and as help its line under
  ``Args:`` in ``fn``'s docstring (else in ``docs``). Returns {flag: (flag, value) -> argument}."""
  helps = {**args_help(docs), **args_help(inspect.getdoc(getattr(fn, "func", fn)))}
  arguments = {}
  for p in flag_parameters(fn):
    define, element = _flag_type(p.name, p.annotation)
    default = (defaults or {}).get(p.name, p.default)
    if element is not None and default is not None:
      default = [str(v) for v in default]
    define(p.name, default, helps[p.name], module_name=module_name)
    arguments[p.name] = _as_is if element is None else functools.partial(_list_of, element)
  return arguments


def flag_parameters(fn: Callable) -> list[inspect.Parameter]:
  """The arguments of ``fn`` (or a partial of it) that are flags: those before ``*`` with a
  default."""
  parameters = inspect.signature(fn, eval_str=True).parameters.values()
  return [p for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty]


def args_help(doc: str | None) -> dict[str, str]:
  """{argument: text} of the ``Args:`` section of a docstring, continuation lines joined."""
  lines = inspect.cleandoc(doc or "").splitlines()
  start = next((i + 1 for i, line in enumerate(lines) if line.strip() == "Args:"), len(lines))
  helps, entry, indent = {}, None, None
  for line in lines[start:]:
    depth = len(line) - len(line.lstrip())
    if not line.strip() or (indent is not None and depth < indent):
      break
    indent = depth if indent is None else indent
    if depth == indent:
      entry, text = (part.strip() for part in line.split(":", 1))
      helps[entry] = text
    else:
      helps[entry] += " " + line.strip()
  return helps


def _flag_type(name: str, annotation: Any) -> tuple[Callable, type | None]:
  """(absl's DEFINE_* for the annotation, the element type of a list flag or None); X | None is
  X's flag, with None for its default."""
  options = [a for a in typing.get_args(annotation) if a is not type(None)]
  if len(options) == 1 and type(None) in typing.get_args(annotation):
    annotation = options[0]
  if typing.get_origin(annotation) is tuple:
    return flags.DEFINE_list, typing.get_args(annotation)[0]
  if annotation in _FLAG_TYPES:
    return _FLAG_TYPES[annotation], None
  raise TypeError(f"argument {name}: no flag type for its annotation {annotation!r}")


def _as_is(flag: str, value: Any) -> Any:
  return value


def _list_of(element: type, flag: str, values: list[str] | None) -> tuple | None:
  """A list flag's values as a tuple of ``element``s (ArgumentError naming the flag)."""
  from dljax import checks  # noqa: PLC0415

  if values is None:
    return None
  try:
    return tuple(element(v) for v in values)
  except ValueError:
    what = "integers" if element is int else "numbers"
    checks.fail(flag, f"be comma-separated {what}", repr(",".join(values)))


def define_cache_flag() -> None:
  flags.DEFINE_string("compilation_cache", os.environ.get(CACHE_ENV, DEFAULT_CACHE),
                      f"JAX's persistent compilation cache folder; '' switches it off. Default: "
                      f"${CACHE_ENV} if set, else {DEFAULT_CACHE}.")


def enable_compilation_cache(path: str) -> None:
  """Caches every compiled program in ``path`` (nothing when ``path`` is empty)."""
  import jax  # noqa: PLC0415 (imported late so that --help stays fast)

  if not path:
    return
  check_output_folder("compilation_cache", path)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a malformed value reported as one line (``app.run``'s parser)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(str(e).splitlines()[0])


def check_choices(flag: str, values: list[str], choices) -> None:
  """A non-empty list flag whose every value is one of ``choices``; one line and exit 2 if not."""
  if not values or any(v not in choices for v in values):
    fail(f"--{flag} must be some of {','.join(choices)}, got {','.join(values)!r}")


def check_output_folder(flag: str, path: str) -> None:
  """``--flag``'s folder can be written: it is a writable folder, or it does not exist yet and
  its nearest existing parent is one (created later, when there is something to write). One
  line and exit status 2 otherwise, before any work."""
  if not path:
    fail(f"--{flag} must be a folder path, got ''")
  existing = os.path.abspath(path)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    what = "exists and is not a folder" if existing == os.path.abspath(path) else (
        f"cannot be created: {existing!r} is a file")
    fail(f"--{flag} {path!r} {what}")
  if not os.access(existing, os.W_OK):
    fail(f"--{flag} {path!r} cannot be written: {existing!r} is not writable")


def quiet_backend_probe() -> None:
  """JAX logs at INFO that it found no TPU; absl shows INFO, so keep that line off stderr."""
  import logging as std_logging  # noqa: PLC0415

  std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)


def fail(message: str) -> None:
  """Bad input: one line on stderr, exit status 2, no traceback."""
  prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "dljax"
  sys.stderr.write(f"{prog}: error: {message}\n")
  sys.exit(2)


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


def flag_message(error: Exception, flag_names) -> str:
  """An error's first line, with "--" before it when it is a ``dljax.checks`` error about the
  argument of one of ``flag_names`` (its message starts with the argument's name)."""
  from dljax import checks  # noqa: PLC0415

  message = str(error).splitlines()[0] if str(error) else type(error).__name__
  named = isinstance(error, checks.BadArgument) and error.root in flag_names
  return f"--{message}" if named else message


def prepare_or_fail(name: str, settings: dict[str, Any], flag_names):
  """Builds the example (every argument checked) or stops with a one-line error."""
  from dljax import examples  # noqa: PLC0415

  try:
    return examples.PREPARERS[name](**settings)
  except (ValueError, TypeError) as e:
    fail(flag_message(e, flag_names))


def launch(name: str, arguments: dict[str, Callable[[str, Any], Any]]) -> None:
  """The body of a launcher's main(): flags -> prepared example -> run -> files."""
  from dljax import checks  # noqa: PLC0415

  FLAGS = flags.FLAGS
  quiet_backend_probe()
  try:
    settings = {k: to_argument(k, FLAGS[k].value) for k, to_argument in arguments.items()}
  except checks.BadArgument as e:
    fail(flag_message(e, arguments))
  enable_compilation_cache(FLAGS.compilation_cache)
  check_output_folder("workdir", FLAGS.workdir)
  distributed.initialize_from_flags()  # before any JAX computation; checks --ensemble
  experiment = prepare_or_fail(name, settings, set(arguments))
  config = {k: FLAGS[k].value for k in sorted(set(arguments) | run_only_flags())}
  run_flags = {k: FLAGS[k].value for k in run_flag_names()}
  run_and_write(experiment, FLAGS.workdir, config, **run_flags)


def run_flag_names() -> list[str]:
  """The flags of ``dljax.run.Run``: --resume, --checkpoint_every, --keep_checkpoints."""
  from dljax import run  # noqa: PLC0415

  return [p.name for p in flag_parameters(run.Run)]


def run_only_flags() -> frozenset[str]:
  """Flags that change how a run is carried out but not what it computes (a run may be resumed
  with other values of these): --workdir, --compilation_cache, --log_every and Run's."""
  return frozenset({"workdir", "compilation_cache", "log_every", *run_flag_names()})


def run_config(config: dict[str, Any]) -> dict[str, Any]:
  """The flags that determine what a run computes (a resumed run must have the same)."""
  return {k: v for k, v in config.items() if k not in run_only_flags()}


def run_and_write(experiment, workdir: str, config: dict[str, Any], **run_flags) -> dict[str, Any]:
  """Trains a prepared example in ``workdir`` with ``dljax.run.Run`` (checkpoints, resume,
  signals, metrics.jsonl; ``run_flags`` are its resume, checkpoint_every and keep_checkpoints)
  and writes the run's files; returns metrics.json. A fresh run first removes an earlier run's
  outputs. A checkpoint of another run stops the launcher with exit status 2, a divergence with
  1 (the checkpoints, all finite, left as they were), SIGINT or SIGTERM with 128 + the signal.
  """
  timer = compile_timer()
  compile_before, t0 = timer.seconds, time.perf_counter()
  run = _start_run(experiment, workdir, config, run_flags)
  fitted = _train(run)
  t_trained = time.perf_counter()
  predictions, metrics_ = experiment.evaluate(fitted.params)
  result = {"example": experiment.name, **{k: float(v) for k, v in metrics_.items()},
            "steps": run.steps, "resumed_from_step": fitted.start_step,
            "steps_per_s": fitted.timings.get("steps_per_s"),
            "final_loss": float(np.mean(fitted.history["loss"][..., -1]))}
  if run.writer:
    _write_outputs(experiment, run, fitted, predictions)
  result["wall_s"] = {"total": time.perf_counter() - t0, "compile": timer.seconds - compile_before,
                      "training": fitted.timings.get("total", 0.0),
                      "outputs": time.perf_counter() - t_trained}
  if run.writer:
    _write_json(os.path.join(workdir, "metrics.json"), result)
  logging.info("%s: %s", experiment.name, json.dumps(result))
  return result


def _start_run(experiment, workdir: str, config: dict[str, Any], run_flags: dict[str, Any]):
  """The example's ``dljax.run.Run``, started (resumed or fresh), with config.json written."""
  from dljax import checks, run  # noqa: PLC0415

  std = {k: {"mean": s.mean, "std": s.std} for k, s in experiment.standardisers.items()}
  try:
    started = run.Run(experiment.model, experiment.objective, experiment.data, workdir,
                      **run_flags, config={"example": experiment.name, **run_config(config)},
                      arrays={"standardisers": std},
                      meta={"example": experiment.name, "flags": config}, **experiment.fit_kwargs)
    started.start()
  except run.ResumeError as e:
    fail(_resume_message(e))
  except checks.BadArgument as e:
    fail(flag_message(e, run_only_flags()))
  if started.writer:
    for name in () if started.resumed else OUTPUTS:  # not to be left beside this config.json
      if os.path.isfile(os.path.join(workdir, name)):
        os.unlink(os.path.join(workdir, name))
    _write_json(os.path.join(workdir, "config.json"), {"example": experiment.name,
                                                      "flags": config, "versions": versions()})
  return started


def _resume_message(e) -> str:
  """--resume's line for a checkpoint of another run (``dljax.run.ResumeError``), naming the
  flag whose value differs."""
  if e.key == "example":
    return (f"--resume: {e.path} holds a checkpoint of the {e.stored!r} example, this run is "
            f"{e.current!r}")
  if e.key == "devices":
    return f"--resume: {e}; give it {e.stored} (--cpu_devices={e.stored}, or as many processes)"
  if e.key in ("model", "step"):
    return f"--resume: {e}"
  return (f"--resume: {e.path} was written with --{e.key}={e.stored!r}, this run has "
          f"--{e.key}={e.current!r}")


def _train(run):
  """``run.fit()``; a divergence or a stop ends the launcher with one line and its status."""
  from dljax import run as R  # noqa: PLC0415
  from dljax import train as T  # noqa: PLC0415

  try:
    return run.fit()
  except T.DivergenceError as e:
    kept = R.checkpoints(run.workdir)
    last = f"the last finite checkpoint is {kept[0][1]}" if kept else "no checkpoint was written"
    _stop_run(f"{e}; {last}", 1)
  except R.Stopped as s:
    _stop_run(f"{s}; continue with --resume", 128 + s.signum)


def _write_outputs(experiment, run, fitted, predictions: dict[str, np.ndarray]) -> None:
  """predictions.npz, checkpoint.msgpack (the final state, as the last training checkpoint),
  figure.png and loss.png, each written atomically."""
  from dljax import checkpoint  # noqa: PLC0415
  from experiments import figures  # noqa: PLC0415

  atomically, workdir = checkpoint.write_atomically, run.workdir
  atomically(os.path.join(workdir, "predictions.npz"), lambda p: np.savez(p, **predictions))
  run.save(os.path.join(workdir, "checkpoint.msgpack"), fitted.state)
  atomically(os.path.join(workdir, "figure.png"),
             lambda p: figures.FIGURES[experiment.name](predictions, p))
  atomically(os.path.join(workdir, "loss.png"),
             lambda p: figures.loss_curves(fitted.history, p, experiment.name))


def _stop_run(message: str, status: int) -> None:
  """Training stopped (divergence, signal): one line on stderr, the given exit status."""
  prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "dljax"
  sys.stderr.write(f"{prog}: {message}\n")
  sys.stderr.flush()
  sys.exit(status)



def _write_json(path: str, obj: Any) -> None:
  from dljax import checkpoint  # noqa: PLC0415 (imported late so that --help stays fast)

  def write(tmp):
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
      f.write("\n")

  checkpoint.write_atomically(path, write)
