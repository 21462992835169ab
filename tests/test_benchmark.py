"""The benchmark script in its tiny configuration, so that it cannot rot (CI runs it)."""

import json
import os
import subprocess
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tiny_benchmark_writes_json_table_and_plots(tmp_path):
  """--tiny runs every section and writes benchmark.json, benchmark.md and four log-log plots."""
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.benchmark", "--tiny", "--repeats=1",
       f"--workdir={tmp_path}", f"--compilation_cache={tmp_path / 'cache'}"],
      cwd=_ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = json.loads((tmp_path / "benchmark.json").read_text())
  assert [r["example"] for r in results["models"]] == ["mlp", "rnn", "lstm", "vae", "cvae"]
  for r in results["models"]:
    assert r["fused"]["steps_per_s"] > 0 and r["python_loop"]["steps_per_s"] > 0
    assert r["compile_s"] > 0 and r["fused"]["programs_compiled"] <= 1
  # every new shape in a sweep compiles exactly one program
  assert all(r["programs_compiled"] == 1 for r in results["lags"] + results["hidden"])
  batch = results["batch"]
  assert batch["matmul_peak_flop_per_s"] > 1e8
  flops = [r["flops_per_step"] for r in batch["rows"]]
  assert flops[1] > 10 * flops[0]  # batch 64 costs far more arithmetic than batch 1
  assert {r["ensemble"] for r in results["ensemble"]} == {1, 4}
  table = (tmp_path / "benchmark.md").read_text()
  assert "| mlp |" in table and "fraction of peak" in table
  base = results["baseline"]  # fit against a hand-written loop, both measured in one run
  assert {(r["example"], r["members"]) for r in base} == {("mlp", 1), ("mlp", 4)}
  assert all(r["fit_steps_per_s"] > 0 and r["baseline_steps_per_s"] > 0 for r in base)
  assert all(0 < r["ratio_quartiles"][0] <= r["ratio_quartiles"][1] for r in base)
  # the ensemble also as the launchers run it: one CPU device per core (none on one core)
  spread = len(results["machine"]["devices"]) > 1
  assert [("spread_devices" in r) for r in base] == [False, spread]
  assert all(r["fit_spread_steps_per_s"] > 0 and r["spread_devices"] > 1
             for r in base if "spread_devices" in r)
  assert "hand-written" in table
  flax = results["flax"]  # the Flax front-ends: the same compiled programs as model.apply
  assert {r["program"] for r in flax} == {"fwd", "step", "fused"}
  assert all(r["linen_same_hlo"] and r["nnx_same_hlo"] for r in flax)
  assert all(r["linen_ratio"] > 0 and r["nnx_ratio"] > 0 for r in flax)
  assert "Flax front-ends" in table
  launcher = results["launcher"]  # a launcher's marginal steps/s against fit's, same settings
  assert [r["example"] for r in launcher] == ["mlp"]
  assert all(r["in_process"] > 0 and r["launcher"] > 0 and len(r["ratios"]) == 1
             for r in launcher)
  assert "launcher's marginal steps/s" in table
  for name in ("scaling_lags", "scaling_hidden", "scaling_batch", "scaling_ensemble"):
    assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_rejects_unknown_section(tmp_path):
  """An unknown --sections value stops with one line naming the flag and writes nothing."""
  proc = subprocess.run([sys.executable, "-m", "experiments.benchmark", "--sections=models,foo",
                         f"--workdir={tmp_path / 'out'}"], cwd=_ROOT, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode != 0
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and "--sections" in lines[0]
  assert not (tmp_path / "out").exists()


def test_benchmark_rejects_bad_launcher_steps(tmp_path):
  """--launcher_steps must be NAME=N1:N2 with 0 < N1 < N2: one line naming the flag, nothing
  written."""
  proc = subprocess.run([sys.executable, "-m", "experiments.benchmark", "--sections=launcher",
                         "--launcher_steps=mlp=5000:3000", f"--workdir={tmp_path / 'out'}"],
                        cwd=_ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and "--launcher_steps" in lines[0] and "mlp=5000:3000" in lines[0]
  assert not (tmp_path / "out").exists()
