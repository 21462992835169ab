"""dljax.objectives against NumPy/SciPy re-derivations, closed forms, quadrature and Monte Carlo."""

import functools

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from dljax import models, objectives

# ----------------------------------------------------------------------------------------------
# Independent NumPy forward passes and reference formulas.


def _np(tree):
  return jax.tree.map(np.asarray, tree)


def _np_tanh_net(p, X, n_layers):
  H = X
  for l in range(1, n_layers + 1):
    H = np.tanh(H @ p[f"A{l}"] + p[f"b{l}"])
  return H


def _np_gaussian_net(p, X, n_layers):
  H = _np_tanh_net(p, X, n_layers)
  return H @ p["A_mu"] + p["b_mu"], H @ p["A_log_Sigma"] + p["b_log_Sigma"]


def _np_mlp(p, X, n_layers, heteroscedastic):
  H = _np_tanh_net(p, X, n_layers)
  F = H @ p["A"] + p["b"]
  if heteroscedastic:
    return F, H @ p["A_sigma"] + p["b_sigma"]
  return F, np.broadcast_to(p["log_sigma"], F.shape)


def _np_rnn(p, Y):
  h = np.zeros((Y.shape[0], p["W"].shape[0]))
  for t in range(Y.shape[1]):
    h = np.tanh(h @ p["W"] + Y[:, t] @ p["U"] + p["b"])
  return h @ p["V"] + p["c"]


def _np_lstm(p, Y):
  sigmoid = lambda a: 1.0 / (1.0 + np.exp(-a))
  h = s = np.zeros((Y.shape[0], p["W_f"].shape[0]))
  for t in range(Y.shape[1]):
    g = {k: h @ p[f"W_{k}"] + Y[:, t] @ p[f"U_{k}"] + p[f"b_{k}"] for k in "fiso"}
    s = sigmoid(g["f"]) * s + sigmoid(g["i"]) * np.tanh(g["s"])
    h = sigmoid(g["o"]) * np.tanh(s)
  return h @ p["V"] + p["c"]


def _kl_full_cov(mu_q, cov_q, mu_p, cov_p):
  """KL[N(mu_q, cov_q) || N(mu_p, cov_p)] by the trace / log-det formula for full covariances."""
  k = mu_q.shape[0]
  cov_p_inv = np.linalg.inv(cov_p)
  d = mu_p - mu_q
  return 0.5 * (np.trace(cov_p_inv @ cov_q) + d @ cov_p_inv @ d - k
                + np.linalg.slogdet(cov_p)[1] - np.linalg.slogdet(cov_q)[1])


def _kl_rows(mu_q, lv_q, mu_p, lv_p):
  """Full-covariance KL for each row of diagonal Gaussians given by means and log-variances."""
  return np.array([_kl_full_cov(mq, np.diag(np.exp(lq)), mp, np.diag(np.exp(lp)))
                   for mq, lq, mp, lp in zip(mu_q, lv_q, mu_p, lv_p)])


def _random_params(model, seed, scale=0.5, dtype=jnp.float64):
  """N(0, scale^2) parameters with the structure of model.init (float64: call inside enable_x64).

  The structure comes from jax.eval_shape, so nothing is compiled, and no parameter is a zero
  bias or an identity matrix, which could hide a transposed or missing term.
  """
  shapes = jax.eval_shape(lambda k: model.init(k, dtype), jax.random.key(0))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), dtype), shapes)


def _vae_setup(data_dim, latent, seed=0):
  """A small float64 VAE with random parameters (call inside jax.enable_x64)."""
  model = models.vae(data_dim, latent, (8,), (7,))
  return model, _random_params(model, seed + 100)


# ----------------------------------------------------------------------------------------------
# Building blocks.


def test_gaussian_log_pdf_matches_jax_scipy_norm():
  """gaussian_log_pdf(y, mu, log_var) is jax.scipy.stats.norm.logpdf(y, mu, sqrt(exp(log_var)))."""
  rng = np.random.default_rng(0)
  y, mu = rng.normal(size=(2, 7, 3)) * 2.0
  log_var = rng.uniform(-4.0, 3.0, size=(7, 3))
  with jax.enable_x64(True):
    got = objectives.gaussian_log_pdf(jnp.asarray(y), jnp.asarray(mu), jnp.asarray(log_var))
    want = jax.scipy.stats.norm.logpdf(jnp.asarray(y), jnp.asarray(mu),
                                       jnp.sqrt(jnp.exp(jnp.asarray(log_var))))
  assert got.shape == (7, 3)
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_kl_standard_normal_matches_closed_form_and_monte_carlo():
  """kl_standard_normal equals the full-covariance formula and a 400k-draw Monte Carlo estimate."""
  rng = np.random.default_rng(1)
  mu = rng.normal(size=(4, 3))
  log_var = rng.uniform(-1.5, 1.0, size=(4, 3))
  with jax.enable_x64(True):
    got = np.asarray(jax.jit(objectives.kl_standard_normal)(jnp.asarray(mu), jnp.asarray(log_var)))
  assert got.shape == (4,)
  zeros = np.zeros_like(mu)
  np.testing.assert_allclose(got, _kl_rows(mu, log_var, zeros, zeros), rtol=1e-10, atol=1e-12)
  n = 400_000
  for b in range(2):
    sd = np.exp(0.5 * log_var[b])
    z = mu[b] + sd * rng.standard_normal((n, 3))
    log_ratio = np.sum(scipy.stats.norm.logpdf(z, mu[b], sd) - scipy.stats.norm.logpdf(z), axis=1)
    se = log_ratio.std() / np.sqrt(n)
    assert abs(log_ratio.mean() - got[b]) < 5.0 * se, (log_ratio.mean(), got[b], se)


def test_kl_diag_gaussians_matches_closed_form_and_monte_carlo():
  """kl_diag_gaussians equals the full-covariance formula and a 400k-draw Monte Carlo estimate."""
  rng = np.random.default_rng(2)
  mu_q, mu_p = rng.normal(size=(2, 5, 2))
  lv_q, lv_p = rng.uniform(-1.5, 1.0, size=(2, 5, 2))
  with jax.enable_x64(True):
    args = map(jnp.asarray, (mu_q, lv_q, mu_p, lv_p))
    got = np.asarray(jax.jit(objectives.kl_diag_gaussians)(*args))
  assert got.shape == (5,)
  np.testing.assert_allclose(got, _kl_rows(mu_q, lv_q, mu_p, lv_p), rtol=1e-10, atol=1e-12)
  n = 400_000
  for b in range(2):
    sd_q, sd_p = np.exp(0.5 * lv_q[b]), np.exp(0.5 * lv_p[b])
    z = mu_q[b] + sd_q * rng.standard_normal((n, 2))
    log_ratio = np.sum(scipy.stats.norm.logpdf(z, mu_q[b], sd_q)
                       - scipy.stats.norm.logpdf(z, mu_p[b], sd_p), axis=1)
    se = log_ratio.std() / np.sqrt(n)
    assert abs(log_ratio.mean() - got[b]) < 5.0 * se, (log_ratio.mean(), got[b], se)


@jax.jit
def _kl_variants(a):
  mu_q, lv_q, mu_p, lv_p = a
  zeros = jnp.zeros_like(mu_q)
  return (objectives.kl_diag_gaussians(mu_q, lv_q, mu_p, lv_p),
          objectives.kl_diag_gaussians(mu_q, lv_q, mu_q, lv_q),
          objectives.kl_standard_normal(mu_q, lv_q),
          objectives.kl_diag_gaussians(mu_q, lv_q, zeros, zeros))


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(hnp.arrays(np.float64, (4, 3, 4), elements=st.floats(-4.0, 4.0)))
def test_kl_is_non_negative_and_zero_for_equal_arguments(a):
  """KL >= 0, KL(p || p) = 0, and kl_standard_normal is kl_diag_gaussians against N(0, I)."""
  with jax.enable_x64(True):
    kl, kl_self, kl_std, kl_std_diag = map(np.asarray, _kl_variants(jnp.asarray(a)))
  assert np.all(kl >= -1e-9 * (1.0 + np.abs(kl)))
  np.testing.assert_allclose(kl_self, 0.0, atol=1e-12)
  assert np.all(kl_std >= -1e-12)
  np.testing.assert_allclose(kl_std, kl_std_diag, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# The regression objectives.


@pytest.mark.parametrize("in_dim,out_dim,heteroscedastic",
                         [(1, 1, False), (3, 2, False), (2, 2, True)])
def test_gaussian_nll_matches_numpy(in_dim, out_dim, heteroscedastic):
  """GaussianNLL is -mean_n sum_r norm.logpdf(y, F, sigma); its mse term mean_n sum_r (y - F)^2."""
  model = models.mlp(in_dim, (6, 5), out_dim, heteroscedastic)
  rng = np.random.default_rng(3)
  x = rng.uniform(-1.0, 1.0, (11, in_dim))
  y = rng.normal(size=(11, out_dim))
  with jax.enable_x64(True):
    params = _random_params(model, 4)
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
    both = lambda p, b: (objectives.gaussian_nll(model)(p, b), model.predict(p, b["x"]))
    (loss, terms), (F, log_sigma) = jax.jit(both)(params, batch)
  p = _np(params)
  F_np, log_sigma_np = _np_mlp(p, x, 2, heteroscedastic)
  np.testing.assert_allclose(F, F_np, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(log_sigma, log_sigma_np, rtol=1e-10, atol=1e-12)
  if heteroscedastic:
    assert np.ptp(log_sigma_np, axis=0).min() > 1e-3  # the noise really varies with x
  nll = -np.mean(np.sum(scipy.stats.norm.logpdf(y, F_np, np.exp(log_sigma_np)), axis=1))
  mse = np.mean(np.sum((y - F_np) ** 2, axis=1))
  np.testing.assert_allclose(loss, nll, rtol=1e-10)
  np.testing.assert_allclose(terms["nll"], nll, rtol=1e-10)
  np.testing.assert_allclose(terms["mse"], mse, rtol=1e-10)


@pytest.mark.parametrize("kind", ["mlp", "rnn", "lstm"])
def test_mse_matches_numpy(kind):
  """mse(model) is mean_n sum_r (y - yhat)^2 with yhat from an independent NumPy forward pass."""
  rng = np.random.default_rng(5)
  if kind == "mlp":
    model, x = models.mlp(2, (6, 5), 2), rng.normal(size=(9, 2))
    forward = lambda p, x: _np_mlp(p, x, 2, False)[0]
  else:
    model = (models.rnn if kind == "rnn" else models.lstm)(in_dim=2, hidden=3, out_dim=2)
    x = rng.normal(size=(9, 5, 2))
    forward = _np_rnn if kind == "rnn" else _np_lstm
  y = rng.normal(size=(9, 2))
  with jax.enable_x64(True):
    params = _random_params(model, 6)
    loss, terms = jax.jit(objectives.mse(model))(params, {"x": jnp.asarray(x), "y": jnp.asarray(y)})
  yhat = forward(_np(params), x)
  want = np.mean(np.sum((y - yhat) ** 2, axis=1))
  np.testing.assert_allclose(loss, want, rtol=1e-10)
  np.testing.assert_allclose(terms["mse"], want, rtol=1e-10)


# ----------------------------------------------------------------------------------------------
# VAE and CVAE negative ELBO.


def _np_neg_elbo(y, out, beta, conditional):
  out = _np(out)
  nll = -np.mean(np.sum(scipy.stats.norm.logpdf(y, out["mu_2"], np.exp(0.5 * out["log_Sigma_2"])),
                        axis=1))
  if conditional:
    kl = np.mean(_kl_rows(out["mu_1"], out["log_Sigma_1"], out["mu_0"], out["log_Sigma_0"]))
  else:
    zeros = np.zeros_like(out["mu_1"])
    kl = np.mean(_kl_rows(out["mu_1"], out["log_Sigma_1"], zeros, zeros))
  return nll + beta * kl, nll, kl


@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_vae_neg_elbo_matches_numpy(beta):
  """VAE loss = -mean sum logpdf(y | mu_2, Sigma_2) + beta mean KL[q || N(0, I)], from apply."""
  rng = np.random.default_rng(7)
  y = rng.normal(size=(12, 2))
  key = jax.random.key(3)
  with jax.enable_x64(True):
    model, params = _vae_setup(2, 2)
    both = lambda p, y, k: (objectives.neg_elbo(model, beta)(p, {"y": y}, k), model.apply(p, y, k))
    (loss, terms), out = jax.jit(both)(params, jnp.asarray(y), key)
  p = _np(params)
  mu_1, lv_1 = _np_gaussian_net(p["encoder"], y, 1)
  mu_2, lv_2 = _np_gaussian_net(p["decoder"], np.asarray(out["z"]), 1)
  np.testing.assert_allclose(out["mu_1"], mu_1, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(out["log_Sigma_1"], lv_1, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(out["mu_2"], mu_2, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(out["log_Sigma_2"], lv_2, rtol=1e-10, atol=1e-12)
  want, nll, kl = _np_neg_elbo(y, out, beta, conditional=False)
  np.testing.assert_allclose(loss, want, rtol=1e-10)
  np.testing.assert_allclose(terms["nll"], nll, rtol=1e-10)
  np.testing.assert_allclose(terms["kl"], kl, rtol=1e-10)


@pytest.mark.parametrize("variant,beta", [("tutorial", 1.0), ("standard", 2.5)])
def test_cvae_neg_elbo_matches_numpy(variant, beta):
  """CVAE loss = -mean sum logpdf(y | mu_2, Sigma_2) + beta mean KL[q || p(z|x)], from apply."""
  rng = np.random.default_rng(8)
  x = rng.uniform(0.0, 1.0, (10, 1))
  y = rng.normal(size=(10, 1))
  key = jax.random.key(4)
  model = models.cvae(latent=2, prior_net=(6,), encoder=(5,), decoder=(7,), variant=variant)
  with jax.enable_x64(True):
    params = _random_params(model, 9)
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
    both = lambda p, b, k: (objectives.neg_elbo(model, beta)(p, b, k),
                            model.apply(p, b["y"], k, b["x"]))
    (loss, terms), out = jax.jit(both)(params, batch, key)
  p = _np(params)
  mu_0, lv_0 = _np_gaussian_net(p["prior"], x, 1)
  np.testing.assert_allclose(out["mu_0"], mu_0, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(out["log_Sigma_0"], lv_0, rtol=1e-10, atol=1e-12)
  want, nll, kl = _np_neg_elbo(y, out, beta, conditional=True)
  assert kl > 0.01
  np.testing.assert_allclose(loss, want, rtol=1e-10)
  np.testing.assert_allclose(terms["nll"], nll, rtol=1e-10)
  np.testing.assert_allclose(terms["kl"], kl, rtol=1e-10)


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_beta_weights_the_kl_term(kind):
  """With one key, the losses for beta = 0, 1, 2 differ by exactly kl and 2 kl, and kl > 0."""
  rng = np.random.default_rng(10)
  key = jax.random.key(5)
  with jax.enable_x64(True):
    if kind == "vae":
      model, params = _vae_setup(2, 2)
      batch = {"y": jnp.asarray(rng.normal(size=(8, 2)))}
    else:
      model = models.cvae(latent=2, prior_net=(6,), encoder=(5,), decoder=(7,))
      params = _random_params(model, 11)
      batch = {"x": jnp.asarray(rng.uniform(size=(8, 1))),
               "y": jnp.asarray(rng.normal(size=(8, 1)))}
    three = lambda p, b, k: [objectives.neg_elbo(model, beta)(p, b, k) for beta in (0.0, 1.0, 2.0)]
    (l0, t0), (l1, t1), (l2, t2) = jax.jit(three)(params, batch, key)
  kl = float(t1["kl"])
  assert kl > 0.01
  np.testing.assert_allclose(l0, t0["nll"], rtol=1e-12)
  np.testing.assert_allclose(l1 - l0, kl, rtol=1e-9)
  np.testing.assert_allclose(l2 - l0, 2.0 * kl, rtol=1e-9)
  np.testing.assert_allclose([t0["nll"], t2["nll"]], [t1["nll"]] * 2, rtol=1e-12)


@functools.partial(jax.jit, static_argnums=0)
def _losses_over_keys(objective, params, batch, keys):
  return jax.vmap(lambda k: objective(params, batch, k)[0])(keys)


def test_vae_neg_elbo_expectation_matches_gauss_hermite():
  """The one-draw loss averaged over 4000 keys is -E_q[log p(y|z)] + KL, E_q by Gauss-Hermite."""
  rng = np.random.default_rng(12)
  y = rng.normal(size=(5, 2))
  with jax.enable_x64(True):
    model, params = _vae_setup(2, 2, seed=1)
    keys = jax.random.split(jax.random.key(6), 4000)
    losses = np.asarray(_losses_over_keys(objectives.neg_elbo(model), params,
                                          {"y": jnp.asarray(y)}, keys))
  p = _np(params)
  mu_1, lv_1 = _np_gaussian_net(p["encoder"], y, 1)
  nodes, weights = np.polynomial.hermite.hermgauss(30)
  u = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)  # [900, 2]
  w = np.outer(weights, weights).ravel() / np.pi  # E over N(0, I) of f(sqrt(2) u)
  expected_nll = []
  for n in range(len(y)):
    z = mu_1[n] + np.sqrt(2.0) * np.exp(0.5 * lv_1[n]) * u
    mu_2, lv_2 = _np_gaussian_net(p["decoder"], z, 1)
    log_lik = np.sum(scipy.stats.norm.logpdf(y[n], mu_2, np.exp(0.5 * lv_2)), axis=1)
    expected_nll.append(-np.sum(w * log_lik))
  kl = 0.5 * np.sum(np.exp(lv_1) + mu_1 ** 2 - 1.0 - lv_1, axis=1)
  want = np.mean(np.asarray(expected_nll) + kl)
  se = losses.std() / np.sqrt(len(losses))
  assert se < 0.01 * abs(want)  # the check is tight relative to the value
  assert abs(losses.mean() - want) < 5.0 * se, (losses.mean(), want, se)


def test_vae_neg_elbo_upper_bounds_neg_log_evidence():
  """Latent 1, data 1-D: E[neg ELBO] = -log p(y) + KL[q || p(z|y)] >= -log p(y), by quadrature."""
  y = np.array([[-1.5], [0.0], [0.7], [2.0]])
  with jax.enable_x64(True):
    model, params = _vae_setup(1, 1, seed=2)
    keys = jax.random.split(jax.random.key(7), 4000)
    losses = np.asarray(_losses_over_keys(objectives.neg_elbo(model), params,
                                          {"y": jnp.asarray(y)}, keys))
  p = _np(params)
  z = np.linspace(-12.0, 12.0, 48001)[:, None]
  dz = z[1, 0] - z[0, 0]
  mu_2, lv_2 = _np_gaussian_net(p["decoder"], z, 1)  # [G, 1]
  log_lik = scipy.stats.norm.logpdf(y[:, 0][None, :], mu_2, np.exp(0.5 * lv_2))  # [G, N]
  log_joint = scipy.stats.norm.logpdf(z) + log_lik
  log_evidence = scipy.special.logsumexp(log_joint, axis=0) + np.log(dz)  # [N]
  mu_1, lv_1 = _np_gaussian_net(p["encoder"], y, 1)  # [N, 1]
  log_q = scipy.stats.norm.logpdf(z, mu_1[:, 0][None, :], np.exp(0.5 * lv_1[:, 0])[None, :])
  q = np.exp(log_q)
  np.testing.assert_allclose(q.sum(0) * dz, 1.0, atol=1e-8)
  kl_prior = 0.5 * (np.exp(lv_1) + mu_1 ** 2 - 1.0 - lv_1)[:, 0]
  expected_neg_elbo = -np.sum(q * log_lik, axis=0) * dz + kl_prior  # [N]
  log_posterior = log_joint - log_evidence[None, :]
  kl_posterior = np.sum(q * (log_q - log_posterior), axis=0) * dz  # [N]
  np.testing.assert_allclose(expected_neg_elbo, -log_evidence + kl_posterior, rtol=1e-7, atol=1e-7)
  assert np.all(kl_posterior > 0.0)
  se = losses.std() / np.sqrt(len(losses))
  assert abs(losses.mean() - expected_neg_elbo.mean()) < 5.0 * se
  bound = -log_evidence.mean()
  assert losses.mean() >= bound - 5.0 * se, (losses.mean(), bound, se)
  assert expected_neg_elbo.mean() - bound > 5.0 * se  # the gap is resolved, not within noise


# ----------------------------------------------------------------------------------------------
# Builders and argument checks.


@pytest.mark.parametrize("model", [models.vae(), models.cvae()])
def test_gaussian_nll_rejects_latent_models(model):
  """gaussian_nll raises TypeError for a model that is neither an MLP nor a recurrent net."""
  with pytest.raises(TypeError, match="MLP or RNN or LSTM"):
    objectives.gaussian_nll(model)


@pytest.mark.parametrize("build", [models.rnn, models.lstm])
def test_gaussian_nll_rejects_mse_recurrent(build):
  """A recurrent net needs likelihood='gaussian' for gaussian_nll: the error names it."""
  with pytest.raises(TypeError, match="likelihood='gaussian'.*got likelihood='mse'"):
    objectives.gaussian_nll(build())


@pytest.mark.parametrize("model", [models.vae(), models.cvae()])
def test_mse_rejects_variational_models(model):
  """mse raises TypeError for a VAE or a CVAE."""
  with pytest.raises(TypeError):
    objectives.mse(model)


def test_neg_elbo_rejects_regression_models():
  """neg_elbo raises TypeError for an MLP or an RNN."""
  for model in (models.mlp(), models.rnn()):
    with pytest.raises(TypeError):
      objectives.neg_elbo(model)


@pytest.mark.parametrize("beta", [-1.0, -1e-9, float("nan"), float("inf"), "1", None, True])
def test_neg_elbo_rejects_bad_beta(beta):
  """neg_elbo raises a ValueError naming beta for a negative, non-finite or non-numeric beta."""
  with pytest.raises(ValueError, match="beta"):
    objectives.neg_elbo(models.vae(), beta)


def test_neg_elbo_accepts_zero_and_integer_beta():
  """beta = 0 and an integer beta are valid; an integer is kept as the equal float."""
  assert objectives.neg_elbo(models.vae(), 0).beta == 0.0
  assert objectives.neg_elbo(models.cvae(), 2).beta == 2.0


def test_y_shape_mismatch_raises():
  """A y of another shape than the model's output raises ValueError (no silent broadcasting)."""
  model = models.mlp(1, (4,), 1)
  params = _random_params(model, 0, dtype=jnp.float32)
  x = jnp.zeros((5, 1))
  for y in (jnp.zeros((5,)), jnp.zeros((5, 2)), jnp.zeros((4, 1))):
    with pytest.raises(ValueError, match="same shape"):
      jax.jit(objectives.gaussian_nll(model))(params, {"x": x, "y": y})
    with pytest.raises(ValueError, match="same shape"):
      jax.jit(objectives.mse(model))(params, {"x": x, "y": y})


def test_recurrent_y_shape_mismatch_raises():
  """For an RNN, a y [N] against the output [N, 1] raises the objective's shape ValueError."""
  r = models.rnn()
  with pytest.raises(ValueError, match="same shape"):
    jax.jit(objectives.mse(r))(_random_params(r, 0, dtype=jnp.float32),
                               {"x": jnp.zeros((5, 3, 1)), "y": jnp.zeros((5,))})


def test_objectives_are_hashable_and_equal_for_equal_arguments():
  """Objectives built from equal arguments are equal with equal hashes; different ones differ."""
  pairs = [
      (objectives.mse(models.rnn()), objectives.mse(models.rnn())),
      (objectives.mse(models.lstm(hidden=3)), objectives.mse(models.lstm(hidden=3))),
      (objectives.gaussian_nll(models.mlp()), objectives.gaussian_nll(models.mlp())),
      (objectives.neg_elbo(models.vae(), 0.5), objectives.neg_elbo(models.vae(), 0.5)),
      (objectives.neg_elbo(models.cvae(), 1), objectives.neg_elbo(models.cvae(), 1.0)),
  ]
  for a, b in pairs:
    assert a is not b
    assert a == b and hash(a) == hash(b)
  assert objectives.mse(models.rnn()) != objectives.mse(models.rnn(hidden=5))
  assert objectives.neg_elbo(models.vae(), 0.5) != objectives.neg_elbo(models.vae(), 1.0)


def test_equal_objectives_share_one_jit_compilation():
  """A jitted step with a static objective argument compiles once for two equal objectives."""

  @functools.partial(jax.jit, static_argnums=0)
  def loss(objective, params, batch):
    return objective(params, batch)[0]

  params = _random_params(models.mlp(2, (4,), 1), 0, dtype=jnp.float32)
  batch = {"x": jnp.ones((3, 2)), "y": jnp.ones((3, 1))}
  loss(objectives.mse(models.mlp(2, (4,), 1)), params, batch)
  loss(objectives.mse(models.mlp(2, [4], 1)), params, batch)
  assert loss._cache_size() == 1
  loss(objectives.gaussian_nll(models.mlp(2, (4,), 1)), params, batch)
  assert loss._cache_size() == 2
