"""Quality figures: RMSE, the energy distance between two samples, and proper scores (NLL, CRPS,
interval coverage) of Gaussian and Gaussian-mixture (ensemble) predictives."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special, stats

from dljax import models as M
from dljax import objectives as O


def _check_real(name: str, a) -> np.ndarray:
  """``a`` as float64, checked to be a non-empty array of finite integers or floats."""
  a = np.asarray(a)
  if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
    raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype}")
  if a.size == 0:
    raise ValueError(f"{name} must be non-empty, got shape {a.shape}")
  a = a.astype(np.float64, copy=False)
  n_bad = a.size - np.count_nonzero(np.isfinite(a))
  if n_bad:
    raise ValueError(f"{name} must be finite, got {n_bad} NaN or inf values")
  return a


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
  """sqrt(mean((prediction - target)^2)) over every element."""
  prediction, target = _check_real("prediction", prediction), _check_real("target", target)
  if prediction.shape != target.shape:
    raise ValueError(f"prediction and target must have the same shape, got {prediction.shape} "
                     f"and {target.shape}")
  return float(np.sqrt(np.mean(np.square(prediction - target))))


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
  """mean over all pairs (i, j) of |a_i - b_j| (Euclidean), by blocks to bound memory."""
  total = 0.0
  for start in range(0, a.shape[0], 1024):
    block = a[start:start + 1024]
    total += np.sqrt(np.sum(np.square(block[:, None, :] - b[None, :, :]), axis=-1)).sum()
  return total / (a.shape[0] * b.shape[0])


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
  """Szekely's energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between samples x [n, d], y [m, d].

  The expectations are over the two empirical distributions (V-statistics, i.e. all pairs, the
  zero self-distances included). In one dimension this is the square of
  ``scipy.stats.energy_distance``.
  """
  x, y = _check_real("x", x), _check_real("y", y)
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
    raise ValueError(f"x and y must be non-empty [n, d] and [m, d], got {x.shape} and {y.shape}")
  return float(2.0 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y))


# ----------------------------------------------------------------------------------------------
# Proper scores of Gaussian and Gaussian-mixture predictives (an ensemble's predictive is the
# equal-weight mixture of its members' Gaussians; scores are computed on the mixture, never as
# the average of the members' scores). Arrays broadcast elementwise; members on axis 0.


def _check_members(mu, sigma, positive: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """mu and sigma [K, ...]: same shape, members on axis 0, finite, sigma > 0 (or >= 0)."""
  mu, sigma = _check_real("mu", mu), _check_real("sigma", sigma)
  if mu.shape != sigma.shape:
    raise ValueError(f"mu and sigma must have the same shape, got {mu.shape} and {sigma.shape}")
  if mu.ndim < 1:
    raise ValueError(f"mu and sigma must have the members on axis 0, [K, ...], got shape "
                     f"{mu.shape}")
  if not np.all(sigma > 0 if positive else sigma >= 0):
    raise ValueError(f"sigma must be {'positive' if positive else 'non-negative'} everywhere, "
                     f"got minimum {float(sigma.min())}")
  return mu, sigma


def _check_predictive(y, mu, sigma):
  mu, sigma = _check_members(mu, sigma)
  y = _check_real("y", y)
  member = mu.shape[1:]
  try:  # y may broadcast to one member's shape, never beyond it (a [N] y against [K, N, 1]
    fits = np.broadcast_shapes(y.shape, member) == member  # members would score an [N, N] grid)
  except ValueError:
    fits = False
  if not fits:
    raise ValueError(f"y must broadcast to one member's shape {member} (mu and sigma are "
                     f"[K, ...] = {mu.shape}), got shape {y.shape}")
  return y, mu, sigma


def mixture_moments(mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and standard deviation of the equal-weight mixture of N(mu_k, sigma_k^2), k on axis 0:

    mean = mean_k mu_k,   var = mean_k (sigma_k^2 + mu_k^2) - mean^2.

  The variance is computed as mean_k sigma_k^2 + mean_k (mu_k - mean)^2, the same number without
  the cancellation of two large terms when the means are large against the spread.
  """
  mu, sigma = _check_members(mu, sigma, positive=False)
  mean = mu.mean(0)
  return mean, np.sqrt(np.mean(sigma**2, axis=0) + np.mean((mu - mean) ** 2, axis=0))


def mixture_nll(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  """-log (1/K) sum_k N(y | mu_k, sigma_k^2), elementwise (a log-mean-exp over members, axis 0)."""
  y, mu, sigma = _check_predictive(y, mu, sigma)
  log_pdf = stats.norm.logpdf(y[None], mu, sigma)  # [K, ...]
  return -(special.logsumexp(log_pdf, axis=0) - np.log(mu.shape[0]))


def _abs_moment(m: np.ndarray, s: np.ndarray) -> np.ndarray:
  """E|X| for X ~ N(m, s^2): 2 s phi(m / s) + m (2 Phi(m / s) - 1)."""
  z = m / s
  return 2.0 * s * stats.norm.pdf(z) + m * (2.0 * stats.norm.cdf(z) - 1.0)


def mixture_crps(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  """CRPS of the equal-weight Gaussian mixture, closed form (Grimit et al., 2006), elementwise:

    CRPS = E|X - y| - E|X - X'| / 2
         = mean_k A(y - mu_k, sigma_k) - mean_{k,l} A(mu_k - mu_l, sqrt(sigma_k^2 + sigma_l^2)) / 2,
  with A(m, s) = E|N(m, s^2)|. For one member it is the Gaussian CRPS
  sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)], z = (y - mu) / sigma.
  """
  y, mu, sigma = _check_predictive(y, mu, sigma)
  first = _abs_moment(y[None] - mu, sigma).mean(0)
  pair_m = mu[:, None] - mu[None, :]
  pair_s = np.sqrt(sigma[:, None] ** 2 + sigma[None, :] ** 2)
  return first - 0.5 * _abs_moment(pair_m, pair_s).mean((0, 1))


def mixture_quantile(q: float, mu: np.ndarray, sigma: np.ndarray, iters: int = 100) -> np.ndarray:
  """The q-quantile of the equal-weight Gaussian mixture, elementwise, by bisection on its CDF."""
  if (isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating))
      or not 0.0 < q < 1.0):
    raise ValueError(f"q must be a number in (0, 1), got {q!r}")
  if isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 1:
    raise ValueError(f"iters must be an integer >= 1, got {iters!r}")
  mu, sigma = _check_members(mu, sigma)
  lo = (mu - 10 * sigma).min(0)
  hi = (mu + 10 * sigma).max(0)
  for _ in range(iters):
    mid = 0.5 * (lo + hi)
    below = stats.norm.cdf(mid[None], mu, sigma).mean(0) < q
    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
  return 0.5 * (lo + hi)


def coverage(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
             levels: tuple[float, ...] = (0.5, 0.9, 0.95)) -> dict[float, float]:
  """Fraction of y inside the mixture's central interval at each level (members on axis 0)."""
  y, mu, sigma = _check_predictive(y, mu, sigma)
  if isinstance(levels, (str, bytes)) or not isinstance(levels, (tuple, list, np.ndarray)):
    raise TypeError(f"levels must be a sequence of numbers in (0, 1), got {levels!r}")
  for i, level in enumerate(levels):
    if (isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating))
        or not 0.0 < level < 1.0):
      raise ValueError(f"levels[{i}] must be a number in (0, 1), got {level!r}")
  out = {}
  for level in levels:
    lo = mixture_quantile(0.5 - level / 2, mu, sigma)
    hi = mixture_quantile(0.5 + level / 2, mu, sigma)
    out[level] = float(np.mean((y >= lo) & (y <= hi)))
  return out


# ----------------------------------------------------------------------------------------------
# Log-likelihood bounds of the VAE and the CVAE on held-out data, in JAX: the ELBO and the
# importance-weighted bound (IWAE; Burda, Grosse and Salakhutdinov, 2016), per data point, in the
# units of the data the model sees (standardised, in the examples). For the CVAE every quantity
# is conditional on x: log p(y | x), with the conditional prior p(z | x) = N(mu_0(x), Sigma_0(x))
# and the distributions of objectives.CVAENegELBO (variant "tutorial": q(z | y), p(y | z);
# "standard": q(z | x, y), p(y | x, z)).

_LOG_2PI = math.log(2.0 * math.pi)
# Default chunk: about this many (sample, data point) pairs decoded at once, which bounds the
# memory. Measured on the shared 2-core CPU, tutorial VAE, K = 1000 x 1000 points (noisy):
# chunks of 10-25 samples ran fastest (their activations stay in cache), 100-200 about 1.3x slower.
IWAE_CHUNK_ELEMENTS = 20_000


def _check_latent_model(model, y, x) -> None:
  if isinstance(model, M.VAE):
    if x is not None:
      raise ValueError("x must be None for a VAE (it has no conditions)")
  elif isinstance(model, M.CVAE):
    if x is None:
      raise ValueError("a CVAE needs the conditions x [N, x_dim]")
    if jnp.ndim(x) != 2 or jnp.ndim(y) != 2 or jnp.shape(x)[0] != jnp.shape(y)[0]:
      raise ValueError(f"x and y must be [N, x_dim] and [N, y_dim], got {jnp.shape(x)} and "
                       f"{jnp.shape(y)}")
  else:
    raise TypeError(f"needs a VAE or a CVAE, got {type(model).__name__}")


def _check_positive_int(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")
  return int(value)


@functools.partial(jax.jit, static_argnames=("model",))
def _elbo_program(model, params, key, y, x):
  """ELBO_n = log p(y_n | z_n) - KL[q || prior], one reparameterised z_n (as the objective)."""
  if isinstance(model, M.CVAE):
    out = model.apply(params, x, y, key)
    kl = O.kl_diag_gaussians(out["mu_1"], out["log_Sigma_1"], out["mu_0"], out["log_Sigma_0"])
  else:
    out = model.apply(params, y, key)
    kl = O.kl_standard_normal(out["mu_1"], out["log_Sigma_1"])
  return jnp.sum(O.gaussian_log_pdf(y, out["mu_2"], out["log_Sigma_2"]), axis=-1) - kl


# XLA's backend optimisation level 1 instead of the default: measured on the 2-core CPU for the
# tutorial VAE's K = 1000 x 1000 points, it compiles in 0.7-0.9 s instead of 1.1-1.4 s (mostly
# the random-number hashing) and runs as fast (0.32-0.38 s either way).
@functools.partial(jax.jit, static_argnames=("model", "ks", "chunk"),
                   compiler_options={"xla_backend_optimization_level": 1})
def _bounds_program(model, params, key, y, x, ks, chunk):
  """[1 + len(ks), N]: the ELBO from sample 0 (row 0), then log (1/K) sum_{i<K} w_i per K."""
  if isinstance(model, M.CVAE):
    mu_1, log_Sigma_1 = model.encode(params, x, y)
    mu_0, log_Sigma_0 = model.prior(params, x)
  else:
    mu_1, log_Sigma_1 = model.encode(params, y)
    mu_0 = log_Sigma_0 = jnp.zeros_like(mu_1)  # p(z) = N(0, I)
  (N, L), dtype = mu_1.shape, mu_1.dtype
  sd_1 = jnp.exp(0.5 * log_Sigma_1)

  def log_weights(i):  # sample indices [C] -> log p(y | z_i), log w_i = log p(y, z_i) / q(z_i | .)
    draw = lambda j: jax.random.normal(jax.random.fold_in(key, j), (N, L), dtype)
    eps = jax.vmap(draw)(i)  # [C, N, L]: sample j depends only on (key, j), not on the chunking
    z = mu_1[None] + eps * sd_1[None]
    # log q(z | .) from eps: -(log 2 pi + log Sigma_1 + eps^2) / 2, no (z - mu_1)^2 cancellation.
    log_q = -0.5 * jnp.sum(_LOG_2PI + log_Sigma_1[None] + jnp.square(eps), axis=-1)
    log_prior = jnp.sum(O.gaussian_log_pdf(z, mu_0[None], log_Sigma_0[None]), axis=-1)
    z_flat = z.reshape(chunk * N, L)
    if isinstance(model, M.CVAE):
      x_flat = jnp.broadcast_to(x[None], (chunk, *x.shape)).reshape(chunk * N, x.shape[1])
      mu_2, log_Sigma_2 = model.decode(params, x_flat, z_flat)
    else:
      mu_2, log_Sigma_2 = model.decode(params, z_flat)
    mu_2, log_Sigma_2 = (a.reshape(chunk, N, a.shape[-1]) for a in (mu_2, log_Sigma_2))
    log_lik = jnp.sum(O.gaussian_log_pdf(y[None], mu_2, log_Sigma_2), axis=-1)  # [C, N]
    return log_lik, log_lik + log_prior - log_q

  def step(carry, c):  # lse [len(ks), N]: the running log sum_{i<K} w_i of each K
    lik_0, lse = carry
    i = c * chunk + jnp.arange(chunk)
    log_lik, lw = log_weights(i)
    new = [jax.nn.logsumexp(jnp.where(i[:, None] < k, lw, -jnp.inf), axis=0) for k in ks]
    return (jnp.where(c == 0, log_lik[0], lik_0), jnp.logaddexp(lse, jnp.stack(new))), None

  init = (jnp.zeros((N,), dtype), jnp.full((len(ks), N), -jnp.inf, dtype))
  (lik_0, lse), _ = jax.lax.scan(step, init, jnp.arange(-(-max(ks) // chunk)))
  if isinstance(model, M.CVAE):
    kl = O.kl_diag_gaussians(mu_1, log_Sigma_1, mu_0, log_Sigma_0)
  else:
    kl = O.kl_standard_normal(mu_1, log_Sigma_1)
  iwae = lse - jnp.log(jnp.asarray(ks, dtype))[:, None]
  return jnp.concatenate([(lik_0 - kl)[None], iwae])


def _check_ks(ks, y, chunk) -> tuple[tuple[int, ...], int]:
  try:
    ks = tuple(_check_positive_int("k", k) for k in ks)
  except TypeError:
    raise ValueError(f"ks must be a sequence of positive integers, got {ks!r}") from None
  if not ks:
    raise ValueError("ks must hold at least one number of samples")
  if chunk is None:
    chunk = max(1, IWAE_CHUNK_ELEMENTS // max(jnp.shape(y)[0], 1))
  return ks, min(_check_positive_int("chunk", chunk), max(ks))


def elbo(model: M.VAE | M.CVAE, params: M.Params, key: jax.Array, y: jax.Array,
         x: jax.Array | None = None) -> jax.Array:
  """The ELBO of each data point [N], one reparameterised draw z ~ q(z | .), analytic KL:

    ELBO_n = log p(y_n | z_n) - KL[q(z | y_n) || p(z)]   (CVAE: p(z | x_n), p(y_n | z_n [, x_n]))

  exactly minus the per-point loss of ``objectives.neg_elbo(model, beta=1)`` with the same key.
  """
  _check_latent_model(model, y, x)
  return _elbo_program(model, params, key, y, x)


def log_likelihood_bounds(model: M.VAE | M.CVAE, params: M.Params, key: jax.Array, y: jax.Array,
                          ks: tuple[int, ...] = (1, 10, 100, 1000), x: jax.Array | None = None,
                          chunk: int | None = None) -> jax.Array:
  """The ELBO (row 0) and the IWAE bounds for each K in ks (rows 1...), [1 + len(ks), N]:

    L_K(y_n) = log (1/K) sum_{i<K} p(y_n | z_i) p(z_i) / q(z_i | y_n),   z_i ~ q(z | y_n)

  (CVAE: log p(y_n | x_n) with p(z | x_n) and q, p(y | .) of the variant), by logsumexp.
  E[L_1] is the ELBO, E[L_K] <= E[L_{K+1}] <= log p(y_n), and L_K -> log p(y_n) as K grows.
  Sample i is drawn from fold_in(key, i), so L_K uses the first K samples of any larger K and does
  not depend on the chunk; the ELBO row is ``elbo(.., fold_in(key, 0), ..)``, from sample 0
  (no second decoder pass or random-number program to compile). A scan over chunks of ``chunk``
  samples (default: about 20,000 samples x data points) keeps a running logsumexp per K: memory
  O(chunk N) whatever K. ``ks`` and ``chunk`` are static: one compilation per (model, shapes,
  dtypes, ks, chunk).
  """
  _check_latent_model(model, y, x)
  ks, chunk = _check_ks(ks, y, chunk)
  return _bounds_program(model, params, key, y, x, ks, chunk)


def iwae_bounds(model: M.VAE | M.CVAE, params: M.Params, key: jax.Array, y: jax.Array,
                ks: tuple[int, ...], x: jax.Array | None = None,
                chunk: int | None = None) -> jax.Array:
  """The IWAE bounds [len(ks), N] for several K, from one set of draws: see
  ``log_likelihood_bounds`` (these are its rows 1...)."""
  return log_likelihood_bounds(model, params, key, y, ks, x, chunk)[1:]


def iwae_bound(model: M.VAE | M.CVAE, params: M.Params, key: jax.Array, y: jax.Array, k: int,
               x: jax.Array | None = None, chunk: int | None = None) -> jax.Array:
  """The IWAE bound with K = k samples per data point [N] (see ``log_likelihood_bounds``):

    L_K(y_n) = log (1/K) sum_{i<K} p(y_n, z_i) / q(z_i | y_n) <= log p(y_n) in expectation.
  """
  return log_likelihood_bounds(model, params, key, y, (k,), x, chunk)[1]


def mixture_bound(bounds: jax.Array, axis: int = 0) -> jax.Array:
  """An ensemble's estimate from its members' bounds (members on ``axis``): log mean_m exp(L_m).

  The ensemble's density is the equal-weight mixture p(y) = mean_m p_m(y). Each member's
  importance-weighted average exp(L_m) is an unbiased estimate of p_m(y), so mean_m exp(L_m) is
  one of p(y), and by Jensen's inequality E[log mean_m exp(L_m)] <= log p(y): still a lower bound
  in expectation. Not so for one-draw ELBO estimates: their exponentials are not unbiased, and
  the log-mean-exp of noisy values is biased upwards; for those, mean_m ELBO_m is a lower bound
  (log mean_m p_m(y) >= mean_m log p_m(y) >= mean_m ELBO_m).
  """
  return _mixture_bound(jnp.asarray(bounds), axis)


@functools.partial(jax.jit, static_argnames=("axis",))
def _mixture_bound(bounds, axis):  # one program: eagerly, logsumexp's ops compiled one by one
  return jax.nn.logsumexp(bounds, axis=axis) - jnp.log(bounds.shape[axis])
