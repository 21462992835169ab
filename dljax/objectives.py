"""Training objectives: pure functions ``(params, batch, key) -> (scalar, dict of named terms)``.

Every objective is reduced per data point: the mean over the minibatch of a per-example value.
The tutorial's code minimised sums over the minibatch instead; a sum is the mean times the batch
size, a constant, so both have the same minimiser, and Adam (invariant to a constant scale of the
loss, up to its eps) takes practically the same steps. Per-example values are summed over output
and latent dimensions. Objectives are frozen dataclasses, hashable, so that ``jax.jit`` caches
the compiled training program for them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from dljax import checks
from dljax import models as M

Array = jax.Array
Batch = dict[str, Array]

_LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------------------------
# Per-element building blocks (unreduced; the caller reduces). The formulas are exact and do
# not clip: the models hand them log-variances bounded to [-30, 30] (models.LOG_VAR_BOUND), which
# keeps every exp() below and its products with data of |y - mu| < 5e12 finite in float32.


def gaussian_log_pdf(y: Array, mu: Array, log_var: Array) -> Array:
  """log N(y | mu, exp(log_var)) = -(log 2 pi + log_var + (y - mu)^2 / exp(log_var)) / 2, elementwise."""
  return -0.5 * (_LOG_2PI + log_var + jnp.square(y - mu) * jnp.exp(-log_var))


def kl_diag_gaussians(mu_q: Array, log_var_q: Array, mu_p: Array, log_var_p: Array) -> Array:
  """KL[N(mu_q, diag e^{log_var_q}) || N(mu_p, diag e^{log_var_p})], summed over the last axis.

    KL = 1/2 sum_j [log_var_p - log_var_q + (e^{log_var_q} + (mu_q - mu_p)^2) / e^{log_var_p} - 1]
  """
  return 0.5 * jnp.sum(
      log_var_p - log_var_q + (jnp.exp(log_var_q) + jnp.square(mu_q - mu_p)) * jnp.exp(-log_var_p)
      - 1.0, axis=-1)


def kl_standard_normal(mu: Array, log_var: Array) -> Array:
  """KL[N(mu, diag e^{log_var}) || N(0, I)] = 1/2 sum_j (e^{log_var} + mu^2 - 1 - log_var)."""
  return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mu) - 1.0 - log_var, axis=-1)


def kl_to_prior(model: M.VAE | M.CVAE, out: dict[str, Array]) -> Array:
  """KL[q(z|.) || prior] per row from ``out`` (as ``model.apply`` returns it): against the CVAE's
  p(z|x) = N(mu_0, Sigma_0), or in closed form against the VAE's N(0, I)."""
  if model.conditional:
    return kl_diag_gaussians(out["mu_1"], out["log_Sigma_1"], out["mu_0"], out["log_Sigma_0"])
  return kl_standard_normal(out["mu_1"], out["log_Sigma_1"])


def elbo_terms(model: M.VAE | M.CVAE, out: dict[str, Array], y: Array) -> tuple[Array, Array]:
  """log p(y_n | z_n) and KL[q(z|.) || prior], [N] each, from ``out = model.apply(...)``."""
  log_lik = jnp.sum(gaussian_log_pdf(y, out["mu_2"], out["log_Sigma_2"]), axis=-1)
  return log_lik, kl_to_prior(model, out)


def _input_shape(model: Any) -> tuple[int | None, ...] | None:
  """The shape of the inputs ``model.apply`` takes (None: any size), None for an unknown model."""
  if isinstance(model, M.MLP):
    return (None, model.in_dim)
  if isinstance(model, (M.RNN, M.LSTM)):
    return (None, None, model.in_dim)
  return None


def _check_same_shape(name_a: str, a: Array, name_b: str, b: Array) -> None:
  if jnp.shape(a) != jnp.shape(b):
    raise checks.ArgumentError(name_a, f"{name_a} and {name_b} must have the same shape, got "
                               f"{jnp.shape(a)} and {jnp.shape(b)}")


# ----------------------------------------------------------------------------------------------
# Objectives.


@dataclasses.dataclass(frozen=True)
class GaussianNLL:
  """Negative log likelihood of y under the model's Gaussian ``predict``, per data point.

    nll = mean_n sum_r [log 2 pi + 2 log sigma_r + (y_nr - f_nr)^2 / sigma_r^2] / 2

  Batch: ``{"x": inputs, "y": [N, R]}``, inputs [N, P] for the MLP, windows [N, lags, D] for a
  recurrent net with ``likelihood="gaussian"``. Terms: ``nll`` and ``mse`` (monitoring only).
  """

  model: M.MLP | M.RNN | M.LSTM

  def batch_shapes(self) -> dict[str, tuple[int | None, ...]]:
    """The batch's arrays and their shapes (None: any size), checked by ``train.fit``."""
    return {"x": _input_shape(self.model), "y": (None, self.model.out_dim)}

  def __call__(self, params: M.Params, batch: Batch, key: Array | None = None):
    F, log_sigma = self.model.predict(params, batch["x"])
    _check_same_shape("batch['y']", batch["y"], "the model's output", F)
    nll = -jnp.mean(jnp.sum(gaussian_log_pdf(batch["y"], F, 2.0 * log_sigma), axis=-1))
    mse = jnp.mean(jnp.sum(jnp.square(batch["y"] - F), axis=-1))
    return nll, {"nll": nll, "mse": mse}


@dataclasses.dataclass(frozen=True)
class MeanSquaredError:
  """mse = mean_n |y_n - yhat_n|^2 (the tutorial's MSE; the squared norm sums output dimensions).

  Batch: ``{"x": inputs, "y": [N, R]}`` with inputs as ``model.apply`` takes them. Term: ``mse``.
  """

  model: Any  # anything with apply(params, x) -> [N, R]: MLP, RNN, LSTM

  def batch_shapes(self) -> dict[str, tuple[int | None, ...]] | None:
    """The batch's arrays and their shapes (None: any size); None for a model not of dljax."""
    x = _input_shape(self.model)
    return None if x is None else {"x": x, "y": (None, self.model.out_dim)}

  def __call__(self, params: M.Params, batch: Batch, key: Array | None = None):
    yhat = self.model.apply(params, batch["x"])
    _check_same_shape("batch['y']", batch["y"], "the model's output", yhat)
    mse = jnp.mean(jnp.sum(jnp.square(batch["y"] - yhat), axis=-1))
    return mse, {"mse": mse}


@dataclasses.dataclass(frozen=True)
class NegELBO:
  """Negative ELBO per data point, one reparameterised draw z = mu_1 + eps Sigma_1^(1/2):

    loss = mean_n [ -log p(y_n | .) + beta KL[q(z|.) || p(z)] ]

  VAE: q(z|y), p(y|z), p(z) = N(0, I) and batch ``{"y": [N, D]}``; CVAE: p(z|x_n) and its
  variant's q and p(y|.), batch ``{"x": [N, P], "y": [N, D]}``. Needs a key. Terms: ``nll``
  (reconstruction) and ``kl``.
  """

  model: M.VAE | M.CVAE
  beta: float = 1.0

  def batch_shapes(self) -> dict[str, tuple[int | None, ...]]:
    """The batch's arrays and their shapes (None: any size), checked by ``train.fit``."""
    x = {"x": (None, self.model.x_dim)} if self.model.conditional else {}
    return {**x, "y": (None, self.model.y_dim)}

  def __call__(self, params: M.Params, batch: Batch, key: Array):
    x = batch["x"] if self.model.conditional else None
    out = self.model.apply(params, batch["y"], key, x)
    log_lik, kl = elbo_terms(self.model, out, batch["y"])
    nll, kl = -jnp.mean(log_lik), jnp.mean(kl)
    return nll + self.beta * kl, {"nll": nll, "kl": kl}


@dataclasses.dataclass(frozen=True)
class Adversarial:
  """Adversarial training by the fast gradient sign method (Goodfellow et al. 2015), as in Deep
  Ensembles (Lakshminarayanan et al. 2017): the objective at the batch plus at its perturbation

    x' = x + epsilon sign(grad_x l(params, x, y)),   loss = l(params, x, y) + l(params, x', y),

  the paper's sum (so epsilon = 0 gives 2 l). ``l`` is the wrapped objective, a minibatch mean
  of per-example terms: the sign of its x-gradient is each example's own direction. The
  direction is held constant (``stop_gradient``) when differentiating in the parameters.
  ``epsilon`` is in the units of ``batch["x"]``; with ``scale``, the name of a batch array of x's
  shape, the step is ``epsilon batch[scale]`` per example and input (e.g. epsilon 0.01 of each
  input's range). Terms: the wrapped objective's, and the same with an ``adversarial_`` prefix
  at x'.
  """

  objective: GaussianNLL | MeanSquaredError
  epsilon: float
  scale: str | None = None

  @property
  def model(self) -> Any:
    return self.objective.model

  def batch_shapes(self) -> dict[str, tuple[int | None, ...]] | None:
    """The wrapped objective's batch (x' has the shape of x), and ``scale`` of x's shape."""
    declared = getattr(self.objective, "batch_shapes", None)
    shapes = declared() if callable(declared) else None
    if shapes is None or self.scale is None:
      return shapes
    return {**shapes, self.scale: shapes["x"]}

  def __call__(self, params: M.Params, batch: Batch, key: Array | None = None):
    at = lambda x: self.objective(params, {**batch, "x": x}, key)
    (loss, terms), grad_x = jax.value_and_grad(at, has_aux=True)(batch["x"])
    epsilon = self.epsilon if self.scale is None else self.epsilon * batch[self.scale]
    x_adv = batch["x"] + epsilon * jnp.sign(jax.lax.stop_gradient(grad_x))
    loss_adv, terms_adv = at(x_adv)
    return loss + loss_adv, {**terms, **{f"adversarial_{k}": v for k, v in terms_adv.items()}}


@dataclasses.dataclass(frozen=True)
class Dequantised:
  """The wrapped objective on dequantised data: each array named in ``names`` holds integer
  levels k in [0, levels), and the objective sees y = (k + u) / levels with u ~ U(0, 1) drawn
  afresh at each step (from the step's key, split from the one the objective gets), so that a
  likelihood of y is a density on [0, 1]^D (Theis, van den Oord and Bethge, 2016)."""

  objective: Any
  levels: int
  names: tuple[str, ...] = ("y",)

  @property
  def model(self) -> Any:
    return self.objective.model

  def batch_shapes(self) -> dict[str, tuple[int | None, ...]] | None:
    declared = getattr(self.objective, "batch_shapes", None)
    return declared() if callable(declared) else None

  def __call__(self, params: M.Params, batch: Batch, key: Array):
    k_u, k_objective = jax.random.split(key)
    keys = jax.random.split(k_u, len(self.names))
    dequantised = {name: (batch[name] + jax.random.uniform(k, jnp.shape(batch[name]),
                                                           jnp.result_type(batch[name])))
                   / self.levels for name, k in zip(self.names, keys)}
    return self.objective(params, {**batch, **dequantised}, k_objective)


def dequantised(objective: Any, levels: int, names: tuple[str, ...] = ("y",)) -> Dequantised:
  """``objective`` on (k + u) / levels, u ~ U(0, 1) fresh at every step, for the batch arrays
  ``names`` of integer levels k (see ``Dequantised``)."""
  if not callable(objective):
    checks.fail("objective", "be an objective (params, batch, key) -> (loss, terms)",
                type(objective).__name__, kind=checks.ArgumentTypeError)
  if isinstance(names, str) or not names or not all(isinstance(n, str) for n in names):
    checks.fail("names", "be a non-empty sequence of batch array names", repr(names))
  return Dequantised(objective, checks.integer("levels", levels, 2), tuple(names))


def _check_model(name: str, model: Any, kinds: tuple[type, ...]) -> None:
  if not isinstance(model, kinds):
    want = " or ".join(k.__name__ for k in kinds)
    raise checks.ArgumentTypeError(
        "model", f"{name} needs a model of type {want}, got {type(model).__name__}")


def gaussian_nll(model: M.MLP | M.RNN | M.LSTM) -> GaussianNLL:
  """The tutorial's objective for the network: NLL with learned noise; also a recurrent net's
  with ``likelihood="gaussian"``."""
  _check_model("gaussian_nll", model, (M.MLP, M.RNN, M.LSTM))
  if not isinstance(model, M.MLP) and model.likelihood != "gaussian":
    checks.fail("model", "have likelihood='gaussian' for gaussian_nll (use mse for 'mse')",
                f"likelihood={model.likelihood!r}", kind=checks.ArgumentTypeError)
  return GaussianNLL(model)


def mse(model: M.MLP | M.RNN | M.LSTM) -> MeanSquaredError:
  """Mean squared error of ``model.apply`` (the tutorial's objective for the RNN and LSTM)."""
  _check_model("mse", model, (M.MLP, M.RNN, M.LSTM))
  return MeanSquaredError(model)


def neg_elbo(model: M.VAE | M.CVAE, beta: float = 1.0) -> NegELBO:
  """The negative ELBO of a VAE or a CVAE, with KL weight ``beta`` (1 is the true ELBO)."""
  _check_model("neg_elbo", model, (M.VAE, M.CVAE))
  return NegELBO(model, checks.non_negative("beta", beta))


def adversarial(objective: GaussianNLL | MeanSquaredError, epsilon: float,
                scale: str | None = None) -> Adversarial:
  """``objective`` trained adversarially: l(x) + l(x + epsilon sign(grad_x l(x))) (see
  ``Adversarial``); ``epsilon`` >= 0 in the units of the inputs the model sees, times the batch
  array named ``scale`` (per example and input) if given."""
  if not isinstance(objective, (GaussianNLL, MeanSquaredError)):
    raise checks.ArgumentTypeError("objective", "adversarial needs a GaussianNLL or "
                                   f"MeanSquaredError objective, got {type(objective).__name__}")
  if scale is not None and (not isinstance(scale, str) or scale in ("x", "y")):
    checks.fail("scale", "be the name of a batch array other than x and y", repr(scale))
  return Adversarial(objective, checks.non_negative("epsilon", epsilon), scale)
