"""The ELBO and the importance-weighted bounds (IWAE) of the VAE and the CVAE (dljax.metrics).

References, all independent of the code under test: log p(y) and the exact ELBO of 1-D-latent
models by dense quadrature over z in NumPy float64, with the networks re-derived in NumPy; the
objectives' loss; SciPy's logsumexp. Monte Carlo tolerances are in standard errors (SE) of the
estimates, measured over repeated draws: every data point is repeated R times, each copy with
its own samples.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from dljax import metrics as X
from dljax import models as M
from dljax import objectives as O

KEY = jax.random.PRNGKey(0)
KS = (1, 10, 100, 1000)
R = 400  # repeats of each data point, for the expectations E[L_K]
Z_GRID = np.linspace(-12.0, 12.0, 24_001)[:, None]  # quadrature over the 1-D latent, dz = 0.001


def _np_net(p, inputs, n_layers):
  """The tanh network with heads mu and log Sigma, in NumPy float64."""
  H = np.asarray(inputs, np.float64)
  for l in range(1, n_layers + 1):
    H = np.tanh(H @ np.float64(p[f"A{l}"]) + np.float64(p[f"b{l}"]))
  return (H @ np.float64(p["A_mu"]) + np.float64(p["b_mu"]),
          H @ np.float64(p["A_log_Sigma"]) + np.float64(p["b_log_Sigma"]))


def _np_log_normal(v, mu, log_var):
  return -0.5 * (np.log(2 * np.pi) + log_var + (v - mu) ** 2 / np.exp(log_var))


def _quadrature(log_lik, prior, encoder):
  """log p(y_n) and the exact ELBO_n from log p(y_n | z) [N, G] on Z_GRID, the prior's and the
  encoder's (mu, log Sigma) [N, 1] each: log sum_g p(y|z_g) p(z_g) dz, E_q[log p(y|z)] - KL."""
  z, dz = Z_GRID.T, Z_GRID[1, 0] - Z_GRID[0, 0]
  (mu_0, ls_0), (mu_1, ls_1) = prior, encoder
  log_p = special.logsumexp(log_lik + _np_log_normal(z, mu_0, ls_0), axis=1) + np.log(dz)
  q = np.exp(_np_log_normal(z, mu_1, ls_1)) * dz
  assert np.allclose(q.sum(1), 1.0, atol=1e-6)  # the grid holds q
  kl = 0.5 * (ls_0 - ls_1 + (np.exp(ls_1) + (mu_1 - mu_0) ** 2) / np.exp(ls_0) - 1.0)
  return log_p, (q * log_lik).sum(1) - kl[:, 0]


def _params(model, seed, decoder_scale=1.0):
  """Random parameters drawn with NumPy in the shapes of ``model.init`` (traced, not compiled):
  Glorot-uniform multipliers, N(0, 0.1^2) biases; the decoder's mean head scaled up so that the
  posterior is far from the encoder's Gaussian."""
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = path[-1].key
    if name.startswith("A"):
      a = np.sqrt(6.0 / sum(s.shape)) * (decoder_scale if path[0].key == "decoder" and
                                          name == "A_mu" else 1.0)
      return rng.uniform(-a, a, s.shape).astype(np.float32)
    return rng.normal(0.0, 0.1, s.shape).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, jax.eval_shape(model.init, KEY))


def _vae_1d(seed=0, scale=2.0):
  """A VAE with data_dim = latent = 1 and random parameters."""
  model = M.vae(1, 1, (16,), (16, 16))
  return model, _params(model, seed, scale)


def _vae_reference(model, params, y):
  log_lik = _np_log_normal(np.float64(y), *(a.T for a in _np_net(params["decoder"], Z_GRID, 2)))
  zeros = np.zeros_like(np.float64(y))
  return _quadrature(log_lik, (zeros, zeros), _np_net(params["encoder"], y, 1))


def _cvae_1d(variant):
  model = M.cvae(1, 1, 1, (16,), (16,), (16, 16), variant)
  return model, _params(model, 3, 2.0)


def _cvae_reference(model, params, x, y):
  x64, y64 = np.float64(x), np.float64(y)
  standard = model.variant == "standard"
  log_lik = []
  for x_n, y_n in zip(x64, y64):  # the decoder on the whole grid, for each point
    inputs = np.concatenate([np.broadcast_to(x_n, Z_GRID.shape), Z_GRID], 1) if standard else Z_GRID
    mu_2, ls_2 = _np_net(params["decoder"], inputs, 2)
    log_lik.append(_np_log_normal(y_n, mu_2, ls_2)[:, 0])
  enc_in = np.concatenate([x64, y64], 1) if standard else y64
  return _quadrature(np.stack(log_lik), _np_net(params["prior"], x64, 1),
                     _np_net(params["encoder"], enc_in, 1))


def _check_against_quadrature(bounds, log_p, elbo_q):
  """bounds [1 + len(KS), N * R] (rows: ELBO, L_1, ..., L_1000) of N points repeated R times."""
  b = np.asarray(bounds, np.float64).reshape(1 + len(KS), -1, R)
  mean, se = b.mean(-1), b.std(-1) / np.sqrt(R)
  # E[ELBO estimate] = E[L_1] = ELBO, per point, within 4 SE.
  assert np.all(np.abs(mean[0] - elbo_q) <= 4 * se[0] + 1e-3), (mean[0] - elbo_q) / se[0]
  assert np.all(np.abs(mean[1] - elbo_q) <= 4 * se[1] + 1e-3), (mean[1] - elbo_q) / se[1]
  # Every E[L_K] <= log p(y), per point, within 4 SE (and float32 rounding).
  assert np.all(mean[1:] <= log_p + 4 * se[1:] + 1e-3), mean[1:] - log_p
  # E[L_K] grows with K, per point: the paired differences L_K' - L_K are >= -4 SE.
  diff = b[2:] - b[1:-1]
  assert np.all(diff.mean(-1) >= -4 * diff.std(-1) / np.sqrt(R) - 1e-4)
  # ... and on average over the data, strictly: the differences are many SE here.
  over_data = mean.mean(-1)
  assert over_data[1] < over_data[2] < over_data[3] < over_data[4]
  # E[L_1000] is log p(y) at every point, within 4 SE and a residual bias of 0.005 nats, and
  # within 0.01 on average over the data (measured: 0.003 at most).
  assert np.all(np.abs(mean[-1] - log_p) <= 4 * se[-1] + 0.005), (mean[-1] - log_p) / se[-1]
  assert abs(np.mean(mean[-1] - log_p)) <= 0.01
  # The ELBO's gap is 10x that tolerance (measured: 0.45 nats for the CVAEs, 1.7 for the VAE),
  # so the closeness above is the IWAE's doing, not the ELBO's.
  assert np.mean(log_p - elbo_q) > 0.1


def test_vae_bounds_against_quadrature():
  """1-D VAE, 20 points: E[ELBO] and E[L_1] equal the quadrature ELBO; E[L_K] increases with K
  to log p(y) = log int p(y|z) N(z; 0, 1) dz by quadrature."""
  model, params = _vae_1d()
  y = np.linspace(-2.0, 2.0, 20, dtype=np.float32)[:, None]
  log_p, elbo_q = _vae_reference(model, params, y)
  bounds = X.log_likelihood_bounds(model, params, jax.random.PRNGKey(1), np.repeat(y, R, 0), KS)
  _check_against_quadrature(bounds, log_p, elbo_q)


@pytest.mark.parametrize("variant", M.CVAE_VARIANTS)
def test_cvae_bounds_against_quadrature(variant):
  """1-D-latent CVAE, 20 (x, y): the same checks against log p(y|x) = log int p(y|z[, x])
  N(z; mu_0(x), Sigma_0(x)) dz and the ELBO with the conditional prior, by quadrature."""
  model, params = _cvae_1d(variant)
  x = np.linspace(-1.5, 1.5, 20, dtype=np.float32)[:, None]
  y = (np.sin(2 * x) + np.random.default_rng(0).normal(0, 0.5, x.shape)).astype(np.float32)
  log_p, elbo_q = _cvae_reference(model, params, x, y)
  bounds = X.log_likelihood_bounds(model, params, jax.random.PRNGKey(2), np.repeat(y, R, 0), KS,
                                   np.repeat(x, R, 0))
  _check_against_quadrature(bounds, log_p, elbo_q)


@pytest.mark.parametrize("variant", ["vae", "standard"])
def test_elbo_is_minus_the_objective(variant):
  """elbo(key) averaged is minus neg_elbo(model, beta=1) with the same key; the bounds' ELBO row
  is elbo(fold_in(key, 0)): the IWAE's sample 0. (The CVAE's standard variant: x reaches the
  encoder and the decoder; the tutorial variant is checked against quadrature above.)"""
  key = jax.random.PRNGKey(4)
  y = np.repeat(np.linspace(-2.0, 2.0, 20, dtype=np.float32)[:, None], R, 0)
  if variant == "vae":
    (model, params), x, batch = _vae_1d(), None, {"y": y}
  else:
    model, params = _cvae_1d(variant)
    x = np.repeat(np.linspace(-1.5, 1.5, 20, dtype=np.float32)[:, None], R, 0)
    batch = {"x": x, "y": y}
  e = X.elbo(model, params, key, y, x)
  assert e.shape == (20 * R,)
  loss, _ = jax.jit(O.neg_elbo(model, 1.0))(params, batch, key)
  np.testing.assert_allclose(-float(jnp.mean(e)), float(loss), rtol=1e-5)
  rows = X.log_likelihood_bounds(model, params, key, y, KS, x)
  np.testing.assert_allclose(rows[0], X.elbo(model, params, jax.random.fold_in(key, 0), y, x),
                             rtol=1e-5, atol=1e-5)


def test_samples_are_nested_and_independent_of_the_chunk():
  """L_K uses the first K samples of a larger K, whatever the chunk: iwae_bound(k=10) in chunks of
  3 (the last one partly masked) equals the K=10 row of iwae_bounds(KS) in the default chunks."""
  model, params = _vae_1d()
  y = np.repeat(np.linspace(-2.0, 2.0, 20, dtype=np.float32)[:, None], R, 0)
  key = jax.random.PRNGKey(8)
  rows = X.iwae_bounds(model, params, key, y, KS)
  alone = X.iwae_bound(model, params, key, y, 10, chunk=3)
  np.testing.assert_allclose(alone, rows[KS.index(10)], rtol=1e-5, atol=1e-5)
  assert not np.allclose(alone, rows[KS.index(100)])  # K = 100 is not the first 10 again


def test_mixture_bound_matches_numpy_logsumexp():
  """log mean_m exp(L_m) vs SciPy, on values whose exponentials underflow float32 (about -1e4)."""
  b = np.random.default_rng(1).normal(-1e4, 30.0, (5, 7)).astype(np.float32)
  for axis in (0, 1):
    want = special.logsumexp(np.float64(b), axis=axis) - np.log(b.shape[axis])
    got = X.mixture_bound(b, axis=axis)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-6)
  np.testing.assert_array_equal(X.mixture_bound(b[:1]), b[0])  # a mixture of one


def test_mixture_of_two_vaes_is_the_mixture_density():
  """Two 1-D VAEs: the mixture of their L_1000 estimates approaches log (p_1(y) + p_2(y)) / 2
  by quadrature, from below in expectation (Jensen), like each member's."""
  y = np.linspace(-2.0, 2.0, 20, dtype=np.float32)[:, None]
  members = [_vae_1d(seed=0, scale=2.0), _vae_1d(seed=9, scale=1.0)]
  log_p = np.stack([_vae_reference(m, p, y)[0] for m, p in members])
  assert np.abs(log_p[0] - log_p[1]).max() > 0.3  # the members differ
  y_rep = np.repeat(y, R, 0)
  bounds = jnp.stack([X.log_likelihood_bounds(m, p, jax.random.PRNGKey(10), y_rep, KS)
                      for m, p in members])  # [2, 1 + len(KS), N * R]
  mix = np.asarray(X.mixture_bound(bounds), np.float64).reshape(1 + len(KS), -1, R)
  mean, se = mix.mean(-1), mix.std(-1) / np.sqrt(R)
  log_p_mix = special.logsumexp(log_p, axis=0) - np.log(2)
  assert np.all(mean[1:] <= log_p_mix + 4 * se[1:] + 1e-3)
  assert np.all(np.abs(mean[-1] - log_p_mix) <= 4 * se[-1] + 0.005), mean[-1] - log_p_mix
  assert abs(np.mean(mean[-1] - log_p_mix)) <= 0.01


def test_second_call_does_not_recompile(monkeypatch):
  """Same model and shapes, new parameters, key and data: no new trace or compilation. The first
  call (shapes used nowhere else in this file) traces once, so the counters count."""
  traces = []
  encode = M.VAE._encode

  def counting_encode(self, params, y, x):
    traces.append(1)
    return encode(self, params, y, x)

  monkeypatch.setattr(M.VAE, "_encode", counting_encode)
  model, params = _vae_1d()
  y = np.linspace(-2.0, 2.0, 13, dtype=np.float32)[:, None]
  size = X._bounds_program._cache_size()
  X.log_likelihood_bounds(model, params, jax.random.PRNGKey(1), y, (1, 7))
  assert X._bounds_program._cache_size() == size + 1 and len(traces) == 1
  X.log_likelihood_bounds(model, _vae_1d(seed=5)[1], jax.random.PRNGKey(3), y + 1, (1, 7))
  assert X._bounds_program._cache_size() == size + 1 and len(traces) == 1


@pytest.mark.parametrize("call, error", [
    (lambda m, c, p, q, y, x: X.iwae_bound(m, p, KEY, y, 10, x=x), ValueError),  # VAE with x
    (lambda m, c, p, q, y, x: X.iwae_bound(c, q, KEY, y, 10), ValueError),  # CVAE without x
    (lambda m, c, p, q, y, x: X.elbo(c, q, KEY, y, x[:3]), ValueError),  # rows differ
    (lambda m, c, p, q, y, x: X.iwae_bound(m, p, KEY, y, 0), ValueError),
    (lambda m, c, p, q, y, x: X.iwae_bound(m, p, KEY, y, 2.5), ValueError),
    (lambda m, c, p, q, y, x: X.iwae_bounds(m, p, KEY, y, ()), ValueError),
    (lambda m, c, p, q, y, x: X.iwae_bounds(m, p, KEY, y, 10), ValueError),
    (lambda m, c, p, q, y, x: X.iwae_bound(m, p, KEY, y, 10, chunk=0), ValueError),
    (lambda m, c, p, q, y, x: X.elbo(M.mlp(), p, KEY, y), TypeError),
])
def test_bad_arguments(call, error):
  model, cmodel = M.vae(1, 1, (4,), (4,)), M.cvae(1, 1, 1, (4,), (4,), (4,))
  y, x = np.zeros((5, 1), np.float32), np.zeros((5, 1), np.float32)
  with pytest.raises(error):  # raised before the parameters are used
    call(model, cmodel, {}, {}, y, x)



def test_examples_skip_the_bounds_when_asked_and_check_iwae_ks():
  """iwae_ks=() (what experiments.reproduce passes): no bound in the metrics; a K below 1 or a
  string is refused naming iwae_ks before anything runs."""
  from dljax import examples

  outcome = examples.run_cvae(seed=0, steps=20, log_every=20, iwae_ks=())
  assert not any(k.startswith(("iwae_", "elbo_")) for k in outcome.metrics)
  outcome = examples.run_cvae(seed=0, steps=20, log_every=20, iwae_ks=(1, 5))
  assert {"elbo_held_out", "iwae_1", "iwae_5"} <= set(outcome.metrics)
  for bad in [(0,), "10", (1, -3)]:
    with pytest.raises(ValueError, match="iwae_ks"):
      examples.prepare_vae(iwae_ks=bad)
