"""The user's own data: tables (.csv, .tsv, whitespace .txt) and NumPy files (.npy, .npz).

``read_table(path)`` reads every cell as float64 (NaN for an empty cell) and keeps the header's
column names, if the file has one, and each row's line number; ``load_columns`` picks groups of
columns (by header name or 0-based index) and returns them as float32 arrays. Every bad file is
one ``checks.ArgumentError`` naming the argument (the launchers' flag, e.g. ``data``), the line
and the column, raised before anything is computed. NumPy's readers only: no pandas.

A text file's first non-blank row is its header when none of its cells is empty or a number.
In an .npz, a 1-d array ``a`` is the column ``a`` and a 2-d one the columns ``a[0]``, ``a[1]``,
...; the name ``a`` selects all of an array's columns. Rows of .npy and .npz files are counted
from 0 ("row 3"), lines of text files from 1 ("line 4").
"""

from __future__ import annotations

import logging
import math
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from dljax import checks

DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": None}  # None: any run of whitespace
EXTENSIONS = (*DELIMITERS, ".npy", ".npz")
MISSING = ("refuse", "drop")  # what load_columns does with NaN, inf and empty cells
# A text file's memory while read, per byte of it and per line: its text and its lines as
# Python strings (twice the bytes, ~64 bytes a line), the float64 table (at most 4 per byte).
TEXT_MEMORY = (6, 64)

log = logging.getLogger(__name__)


class Table(NamedTuple):
  """A file's cells: ``values`` [N, C] float64 (NaN where a cell was empty)."""

  values: np.ndarray
  names: tuple[str, ...] | None  # the header's column names; None without a header
  lines: np.ndarray  # [N] int: each row's line (text files, from 1) or row (NumPy, from 0)
  path: str
  text: bool  # a text table (lines) or a NumPy file (rows)
  groups: dict[str, tuple[int, ...]]  # .npz: an array's name -> its columns


class Columns(NamedTuple):
  """What ``load_columns`` returns: float32 arrays [N, C_group] of the same rows."""

  arrays: dict[str, np.ndarray]
  names: dict[str, tuple[str, ...]]  # each group's column names ("column 3" without a header)
  lines: np.ndarray  # [N] the line (or row) of the file of each row kept
  dropped: int  # rows dropped for NaN, inf or empty cells (missing="drop")
  table: Table  # the file as read (its header, to compare another file's with)


def where(table: Table, row: int, column: int | None = None) -> str:
  """'line 4, column 2 ('x2') of f.csv': a cell's (or a row's) place in the file."""
  place = f"{'line' if table.text else 'row'} {int(table.lines[row])}"
  if column is not None:
    place += f", column {column}"
    if table.names is not None:
      place += f" ({table.names[column]!r})"
  return f"{place} of {table.path}"


def available_memory() -> int:
  """Bytes of memory available to a new allocation (Linux' MemAvailable, else free pages)."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _check_memory(name: str, path: str, need: int) -> None:
  have = available_memory()
  if need > have:
    checks.fail(name, "fit in memory", f"{path!r}, which needs about {need / 2**20:,.0f} MiB to "
                f"read, with {have / 2**20:,.0f} MiB available")


def _check_file(name: str, path: Any) -> str:
  """The extension of a readable file ``path`` (one of EXTENSIONS)."""
  if not isinstance(path, (str, os.PathLike)) or not str(path):
    checks.fail(name, "be a file path", repr(path), kind=checks.ArgumentTypeError)
  path = os.fspath(path)
  extension = os.path.splitext(path)[1].lower()
  if extension not in EXTENSIONS:
    checks.fail(name, "be a .csv, .tsv, .txt (whitespace), .npy or .npz file", repr(path))
  if not os.path.isfile(path) or not os.access(path, os.R_OK):
    why = "no such file" if not os.path.exists(path) else (
        "a folder" if os.path.isdir(path) else "not readable")
    checks.fail(name, "be a readable file", f"{path!r} ({why})")
  return extension


def read_table(path: str, *, name: str = "data") -> Table:
  """Every cell of the file at ``path``, as float64; errors name ``name``, the line and column."""
  extension = _check_file(name, path)
  path = os.fspath(path)
  if extension == ".npy":
    return _read_npy(name, path)
  if extension == ".npz":
    return _read_npz(name, path)
  per_byte, per_line = TEXT_MEMORY
  _check_memory(name, path, per_byte * os.path.getsize(path) + per_line * _count_lines(path))
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except UnicodeDecodeError as e:
    checks.fail(name, "be a text table (UTF-8)", f"{path!r}, whose byte {e.start} is not text")
  except OSError as e:
    checks.fail(name, "be a readable file", f"{path!r} ({e.strerror})")
  return _parse(name, path, text, DELIMITERS[extension])


def _count_lines(path: str) -> int:
  """Newlines in the file, read in blocks of 1 MiB (no more memory than that)."""
  try:
    with open(path, "rb") as f:
      return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b"")) + 1
  except OSError:
    return 1  # reported by the read that follows


def _is_number(cell: str) -> bool:
  try:
    float(cell)
  except ValueError:
    return False
  return True


def _parse(name: str, path: str, text: str, delimiter: str | None) -> Table:
  """A text table: an optional header row, then rows of numbers, each the same length; parsed
  row by row into a float64 array (no list of every cell: see TEXT_MEMORY)."""
  split = str.split if delimiter is None else (lambda s: s.split(delimiter))
  lines = text.splitlines()
  rows = [i for i, line in enumerate(lines) if line.strip()]
  if not rows:
    checks.fail(name, "have rows of numbers", f"an empty file {path!r}")
  first = [c.strip() for c in split(lines[rows[0]])]
  header = None
  if all(c and not _is_number(c) for c in first):
    header, rows = tuple(c.strip('"').strip("'") for c in first), rows[1:]
    if not rows:
      checks.fail(name, "have rows of numbers below its header", f"only the header of {path!r}")
  width = len(first)
  table = Table(np.empty((len(rows), width)), header, np.array(rows) + 1, path, True, {})
  for r, i in enumerate(rows):
    cells = split(lines[i])
    if len(cells) != width:
      ahead = "the header" if header is not None else f"line {table.lines[0]}"
      checks.fail(name, f"have {width} cells in every row, as {ahead}",
                  f"{len(cells)} at {where(table, r)}")
    try:
      table.values[r] = [float(c) if c.strip() else math.nan for c in cells]
    except ValueError:
      c = next(j for j, cell in enumerate(cells) if cell.strip() and not _is_number(cell))
      checks.fail(name, "hold numbers", f"{cells[c].strip()!r} at {where(table, r, c)}")
  return table


def _numeric(name: str, path: str, array: np.ndarray, what: str) -> np.ndarray:
  """A numeric array [N] or [N, C] as [N, C] float64."""
  if array.ndim not in (1, 2) or array.shape[0] == 0:
    checks.fail(name, f"hold {what} of shape [N] or [N, C] with N >= 1",
                f"shape {array.shape} in {path!r}")
  if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
    checks.fail(name, f"hold {what} of numbers", f"dtype {array.dtype} in {path!r}")
  return array.astype(np.float64).reshape(array.shape[0], -1)


def _read_npy(name: str, path: str) -> Table:
  try:
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
  except (ValueError, OSError) as e:
    checks.fail(name, "be a NumPy .npy file", f"{path!r} ({e})")
  _check_memory(name, path, 2 * int(np.prod(mapped.shape)) * 8)
  values = _numeric(name, path, np.asarray(mapped), "an array")
  return Table(values, None, np.arange(values.shape[0]), path, False, {})


def _read_npz(name: str, path: str) -> Table:
  """The arrays of an .npz side by side, in the file's order; each [N] or [N, C], one N."""
  try:
    with zipfile.ZipFile(path) as z:
      _check_memory(name, path, 3 * sum(info.file_size for info in z.infolist()))
    with np.load(path, allow_pickle=False) as f:
      arrays = {key: f[key] for key in f.files}
  except (ValueError, OSError, zipfile.BadZipFile) as e:
    checks.fail(name, "be a NumPy .npz file", f"{path!r} ({e})")
  if not arrays:
    checks.fail(name, "hold at least one array", f"an empty {path!r}")
  columns, names, groups = [], [], {}
  for key, a in arrays.items():
    a2 = _numeric(name, path, a, f"arrays ({key!r})")
    if a2.shape[0] != next(iter(arrays.values())).shape[0]:
      checks.fail(name, "hold arrays of one length N", f"{key!r} of shape {a.shape} in {path!r}")
    groups[key] = tuple(range(len(names), len(names) + a2.shape[1]))
    names += [key] if a.ndim == 1 else [f"{key}[{j}]" for j in range(a2.shape[1])]
    columns.append(a2)
  values = np.concatenate(columns, axis=1)
  return Table(values, tuple(names), np.arange(values.shape[0]), path, False, groups)


def _column_list(table: Table) -> str:
  names = table.names if not table.groups else tuple(table.groups)
  if names is None:
    return f"an index in [0, {table.values.shape[1]})"
  shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
  return f"a column name of {table.path} ({shown}) or an index in [0, {table.values.shape[1]})"


def resolve(table: Table, name: str, columns: Sequence[Any]) -> tuple[int, ...]:
  """The indices of ``columns`` (names or 0-based indices; an .npz array's name: its columns);
  ``name[i]`` is named in the error for an unknown one; -1 is the last column."""
  if isinstance(columns, (str, int)):
    columns = (columns,)
  found, width = [], table.values.shape[1]
  for i, c in enumerate(columns):
    text = str(c).strip()
    if table.groups and text in table.groups:
      found += table.groups[text]
    elif table.names is not None and text in table.names:
      found.append(table.names.index(text))
    elif re.fullmatch(r"-?[0-9]+", text) and -width <= int(text) < width:
      found.append(int(text) % width)  # a negative index counts from the last column
    else:
      checks.fail(f"{name}[{i}]", f"be {_column_list(table)}", repr(c))
  if not found:
    checks.fail(name, "name at least one column", repr(columns))
  return tuple(found)


def _column_names(table: Table, indices: Sequence[int]) -> tuple[str, ...]:
  if table.names is None:
    return tuple(f"column {j}" for j in indices)
  return tuple(table.names[j] for j in indices)


def _groups(table: Table, columns: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
  """Each group's columns; a group of None takes every column no other group names."""
  picked = {k: resolve(table, k, v) for k, v in columns.items() if v is not None}
  owner = {}
  for k, indices in picked.items():
    for j in indices:
      if j in owner and owner[j] != k:
        checks.fail(k, f"name columns other than those of {owner[j]}",
                    f"{_column_names(table, [j])[0]!r} (column {j}), also in {owner[j]}")
      owner.setdefault(j, k)
  for k in (k for k, v in columns.items() if v is None):
    picked[k] = tuple(j for j in range(table.values.shape[1]) if j not in owner)
    if not picked[k]:
      checks.fail(k, "have a column left by the others", f"none of {table.path}'s")
  return {k: picked[k] for k in columns}


def _check_like(name: str, table: Table, like: Table) -> None:
  """``table`` has the columns of ``like`` (the training file): the same names, or count."""
  mine = table.names if table.names is not None else table.values.shape[1]
  theirs = like.names if like.names is not None else like.values.shape[1]
  if type(mine) is not type(theirs) or mine != theirs:
    show = lambda v: f"{v} columns without a header" if isinstance(v, int) else f"columns {v}"
    checks.fail(name, f"have the columns of {like.path} ({show(theirs)})",
                f"{show(mine)} in {table.path}")


def load_columns(path: str, columns: Mapping[str, Any], *, name: str = "data",
                 missing: str = "refuse", like: Table | None = None) -> Columns:
  """Groups of columns of the file at ``path`` as float32 arrays [N, C_group].

  Args:
    path: a .csv, .tsv, .txt (whitespace), .npy or .npz file.
    columns: {group: column names or 0-based indices, or None for every column that no other
      group names}; the groups are the arguments named in errors (e.g. features, target).
    name: the argument that gave ``path``, named in errors (e.g. data, test_data).
    missing: refuse (an error with the count and the first place) or drop the rows in which a
      selected cell is NaN, inf or empty (logged with their count).
    like: the table another file (the training data) was read from: this one must have its
      columns.
  """
  missing = checks.choice("missing", missing, MISSING)
  table = read_table(path, name=name)
  if like is not None:
    _check_like(name, table, like)
  groups = _groups(table, columns)
  used = sorted({j for indices in groups.values() for j in indices})
  bad = ~np.isfinite(table.values[:, used])
  keep = np.ones(table.values.shape[0], bool)
  if bad.any():
    r, c = np.argwhere(bad)[0]
    if missing == "refuse":
      checks.fail(name, "have no NaN, inf or empty cell in the columns used (--missing=drop "
                  "drops their rows)", f"{int(bad.sum())}, the first at "
                  f"{where(table, r, used[c])}")
    keep = ~bad.any(axis=1)
    if not keep.any():
      checks.fail(name, "have a row without NaN, inf or empty cells", f"none in {table.path}")
    log.warning("%s: dropped %d of %d rows with NaN, inf or empty cells (--missing=drop)",
                table.path, int((~keep).sum()), keep.size)
  arrays = {k: table.values[keep][:, list(v)].astype(np.float32) for k, v in groups.items()}
  names = {k: _column_names(table, v) for k, v in groups.items()}
  return Columns(arrays, names, table.lines[keep], int((~keep).sum()), table)


def check_varies(name: str, array: np.ndarray, names: Sequence[str], rows: str) -> None:
  """Every column of ``array`` [N, C] varies (a standard deviation > 0) over its rows."""
  constant = np.flatnonzero(~(np.asarray(array, np.float64).std(axis=0) > 0))
  if constant.size:
    j = int(constant[0])
    checks.fail(name, "have columns that vary (a standard deviation > 0)",
                f"{names[j]!r} constant at {float(array[0, j]):g} over the {len(array)} {rows}")
