"""What the five launchers share: their flags, the compilation cache, and writing a run's files.

A launcher's flags come from the signatures of its example's ``dljax.examples.prepare_<name>``
(the arguments before ``*``) and of ``dljax.run.Run`` (--resume, --checkpoint_every,
--keep_checkpoints, --checkpoint_seconds): the same names and defaults, a type from each
annotation, and as help the lines under ``Args:`` in their docstrings. ``main`` turns the flags
back into those arguments; an argument error (``dljax.checks.BadArgument``) about a flag's
argument names the flag.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import platform
import signal
import sys
import tempfile
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
  if module == "__main__":  # until the run's own handlers: a signal ends it in one line
    for sig in (signal.SIGINT, signal.SIGTERM):
      signal.signal(sig, _stop_before_start)
  from dljax import examples  # noqa: PLC0415

  from dljax import userdata  # noqa: PLC0415

  key_module = sys.argv[0] if module == "__main__" else module  # absl's name for the module
  arguments = define_flags(examples.PREPARERS[name], key_module, defaults, examples.__doc__)
  data_arguments = define_flags(userdata.PREPARERS[name], key_module, {}, userdata.__doc__)
  define_common_flags(name)

  def main(argv):
    if len(argv) > 1:
      fail(f"unexpected arguments {argv[1:]}")
    launch(name, with_data_flags(arguments, data_arguments))

  if module == "__main__":
    app.run(main, flags_parser=parse_flags)
  return main


def define_common_flags(name: str) -> None:
  """--workdir, dljax.run.Run's flags, --compilation_cache, --allow_large and the multi-process
  flags."""
  from dljax import run  # noqa: PLC0415

  flags.DEFINE_string("workdir", os.path.join("runs", name), "Where the run writes its files.")
  define_flags(run.Run, __name__)
  define_cache_flag()
  define_allow_large_flag()
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


def define_allow_large_flag() -> None:
  flags.DEFINE_bool("allow_large", False, "Run even when the estimated memory of a run exceeds "
                    "what is available (the check is refused in one line otherwise).")


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
  try:  # what os.access cannot tell (root, /proc, a read-only mount): make a folder, remove it
    os.rmdir(tempfile.mkdtemp(prefix=".dljax-probe-", dir=existing))
  except OSError as e:
    fail(f"--{flag} {path!r} cannot be written: {existing!r} does not accept new files "
         f"({e.strerror})")


def quiet_backend_probe() -> None:
  """JAX logs at INFO that it found no TPU; absl shows INFO, so keep that line off stderr."""
  import logging as std_logging  # noqa: PLC0415

  std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)


def fail(message: str) -> None:
  """Bad input: one line on stderr, exit status 2, no traceback."""
  prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "dljax"
  sys.stderr.write(f"{prog}: error: {message}\n")
  sys.exit(2)


def compile_timer():
  """``.seconds``: JAX's tracing, lowering and compilation so far (``dljax.run``'s counter)."""
  from dljax import run  # noqa: PLC0415

  return run.COMPILE_SECONDS


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


def with_data_flags(arguments: dict[str, Any], data_arguments: dict[str, Any]) -> dict[str, Any]:
  """The launcher's arguments, with ``dljax.userdata``'s (--data, --test_data, ...) when --data
  is given; one of those without --data is one line and exit status 2."""
  if flags.FLAGS["data"].value is not None:
    return {**arguments, **data_arguments}
  given = [k for k in data_arguments if k != "data" and flags.FLAGS[k].present]
  if given:
    fail(f"--{given[0]} needs --data=PATH (the tutorial's data has no columns to choose)")
  return arguments


def prepare_or_fail(name: str, settings: dict[str, Any], flag_names):
  """Builds the example (every argument checked; on the user's --data: ``dljax.userdata``) or
  stops with a one-line error."""
  from dljax import examples, userdata  # noqa: PLC0415

  try:
    if settings.get("data") is not None:
      return userdata.PREPARERS[name](**settings)
    return examples.PREPARERS[name](**settings)
  except (ValueError, TypeError) as e:
    fail(flag_message(e, flag_names))


def launch(name: str, arguments: dict[str, Callable[[str, Any], Any]]) -> None:
  """The body of a launcher's main(): flags -> prepared example -> run -> files. SIGINT and
  SIGTERM stop it within seconds from here on (``dljax.run.StopSignals``)."""
  from dljax import checks, run  # noqa: PLC0415

  FLAGS = flags.FLAGS
  quiet_backend_probe()
  with run.StopSignals(report=_report_stop) as signals, _stops():
    try:
      settings = {k: to_argument(k, FLAGS[k].value) for k, to_argument in arguments.items()}
    except checks.BadArgument as e:
      fail(flag_message(e, arguments))
    enable_compilation_cache(FLAGS.compilation_cache)
    check_output_folder("workdir", FLAGS.workdir)
    if not FLAGS.allow_large:
      check_sizes(name, settings)
    distributed.initialize_from_flags()  # before any JAX computation; checks --ensemble
    with hold_workdir(FLAGS.workdir):
      experiment = prepare_or_fail(name, settings, set(arguments))
      signals.check()
      config = {k: FLAGS[k].value for k in sorted(set(arguments) | run_only_flags())}
      run_flags = {k: FLAGS[k].value for k in run_flag_names()}
      run_and_write(experiment, FLAGS.workdir, config, allow_large=FLAGS.allow_large, **run_flags)


# Values per row of an example's data (its n_train rows), for the size check before it is made.
_DATA_VALUES = {"mlp": 2, "vae": 2, "cvae": 2}
# The flags that make each part of the memory estimate grow, likeliest first: a refusal names
# the first of them given off its default, for the largest part that has one (else the first).
_GROWS_WITH = {"data": ("n_train",), "history": ("ensemble", "steps"),
               "state": ("ensemble", "hidden", "encoder", "decoder", "latent"),
               "chunk": ("ensemble", "batch_size", "n_train", "hidden", "encoder", "decoder",
                         "latent", "lags", "log_every", "steps")}


def check_sizes(name: str, settings: dict[str, Any]) -> None:
  """Refuses (one line naming a flag, exit 2) what is too large from the sizes alone, before any
  array is made: the data (its n_train rows) and the least loss history (ensemble x steps)."""
  from dljax import resources  # noqa: PLC0415

  parts = {}
  rows, members, steps = (settings.get(k) for k in ("n_train", "ensemble", "steps"))
  if name in _DATA_VALUES and isinstance(rows, int) and rows > 0:
    parts.update(resources.making_data(rows, _DATA_VALUES[name]).host)
  if all(isinstance(v, int) and v > 0 for v in (members, steps)):
    parts.update(resources.history(members, steps).host)
  try:
    resources.check(resources.Estimate(parts, {}))
  except resources.TooLarge as e:
    _refuse(e, name, settings)


def check_memory(experiment, config: dict[str, Any]) -> None:
  """Refuses (one line naming a flag, exit 2) a run whose estimated memory exceeds what is
  available (``dljax.resources``); it compiles the chunk that the run then reuses."""
  from dljax import resources  # noqa: PLC0415

  try:
    resources.check(resources.estimate(experiment.model, experiment.objective, experiment.data,
                                       **experiment.fit_kwargs))
  except resources.TooLarge as e:
    _refuse(e, experiment.name, config)


def _refuse(e, name: str, values: dict[str, Any]) -> None:
  """The refusal's line, naming the first flag given off its default that the largest part
  grows with (``_GROWS_WITH``, the parts largest first)."""
  from dljax import examples  # noqa: PLC0415

  defaults, FLAGS = examples.defaults(name.removesuffix("_data")), flags.FLAGS
  given = lambda f: (not FLAGS[f].using_default_value if f in FLAGS and FLAGS.is_parsed()
                     else values[f] != defaults.get(f))
  parts = sorted(e.parts, key=e.parts.get, reverse=True)
  named = [f for part in parts for f in _GROWS_WITH[part] if f in values]
  flag = next((f for f in named if given(f)), named[0] if named else None)
  value = values.get(flag)
  value = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
  fail(f"{f'--{flag}={value}: ' if flag else ''}{e}; --allow_large runs it anyway")


@contextlib.contextmanager
def hold_workdir(workdir: str):
  """The workdir's lock (``dljax.resources.WorkdirLock``, process 0), taken before any work: one
  line and exit 2 while another run holds it. Released at the end, and the workdir removed
  when it was made for the lock and is still empty (a refused run writes nothing)."""
  import jax  # noqa: PLC0415

  from dljax import resources  # noqa: PLC0415

  if jax.process_index() != 0:
    yield
    return
  try:
    lock = resources.WorkdirLock(workdir)
  except resources.WorkdirBusy as e:
    fail(f"--workdir: {e}; wait for it to end or choose another --workdir")
  try:
    yield
  finally:
    lock.release(remove_workdir=True)


@contextlib.contextmanager
def _stops():
  """A run's stop (``dljax.run.Stopped``) ends the launcher: one line, 128 + the signal."""
  from dljax import run  # noqa: PLC0415

  try:
    yield
  except run.Stopped as s:
    _stop_run(_stop_line(s), 128 + s.signum)


def _stop_before_start(signum, frame) -> None:
  _stop_run(f"stopped by {signal.Signals(signum).name} before the run started", 128 + signum)


def _stop_line(stopped) -> str:
  return f"{stopped}; continue with --resume"


def _report_stop(stopped) -> None:
  """What a forced stop (``dljax.run.StopSignals``) prints before the process ends."""
  prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "dljax"
  sys.stderr.write(f"{prog}: {_stop_line(stopped)}\n")


def _safely(write: Callable[[], Any]) -> None:
  """One output file, written after a stop check and under the stop lock (a forced stop waits
  for it, so no file is left half-written)."""
  from dljax import run  # noqa: PLC0415

  signals = run.StopSignals.current()
  with contextlib.nullcontext() if signals is None else signals.lock:
    if signals is not None:
      signals.check()
    write()


def run_flag_names() -> list[str]:
  """The flags of ``dljax.run.Run``: --resume, --checkpoint_every, --keep_checkpoints,
  --checkpoint_seconds."""
  from dljax import run  # noqa: PLC0415

  return [p.name for p in flag_parameters(run.Run)]


def run_only_flags() -> frozenset[str]:
  """Flags that change how a run is carried out but not what it computes (a run may be resumed
  with other values of these): --workdir, --compilation_cache, --log_every, --allow_large and
  Run's."""
  return frozenset({"workdir", "compilation_cache", "log_every", "allow_large",
                    *run_flag_names()})


def run_config(config: dict[str, Any]) -> dict[str, Any]:
  """The flags that determine what a run computes (a resumed run must have the same)."""
  return {k: v for k, v in config.items() if k not in run_only_flags()}


def run_and_write(experiment, workdir: str, config: dict[str, Any], allow_large: bool = False,
                  **run_flags) -> dict[str, Any]:
  """Trains a prepared example in ``workdir`` with ``dljax.run.Run`` (checkpoints, resume,
  signals, metrics.jsonl; ``run_flags`` are its resume, checkpoint_every, keep_checkpoints and
  checkpoint_seconds) and writes the run's files; returns metrics.json. First the memory check
  (``check_memory``, unless ``allow_large``) and the workdir's lock; a fresh run then removes an
  earlier run's outputs. A run too large, a workdir in use or a checkpoint of another run stops
  the launcher with exit status 2, a divergence with 1 (the checkpoints, all finite, left as
  they were), SIGINT or SIGTERM with 128 + the signal (after the file being written, if any).
  """
  from dljax import run as R  # noqa: PLC0415

  timer = compile_timer()
  compile_before, t0 = timer.seconds, time.perf_counter()
  with R.StopSignals.current() or R.StopSignals(report=_report_stop), _stops():
    if not allow_large:
      check_memory(experiment, config)
    with _start_run(experiment, workdir, config, run_flags) as run, _out_of_memory(run):
      fitted = _train(run)
      t_trained = time.perf_counter()
      predictions, metrics_ = experiment.evaluate(fitted.params)
      result = {"example": experiment.name, **{k: _plain(v) for k, v in metrics_.items()},
                "steps": run.steps, "resumed_from_step": fitted.start_step,
                "steps_per_s": fitted.timings.get("steps_per_s"),
                "final_loss": float(np.mean(fitted.history["loss"][..., -1]))}
      if run.writer:
        _write_outputs(experiment, run, fitted, predictions)
      result["wall_s"] = {"total": time.perf_counter() - t0,
                          "compile": timer.seconds - compile_before,
                          "training": fitted.timings.get("total", 0.0),
                          "outputs": time.perf_counter() - t_trained}
      if run.writer:
        _safely(lambda: _write_json(os.path.join(workdir, "metrics.json"), result))
  logging.info("%s: %s", experiment.name, json.dumps(result))
  return result


def _plain(value: Any) -> Any:
  """A metric for metrics.json: a number as a float; anything else (a baseline's order, its
  configuration) as the plain JSON value it is."""
  return value if isinstance(value, (str, list, tuple, dict)) else float(value)


def _start_run(experiment, workdir: str, config: dict[str, Any], run_flags: dict[str, Any]):
  """The example's ``dljax.run.Run``, started (resumed or fresh), with config.json written."""
  from dljax import checks, resources, run  # noqa: PLC0415

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
  except resources.WorkdirBusy as e:
    fail(f"--workdir: {e}; wait for it to end or choose another --workdir")
  try:
    if started.writer:
      for name in () if started.resumed else OUTPUTS:  # not to be left beside this config.json
        if os.path.isfile(os.path.join(workdir, name)):
          _safely(functools.partial(os.unlink, os.path.join(workdir, name)))
      _safely(lambda: _write_json(os.path.join(workdir, "config.json"), {
          "example": experiment.name, "flags": config, "versions": versions()}))
  except BaseException:
    started.close()
    raise
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
  """``run.fit()``; a divergence ends the launcher with one line and exit status 1."""
  from dljax import run as R  # noqa: PLC0415
  from dljax import train as T  # noqa: PLC0415

  try:
    return run.fit()
  except T.DivergenceError as e:
    kept = R.checkpoints(run.workdir)
    last = f"the last finite checkpoint is {kept[0][1]}" if kept else "no checkpoint was written"
    _stop_run(f"{e}; {last}", 1)


@contextlib.contextmanager
def _out_of_memory(run):
  """Memory that ran out (the evaluation is not in the estimate): one line, exit status 1."""
  from dljax import run as R  # noqa: PLC0415

  try:
    yield
  except (MemoryError, RuntimeError) as e:
    if not isinstance(e, MemoryError) and "RESOURCE_EXHAUSTED" not in str(e):
      raise
    kept = R.checkpoints(run.workdir)
    last = f"the newest checkpoint is {kept[0][1]}" if kept else "no checkpoint was written"
    _stop_run(f"out of memory: {str(e).splitlines()[0]}; {last}", 1)


def _write_outputs(experiment, run, fitted, predictions: dict[str, np.ndarray]) -> None:
  """predictions.npz, checkpoint.msgpack (the final state, as the last training checkpoint),
  figure.png and loss.png, each written atomically."""
  from dljax import checkpoint  # noqa: PLC0415
  from experiments import figures  # noqa: PLC0415

  atomically, workdir = checkpoint.write_atomically, run.workdir
  _safely(lambda: atomically(os.path.join(workdir, "predictions.npz"),
                             lambda p: np.savez(p, **predictions)))
  _safely(lambda: run.save(os.path.join(workdir, "checkpoint.msgpack"), fitted.state))
  _safely(lambda: atomically(os.path.join(workdir, "figure.png"),
                             lambda p: figures.FIGURES[experiment.name](predictions, p)))
  _safely(lambda: atomically(os.path.join(workdir, "loss.png"),
                             lambda p: figures.loss_curves(fitted.history, p, experiment.name)))


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
