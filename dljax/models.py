"""The tutorial's five models as pure functions: ``init(key) -> params`` and ``apply(params, ...)``.

Every model is a frozen (hashable) dataclass holding only its sizes, so it can be a static
argument of ``jax.jit``. Parameters are plain nested dicts keyed by the tutorial's symbols, and
row-vector conventions follow the tutorial: ``H = tanh(X A + b)`` with ``A`` of shape
``[in, out]`` and the bias ``b`` of shape ``[1, out]`` (so nothing relies on rank promotion).
Log-variances are clipped to [-30, 30] (``LOG_VAR_BOUND``). Public methods check their
arguments (``dljax.checks``, at trace time: shapes are static) and call unchecked internals.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checks
from dljax.latent import LatentModel, reparameterise

Array = jax.Array
Params = dict[str, Any]

_glorot = jax.nn.initializers.glorot_uniform()

# Variants of the conditional VAE: the tutorial's (encoder q(z|y), decoder p(y|z)) and the
# standard one of Sohn, Lee and Yan (2015) (encoder q(z|x, y), decoder p(y|x, z)).
CVAE_VARIANTS = ("tutorial", "standard")

# The MLP's hidden units (the recurrent nets and the VAEs are tanh): the tutorial's tanh, or
# relu(a) = max(a, 0) (the Deep Ensembles paper's), both from Glorot-uniform multipliers and zero
# biases: He initialisation trained worse on the Deep Ensembles toy (BUILD_NOTES.md, Decisions).
MLP_ACTIVATIONS = ("tanh", "relu")
_PHI = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _init_args(key: Any, dtype: Any) -> np.dtype:
  """Checks init's key and dtype; returns the dtype."""
  checks.key("key", key)
  return checks.float_dtype("dtype", dtype)


# ----------------------------------------------------------------------------------------------
# Building blocks: a dense layer {A, b}, a network of hidden layers with linear heads.


def _dense(key: Array, fan_in: int, fan_out: int, dtype: Any) -> Params:
  """Glorot-uniform multipliers A [fan_in, fan_out] and a zero bias b [1, fan_out]."""
  return {"A": _glorot(key, (fan_in, fan_out), dtype), "b": jnp.zeros((1, fan_out), dtype)}


def _init_tanh_net(key: Array, in_dim: int, hidden: tuple[int, ...], heads: dict[str, int],
                   dtype: Any) -> Params:
  """Parameters {A1, b1, ..., AL, bL} of the hidden layers and {A_<head>, b_<head>} per head."""
  keys = jax.random.split(key, len(hidden) + len(heads))
  params, fan_in = {}, in_dim
  for l, (k, q) in enumerate(zip(keys, hidden), start=1):
    layer = _dense(k, fan_in, q, dtype)
    params[f"A{l}"], params[f"b{l}"] = layer["A"], layer["b"]
    fan_in = q
  for k, (name, out) in zip(keys[len(hidden):], heads.items()):
    layer = _dense(k, fan_in, out, dtype)
    params[f"A_{name}"], params[f"b_{name}"] = layer["A"], layer["b"]
  return params


def _hidden(p: Params, X: Array, n_layers: int, phi: Any = jnp.tanh) -> Array:
  """H(l) = phi(H(l-1) A(l) + b(l)), H(0) = X; phi is tanh, or relu(a) = max(a, 0)."""
  H = X
  for l in range(1, n_layers + 1):
    H = phi(H @ p[f"A{l}"] + p[f"b{l}"])
  return H


def _head(p: Params, H: Array, name: str) -> Array:
  return H @ p[f"A_{name}"] + p[f"b_{name}"]


# ----------------------------------------------------------------------------------------------
# Bounded log-variances: every log-variance a model returns (the MLP's 2 log sigma, the VAEs' log
# Sigma_0, log Sigma_1, log Sigma_2) is clipped to [-30, 30] at one place per output
# (MLP.predict, _gaussian_net), so exp() of it and its products with data of |y - mu| < 5e12
# stay finite in float32. The clip is bitwise the raw value inside the bound; beyond it the raw
# value gets no gradient (BUILD_NOTES.md, Decisions, says why 30 and why a hard clip).

LOG_VAR_BOUND = 30.0
LOG_SIGMA_BOUND = LOG_VAR_BOUND / 2  # log sigma = log_var / 2


def bound_log_var(log_var: Array) -> Array:
  """clip(log_var, -30, 30): the identity, bitwise, inside the bound (LOG_VAR_BOUND)."""
  return jnp.clip(log_var, -LOG_VAR_BOUND, LOG_VAR_BOUND)


def bound_log_sigma(log_sigma: Array) -> Array:
  """clip(log_sigma, -15, 15), so that the log-variance 2 log sigma lies in [-30, 30]."""
  return jnp.clip(log_sigma, -LOG_SIGMA_BOUND, LOG_SIGMA_BOUND)


# ----------------------------------------------------------------------------------------------
# Neural network regressor with a Gaussian likelihood.


@dataclasses.dataclass(frozen=True)
class MLP:
  """F = H(L) A + b with H(l) = phi(H(l-1) A(l) + b(l)); y_r = f_r + eps_r, eps_r ~ N(0, sigma_r^2).

  phi is ``activation``: "tanh" (the tutorial's) or "relu", max(a, 0) (the Deep Ensembles
  paper's), from the same initialisation (a seed gives both equal parameters). Parameters:
  ``A1, b1, ..., AL, bL`` (hidden layers), ``A, b`` (output layer) and the noise: ``log_sigma
  [1, R]`` (one learned sigma per output), or, if ``heteroscedastic``, a head ``log sigma(x) =
  H(L) A_sigma + b_sigma`` (Deep Ensembles).
  """

  in_dim: int = 1
  hidden: tuple[int, ...] = (50, 50)
  out_dim: int = 1
  heteroscedastic: bool = False
  activation: str = "tanh"

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    dtype = _init_args(key, dtype)
    checks.choice("activation", self.activation, MLP_ACTIVATIONS)
    k_net, k_out, k_sigma = jax.random.split(key, 3)
    params = _init_tanh_net(k_net, self.in_dim, self.hidden, {}, dtype)  # tanh and relu alike
    fan_in = self.hidden[-1] if self.hidden else self.in_dim
    params.update(_dense(k_out, fan_in, self.out_dim, dtype))
    if self.heteroscedastic:
      sigma = _dense(k_sigma, fan_in, self.out_dim, dtype)
      params["A_sigma"], params["b_sigma"] = sigma["A"], sigma["b"]
    else:
      params["log_sigma"] = jnp.zeros((1, self.out_dim), dtype)
    return params

  def predict(self, params: Params, X: Array) -> tuple[Array, Array]:
    """Mean F [N, R] and noise log sigma [N, R] in [-15, 15] at the inputs X [N, P]."""
    checks.floating_input("X", X, (None, self.in_dim))
    phi = _PHI[checks.choice("activation", self.activation, MLP_ACTIVATIONS)]
    H = _hidden(params, X, len(self.hidden), phi)  # [N, Q]
    F = H @ params["A"] + params["b"]  # [N, R]
    if self.heteroscedastic:
      log_sigma = bound_log_sigma(_head(params, H, "sigma"))
    else:
      log_sigma = jnp.broadcast_to(bound_log_sigma(params["log_sigma"]), F.shape)
    return F, log_sigma

  def apply(self, params: Params, X: Array) -> Array:
    """The network's output F [N, R] for inputs X [N, P]."""
    return self.predict(params, X)[0]


def mlp(in_dim: int = 1, hidden: Any = (50, 50), out_dim: int = 1,
        heteroscedastic: bool = False, activation: str = "tanh") -> MLP:
  """The tutorial's tanh network with a Gaussian noise model (default sizes 1-50-50-1);
  ``activation`` in MLP_ACTIVATIONS ("tanh", "relu") is the hidden layers' nonlinearity."""
  return MLP(checks.integer("in_dim", in_dim), checks.sizes("hidden", hidden),
             checks.integer("out_dim", out_dim), bool(heteroscedastic),
             checks.choice("activation", activation, MLP_ACTIVATIONS))


# ----------------------------------------------------------------------------------------------
# Recurrent networks: input windows Y [batch, lags, dim] of lagged values, oldest first.

FULL_UNROLL_MAX_LAGS = 16  # "auto" unrolling: fully up to this many lags, else 2 lags per iteration


def _unroll(lags: int, unroll: int | bool | None) -> int | bool:
  """``lax.scan``'s unroll; ``None`` is auto: fully up to FULL_UNROLL_MAX_LAGS lags, else 2
  (the fastest measured; BUILD_NOTES.md, Decisions)."""
  if unroll is None:
    return True if lags <= FULL_UNROLL_MAX_LAGS else 2
  return True if unroll is True or (not isinstance(unroll, bool) and unroll >= lags) else unroll


# The recurrent nets' likelihoods: the tutorial's squared error (one output yhat), or a Gaussian
# N(y; yhat, sigma^2) with a second head log sigma = h V_sigma + c_sigma, trained by its NLL.
RECURRENT_LIKELIHOODS = ("mse", "gaussian")


@dataclasses.dataclass(frozen=True)
class _Recurrent:
  """The RNN's and the LSTM's sizes and ``apply``: a ``lax.scan`` of the cell over the lags from a
  zero state, then yhat = h V + c; ``unroll`` is the scan's (None: fully up to 16 lags, else 2).
  With ``likelihood="gaussian"``, ``predict`` also gives log sigma = h V_sigma + c_sigma."""

  in_dim: int = 1
  hidden: int = 4
  out_dim: int = 1
  unroll: int | bool | None = None
  likelihood: str = "mse"

  def apply(self, params: Params, Y: Array) -> Array:
    """One-step-ahead prediction yhat [batch, out_dim] (the mean) from windows Y [batch, lags,
    in_dim]."""
    return self._last_hidden(params, Y) @ params["V"] + params["c"]

  def predict(self, params: Params, Y: Array) -> tuple[Array, Array]:
    """The Gaussian's mean yhat and log sigma in [-15, 15], [batch, out_dim] each."""
    if self.likelihood != "gaussian":
      checks.fail("likelihood", "be 'gaussian' for predict (mse has no sigma)",
                  repr(self.likelihood))
    h = self._last_hidden(params, Y)
    return h @ params["V"] + params["c"], bound_log_sigma(h @ params["V_sigma"] + params["c_sigma"])

  def _last_hidden(self, params: Params, Y: Array) -> Array:
    """The hidden state h [batch, hidden] after the last lag of Y (checked here)."""
    checks.shape("Y", Y, (None, None, self.in_dim))
    if Y.shape[1] < 1:
      checks.fail("Y", "have at least one lag", f"shape {Y.shape}")
    checks.floating("Y", Y)  # every shape error before the dtype's, as elsewhere
    U, W, b = self._input_weights(params)
    YU_b = jnp.swapaxes(Y @ U + b[None], 0, 1)  # [lags, batch, .]: input terms of all lags at once
    zeros = jnp.zeros((Y.shape[0], self.hidden), YU_b.dtype)
    cell = lambda state, yU_b: (self._cell(W, state, yU_b), None)
    state, _ = jax.lax.scan(cell, (zeros,) * self._states, YU_b,
                            unroll=_unroll(Y.shape[1], self.unroll))
    return state[0]

  def _sigma_head(self, key: Array, dtype: Any) -> Params:
    """{V_sigma, c_sigma} of the Gaussian likelihood ({} for mse), from its own key."""
    if self.likelihood != "gaussian":
      return {}
    head = _dense(jax.random.fold_in(key, 1), self.hidden, self.out_dim, dtype)
    return {"V_sigma": head["A"], "c_sigma": head["b"]}


def _recurrent_sizes(in_dim: Any, hidden: Any, out_dim: Any, unroll: Any,
                     likelihood: Any = "mse") -> tuple:
  """The checked arguments of rnn and lstm."""
  if not (unroll is None or isinstance(unroll, bool)):
    if not isinstance(unroll, (int, np.integer)) or unroll < 1:
      checks.fail("unroll", "be None, a bool or an integer >= 1", repr(unroll))
    unroll = int(unroll)
  return (checks.integer("in_dim", in_dim), checks.integer("hidden", hidden),
          checks.integer("out_dim", out_dim), unroll,
          checks.choice("likelihood", likelihood, RECURRENT_LIKELIHOODS))


@dataclasses.dataclass(frozen=True)
class RNN(_Recurrent):
  """h_t = tanh(h_{t-1} W + y_{t-1} U + b) over the lags from h = 0; yhat = h V + c after the last."""

  _states = 1  # the state is (h,)

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    dtype = _init_args(key, dtype)
    k_U, k_V = jax.random.split(key)
    H = self.hidden
    return {"U": _glorot(k_U, (self.in_dim, H), dtype),
            "W": jnp.eye(H, dtype=dtype),  # the recurrent matrix starts as the identity
            "b": jnp.zeros((1, H), dtype), "V": _glorot(k_V, (H, self.out_dim), dtype),
            "c": jnp.zeros((1, self.out_dim), dtype), **self._sigma_head(key, dtype)}

  def _input_weights(self, params: Params) -> tuple[Array, Array, Array]:
    return params["U"], params["W"], params["b"]

  def _cell(self, W: Array, state: tuple[Array], yU_b: Array) -> tuple[Array]:
    return (jnp.tanh(state[0] @ W + yU_b),)  # h [batch, H]


def rnn(in_dim: int = 1, hidden: int = 4, out_dim: int = 1, unroll: int | bool | None = None,
        likelihood: str = "mse") -> RNN:
  """The tutorial's recurrent network (hidden size 4); ``likelihood`` mse or gaussian."""
  return RNN(*_recurrent_sizes(in_dim, hidden, out_dim, unroll, likelihood))


_GATES = ("f", "i", "s", "o")  # forget, input, cell candidate, output


@dataclasses.dataclass(frozen=True)
class LSTM(_Recurrent):
  """The tutorial's LSTM, with the logistic sigmoid of the text (the published code used sigmoid(2x)).

    f_t = sigma(h_{t-1} W_f + y_{t-1} U_f + b_f)       forget gate
    i_t = sigma(h_{t-1} W_i + y_{t-1} U_i + b_i)       input gate
    s~_t = tanh(h_{t-1} W_s + y_{t-1} U_s + b_s)       cell candidate
    o_t = sigma(h_{t-1} W_o + y_{t-1} U_o + b_o)       output gate
    s_t = f_t * s_{t-1} + i_t * s~_t,   h_t = o_t * tanh(s_t),   yhat = h V + c.
  """

  _states = 2  # the state is (h, s)

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    dtype = _init_args(key, dtype)
    keys = jax.random.split(key, 5)
    H = self.hidden
    params = {}
    for k, g in zip(keys, _GATES):
      params[f"U_{g}"] = _glorot(k, (self.in_dim, H), dtype)
      params[f"W_{g}"] = jnp.eye(H, dtype=dtype)  # recurrent matrices start as the identity
      params[f"b_{g}"] = jnp.zeros((1, H), dtype)
    params["V"] = _glorot(keys[4], (H, self.out_dim), dtype)
    params["c"] = jnp.zeros((1, self.out_dim), dtype)
    return {**params, **self._sigma_head(key, dtype)}

  def _input_weights(self, params: Params) -> tuple[Array, Array, Array]:
    """The four gates side by side, so each step is one matmul: [.., 4H] = [f | i | s | o]."""
    return tuple(jnp.concatenate([params[f"{m}_{g}"] for g in _GATES], axis=1) for m in "UWb")

  def _cell(self, W: Array, state: tuple[Array, Array], yU_b: Array) -> tuple[Array, Array]:
    (h, s), H = state, self.hidden  # [batch, H] each
    z = h @ W + yU_b
    f = jax.nn.sigmoid(z[:, :H])
    i = jax.nn.sigmoid(z[:, H:2 * H])
    s_tilde = jnp.tanh(z[:, 2 * H:3 * H])
    o = jax.nn.sigmoid(z[:, 3 * H:])
    s = f * s + i * s_tilde
    return o * jnp.tanh(s), s


def lstm(in_dim: int = 1, hidden: int = 4, out_dim: int = 1,
         unroll: int | bool | None = None, likelihood: str = "mse") -> LSTM:
  """The tutorial's LSTM (hidden size 4); ``likelihood`` mse or gaussian."""
  return LSTM(*_recurrent_sizes(in_dim, hidden, out_dim, unroll, likelihood))


# ----------------------------------------------------------------------------------------------
# Variational auto-encoders. Each network outputs a mean mu and a log-variance log Sigma
# (the tutorial's Sigma = exp(linear), the linear head bounded to [-30, 30]), Sigma diagonal.


def _gaussian_net(p: Params, X: Array, n_layers: int) -> tuple[Array, Array]:
  """mu = H A_mu + b_mu, log Sigma = bound_log_var(H A_log_Sigma + b_log_Sigma)."""
  H = _hidden(p, X, n_layers)
  return _head(p, H, "mu"), bound_log_var(_head(p, H, "log_Sigma"))


@dataclasses.dataclass(frozen=True)
class VAE(LatentModel):
  """p(z) = N(0, I), q(z|y) = N(mu_1(y), Sigma_1(y)), p(y|z) = N(mu_2(z), Sigma_2(z))."""

  data_dim: int = 2
  latent: int = 2
  encoder: tuple[int, ...] = (100, 50)
  decoder: tuple[int, ...] = (50, 100)
  conditional = False  # a class attribute, not a field

  y_dim = property(lambda self: self.data_dim, doc="data_dim, the CVAE's name for it")

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    dtype = _init_args(key, dtype)
    k_enc, k_dec = jax.random.split(key)
    heads_z = {"mu": self.latent, "log_Sigma": self.latent}
    heads_y = {"mu": self.data_dim, "log_Sigma": self.data_dim}
    return {"encoder": _init_tanh_net(k_enc, self.data_dim, self.encoder, heads_z, dtype),
            "decoder": _init_tanh_net(k_dec, self.latent, self.decoder, heads_y, dtype)}

  def _prior(self, params: Params, x: None) -> tuple[Array, Array]:
    zeros = jnp.zeros((1, self.latent), params["decoder"]["A_mu"].dtype)
    return zeros, zeros

  def _encode(self, params: Params, y: Array, x: None) -> tuple[Array, Array]:
    return _gaussian_net(params["encoder"], y, len(self.encoder))

  def _decode(self, params: Params, z: Array, x: None) -> tuple[Array, Array]:
    return _gaussian_net(params["decoder"], z, len(self.decoder))

  def _sample(self, params, key, n, x, shared_noise, noise) -> Array:  # no x axis to share over
    k_z, k_y = jax.random.split(key)
    z = jax.random.normal(k_z, (n, self.latent), params["decoder"]["A_mu"].dtype)
    mu_2, log_Sigma_2 = self._decode(params, z, x)
    return reparameterise(k_y, mu_2, log_Sigma_2) if noise else mu_2


def vae(data_dim: int = 2, latent: int = 2, encoder: Any = (100, 50),
        decoder: Any = (50, 100)) -> VAE:
  """The tutorial's VAE (encoder 2-100-50-(2, 2), decoder 2-50-100-(2, 2))."""
  return VAE(checks.integer("data_dim", data_dim), checks.integer("latent", latent),
             checks.sizes("encoder", encoder), checks.sizes("decoder", decoder))


@dataclasses.dataclass(frozen=True)
class CVAE(LatentModel):
  """p(z|x) = N(mu_0(x), Sigma_0(x)), q(z|.) = N(mu_1, Sigma_1), p(y|.) = N(mu_2, Sigma_2).

  ``variant="tutorial"``: the encoder sees y and the decoder sees z (the tutorial's code);
  ``variant="standard"``: the encoder sees (x, y) and the decoder (x, z) (Sohn et al., 2015).
  Every method takes the conditions x, which the tutorial variant's encoder and decoder ignore.
  """

  x_dim: int = 1
  y_dim: int = 1
  latent: int = 2
  prior_net: tuple[int, ...] = (50, 50)
  encoder: tuple[int, ...] = (50, 50)
  decoder: tuple[int, ...] = (50, 50)
  variant: str = "tutorial"
  conditional = True  # a class attribute, not a field
  _standard = property(lambda self: self.variant == "standard")  # the nets see x too

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    dtype = _init_args(key, dtype)
    k0, k1, k2 = jax.random.split(key, 3)
    x_in = self.x_dim if self._standard else 0
    heads_z = {"mu": self.latent, "log_Sigma": self.latent}
    heads_y = {"mu": self.y_dim, "log_Sigma": self.y_dim}
    return {"prior": _init_tanh_net(k0, self.x_dim, self.prior_net, heads_z, dtype),
            "encoder": _init_tanh_net(k1, x_in + self.y_dim, self.encoder, heads_z, dtype),
            "decoder": _init_tanh_net(k2, x_in + self.latent, self.decoder, heads_y, dtype)}

  def _prior(self, params: Params, x: Array) -> tuple[Array, Array]:
    return _gaussian_net(params["prior"], x, len(self.prior_net))

  def _encode(self, params: Params, y: Array, x: Array) -> tuple[Array, Array]:
    inputs = jnp.concatenate([x, y], axis=1) if self._standard else y
    return _gaussian_net(params["encoder"], inputs, len(self.encoder))

  def _decode(self, params: Params, z: Array, x: Array) -> tuple[Array, Array]:
    inputs = jnp.concatenate([x, z], axis=1) if self._standard else z
    return _gaussian_net(params["decoder"], inputs, len(self.decoder))

  def _sample(self, params, key, n, x, shared_noise, noise) -> Array:
    mu_0, log_Sigma_0 = self._prior(params, x)  # [N, latent]
    k_z, k_y = jax.random.split(key)
    N = x.shape[0]
    eps_shape = (n, 1, self.latent) if shared_noise else (n, N, self.latent)
    eps = jax.random.normal(k_z, eps_shape, mu_0.dtype)
    z = mu_0[None] + eps * jnp.exp(0.5 * log_Sigma_0)[None]  # [n, N, latent]
    mu_2, log_Sigma_2 = jax.vmap(lambda z_j: self._decode(params, z_j, x))(z)  # [n, N, y_dim]
    if not noise:
      return mu_2
    eps_y_shape = (n, 1, self.y_dim) if shared_noise else mu_2.shape
    eps_y = jax.random.normal(k_y, eps_y_shape, mu_2.dtype)
    return mu_2 + eps_y * jnp.exp(0.5 * log_Sigma_2)


def cvae(x_dim: int = 1, y_dim: int = 1, latent: int = 2, prior_net: Any = (50, 50),
         encoder: Any = (50, 50), decoder: Any = (50, 50), variant: str = "tutorial") -> CVAE:
  """The tutorial's conditional VAE (latent 2, each network 50-50), ``variant`` in CVAE_VARIANTS."""
  variant = checks.choice("variant", variant, CVAE_VARIANTS)
  return CVAE(checks.integer("x_dim", x_dim), checks.integer("y_dim", y_dim),
              checks.integer("latent", latent), checks.sizes("prior_net", prior_net),
              checks.sizes("encoder", encoder), checks.sizes("decoder", decoder), variant)
