"""Reliability (issue 6): log-variances bounded where exp() stays finite, training on extreme data
stays finite, and bad input is refused by a clear error before anything is compiled."""

import contextlib
import re

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import objective_for

from dljax import data as D
from dljax import examples as E
from dljax import forecast as F
from dljax import metrics as MT
from dljax import models as M
from dljax import objectives as O
from dljax import sampler as S
from dljax import train as T

BOUND, SIGMA_BOUND = M.LOG_VAR_BOUND, M.LOG_SIGMA_BOUND
HUGE = 1e4  # a raw log-variance whose exp() is inf (or 0) in float32 and float64 alike

# ----------------------------------------------------------------------------------------------
# A counter of XLA compilations (JAX reports each backend compile to jax.monitoring).

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_COMPILES = []


def _count_compile(event, duration_secs, **kwargs):
  if event == _COMPILE_EVENT:
    _COMPILES.append(duration_secs)


@pytest.fixture(scope="module", autouse=True)
def _compile_counter():
  jax.monitoring.register_event_duration_secs_listener(_count_compile)
  yield
  jax.monitoring.unregister_event_duration_listener(_count_compile)


@contextlib.contextmanager
def _nothing_compiled():
  before = len(_COMPILES)
  yield
  assert len(_COMPILES) == before, f"{len(_COMPILES) - before} programs were compiled"


def test_compile_counter_sees_a_compilation():
  """The counter behind _nothing_compiled does count: a new jitted program raises it."""
  before = len(_COMPILES)
  jax.jit(lambda a: a * 3.0 + 1.0)(np.ones((3, 7), np.float32)).block_until_ready()
  assert len(_COMPILES) > before


# ----------------------------------------------------------------------------------------------
# Small models (they compile fast) and inputs made without compiling anything.

_RAW_KEY = np.array([0, 42], np.uint32)  # raw key data, as jax.random.PRNGKey(42) gives
_MLP = M.mlp(1, (8, 8), 1)
_MLP_HET = M.mlp(1, (8, 8), 1, heteroscedastic=True)
_RNN = M.rnn()
_LSTM = M.lstm()
_VAE = M.vae(2, 2, (8,), (8,))
_CVAE_T = M.cvae(1, 1, 2, (8,), (8,), (8,), "tutorial")
_CVAE_S = M.cvae(1, 1, 2, (8,), (8,), (8,), "standard")


def _np_params(model, seed=0, dtype=np.float32):
  """N(0, 0.3^2) NumPy parameters with the structure of model.init, by eval_shape (no compile)."""
  shapes = jax.eval_shape(lambda k: model.init(k, dtype), _RAW_KEY)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: (0.3 * rng.standard_normal(s.shape)).astype(dtype), shapes)


# ----------------------------------------------------------------------------------------------
# A. Bounded log-variances.


@jax.jit
def _bounded(a):
  b, s = M.bound_log_var(a), M.bound_log_sigma(a)
  return b, jnp.exp(b), jnp.exp(-b), s, jnp.exp(2.0 * s), jnp.exp(-2.0 * s)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(data=st.data())
def test_bound_is_bitwise_identity_inside_and_clips_outside(dtype, data):
  """bound_log_var is x inside [-30, 30] bitwise and +-30 outside, log sigma likewise at +-15;
  exp(+-bounded) is finite and nonzero, and leaves room for squared residuals up to 3e25."""
  with jax.enable_x64(dtype == "float64"):
    info = np.finfo(dtype)
    # No subnormal numbers: XLA on CPU flushes them to zero in every operation (the matmul that
    # makes a raw log-variance, as much as the clip), so none reach the bound.
    a = data.draw(hnp.arrays(dtype, 16, elements=st.one_of(
        st.floats(-2 * BOUND, 2 * BOUND, width=info.bits, allow_subnormal=False),
        st.floats(float(info.min), float(info.max), width=info.bits, allow_subnormal=False),
        st.sampled_from([-np.inf, np.inf, BOUND, -BOUND, SIGMA_BOUND, -SIGMA_BOUND, 0.0]))))
    b, exp_b, exp_minus_b, s, var_s, prec_s = map(np.asarray, _bounded(a))
  assert b.dtype == s.dtype == np.dtype(dtype)
  np.testing.assert_array_equal(b, np.clip(a, -BOUND, BOUND))
  inside = np.abs(a) <= BOUND
  assert np.array_equal(b[inside].view(np.uint8), a[inside].view(np.uint8))  # bitwise
  np.testing.assert_array_equal(s, np.clip(a, -SIGMA_BOUND, SIGMA_BOUND))
  inside = np.abs(a) <= SIGMA_BOUND
  assert np.array_equal(s[inside].view(np.uint8), a[inside].view(np.uint8))
  for e in (exp_b, exp_minus_b, var_s, prec_s):
    assert np.all(np.isfinite(e)) and np.all(e > 0)
    assert np.all(np.isfinite(e * np.asarray(3e25, dtype)))  # r^2 exp(-log_var), |r| < 5e12


def _huge(params, sign):
  """params with every log-variance bias (log_sigma, b_sigma, b_log_Sigma) set to sign * 1e4."""
  def one(path, a):
    name = jax.tree_util.keystr(path)
    hit = any(k in name for k in ("'log_sigma'", "'b_sigma'", "'b_log_Sigma'"))
    return np.full_like(a, sign * HUGE) if hit else a
  return jax.tree_util.tree_map_with_path(one, params)


def _log_variances(model, params, batch, key):
  """Every log-variance the model's public functions return (log sigma as 2 log sigma), the raw
  heads before the bound, and every draw, for batch {x?, y}."""
  out, raw, draws = {}, {}, {}
  if isinstance(model, M.MLP):
    out["2 log sigma"] = 2.0 * model.predict(params, batch["x"])[1]
    H = M._hidden(params, batch["x"], len(model.hidden))
    raw["log sigma"] = (M._head(params, H, "sigma") if model.heteroscedastic
                        else params["log_sigma"])
  elif isinstance(model, M.VAE):
    enc, z = model.encode(params, batch["y"]), batch["y"]
    out.update(encode=enc[1], decode=model.decode(params, z)[1])
    out.update({k: v for k, v in model.apply(params, batch["y"], key).items() if "log" in k})
    H = M._hidden(params["encoder"], batch["y"], len(model.encoder))
    raw["encoder"] = M._head(params["encoder"], H, "log_Sigma")
    draws["sample"] = model.sample(params, key, 5, noise=True)
    draws["z"] = model.apply(params, batch["y"], key)["z"]
  else:
    x, y = batch["x"], batch["y"]
    z = jnp.zeros((x.shape[0], model.latent), x.dtype)
    out.update(prior=model.prior(params, x)[1], encode=model.encode(params, y, x)[1],
               decode=model.decode(params, z, x)[1])
    out.update({k: v for k, v in model.apply(params, y, key, x).items() if "log" in k})
    H = M._hidden(params["prior"], x, len(model.prior_net))
    raw["prior"] = M._head(params["prior"], H, "log_Sigma")
    draws["sample"] = model.sample(params, key, 3, x, shared_noise=False, noise=True)
    draws["z"] = model.apply(params, y, key, x)["z"]
  loss, grads = jax.value_and_grad(lambda p: objective_for(model)(p, batch, key)[0])(params)
  return out, raw, draws, loss, grads


_probe = jax.jit(_log_variances, static_argnums=0)


def _batch(model, dtype, n=6, seed=1):
  rng = np.random.default_rng(seed)
  if isinstance(model, M.VAE):
    return {"y": rng.standard_normal((n, 2)).astype(dtype)}
  return {"x": rng.uniform(0.0, 1.0, (n, 1)).astype(dtype),
          "y": rng.standard_normal((n, 1)).astype(dtype)}


@pytest.mark.parametrize("model, dtype", [
    (_MLP, "float32"), (_MLP_HET, "float32"), (_VAE, "float32"), (_CVAE_T, "float32"),
    (_CVAE_S, "float32"), (_VAE, "float64"), (_MLP_HET, "float64"),
], ids=["mlp", "mlp_het", "vae", "cvae_tutorial", "cvae_standard", "vae64", "mlp_het64"])
def test_huge_parameters_give_bounded_log_variances_and_finite_gradients(model, dtype):
  """With every log-variance bias at +-1e4 (raw exp() inf or 0), predict/encode/decode/prior/
  apply return exactly +-30, exp(+-) of it is finite and nonzero, and so are the draws, the loss
  and every gradient."""
  with jax.enable_x64(dtype == "float64"):
    batch = _batch(model, dtype)
    for sign in (1.0, -1.0):
      params = _huge(_np_params(model, dtype=dtype), sign)
      out, raw, draws, loss, grads = jax.tree.map(
          np.asarray, _probe(model, params, batch, _RAW_KEY))
      for name, r in raw.items():  # the bound really had work to do
        assert np.all(sign * r > 0.9 * HUGE), name
        with np.errstate(over="ignore"):
          assert np.all(np.exp(r) == np.inf) if sign > 0 else np.all(np.exp(r) == 0.0)
      assert len(out) == {M.MLP: 1, M.VAE: 4, M.CVAE: 6}[type(model)]
      for name, v in out.items():
        assert v.dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(v, sign * BOUND, err_msg=name)
        for e in (np.exp(v), np.exp(-v)):
          assert np.all(np.isfinite(e)) and np.all(e > 0), name
      for name, v in draws.items():
        assert np.all(np.isfinite(v)), name
      assert np.isfinite(loss)
      for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert np.all(np.isfinite(g)), jax.tree_util.keystr(path)


# Training on extreme data with dljax.train.fit: batch size 1, Adam at a constant 0.1 (ten times
# the tutorial's, to push the parameters hard), 300 steps. Scenarios of one model share shapes
# and so one compiled program; _probe then reuses the program compiled by the test above.

_N, _STEPS = 50, 300
_OPT = T.adam(0.1)
_MEGA = 1e6


def _x(seed=0):
  return np.random.default_rng(seed).uniform(0.0, 1.0, (_N, 1))


def _f32(**arrays):
  return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def _const(value, dim=1):
  return np.full((_N, dim), value)


_SCENARIOS = {  # name: (model, data, start: None for the seed's init, or the sign for _huge)
    "mlp_1e6": (_MLP, lambda: _f32(x=_MEGA * _x(), y=_MEGA * D.wiggle(_x())), None),
    "mlp_constant_y": (_MLP, lambda: _f32(x=_x(), y=_const(3.0)), None),
    "mlp_repeated_origin": (_MLP, lambda: _f32(x=_const(0.0), y=_const(0.0)), None),
    "mlp_repeated_point": (_MLP, lambda: _f32(x=_const(0.3), y=_const(-0.7)), None),
    "mlp_from_huge": (_MLP, lambda: _f32(x=_x(), y=D.wiggle(_x())), 1.0),
    "mlp_from_tiny": (_MLP, lambda: _f32(x=_x(), y=D.wiggle(_x())), -1.0),
    "mlp_het_1e6": (_MLP_HET, lambda: _f32(x=_MEGA * _x(), y=_MEGA * D.wiggle(_x())), None),
    "mlp_het_repeated_origin": (_MLP_HET, lambda: _f32(x=_const(0.0), y=_const(0.0)), None),
    "mlp_het_from_tiny": (_MLP_HET, lambda: _f32(x=_x(), y=D.wiggle(_x())), -1.0),
    "vae_1e6": (_VAE, lambda: _f32(y=_MEGA * D.noisy_ring(0, _N)), None),
    "vae_repeated_point": (_VAE, lambda: _f32(y=np.tile([[0.3, -0.7]], (_N, 1))), None),
    "vae_from_huge": (_VAE, lambda: _f32(y=D.noisy_ring(0, _N)), 1.0),
    "vae_from_tiny": (_VAE, lambda: _f32(y=D.noisy_ring(0, _N)), -1.0),
    "cvae_1e6": (_CVAE_S, lambda: _f32(x=_MEGA * _x(), y=_MEGA * D.step_function(0, _N).y), None),
    "cvae_constant_y": (_CVAE_S, lambda: _f32(x=_x(), y=_const(3.0)), None),
    "cvae_repeated_point": (_CVAE_S, lambda: _f32(x=_const(0.3), y=_const(-0.7)), None),
    "cvae_from_huge": (_CVAE_S, lambda: _f32(x=_x(), y=D.step_function(0, _N).y), 1.0),
    "cvae_from_tiny": (_CVAE_S, lambda: _f32(x=_x(), y=D.step_function(0, _N).y), -1.0),
    "rnn_1e6": (_RNN, lambda: dict(zip("xy", (_MEGA * a for a in D.lag_windows(
        D.sine_series(_N + 5), 5)))), None),
}


def _start_state(model, sign):
  if sign is None:
    return None
  state = T.init_state(model, 0, _OPT)
  return state._replace(params=_huge(jax.tree.map(np.asarray, state.params), sign))


@pytest.mark.parametrize("name", list(_SCENARIOS))
def test_training_on_extreme_data_stays_finite(name):
  """fit, 300 steps of batch 1, on data at 1e6 scale, a constant y, one repeated point, or from
  log-variances at +-1e4: every loss term and parameter stays finite at every step, and at the
  end the model's log-variances are within the bound with finite nonzero exp(), and the loss and
  its gradient on the data are finite."""
  model, make_data, sign = _SCENARIOS[name]
  data = make_data()
  run = T.fit(model, objective_for(model), data, steps=_STEPS, batch_size=1, seed=0,
              optimizer=_OPT, log_every=_STEPS, state=_start_state(model, sign))
  for term, values in run.history.items():
    assert values.shape == (_STEPS,) and np.all(np.isfinite(values)), term
  params = jax.tree.map(np.asarray, run.params)
  for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
    assert np.all(np.isfinite(p)), jax.tree_util.keystr(path)
  if isinstance(model, M.RNN):
    return
  out, _, draws, loss, grads = jax.tree.map(np.asarray, _probe(
      model, params, {k: v[:6] for k, v in data.items()}, _RAW_KEY))
  for k, v in {**out, **draws, "loss": loss, **dict(enumerate(jax.tree.leaves(grads)))}.items():
    assert np.all(np.isfinite(v)), k
  for k, v in out.items():
    assert np.all(np.abs(v) <= BOUND) and np.all(np.exp(v) > 0) and np.all(np.exp(-v) > 0), k
  if name == "mlp_repeated_origin":
    # The fit is exact from the start (x = 0 gives H = 0, F = b = 0 = y), so the NLL's gradient
    # in log sigma is 1 at every step and Adam walks it down by 0.1 a step: it reaches the bound
    # after 150 steps and stays, while without the bound 2 log sigma would pass -88.7 by step
    # 444, where exp(-2 log sigma) overflows float32 and the NLL's 0 * inf is NaN.
    np.testing.assert_array_equal(out["2 log sigma"], -BOUND)
    np.testing.assert_allclose(run.history["loss"][-1], 0.5 * np.log(2 * np.pi) - SIGMA_BOUND,
                               rtol=1e-6)
    with np.errstate(over="ignore", invalid="ignore"):
      assert np.isnan(np.float32(0.0) * np.exp(np.float32(-2 * -44.5)))


# ----------------------------------------------------------------------------------------------
# B. Bad input: a ValueError or TypeError whose message names the argument, what was expected
# and what was received, before anything is compiled. Every input below is NumPy (jnp.asarray
# would itself compile a copy), and model parameters come from eval_shape.

_P = {m: _np_params(m) for m in (_MLP, _RNN, _LSTM, _VAE, _CVAE_T)}
_XS = np.linspace(0.0, 1.0, 20, dtype=np.float32)[:, None]
_YS = np.sin(4.0 * _XS)
_SERIES = D.sine_series(20)
_WINDOW = _SERIES[None, :5]  # [1, 5, 1]
_MU, _SIGMA, _Y3 = np.zeros((2, 3)), np.ones((2, 3)), np.zeros(3)


def _with(a, index, value):
  a = np.array(a)
  a[index] = value
  return a


def _fit(**override):
  """fit's arguments for the small MLP on 20 points, with some replaced."""
  return {"model": _MLP, "objective": O.gaussian_nll(_MLP), "data": {"x": _XS, "y": _YS},
          "steps": 10, "batch_size": 4, "seed": 0, **override}


def _custom_objective(params, batch, key=None):
  """An objective dljax does not know (no batch_shapes): the MLP's squared error."""
  return jnp.mean(jnp.square(batch["y"] - _MLP.apply(params, batch["x"]))), {}


def _vector_objective(params, batch, key=None):
  """A faulty objective: the loss is per data point, not a scalar."""
  return jnp.square(batch["y"] - _MLP.apply(params, batch["x"]))[:, 0], {}


_RNN_DATA = dict(zip("xy", D.lag_windows(_SERIES, 5)))

BAD = [  # (callable, keyword arguments, exception, regex naming the argument and what it got)
    # models: builders
    (M.mlp, dict(in_dim=0), ValueError, r"^in_dim must be an integer >= 1, got 0$"),
    (M.mlp, dict(hidden=(8, -3)), ValueError, r"^hidden\[1\] must be an integer >= 1, got -3$"),
    (M.rnn, dict(hidden=2.5), ValueError, r"^hidden must be an integer >= 1, got 2\.5$"),
    (M.lstm, dict(out_dim=True), ValueError, r"^out_dim must be an integer >= 1, got True$"),
    (M.lstm, dict(unroll=-1), ValueError,
     r"^unroll must be None, a bool or an integer >= 1, got -1$"),
    (M.vae, dict(latent=0), ValueError, r"^latent must be an integer >= 1, got 0$"),
    (M.cvae, dict(variant="sohn"), ValueError, r"^variant must be one of .*, got 'sohn'$"),
    # models: init, apply, predict, encode, decode, prior, sample
    (_MLP.init, dict(key=_RAW_KEY, dtype=np.int32), TypeError,
     r"^dtype must be a floating dtype, got int32$"),
    (_MLP.init, dict(key=None), TypeError, r"^key must be a PRNG key .*, got None$"),
    (_MLP.apply, dict(params=_P[_MLP], X=np.ones(4, np.float32)), ValueError,
     r"^X must have shape \[\*, 1\], got \(4,\)$"),
    (_MLP.predict, dict(params=_P[_MLP], X=np.ones((4, 3), np.float32)), ValueError,
     r"^X must have shape \[\*, 1\], got \(4, 3\)$"),
    (_MLP.apply, dict(params=_P[_MLP], X=np.ones((4, 1), np.int32)), TypeError,
     r"^X must be a floating array, got dtype int32$"),
    (_RNN.apply, dict(params=_P[_RNN], Y=np.ones((3, 0, 1), np.float32)), ValueError,
     r"^Y must have at least one lag, got shape \(3, 0, 1\)$"),
    (_LSTM.apply, dict(params=_P[_LSTM], Y=np.ones((3, 5), np.float32)), ValueError,
     r"^Y must have shape \[\*, \*, 1\], got \(3, 5\)$"),
    (_VAE.encode, dict(params=_P[_VAE], y=np.ones((3, 3), np.float32)), ValueError,
     r"^y must have shape \[\*, 2\], got \(3, 3\)$"),
    (_VAE.decode, dict(params=_P[_VAE], z=np.ones((3, 2, 2), np.float32)), ValueError,
     r"^z must have shape \[\*, 2\], got \(3, 2, 2\)$"),
    (_VAE.apply, dict(params=_P[_VAE], y=np.ones((3, 2), np.float32), key=0), TypeError,
     r"^key must be a PRNG key .*, got 0$"),
    (_VAE.sample, dict(params=_P[_VAE], key=_RAW_KEY, n=0), ValueError,
     r"^n must be an integer >= 1, got 0$"),
    (_CVAE_T.apply, dict(params=_P[_CVAE_T], x=np.ones((1, 1), np.float32),
                         y=np.ones((6, 1), np.float32), key=_RAW_KEY), ValueError,
     r"^x must have as many rows as y, got shapes \(1, 1\) and \(6, 1\)$"),
    (_CVAE_T.prior, dict(params=_P[_CVAE_T], x=np.ones((5, 2), np.float32)), ValueError,
     r"^x must have shape \[\*, 1\], got \(5, 2\)$"),
    (_CVAE_T.sample, dict(params=_P[_CVAE_T], key=_RAW_KEY, x=np.ones((5, 1), np.float32), n=-1),
     ValueError, r"^n must be an integer >= 1, got -1$"),
    # objectives
    (O.gaussian_nll, dict(model=_RNN), TypeError,
     r"^model must have likelihood='gaussian' for gaussian_nll \(use mse for 'mse'\), got "
     r"likelihood='mse'$"),
    (O.gaussian_nll, dict(model=M.vae()), TypeError,
     r"^gaussian_nll needs a model of type MLP or RNN or LSTM, got VAE$"),
    (O.mse, dict(model=_VAE), TypeError,
     r"^mse needs a model of type MLP or RNN or LSTM, got VAE$"),
    (O.neg_elbo, dict(model=_VAE, beta=-1.0), ValueError,
     r"^beta must be a finite number >= 0, got -1\.0$"),
    # data
    (D.sine_wiggle, dict(n=0), ValueError, r"^n must be an integer >= 1, got 0$"),
    (D.sine_wiggle, dict(noise=float("nan")), ValueError,
     r"^noise must be a finite number >= 0, got nan$"),
    (D.step_function, dict(seed=-1), ValueError, r"^seed must be an integer >= 0, got -1$"),
    (D.noisy_ring, dict(n=2.5), ValueError, r"^n must be an integer >= 1, got 2\.5$"),
    (D.sine_series, dict(dt=0.0), ValueError, r"^dt must be a positive finite number, got 0\.0$"),
    (D.Standardiser.fit, dict(v=_with(_XS, (3, 0), np.nan)), ValueError,
     r"^v must be finite, got 1 NaN or inf values$"),
    (D.Standardiser.fit, dict(v=np.arange(10).reshape(5, 2)), TypeError,
     r"^v must be a floating array, got dtype int64$"),
    (D.Standardiser.fit, dict(v=np.zeros((0, 2))), ValueError,
     r"^v must have shape \[N >= 2, P >= 1\], got \(0, 2\)$"),
    (D.Standardiser.fit, dict(v=np.ones((5, 2))), ValueError,
     r"^v must vary in every feature to be standardised, got std \[0\. 0\.\]$"),
    (D.Standardiser(np.zeros((1, 2)), np.ones((1, 2))).transform, dict(v=np.ones((5, 3))),
     ValueError,
     r"^v must have the 2 fitted features on its last axis, \[\.\.\., 2\], got shape \(5, 3\)$"),
    (D.lag_windows, dict(series=np.zeros(10), lags=3), ValueError,
     r"^series must have shape \[T >= 1, D >= 1\], got \(10,\)$"),
    (D.lag_windows, dict(series=np.zeros((0, 1)), lags=1), ValueError,
     r"^series must have shape \[T >= 1, D >= 1\], got \(0, 1\)$"),
    (D.lag_windows, dict(series=_SERIES, lags=20), ValueError,
     r"^lags must be shorter than the series \(T = 20\), got 20$"),
    (D.lag_windows, dict(series=_SERIES, lags=0), ValueError,
     r"^lags must be an integer >= 1, got 0$"),
    (D.lag_windows, dict(series=_with(_SERIES, (4, 0), np.inf), lags=3), ValueError,
     r"^series must be finite, got 1 NaN or inf values$"),
    (D.lag_windows, dict(series=np.arange(10)[:, None], lags=3), TypeError,
     r"^series must be a floating array, got dtype int64$"),
    (D.chronological_split, dict(series=_SERIES, train_fraction=1.0), ValueError,
     r"^train_fraction must be a number in \(0, 1\), got 1\.0$"),
    (D.chronological_split, dict(series=_SERIES, train_fraction="half"), ValueError,
     r"^train_fraction must be a number in \(0, 1\), got 'half'$"),
    # forecast
    (F.closed_loop, dict(model=_RNN, params=_P[_RNN], window=_WINDOW, horizon=0), ValueError,
     r"^horizon must be an integer >= 1, got 0$"),
    (F.closed_loop, dict(model=_RNN, params=_P[_RNN], window=_SERIES[:5], horizon=3), ValueError,
     r"^window must have shape \[batch, lags, dim\], got \(5, 1\)$"),
    (F.closed_loop, dict(model=_RNN, params=_P[_RNN], window=_with(_WINDOW, (0, 2, 0), np.nan),
                         horizon=3), ValueError,
     r"^window must be finite, got 1 NaN or inf values$"),
    (F.closed_loop, dict(model=_RNN, params=_P[_RNN], window=np.ones((1, 5, 1), np.int32),
                         horizon=3), TypeError,
     r"^window must be a floating array, got dtype int32$"),
    (F.closed_loop, dict(model=_RNN, params=_P[_RNN], window=np.ones((1, 5, 2), np.float32),
                         horizon=3), ValueError,
     r"^window must have the model's in_dim \(1\) as its dim, got shape \(1, 5, 2\)$"),
    (F.closed_loop, dict(model=_RNN, params=_P[_RNN], window=np.ones((1, 0, 1), np.float32),
                         horizon=3), ValueError, r"^window must be non-empty, .*got \(1, 0, 1\)$"),
    # metrics
    (MT.rmse, dict(prediction=np.zeros(3), target=np.zeros((3, 1))), ValueError,
     r"^prediction and target must have the same shape, got \(3,\) and \(3, 1\)$"),
    (MT.rmse, dict(prediction=_with(_Y3, 1, np.nan), target=_Y3), ValueError,
     r"^prediction must be finite, got 1 NaN or inf values$"),
    (MT.rmse, dict(prediction=np.zeros(0), target=np.zeros(0)), ValueError,
     r"^prediction must be non-empty, got shape \(0,\)$"),
    (MT.rmse, dict(prediction=_Y3, target=np.zeros(3, bool)), TypeError,
     r"^target must be an array of real numbers, got dtype bool$"),
    (MT.energy_distance, dict(x=_with(_MU, (0, 1), -np.inf), y=_MU), ValueError,
     r"^x must be finite, got 1 NaN or inf values$"),
    (MT.energy_distance, dict(x=_MU, y=np.zeros((4, 2))), ValueError,
     r"^x and y must be non-empty \[n, d\] and \[m, d\], got \(2, 3\) and \(4, 2\)$"),
    (MT.mixture_nll, dict(y=_Y3, mu=_MU, sigma=_with(_SIGMA, (1, 1), -0.5)), ValueError,
     r"^sigma must be positive everywhere, got minimum -0\.5$"),
    (MT.mixture_nll, dict(y=np.zeros(4), mu=_MU, sigma=_SIGMA), ValueError,
     r"^y must broadcast to one member's shape \(3,\) \(mu and sigma are \[K, \.\.\.\] = \(2, 3\)\), "
     r"got shape \(4,\)$"),
    (MT.mixture_crps, dict(y=_Y3, mu=_MU, sigma=_SIGMA[:1]), ValueError,
     r"^mu and sigma must have the same shape, got \(2, 3\) and \(1, 3\)$"),
    (MT.mixture_moments, dict(mu=_with(_MU, (0, 0), np.nan), sigma=_SIGMA), ValueError,
     r"^mu must be finite, got 1 NaN or inf values$"),
    (MT.mixture_quantile, dict(q=1.5, mu=_MU, sigma=_SIGMA), ValueError,
     r"^q must be a number in \(0, 1\), got 1\.5$"),
    (MT.coverage, dict(y=_Y3, mu=_MU, sigma=_SIGMA, levels=(0.5, 1.2)), ValueError,
     r"^levels\[1\] must be a number in \(0, 1\), got 1\.2$"),
    (MT.mixture_crps, dict(y=np.full(3, np.nan), mu=_MU, sigma=_SIGMA), ValueError,
     r"^y must be finite, got 3 NaN or inf values$"),
    # train
    (T.fit, _fit(steps=0), ValueError, r"^steps must be an integer >= 1, got 0$"),
    (T.fit, _fit(steps=2.5), ValueError, r"^steps must be an integer >= 1, got 2\.5$"),
    (T.fit, _fit(batch_size=0), ValueError, r"^batch_size must be an integer >= 1, got 0$"),
    (T.fit, _fit(batch_size=21), ValueError,
     r"^batch_size must be at most the number of data rows \(20\), got 21$"),
    (T.fit, _fit(log_every=0), ValueError, r"^log_every must be an integer >= 1, got 0$"),
    (T.fit, _fit(seed=-1), ValueError, r"^seed must be an integer in \[0, 2147483647\], got -1$"),
    (T.fit, _fit(seed=2**31), ValueError,
     r"^seed must be an integer in \[0, 2147483647\], got 2147483648$"),
    (T.fit, _fit(seed=[]), ValueError, r"^seed must be .* non-empty sequence of them, got \[\]$"),
    (T.fit, _fit(dtype=np.int32), TypeError, r"^dtype must be a floating dtype, got int32$"),
    (T.fit, _fit(objective=None), TypeError, r"^objective must be callable, got NoneType$"),
    (T.fit, _fit(objective=O.gaussian_nll(M.mlp(1, (4,), 1))), ValueError,
     r"^objective must be built for the model trained, got an objective of MLP\(.*hidden=\(4,\)"),
    (T.fit, _fit(data={"x": _XS, "y": _YS[:-1]}), ValueError,
     r"^data arrays must have the same length, got 20 and 19 for data\['y'\]$"),
    (T.fit, _fit(data={"x": _with(_XS, (7, 0), np.nan), "y": _YS}), ValueError,
     r"^data\['x'\] must be finite, got 1 NaN or inf values$"),
    (T.fit, _fit(data={"x": _XS.astype(np.int32), "y": _YS}), TypeError,
     r"^data\['x'\] must be a floating array, got dtype int32$"),
    (T.fit, _fit(data={"x": _XS[:0], "y": _YS[:0]}), ValueError,
     r"^data\['x'\] must be a non-empty array \[N, \.\.\.\], got shape \(0, 1\)$"),
    (T.fit, _fit(data={}), ValueError, r"^data must be a non-empty dict of arrays, got dict$"),
    (T.fit, _fit(data={"x": np.tile(_XS, 3), "y": _YS}), ValueError,
     r"^data\['x'\] must have shape \[N, 1\] for MLP\(in_dim=1, .*\), got \(20, 3\)$"),
    (T.fit, _fit(data={"x": _XS, "y": _YS[:, 0]}), ValueError,
     r"^data\['y'\] must have shape \[N, 1\] for MLP\(.*\), got \(20,\)$"),
    (T.fit, _fit(data={"y": _YS}), ValueError,
     r"^data must have the arrays \['x', 'y'\] that GaussianNLL reads, got \['y'\]$"),
    (T.fit, _fit(model=_RNN, objective=O.mse(_RNN),
                 data={"x": _RNN_DATA["x"][:, :0], "y": _RNN_DATA["y"]}), ValueError,
     r"^data\['x'\] must be a non-empty array \[N, \.\.\.\], got shape \(15, 0, 1\)$"),
    (T.fit, _fit(model=_RNN, objective=O.mse(_RNN), data={"x": _RNN_DATA["x"][..., 0],
                                                          "y": _RNN_DATA["y"]}), ValueError,
     r"^data\['x'\] must have shape \[N, \*, 1\] for RNN\(.*\), got \(15, 5\)$"),
    (T.fit, _fit(objective=_custom_objective, data={"x": np.tile(_XS, 3), "y": _YS}), ValueError,
     (r"^data must fit the objective, got shapes \{'x': \(20, 3\), 'y': \(20, 1\)\}, .*"
      r"raised ValueError: X must have shape \[\*, 1\], got \(4, 3\)$")),
    (T.fit, _fit(objective=_vector_objective), ValueError,
     r"^objective must return \(a scalar loss, a dict of terms\), got .*shape=\(4,\)"),
    (T.check_fit_arguments, _fit(steps=-5), ValueError, r"^steps must be an integer >= 1, got -5$"),
    (T.adam, dict(learning_rate=0.0), ValueError,
     r"^learning_rate must be a positive finite number, got 0\.0$"),
    (T.adam, dict(learning_rate=[1e-3]), ValueError,
     r"^learning_rate must be a positive finite number, got \[0\.001\]$"),
    (T.adam, dict(learning_rate=1e-3, decay_steps=0), ValueError,
     r"^decay_steps must be an integer >= 1, got 0$"),
    (T.init_state, dict(model=_MLP, seed=[0, -2], optimizer=_OPT), ValueError,
     r"^seed\[1\] must be an integer in \[0, 2147483647\], got -2$"),
    (S.minibatch_indices, dict(key=_RAW_KEY, n=5, batch_size=6), ValueError,
     r"^batch_size must be at most n \(5\), got 6$"),
    (S.minibatch_indices, dict(key=_RAW_KEY, n=0, batch_size=1), ValueError,
     r"^n must be an integer >= 1, got 0$"),
    # the examples' ensemble size
    (E.prepare_mlp, dict(ensemble=0), ValueError, r"^ensemble must be an integer >= 1, got 0$"),
]


def _case_id(case):
  fn, kwargs = case[0], case[1]
  name = getattr(fn, "__qualname__", getattr(fn, "__name__", "call"))
  return f"{name}-" + "-".join(sorted(kwargs)[:3])


@pytest.mark.parametrize("fn, kwargs, error, message", BAD, ids=[_case_id(c) for c in BAD])
def test_bad_input_is_refused_with_a_clear_message_before_compiling(fn, kwargs, error, message):
  """Each bad input raises the error whose message names the argument, what was expected and
  what was received, and nothing is compiled on the way."""
  with _nothing_compiled(), pytest.raises(error, match=message):
    fn(**kwargs)


def test_the_bad_input_table_is_long_and_covers_every_module():
  """The table has at least 40 cases and reaches every public module."""
  modules = {getattr(fn, "__module__", None) for fn, *_ in BAD}
  assert len(BAD) >= 40
  assert {"dljax.models", "dljax.objectives", "dljax.data", "dljax.forecast", "dljax.metrics",
          "dljax.train", "dljax.examples"} <= modules


# ----------------------------------------------------------------------------------------------
# Properties over shapes and sizes (hypothesis). Models are traced by jax.eval_shape: shapes
# only, nothing compiled, so each example costs milliseconds.

_SHAPED = {  # name: (model, its public function of (params, input), input's name, in, out shapes)
    "mlp": (M.mlp(2, (5,), 3), "predict", "X", lambda s: len(s) == 2 and s[1] == 2,
            lambda n: [(n, 3), (n, 3)]),
    "rnn": (M.rnn(2, 4, 3), "apply", "Y", lambda s: len(s) == 3 and s[1] >= 1 and s[2] == 2,
            lambda n: [(n, 3)]),
    "lstm": (M.lstm(2, 4, 3), "apply", "Y", lambda s: len(s) == 3 and s[1] >= 1 and s[2] == 2,
             lambda n: [(n, 3)]),
    "vae_encode": (M.vae(2, 3, (5,), (5,)), "encode", "y", lambda s: len(s) == 2 and s[1] == 2,
                   lambda n: [(n, 3), (n, 3)]),
    "vae_decode": (M.vae(2, 3, (5,), (5,)), "decode", "z", lambda s: len(s) == 2 and s[1] == 3,
                   lambda n: [(n, 2), (n, 2)]),
    "cvae_prior": (M.cvae(2, 1, 3, (5,), (5,), (5,)), "prior", "x",
                   lambda s: len(s) == 2 and s[1] == 2, lambda n: [(n, 3), (n, 3)]),
}


@hypothesis.settings(max_examples=80, deadline=None)
@hypothesis.given(name=st.sampled_from(sorted(_SHAPED)),
                  shape=st.lists(st.integers(0, 4), min_size=0, max_size=4),
                  floating=st.booleans())
# Found by hypothesis in CI: an integer window with no lags was refused for its dtype before its
# shape (now the shape, as for every other input).
@hypothesis.example(name="lstm", shape=[0, 0, 2], floating=False)
@hypothesis.example(name="rnn", shape=[3, 0, 2], floating=False)
def test_any_input_shape_works_or_raises_naming_the_input(name, shape, floating):
  """An input of any rank and sizes either gives outputs of the right shapes, or raises a
  ValueError (TypeError for integers) naming the input and the shape or dtype it got. (pytest
  matches the message with JAX's note on filtered frames appended after a newline.)"""
  model, method, arg, valid, out_shapes = _SHAPED[name]
  params = jax.eval_shape(lambda k: model.init(k), _RAW_KEY)
  spec = jax.ShapeDtypeStruct(tuple(shape), np.float32 if floating else np.int32)
  call = lambda p, a: getattr(model, method)(p, a)
  with _nothing_compiled():
    if not valid(shape):
      got = re.escape(str(tuple(shape)))
      with pytest.raises(ValueError, match=rf"^{arg} must .*, got (shape )?{got}($|\n)"):
        jax.eval_shape(call, params, spec)
    elif not floating:
      with pytest.raises(TypeError, match=rf"^{arg} must be a floating array, got dtype int32"):
        jax.eval_shape(call, params, spec)
    else:
      out = jax.eval_shape(call, params, spec)
      assert [o.shape for o in jax.tree.leaves(out)] == out_shapes(shape[0])
      assert all(o.dtype == np.float32 for o in jax.tree.leaves(out))


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(n=st.integers(1, 6), columns=st.integers(1, 3), steps=st.integers(-2, 3),
                  batch_size=st.integers(-2, 8), log_every=st.integers(-1, 2),
                  seed=st.integers(-2, 3))
def test_fit_arguments_are_checked_in_order_without_compiling(n, columns, steps, batch_size,
                                                              log_every, seed):
  """check_fit_arguments (what fit runs first) with random sizes raises a ValueError naming the
  first bad one, in the order steps, log_every, seed, batch_size, data['x'], and compiles
  nothing, also when everything is valid (the data are converted on the host and copied)."""
  data = {"x": np.tile(_XS[:n], columns), "y": _YS[:n]}
  kw = dict(steps=steps, batch_size=batch_size, log_every=log_every, seed=seed)
  checks = [("steps", steps >= 1), ("log_every", log_every >= 1), ("seed", seed >= 0),
            ("batch_size", 1 <= batch_size <= n), (r"data\['x'\]", columns == 1)]
  bad = [name for name, ok in checks if not ok]
  with _nothing_compiled():
    if bad:
      with pytest.raises(ValueError, match=rf"^{bad[0]} must .*got "):
        T.check_fit_arguments(_MLP, O.gaussian_nll(_MLP), data, **kw)
    else:
      arrays = T.check_fit_arguments(_MLP, O.gaussian_nll(_MLP), data, **kw)
      assert {k: (a.shape, a.dtype) for k, a in arrays.items()} == {
          "x": ((n, 1), np.float32), "y": ((n, 1), np.float32)}


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(T_=st.integers(0, 9), dim=st.integers(0, 2), lags=st.integers(-1, 11))
def test_lag_windows_of_any_length_work_or_raise_naming_the_argument(T_, dim, lags):
  """lag_windows(series [T, D], lags) gives X[t] = series[t:t + lags], Y[t] = series[t + lags]
  when T, D >= 1 and 1 <= lags < T; otherwise a ValueError naming series or lags."""
  series = np.arange(T_ * dim, dtype=np.float32).reshape(T_, dim)
  if T_ < 1 or dim < 1:
    with pytest.raises(ValueError, match=rf"^series must have shape .*got \({T_}, {dim}\)$"):
      D.lag_windows(series, lags)
  elif not 1 <= lags < T_:
    with pytest.raises(ValueError, match=rf"^lags must .*got {lags}$"):
      D.lag_windows(series, lags)
  else:
    X, Y = D.lag_windows(series, lags)
    assert X.shape == (T_ - lags, lags, dim) and Y.shape == (T_ - lags, dim)
    for t in range(T_ - lags):
      np.testing.assert_array_equal(X[t], series[t:t + lags])
      np.testing.assert_array_equal(Y[t], series[t + lags])


_TAKES_DATA = {  # name: (a call of one float array a, the argument's name in messages)
    "Standardiser.fit": (lambda a: D.Standardiser.fit(a), "v"),
    "lag_windows": (lambda a: D.lag_windows(a, 2), "series"),
    "rmse": (lambda a: MT.rmse(a, np.zeros_like(a)), "prediction"),
    "energy_distance": (lambda a: MT.energy_distance(np.zeros_like(a), a), "y"),
    "mixture_crps": (lambda a: MT.mixture_crps(a[0], a, np.ones_like(a)), "mu"),
    "closed_loop": (lambda a: F.closed_loop(_RNN, _P[_RNN], a[None, :, :1], 2), "window"),
    "fit": (lambda a: T.fit(**_fit(data={"x": a[:, :1], "y": _YS[:len(a)]})), r"data\['x'\]"),
}


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(name=st.sampled_from(sorted(_TAKES_DATA)), rows=st.integers(3, 6),
                  where=st.data(), value=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_one_nan_or_inf_anywhere_is_refused_naming_the_argument(name, rows, where, value):
  """One NaN or inf at a random place of a function's array input is a ValueError naming the
  argument and counting the bad values, before anything is compiled."""
  call, arg = _TAKES_DATA[name]
  a = np.random.default_rng(rows).standard_normal((rows, 2)).astype(np.float32)
  column = 0 if name in ("closed_loop", "fit") else where.draw(st.integers(0, 1))  # (the one used)
  a[where.draw(st.integers(0, rows - 1)), column] = value
  with _nothing_compiled(), pytest.raises(ValueError, match=rf"^{arg} must be finite, got 1 NaN"):
    call(a)
