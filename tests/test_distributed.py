"""One ensemble trained by two processes on localhost (``jax.distributed``, gloo over TCP).

Each test starts two Python processes that connect through a coordinator on a free localhost
port, one CPU device each, so ``jax.devices()`` has 2 devices and each process trains half of
the members. Their results are compared with a single-process run of the same ensemble.

Skipped only when this machine lacks a capability the test needs, probed directly: a jaxlib
built with gloo CPU collectives, and a TCP connection on localhost.
"""

import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from dljax import checkpoint
from dljax import data as D
from dljax import models as M
from dljax import objectives as O
from dljax import train as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K, STEPS, LOG_EVERY = 4, 60, 20


def _missing_capability() -> str | None:
  """Why two JAX processes cannot talk on this machine, or None."""
  from jax._src.lib import _jax  # noqa: PLC0415

  if not hasattr(_jax, "make_gloo_tcp_collectives"):
    return ("this jaxlib has no gloo CPU collectives (jax._src.lib._jax."
            "make_gloo_tcp_collectives), which cross-process computations on CPU need")
  try:
    with (socket.create_server(("127.0.0.1", 0)) as server,
          socket.create_connection(server.getsockname(), timeout=5)):
      pass
  except OSError as e:
    return f"no TCP connection on localhost: {e}"
  return None


MISSING = _missing_capability()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env():
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device per process
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
  return env


def _output(name, proc):
  return (f"{name}: exit status {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
          f"stderr:\n{proc.stderr[-3000:]}")


def _run_together(commands: dict[str, list[str]], timeout: float = 300) -> dict:
  """Runs the commands at once; when one fails the others are stopped (they would wait for it
  until JAX's timeouts). Returns name -> CompletedProcess."""
  procs = {name: subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for name, args in commands.items()}
  deadline = time.monotonic() + timeout
  try:
    while any(p.poll() is None for p in procs.values()):
      failed = any(p.returncode not in (None, 0) for p in procs.values())
      if failed or time.monotonic() > deadline:
        for p in procs.values():
          if p.poll() is None:
            p.kill()
      time.sleep(0.2)
  finally:
    results = {}
    for name, p in procs.items():
      if p.poll() is None:
        p.kill()
      out, err = p.communicate()
      results[name] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
  return results


# argv: coordinator address, process id, output folder, K, STEPS, LOG_EVERY. Trains the RNN of
# tests/test_train.py.
SCRIPT = r"""
import json, sys
import jax, numpy as np
from experiments import distributed
from dljax import data as D, models as M, objectives as O, train as T

address, process_id, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
K, STEPS, LOG_EVERY = (int(a) for a in sys.argv[4:7])
distributed.initialize(address, 2, process_id)
series = D.sine_series()[:66]
x, y = D.lag_windows(series, 5)
rnn = M.rnn()
chunks, callbacks = [], []
sharded = T._chunk_sharded

def spy(state, *args, **kwargs):  # what this process holds of the state entering each chunk
  leaf = jax.tree.leaves(state)[1]
  chunks.append({"shards": [list(s.data.shape) for s in leaf.addressable_shards],
                 "global_shape": list(leaf.shape),
                 "fully_addressable": leaf.is_fully_addressable})
  return sharded(state, *args, **kwargs)

T._chunk_sharded = spy

def callback(state, terms, seconds):
  leaves = jax.tree.leaves(state)
  callbacks.append({"fully_addressable": all(a.is_fully_addressable for a in leaves),
                    "members": int(leaves[1].shape[0]), "loss_shape": list(terms["loss"].shape)})

fit = T.fit(rnn, O.mse(rnn), {"x": x, "y": y}, seed=list(range(K)), steps=STEPS,
            batch_size=4, log_every=LOG_EVERY, callback=callback)
leaves = jax.tree.leaves(fit.state)
np.savez(f"{out}/state{process_id}.npz", *[np.asarray(a) for a in leaves],
         loss=fit.history["loss"])
json.dump({"process_count": jax.process_count(), "process_index": jax.process_index(),
           "devices": [d.id for d in jax.devices()],
           "local_devices": [d.id for d in jax.local_devices()],
           "chunks": chunks, "callbacks": callbacks,
           "result_fully_addressable": all(a.is_fully_addressable for a in leaves)},
          open(f"{out}/report{process_id}.json", "w"))
"""


def test_two_processes_train_one_ensemble(tmp_path):
  """fit with seed=[0..3] in two processes: each process holds 2 members during training,
  gets all 4 back (callback and result, fully addressable), and both match the single-process
  run to float32 rounding (measured: differences of about 1e-7; tolerance 1e-5, as in
  tests/test_train.py)."""
  address = f"127.0.0.1:{_free_port()}"
  procs = _run_together({f"p{i}": ["-c", SCRIPT, address, str(i), str(tmp_path), str(K),
                                               str(STEPS), str(LOG_EVERY)]
                         for i in range(2)})
  for name, proc in procs.items():
    assert proc.returncode == 0, _output(name, proc)
  series = D.sine_series()[:66]
  x, y = D.lag_windows(series, 5)
  rnn = M.rnn()
  ref = T.fit(rnn, O.mse(rnn), {"x": x, "y": y}, seed=list(range(K)), steps=STEPS, batch_size=4,
              log_every=LOG_EVERY)
  ref_leaves = [np.asarray(a) for a in jax.tree.leaves(ref.state)]
  states = []
  for i in range(2):
    with open(tmp_path / f"report{i}.json") as f:
      report = json.load(f)
    assert report["process_count"] == 2 and report["process_index"] == i
    assert len(report["devices"]) == 2 and len(report["local_devices"]) == 1
    assert len(report["chunks"]) == STEPS // LOG_EVERY
    for chunk in report["chunks"]:  # during training: 2 of the 4 members on this process
      assert chunk["global_shape"][0] == K and not chunk["fully_addressable"]
      assert [shape[0] for shape in chunk["shards"]] == [K // 2]
    assert report["callbacks"] == [{"fully_addressable": True, "members": K,
                                    "loss_shape": [K, LOG_EVERY]}] * (STEPS // LOG_EVERY)
    assert report["result_fully_addressable"]
    with np.load(tmp_path / f"state{i}.npz") as f:
      states.append([f[f"arr_{j}"] for j in range(len(ref_leaves))])
      np.testing.assert_allclose(f["loss"], ref.history["loss"], rtol=1e-4, atol=1e-6)
  for a, b, r in zip(*states, ref_leaves):
    np.testing.assert_array_equal(a, b)  # both processes hold the same gathered state
    np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5)
  assert not np.allclose(states[0][1][0], states[0][1][1])  # the members are different runs


def test_mlp_launcher_across_two_processes(tmp_path):
  """python -m experiments.mlp --ensemble=2 --num_processes=2 (one member per process): both
  processes exit 0, process 0 writes the run's checkpoint, and its parameters equal a
  single-process run's to float32 rounding (tolerance 1e-5)."""
  address = f"127.0.0.1:{_free_port()}"
  common = ["-m", "experiments.mlp", "--ensemble=2", f"--steps={STEPS}", "--log_every=20",
            "--compilation_cache="]
  multi = tmp_path / "two_processes"  # process 1 gets a folder of its own: whether it writes
  procs = _run_together({             # files or not, it cannot race process 0 for them
      **{f"p{i}": [*common, f"--coordinator_address={address}", "--num_processes=2",
                   f"--process_id={i}", f"--workdir={multi if i == 0 else tmp_path / 'p1'}"]
         for i in range(2)},
      "single": [*common, f"--workdir={tmp_path / 'one_process'}"]})
  for name, proc in procs.items():
    assert proc.returncode == 0, _output(name, proc)
    assert "Traceback" not in proc.stdout + proc.stderr, _output(name, proc)
  _, params, _, meta = checkpoint.load(multi / "checkpoint.msgpack")
  _, ref, _, _ = checkpoint.load(tmp_path / "one_process" / "checkpoint.msgpack")
  assert meta["ensemble"] == 2
  for a, r in zip(jax.tree.leaves(params), jax.tree.leaves(ref)):
    assert a.shape[0] == 2
    np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5)
  with np.load(multi / "predictions.npz") as f:
    assert f["y_mean_members"].shape == (2, 1000, 1)


@pytest.mark.parametrize("args,flag", [
    (["--num_processes=2"], "--coordinator_address"),
    (["--num_processes=2", "--process_id=2", "--coordinator_address=127.0.0.1:1"],
     "--process_id"),
    (["--num_processes=0"], "--num_processes"),
    (["--coordinator_address=localhost", "--num_processes=2"], "--coordinator_address"),
])
def test_bad_distributed_flags_fail_with_one_line(tmp_path, args, flag):
  """Inconsistent multi-process flags: exit status 2 and one line naming the flag, at once."""
  proc = subprocess.run([sys.executable, "-m", "experiments.mlp", "--steps=1", "--ensemble=2",
                         f"--workdir={tmp_path / 'run'}", *args], cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 2, _output("mlp", proc)
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and flag in lines[0], _output("mlp", proc)
  assert not (tmp_path / "run").exists()
