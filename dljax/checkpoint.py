"""Checkpoints: parameters, and what rebuilds their model, in ``flax.serialization``'s msgpack.

The file is a msgpack map ``{"format", "sha256", "payload"}``: ``payload`` is itself the msgpack
bytes of ``{"model", "params", "arrays", "meta"}`` and ``sha256`` their SHA-256, so a truncated
or altered file is detected before anything in it is used. ``model`` is the model's kind and
sizes as JSON (the builder's keyword arguments), ``params`` the nested dict of arrays (with a
leading member axis for an ensemble), ``arrays`` any other named arrays (standardiser
statistics; for a training checkpoint, ``train``: the step, the Optax state and the loss
history, see ``train_arrays``) and ``meta`` a JSON string of plain values. Loading never
executes code (no pickle); the file is written to a temporary name, synced and renamed, so a
crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from dljax import checks
from dljax import models as M


def _serialization():
  """``flax.serialization``, imported when first needed (flax costs ~0.1-0.8 s to import)."""
  from flax import serialization  # noqa: PLC0415

  return serialization

FORMAT = "dljax-checkpoint-2"


class CheckpointError(ValueError):
  """A checkpoint that cannot be used: unreadable, truncated, altered, or not a dljax one."""
_KINDS = {M.MLP: "mlp", M.RNN: "rnn", M.LSTM: "lstm", M.VAE: "vae", M.CVAE: "cvae"}
_BUILDERS = {"mlp": M.mlp, "rnn": M.rnn, "lstm": M.lstm, "vae": M.vae, "cvae": M.cvae}


def model_config(model: Any) -> dict[str, Any]:
  """The model's kind and its builder's keyword arguments, as plain JSON values."""
  if type(model) not in _KINDS:
    checks.fail("model", "be a dljax model", type(model).__name__, kind=checks.ArgumentTypeError)
  config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model).items()}
  return {"kind": _KINDS[type(model)], **config}


def build_model(config: dict[str, Any]) -> Any:
  """Rebuilds a model from ``model_config``'s output."""
  config = dict(config)
  kind = config.pop("kind", None)
  if kind not in _BUILDERS:
    raise checks.ArgumentError("kind", f"model kind must be one of {sorted(_BUILDERS)}, got "
                               f"{kind!r}")
  return _BUILDERS[kind](**config)


def _to_numpy(tree: Any) -> Any:
  if isinstance(tree, dict):
    return {str(k): _to_numpy(v) for k, v in tree.items()}
  return np.asarray(tree)


def save(path: str | os.PathLike, model: Any, params: Any, arrays: dict[str, Any] | None = None,
         meta: dict[str, Any] | None = None) -> None:
  """Writes a checkpoint atomically (temporary file, fsync, rename)."""
  write_bytes(path, encode(model, params, arrays, meta))


def encode(model: Any, params: Any, arrays: dict[str, Any] | None = None,
           meta: dict[str, Any] | None = None) -> bytes:
  """A checkpoint's bytes, as ``save`` writes them."""
  payload = _serialization().msgpack_serialize(
      {"model": json.dumps(model_config(model)), "params": _to_numpy(params),
       "arrays": _to_numpy(arrays or {}), "meta": json.dumps(meta or {})})
  return _serialization().msgpack_serialize(
      {"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload})


def write_bytes(path: str | os.PathLike, blob: bytes) -> None:
  """``blob`` written to ``path`` atomically (``write_atomically``)."""

  def write(tmp):
    with open(tmp, "wb") as f:
      f.write(blob)

  write_atomically(path, write)


def link_or_copy(source: str | os.PathLike, path: str | os.PathLike) -> None:
  """``path`` made a second name of the complete file ``source`` (a hard link), atomically; a
  copy where the filesystem has no hard links. dljax never changes a file it wrote in place
  (``write_atomically`` replaces it whole), so the two names keep the same bytes."""
  directory = os.path.dirname(os.path.abspath(os.fspath(path)))
  tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-link-{os.path.basename(path)}")
  try:
    os.link(source, tmp)
  except OSError:  # no hard links here (or another filesystem): the bytes written again
    with open(source, "rb") as f:
      write_bytes(path, f.read())
    return
  try:
    os.replace(tmp, path)  # does nothing if path already is this file; tmp then goes below
    try:
      _fsync(directory)
    except OSError:  # a platform or filesystem without directory handles
      pass
  finally:
    if os.path.lexists(tmp):
      os.unlink(tmp)


TMP_PREFIX = ".tmp-"  # write_atomically's temporary files, renamed when complete


def write_atomically(path: str | os.PathLike, write: Callable[[str], Any]) -> None:
  """``write(temporary path)`` in ``path``'s folder, fsync, rename, fsync of the folder: a kill
  leaves the old file or the new one, never half of one, and a failure leaves no temporary file.
  The temporary name ends with ``path``'s own name, so writers that read the format from the
  extension (``savefig``, ``np.savez``) see it."""
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX, suffix="-" + os.path.basename(path))
  try:
    try:  # mkstemp makes 0600; give the usual mode of a new file where the filesystem lets us
      umask = os.umask(0)
      os.umask(umask)
      os.fchmod(fd, 0o666 & ~umask)
    except OSError:
      pass
    finally:
      os.close(fd)
    write(tmp)
    _fsync(tmp)
    os.replace(tmp, path)
    try:
      _fsync(directory)  # the rename itself survives a power cut
    except OSError:  # a platform or filesystem without directory handles
      pass
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def _fsync(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def remove_temporaries(directory: str | os.PathLike) -> list[str]:
  """Deletes the temporary files that ``write_atomically`` left in ``directory`` when it was
  killed before its rename (never a complete file); returns their paths. Call it only when no
  write into ``directory`` is running."""
  directory = os.fspath(directory)
  names = os.listdir(directory) if os.path.isdir(directory) else []
  removed = [os.path.join(directory, n) for n in sorted(names) if n.startswith(TMP_PREFIX)
             and os.path.isfile(os.path.join(directory, n))]
  for path in removed:
    os.unlink(path)
  return removed


def load(path: str | os.PathLike) -> tuple[Any, dict, dict, dict]:
  """Reads a checkpoint: ``(model, params, arrays, meta)``.

  Raises:
    CheckpointError: the file is not a dljax checkpoint of this format, is truncated, or its
      contents do not match their checksum (one line naming the file and the reason).
    OSError: the file cannot be read.
  """
  name = os.fspath(path)
  with open(path, "rb") as f:
    blob = f.read()
  try:
    raw = _serialization().msgpack_restore(blob)
  except Exception as e:  # msgpack raises several types for truncated or garbled bytes
    raise CheckpointError(f"checkpoint {name} is corrupt or truncated: unreadable msgpack "
                          f"({type(e).__name__})") from None
  if not isinstance(raw, dict) or raw.get("format") != FORMAT:
    found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
    raise CheckpointError(f"checkpoint {name} must be a {FORMAT} file, got format {found!r}")
  payload, digest = raw.get("payload"), raw.get("sha256")
  if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != digest:
    raise CheckpointError(f"checkpoint {name} is corrupt: its SHA-256 does not match its contents")
  content = _serialization().msgpack_restore(payload)
  model = build_model(json.loads(content["model"]))
  return model, content["params"], content["arrays"], json.loads(content["meta"])


def train_arrays(step: Any, opt_state: Any, history: dict[str, Any] | None = None) -> dict:
  """What resumes training besides the parameters: the step, the Optax state (as
  ``flax.serialization.to_state_dict``) and the per-step loss history so far."""
  return {"step": np.asarray(step), "opt_state": _serialization().to_state_dict(opt_state),
          "history": dict(history or {})}


def restore_opt_state(optimizer: Any, params: Any, state_dict: dict) -> Any:
  """The Optax state saved by ``train_arrays``, rebuilt into ``optimizer``'s structure."""
  template = jax.eval_shape(optimizer.init, params)  # the structure only; nothing is computed
  return jax.tree.map(np.asarray, _serialization().from_state_dict(template, state_dict))
