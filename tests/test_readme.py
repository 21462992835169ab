"""The README's Python examples run as written (subprocesses, so that they cannot rot)."""

import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_blocks(text: str) -> list[str]:
  return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _block(marker: str) -> str:
  """The README's first ```python block that contains ``marker``."""
  blocks = [b for b in _python_blocks((ROOT / "README.md").read_text()) if marker in b]
  assert blocks, f"README.md has no ```python block with {marker!r}"
  return blocks[0]


def _run(code: str, cwd) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                        timeout=300, check=False)


def test_readme_ensemble_example_runs_and_prints_four_sigmas():
  """The "Train an ensemble in ten lines" block exits 0 and prints 3 means and 4 members'
  learned noise sigmas near the data's 0.1 noise (original units; 0.05-0.2)."""
  blocks = _python_blocks((ROOT / "README.md").read_text())
  assert blocks, "README.md has no ```python block"
  proc = _run(blocks[0], ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  numbers = [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", proc.stdout)]
  assert len(numbers) == 7, proc.stdout
  assert all(0.05 < s < 0.2 for s in numbers[3:]), numbers


def test_readme_run_example_checkpoints_then_resumes(tmp_path):
  """The "Checkpoints, resume and stop" block, run twice in a fresh folder: the first run starts
  at step 0 and leaves the newest three checkpoints (every 2000 steps) and a metrics line per
  chunk; the second resumes at step 10000 with the whole history and the same checkpoints."""
  code = _block("dljax.run.fit")
  first = _run(code, tmp_path)
  assert first.returncode == 0, first.stderr[-3000:]
  assert first.stdout.split() == ["0", "(10000,)"], first.stdout
  workdir = tmp_path / "runs" / "mine"
  names = sorted(os.listdir(workdir / "checkpoints"))
  assert names == ["ckpt-000006000.msgpack", "ckpt-000008000.msgpack", "ckpt-000010000.msgpack"]
  lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [line["step"] for line in lines] == list(range(1000, 10_001, 1000))
  newest = (workdir / "checkpoints" / names[-1]).read_bytes()
  again = _run(code, tmp_path)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.split() == ["10000", "(10000,)"], again.stdout
  assert sorted(os.listdir(workdir / "checkpoints")) == names
  assert (workdir / "checkpoints" / names[-1]).read_bytes() == newest
