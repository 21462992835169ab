"""``import dljax`` loads neither scipy.stats nor flax: each is imported where first needed."""

import os
import subprocess
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_dljax_leaves_scipy_stats_and_flax_for_later():
  code = ("import sys, dljax; print(sorted(m for m in ('scipy.stats', 'flax', 'flax.linen', "
          "'flax.nnx', 'flax.serialization') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], cwd=_ROOT, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == "[]", out.stdout
