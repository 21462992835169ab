"""Flags that train one ensemble across several processes (JAX's multi-controller runtime).

Start the same launcher once per process, with the same flags except --process_id:

  python -m experiments.mlp --ensemble=8 --coordinator_address=host0:12345 \\
      --num_processes=2 --process_id=0 --workdir=runs/mlp8      # on host0
  python -m experiments.mlp --ensemble=8 --coordinator_address=host0:12345 \\
      --num_processes=2 --process_id=1 --workdir=runs/mlp8      # on host1

``jax.distributed.initialize`` connects them (process 0 serves the coordinator at that address);
``jax.devices()`` then lists every process's devices, and ``dljax.train.fit`` splits the
members across all of them (--ensemble must be a multiple of the total device count). On CPU the
processes exchange data through gloo over TCP (``jax_cpu_collectives_implementation``).

In one process, --cpu_devices makes the CPU backend show several devices (one per core by
default, as many as divide --ensemble), so that the members train side by side on every core.
"""

from __future__ import annotations

import os

from absl import flags

FLAGS = ("coordinator_address", "num_processes", "process_id", "cpu_devices")


def define_flags() -> None:
  """--coordinator_address, --num_processes, --process_id."""
  flags.DEFINE_string("coordinator_address", "", "host:port of process 0's coordinator, for a "
                      "run across several processes; '' (default): this process alone.")
  flags.DEFINE_integer("num_processes", 1, "Processes that train the ensemble together (each "
                       "started with the same flags except --process_id).")
  flags.DEFINE_integer("process_id", 0, "This process's index in [0, --num_processes); process 0 "
                       "serves the coordinator.")
  flags.DEFINE_integer("cpu_devices", None, "CPU devices the ensemble's members are split across, "
                       "one program each, side by side (a divisor of --ensemble). Default: the "
                       "largest divisor of --ensemble up to the usable cores; left alone with "
                       "several processes or when XLA_FLAGS=--xla_force_host_platform_device_count"
                       " sets it. Only for the CPU backend; the members' results agree to float "
                       "rounding (~1e-7) whatever the count.")


def check_flags(coordinator_address: str, num_processes: int, process_id: int) -> None:
  """ValueError naming the flag for an inconsistent combination."""
  if num_processes < 1:
    raise ValueError(f"--num_processes must be >= 1, got {num_processes}")
  if not 0 <= process_id < num_processes:
    raise ValueError(f"--process_id must be in [0, --num_processes={num_processes}), got "
                     f"{process_id}")
  if num_processes > 1 and not coordinator_address:
    raise ValueError(f"--coordinator_address (host:port) is needed with --num_processes="
                     f"{num_processes}")
  if coordinator_address and not coordinator_address.rpartition(":")[2].isdigit():
    raise ValueError(f"--coordinator_address must be host:port, got {coordinator_address!r}")


def initialize(coordinator_address: str, num_processes: int, process_id: int) -> None:
  """``jax.distributed.initialize`` when a coordinator is given; before any JAX computation."""
  import jax  # noqa: PLC0415 (imported late so that --help stays fast)

  check_flags(coordinator_address, num_processes, process_id)
  if not coordinator_address:
    return
  # The CPU backend's cross-process collectives (gloo is also jax 0.10's default).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address, num_processes=num_processes,
                             process_id=process_id)


def initialize_from_flags() -> None:
  """Initializes the multi-process runtime from the flags (one-line error for a bad value) and
  checks that --ensemble splits evenly across the devices, before anything is compiled."""
  import jax  # noqa: PLC0415

  from dljax import distributed  # noqa: PLC0415
  from experiments import common  # noqa: PLC0415

  f = flags.FLAGS
  n = cpu_devices_from_flags()
  if n > 1:  # before the backend starts (initialize and every JAX operation start it)
    jax.config.update("jax_num_cpu_devices", n)
  try:
    initialize(f.coordinator_address, f.num_processes, f.process_id)
  except ValueError as e:
    common.fail(str(e))
  ensemble = f.ensemble
  try:  # fit's own rule: the members split evenly across every device of every process
    distributed.resolve_devices(None, ensemble, ensemble > 1)
  except ValueError:
    common.fail(f"--ensemble must be a multiple of the number of devices ({jax.device_count()}, "
                f"in {jax.process_count()} process(es)), got {ensemble}")


def cpu_devices_from_flags() -> int:
  """--cpu_devices, or its default for --ensemble and --num_processes; one-line error if bad."""
  from dljax import distributed  # noqa: PLC0415
  from experiments import common  # noqa: PLC0415

  f = flags.FLAGS
  n = f.cpu_devices
  if n is None:
    import jax  # noqa: PLC0415

    forced = ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
              or jax.config.jax_num_cpu_devices > 0)
    if forced or f.num_processes > 1 or f.ensemble < 1:
      return 1  # the devices someone chose (XLA_FLAGS or JAX's config), or one per process
    return distributed.cpu_devices_for(f.ensemble)
  if n < 1 or (f.ensemble >= 1 and f.ensemble % n):
    common.fail(f"--cpu_devices must be a divisor of --ensemble ({f.ensemble}), got {n}")
  return n
