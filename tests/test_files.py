"""The user's files (dljax.files, also in dljax.data): tables and NumPy files that the tests write,
and every bad file refused with one line naming the argument, the line and the column."""

import logging

import numpy as np
import pytest

from dljax import checks, files
from dljax import data as D


def _write(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_data_exposes_the_loaders():
  assert D.load_columns is files.load_columns and D.read_table is files.read_table


@pytest.mark.parametrize("name,text", [
    ("t.csv", "a,b,y\n1,2,3\n4,5.5,6\n\n7,8,-9e1\n"),
    ("t.tsv", "a\tb\ty\n1\t2\t3\n4\t5.5\t6\n\n7\t8\t-9e1\n"),
    ("t.txt", "a  b\ty\n 1 2   3\n4 5.5 6\n\n7 8 -9e1\n\n"),
])
def test_tables_with_a_header(tmp_path, name, text):
  table = files.read_table(_write(tmp_path, name, text))
  assert table.names == ("a", "b", "y") and table.text
  np.testing.assert_array_equal(table.values, [[1, 2, 3], [4, 5.5, 6], [7, 8, -90]])
  np.testing.assert_array_equal(table.lines, [2, 3, 5])  # the file's line of each row
  got = files.load_columns(table.path, {"features": None, "target": ["y"]})
  assert got.arrays["features"].dtype == np.float32 and got.arrays["features"].shape == (3, 2)
  assert got.names == {"features": ("a", "b"), "target": ("y",)}
  by_index = files.load_columns(table.path, {"x": ["2", 0]})
  np.testing.assert_array_equal(by_index.arrays["x"], [[3, 1], [6, 4], [-90, 7]])


def test_table_without_a_header_and_quoted_names(tmp_path):
  table = files.read_table(_write(tmp_path, "n.txt", "1 2\n3 4\n"))
  assert table.names is None and table.values.shape == (2, 2)
  quoted = files.read_table(_write(tmp_path, "q.csv", '"x","y"\n1,2\n'))
  assert quoted.names == ("x", "y")


def test_npy_and_npz(tmp_path):
  np.save(tmp_path / "v.npy", np.arange(4, dtype=np.int64))
  table = files.read_table(str(tmp_path / "v.npy"))
  assert table.values.shape == (4, 1) and not table.text
  np.savez(tmp_path / "a.npz", x=np.ones((3, 2)), y=np.arange(3.0))
  got = files.load_columns(str(tmp_path / "a.npz"), {"features": ["x"], "target": ["y"]})
  assert got.names == {"features": ("x[0]", "x[1]"), "target": ("y",)}
  assert got.arrays["features"].shape == (3, 2) and got.arrays["target"].shape == (3, 1)


def test_missing_drop_says_how_many(tmp_path, caplog):
  path = _write(tmp_path, "m.csv", "a,y\n1,2\n,3\n4,inf\n5,6\nnan,7\n")
  with caplog.at_level(logging.WARNING, logger="dljax.files"):
    got = files.load_columns(path, {"x": ["a"], "y": ["y"]}, missing="drop")
  assert got.dropped == 3 and "dropped 3 of 5 rows" in caplog.text
  np.testing.assert_array_equal(got.lines, [2, 5])
  np.testing.assert_array_equal(got.arrays["x"][:, 0], [1, 5])
  unused = files.load_columns(path, {"y": ["y"]}, missing="drop")  # only the selected columns
  assert unused.dropped == 1


def _error(fn, *args, **kwargs):
  with pytest.raises(checks.BadArgument) as e:
    fn(*args, **kwargs)
  message = str(e.value)
  assert "\n" not in message and message.startswith(e.value.argument + " must ")
  return e.value.argument, message


# (file name, contents or None for none, columns, keyword arguments, argument, message parts)
BAD_FILES = [
    ("none.csv", None, {"x": None}, {}, "data", ["readable file", "no such file"]),
    ("t.json", "{}", {"x": None}, {}, "data", [".csv", "t.json"]),
    ("empty.csv", "\n\n", {"x": None}, {}, "data", ["an empty file"]),
    ("head.csv", "a,b\n", {"x": None}, {}, "data", ["below its header", "only the header"]),
    ("ragged.csv", "a,b\n1,2\n3\n", {"x": None}, {}, "data", ["2 cells", "got 1 at line 3"]),
    ("text.csv", "a,b\n1,2\n3,four\n", {"x": None}, {}, "data",
     ["numbers", "'four' at line 3, column 1 ('b')"]),
    ("nan.txt", "1 2\n3 nan\n5 inf\n", {"x": None}, {}, "data",
     ["NaN", "--missing=drop", "got 2, the first at line 2, column 1 of"]),
    ("empty_cell.csv", "a,b\n1,2\n3,\n", {"x": None}, {"name": "test_data"}, "test_data",
     ["got 1, the first at line 3, column 1 ('b')"]),
    ("ok.csv", "a,b\n1,2\n3,4\n", {"features": ["a", "c"]}, {}, "features[1]",
     ["a column name", "(a, b)", "got 'c'"]),
    ("ok.csv", "a,b\n1,2\n3,4\n", {"features": ["2"]}, {}, "features[0]",
     ["an index in [0, 2)", "got '2'"]),
    ("ok.csv", "a,b\n1,2\n3,4\n", {"features": ["a", "b"], "target": ["b"]}, {}, "target",
     ["other than those of features", "'b' (column 1)"]),
    ("ok.csv", "a,b\n1,2\n3,4\n", {"x": None}, {"missing": "fill"}, "missing", ["'drop'"]),
]


@pytest.mark.parametrize("name,text,columns,kwargs,argument,parts", BAD_FILES,
                         ids=[f"{b[0]}-{b[4]}" for b in BAD_FILES])
def test_bad_file_is_one_line_naming_argument_line_and_column(tmp_path, name, text, columns,
                                                              kwargs, argument, parts):
  path = str(tmp_path / name) if text is None else _write(tmp_path, name, text)
  got, message = _error(files.load_columns, path, columns, **kwargs)
  assert got == argument
  for part in parts:
    assert part in message, message


def test_bad_numpy_files(tmp_path):
  np.save(tmp_path / "r3.npy", np.zeros((2, 2, 2)))
  assert "shape [N] or [N, C]" in _error(files.read_table, str(tmp_path / "r3.npy"))[1]
  np.save(tmp_path / "s.npy", np.array(["a", "b"]))
  assert "numbers" in _error(files.read_table, str(tmp_path / "s.npy"))[1]
  np.savez(tmp_path / "a.npz", x=np.ones((3, 2)), y=np.arange(3.0))
  argument, message = _error(files.load_columns, str(tmp_path / "a.npz"), {"target": ["z"]})
  assert argument == "target[0]" and "(x, y)" in message and "'z'" in message
  np.savez(tmp_path / "b.npz", x=np.ones((3, 2)), y=np.arange(4.0))
  assert "one length" in _error(files.read_table, str(tmp_path / "b.npz"))[1]
  (tmp_path / "c.npz").write_bytes(b"not a zip")
  assert ".npz" in _error(files.read_table, str(tmp_path / "c.npz"))[1]


def test_a_folder_and_non_text_are_refused(tmp_path):
  (tmp_path / "d.csv").mkdir()
  assert "(a folder)" in _error(files.read_table, str(tmp_path / "d.csv"))[1]
  (tmp_path / "b.csv").write_bytes(b"a,b\n\xff\xfe\n")
  assert "UTF-8" in _error(files.read_table, str(tmp_path / "b.csv"))[1]


def test_file_too_large_for_memory(tmp_path, monkeypatch):
  path = _write(tmp_path, "big.csv", "a,b\n" + "1,2\n" * 1000)
  np.save(tmp_path / "big.npy", np.zeros((1000, 4)))
  monkeypatch.setattr(files, "available_memory", lambda: 1000)
  for p in (path, str(tmp_path / "big.npy")):
    argument, message = _error(files.read_table, p, name="test_data")
    assert argument == "test_data" and "fit in memory" in message and "MiB" in message


def test_test_data_must_have_the_columns_of_data(tmp_path):
  train = files.read_table(_write(tmp_path, "a.csv", "a,b,y\n1,2,3\n4,5,6\n"))
  other = _write(tmp_path, "b.csv", "a,y\n1,3\n")
  argument, message = _error(files.load_columns, other, {"x": None}, name="test_data",
                             like=train)
  assert argument == "test_data" and "('a', 'b', 'y')" in message and "('a', 'y')" in message
  plain = files.read_table(_write(tmp_path, "c.txt", "1 2\n3 4\n"))
  _error(files.load_columns, _write(tmp_path, "d.txt", "1 2 3\n"), {"x": None},
         name="test_data", like=plain)
  same = files.load_columns(_write(tmp_path, "e.csv", "a,b,y\n7,8,9\n"), {"y": ["y"]},
                            name="test_data", like=train)
  assert same.arrays["y"].tolist() == [[9.0]]


def test_constant_column():
  argument, message = _error(files.check_varies, "features", np.array([[1.0, 2], [1, 3]]),
                             ("a", "b"), "training rows")
  assert argument == "features" and "'a' constant at 1 over the 2 training rows" in message
