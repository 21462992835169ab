"""Tests of dljax.models against plain-NumPy (float64) and Flax references of the tutorial."""

import contextlib
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import objective_for
from jax.flatten_util import ravel_pytree

from dljax import models as M

KEY = jax.random.key(0)
N = 6  # batch size of every input, so eager primitives compiled by one test are reused by the next
LAGS = 7

# The tutorial's sizes, plus shapes where the rows and columns of every matrix differ. Where
# the tutorial's own sizes are not needed, layers of 50 are reused, so that the primitives JAX
# compiles eagerly for one model serve the next (this file runs on 2-core CPUs).
BUILDERS = {
  "mlp": lambda: M.mlp(),
  "mlp_het": lambda: M.mlp(heteroscedastic=True),
  "mlp_deep": lambda: M.mlp(2, (50, 50, 50), 3),  # 3 hidden layers, 2 in, 3 out
  "rnn": lambda: M.rnn(),
  "rnn_wide": lambda: M.rnn(2, 5, 3, unroll=2),
  "lstm": lambda: M.lstm(),
  "lstm_wide": lambda: M.lstm(2, 5, 3, unroll=False),
  "vae": lambda: M.vae(2, 2, (50, 50), (50, 50)),  # the tutorial's 100s only in COUNTS
  "cvae_tutorial": lambda: M.cvae(variant="tutorial"),
  "cvae_standard": lambda: M.cvae(variant="standard"),
}
ALL = list(BUILDERS)
CORE = ["mlp", "mlp_het", "rnn", "lstm", "vae", "cvae_tutorial", "cvae_standard"]
KINDS = ["mlp", "rnn", "lstm", "vae", "cvae_standard"]
MLPS = [n for n in ALL if n.startswith("mlp")]
RNNS = [n for n in ALL if n.startswith("rnn")]
LSTMS = [n for n in ALL if n.startswith("lstm")]
CVAES = [n for n in ALL if n.startswith("cvae")]


def _cases(names):
  """(name, precision) pairs: every model in float32, the first (tutorial sizes) also in float64."""
  return [(n, "float32") for n in names] + [(names[0], "float64")]


PRECISIONS = {
  "float32": (jnp.float32, dict(rtol=1e-5, atol=1e-6)),
  "float64": (jnp.float64, dict(rtol=1e-12, atol=1e-12)),
}


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
  """float32 matmuls in full float32 on every backend (GPUs default to TF32), for every test alike:
  the setting is part of JAX's compilation cache key, so mixing it would recompile everything."""
  with jax.default_matmul_precision("highest"):
    yield


@contextlib.contextmanager
def _precision(name):
  """Yields (dtype, tolerances); float64 runs with x64 on."""
  dtype, tol = PRECISIONS[name]
  with jax.enable_x64(True) if name == "float64" else contextlib.nullcontext():
    yield dtype, tol


# ----------------------------------------------------------------------------------------------
# Helpers: cached parameters, NumPy-drawn inputs and perturbations, one way to call apply.


@functools.lru_cache(maxsize=None)
def _init(name, dtype_name):
  """model.init(KEY, dtype), once per session (float64 must first be asked for under x64)."""
  return BUILDERS[name]().init(KEY, jnp.dtype(dtype_name))


def _perturb(params, seed=7, scale=0.3):
  """Adds N(0, scale^2) noise to every leaf, so identity W / zero biases do not hide mistakes."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda a: jnp.asarray(np.asarray(a, np.float64) + scale * rng.standard_normal(a.shape),
                            a.dtype), params)


def _args(model, dtype, n=N, seed=1):
  """Random inputs for model.apply (everything but params and key)."""
  rng = np.random.default_rng(seed)
  arr = lambda *shape: jnp.asarray(rng.standard_normal(shape), dtype)
  if isinstance(model, M.MLP):
    return (jnp.asarray(rng.uniform(-2.0, 2.0, (n, model.in_dim)), dtype),)
  if isinstance(model, (M.RNN, M.LSTM)):
    return (arr(n, LAGS, model.in_dim),)
  if isinstance(model, M.VAE):
    return (arr(n, model.data_dim),)
  return arr(n, model.x_dim), arr(n, model.y_dim)


def _apply(model, params, args, key=jax.random.key(2)):
  if isinstance(model, M.CVAE):  # args (x, y)
    return model.apply(params, args[1], key, args[0])
  if isinstance(model, M.VAE):
    return model.apply(params, *args, key)
  return model.apply(params, *args)


def _batch(model, args, dtype):
  if isinstance(model, (M.MLP, M.RNN, M.LSTM)):
    y = np.random.default_rng(3).standard_normal((args[0].shape[0], model.out_dim))
    return {"x": args[0], "y": jnp.asarray(y, dtype)}
  if isinstance(model, M.VAE):
    return {"y": args[0]}
  return {"x": args[0], "y": args[1]}


def _setup(name, dtype):
  """(model, perturbed params, inputs) in dtype."""
  model = BUILDERS[name]()
  return model, _perturb(_init(name, jnp.dtype(dtype).name)), _args(model, dtype)


def _shapes(model):
  """The shapes init gives, traced without compiling anything."""
  return jax.eval_shape(model.init, KEY)


def _leaves_with_names(params, prefix=""):
  for k, v in params.items():
    if isinstance(v, dict):
      yield from _leaves_with_names(v, f"{prefix}{k}/")
    else:
      yield f"{prefix}{k}", k, v


# ----------------------------------------------------------------------------------------------
# Plain-NumPy float64 references, written from the tutorial's equations.


def _np(a):
  return np.asarray(a, np.float64)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def np_hidden(p, X, n_layers):
  """H(l) = tanh(H(l-1) A(l) + b(l)), H(0) = X."""
  H = _np(X)
  for l in range(1, n_layers + 1):
    H = np.tanh(H @ _np(p[f"A{l}"]) + _np(p[f"b{l}"]))
  return H


def np_mlp(model, p, X):
  H = np_hidden(p, X, len(model.hidden))
  F = H @ _np(p["A"]) + _np(p["b"])
  if model.heteroscedastic:
    return F, H @ _np(p["A_sigma"]) + _np(p["b_sigma"])
  return F, np.broadcast_to(_np(p["log_sigma"]), F.shape)


def np_rnn(p, Y):
  """h_t = tanh(h_{t-1} W + y_{t-1} U + b) over lags oldest first, h = 0 before; yhat = h V + c."""
  Y, U, W, b = _np(Y), _np(p["U"]), _np(p["W"]), _np(p["b"])
  h = np.zeros((Y.shape[0], W.shape[0]))
  for t in range(Y.shape[1]):
    h = np.tanh(h @ W + Y[:, t] @ U + b)
  return h @ _np(p["V"]) + _np(p["c"])


def np_lstm(p, Y):
  """The tutorial's LSTM gates with the logistic sigma, looped over lags oldest first."""
  Y, q = _np(Y), {k: _np(v) for k, v in p.items()}
  h = np.zeros((Y.shape[0], q["W_f"].shape[0]))
  s = np.zeros_like(h)
  for t in range(Y.shape[1]):
    y = Y[:, t]
    lin = {g: h @ q[f"W_{g}"] + y @ q[f"U_{g}"] + q[f"b_{g}"] for g in "fiso"}
    f, i, o = _sigmoid(lin["f"]), _sigmoid(lin["i"]), _sigmoid(lin["o"])
    s = f * s + i * np.tanh(lin["s"])
    h = o * np.tanh(s)
  return h @ q["V"] + q["c"]


def np_gaussian_net(p, X, n_layers):
  """mu = H A_mu + b_mu, log Sigma = H A_log_Sigma + b_log_Sigma."""
  H = np_hidden(p, X, n_layers)
  return (H @ _np(p["A_mu"]) + _np(p["b_mu"]),
          H @ _np(p["A_log_Sigma"]) + _np(p["b_log_Sigma"]))


def np_cvae_encode(model, p, x, y):
  inp = np.concatenate([_np(x), _np(y)], 1) if model.variant == "standard" else _np(y)
  return np_gaussian_net(p["encoder"], inp, len(model.encoder))


def np_cvae_decode(model, p, x, z):
  inp = np.concatenate([_np(x), _np(z)], 1) if model.variant == "standard" else _np(z)
  return np_gaussian_net(p["decoder"], inp, len(model.decoder))


def _close(actual, desired, tol):
  np.testing.assert_allclose(_np(actual), _np(desired), **tol)


# ----------------------------------------------------------------------------------------------
# 1. apply against the NumPy references, in float32 and float64.


@pytest.mark.parametrize("name, prec", _cases(MLPS))
def test_mlp_predict_matches_numpy(name, prec):
  """MLP predict/apply (F and log sigma) equal the NumPy tanh network F = H(L) A + b."""
  with _precision(prec) as (dtype, tol):
    model, params, (X,) = _setup(name, dtype)
    F, log_sigma = model.predict(params, X)
    F_ref, log_sigma_ref = np_mlp(model, params, X)
    assert F.dtype == log_sigma.dtype == dtype and F.shape == (N, model.out_dim)
    _close(F, F_ref, tol)
    _close(log_sigma, log_sigma_ref, tol)
    _close(model.apply(params, X), F_ref, tol)


@pytest.mark.parametrize("name, prec", _cases(RNNS))
def test_rnn_apply_matches_numpy(name, prec):
  """RNN apply equals a NumPy loop of h_t = tanh(h W + y U + b) over the lags, then h V + c."""
  with _precision(prec) as (dtype, tol):
    model, params, (Y,) = _setup(name, dtype)
    out = model.apply(params, Y)
    assert out.dtype == dtype and out.shape == (N, model.out_dim)
    _close(out, np_rnn(params, Y), tol)


@pytest.mark.parametrize("name, prec", _cases(LSTMS))
def test_lstm_apply_matches_numpy(name, prec):
  """LSTM apply equals a NumPy loop of the tutorial's f, i, s~, o gates and s, h updates."""
  with _precision(prec) as (dtype, tol):
    model, params, (Y,) = _setup(name, dtype)
    out = model.apply(params, Y)
    assert out.dtype == dtype and out.shape == (N, model.out_dim)
    _close(out, np_lstm(params, Y), tol)


def _check_reparameterised(z, mu, log_Sigma, key, tol):
  """eps recovered from z = mu + eps Sigma^(1/2) equals jax.random.normal(key, mu.shape)."""
  eps = (_np(z) - mu) / np.exp(0.5 * log_Sigma)
  _close(eps, jax.random.normal(key, mu.shape, z.dtype), tol)


@pytest.mark.parametrize("prec", PRECISIONS)
def test_vae_matches_numpy(prec):
  """VAE encode/decode equal NumPy nets; apply's z = mu_1 + eps Sigma_1^(1/2), eps = normal(key)."""
  with _precision(prec) as (dtype, tol):
    model, params, (y,) = _setup("vae", dtype)
    n_enc, n_dec = len(model.encoder), len(model.decoder)
    mu_1, log_Sigma_1 = np_gaussian_net(params["encoder"], y, n_enc)
    for got, ref in zip(model.encode(params, y), (mu_1, log_Sigma_1)):
      _close(got, ref, tol)
    z_in = _args(model, dtype, seed=4)[0]  # [N, 2]: latent = data_dim = 2
    dec_ref = np_gaussian_net(params["decoder"], z_in, n_dec)
    for got, ref in zip(model.decode(params, z_in), dec_ref):
      _close(got, ref, tol)
    key = jax.random.key(5)
    out = model.apply(params, y, key)
    assert set(out) == {"mu_1", "log_Sigma_1", "z", "mu_2", "log_Sigma_2"}
    assert all(v.dtype == dtype for v in out.values())
    _close(out["mu_1"], mu_1, tol)
    _close(out["log_Sigma_1"], log_Sigma_1, tol)
    _check_reparameterised(out["z"], mu_1, log_Sigma_1, key, tol)
    mu_2, log_Sigma_2 = np_gaussian_net(params["decoder"], out["z"], n_dec)
    _close(out["mu_2"], mu_2, tol)
    _close(out["log_Sigma_2"], log_Sigma_2, tol)


@pytest.mark.parametrize("name, prec", _cases(CVAES) + [("cvae_standard", "float64")])
def test_cvae_matches_numpy(name, prec):
  """CVAE prior/encode/decode/apply equal NumPy nets (x concatenated first in 'standard')."""
  with _precision(prec) as (dtype, tol):
    model, params, (x, y) = _setup(name, dtype)
    mu_0, log_Sigma_0 = np_gaussian_net(params["prior"], x, len(model.prior_net))
    mu_1, log_Sigma_1 = np_cvae_encode(model, params, x, y)
    for got, ref in zip(model.prior(params, x), (mu_0, log_Sigma_0)):
      _close(got, ref, tol)
    for got, ref in zip(model.encode(params, y, x), (mu_1, log_Sigma_1)):
      _close(got, ref, tol)
    z_in = jnp.asarray(np.random.default_rng(4).standard_normal((N, model.latent)), dtype)
    for got, ref in zip(model.decode(params, z_in, x), np_cvae_decode(model, params, x, z_in)):
      _close(got, ref, tol)
    key = jax.random.key(5)
    out = model.apply(params, y, key, x)
    assert set(out) == {"mu_0", "log_Sigma_0", "mu_1", "log_Sigma_1", "z", "mu_2", "log_Sigma_2"}
    assert all(v.dtype == dtype for v in out.values())
    refs = {"mu_0": mu_0, "log_Sigma_0": log_Sigma_0, "mu_1": mu_1, "log_Sigma_1": log_Sigma_1}
    for k, ref in refs.items():
      _close(out[k], ref, tol)
    _check_reparameterised(out["z"], mu_1, log_Sigma_1, key, tol)
    mu_2, log_Sigma_2 = np_cvae_decode(model, params, x, out["z"])
    _close(out["mu_2"], mu_2, tol)
    _close(out["log_Sigma_2"], log_Sigma_2, tol)


# ----------------------------------------------------------------------------------------------
# 2. Recurrent models against Flax's own cells.


def _run_flax_cell(cell, variables, carry, Y):
  for t in range(Y.shape[1]):
    carry, _ = cell.apply(variables, carry, Y[:, t])
  return carry


@pytest.mark.parametrize("name", RNNS)
def test_rnn_matches_flax_simple_cell(name):
  """RNN apply equals flax.linen.SimpleCell (i: U with bias b, h: W) over the lags, then h V + c."""
  with _precision("float32") as (dtype, tol):
    model, p, (Y,) = _setup(name, dtype)
    variables = {"params": {"i": {"kernel": p["U"], "bias": p["b"][0]}, "h": {"kernel": p["W"]}}}
    h0 = jnp.zeros((N, model.hidden), dtype)
    h = _run_flax_cell(nn.SimpleCell(model.hidden), variables, h0, Y)
    _close(model.apply(p, Y), h @ p["V"] + p["c"], tol)


@pytest.mark.parametrize("name", LSTMS)
def test_lstm_matches_flax_lstm_cell(name):
  """LSTM apply equals flax.linen.LSTMCell (f->if/hf, i->ii/hi, s->ig/hg, o->io/ho) then h V + c."""
  with _precision("float32") as (dtype, tol):
    model, p, (Y,) = _setup(name, dtype)
    fp = {}
    for g, fg in {"f": "f", "i": "i", "s": "g", "o": "o"}.items():
      fp[f"i{fg}"] = {"kernel": p[f"U_{g}"]}
      fp[f"h{fg}"] = {"kernel": p[f"W_{g}"], "bias": p[f"b_{g}"][0]}
    zeros = jnp.zeros((N, model.hidden), dtype)
    _, h = _run_flax_cell(nn.LSTMCell(model.hidden), {"params": fp}, (zeros, zeros), Y)
    _close(model.apply(p, Y), h @ p["V"] + p["c"], tol)


# ----------------------------------------------------------------------------------------------
# 3. Initialisation.


def test_glorot_uniform_limit_and_variance():
  """Two 400x400 layers lie in +-sqrt(6/800), reach it, have variance limit^2/3 (5%), differ."""
  params = M.mlp(400, (400,), 400).init(KEY)
  limit = np.sqrt(6.0 / 800.0)
  for A in (params["A1"], params["A"]):
    A = np.asarray(A, np.float64)
    assert A.shape == (400, 400)
    assert np.abs(A).max() <= limit
    assert np.abs(A).max() > 0.99 * limit
    assert abs(A.mean()) < 0.01 * limit
    assert abs(A.var() / (limit**2 / 3.0) - 1.0) < 0.05
  assert np.abs(np.corrcoef(np.ravel(params["A1"]), np.ravel(params["A"]))[0, 1]) < 0.02


@pytest.mark.parametrize("name", ALL)
def test_weights_within_glorot_limit(name):
  """Every A*, U*, V multiplier lies in +-sqrt(6/(fan_in+fan_out)) and is not near-constant."""
  n = 0
  for path, key, a in _leaves_with_names(_init(name, "float32")):
    if key[0] in "AUV":
      assert a.dtype == jnp.float32, path
      a = np.asarray(a, np.float64)
      assert np.abs(a).max() <= np.sqrt(6.0 / sum(a.shape)), path
      assert a.std() > 0.1 * np.sqrt(2.0 / sum(a.shape)), path
      n += 1
  assert n >= 2


def _weight_of(key, leaves):
  """The multiplier a bias/offset belongs to: b1->A1, b_mu->A_mu, b_f->U_f, b->U (rnn), c->V."""
  if key == "c":
    return leaves["V"]
  if key == "log_sigma":
    return leaves["A"]
  return leaves.get("A" + key[1:], leaves.get("U" + key[1:]))


@pytest.mark.parametrize("name", ALL)
def test_biases_start_at_zero(name):
  """Every bias (b*, c, log_sigma) is zero with shape [1, out] of its multiplier."""
  params = _init(name, "float32")
  groups = params.values() if isinstance(next(iter(params.values())), dict) else [params]
  n = 0
  for leaves in groups:
    for key, a in leaves.items():
      if key[0] in "bc" or key == "log_sigma":
        assert a.shape == (1, _weight_of(key, leaves).shape[1]), key
        np.testing.assert_array_equal(a, 0.0)
        n += 1
  assert n >= 2


@pytest.mark.parametrize("name", RNNS + LSTMS)
def test_recurrent_matrices_start_as_identity(name):
  """RNN W and LSTM W_f, W_i, W_s, W_o equal the identity of the hidden size."""
  model, params = BUILDERS[name](), _init(name, "float32")
  names = ["W"] if isinstance(model, M.RNN) else ["W_f", "W_i", "W_s", "W_o"]
  for k in names:
    np.testing.assert_array_equal(params[k], np.eye(model.hidden), err_msg=k)


_NET2 = {"A1", "b1", "A2", "b2", "A_mu", "b_mu", "A_log_Sigma", "b_log_Sigma"}
NAMES = {
  "mlp": {"A1", "b1", "A2", "b2", "A", "b", "log_sigma"},
  "mlp_het": {"A1", "b1", "A2", "b2", "A", "b", "A_sigma", "b_sigma"},
  "mlp_deep": {"A1", "b1", "A2", "b2", "A3", "b3", "A", "b", "log_sigma"},
  "rnn": {"U", "W", "b", "V", "c"},
  "lstm": {f"{m}_{g}" for m in "UWb" for g in "fiso"} | {"V", "c"},
  "vae": {"encoder": _NET2, "decoder": _NET2},
  "cvae_tutorial": {"prior": _NET2, "encoder": _NET2, "decoder": _NET2},
}


@pytest.mark.parametrize("name", NAMES)
def test_parameter_names_are_tutorial_symbols(name):
  """Parameter dict keys are exactly the tutorial's symbols."""
  params, want = _shapes(BUILDERS[name]()), NAMES[name]
  if isinstance(want, dict):
    assert set(params) == set(want)
    for k in want:
      assert set(params[k]) == want[k], k
  else:
    assert set(params) == want


COUNTS = [  # (model, hand count: in*out weights plus out biases per layer); the tutorial's first
  (M.mlp(), 1 * 50 + 50 + 50 * 50 + 50 + 50 * 1 + 1 + 1),
  (M.rnn(), 1 * 4 + 4 * 4 + 4 + 4 * 1 + 1),
  (M.lstm(), 4 * (1 * 4 + 4 * 4 + 4) + 4 * 1 + 1),
  (M.vae(), (2 * 100 + 100 + 100 * 50 + 50 + 2 * (50 * 2 + 2))
            + (2 * 50 + 50 + 50 * 100 + 100 + 2 * (100 * 2 + 2))),
  (M.cvae(), 2 * (1 * 50 + 50 + 50 * 50 + 50 + 2 * (50 * 2 + 2))
             + (2 * 50 + 50 + 50 * 50 + 50 + 2 * (50 * 1 + 1))),
  (M.cvae(variant="standard"), (1 * 50 + 50 + 50 * 50 + 50 + 2 * (50 * 2 + 2))
                               + (2 * 50 + 50 + 50 * 50 + 50 + 2 * (50 * 2 + 2))
                               + (3 * 50 + 50 + 50 * 50 + 50 + 2 * (50 * 1 + 1))),
  (M.mlp(heteroscedastic=True), 1 * 50 + 50 + 50 * 50 + 50 + 2 * (50 * 1 + 1)),
  (M.mlp(2, (7, 6, 5), 3), 2 * 7 + 7 + 7 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3 + 3),
  (M.rnn(2, 5, 3), 2 * 5 + 5 * 5 + 5 + 5 * 3 + 3),
  (M.lstm(2, 5, 3), 4 * (2 * 5 + 5 * 5 + 5) + 5 * 3 + 3),
  (M.vae(3, 4, (6,), (7, 8)),
   (3 * 6 + 6 + 2 * (6 * 4 + 4)) + (4 * 7 + 7 + 7 * 8 + 8 + 2 * (8 * 3 + 3))),
]


@pytest.mark.parametrize("model, count", COUNTS, ids=[repr(m) for m, _ in COUNTS])
def test_parameter_counts(model, count):
  """Total parameter count (traced init) equals a hand count."""
  assert sum(a.size for a in jax.tree.leaves(_shapes(model))) == count


# ----------------------------------------------------------------------------------------------
# 4. jit, vmap, grad.


def _assert_trees_close(a, b, **tol):
  la, ta = jax.tree.flatten(a)
  lb, tb = jax.tree.flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    np.testing.assert_allclose(_np(x), _np(y), **tol)


def _apply_and_grad(model, params, args):
  """apply's outputs and the gradient of their sum: one program, so one compile under jit."""
  scalar = lambda p: sum(jnp.sum(v) for v in jax.tree.leaves(_apply(model, p, args)))
  return _apply(model, params, args), jax.grad(scalar)(params)


@pytest.mark.parametrize("name", KINDS)
def test_jit_matches_eager_and_gradient_is_finite(name):
  """jit(apply), model static, equals eager apply; grad of the outputs' sum is finite, not all 0."""
  model, params, args = _setup(name, jnp.float32)
  jitted, grads = jax.jit(_apply_and_grad, static_argnums=0)(model, params, args)
  _assert_trees_close(jitted, _apply(model, params, args), rtol=1e-5, atol=1e-6)
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  flat = np.asarray(ravel_pytree(grads)[0])
  assert np.isfinite(flat).all()
  assert np.abs(flat).max() > 0


@pytest.mark.parametrize("name", ["rnn", "cvae_standard"])  # a scan; tanh nets with a key
def test_vmap_over_parameter_stack(name):
  """vmap(init) over 3 keys and vmap(apply) over the stack equal a loop of init/apply."""
  model = BUILDERS[name]()
  args = _args(model, jnp.float32)
  keys = jax.random.split(KEY, 3)
  stack = jax.jit(jax.vmap(model.init))(keys)
  outs = jax.jit(jax.vmap(lambda p: _apply(model, p, args)))(stack)
  for i in range(3):
    p_i = model.init(keys[i])
    _assert_trees_close(jax.tree.map(lambda a: np.asarray(a)[i], stack), p_i, rtol=1e-6, atol=0)
    out_i = jax.tree.map(lambda a: np.asarray(a)[i], outs)
    _assert_trees_close(out_i, _apply(model, p_i, args), rtol=1e-5, atol=1e-6)
  first, second = jax.tree.leaves(outs)[0][:2]
  assert not np.allclose(first, second)


# ----------------------------------------------------------------------------------------------
# 5. Objective gradients against central finite differences in float64.


@pytest.mark.parametrize("name", CORE)
def test_objective_gradient_matches_finite_differences(name):
  """Directional derivatives of the objective (reverse mode) equal central differences (1e-6)."""
  with jax.enable_x64(True):
    model, params, args = _setup(name, jnp.float64)
    batch, objective = _batch(model, args, jnp.float64), objective_for(model)
    flat, unravel = ravel_pytree(params)
    assert flat.dtype == jnp.float64
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda v: objective(unravel(v), batch, jax.random.key(9))[0]))
    f = lambda v: float(value_and_grad(v)[0])
    grad = np.asarray(value_and_grad(flat)[1])
    h = 1e-5  # rounding, not truncation, dominates below this (|f| ~ 200 for the VAE)
    for d in np.random.default_rng(8).standard_normal((3, flat.size)):
      d = jnp.asarray(d / np.linalg.norm(d))
      fd = (f(flat + h * d) - f(flat - h * d)) / (2 * h)
      np.testing.assert_allclose(grad @ np.asarray(d), fd, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# 6. Sampling.


def _cvae_sample_setup(variant):
  model, params, _ = _setup(f"cvae_{variant}", jnp.float32)
  return model, params, jnp.linspace(-1.5, 1.5, N, dtype=jnp.float32)[:, None]


def _np_cvae_draws(model, params, x, eps):
  """(mu_2, log Sigma_2) of z = mu_0(x) + eps_j Sigma_0(x)^(1/2), each eps_j [1 or N, latent]."""
  mu_0, log_Sigma_0 = np_gaussian_net(params["prior"], x, len(model.prior_net))
  draws = [np_cvae_decode(model, params, x, mu_0 + e * np.exp(0.5 * log_Sigma_0)) for e in _np(eps)]
  return np.stack([d[0] for d in draws]), np.stack([d[1] for d in draws])


@pytest.mark.parametrize("variant", M.CVAE_VARIANTS)
def test_cvae_sample_shared_noise(variant):
  """shared_noise: curve j is mu_2(mu_0(x) + eps_j Sigma_0(x)^(1/2)) with one eps_j for all x."""
  with _precision("float32") as (_, tol):
    model, params, x = _cvae_sample_setup(variant)
    key, n = jax.random.key(11), 4
    out = model.sample(params, key, n, x, shared_noise=True)
    assert out.shape == (n, N, model.y_dim)
    eps = jax.random.normal(jax.random.split(key)[0], (n, 1, model.latent))
    _close(out, _np_cvae_draws(model, params, x, eps)[0], tol)


@pytest.mark.parametrize("variant", M.CVAE_VARIANTS)
def test_cvae_sample_independent_noise(variant):
  """shared_noise=False: z at each x uses its own eps, so curves differ from the shared ones."""
  with _precision("float32") as (_, tol):
    model, params, x = _cvae_sample_setup(variant)
    key, n = jax.random.key(11), 4
    out = model.sample(params, key, n, x, shared_noise=False)
    eps = jax.random.normal(jax.random.split(key)[0], (n, N, model.latent))
    assert np.ptp(np.asarray(eps), axis=1).min() > 0
    _close(out, _np_cvae_draws(model, params, x, eps)[0], tol)
    shared = model.sample(params, key, n, x, shared_noise=True)
    assert not np.allclose(out, shared, atol=1e-3)


@pytest.mark.parametrize("shared", [True, False])
def test_cvae_sample_decoder_noise(shared):
  """noise=True adds eps_y Sigma_2^(1/2) to the means; eps_y is shared across x iff shared_noise."""
  model, params, x = _cvae_sample_setup("tutorial")
  key, n = jax.random.key(11), 4
  mean = model.sample(params, key, n, x, shared_noise=shared)
  noisy = model.sample(params, key, n, x, shared_noise=shared, noise=True)
  eps = jax.random.normal(jax.random.split(key)[0], (n, 1 if shared else N, model.latent))
  mu_2, log_Sigma_2 = _np_cvae_draws(model, params, x, eps)
  np.testing.assert_allclose(mean, mu_2, rtol=1e-5, atol=1e-5)
  r = (_np(noisy) - mu_2) / np.exp(0.5 * log_Sigma_2)  # [n, N, y_dim]: the decoder's eps_y
  spread = np.ptp(r, axis=1)
  assert (spread < 1e-4).all() if shared else (spread > 1e-2).all()
  assert np.abs(r).max() > 0.1


VAE_DRAWS = 20000


def test_vae_sample_is_decoder_mean():
  """VAE.sample equals the NumPy decoder mean mu_2(z) at z = normal(split(key)[0], [n, latent])."""
  with _precision("float32") as (_, tol):
    model, params, _ = _setup("vae", jnp.float32)
    key = jax.random.key(13)
    out = model.sample(params, key, VAE_DRAWS)
    z = jax.random.normal(jax.random.split(key)[0], (VAE_DRAWS, model.latent))
    assert out.shape == (VAE_DRAWS, model.data_dim) and out.dtype == jnp.float32
    _close(out, np_gaussian_net(params["decoder"], z, len(model.decoder))[0], tol)


def test_vae_sample_noise_has_decoder_scale():
  """(noise=True - mean) / exp(log Sigma_2 / 2) has mean ~0 and variance ~1 over 20000 draws."""
  model, params, _ = _setup("vae", jnp.float32)
  key = jax.random.key(13)
  mean = model.sample(params, key, VAE_DRAWS)
  noisy = model.sample(params, key, VAE_DRAWS, noise=True)
  z = jax.random.normal(jax.random.split(key)[0], (VAE_DRAWS, model.latent))
  log_Sigma_2 = np_gaussian_net(params["decoder"], z, len(model.decoder))[1]
  assert np.ptp(log_Sigma_2) > 0.5  # a scale that varies, so a wrong one shows
  r = (_np(noisy) - _np(mean)) / np.exp(0.5 * log_Sigma_2)
  assert abs(r.mean()) < 0.05
  assert 0.9 < r.var() < 1.1


# ----------------------------------------------------------------------------------------------
# 7. Bad input.


@pytest.mark.parametrize("builder, kwargs, match", [
  (M.mlp, dict(in_dim=0), "in_dim"),
  (M.mlp, dict(in_dim=1.5), "in_dim"),
  (M.mlp, dict(in_dim=True), "in_dim"),
  (M.mlp, dict(hidden=(50, 0)), r"hidden\[1\]"),
  (M.mlp, dict(hidden=-3), r"hidden\[0\]"),
  (M.mlp, dict(hidden=None), "hidden"),
  (M.mlp, dict(out_dim=-1), "out_dim"),
  (M.rnn, dict(in_dim=0), "in_dim"),
  (M.rnn, dict(hidden=0), "hidden"),
  (M.rnn, dict(out_dim=0), "out_dim"),
  (M.lstm, dict(in_dim=-1), "in_dim"),
  (M.lstm, dict(hidden=0), "hidden"),
  (M.lstm, dict(out_dim=0), "out_dim"),
  (M.vae, dict(data_dim=0), "data_dim"),
  (M.vae, dict(latent=0), "latent"),
  (M.vae, dict(encoder=(100, -1)), r"encoder\[1\]"),
  (M.vae, dict(decoder=(0,)), r"decoder\[0\]"),
  (M.cvae, dict(x_dim=0), "x_dim"),
  (M.cvae, dict(y_dim=0), "y_dim"),
  (M.cvae, dict(latent=-2), "latent"),
  (M.cvae, dict(prior_net=(0, 50)), r"prior_net\[0\]"),
  (M.cvae, dict(encoder=(50, 0)), r"encoder\[1\]"),
  (M.cvae, dict(decoder=(50, 2.0)), r"decoder\[1\]"),
])
def test_builders_reject_non_positive_sizes(builder, kwargs, match):
  """Builders raise ValueError naming the bad size argument."""
  with pytest.raises(ValueError, match=f"^{match} must"):
    builder(**kwargs)


def test_cvae_rejects_unknown_variant():
  """cvae raises ValueError naming `variant` for an unknown variant."""
  with pytest.raises(ValueError, match="^variant must be one of"):
    M.cvae(variant="sohn")


def _f32(*shape):
  return jnp.ones(shape, jnp.float32)


BAD_SHAPES = [
  ("mlp", lambda m, p: m.apply(p, _f32(3)), "X"),
  ("mlp", lambda m, p: m.apply(p, _f32(3, 2)), "X"),
  ("mlp_het", lambda m, p: m.predict(p, _f32(2, 3, 1)), "X"),
  ("mlp_deep", lambda m, p: m.apply(p, _f32(3, 1)), "X"),
  ("rnn", lambda m, p: m.apply(p, _f32(3, 5)), "Y"),
  ("rnn", lambda m, p: m.apply(p, _f32(3, 5, 2)), "Y"),
  ("rnn", lambda m, p: m.apply(p, _f32(3, 0, 1)), "Y"),
  ("lstm", lambda m, p: m.apply(p, _f32(3, 5)), "Y"),
  ("lstm_wide", lambda m, p: m.apply(p, _f32(3, 5, 1)), "Y"),
  ("lstm", lambda m, p: m.apply(p, _f32(3, 0, 1)), "Y"),
  ("vae", lambda m, p: m.encode(p, _f32(3, 3)), "y"),
  ("vae", lambda m, p: m.apply(p, _f32(3), KEY), "y"),
  ("vae", lambda m, p: m.decode(p, _f32(3, 1)), "z"),
  ("vae", lambda m, p: m.decode(p, _f32(3, 2, 2)), "z"),
  ("cvae_tutorial", lambda m, p: m.prior(p, _f32(3, 2)), "x"),
  ("cvae_tutorial", lambda m, p: m.apply(p, _f32(3, 1), KEY, _f32(3)), "x"),
  ("cvae_tutorial", lambda m, p: m.encode(p, _f32(3, 2), _f32(3, 1)), "y"),
  ("cvae_tutorial", lambda m, p: m.decode(p, _f32(3, 3), _f32(3, 1)), "z"),
  ("cvae_tutorial", lambda m, p: m.sample(p, KEY, 2, _f32(5, 2)), "x"),
  ("cvae_standard", lambda m, p: m.encode(p, _f32(3, 1), _f32(4, 1)), "x"),
  ("cvae_standard", lambda m, p: m.decode(p, _f32(3, 2), _f32(3, 2)), "x"),
  ("cvae_standard", lambda m, p: m.apply(p, _f32(3), KEY, _f32(3, 1)), "y"),
]


@pytest.mark.parametrize("name, call, arg", BAD_SHAPES)
def test_apply_rejects_bad_shapes(name, call, arg):
  """Wrong rank, feature size or empty lags raise ValueError naming the argument."""
  with pytest.raises(ValueError, match=f"^{arg} must"):
    call(BUILDERS[name](), _init(name, "float32"))


@pytest.mark.parametrize("name", CORE)
def test_apply_rejects_integer_inputs(name):
  """Integer inputs of the right shape raise TypeError naming the argument."""
  model = BUILDERS[name]()
  args = tuple(jnp.ones(a.shape, jnp.int32) for a in _args(model, jnp.float32))
  arg = {M.MLP: "X", M.RNN: "Y", M.LSTM: "Y", M.VAE: "y", M.CVAE: "x"}[type(model)]
  with pytest.raises(TypeError, match=f"^{arg} must be a floating array"):
    _apply(model, _init(name, "float32"), args)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
@pytest.mark.parametrize("name", KINDS)
def test_init_rejects_non_float_dtype(name, dtype):
  """init raises TypeError naming `dtype` for integer or bool dtypes."""
  with pytest.raises(TypeError, match="^dtype must be a floating dtype"):
    BUILDERS[name]().init(KEY, dtype)


@pytest.mark.parametrize("variant", M.CVAE_VARIANTS)
def test_cvae_apply_rejects_mismatched_rows(variant):
  """apply with x of 1 row and y of N rows raises ValueError naming x (the pairs must align)."""
  model = M.cvae(variant=variant)
  with pytest.raises(ValueError, match="^x must"):
    model.apply(_init(f"cvae_{variant}", "float32"), _f32(N, 1), KEY, _f32(1, 1))


# ----------------------------------------------------------------------------------------------
# 8. Other float dtypes.


LOW = {"bfloat16": 0.05, "float16": 5e-3}


def _float32_reference(model, params, args, out):
  """(out, reference): apply on float32 copies; for (C)VAEs mu_2 is decoded from out's own z."""
  to32 = lambda t: jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float32)), t)
  p32, a32 = to32(params), to32(args)
  ref = _apply(model, p32, a32)
  if not isinstance(out, dict):
    return out, ref
  z = to32(out["z"])
  dec = model.decode(p32, z, a32[0]) if isinstance(model, M.CVAE) else model.decode(p32, z)
  ref = {**ref, "mu_2": dec[0], "log_Sigma_2": dec[1]}
  return ({k: v for k, v in out.items() if k != "z"}, {k: v for k, v in ref.items() if k != "z"})


@pytest.mark.parametrize("name, dtype_name", [
  ("mlp", "bfloat16"), ("cvae_standard", "bfloat16"), ("lstm", "float16"),
])
def test_low_precision_dtypes(name, dtype_name):
  """init/apply in bfloat16/float16 keep the dtype and agree loosely with float32 (same params)."""
  model, dtype = BUILDERS[name](), jnp.dtype(dtype_name)

  def init_apply(key, args):
    params = model.init(key, dtype)
    return params, _apply(model, params, args)

  args = _args(model, dtype)
  params, out = jax.jit(init_apply)(KEY, args)
  assert all(a.dtype == dtype for a in jax.tree.leaves(params))
  assert all(a.dtype == dtype for a in jax.tree.leaves(out))
  tol = LOW[dtype_name]
  _assert_trees_close(*_float32_reference(model, params, args, out), rtol=tol, atol=tol)
