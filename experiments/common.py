"""What the five launchers share: common flags, the compilation cache, and writing a run's files.

Flags are defined here (common ones) and in each launcher (its model's sizes); ``main`` of a
launcher turns them into plain keyword arguments of ``dljax.examples.prepare_<name>``.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

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
  flags.DEFINE_integer("checkpoint_every", 1000, "Steps between training checkpoints in "
                       "workdir/checkpoints, written at the end of the first chunk of --log_every "
                       "steps past each multiple (0: only at the end). SIGINT and SIGTERM also "
                       "write one before the run stops.")
  flags.DEFINE_integer("keep_checkpoints", 3, "How many of the newest training checkpoints to keep.")
  flags.DEFINE_bool("resume", False, "Continue from the newest good checkpoint in --workdir "
                    "(from step 0 when there is none); the other flags must match its run's.")
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


CHECKPOINT_DIR = "checkpoints"
# A run's outputs besides config.json and metrics.jsonl (both rewritten when it starts).
OUTPUTS = ("metrics.json", "predictions.npz", "checkpoint.msgpack", "figure.png", "loss.png")
# Flags that change how a run is carried out but not what it computes: a run may be resumed with
# other values of these.
RUN_ONLY_FLAGS = frozenset({"workdir", "compilation_cache", "resume", "checkpoint_every",
                            "keep_checkpoints", "log_every"})
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Stopped(Exception):
  """Raised by the chunk callback after a SIGINT or SIGTERM, once the checkpoint is written."""

  def __init__(self, signum: int, step: int, path: str):
    super().__init__(signum, step, path)
    self.signum, self.step, self.path = signum, step, path


def _checkpoint_path(workdir: str, step: int) -> str:
  return os.path.join(workdir, CHECKPOINT_DIR, f"ckpt-{step:09d}.msgpack")


def _checkpoints(workdir: str) -> list[tuple[int, str]]:
  """The (step, path) of the training checkpoints in ``workdir``, newest first."""
  folder = os.path.join(workdir, CHECKPOINT_DIR)
  found = []
  for name in os.listdir(folder) if os.path.isdir(folder) else []:
    stem = name.removeprefix("ckpt-").removesuffix(".msgpack")
    if name.startswith("ckpt-") and name.endswith(".msgpack") and stem.isdigit():
      found.append((int(stem), os.path.join(folder, name)))
  return sorted(found, reverse=True)


def run_config(config: dict[str, Any]) -> dict[str, Any]:
  """The flags that determine what a run computes (a resumed run must have the same)."""
  return {k: v for k, v in config.items() if k not in RUN_ONLY_FLAGS}


class _Resumed(NamedTuple):
  state: Any  # dljax.train.TrainState
  history: dict[str, np.ndarray]
  path: str


def _resume_point(experiment, workdir: str, config: dict[str, Any]) -> _Resumed | None:
  """The newest good checkpoint of this run in ``workdir``, or None to start from step 0.

  A corrupt or truncated checkpoint is reported in one line and the previous one is tried; a
  checkpoint of another example, model or configuration stops the launcher (exit status 2).
  """
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  from dljax import checkpoint  # noqa: PLC0415
  from dljax import train as T  # noqa: PLC0415

  for _, path in _checkpoints(workdir):
    try:
      model, params, arrays, meta = checkpoint.load(path)
    except (checkpoint.CheckpointError, OSError) as e:
      sys.stderr.write(f"warning: {e}; trying the previous checkpoint\n")
      continue
    if meta.get("example") != experiment.name:
      fail(f"--resume: {path} holds a checkpoint of the {meta.get('example')!r} example, this "
           f"run is {experiment.name!r}")
    stored, current = meta.get("config", {}), run_config(config)
    for key in sorted(set(stored) | set(current)):
      if stored.get(key) != current.get(key):
        fail(f"--resume: {path} was written with --{key}={stored.get(key)!r}, this run has "
             f"--{key}={current.get(key)!r}")
    if model != experiment.model:
      fail(f"--resume: {path} holds a model {checkpoint.model_config(model)}, this run builds "
           f"{checkpoint.model_config(experiment.model)}")
    stored, current = meta.get("devices"), _member_devices(config)
    if stored is not None and stored != current:  # each device's program rounds its own way
      fail(f"--resume: {path} was written by a run that split its members across {stored} "
           f"device(s), this run has {current} (its results would differ by float rounding); "
           f"give it {stored} (--cpu_devices={stored}, or as many processes)")
    train = arrays["train"]
    optimizer = experiment.fit_kwargs["optimizer"]
    params = jax.tree.map(jnp.asarray, params)
    state = T.TrainState(jnp.asarray(train["step"], jnp.int32), params,
                         checkpoint.restore_opt_state(optimizer, params, train["opt_state"]))
    logging.info("resuming from %s (step %d)", path, int(np.max(train["step"])))
    return _Resumed(state, {k: np.asarray(v) for k, v in train["history"].items()}, path)
  logging.info("no checkpoint to resume from in %s: starting from step 0", workdir)
  return None


def _member_devices(config: dict[str, Any]) -> int:
  """The devices fit splits an ensemble's members across (every device; 1 for one seed). The
  count is part of what the run computes: each device's program is compiled for its K / D
  members, and rounds accordingly."""
  import jax  # noqa: PLC0415

  return jax.device_count() if int(config.get("ensemble", 1)) > 1 else 1


def _restart_jsonl(path: str, step: int | None):
  """metrics.jsonl opened for appending, keeping only the complete lines up to ``step``."""
  kept = []
  if step is not None and os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          break  # a line cut short by a kill, and nothing after it
        if record.get("step", step + 1) > step:
          break
        kept.append(line if line.endswith("\n") else line + "\n")
  with open(path, "w") as f:
    f.writelines(kept)
  return open(path, "a")


def _from_every_process(value: np.ndarray) -> np.ndarray:
  """The value of every process (a collective: every process must call it), flattened."""
  from jax.experimental import multihost_utils  # noqa: PLC0415

  return np.asarray(multihost_utils.process_allgather(value)).ravel()


def run_and_write(experiment, workdir: str, config: dict[str, Any], *, checkpoint_every: int = 1000,
                  keep_checkpoints: int = 3, resume: bool = False) -> dict[str, Any]:
  """Trains a prepared example and writes the run's files into ``workdir``; returns metrics.json.

  At the end of the first chunk (see ``log_every``) that reaches each multiple of
  ``checkpoint_every`` steps (0: none), at the last step and on SIGINT or SIGTERM, the state is
  written to ``workdir/checkpoints/ckpt-<step>.msgpack`` (atomically, with a checksum); the
  newest ``keep_checkpoints`` are kept. With ``resume``
  training continues from the newest good one, and ends bitwise where an uninterrupted run
  ends. A non-finite loss or parameter stops the run (exit status 1) with the checkpoints, all
  finite, left as they were.
  """
  import jax  # noqa: PLC0415

  from dljax import checkpoint  # noqa: PLC0415
  from dljax import train as T  # noqa: PLC0415
  from experiments import figures  # noqa: PLC0415

  timer = compile_timer()
  compile_before, t0 = timer.seconds, time.perf_counter()
  total_steps = experiment.fit_kwargs["steps"]
  start = _resume_point(experiment, workdir, config) if resume else None
  start_step = 0 if start is None else int(np.max(np.asarray(start.state.step)))
  if jax.process_count() > 1:  # every process must resume from the same step
    steps = _from_every_process(np.int64(start_step))
    if np.any(steps != start_step):
      fail(f"--resume: the processes found checkpoints at different steps {steps.tolist()}; "
           "with several processes --workdir must be one folder that all of them can read")
  writer = jax.process_index() == 0  # with several processes, the first one writes the files
  if writer:
    os.makedirs(os.path.join(workdir, CHECKPOINT_DIR), exist_ok=True)
    for folder in (workdir, os.path.join(workdir, CHECKPOINT_DIR)):  # a kill during a write
      checkpoint.remove_temporaries(folder)
    if start is None:  # a fresh run: an earlier run's checkpoints must not be resumed, and its
      for _, old in _checkpoints(workdir):  # outputs must not sit beside this run's config
        os.unlink(old)
      for name in OUTPUTS:
        if os.path.isfile(os.path.join(workdir, name)):
          os.unlink(os.path.join(workdir, name))
    _write_json(os.path.join(workdir, "config.json"), {"example": experiment.name,
                                                      "flags": config, "versions": versions()})
  std = {k: {"mean": s.mean, "std": s.std} for k, s in experiment.standardisers.items()}
  meta = {"example": experiment.name, "flags": config, "config": run_config(config),
          "ensemble": int(config.get("ensemble", 1)), "devices": _member_devices(config)}
  history_chunks = [] if start is None else [start.history]
  stop, saved = {}, {"step": start_step}

  def history() -> dict[str, np.ndarray]:
    chunks = [c for c in history_chunks if c]
    return {k: np.concatenate([c[k] for c in chunks], axis=-1) for k in chunks[0]} if chunks else {}

  def save(path: str, state) -> None:
    arrays = {"standardisers": std, "train": checkpoint.train_arrays(state.step, state.opt_state,
                                                                    history())}
    checkpoint.save(path, experiment.model, state.params, arrays,
                    dict(meta, step=int(np.max(np.asarray(state.step)))))

  jsonl = _restart_jsonl(os.path.join(workdir, "metrics.jsonl"), start_step) if writer else None

  def after_chunk(train_state, terms, seconds):
    steps = terms["loss"].shape[-1]
    step = int(np.max(np.asarray(train_state.step)))
    history_chunks.append(terms)
    if jax.process_count() > 1:  # a signal to any process stops them all at the same chunk
      signums = _from_every_process(np.int32(stop.get("signum", 0)))
      if np.any(signums) and not stop:
        stop["signum"] = int(np.max(signums))
    if not writer:
      if stop:
        raise _Stopped(stop["signum"], step, _checkpoint_path(workdir, step))
      return
    line = {"step": step, "steps_per_s": steps / seconds}
    line.update({k: float(np.mean(v[..., -steps:])) for k, v in terms.items()})
    jsonl.write(json.dumps(line) + "\n")
    jsonl.flush()
    due = checkpoint_every and step // checkpoint_every > saved["step"] // checkpoint_every
    if due or step == total_steps or stop:
      save(_checkpoint_path(workdir, step), train_state)
      saved["step"] = step
      for _, old in _checkpoints(workdir)[keep_checkpoints:]:
        os.unlink(old)
    if stop:
      raise _Stopped(stop["signum"], step, _checkpoint_path(workdir, step))

  def on_signal(signum, frame):
    stop.setdefault("signum", signum)

  previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
  state, fit_timings = None if start is None else start.state, {}
  try:
    if start_step < total_steps:
      kwargs = dict(experiment.fit_kwargs, steps=total_steps - start_step)
      fit = T.fit(experiment.model, experiment.objective, experiment.data, state=state,
                  callback=after_chunk, **kwargs)
      state, fit_timings = fit.state, fit.timings
  except T.DivergenceError as e:
    kept = _checkpoints(workdir)
    last = f"the last finite checkpoint is {kept[0][1]}" if kept else "no checkpoint was written"
    _stop_run(f"{e}; {last}", 1)
  except _Stopped as s:
    _stop_run(f"stopped by {signal.Signals(s.signum).name} after step {s.step}; checkpoint "
              f"written to {s.path}; continue with --resume", 128 + s.signum)
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)
    if jsonl is not None:
      jsonl.close()
  t_trained = time.perf_counter()
  predictions, metrics_ = experiment.evaluate(state.params)
  full_history = history()
  result = {"example": experiment.name, **{k: float(v) for k, v in metrics_.items()},
            "steps": total_steps, "resumed_from_step": start_step,
            "steps_per_s": fit_timings.get("steps_per_s"),
            "final_loss": float(np.mean(full_history["loss"][..., -1]))}
  if writer:
    atomically = checkpoint.write_atomically
    atomically(os.path.join(workdir, "predictions.npz"), lambda p: np.savez(p, **predictions))
    save(os.path.join(workdir, "checkpoint.msgpack"), state)
    atomically(os.path.join(workdir, "figure.png"),
               lambda p: figures.FIGURES[experiment.name](predictions, p))
    atomically(os.path.join(workdir, "loss.png"),
               lambda p: figures.loss_curves(full_history, p, experiment.name))
  result["wall_s"] = {"total": time.perf_counter() - t0, "compile": timer.seconds - compile_before,
                      "training": fit_timings.get("total", 0.0),
                      "outputs": time.perf_counter() - t_trained}
  if writer:
    _write_json(os.path.join(workdir, "metrics.json"), result)
  logging.info("%s: %s", experiment.name, json.dumps(result))
  return result


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
  check_output_folder("workdir", workdir)
  every = FLAGS.checkpoint_every
  if every < 0:
    fail(f"--checkpoint_every must be an integer >= 0, got {every}")
  if FLAGS.keep_checkpoints < 1:
    fail(f"--keep_checkpoints must be an integer >= 1, got {FLAGS.keep_checkpoints}")
  distributed.initialize_from_flags()  # before any JAX computation; checks --ensemble
  experiment = prepare_or_fail(name, settings, names)
  config = {k: FLAGS[k].value for k in sorted(names | RUN_ONLY_FLAGS)}
  run_and_write(experiment, workdir, config, checkpoint_every=every,
                keep_checkpoints=FLAGS.keep_checkpoints, resume=FLAGS.resume)


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
