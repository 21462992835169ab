"""``import dljax`` loads neither scipy.stats nor flax: each is imported where first needed."""

from helpers import modules_loaded_by


def test_import_dljax_leaves_scipy_stats_and_flax_for_later():
  assert modules_loaded_by("import dljax", ["scipy.stats", "flax"]) == []
