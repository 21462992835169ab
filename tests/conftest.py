"""Every test runs with rank promotion raising, which catches [B] against [B, 1] mistakes; the
``no_network`` fixture fails a test that opens a connection or resolves a name. dljax is
imported first, so that its XLA flags hold for the whole session (``dljax.xla_flags``)."""

import socket

import dljax  # noqa: F401
import jax
import pytest


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
  with jax.numpy_rank_promotion("raise"):
    yield


@pytest.fixture
def no_network(monkeypatch):
  """Any attempt to make a socket, connect or resolve a name fails the test."""
  def refuse(*args, **kwargs):
    raise AssertionError(f"network access: {args!r}")

  for name in ("connect", "connect_ex"):
    monkeypatch.setattr(socket.socket, name, refuse)
  for name in ("socket", "create_connection", "getaddrinfo"):
    monkeypatch.setattr(socket, name, refuse)
