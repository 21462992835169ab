"""The README's Python example runs as written (a subprocess, so that it cannot rot)."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_blocks(text: str) -> list[str]:
  return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_ensemble_example_runs_and_prints_four_sigmas():
  """The "Train an ensemble in ten lines" block exits 0 and prints 3 means and 4 members'
  learned noise sigmas near the data's 0.1 noise (original units; 0.05-0.2)."""
  blocks = _python_blocks((ROOT / "README.md").read_text())
  assert blocks, "README.md has no ```python block"
  proc = subprocess.run([sys.executable, "-c", blocks[0]], cwd=ROOT, capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  numbers = [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", proc.stdout)]
  assert len(numbers) == 7, proc.stdout
  assert all(0.05 < s < 0.2 for s in numbers[3:]), numbers
