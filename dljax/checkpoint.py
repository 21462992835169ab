"""Checkpoints: parameters, and what rebuilds their model, in ``flax.serialization``'s msgpack.

A checkpoint is a msgpack map ``{"format", "model", "params", "arrays", "meta"}``: ``model`` is
the model's kind and sizes as JSON (the builder's keyword arguments), ``params`` the nested dict
of arrays (with a leading member axis for an ensemble), ``arrays`` any other named arrays (e.g.
standardiser statistics) and ``meta`` a JSON string of plain values. Loading never executes code
(no pickle); the file is written to a temporary name, synced and renamed, so a crash never
leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any

import numpy as np
from flax import serialization

from dljax import models as M

FORMAT = "dljax-checkpoint-1"
_KINDS = {M.MLP: "mlp", M.RNN: "rnn", M.LSTM: "lstm", M.VAE: "vae", M.CVAE: "cvae"}
_BUILDERS = {"mlp": M.mlp, "rnn": M.rnn, "lstm": M.lstm, "vae": M.vae, "cvae": M.cvae}


def model_config(model: Any) -> dict[str, Any]:
  """The model's kind and its builder's keyword arguments, as plain JSON values."""
  if type(model) not in _KINDS:
    raise TypeError(f"model must be a dljax model, got {type(model).__name__}")
  config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model).items()}
  return {"kind": _KINDS[type(model)], **config}


def build_model(config: dict[str, Any]) -> Any:
  """Rebuilds a model from ``model_config``'s output."""
  config = dict(config)
  kind = config.pop("kind", None)
  if kind not in _BUILDERS:
    raise ValueError(f"model kind must be one of {sorted(_BUILDERS)}, got {kind!r}")
  return _BUILDERS[kind](**config)


def _to_numpy(tree: Any) -> Any:
  if isinstance(tree, dict):
    return {str(k): _to_numpy(v) for k, v in tree.items()}
  return np.asarray(tree)


def save(path: str | os.PathLike, model: Any, params: Any, arrays: dict[str, Any] | None = None,
         meta: dict[str, Any] | None = None) -> None:
  """Writes a checkpoint atomically (temporary file, fsync, rename)."""
  payload = {"format": FORMAT, "model": json.dumps(model_config(model)),
             "params": _to_numpy(params), "arrays": _to_numpy(arrays or {}),
             "meta": json.dumps(meta or {})}
  blob = serialization.msgpack_serialize(payload)
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".msgpack")
  try:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode of a new file
    with os.fdopen(fd, "wb") as f:
      f.write(blob)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def load(path: str | os.PathLike) -> tuple[Any, dict, dict, dict]:
  """Reads a checkpoint: ``(model, params, arrays, meta)``."""
  with open(path, "rb") as f:
    raw = serialization.msgpack_restore(f.read())
  if not isinstance(raw, dict) or raw.get("format") != FORMAT:
    raise ValueError(f"{os.fspath(path)} is not a {FORMAT} file")
  model = build_model(json.loads(raw["model"]))
  return model, raw["params"], raw["arrays"], json.loads(raw["meta"])
