"""The Flax front-ends (dljax.interop): linen and NNX modules with the models' own parameters.

Thresholds: every equality with dljax's own init, apply or training is bitwise (np.array_equal,
same dtype); the composed models' training losses must fall by at least LOSS_FACTOR.
"""

import pathlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx as fnnx
from flax.training import train_state
from helpers import modules_loaded_by

import dljax
from dljax import checkpoint, checks, data, interop, objectives, train
from dljax.interop import linen, nnx

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOSS_FACTOR = 100.0  # the composed LSTM forecasters' MSE after 300 steps, against the first's
KEY = jax.random.PRNGKey(0)


def _small_models():
  return {
      "mlp": dljax.mlp(hidden=(8, 6)),
      "mlp_het": dljax.mlp(in_dim=2, hidden=(8,), out_dim=2, heteroscedastic=True),
      "rnn": dljax.rnn(hidden=4),
      "lstm": dljax.lstm(in_dim=2, hidden=4),
      "vae": dljax.vae(encoder=(8,), decoder=(8,)),
      "cvae": dljax.cvae(prior_net=(8,), encoder=(8,), decoder=(8,)),
      "cvae_std": dljax.cvae(x_dim=2, prior_net=(8,), encoder=(8,), decoder=(8,),
                             variant="standard"),
  }


def _inputs(model, n=5):
  """Keyword arguments of each method: {method: kwargs}; "apply" is ``__call__``."""
  rng = np.random.default_rng(0)
  normal = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
  if isinstance(model, dljax.models.MLP):
    x = normal(n, model.in_dim)
    return {"apply": {"X": x}, "predict": {"X": x}}
  if isinstance(model, (dljax.models.RNN, dljax.models.LSTM)):
    return {"apply": {"Y": normal(n, 3, model.in_dim)}}
  x = {"x": normal(n, model.x_dim)} if model.conditional else {}
  y, z = normal(n, model.y_dim), normal(n, model.latent)
  return {"apply": {"y": y, "key": KEY, **x}, "prior": x, "encode": {"y": y, **x},
          "decode": {"z": z, **x}, "sample": {"key": KEY, "n": 3, **x},
          "sample_noise": {"key": KEY, "n": 3, "noise": True, "shared_noise": False, **x}}


def _init_inputs(model):
  return _inputs(model)["apply"]


def _same(a, b):
  """Bitwise equal trees: the same structure, shapes, dtypes and values."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert u.dtype == v.dtype and np.array_equal(np.asarray(u), np.asarray(v))


def _flax_key(stream, key):
  """The key a top-level linen module's first ``make_rng(stream)`` gives."""

  class Probe(nn.Module):
    @nn.compact
    def __call__(self):
      return self.make_rng(stream)

  return Probe().apply({}, rngs={stream: key})


def _call(module_method, model, method, kwargs, params):
  got = module_method(**kwargs)
  name = "sample" if method == "sample_noise" else method
  want = getattr(model, name)(params, **kwargs)
  _same(got, want)


# ----------------------------------------------------------------------------------------------
# Linen.


@pytest.mark.parametrize("name", list(_small_models()))
def test_linen_init_is_model_init_and_every_method_is_the_models_bitwise(name):
  """init: model.init(k) bitwise (k: the module's first Flax "params" key), the same tree;
  __call__, predict, prior, encode, decode, sample: the model's own, bitwise (eager; the jitted
  programs are the same: test_linen_step_is_the_same_program)."""
  model = _small_models()[name]
  module = linen(model)
  variables = module.init(KEY, **_init_inputs(model))
  assert set(variables) == {"params"}
  params = variables["params"]
  _same(params, model.init(_flax_key("params", KEY)))
  _same(module.init(KEY, method="symbols"), variables)  # no inputs needed
  for method, kwargs in _inputs(model).items():
    flax_method = {"apply": None, "sample_noise": "sample"}.get(method, method)
    call = lambda **kw: module.apply(variables, method=flax_method or "__call__", **kw)
    _call(call, model, method, kwargs, params)


@pytest.mark.parametrize("name", ["vae", "cvae_std"])
def test_linen_sampling_keys_come_from_the_sample_stream(name):
  """Without key=, apply and sample draw make_rng("sample"): the model's result for that key,
  bitwise; another stream key gives other draws; init falls back to the "params" stream."""
  model = _small_models()[name]
  module = linen(model)
  inputs = _inputs(model)
  variables = module.init(KEY, **{k: v for k, v in inputs["apply"].items() if k != "key"})
  params, k1, k2 = variables["params"], jax.random.PRNGKey(1), jax.random.PRNGKey(2)
  for method in ("apply", "sample"):
    kwargs = {k: v for k, v in inputs[method].items() if k != "key"}
    flax_method = "__call__" if method == "apply" else method
    got = module.apply(variables, method=flax_method, rngs={"sample": k1}, **kwargs)
    _same(got, getattr(model, method)(params, key=_flax_key("sample", k1), **kwargs))
    other = module.apply(variables, method=flax_method, rngs={"sample": k2}, **kwargs)
    assert not np.array_equal(jax.tree.leaves(got)[-1], jax.tree.leaves(other)[-1])
  with pytest.raises(checks.ArgumentTypeError, match=r"key must be given, or a 'sample' RNG"):
    module.apply(variables, method="sample", **{k: v for k, v in inputs["sample"].items()
                                                if k != "key"})


@pytest.mark.parametrize("name", list(_small_models()))
def test_linen_step_is_the_same_program(name):
  """No extra cost by construction: the jaxprs of every method through module.apply, and of a
  gradient step through apply, are the model's own, character for character."""
  model = _small_models()[name]
  module = linen(model)
  params = module.init(KEY, **_init_inputs(model))["params"]
  jaxpr = lambda f, *args: str(jax.make_jaxpr(f)(*args))
  for method, kwargs in _inputs(model).items():
    arrays = {k: v for k, v in kwargs.items() if hasattr(v, "shape")}
    static = {k: v for k, v in kwargs.items() if k not in arrays}  # n, noise, shared_noise
    name_ = "sample" if method == "sample_noise" else method
    flax_method = "__call__" if method == "apply" else name_
    ours = lambda p, kw: module.apply({"params": p}, method=flax_method, **kw, **static)
    theirs = lambda p, kw: getattr(model, name_)(p, **kw, **static)
    assert jaxpr(ours, params, arrays) == jaxpr(theirs, params, arrays), method

  def loss(out):
    return sum(jnp.sum(jnp.square(a)) for a in jax.tree.leaves(out))

  kwargs = _init_inputs(model)
  ours = jax.grad(lambda p, kw: loss(module.apply({"params": p}, **kw)))
  theirs = jax.grad(lambda p, kw: loss(model.apply(p, **kw)))
  assert jaxpr(ours, params, kwargs) == jaxpr(theirs, params, kwargs)


def test_linen_jitted_apply_compiles_once():
  """A second call of the jitted linen apply (new values, same shapes) neither retraces nor
  recompiles; equal front-ends are equal, hashable static arguments (one compilation)."""
  model = dljax.lstm(hidden=4)
  module = linen(model)
  Y = jnp.ones((7, 5, 1))
  variables = module.init(KEY, Y)
  traces = []

  def apply(v, Y):
    traces.append(1)
    return module.apply(v, Y)

  jitted = jax.jit(apply)
  jitted(variables, Y).block_until_ready()
  other = jax.tree.map(lambda a: a + 1.0, variables)
  jitted(other, 2.0 * Y).block_until_ready()
  assert len(traces) == 1 and jitted._cache_size() == 1
  by_module = jax.jit(lambda m, v, Y: m.apply(v, Y), static_argnums=0)
  assert linen(model) == linen(model) and hash(linen(model)) == hash(linen(model))
  by_module(linen(model), variables, Y)
  by_module(linen(model), other, Y)
  assert by_module._cache_size() == 1


# ----------------------------------------------------------------------------------------------
# NNX.


@pytest.mark.parametrize("name", list(_small_models()))
def test_nnx_one_param_per_symbol_and_every_method_is_the_models_bitwise(name):
  """nnx.state(module, nnx.Param) is the model's tree, one nnx.Param per leaf, equal to
  model.init(rngs.params()); the methods are the model's, bitwise; the sampling key defaults to
  rngs.sample(); a loaded tree is what params_of returns and what the methods use."""
  model = _small_models()[name]
  module = nnx(model, rngs=fnnx.Rngs(3))
  rngs = fnnx.Rngs(3)
  params = model.init(rngs.params())
  state = fnnx.state(module, fnnx.Param)
  leaves = jax.tree.leaves(state, is_leaf=lambda v: isinstance(v, fnnx.Variable))
  assert all(isinstance(v, fnnx.Param) for v in leaves)
  assert len(leaves) == len(jax.tree.leaves(params))
  _same(fnnx.to_pure_dict(state), params)
  _same(interop.params_of(module), params)
  for method, kwargs in _inputs(model).items():
    bound = module if method == "apply" else getattr(module, method.replace("_noise", ""))
    _call(bound, model, method, kwargs, params)
  if "key" in _inputs(model).get("sample", {}):
    kwargs = {k: v for k, v in _inputs(model)["sample"].items() if k != "key"}
    _same(module.sample(**kwargs), model.sample(params, key=rngs.sample(), **kwargs))
  other = model.init(jax.random.PRNGKey(9))
  assert interop.load_params(module, other) is module
  _same(interop.params_of(module), other)
  kwargs = _inputs(model)["apply"]
  _same(module(**kwargs), model.apply(other, **kwargs))


def test_nnx_cvae_prior_is_a_method_and_a_parameter_group_through_nnx_transforms():
  """The CVAE's "prior" symbol and method coexist, and survive split/merge, clone and nnx.jit
  (which traces once for two calls)."""
  model = _small_models()["cvae_std"]
  module = nnx(model)
  x = _inputs(model)["prior"]["x"]
  params = interop.params_of(module)
  assert set(params) == {"prior", "encoder", "decoder"}
  assert isinstance(vars(module)["prior"], fnnx.Dict)
  _same(module.prior(x=x), model.prior(params, x=x))
  graphdef, state = fnnx.split(module)
  _same(fnnx.merge(graphdef, state).prior(x=x), model.prior(params, x=x))
  _same(fnnx.clone(module).prior(x=x), model.prior(params, x=x))
  traces = []

  @fnnx.jit
  def prior(m, x):
    traces.append(1)
    return m.prior(x=x)

  _same(prior(module, x), model.prior(params, x=x))
  prior(module, 2.0 * x)
  assert len(traces) == 1


# ----------------------------------------------------------------------------------------------
# Both directions: fit and checkpoints into Flax, Flax-trained parameters back.


STEPS = 30  # fit's runs here: one chunk length, so that they share one compiled program


def _mlp_problem():
  model = dljax.mlp(hidden=(8,))
  d = data.sine_wiggle(seed=0)
  return model, objectives.gaussian_nll(model), {"x": d.x, "y": d.y}


def test_fit_and_checkpoint_params_load_into_both_front_ends(tmp_path):
  """fit's params, saved and loaded: linen apply and an NNX module give model.apply's output
  bitwise, and params_of returns the tree."""
  model, nll, batch = _mlp_problem()
  result = dljax.fit(model, nll, batch, steps=STEPS, batch_size=10, seed=1, log_every=STEPS)
  checkpoint.save(tmp_path / "mlp.ckpt", model, result.params)
  loaded_model, params, _, _ = checkpoint.load(tmp_path / "mlp.ckpt")
  assert loaded_model == model
  x = jnp.asarray(batch["x"])
  want = model.apply(result.params, x)
  _same(linen(loaded_model).apply({"params": params}, x), want)
  net = interop.load_params(nnx(loaded_model), params)
  _same(net(x), want)
  _same(interop.params_of(net), result.params)


def test_flax_trained_params_go_back_into_fit_and_checkpoint(tmp_path):
  """fit_state(model, params) is the state fit expects: resuming from it equals resuming from
  train.init_state with those params, bitwise. Params trained in linen (TrainState, 100 steps)
  continue in fit, whose first 10 losses average at least 0.2 below those of a run from an init
  (measured 0.50 against 0.98); they and NNX's round-trip through checkpoint.save / load."""
  model, nll, batch = _mlp_problem()
  opt = train.adam()
  start = train.init_state(model, 1, opt)
  a = dljax.fit(model, nll, batch, steps=STEPS, batch_size=10, seed=1, state=start, log_every=STEPS)
  net = interop.load_params(nnx(model), start.params)
  state = interop.fit_state(model, interop.params_of(net), opt)
  b = dljax.fit(model, nll, batch, steps=STEPS, batch_size=10, seed=1, state=state, log_every=STEPS)
  _same(a.params, b.params)
  assert int(interop.fit_state(model, start.params, step=7).step) == 7

  module = linen(model)
  flax_state = train_state.TrainState.create(
      apply_fn=module.apply, params=module.init(KEY, batch["x"])["params"], tx=optax.adam(1e-2))

  @jax.jit
  def step(s):
    loss = lambda p: nll(p, batch)[0]  # dljax's objective on the linen params tree
    return s.apply_gradients(grads=jax.grad(loss)(s.params))

  for _ in range(100):
    flax_state = step(flax_state)
  more = dljax.fit(model, nll, batch, steps=STEPS, batch_size=10,
                   state=interop.fit_state(model, flax_state.params), log_every=STEPS)
  # it goes on from where Flax stopped: below the loss of fit's own start from an init
  assert np.mean(more.history["loss"][:10]) < np.mean(a.history["loss"][:10]) - 0.2
  for params in (flax_state.params, interop.params_of(net)):
    checkpoint.save(tmp_path / "flax.ckpt", model, params)
    _same(jax.tree.map(jnp.asarray, checkpoint.load(tmp_path / "flax.ckpt")[1]), params)


# ----------------------------------------------------------------------------------------------
# Composable: the dljax LSTM inside users' own Flax models.


def _windows():
  return data.lag_windows(data.sine_series(n=100), lags=5)  # [95, 5, 1], [95, 1]


def test_linen_user_model_with_dljax_lstm_and_dense_head_trains():
  """A linen model: dljax LSTM (8 features out) -> tanh -> nn.Dense(1), TrainState and Adam;
  300 full-batch steps cut the MSE by at least LOSS_FACTOR."""
  X, Y = _windows()

  class Forecaster(nn.Module):
    @nn.compact
    def __call__(self, windows):
      h = linen(dljax.lstm(hidden=8, out_dim=8), name="lstm")(windows)
      return nn.Dense(1)(jnp.tanh(h))

  net = Forecaster()
  variables = net.init(KEY, X)
  lstm_tree = dljax.lstm(hidden=8, out_dim=8).init(KEY)
  assert jax.tree.map(jnp.shape, variables["params"]["lstm"]) == jax.tree.map(jnp.shape,
                                                                                lstm_tree)
  state = train_state.TrainState.create(apply_fn=net.apply, params=variables["params"],
                                        tx=optax.adam(1e-2))

  @jax.jit
  def step(state):
    mse = lambda p: jnp.mean(jnp.square(state.apply_fn({"params": p}, X) - Y))
    loss, grads = jax.value_and_grad(mse)(state.params)
    return state.apply_gradients(grads=grads), loss

  losses = []
  for _ in range(300):
    state, loss = step(state)
    losses.append(float(loss))
  assert losses[-1] * LOSS_FACTOR < losses[0], (losses[0], losses[-1])


def test_nnx_user_model_with_dljax_lstm_and_linear_head_trains():
  """An NNX model: dljax LSTM -> tanh -> nnx.Linear(8, 1), nnx.Optimizer(wrt=nnx.Param) and
  Adam; 300 full-batch steps cut the MSE by at least LOSS_FACTOR."""
  X, Y = _windows()

  class Forecaster(fnnx.Module):
    def __init__(self, rngs):
      self.lstm = nnx(dljax.lstm(hidden=8, out_dim=8), rngs=rngs)
      self.head = fnnx.Linear(8, 1, rngs=rngs)

    def __call__(self, windows):
      return self.head(jnp.tanh(self.lstm(windows)))

  net = Forecaster(fnnx.Rngs(0))
  optimizer = fnnx.Optimizer(net, optax.adam(1e-2), wrt=fnnx.Param)

  @fnnx.jit
  def step(net, optimizer):
    mse = lambda net: jnp.mean(jnp.square(net(X) - Y))
    loss, grads = fnnx.value_and_grad(mse)(net)
    optimizer.update(net, grads)
    return loss

  losses = [float(step(net, optimizer)) for _ in range(300)]
  assert losses[-1] * LOSS_FACTOR < losses[0], (losses[0], losses[-1])
  assert set(interop.params_of(net.lstm)) == set(dljax.lstm(hidden=8, out_dim=8).init(KEY))


# ----------------------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize("bad", [object(), "mlp", nn.Dense(3), dljax.mlp])
def test_not_a_dljax_model_is_rejected(bad):
  for front_end in (linen, nnx):
    with pytest.raises(checks.ArgumentTypeError, match=r"^model must be a dljax model"):
      front_end(bad)


def _bad_trees():
  """(model, tree, the message's expected fragments) for missing, extra and misshapen symbols."""
  mlp, vae = dljax.mlp(hidden=(5, 4)), dljax.vae(encoder=(6,), decoder=(6,))
  p, q = mlp.init(KEY), vae.init(KEY)
  missing = {k: v for k, v in p.items() if k != "A2"}
  extra = {**p, "Z": jnp.zeros((3,))}
  wrong = {**p, "A1": jnp.zeros((2, 5))}
  nested = {**q, "encoder": {**q["encoder"], "A1": jnp.zeros((3, 6))}}
  return [(mlp, missing, ["params['A2']", "shape (5, 4)", "missing"]),
          (mlp, extra, ["params['Z']", "not be there", "shape (3,)"]),
          (mlp, wrong, ["params['A1']", "have shape (1, 5)", "got shape (2, 5)"]),
          (vae, nested, ["params['encoder']['A1']", "have shape (2, 6)", "shape (3, 6)"]),
          (mlp, [1, 2], ["params must be a dict of the symbols", "got list"])]


@pytest.mark.parametrize("case", range(5))
def test_bad_params_name_the_symbol_and_both_shapes(case):
  """linen apply, load_params and fit_state name the symbol, the expected and the received."""
  model, tree, fragments = _bad_trees()[case]
  attempts = [lambda: interop.load_params(nnx(model), tree),
              lambda: interop.fit_state(model, tree)]
  if isinstance(tree, dict):  # linen itself rejects a collection that is not a dict
    attempts.append(lambda: linen(model).apply({"params": tree}, method="symbols"))
  for attempt in attempts:
    with pytest.raises(checks.BadArgument) as info:
      attempt()
    for fragment in fragments:
      assert fragment in str(info.value), str(info.value)
  with pytest.raises(checks.ArgumentTypeError, match=r"^module must be a module built by"):
    interop.params_of(fnnx.Linear(1, 1, rngs=fnnx.Rngs(0)))


def test_import_does_not_load_flax_front_ends():
  """import dljax.interop leaves flax.linen and flax.nnx unimported (the import-time budget)."""
  assert modules_loaded_by("import dljax, dljax.interop", ["flax.linen", "flax.nnx"]) == []


# ----------------------------------------------------------------------------------------------
# The README's "From Flax" examples run as written.


def _flax_section() -> str:
  readme = (ROOT / "README.md").read_text()
  found = re.search(r"^## From Flax\n(.*?)(?=^## |\Z)", readme, flags=re.S | re.M)
  assert found, "README.md has no '## From Flax' section"
  return found.group(1)


def test_readme_from_flax_examples_run(capsys):
  """Each ```python block of "From Flax" runs (the linen one prints an MSE below 1e-3)."""
  blocks = re.findall(r"```python\n(.*?)```", _flax_section(), flags=re.S)
  assert len(blocks) >= 2, "a linen and an NNX example"
  for i, block in enumerate(blocks):
    exec(compile(block, f"README From Flax block {i}", "exec"), {"__name__": "readme"})
  mse = re.search(r"MSE after 300 steps (\S+)", capsys.readouterr().out)
  assert mse and float(mse.group(1)) < 1e-3
