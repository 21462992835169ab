"""The tutorial's five models as pure functions: ``init(key) -> params`` and ``apply(params, ...)``.

Every model is a frozen (hashable) dataclass holding only its sizes, so it can be a static
argument of ``jax.jit``. Parameters are plain nested dicts keyed by the tutorial's symbols, and
row-vector conventions follow the tutorial: ``H = tanh(X A + b)`` with ``A`` of shape
``[in, out]`` and the bias ``b`` of shape ``[1, out]`` (so nothing relies on rank promotion).
Every log-variance a model returns is clipped to [-30, 30] (``LOG_VAR_BOUND``; log sigma to
[-15, 15]), where exp() and its products with the data stay finite in float32; the comment at
``bound_log_var`` says why 30 and why a hard clip.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = dict[str, Any]

_glorot = jax.nn.initializers.glorot_uniform()

# Variants of the conditional VAE: the tutorial's (encoder q(z|y), decoder p(y|z)) and the
# standard one of Sohn, Lee and Yan (2015) (encoder q(z|x, y), decoder p(y|x, z)).
CVAE_VARIANTS = ("tutorial", "standard")


# ----------------------------------------------------------------------------------------------
# Checks: shapes are static, so these run at trace time and cost nothing inside jit.


def _check_size(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")
  return int(value)


def _check_sizes(name: str, values: Any) -> tuple[int, ...]:
  if isinstance(values, int):
    values = (values,)
  try:
    values = tuple(values)
  except TypeError:
    raise ValueError(f"{name} must be a sequence of positive integers, got {values!r}") from None
  for i, v in enumerate(values):
    _check_size(f"{name}[{i}]", v)
  return values


def _check_unroll(unroll: Any) -> int | bool | None:
  if unroll is None or isinstance(unroll, bool):
    return unroll
  if not isinstance(unroll, (int, np.integer)) or unroll < 1:
    raise ValueError(f"unroll must be None, a bool or an integer >= 1, got {unroll!r}")
  return int(unroll)


def _check_key(name: str, key: Any) -> None:
  """A typed key (``jax.random.key``, shape []) or raw key data (``PRNGKey``, uint32 [2])."""
  dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
  if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
    return
  if dtype == np.uint32 and shape is not None and len(shape) == 1:
    return
  got = f"an array of shape {shape} and dtype {dtype}" if dtype is not None else repr(key)
  raise TypeError(f"{name} must be a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
                  f"got {got}")


def _check_float_dtype(dtype: Any) -> jnp.dtype:
  dtype = jnp.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"dtype must be a floating dtype, got {dtype}")
  return dtype


def _check_input(name: str, x: Array, shape: tuple[int | None, ...]) -> None:
  """Checks rank and the known sizes of ``x`` (``None`` in ``shape`` means any size), then that
  it is floating."""
  _check_shape(name, x, shape)
  _check_floating(name, x)


def _check_shape(name: str, x: Array, shape: tuple[int | None, ...]) -> None:
  x_shape = jnp.shape(x)
  if len(x_shape) != len(shape) or any(s is not None and s != xs for s, xs in zip(shape, x_shape)):
    want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
    raise ValueError(f"{name} must have shape {want}, got {x_shape}")


def _check_floating(name: str, x: Array) -> None:
  if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
    raise TypeError(f"{name} must be a floating array, got dtype {jnp.result_type(x)}")


# ----------------------------------------------------------------------------------------------
# Building blocks: a dense layer {A, b}, a tanh network with linear heads, the MLP's activations.


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


def _tanh_hidden(p: Params, X: Array, n_layers: int) -> Array:
  """H(l) = tanh(H(l-1) A(l) + b(l)), H(0) = X."""
  H = X
  for l in range(1, n_layers + 1):
    H = jnp.tanh(H @ p[f"A{l}"] + p[f"b{l}"])
  return H


# The MLP's hidden units (the recurrent nets and the VAEs are tanh): the tutorial's tanh, or
# relu(a) = max(a, 0) (the Deep Ensembles paper's). Both start from the same Glorot-uniform
# multipliers and zero biases. He initialisation (Var A = 2 / fan_in, uniform or normal) was
# measured on the Deep Ensembles toy (5 members of 1-100-1, seeds 0-9) and trained worse: the
# first layer's fan_in of 1 gives it 100x Glorot's variance, and the members' means followed the
# noise (RMSE to x^3 on [-4, 4] 5.0 against Glorot's 3.6, CRPS 3.05 against 2.68, members' NLL
# 4.4-4.7 against 3.4; the mixture NLL 3.26-3.33 against 3.43, within the seeds' spread).
MLP_ACTIVATIONS = ("tanh", "relu")


def _check_activation(activation: Any) -> str:
  if not isinstance(activation, str) or activation not in MLP_ACTIVATIONS:
    raise ValueError(f"activation must be one of {', '.join(map(repr, MLP_ACTIVATIONS))}, "
                     f"got {activation!r}")
  return activation


def _relu_hidden(p: Params, X: Array, n_layers: int) -> Array:
  """H(l) = relu(H(l-1) A(l) + b(l)) = max(H(l-1) A(l) + b(l), 0), H(0) = X."""
  H = X
  for l in range(1, n_layers + 1):
    H = jax.nn.relu(H @ p[f"A{l}"] + p[f"b{l}"])
  return H


def _head(p: Params, H: Array, name: str) -> Array:
  return H @ p[f"A_{name}"] + p[f"b_{name}"]


# ----------------------------------------------------------------------------------------------
# Bounded log-variances. Every log-variance a model returns (the MLP's 2 log sigma, the VAEs' log
# Sigma_0, log Sigma_1, log Sigma_2) lies in [-LOG_VAR_BOUND, LOG_VAR_BOUND], enforced at one
# place per output (MLP.predict, _gaussian_net), so apply, predict, encode, decode, prior and
# sample all see the bounded values and exp() of them can neither overflow nor underflow.
#
# Why 30. float32 reaches 3.4e38 = e^88.7 and its smallest normal number is 1.2e-38 = e^-87.3.
# exp(+-30) = 1.1e13 and 9.4e-14 are normal numbers at least 57 e-folds from either end, which is
# the room the objectives need for products with the data: the NLL's r^2 exp(-log_var) stays
# finite for squared residuals r^2 up to 3.4e38 / 1.1e13 = 3e25 (|r| < 5e12), the KL's
# exp(log_var_q) exp(-log_var_p) is at most e^60 = 1.1e26, and (mu_q - mu_p)^2 exp(-log_var_p) is
# finite for |mu_q - mu_p| < 5e12. The standard deviations it allows, exp(+-15) = 3.3e6 and
# 3.1e-7, cover un-standardised data from micro- to mega-units, so sane fits never touch it (the
# network's noise, 0.1 on data of std 0.4, is a log-variance of -2.8 once standardised). A larger
# bound would leave no room for those products (e^80 times the square of a residual of 100
# overflows); a smaller one would cap the noise the models can represent. float64 uses the same
# bound so that results do not depend on the dtype; bfloat16 shares float32's exponent range;
# float16 (max 65504 = e^11.1) is not covered.
#
# A hard clip, not a smooth squashing such as B tanh(x / B): inside the bound the values are
# bitwise the raw network's, so the models are exactly the tutorial's wherever they are sane (a
# tanh squash moves every value, by about 1% at |x| = 5); and far outside, where a saturated head
# would need a gradient to come back, a smooth squash's gradient (4 exp(-2 |x| / B)) is as good as
# zero too. The price: beyond the bound the loss gives the raw value no gradient, so a learned log
# sigma pushed past -15 on noise-free data stays there (its optimum is -inf anyway), while every
# other parameter keeps finite gradients.

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

  ``activation`` is phi of the hidden layers: "tanh" (the tutorial's) or "relu", max(a, 0)
  (the Deep Ensembles paper's); the initialisation is the same for both (Glorot-uniform A,
  zero b; see MLP_ACTIVATIONS), so a seed gives a tanh and a relu network equal parameters.
  Parameters: ``A1, b1, ..., AL, bL`` (hidden layers), ``A, b`` (output layer) and the noise:
  ``log_sigma [1, R]`` (one learned standard deviation per output), or, when
  ``heteroscedastic``, a head ``log sigma(x) = H(L) A_sigma + b_sigma`` (Deep Ensembles).
  """

  in_dim: int = 1
  hidden: tuple[int, ...] = (50, 50)
  out_dim: int = 1
  heteroscedastic: bool = False
  activation: str = "tanh"

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    _check_key("key", key)
    dtype = _check_float_dtype(dtype)
    _check_activation(self.activation)
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
    """Mean F [N, R] and noise log-standard-deviation log sigma [N, R] at the inputs X [N, P].

    log sigma is bounded to [-LOG_SIGMA_BOUND, LOG_SIGMA_BOUND] = [-15, 15] (see bound_log_var).
    """
    _check_input("X", X, (None, self.in_dim))
    hidden = _tanh_hidden if _check_activation(self.activation) == "tanh" else _relu_hidden
    H = hidden(params, X, len(self.hidden))  # [N, Q]
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
  return MLP(_check_size("in_dim", in_dim), _check_sizes("hidden", hidden),
             _check_size("out_dim", out_dim), bool(heteroscedastic),
             _check_activation(activation))


# ----------------------------------------------------------------------------------------------
# Recurrent networks: input windows Y [batch, lags, dim] of lagged values, oldest first.


def _check_window(Y: Array, in_dim: int) -> None:
  """Y [batch, lags >= 1, in_dim], floating; every shape error before the dtype's, as elsewhere."""
  _check_shape("Y", Y, (None, None, in_dim))
  if Y.shape[1] < 1:
    raise ValueError(f"Y must have at least one lag, got shape {Y.shape}")
  _check_floating("Y", Y)


FULL_UNROLL_MAX_LAGS = 16  # "auto" unrolling: fully up to this many lags, else 2 lags per iteration


def _unroll(lags: int, unroll: int | bool | None) -> int | bool:
  """``lax.scan``'s unroll: ``None`` is auto (measured in BUILD_NOTES.md: a full unroll is
  fastest for the tutorial's 5 and 10 lags, but its compile time and code size grow with the
  lags and it slows down long windows; 2 is the best partial unroll at 100-200 lags)."""
  if unroll is None:
    return True if lags <= FULL_UNROLL_MAX_LAGS else 2
  return True if unroll is True or (not isinstance(unroll, bool) and unroll >= lags) else unroll


@dataclasses.dataclass(frozen=True)
class RNN:
  """h_t = tanh(h_{t-1} W + y_{t-1} U + b), h = 0 before the first lag; yhat = h V + c after the last.

  ``unroll`` is passed to ``jax.lax.scan`` over the lags (``True``: fully unrolled; ``None``,
  the default: fully up to 16 lags, else 2).
  """

  in_dim: int = 1
  hidden: int = 4
  out_dim: int = 1
  unroll: int | bool | None = None

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    _check_key("key", key)
    dtype = _check_float_dtype(dtype)
    k_U, k_V = jax.random.split(key)
    H = self.hidden
    return {
        "U": _glorot(k_U, (self.in_dim, H), dtype),
        "W": jnp.eye(H, dtype=dtype),  # the recurrent matrix starts as the identity
        "b": jnp.zeros((1, H), dtype),
        "V": _glorot(k_V, (H, self.out_dim), dtype),
        "c": jnp.zeros((1, self.out_dim), dtype),
    }

  def apply(self, params: Params, Y: Array) -> Array:
    """One-step-ahead prediction yhat [batch, out_dim] from windows Y [batch, lags, in_dim]."""
    _check_window(Y, self.in_dim)
    U, W, b = params["U"], params["W"], params["b"]
    YU_b = jnp.swapaxes(Y @ U + b[None], 0, 1)  # [lags, batch, H]: input terms of all lags at once

    def cell(h, yU_b):  # h [batch, H]
      return jnp.tanh(h @ W + yU_b), None

    h0 = jnp.zeros((Y.shape[0], self.hidden), YU_b.dtype)
    h, _ = jax.lax.scan(cell, h0, YU_b, unroll=_unroll(Y.shape[1], self.unroll))
    return h @ params["V"] + params["c"]


def rnn(in_dim: int = 1, hidden: int = 4, out_dim: int = 1, unroll: int | bool | None = None) -> RNN:
  """The tutorial's recurrent network (hidden size 4)."""
  return RNN(_check_size("in_dim", in_dim), _check_size("hidden", hidden),
             _check_size("out_dim", out_dim), _check_unroll(unroll))


_GATES = ("f", "i", "s", "o")  # forget, input, cell candidate, output


@dataclasses.dataclass(frozen=True)
class LSTM:
  """The tutorial's LSTM, with the logistic sigmoid of the text (the published code used sigmoid(2x)).

    f_t = sigma(h_{t-1} W_f + y_{t-1} U_f + b_f)       forget gate
    i_t = sigma(h_{t-1} W_i + y_{t-1} U_i + b_i)       input gate
    s~_t = tanh(h_{t-1} W_s + y_{t-1} U_s + b_s)       cell candidate
    o_t = sigma(h_{t-1} W_o + y_{t-1} U_o + b_o)       output gate
    s_t = f_t * s_{t-1} + i_t * s~_t,   h_t = o_t * tanh(s_t),   yhat = h V + c.
  """

  in_dim: int = 1
  hidden: int = 4
  out_dim: int = 1
  unroll: int | bool | None = None

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    _check_key("key", key)
    dtype = _check_float_dtype(dtype)
    keys = jax.random.split(key, 5)
    H = self.hidden
    params = {}
    for k, g in zip(keys, _GATES):
      params[f"U_{g}"] = _glorot(k, (self.in_dim, H), dtype)
      params[f"W_{g}"] = jnp.eye(H, dtype=dtype)  # recurrent matrices start as the identity
      params[f"b_{g}"] = jnp.zeros((1, H), dtype)
    params["V"] = _glorot(keys[4], (H, self.out_dim), dtype)
    params["c"] = jnp.zeros((1, self.out_dim), dtype)
    return params

  def apply(self, params: Params, Y: Array) -> Array:
    """One-step-ahead prediction yhat [batch, out_dim] from windows Y [batch, lags, in_dim]."""
    _check_window(Y, self.in_dim)
    H = self.hidden
    # The four gates side by side, so each step is one matmul: [.., 4H] = [f | i | s | o].
    U = jnp.concatenate([params[f"U_{g}"] for g in _GATES], axis=1)  # [in_dim, 4H]
    W = jnp.concatenate([params[f"W_{g}"] for g in _GATES], axis=1)  # [H, 4H]
    b = jnp.concatenate([params[f"b_{g}"] for g in _GATES], axis=1)  # [1, 4H]
    YU_b = jnp.swapaxes(Y @ U + b[None], 0, 1)  # [lags, batch, 4H]

    def cell(carry, yU_b):
      h, s = carry  # [batch, H] each
      z = h @ W + yU_b
      f = jax.nn.sigmoid(z[:, :H])
      i = jax.nn.sigmoid(z[:, H:2 * H])
      s_tilde = jnp.tanh(z[:, 2 * H:3 * H])
      o = jax.nn.sigmoid(z[:, 3 * H:])
      s = f * s + i * s_tilde
      return (o * jnp.tanh(s), s), None

    zeros = jnp.zeros((Y.shape[0], H), YU_b.dtype)
    (h, _), _ = jax.lax.scan(cell, (zeros, zeros), YU_b,
                             unroll=_unroll(Y.shape[1], self.unroll))
    return h @ params["V"] + params["c"]


def lstm(in_dim: int = 1, hidden: int = 4, out_dim: int = 1,
         unroll: int | bool | None = None) -> LSTM:
  """The tutorial's LSTM (hidden size 4)."""
  return LSTM(_check_size("in_dim", in_dim), _check_size("hidden", hidden),
              _check_size("out_dim", out_dim), _check_unroll(unroll))


# ----------------------------------------------------------------------------------------------
# Variational auto-encoders. Each network outputs a mean mu and a log-variance log Sigma
# (the tutorial's Sigma = exp(linear), the linear head bounded to [-30, 30]), Sigma diagonal.


def _gaussian_net(p: Params, X: Array, n_layers: int) -> tuple[Array, Array]:
  """mu = H A_mu + b_mu, log Sigma = bound_log_var(H A_log_Sigma + b_log_Sigma)."""
  H = _tanh_hidden(p, X, n_layers)
  return _head(p, H, "mu"), bound_log_var(_head(p, H, "log_Sigma"))


def _reparameterise(key: Array, mu: Array, log_Sigma: Array) -> Array:
  """mu + eps Sigma^(1/2), eps ~ N(0, I)."""
  eps = jax.random.normal(key, mu.shape, mu.dtype)
  return mu + eps * jnp.exp(0.5 * log_Sigma)


@dataclasses.dataclass(frozen=True)
class VAE:
  """p(z) = N(0, I), q(z|y) = N(mu_1(y), Sigma_1(y)), p(y|z) = N(mu_2(z), Sigma_2(z))."""

  data_dim: int = 2
  latent: int = 2
  encoder: tuple[int, ...] = (100, 50)
  decoder: tuple[int, ...] = (50, 100)

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    _check_key("key", key)
    dtype = _check_float_dtype(dtype)
    k_enc, k_dec = jax.random.split(key)
    heads_z = {"mu": self.latent, "log_Sigma": self.latent}
    heads_y = {"mu": self.data_dim, "log_Sigma": self.data_dim}
    return {"encoder": _init_tanh_net(k_enc, self.data_dim, self.encoder, heads_z, dtype),
            "decoder": _init_tanh_net(k_dec, self.latent, self.decoder, heads_y, dtype)}

  def encode(self, params: Params, y: Array) -> tuple[Array, Array]:
    """mu_1(y), log Sigma_1(y), each [N, latent], for data y [N, data_dim]."""
    _check_input("y", y, (None, self.data_dim))
    return _gaussian_net(params["encoder"], y, len(self.encoder))

  def decode(self, params: Params, z: Array) -> tuple[Array, Array]:
    """mu_2(z), log Sigma_2(z), each [N, data_dim], for latents z [N, latent]."""
    _check_input("z", z, (None, self.latent))
    return _gaussian_net(params["decoder"], z, len(self.decoder))

  def apply(self, params: Params, y: Array, key: Array) -> dict[str, Array]:
    """One pass y -> q(z|y) -> z (reparameterised) -> p(y|z); returns every intermediate."""
    _check_key("key", key)
    mu_1, log_Sigma_1 = self.encode(params, y)
    z = _reparameterise(key, mu_1, log_Sigma_1)
    mu_2, log_Sigma_2 = self.decode(params, z)
    return {"mu_1": mu_1, "log_Sigma_1": log_Sigma_1, "z": z, "mu_2": mu_2,
            "log_Sigma_2": log_Sigma_2}

  def sample(self, params: Params, key: Array, n: int, noise: bool = False) -> Array:
    """n draws [n, data_dim]: decoder means mu_2(z), z ~ N(0, I); with ``noise``, y ~ p(y|z)."""
    _check_key("key", key)
    n = _check_size("n", n)
    k_z, k_y = jax.random.split(key)
    dtype = params["decoder"]["A_mu"].dtype
    z = jax.random.normal(k_z, (n, self.latent), dtype)
    mu_2, log_Sigma_2 = self.decode(params, z)
    return _reparameterise(k_y, mu_2, log_Sigma_2) if noise else mu_2


def vae(data_dim: int = 2, latent: int = 2, encoder: Any = (100, 50),
        decoder: Any = (50, 100)) -> VAE:
  """The tutorial's VAE (encoder 2-100-50-(2, 2), decoder 2-50-100-(2, 2))."""
  return VAE(_check_size("data_dim", data_dim), _check_size("latent", latent),
             _check_sizes("encoder", encoder), _check_sizes("decoder", decoder))


@dataclasses.dataclass(frozen=True)
class CVAE:
  """p(z|x) = N(mu_0(x), Sigma_0(x)), q(z|.) = N(mu_1, Sigma_1), p(y|.) = N(mu_2, Sigma_2).

  ``variant="tutorial"``: the encoder sees y and the decoder sees z (the tutorial's code);
  ``variant="standard"``: the encoder sees (x, y) and the decoder (x, z) (Sohn et al., 2015).
  """

  x_dim: int = 1
  y_dim: int = 1
  latent: int = 2
  prior_net: tuple[int, ...] = (50, 50)
  encoder: tuple[int, ...] = (50, 50)
  decoder: tuple[int, ...] = (50, 50)
  variant: str = "tutorial"

  @property
  def _standard(self) -> bool:
    return self.variant == "standard"

  def init(self, key: Array, dtype: Any = jnp.float32) -> Params:
    _check_key("key", key)
    dtype = _check_float_dtype(dtype)
    k0, k1, k2 = jax.random.split(key, 3)
    x_in = self.x_dim if self._standard else 0
    heads_z = {"mu": self.latent, "log_Sigma": self.latent}
    heads_y = {"mu": self.y_dim, "log_Sigma": self.y_dim}
    return {"prior": _init_tanh_net(k0, self.x_dim, self.prior_net, heads_z, dtype),
            "encoder": _init_tanh_net(k1, x_in + self.y_dim, self.encoder, heads_z, dtype),
            "decoder": _init_tanh_net(k2, x_in + self.latent, self.decoder, heads_y, dtype)}

  def prior(self, params: Params, x: Array) -> tuple[Array, Array]:
    """mu_0(x), log Sigma_0(x), each [N, latent], for conditions x [N, x_dim]."""
    _check_input("x", x, (None, self.x_dim))
    return _gaussian_net(params["prior"], x, len(self.prior_net))

  def encode(self, params: Params, x: Array, y: Array) -> tuple[Array, Array]:
    """mu_1, log Sigma_1 [N, latent] of q(z|y) (tutorial) or q(z|x, y) (standard)."""
    _check_input("y", y, (None, self.y_dim))
    inputs = y
    if self._standard:
      _check_input("x", x, (y.shape[0], self.x_dim))
      inputs = jnp.concatenate([x, y], axis=1)
    return _gaussian_net(params["encoder"], inputs, len(self.encoder))

  def decode(self, params: Params, x: Array, z: Array) -> tuple[Array, Array]:
    """mu_2, log Sigma_2 [N, y_dim] of p(y|z) (tutorial) or p(y|x, z) (standard)."""
    _check_input("z", z, (None, self.latent))
    inputs = z
    if self._standard:
      _check_input("x", x, (z.shape[0], self.x_dim))
      inputs = jnp.concatenate([x, z], axis=1)
    return _gaussian_net(params["decoder"], inputs, len(self.decoder))

  def apply(self, params: Params, x: Array, y: Array, key: Array) -> dict[str, Array]:
    """One pass: prior p(z|x), q(z|.) -> z (reparameterised) -> p(y|.); every intermediate."""
    _check_key("key", key)
    _check_input("x", x, (None, self.x_dim))
    _check_input("y", y, (None, self.y_dim))
    if x.shape[0] != y.shape[0]:  # the pairs (x_n, y_n) must align
      raise ValueError(f"x must have as many rows as y, got shapes {x.shape} and {y.shape}")
    mu_0, log_Sigma_0 = self.prior(params, x)
    mu_1, log_Sigma_1 = self.encode(params, x, y)
    z = _reparameterise(key, mu_1, log_Sigma_1)
    mu_2, log_Sigma_2 = self.decode(params, x, z)
    return {"mu_0": mu_0, "log_Sigma_0": log_Sigma_0, "mu_1": mu_1, "log_Sigma_1": log_Sigma_1,
            "z": z, "mu_2": mu_2, "log_Sigma_2": log_Sigma_2}

  def sample(self, params: Params, key: Array, x: Array, n: int, shared_noise: bool = True,
             noise: bool = False) -> Array:
    """n conditional draws [n, N, y_dim] at x [N, x_dim]: z ~ p(z|x), then mu_2 (or y ~ p(y|.)).

    With ``shared_noise`` each draw uses one eps for every x (z = mu_0(x) + eps Sigma_0(x)^(1/2)),
    which is how the tutorial draws smooth curves; otherwise eps is drawn for each x.
    """
    _check_key("key", key)
    n = _check_size("n", n)
    mu_0, log_Sigma_0 = self.prior(params, x)  # [N, latent]
    k_z, k_y = jax.random.split(key)
    N = x.shape[0]
    eps_shape = (n, 1, self.latent) if shared_noise else (n, N, self.latent)
    eps = jax.random.normal(k_z, eps_shape, mu_0.dtype)
    z = mu_0[None] + eps * jnp.exp(0.5 * log_Sigma_0)[None]  # [n, N, latent]
    decode = jax.vmap(lambda z_j: self.decode(params, x, z_j))
    mu_2, log_Sigma_2 = decode(z)  # [n, N, y_dim]
    if not noise:
      return mu_2
    eps_y_shape = (n, 1, self.y_dim) if shared_noise else mu_2.shape
    eps_y = jax.random.normal(k_y, eps_y_shape, mu_2.dtype)
    return mu_2 + eps_y * jnp.exp(0.5 * log_Sigma_2)


def cvae(x_dim: int = 1, y_dim: int = 1, latent: int = 2, prior_net: Any = (50, 50),
         encoder: Any = (50, 50), decoder: Any = (50, 50), variant: str = "tutorial") -> CVAE:
  """The tutorial's conditional VAE (latent 2, each network 50-50), ``variant`` in CVAE_VARIANTS."""
  if variant not in CVAE_VARIANTS:
    raise ValueError(f"variant must be one of {CVAE_VARIANTS}, got {variant!r}")
  return CVAE(_check_size("x_dim", x_dim), _check_size("y_dim", y_dim),
              _check_size("latent", latent), _check_sizes("prior_net", prior_net),
              _check_sizes("encoder", encoder), _check_sizes("decoder", decoder), variant)
