"""XLA's CPU backend compiles a small while loop into one kernel, when asked to.

By default XLA's CPU runtime runs a loop body op by op (a "thunk" each), which costs about as
much as the arithmetic for the tutorial's recurrent networks (hidden size 4, batch 1). Its
small-while-loop pass instead compiles a loop that touches fewer than a threshold of bytes and
holds no library call (YNNPACK's larger matmuls, custom calls) into a single kernel. dljax
raises that threshold, from 1 kB, to ``SMALL_LOOP_BYTES`` (BUILD_NOTES.md, Decisions: small
loops as one kernel). XLA reads ``XLA_FLAGS`` once, when JAX starts its first backend, so
``configure`` runs on ``import dljax``; after that point it changes nothing and warns.
"""

import os
import sys
import warnings

SMALL_LOOP_BYTES = 4 * 2**20
OPTION = "xla_cpu_small_while_loop_byte_threshold"
OPT_OUT = "DLJAX_XLA_DEFAULTS"  # set to 1 to leave XLA_FLAGS as they are


def with_small_loops(flags: str, threshold: int = SMALL_LOOP_BYTES) -> str:
  """``flags`` (an XLA_FLAGS value) with the threshold as one more flag (XLA merges every
  ``--xla_backend_extra_options`` into one map); unchanged when they hold the option already or
  name a file of flags (a value not starting with "-" is a path to XLA)."""
  given = flags.strip()
  if OPTION in flags or (given and not given.startswith("-")):
    return flags
  return f"{flags} --xla_backend_extra_options={OPTION}={threshold}".strip()


def backends_started() -> bool:
  """Whether JAX has started a backend in this process (after which XLA_FLAGS are read)."""
  bridge = sys.modules.get("jax._src.xla_bridge")
  started = getattr(bridge, "backends_are_initialized", None)
  return bool(started and started())


def configure(environ=os.environ) -> bool:
  """Adds the threshold to ``environ["XLA_FLAGS"]`` (which the processes this one starts inherit),
  unless ``DLJAX_XLA_DEFAULTS=1`` or JAX's backends have started (XLA has read its flags then:
  a warning says so); returns whether it changed them."""
  flags = environ.get("XLA_FLAGS", "")
  if environ.get(OPT_OUT, "") == "1" or OPTION in flags:
    return False
  if backends_started():
    warnings.warn("dljax was imported after JAX started, so XLA's CPU backend keeps running "
                  "small loops op by op; import dljax first for its faster CPU loops "
                  "(dljax.xla_flags; DLJAX_XLA_DEFAULTS=1 silences this)", stacklevel=3)
    return False
  environ["XLA_FLAGS"] = with_small_loops(flags)
  return environ["XLA_FLAGS"] != flags
