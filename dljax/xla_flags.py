"""XLA's CPU backend compiles a small while loop into one kernel, when asked to.

By default XLA's CPU runtime runs a loop body op by op (a "thunk" each), which costs about as
much as the arithmetic for the tutorial's recurrent networks (hidden size 4, batch 1). Its
small-while-loop pass instead compiles a loop that touches fewer than a threshold of bytes and
holds no library call (YNNPACK's larger matmuls, custom calls) into a single kernel. dljax
raises that threshold, from 1 kB, to ``SMALL_LOOP_BYTES`` (BUILD_NOTES.md, Decisions: small
loops as one kernel). XLA reads ``XLA_FLAGS`` once, when JAX starts its first backend, so
``configure`` runs on ``import dljax`` and does nothing after that point.
"""

import os
import re
import sys

SMALL_LOOP_BYTES = 4 * 2**20
OPTION = "xla_cpu_small_while_loop_byte_threshold"
OPT_OUT = "DLJAX_XLA_DEFAULTS"  # set to 1 to leave XLA_FLAGS as they are
_EXTRA = "--xla_backend_extra_options"


def with_small_loops(flags: str, threshold: int = SMALL_LOOP_BYTES) -> str:
  """``flags`` (an XLA_FLAGS value) with the threshold added; a threshold already given stays."""
  if OPTION in flags:
    return flags
  option = f"{OPTION}={threshold}"
  if re.search(rf"{_EXTRA}=\S", flags):  # join the user's own backend options
    return re.sub(rf"{_EXTRA}=(\S+)", lambda m: f"{_EXTRA}={m.group(1)},{option}", flags, 1)
  return f"{flags} {_EXTRA}={option}".strip()


def backends_started() -> bool:
  """Whether JAX has started a backend in this process (after which XLA_FLAGS are read)."""
  bridge = sys.modules.get("jax._src.xla_bridge")
  return bridge is not None and bridge.backends_are_initialized()


def configure(environ=os.environ) -> bool:
  """Adds the threshold to ``environ["XLA_FLAGS"]``, unless ``DLJAX_XLA_DEFAULTS=1`` or JAX's
  backends have started (XLA has read its flags then); returns whether it changed them."""
  if environ.get(OPT_OUT, "") == "1" or backends_started():
    return False
  flags = environ.get("XLA_FLAGS", "")
  environ["XLA_FLAGS"] = with_small_loops(flags)
  return environ["XLA_FLAGS"] != flags
