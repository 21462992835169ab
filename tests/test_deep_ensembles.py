"""Deep Ensembles (Lakshminarayanan et al. 2017): the adversarial (FGSM) objective against an
independent NumPy re-computation, the MLP's relu units (NumPy, errors, checkpoints, defaults),
the cubic toy's data, a heteroscedastic ensemble trained on it, and the mlp launcher with
--dataset=cubic --heteroscedastic --adversarial end to end.
"""

import contextlib
import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from dljax import checkpoint, data, examples, metrics, models, objectives

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ----------------------------------------------------------------------------------------------
# The adversarial objective, in float64, against NumPy.


_NP_PHI = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0)}


def _np_mlp(p, x, activation="tanh"):
  """The heteroscedastic network in NumPy, any depth: (F, log sigma), H(l) = phi(H(l-1) A(l) +
  b(l)) with phi = tanh or relu(a) = max(a, 0)."""
  H, l = x, 1
  while f"A{l}" in p:
    H = _NP_PHI[activation](H @ p[f"A{l}"] + p[f"b{l}"])
    l += 1
  return H @ p["A"] + p["b"], H @ p["A_sigma"] + p["b_sigma"]


def _np_nll_rows(p, x, y, activation="tanh"):
  """Per-example NLL -sum_r log N(y | F, sigma^2), [N], by scipy."""
  F, log_sigma = _np_mlp(p, x, activation)
  return -scipy.stats.norm.logpdf(y, F, np.exp(log_sigma)).sum(1)


def _fd_grad_x(p, x, y, h=1e-6, activation="tanh"):
  """d nll_n / d x_n by central differences (each example's loss depends on its own x only)."""
  g = np.zeros_like(x)
  for j in range(x.shape[1]):
    e = np.zeros_like(x)
    e[:, j] = h
    g[:, j] = (_np_nll_rows(p, x + e, y, activation)
               - _np_nll_rows(p, x - e, y, activation)) / (2 * h)
  return g


def _setup(seed=0, n=13, in_dim=2, out_dim=2, activation="tanh"):
  """A small heteroscedastic MLP with N(0, 0.7^2) float64 parameters, and a batch (x64 only)."""
  model = models.mlp(in_dim, (7, 5), out_dim, heteroscedastic=True, activation=activation)
  shapes = jax.eval_shape(lambda k: model.init(k, jnp.float64), jax.random.key(0))
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda s: jnp.asarray(0.7 * rng.standard_normal(s.shape)), shapes)
  x, y = rng.uniform(-1.5, 1.5, (n, in_dim)), rng.normal(size=(n, out_dim))
  return model, params, x, y


@pytest.mark.parametrize("activation", models.MLP_ACTIVATIONS)
@pytest.mark.parametrize("epsilon", [0.003, 0.05, 0.3])
def test_adversarial_loss_is_the_fgsm_sum(epsilon, activation):
  """loss = mean nll(x) + mean nll(x + eps sign(d nll / dx)), the sign from finite differences."""
  with jax.enable_x64(True):
    model, params, x, y = _setup(activation=activation)
    objective = objectives.adversarial(objectives.gaussian_nll(model), epsilon)
    loss, terms = jax.jit(objective)(params, {"x": jnp.asarray(x), "y": jnp.asarray(y)})
  p = jax.tree.map(np.asarray, params)
  g = _fd_grad_x(p, x, y, activation=activation)
  assert np.abs(g).min() > 1e-4  # every sign is well defined
  x_adv = x + epsilon * np.sign(g)
  clean = _np_nll_rows(p, x, y, activation).mean()
  adv = _np_nll_rows(p, x_adv, y, activation).mean()
  np.testing.assert_allclose(loss, clean + adv, rtol=1e-10)
  np.testing.assert_allclose(terms["nll"], clean, rtol=1e-10)
  np.testing.assert_allclose(terms["adversarial_nll"], adv, rtol=1e-10)
  F_adv = _np_mlp(p, x_adv, activation)[0]
  np.testing.assert_allclose(terms["adversarial_mse"], ((y - F_adv) ** 2).sum(1).mean(), rtol=1e-10)
  assert adv > clean  # the perturbation goes uphill


def test_adversarial_increase_is_first_order_in_epsilon():
  """(nll(x') - nll(x)) / eps -> mean_n |grad_x nll_n|_1 as eps -> 0 (the sign is the ascent)."""
  with jax.enable_x64(True):
    model, params, x, y = _setup(seed=1)
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
    base = objectives.gaussian_nll(model)
    # epsilon traced (one compilation for the three values): the dataclass holds it as a leaf
    rise = jax.jit(lambda eps: (lambda t: t["adversarial_nll"] - t["nll"])(
        objectives.Adversarial(base, eps)(params, batch)[1]))
    increase = [float(rise(eps)) / eps for eps in (1e-3, 1e-4, 1e-5)]
  slope = np.abs(_fd_grad_x(jax.tree.map(np.asarray, params), x, y)).sum(1).mean()
  errors = [abs(d - slope) for d in increase]
  assert errors[-1] < 1e-4 * slope
  assert errors[0] > errors[1] > errors[2]  # O(eps): the second-order term shrinks


def test_adversarial_with_zero_epsilon_is_twice_the_objective():
  """eps = 0: loss = 2 l(x) and the adversarial terms equal the clean ones (NLL and MSE)."""
  with jax.enable_x64(True):
    model, params, x, y = _setup(seed=2)
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
    for base in (objectives.gaussian_nll(model), objectives.mse(model)):
      loss, terms = objectives.adversarial(base, 0.0)(params, batch)
      clean, _ = base(params, batch)
      np.testing.assert_allclose(loss, 2 * clean, rtol=1e-14)
      for k in [k for k in terms if not k.startswith("adversarial_")]:
        np.testing.assert_allclose(terms[f"adversarial_{k}"], terms[k], rtol=1e-14)


def test_adversarial_parameter_gradient_holds_the_direction_fixed():
  """grad_params of the objective = grad_params [l(x) + l(x + eps s)] with s a constant (the FD
  sign), and matches central differences of that sum in one parameter."""
  eps = 0.1
  with jax.enable_x64(True):
    model, params, x, y = _setup(seed=3)
    base = objectives.gaussian_nll(model)
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
    s = np.sign(_fd_grad_x(jax.tree.map(np.asarray, params), x, y))
    fixed = lambda p: (base(p, batch)[0]
                       + base(p, {"x": jnp.asarray(x + eps * s), "y": batch["y"]})[0])
    got = jax.jit(jax.grad(lambda p: objectives.adversarial(base, eps)(p, batch)[0]))(params)
    want = jax.jit(jax.grad(fixed))(params)
  for k in params:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12)
  p = jax.tree.map(np.asarray, params)
  total = lambda q: _np_nll_rows(q, x, y).mean() + _np_nll_rows(q, x + eps * s, y).mean()
  h, bumped = 1e-6, [dict(p), dict(p)]
  for q, sign in zip(bumped, (1, -1)):
    q["b_sigma"] = p["b_sigma"] + sign * h * np.eye(1, p["b_sigma"].shape[1])
  np.testing.assert_allclose(got["b_sigma"][0, 0], (total(bumped[0]) - total(bumped[1])) / (2 * h),
                             rtol=1e-6)


def test_adversarial_is_hashable_and_compiles_once():
  """Equal wrappers are equal and hash alike: a jit with the objective static traces once."""
  model = models.mlp(1, (4,), 1, heteroscedastic=True)
  a = objectives.adversarial(objectives.gaussian_nll(model), 0.05)
  b = objectives.adversarial(objectives.gaussian_nll(model), 0.05)
  assert a == b and hash(a) == hash(b)
  assert a != objectives.adversarial(objectives.gaussian_nll(model), 0.06)
  traces = []

  @functools.partial(jax.jit, static_argnames="objective")
  def loss(params, batch, objective):
    traces.append(1)
    return objective(params, batch)[0]

  params = model.init(jax.random.key(0))
  batch = {"x": jnp.ones((3, 1)), "y": jnp.zeros((3, 1))}
  loss(params, batch, objective=a)
  loss(params, batch, objective=b)
  assert len(traces) == 1


@pytest.mark.parametrize("epsilon", [-0.01, float("nan"), float("inf"), True, "0.1"])
def test_adversarial_rejects_bad_epsilon(epsilon):
  with pytest.raises(ValueError, match="epsilon"):
    objectives.adversarial(objectives.gaussian_nll(models.mlp()), epsilon)


def test_adversarial_takes_numpy_scalars_like_python_numbers():
  """epsilon as np.float32 / np.int64 (e.g. read from an array) equals the Python number."""
  nll = objectives.gaussian_nll(models.mlp())
  assert objectives.adversarial(nll, np.float32(0.25)) == objectives.adversarial(nll, 0.25)
  assert objectives.adversarial(nll, np.int64(0)) == objectives.adversarial(nll, 0.0)


def test_adversarial_rejects_objectives_without_x():
  with pytest.raises(TypeError, match="adversarial"):
    objectives.adversarial(objectives.neg_elbo(models.vae()), 0.1)


# ----------------------------------------------------------------------------------------------
# The MLP's relu units: against NumPy, the shared initialisation, bad values, checkpoints and
# the data sets' defaults (tanh for the tutorial's wiggle, relu for the cubic toy).

RELU_MODELS = {
    "relu": lambda: models.mlp(activation="relu"),  # 1-50-50-1, one learned sigma
    "relu_het": lambda: models.mlp(1, (100,), 1, heteroscedastic=True, activation="relu"),
    "relu_deep": lambda: models.mlp(2, (50, 50, 50), 3, activation="relu"),  # 2 in, 3 out
}
RELU_CASES = [(n, "float32") for n in RELU_MODELS] + [(n, "float64") for n in ("relu", "relu_het")]
TOLERANCES = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-12)}


def _np_relu_predict(model, p, X):
  """F = H(L) A + b with H(l) = max(H(l-1) A(l) + b(l), 0), H(0) = X, and log sigma
  (H(L) A_sigma + b_sigma, or log_sigma broadcast), in float64 NumPy."""
  q = {k: np.asarray(v, np.float64) for k, v in p.items()}
  H = np.asarray(X, np.float64)
  for l in range(1, len(model.hidden) + 1):
    H = np.maximum(H @ q[f"A{l}"] + q[f"b{l}"], 0.0)
  F = H @ q["A"] + q["b"]
  if model.heteroscedastic:
    return F, H @ q["A_sigma"] + q["b_sigma"]
  return F, np.broadcast_to(q["log_sigma"], F.shape)


@pytest.mark.parametrize("name, prec", RELU_CASES)
def test_relu_mlp_predict_matches_numpy(name, prec):
  """predict/apply of relu MLPs (F and log sigma) equal the NumPy re-derivation, in float32 and
  float64. N(0, 0.3^2) is added to every parameter, so zero biases and log sigma hide nothing,
  and the first layer's units are checked to be off (< 0) and on (> 0) in both about a fifth."""
  dtype = jnp.dtype(prec)
  tol = TOLERANCES[prec]
  x64 = jax.enable_x64(True) if prec == "float64" else contextlib.nullcontext()
  with x64, jax.default_matmul_precision("highest"):
    model = RELU_MODELS[name]()
    rng = np.random.default_rng(7)
    params = jax.tree.map(
        lambda a: jnp.asarray(np.asarray(a, np.float64) + 0.3 * rng.standard_normal(a.shape),
                              dtype), model.init(jax.random.key(0), dtype))
    X = jnp.asarray(rng.uniform(-2.0, 2.0, (6, model.in_dim)), dtype)
    F, log_sigma = model.predict(params, X)
    out = model.apply(params, X)
    tanh_out = dataclasses.replace(model, activation="tanh").apply(params, X)
  F_ref, log_sigma_ref = _np_relu_predict(model, params, X)
  assert F.dtype == log_sigma.dtype == out.dtype == dtype
  assert F.shape == log_sigma.shape == (6, model.out_dim)
  pre = np.asarray(X, np.float64) @ np.asarray(params["A1"], np.float64) + np.asarray(
      params["b1"], np.float64)
  assert (pre < 0).mean() > 0.2 and (pre > 0).mean() > 0.2
  np.testing.assert_allclose(np.asarray(F, np.float64), F_ref, **tol)
  np.testing.assert_allclose(np.asarray(log_sigma, np.float64), log_sigma_ref, **tol)
  np.testing.assert_allclose(np.asarray(out, np.float64), F_ref, **tol)
  assert np.abs(np.asarray(tanh_out, np.float64) - F_ref).max() > 0.1  # not the tanh network


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_and_tanh_mlps_share_their_initialisation(dtype):
  """A key gives a relu and a tanh MLP bitwise equal parameters: Glorot-uniform multipliers,
  zero biases (He initialisation was measured to train worse on the cubic toy, models.py)."""
  x64 = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
  with x64:
    for sizes in [(1, (100,), 1), (2, (7, 5), 3)]:
      for het in (False, True):
        key = jax.random.key(5)
        relu = models.mlp(*sizes, heteroscedastic=het, activation="relu").init(key, dtype)
        tanh = models.mlp(*sizes, heteroscedastic=het).init(key, dtype)
        assert set(relu) == set(tanh)
        for k in relu:
          assert relu[k].dtype == dtype
          np.testing.assert_array_equal(relu[k], tanh[k], err_msg=k)
        np.testing.assert_array_equal(relu["b1"], 0.0)
        A1 = np.asarray(relu["A1"], np.float64)
        assert np.abs(A1).max() <= np.sqrt(6.0 / sum(A1.shape))  # Glorot's limit, not He's


@pytest.mark.parametrize("bad", ["sigmoid", "ReLU", "", None, 1, ("relu",)])
def test_mlp_rejects_unknown_activation(bad):
  """The builder, a dataclass built directly (at init and predict) and prepare_mlp raise one
  ValueError naming activation, the choices and the value received."""
  message = f"^activation must be one of 'tanh', 'relu', got {re.escape(repr(bad))}$"
  with pytest.raises(ValueError, match=message):
    models.mlp(activation=bad)
  direct = models.MLP(activation=bad)
  with pytest.raises(ValueError, match=message):
    direct.init(jax.random.key(0))
  with pytest.raises(ValueError, match=message):
    direct.predict(models.mlp().init(jax.random.key(0)), jnp.zeros((2, 1)))
  if bad is not None:  # None is the data set's default
    with pytest.raises(ValueError, match=message):
      examples.prepare_mlp(dataset="cubic", activation=bad)


def test_checkpoint_round_trips_the_activation(tmp_path):
  """save/load keep the activation (model_config is the dataclass's fields) and the loaded
  model predicts bitwise alike; a config without the field (written before it existed) is the
  tanh network it was; a bad value in a config is the builder's ValueError."""
  X = jnp.linspace(-2.0, 2.0, 7, dtype=jnp.float32)[:, None]
  for activation in models.MLP_ACTIVATIONS:
    model = models.mlp(1, (16, 8), 1, heteroscedastic=True, activation=activation)
    params = model.init(jax.random.key(3))
    assert checkpoint.model_config(model)["activation"] == activation
    path = tmp_path / f"{activation}.msgpack"
    checkpoint.save(path, model, params)
    loaded, loaded_params, _, _ = checkpoint.load(path)
    assert loaded == model and loaded.activation == activation
    for got, want in zip(loaded.predict(loaded_params, X), model.predict(params, X)):
      np.testing.assert_array_equal(got, want)
  old = checkpoint.model_config(models.mlp(heteroscedastic=True))
  del old["activation"]
  assert checkpoint.build_model(old) == models.mlp(heteroscedastic=True)
  assert checkpoint.build_model(old).activation == "tanh"
  with pytest.raises(ValueError, match="^activation"):
    checkpoint.build_model(dict(old, activation="gelu"))


def test_tanh_is_the_default_of_the_tutorial_network():
  """The tutorial's network stays tanh: MLP and mlp default to it, and so do prepare_mlp's
  wiggle data (the default) with every option; cubic defaults to relu, and takes tanh when
  asked. Adversarial epsilon defaults to 0.01 of the standardised range on the wiggle."""
  assert models.MLP().activation == models.mlp().activation == "tanh"
  assert examples.prepare_mlp().model == models.mlp()
  wiggle = examples.prepare_mlp(dataset="wiggle", hidden=(100,), heteroscedastic=True,
                                adversarial=True)
  assert wiggle.model == models.mlp(1, (100,), 1, heteroscedastic=True)
  x = data.sine_wiggle(seed=0).x[:, 0].astype(np.float64)
  np.testing.assert_allclose(wiggle.objective.epsilon, 0.01 * np.ptp(x) / x.std(), rtol=1e-5)
  assert examples.prepare_mlp(dataset="cubic").model.activation == "relu"
  assert examples.prepare_mlp(dataset="cubic", activation="tanh").model == models.mlp()
  assert examples.prepare_mlp(activation="relu").model == models.mlp(activation="relu")


# ----------------------------------------------------------------------------------------------
# The cubic toy's data.


def test_cubic_shapes_ranges_and_truth():
  """20 float32 pairs with x in [-4, 4]; a 1000-point grid of [-6, 6] with y_test = x^3."""
  d = data.cubic(seed=0)
  assert {k: (v.shape, v.dtype) for k, v in d._asdict().items()} == {
      "x": ((20, 1), np.float32), "y": ((20, 1), np.float32),
      "x_test": ((1000, 1), np.float32), "y_test": ((1000, 1), np.float32)}
  assert np.all((d.x >= -4) & (d.x <= 4))
  np.testing.assert_allclose(d.x_test[:, 0], np.linspace(-6, 6, 1000), atol=1e-6)
  np.testing.assert_allclose(d.y_test, d.x_test.astype(np.float64) ** 3, rtol=1e-6, atol=1e-4)
  again, other = data.cubic(seed=0), data.cubic(seed=1)
  assert all(np.array_equal(a, b) for a, b in zip(d, again))
  assert not np.array_equal(d.x, other.x) and not np.array_equal(d.y, other.y)
  exact = data.cubic(seed=0, noise=0.0)
  np.testing.assert_allclose(exact.y, exact.x.astype(np.float64) ** 3, rtol=1e-6, atol=1e-5)


def test_cubic_noise_and_inputs_by_monte_carlo():
  """n = 200,000: y - x^3 has mean 0 and std 3 (within 6 standard errors), x is U[-4, 4] (KS)."""
  n = 200_000
  d = data.cubic(seed=7, n=n)
  x = d.x[:, 0].astype(np.float64)
  r = d.y[:, 0] - x**3
  assert abs(r.mean()) < 6 * 3 / np.sqrt(n)
  assert abs(r.std() - 3.0) < 6 * 3 / np.sqrt(2 * n)
  assert scipy.stats.kstest(x, scipy.stats.uniform(-4, 8).cdf).pvalue > 1e-3
  assert abs(scipy.stats.skew(r)) < 0.05 and abs(scipy.stats.kurtosis(r)) < 0.1  # Gaussian
  half = data.cubic(seed=7, n=n, noise=1.5)  # the same x and eps, half the noise
  np.testing.assert_array_equal(half.x, d.x)
  np.testing.assert_allclose(half.y[:, 0] - x**3, r / 2, atol=1e-4)


@pytest.mark.parametrize("kwargs", [dict(n=0), dict(noise=-1.0), dict(n_test=0), dict(seed=-1)])
def test_cubic_rejects_bad_arguments(kwargs):
  with pytest.raises(ValueError):
    data.cubic(**kwargs)


# ----------------------------------------------------------------------------------------------
# prepare_mlp with the cubic data set: arguments, epsilon, and the trained ensemble.


def test_prepare_mlp_cubic_defaults_and_epsilon():
  """dataset=cubic: 20 points, a heteroscedastic relu model, and epsilon = 0.05 (the data set's
  default; the paper's 0.01 when asked) x the range of the standardised training inputs
  (ptp(x) / std(x))."""
  exp = examples.prepare_mlp(dataset="cubic", hidden=(100,), heteroscedastic=True,
                             adversarial=True)
  assert exp.data["x"].shape == (20, 1)
  assert exp.model == models.mlp(1, (100,), 1, heteroscedastic=True, activation="relu")
  x = data.cubic(seed=0).x[:, 0].astype(np.float64)
  assert isinstance(exp.objective, objectives.Adversarial)
  np.testing.assert_allclose(exp.objective.epsilon, 0.05 * np.ptp(x) / x.std(), rtol=1e-5)
  paper = examples.prepare_mlp(dataset="cubic", adversarial=True, adversarial_epsilon=0.01)
  np.testing.assert_allclose(paper.objective.epsilon, exp.objective.epsilon / 5, rtol=1e-6)
  assert examples.prepare_mlp(dataset="cubic").objective == objectives.gaussian_nll(
      models.mlp(activation="relu"))


@pytest.mark.parametrize("kwargs,match", [
    (dict(dataset="foo"), "dataset"),
    (dict(dataset="cubic", x_range=(5, 6)), "x_range"),  # beyond the data's [-4, 4]
    (dict(x_range=(1.5, 2)), "x_range"),  # beyond the wiggle's [0, 1]
    (dict(adversarial=True, adversarial_epsilon=-0.1), "adversarial_epsilon"),
    (dict(adversarial_epsilon=float("nan")), "adversarial_epsilon"),
    (dict(activation="elu"), "activation"),
    (dict(dataset="cubic", activation="Tanh"), "activation"),
])
def test_prepare_mlp_rejects(kwargs, match):
  with pytest.raises(ValueError, match=f"^{match}"):
    examples.prepare_mlp(**kwargs)


def test_prepare_mlp_cubic_accepts_a_range_overlapping_the_data():
  exp = examples.prepare_mlp(dataset="cubic", x_range=(-6, -3))
  assert exp.model == models.mlp(activation="relu")


# The documented run of the toy (the figure's): 5 members of 1-100-1 relu units (the data set's
# default), heteroscedastic, adversarial at the data set's epsilon (0.05 of the range), 4,000
# steps of 10 at Adam 1e-3, seed 0.
TOY = dict(dataset="cubic", hidden=(100,), heteroscedastic=True, adversarial=True, ensemble=5,
           seed=0, steps=4000, log_every=4000)


@pytest.fixture(scope="module")
def toy(launches):  # the launcher's subprocesses (below) start first, to run alongside
  return examples.run_mlp(**TOY)


def test_toy_predictive_widens_beyond_the_data(toy):
  """Seed 0 (the figure): the mixture's std at x = -6 and x = +6 is >= 5x its std at x = 0
  (measured 19x and 54x; the tanh toy's 2.5x and 3.3x fail), and the members' spread >= 2x
  (4.0x, 4.7x: the per-x noise head does most of the widening). Not every seed: seed 4's total
  std at +6 is 4.6x that at 0."""
  p = toy.predictions
  x = p["x_test"][:, 0]
  at = {v: int(np.argmin(np.abs(x - v))) for v in (-6, 0, 6)}
  std, spread = p["y_std"][:, 0], p["y_mean_members"][:, :, 0].std(0)
  for v in (-6, 6):
    assert std[at[v]] >= 5.0 * std[at[0]], (v, std[at[v]], std[at[0]])
    assert spread[at[v]] >= 2.0 * spread[at[0]], (v, spread[at[v]], spread[at[0]])
  inside = np.abs(x) <= 4
  rmse_inside = metrics.rmse(p["y_mean"][inside], p["y_true"][inside])
  assert toy.metrics["rmse"] == pytest.approx(rmse_inside)
  assert toy.metrics["rmse"] < 4.0  # the noise is 3 (measured 2.7)
  assert p["sigma"].shape == (1000, 1) and p["sigma_members"].shape == (5, 1000, 1)
  np.testing.assert_allclose(p["sigma"], p["sigma_members"].mean(0), rtol=1e-6)
  np.testing.assert_allclose(toy.metrics["sigma"], p["sigma"][inside].mean(), rtol=1e-6)
  # The true noise is 3; the learned per-x sigma also absorbs the FGSM step (sigma grows with
  # |f'(x)| eps where x^3 is steep), 6.1 on average over [-4, 4]. Below 3 it has collapsed onto
  # the 20 points (the paper's eps = 0.01: 2.3 at seed 0, 1.3-2.9 over seeds 0-4).
  assert 3.0 < toy.metrics["sigma"] < 9.0


def test_toy_truth_at_the_ends_lies_in_the_band(toy):
  """Seed 0: x^3 at x = -6 and +6 lies within the mixture mean +- 2 std (measured -1.3 and +0.7
  std from the mean; the tanh toy's -10.6 and +9.3 fail), and the mean there is still below
  the truth in size (a relu net extrapolates linearly: -138 and +103 against -216 and +216)."""
  p = toy.predictions
  x = p["x_test"][:, 0]
  for v in (-6, 6):
    i = int(np.argmin(np.abs(x - v)))
    z = (p["y_true"][i, 0] - p["y_mean"][i, 0]) / p["y_std"][i, 0]
    assert abs(z) <= 2.0, (v, z)
    assert 0 < v * p["y_mean"][i, 0] < v * p["y_true"][i, 0], (v, p["y_mean"][i, 0])


def test_toy_coverage_on_fresh_data(toy):
  """Seed 0: the mixture's central intervals on the 1000 fresh draws cover 42-70% / 82-96% /
  87-99% at 50/90/95% (measured 62.8 / 86.8 / 90.6%; the relu ensemble at the paper's eps =
  0.01 covers 27.6 / 60.3 / 68.6% and fails). Over seeds 0-4 the relu toy averages 50 / 80 / 84%."""
  m = toy.metrics
  assert 0.42 <= m["coverage_50"] <= 0.70
  assert 0.82 <= m["coverage_90"] <= 0.96
  assert 0.87 <= m["coverage_95"] <= 0.99


def test_toy_fresh_scores_are_on_the_cubic_process(toy):
  """The fresh_* scores agree with the same scores on 5000 independent draws of x ~ U[-4, 4],
  y = x^3 + 3 eps (Monte Carlo), and not with draws on [-6, 6]."""
  exp = toy.experiment
  sx, sy = exp.standardisers["x"], exp.standardisers["y"]
  rng = np.random.default_rng(12345)

  def scores(lo, hi, n=5000):
    x = rng.uniform(lo, hi, (n, 1))
    y = x**3 + 3.0 * rng.standard_normal((n, 1))
    F, log_sigma = jax.vmap(exp.model.predict, (0, None))(
        toy.fit.params, jnp.asarray(sx.transform(x), jnp.float32))
    mu = sy.inverse(np.asarray(F, np.float64))
    sigma = sy.inverse_scale(np.exp(np.asarray(log_sigma, np.float64)))
    return metrics.mixture_nll(y, mu, sigma).mean(), metrics.coverage(y, mu, sigma, (0.9,))[0.9]

  nll, cover = scores(-4, 4)
  assert toy.metrics["fresh_nll"] == pytest.approx(nll, abs=0.15)
  assert toy.metrics["coverage_90"] == pytest.approx(cover, abs=0.04)
  wide_nll, _ = scores(-6, 6)
  assert wide_nll > nll + 0.4  # measured 3.78 against 3.13 (fresh_nll's tolerance above: 0.15)


# ----------------------------------------------------------------------------------------------
# The launcher, in subprocesses: started two at a time with the toy's training above, which they
# overlap; the tests below wait for them.

CUBIC_ARGS = ["--dataset=cubic", "--adversarial", "--heteroscedastic", "--ensemble=2",
              "--steps=40", "--log_every=20", "--hidden=100"]
BAD = {"dataset": ["--dataset=foo"], "adversarial_epsilon": ["--adversarial_epsilon=-0.1"],
       "activation": ["--activation=sigmoid"]}
RUN_FILES = {"figure.png", "loss.png", "config.json", "metrics.jsonl", "metrics.json",
             "predictions.npz", "checkpoint.msgpack"}


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
  root, cache = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("cache")
  jobs = {"cubic": CUBIC_ARGS, **{f"bad_{k}": v for k, v in BAD.items()}}

  def launch(key):
    workdir = root / key
    args = [*jobs[key], f"--workdir={workdir}", f"--compilation_cache={cache}"]
    proc = subprocess.run([sys.executable, "-m", "experiments.mlp", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    return proc, workdir

  with ThreadPoolExecutor(max_workers=2) as pool:
    futures = {key: pool.submit(launch, key) for key in jobs}
    yield lambda key: futures[key].result()


def _output(proc):
  return (f"exit status {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
          f"stderr:\n{proc.stderr[-3000:]}")


def test_launcher_cubic_writes_its_files(launches):
  """--dataset=cubic --adversarial --heteroscedastic --ensemble=2: the run files, arrays of the
  cubic toy with per-x noise, its flags in config.json, adversarial terms in metrics.jsonl."""
  proc, workdir = launches("cubic")
  assert proc.returncode == 0, _output(proc)
  assert RUN_FILES <= set(os.listdir(workdir))
  with np.load(workdir / "predictions.npz") as f:
    pred = {k: f[k] for k in f.files}
  assert {k: v.shape for k, v in pred.items()} == {
      "x_test": (1000, 1), "y_true": (1000, 1), "y_mean": (1000, 1), "y_std": (1000, 1),
      "sigma": (1000, 1), "x_train": (20, 1), "y_train": (20, 1),
      "y_mean_members": (2, 1000, 1), "y_std_members": (2, 1000, 1), "sigma_members": (2, 1000, 1)}
  np.testing.assert_allclose(pred["x_test"][:, 0], np.linspace(-6, 6, 1000), atol=1e-6)
  np.testing.assert_allclose(pred["y_true"], pred["x_test"].astype(np.float64) ** 3, atol=1e-3)
  assert np.all(np.abs(pred["x_train"]) <= 4)
  np.testing.assert_array_equal(pred["sigma_members"], pred["y_std_members"])
  model, params, arrays, _ = checkpoint.load(workdir / "checkpoint.msgpack")
  assert model == models.mlp(1, (100,), 1, heteroscedastic=True, activation="relu")
  sx, sy = arrays["standardisers"]["x"], arrays["standardisers"]["y"]
  x = jnp.asarray((pred["x_test"] - sx["mean"]) / sx["std"])
  log_sigma = np.asarray(jax.vmap(lambda p: model.predict(p, x)[1])(params))
  np.testing.assert_allclose(np.exp(log_sigma) * sy["std"], pred["sigma_members"], rtol=1e-5)
  with open(workdir / "config.json") as f:
    flags = json.load(f)["flags"]
  assert (flags["dataset"], flags["adversarial"], flags["heteroscedastic"],
          flags["adversarial_epsilon"], flags["activation"], flags["ensemble"]) == (
              "cubic", True, True, None, None, 2)  # None: the data set's (0.05, relu)
  with open(workdir / "metrics.jsonl") as f:
    lines = [json.loads(line) for line in f]
  assert [line["step"] for line in lines] == [20, 40]
  assert {"loss", "nll", "adversarial_nll", "mse", "adversarial_mse"} <= set(lines[0])
  with open(workdir / "metrics.json") as f:
    m = json.load(f)
  for key in ("rmse", "sigma", "fresh_nll", "fresh_members_nll", "fresh_crps", "fresh_rmse",
              "coverage_50", "coverage_90", "coverage_95"):
    assert np.isfinite(m[key]), key


@pytest.mark.parametrize("flag", list(BAD))
def test_launcher_bad_flag_fails_with_one_line(launches, flag):
  """Unknown dataset, negative epsilon, unknown activation: exit status 2, one line on stderr
  naming the flag, no traceback, nothing written."""
  proc, workdir = launches(f"bad_{flag}")
  assert proc.returncode == 2, _output(proc)
  assert "Traceback" not in proc.stdout + proc.stderr
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and f"--{flag}" in lines[0], _output(proc)
  assert not workdir.exists()
