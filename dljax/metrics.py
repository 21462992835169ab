"""Quality figures: RMSE, the energy distance between two samples, and proper scores (NLL, CRPS,
interval coverage) of Gaussian and Gaussian-mixture (ensemble) predictives."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from dljax import checks
from dljax import models as M
from dljax import objectives as O


def _scipy():
  """(scipy.special, scipy.stats), imported when first needed: scipy.stats takes ~0.3-0.7 s."""
  from scipy import special, stats  # noqa: PLC0415

  return special, stats


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
  """sqrt(mean((prediction - target)^2)) over every element."""
  prediction = checks.real_array("prediction", prediction)
  target = checks.real_array("target", target)
  if prediction.shape != target.shape:
    checks.fail("prediction and target", "have the same shape",
                f"{prediction.shape} and {target.shape}")
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
  x, y = checks.real_array("x", x), checks.real_array("y", y)
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
    checks.fail("x and y", "be non-empty [n, d] and [m, d]", f"{x.shape} and {y.shape}")
  return float(2.0 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y))


# ----------------------------------------------------------------------------------------------
# Proper scores of Gaussian and Gaussian-mixture predictives (an ensemble's predictive is the
# equal-weight mixture of its members' Gaussians; scores are computed on the mixture, never as
# the average of the members' scores). Arrays broadcast elementwise; members on axis 0.


def _check_members(mu, sigma, positive: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """mu and sigma [K, ...]: same shape, members on axis 0, finite, sigma > 0 (or >= 0)."""
  mu, sigma = checks.real_array("mu", mu), checks.real_array("sigma", sigma)
  if mu.shape != sigma.shape:
    checks.fail("mu and sigma", "have the same shape", f"{mu.shape} and {sigma.shape}")
  if mu.ndim < 1:
    checks.fail("mu and sigma", "have the members on axis 0, [K, ...]", f"shape {mu.shape}")
  if not np.all(sigma > 0 if positive else sigma >= 0):
    checks.fail("sigma", f"be {'positive' if positive else 'non-negative'} everywhere",
                f"minimum {float(sigma.min())}")
  return mu, sigma


def _check_predictive(y, mu, sigma):
  mu, sigma = _check_members(mu, sigma)
  y = checks.real_array("y", y)
  member = mu.shape[1:]
  try:  # y may broadcast to one member's shape, never beyond it (a [N] y against [K, N, 1]
    fits = np.broadcast_shapes(y.shape, member) == member  # members would score an [N, N] grid)
  except ValueError:
    fits = False
  if not fits:
    checks.fail("y", f"broadcast to one member's shape {member} (mu and sigma are [K, ...] = "
                f"{mu.shape})", f"shape {y.shape}")
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
  special, stats = _scipy()
  log_pdf = stats.norm.logpdf(y[None], mu, sigma)  # [K, ...]
  return -(special.logsumexp(log_pdf, axis=0) - np.log(mu.shape[0]))


def _abs_moment(m: np.ndarray, s: np.ndarray) -> np.ndarray:
  """E|X| for X ~ N(m, s^2): 2 s phi(m / s) + m (2 Phi(m / s) - 1)."""
  z = m / s
  norm = _scipy()[1].norm
  return 2.0 * s * norm.pdf(z) + m * (2.0 * norm.cdf(z) - 1.0)


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
  checks.fraction("q", q)
  checks.integer("iters", iters)
  mu, sigma = _check_members(mu, sigma)
  lo = (mu - 10 * sigma).min(0)
  hi = (mu + 10 * sigma).max(0)
  for _ in range(iters):
    mid = 0.5 * (lo + hi)
    below = _scipy()[1].norm.cdf(mid[None], mu, sigma).mean(0) < q
    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
  return 0.5 * (lo + hi)


def coverage(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
             levels: tuple[float, ...] = (0.5, 0.9, 0.95)) -> dict[float, float]:
  """Fraction of y inside the mixture's central interval at each level (members on axis 0)."""
  y, mu, sigma = _check_predictive(y, mu, sigma)
  if isinstance(levels, (str, bytes)) or not isinstance(levels, (tuple, list, np.ndarray)):
    checks.fail("levels", "be a sequence of numbers in (0, 1)", repr(levels),
                kind=checks.ArgumentTypeError)
  for i, level in enumerate(levels):
    checks.fraction(f"levels[{i}]", level)
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
# is conditional on x: log p(y | x), with the prior p(z | x) and the distributions of its
# variant, as in objectives.NegELBO.

_LOG_2PI = math.log(2.0 * math.pi)
# Default chunk: about this many (sample, data point) pairs decoded at once, which bounds the
# memory; 10-25 samples of 1000 points ran fastest on CPU (BUILD_NOTES.md, Decisions).
IWAE_CHUNK_ELEMENTS = 20_000


def _check_model_and_data(model, y, x) -> None:
  if not isinstance(model, (M.VAE, M.CVAE)):
    checks.fail("model", "be a VAE or a CVAE", type(model).__name__, kind=checks.ArgumentTypeError)
  model.check_data(y, x)


@functools.partial(jax.jit, static_argnames=("model",))
def _elbo_program(model, params, key, y, x):
  """ELBO_n = log p(y_n | z_n) - KL[q || prior], one reparameterised z_n (as the objective)."""
  log_lik, kl = O.elbo_terms(model, model._apply(params, y, key, x), y)
  return log_lik - kl


def _tile(x, chunk):
  """x [N, P] repeated chunk times, [chunk N, P]; None (the VAE's conditions) stays None."""
  if x is None:
    return None
  return jnp.broadcast_to(x[None], (chunk, *x.shape)).reshape(chunk * x.shape[0], x.shape[1])


# XLA's backend optimisation level 1: it compiles faster than the default and runs as fast
# (BUILD_NOTES.md, Decisions).
@functools.partial(jax.jit, static_argnames=("model", "ks", "chunk"),
                   compiler_options={"xla_backend_optimization_level": 1})
def _bounds_program(model, params, key, y, x, ks, chunk):
  """[1 + len(ks), N]: the ELBO from sample 0 (row 0), then log (1/K) sum_{i<K} w_i per K."""
  mu_1, log_Sigma_1 = model._encode(params, y, x)
  mu_0, log_Sigma_0 = model._prior(params, x)  # the VAE's: zeros [1, L], p(z) = N(0, I)
  (N, L), dtype = mu_1.shape, mu_1.dtype
  sd_1 = jnp.exp(0.5 * log_Sigma_1)

  def log_weights(i):  # sample indices [C] -> log p(y | z_i), log w_i = log p(y, z_i) / q(z_i | .)
    draw = lambda j: jax.random.normal(jax.random.fold_in(key, j), (N, L), dtype)
    eps = jax.vmap(draw)(i)  # [C, N, L]: sample j depends only on (key, j), not on the chunking
    z = mu_1[None] + eps * sd_1[None]
    # log q(z | .) from eps: -(log 2 pi + log Sigma_1 + eps^2) / 2, no (z - mu_1)^2 cancellation.
    log_q = -0.5 * jnp.sum(_LOG_2PI + log_Sigma_1[None] + jnp.square(eps), axis=-1)
    log_prior = jnp.sum(O.gaussian_log_pdf(z, mu_0[None], log_Sigma_0[None]), axis=-1)
    mu_2, log_Sigma_2 = model._decode(params, z.reshape(chunk * N, L), _tile(x, chunk))
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
  kl = O.kl_to_prior(model, dict(mu_1=mu_1, log_Sigma_1=log_Sigma_1, mu_0=mu_0,
                                 log_Sigma_0=log_Sigma_0))
  iwae = lse - jnp.log(jnp.asarray(ks, dtype))[:, None]
  return jnp.concatenate([(lik_0 - kl)[None], iwae])


def _check_ks(ks, y, chunk) -> tuple[tuple[int, ...], int]:
  try:
    items = tuple(ks)
  except TypeError:  # not a sequence
    items = ()
  if not items:
    checks.fail("ks", "be a non-empty sequence of integers >= 1", repr(ks))
  ks = tuple(checks.integer(f"ks[{i}]", k) for i, k in enumerate(items))
  if chunk is None:
    chunk = max(1, IWAE_CHUNK_ELEMENTS // max(jnp.shape(y)[0], 1))
  return ks, min(checks.integer("chunk", chunk), max(ks))


def elbo(model: M.VAE | M.CVAE, params: M.Params, key: jax.Array, y: jax.Array,
         x: jax.Array | None = None) -> jax.Array:
  """The ELBO of each data point [N], one reparameterised draw z ~ q(z | .), analytic KL:

    ELBO_n = log p(y_n | z_n) - KL[q(z | y_n) || p(z)]   (CVAE: p(z | x_n), p(y_n | z_n [, x_n]))

  exactly minus the per-point loss of ``objectives.neg_elbo(model, beta=1)`` with the same key.
  """
  _check_model_and_data(model, y, x)
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
  _check_model_and_data(model, y, x)
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
  return log_likelihood_bounds(model, params, key, y, (checks.integer("k", k),), x, chunk)[1]


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
