"""``import dljax`` raises XLA's CPU small-while-loop threshold before JAX starts, joins the
user's own XLA flags, keeps a threshold the user gave, and leaves everything alone when asked
to or when JAX has already started."""

import os
import subprocess
import sys

import pytest
from helpers import ROOT

from dljax import xla_flags

OPTION = f"xla_cpu_small_while_loop_byte_threshold={xla_flags.SMALL_LOOP_BYTES}"


@pytest.mark.parametrize("flags, expected", [
    ("", f"--xla_backend_extra_options={OPTION}"),
    ("--xla_force_host_platform_device_count=4",
     f"--xla_force_host_platform_device_count=4 --xla_backend_extra_options={OPTION}"),
    ('--xla_backend_extra_options="a=1" --xla_dump_to=/tmp/d',  # XLA merges the two maps
     f'--xla_backend_extra_options="a=1" --xla_dump_to=/tmp/d --xla_backend_extra_options={OPTION}'),
    ("--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=0",
     "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=0"),
    ("/etc/xla_flags.txt", "/etc/xla_flags.txt"),  # a file of flags: left to XLA
])
def test_the_threshold_joins_the_users_flags(flags, expected):
  assert xla_flags.with_small_loops(flags) == expected


def test_configure_changes_the_flags_only_before_jax_starts_and_unless_opted_out(monkeypatch):
  monkeypatch.setattr(xla_flags, "backends_started", lambda: False)
  environ = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
  assert xla_flags.configure(environ)
  assert environ["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false --xla_backend_extra_options={OPTION}"
  assert not xla_flags.configure(environ)  # already there
  environ = {xla_flags.OPT_OUT: "1"}
  assert not xla_flags.configure(environ) and "XLA_FLAGS" not in environ
  monkeypatch.setattr(xla_flags, "backends_started", lambda: True)
  environ = {}
  with pytest.warns(UserWarning, match="imported after JAX started"):
    assert not xla_flags.configure(environ)
  assert environ == {}


# A small loop's compiled program holds XLA's single-kernel call when the threshold applies.
_PROBE = """
import os, sys, warnings
warnings.simplefilter("ignore")
if sys.argv[1] != "dljax first":
  import jax.numpy as jnp
if sys.argv[1] == "a jax operation first":
  jnp.ones(1).block_until_ready()
import dljax, jax, jax.numpy as jnp
loop = jax.jit(lambda x: jax.lax.fori_loop(0, 100, lambda i, x: jnp.tanh(x) * 1.01, x))
text = loop.lower(jnp.ones((10, 50))).compile().as_text()
print("xla_cpu_small_call" in text, os.environ.get("XLA_FLAGS", ""))
"""


_OWN = "--xla_backend_extra_options=xla_cpu_disable_loop_unrolling=true"  # a user's own


@pytest.mark.parametrize("order, opt_out, user_flags, one_kernel", [
    ("dljax first", None, "", True), ("dljax first", "1", "", False),
    ("dljax first", None, _OWN, True), ("jax imported first", None, "", True),
    ("a jax operation first", None, "", False)])
def test_import_dljax_compiles_small_loops_as_one_kernel(order, opt_out, user_flags, one_kernel):
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_flags.OPT_OUT)}
  env["XLA_FLAGS"] = user_flags
  if opt_out:
    env[xla_flags.OPT_OUT] = opt_out
  out = subprocess.run([sys.executable, "-c", _PROBE, order], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  hoisted, flags = (out.stdout.strip() + " ").split(" ", 1)
  assert hoisted == str(one_kernel)
  assert (OPTION in flags) == one_kernel  # nothing claimed that XLA did not read
