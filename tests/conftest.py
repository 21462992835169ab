"""Every test runs with rank promotion raising, which catches [B] against [B, 1] mistakes."""

import jax
import pytest


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
  with jax.numpy_rank_promotion("raise"):
    yield
