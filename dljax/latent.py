"""The interface the VAE and the CVAE of ``dljax.models`` share, with its argument checks.

x, the conditions [N, x_dim], is None for the VAE, whose prior is N(0, I) (``conditional`` is
False; the CVAE's prior is p(z|x)). The public methods check their arguments, then call the
model's unchecked ``_prior``, ``_encode``, ``_decode`` and ``_sample``, which ``dljax.metrics``
also calls, after ``check_data``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checks

Array = jax.Array
Params = dict[str, Any]


def reparameterise(key: Array, mu: Array, log_Sigma: Array) -> Array:
  """mu + eps Sigma^(1/2), eps ~ N(0, I)."""
  eps = jax.random.normal(key, mu.shape, mu.dtype)
  return mu + eps * jnp.exp(0.5 * log_Sigma)


class LatentModel:
  """prior, encode, decode, apply and sample of a VAE (x None) or a CVAE (x [N, x_dim])."""

  conditional: bool  # the prior is p(z|x) (CVAE), not N(0, I) (VAE)

  def check_data(self, y: Any, x: Any = None, name: str = "y", dim: int | None = None) -> None:
    """The checks of apply: x, then the data y [N, y_dim] (``name`` [N, ``dim``]) as its rows."""
    self._check_x(x)
    checks.floating_input(name, y, (None, self.y_dim if dim is None else dim))
    if x is not None and np.shape(x)[0] != np.shape(y)[0]:  # the pairs (x_n, y_n) must align
      checks.fail("x", f"have as many rows as {name}", f"shapes {np.shape(x)} and {np.shape(y)}")

  def _check_x(self, x: Any) -> None:
    if self.conditional and x is not None:
      checks.floating_input("x", x, (None, self.x_dim))
    elif self.conditional:
      checks.fail("x", f"be the conditions [N, {self.x_dim}] of the CVAE", None)
    elif x is not None:
      checks.fail("x", "be None for a VAE (it has no conditions)", f"shape {np.shape(x)}")

  def prior(self, params: Params, x: Array | None = None) -> tuple[Array, Array]:
    """mu_0, log Sigma_0 [N, latent] of p(z|x) (CVAE), or zeros [1, latent]: p(z) = N(0, I)."""
    self._check_x(x)
    return self._prior(params, x)

  def encode(self, params: Params, y: Array, x: Array | None = None) -> tuple[Array, Array]:
    """mu_1, log Sigma_1 [N, latent] of q(z|y) (VAE, CVAE tutorial) or q(z|x, y) (standard)."""
    self.check_data(y, x)
    return self._encode(params, y, x)

  def decode(self, params: Params, z: Array, x: Array | None = None) -> tuple[Array, Array]:
    """mu_2, log Sigma_2 [N, y_dim] of p(y|z) (VAE, CVAE tutorial) or p(y|x, z) (standard)."""
    self.check_data(z, x, "z", self.latent)
    return self._decode(params, z, x)

  def apply(self, params: Params, y: Array, key: Array, x: Array | None = None) -> dict[str, Array]:
    """One pass (CVAE: the prior p(z|x)), q(z|.) -> z (reparameterised) -> p(y|.), returning every
    intermediate: mu_1, log_Sigma_1, z, mu_2, log_Sigma_2 (CVAE: and mu_0, log_Sigma_0)."""
    checks.key("key", key)
    self.check_data(y, x)
    return self._apply(params, y, key, x)

  def _apply(self, params: Params, y: Array, key: Array, x: Array | None) -> dict[str, Array]:
    out = dict(zip(("mu_0", "log_Sigma_0"), self._prior(params, x))) if self.conditional else {}
    mu_1, log_Sigma_1 = self._encode(params, y, x)
    z = reparameterise(key, mu_1, log_Sigma_1)
    mu_2, log_Sigma_2 = self._decode(params, z, x)
    return {**out, "mu_1": mu_1, "log_Sigma_1": log_Sigma_1, "z": z, "mu_2": mu_2,
            "log_Sigma_2": log_Sigma_2}

  def sample(self, params: Params, key: Array, n: int, x: Array | None = None, *,
             shared_noise: bool = True, noise: bool = False) -> Array:
    """n draws z ~ p(z) (VAE) or p(z|x) (CVAE) decoded to their means mu_2 (with ``noise``,
    y ~ p(y|.)): VAE [n, data_dim]; CVAE [n, N, y_dim] at x [N, x_dim], with one eps per draw
    for every x if ``shared_noise`` (z = mu_0(x) + eps Sigma_0(x)^(1/2), the tutorial's smooth
    curves), else one for each x."""
    checks.key("key", key)
    n = checks.integer("n", n)
    self._check_x(x)
    return self._sample(params, key, n, x, shared_noise, noise)
