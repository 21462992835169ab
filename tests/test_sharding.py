"""An ensemble split across 4 devices: the host CPU as 4 XLA devices, in subprocesses.

``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before JAX starts, so the
4-device runs are subprocesses: a script calling ``fit`` (its results come back in an .npz and a
JSON file) and the mlp launcher. This process, with its one device, trains the reference.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
import pytest

from dljax import data as D
from dljax import models as M
from dljax import objectives as O
from dljax import train as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = 4
K, STEPS, LOG_EVERY = 8, 60, 20  # 3 chunks of the same length: one compiled program

# Runs with 4 devices; argv: output folder, K, STEPS, LOG_EVERY. The RNN of tests/test_train.py.
SCRIPT = r"""
import json, re, sys
import jax, numpy as np
from dljax import data as D, groups, models as M, objectives as O, train as T

out = sys.argv[1]
K, STEPS, LOG_EVERY = (int(a) for a in sys.argv[2:5])
DEVICES = 4
assert jax.device_count() == DEVICES, jax.devices()
series = D.sine_series()[:66]
x, y = D.lag_windows(series, 5)
rnn, data = M.rnn(), {"x": x, "y": y}
kw = dict(steps=STEPS, batch_size=4, log_every=LOG_EVERY)
caches = lambda: {"init": T._init._cache_size(), "ensemble": T._chunk_ensemble._cache_size(),
                  "sharded": T._chunk_sharded._cache_size()}
seen = []  # each chunk's state as the callback sees it

def callback(state, terms, seconds):
  leaves = jax.tree.leaves(state)
  seen.append({"specs": sorted({repr(tuple(getattr(a.sharding, "spec", ()))) for a in leaves}),
               "devices": len(leaves[1].sharding.device_set)})

sharded = T.fit(rnn, O.mse(rnn), data, seed=list(range(K)), callback=callback, **kw)
after_first = caches()
again = T.fit(rnn, O.mse(rnn), data, seed=list(range(K)), **kw)
after_second = caches()
one = T.fit(rnn, O.mse(rnn), data, seed=list(range(K)), devices=[jax.devices()[0]], **kw)
before_error = caches()
try:
  T.fit(rnn, O.mse(rnn), data, seed=list(range(6)), **kw)
  error = None
except ValueError as e:
  error = str(e)
after_error = caches()
# Twice the members, 4 a device, run two at a time on each (member groups under shard_map).
seeds2 = list(range(2 * K))
whole = T.fit(rnn, O.mse(rnn), data, seed=seeds2, **kw)
state2 = T.init_state(rnn, seeds2, T.adam())
params, treedef = jax.tree.flatten(state2.params)
member = groups.step_bytes(O.mse(rnn), treedef,
                       tuple(jax.ShapeDtypeStruct(a.shape[1:], a.dtype) for a in params),
                       tuple((k, jax.ShapeDtypeStruct((4, *np.shape(v)[1:]), np.float32))
                             for k, v in data.items()))
groups.MEMBER_GROUP_BYTES = 2 * DEVICES * member
group = T.member_group(O.mse(rnn), state2, data, 4, jax.devices())
grouped = T.fit(rnn, O.mse(rnn), data, seed=seeds2, **kw)
leaves = jax.tree.leaves(sharded.state)
shards = [[{"device": s.device.id, "shape": list(s.data.shape), "index": str(s.index)}
           for s in a.addressable_shards] for a in leaves]
np.savez(out + "/states.npz",
         **{f"sharded_{i}": np.asarray(a) for i, a in enumerate(leaves)},
         **{f"again_{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(again.state))},
         **{f"one_{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(one.state))},
         **{f"shard_{i}_{j}": np.asarray(s.data) for i, a in enumerate(leaves)
            for j, s in enumerate(a.addressable_shards)},
         **{f"whole_{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(whole.state))},
         **{f"grouped_{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(grouped.state))},
         loss_sharded=sharded.history["loss"], loss_one=one.history["loss"],
         loss_whole=whole.history["loss"], loss_grouped=grouped.history["loss"])
# The compiled sharded chunk: each device trains its own members, with no collective at all.
from dljax import distributed as dd
devices = jax.devices()
state, key = T._init_and_keys(rnn, T.adam(), jax.numpy.float32, list(range(K)), True)
state, key = dd.place((state, key), dd.member_sharding(devices))
arrays = dd.place(T.check_fit_arguments(rnn, O.mse(rnn), data, steps=1, batch_size=4),
                  dd.replicated(devices))
hlo = T._chunk_sharded.lower(state, key, arrays, objective=O.mse(rnn), optimizer=T.adam(),
                             batch_size=4, length=LOG_EVERY,
                             mesh=dd.members_mesh(devices)).compile().as_text()
collectives = sorted(set(re.findall(
    r" (all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter|send|recv)"
    r"(?:-start)?\(", hlo)))
json.dump({"seen": seen, "collectives": collectives, "hlo_chars": len(hlo), "shards": shards,
           "error": error, "after_first": after_first, "group": group,
           "after_second": after_second, "before_error": before_error, "after_error": after_error,
           "result_specs": sorted({repr(tuple(a.sharding.spec)) for a in leaves}),
           "one_sharding": type(jax.tree.leaves(one.state)[1].sharding).__name__},
          open(out + "/report.json", "w"))
"""


def _env():
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}",
             JAX_PLATFORMS="cpu")
  env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
  return env


def _run(args, cwd=ROOT):
  return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True,
                        text=True, timeout=300, check=False)


def _output(proc):
  return f"exit status {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The three 4-device subprocesses, run two at a time, and the one-device reference here."""
  root = tmp_path_factory.mktemp("sharding")
  script_out, workdir, bad = root / "script", root / "mlp4", root / "mlp3"
  script_out.mkdir()
  launcher = ["-m", "experiments.mlp", "--steps=40", "--log_every=20", "--compilation_cache="]
  with ThreadPoolExecutor(max_workers=2) as pool:
    script = pool.submit(_run, ["-c", SCRIPT, str(script_out), str(K), str(STEPS),
                                  str(LOG_EVERY)])
    mlp = pool.submit(_run, [*launcher, "--ensemble=4", f"--workdir={workdir}"])
    mlp_bad = pool.submit(_run, [*launcher, "--ensemble=3", f"--workdir={bad}"])
    series = D.sine_series()[:66]
    x, y = D.lag_windows(series, 5)
    rnn = M.rnn()
    reference = T.fit(rnn, O.mse(rnn), {"x": x, "y": y}, seed=list(range(K)), steps=STEPS,
                      batch_size=4, log_every=LOG_EVERY)
    procs = {"script": script.result(), "mlp": mlp.result(), "mlp_bad": mlp_bad.result()}
  assert procs["script"].returncode == 0, _output(procs["script"])
  with np.load(script_out / "states.npz") as f:
    states = {k: f[k] for k in f.files}
  with open(script_out / "report.json") as f:
    report = json.load(f)
  return {"procs": procs, "states": states, "report": report, "reference": reference,
          "workdir": workdir, "bad": bad}


def _state(states, prefix):
  return [states[k] for k in sorted((k for k in states if k.startswith(prefix + "_")),
                                    key=lambda k: int(k.rsplit("_", 1)[1]))]


def test_sharded_run_equals_one_device_run(runs):
  """(a) The 4-device run's state equals the one-device run's to float32 rounding.

  Not bitwise: each device runs a vmapped batch of K / 4 members instead of K, which XLA
  compiles into other fused kernels. Measured: at most 5e-7 apart after 60 RNN steps; the
  tolerance is 1e-5 (as tests/test_train.py's ensemble-versus-single check). The run on one
  device of the same 4-device process is bitwise the one-device process's run.
  """
  states, reference = runs["states"], jax.tree.leaves(runs["reference"].state)
  sharded, one = _state(states, "sharded"), _state(states, "one")
  assert len(sharded) == len(reference) == len(one)
  for a, ref in zip(sharded, reference):
    np.testing.assert_allclose(a, np.asarray(ref), rtol=1e-5, atol=1e-5)
  for a, ref in zip(one, reference):
    np.testing.assert_array_equal(a, np.asarray(ref))  # devices=[one]: the same program
  np.testing.assert_allclose(states["loss_sharded"], runs["reference"].history["loss"],
                             rtol=1e-4, atol=1e-6)
  assert runs["report"]["one_sharding"] == "SingleDeviceSharding"
  # the members really differ from each other (nothing was broadcast from one member)
  assert not np.allclose(sharded[1][0], sharded[1][1])


def test_member_groups_under_shard_map_train_the_same_members(runs):
  """4 members a device, run two at a time on each (member groups inside shard_map), equal them
  run at once, member by member, to float32 rounding."""
  states = runs["states"]
  assert runs["report"]["group"] == 2
  whole, grouped = _state(states, "whole"), _state(states, "grouped")
  assert len(whole) == len(grouped) and whole[1].shape[0] == 2 * K
  for a, b in zip(whole, grouped):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(states["loss_grouped"], states["loss_whole"], rtol=1e-5, atol=1e-7)


def test_each_device_holds_a_quarter_of_the_members(runs):
  """(b) Every leaf of the returned state has 4 shards on 4 devices, K / 4 = 2 members each,
  members 2i and 2i+1 on the i-th device, and stays split by the members axis."""
  report, states = runs["report"], runs["states"]
  sharded = _state(states, "sharded")
  assert report["result_specs"] == ["('members',)"]
  for i, (shards, full) in enumerate(zip(report["shards"], sharded)):
    assert sorted(s["device"] for s in shards) == [0, 1, 2, 3]
    assert all(s["shape"] == [K // DEVICES, *full.shape[1:]] for s in shards)
    for j in range(DEVICES):
      np.testing.assert_array_equal(states[f"shard_{i}_{j}"], full[2 * j:2 * j + 2])


def test_state_stays_sharded_and_nothing_recompiles(runs):
  """Every chunk's state is split by members over 4 devices; three chunks and a second fit
  use one compiled sharded program (a changed sharding would compile another), and the second
  fit is bitwise the first."""
  report, states = runs["report"], runs["states"]
  assert len(report["seen"]) == STEPS // LOG_EVERY
  assert all(s == {"specs": ["('members',)"], "devices": DEVICES}
             for s in report["seen"])
  assert report["after_first"]["sharded"] == 1
  assert report["after_second"] == report["after_first"]
  for a, b in zip(_state(states, "again"), _state(states, "sharded")):
    np.testing.assert_array_equal(a, b)


def test_sharded_chunk_has_no_collectives(runs):
  """The compiled 4-device chunk (shard_map of the vmapped chunk) moves nothing between
  devices: no all-gather, all-reduce, all-to-all, collective-permute, reduce-scatter, send or
  recv in its HLO."""
  assert runs["report"]["hlo_chars"] > 1000  # a real program was inspected
  assert runs["report"]["collectives"] == []


def test_ensemble_not_a_multiple_of_the_devices_fails_before_compiling(runs):
  """(c) seed=[0..5] on 4 devices: ValueError naming seed, K=6 and the 4 devices; nothing is
  compiled."""
  report = runs["report"]
  assert report["error"] is not None
  assert report["error"].startswith("seed:")
  assert "K=6" in report["error"] and "4 devices" in report["error"]
  assert "multiple of the device count 4" in report["error"]
  assert report["after_error"] == report["before_error"]


def test_launcher_trains_a_sharded_ensemble(runs):
  """(d) mlp --ensemble=4 --steps=40 with 4 devices exits 0 and writes its files; the members'
  predictions (evaluated from the sharded parameters) have a leading axis of 4 and are finite."""
  proc, workdir = runs["procs"]["mlp"], runs["workdir"]
  assert proc.returncode == 0, _output(proc)
  assert "Traceback" not in proc.stdout + proc.stderr
  files = set(os.listdir(workdir))
  assert {"figure.png", "loss.png", "config.json", "metrics.jsonl", "metrics.json",
          "predictions.npz", "checkpoint.msgpack"} <= files
  with np.load(workdir / "predictions.npz") as f:
    assert f["y_mean_members"].shape == (4, 1000, 1)
    assert np.all(np.isfinite(f["y_mean_members"])) and np.all(f["y_std_members"] > 0)
  with open(workdir / "metrics.json") as f:
    assert np.isfinite(json.load(f)["rmse"])
  with open(workdir / "config.json") as f:
    assert len(json.load(f)["versions"]["devices"]) == DEVICES


def test_launcher_ensemble_not_a_multiple_fails_with_one_line(runs):
  """mlp --ensemble=3 with 4 devices: exit status 2, one line naming --ensemble and the device
  count, no traceback, nothing written."""
  proc = runs["procs"]["mlp_bad"]
  assert proc.returncode == 2, _output(proc)
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, _output(proc)
  assert "--ensemble must be a multiple of the number of devices (4" in lines[0]
  assert lines[0].endswith("got 3")
  assert not runs["bad"].exists()


@pytest.mark.parametrize("members, cores, expected", [
    (1, 2, 1), (64, 2, 2), (3, 2, 1), (6, 4, 3), (8, 3, 2), (256, 16, 16), (7, 16, 7), (12, 5, 4)])
def test_cpu_devices_for_is_the_largest_divisor_up_to_the_cores(members, cores, expected):
  """Against brute force over 1..cores: the largest d with members % d == 0."""
  from dljax import distributed  # noqa: PLC0415

  assert distributed.cpu_devices_for(members, cores) == expected
  assert expected == max(d for d in range(1, cores + 1) if members % d == 0)


@pytest.mark.parametrize("members, cores, name", [(0, 2, "members"), (2.0, 2, "members"),
                                                  (True, 2, "members"), (4, 0, "cores")])
def test_cpu_devices_for_rejects_bad_arguments(members, cores, name):
  from dljax import distributed  # noqa: PLC0415

  with pytest.raises(ValueError, match=f"^{name} must be an integer >= 1, got"):
    distributed.cpu_devices_for(members, cores)
