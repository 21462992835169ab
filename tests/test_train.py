"""The training engine: determinism, chunking, ensembles, compilation, optimizer and bad input."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from dljax import data as D
from dljax import groups
from dljax import models as M
from dljax import objectives as O
from dljax import resources
from dljax import sampler as S
from dljax import train as T

_SERIES = D.sine_series()[:66]
_X, _Y = D.lag_windows(_SERIES, 5)
_RNN = M.rnn()
_RNN_DATA = {"x": _X, "y": _Y}
_RING = D.noisy_ring(0, 300)
_VAE = M.vae(encoder=(16, 8), decoder=(8, 16))


def _leaves(tree):
  return [np.asarray(l) for l in jax.tree.leaves(tree)]


def _bitwise_equal(a, b):
  la, lb = _leaves(a), _leaves(b)
  return len(la) == len(lb) and all(x.dtype == y.dtype and np.array_equal(x, y)
                                    for x, y in zip(la, lb))


def _fit_vae(**kwargs):
  kwargs = {"steps": 120, "batch_size": 50, "seed": 3, **kwargs}
  kwargs.setdefault("log_every", kwargs["steps"])
  return T.fit(_VAE, O.neg_elbo(_VAE), {"y": _RING}, **kwargs)


def test_same_seed_is_bitwise_identical():
  """Two runs with the same seed give bitwise-equal parameters, optimizer state and history."""
  a, b = _fit_vae(), _fit_vae()
  assert _bitwise_equal(a.state, b.state)
  assert all(np.array_equal(a.history[k], b.history[k]) for k in a.history)


def test_different_seeds_differ():
  """Another seed gives other parameters."""
  a, b = _fit_vae(seed=3), _fit_vae(seed=4)
  assert not np.array_equal(_leaves(a.params)[0], _leaves(b.params)[0])


def _fit_rnn(**kwargs):  # batch 1: its loop is one kernel (dljax.xla_flags), the VAE's is not
  kwargs = {"steps": 40, "batch_size": 1, "seed": 5, **kwargs}
  kwargs.setdefault("log_every", kwargs["steps"])
  return T.fit(_RNN, O.mse(_RNN), _RNN_DATA, **kwargs)


@pytest.mark.parametrize("fit, log_every", [
    (_fit_vae, 1), (_fit_vae, 7), (_fit_vae, 50), (_fit_rnn, 7), (_fit_rnn, 30)])
def test_chunk_size_does_not_change_the_result(fit, log_every):
  """Any grouping of the steps into compiled chunks gives bitwise the same run (one-step chunks
  of a recurrent model: the next test)."""
  ref = fit()
  other = fit(log_every=log_every)
  assert _bitwise_equal(ref.state, other.state)
  np.testing.assert_array_equal(ref.history["loss"], other.history["loss"])


def test_one_step_chunks_of_a_recurrent_model_agree_to_rounding():
  """One-step chunks of the RNN round apart from its loops, with XLA's defaults too: XLA's CPU
  compiler forms fused multiply-adds by the compiled program (BUILD_NOTES.md, Decisions: small
  loops as one kernel). They agree to float32 rounding."""
  ref, other = _fit_rnn(), _fit_rnn(log_every=1)
  for a, b in zip(_leaves(ref.state), _leaves(other.state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(ref.history["loss"], other.history["loss"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch_size", [3, 66 - 5, 40])  # Floyd; whole data; top_k (> 32)
def test_draw_blocks_do_not_change_the_result(batch_size):
  """The chunk makes its steps' draws a block at a time; blocks of 7 (five and a rest of 5),
  13 (three and a rest of 1), 39 (one and a rest of 1) and 1000 (one of 40) give bitwise the run
  of one block of 40, and that run equals train_step applied step by step to the minibatch and
  key of fold_in(train_key, t)."""
  opt, objective = T.adam(1e-2), O.mse(_RNN)
  data = {k: jnp.asarray(v) for k, v in _RNN_DATA.items()}
  state0, train_key = T._init_and_keys(_RNN, opt, jnp.float32, [5], False)

  def chunk(block):
    run = jax.jit(lambda s, k: T._run_chunk(s, k, data, objective, opt, batch_size, 40, block))
    return run(state0, train_key)

  ref_state, ref_terms = chunk(40)
  for block in (7, 13, 39, 1000):
    state, terms = chunk(block)
    assert _bitwise_equal(state, ref_state), block
    np.testing.assert_array_equal(terms["loss"], ref_terms["loss"])

  state, losses = state0, []
  for t in range(40):
    batch_key, loss_key = jax.random.split(jax.random.fold_in(train_key, t))
    idx = S.minibatch_indices(batch_key, _X.shape[0], batch_size)
    state, terms = T.train_step(state, {k: v[idx] for k, v in data.items()}, loss_key,
                                objective=objective, optimizer=opt)
    losses.append(terms["loss"])
  for a, b in zip(_leaves(state.params), _leaves(ref_state.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses, ref_terms["loss"], rtol=1e-5, atol=1e-7)


def test_resume_from_state_equals_one_run():
  """120 steps, then 80 more from the returned state, equal 200 steps at once, bitwise."""
  whole = _fit_vae(steps=200)
  first = _fit_vae(steps=120)
  kept = jax.tree.map(np.array, first.state)
  rest = _fit_vae(steps=80, state=first.state, log_every=120)
  assert _bitwise_equal(whole.state, rest.state)
  assert _bitwise_equal(kept, first.state)  # the caller's state was not donated away
  np.testing.assert_array_equal(whole.history["loss"][120:], rest.history["loss"])


@pytest.mark.parametrize("which", ["vae", "rnn"])
def test_ensemble_member_equals_single_run(which):
  """Member k of a vmapped ensemble equals training seed k alone, to float32 rounding.

  Measured: not bitwise (XLA batches the matmuls of a vmapped program differently), with
  differences of about 1e-7 after 150 steps; the tolerance below is 100 times that.
  """
  if which == "vae":
    single, ens = _fit_vae(steps=150), _fit_vae(steps=150, seed=[1, 3, 5])
  else:
    kw = dict(steps=150, batch_size=4, log_every=150)
    single = T.fit(_RNN, O.mse(_RNN), _RNN_DATA, seed=3, **kw)
    ens = T.fit(_RNN, O.mse(_RNN), _RNN_DATA, seed=[1, 3, 5], **kw)
  assert ens.history["loss"].shape == (3, 150)
  assert int(ens.state.step[1]) == 150
  for a, b in zip(_leaves(single.params), _leaves(ens.params)):
    np.testing.assert_allclose(b[1], a, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ens.history["loss"][1], single.history["loss"], rtol=1e-4, atol=1e-6)
  # and the members really are different runs
  assert not np.allclose(_leaves(ens.params)[0][0], _leaves(ens.params)[0][1])


class _CountingMSE(O.MeanSquaredError):
  """MSE that counts how often it is traced."""

  traces = 0

  def __call__(self, params, batch, key=None):
    type(self).traces += 1
    return super().__call__(params, batch, key)


def test_second_call_does_not_recompile():
  """A second fit with the same shapes, objective and optimizer reuses the compiled chunk."""
  objective = _CountingMSE(_RNN)
  opt = T.adam(1e-3)
  T.fit(_RNN, objective, _RNN_DATA, steps=40, batch_size=2, seed=0, log_every=20, optimizer=opt)
  traces, cache = _CountingMSE.traces, T._chunk._cache_size()
  T.fit(_RNN, objective, _RNN_DATA, steps=40, batch_size=2, seed=1, log_every=20, optimizer=opt)
  T.fit(_RNN, _CountingMSE(_RNN), _RNN_DATA, steps=40, batch_size=2, seed=2, log_every=20,
        optimizer=T.adam(1e-3))  # equal (not identical) objective and cached optimizer
  assert _CountingMSE.traces == traces
  assert T._chunk._cache_size() == cache


def test_data_already_on_the_device_is_used_as_it_is():
  """fit's data check returns a float32 JAX array on the default device itself (no copy), and
  copies what is not one: NumPy arrays, another dtype; the training is the same either way."""
  on_device = {k: jnp.asarray(v, jnp.float32) for k, v in _RNN_DATA.items()}
  arrays = T.check_fit_arguments(_RNN, O.mse(_RNN), on_device, steps=1, batch_size=1)
  assert all(arrays[k] is on_device[k] for k in on_device)
  for given in (_RNN_DATA, {k: np.asarray(v, np.float64) for k, v in _RNN_DATA.items()},
                {k: jnp.asarray(v, jnp.float16) for k, v in _RNN_DATA.items()},
                {k: jnp.asarray(v, jnp.float32) + jnp.zeros((), jnp.float32)
                 for k, v in _RNN_DATA.items()}):  # the last: float32 JAX arrays, copied?
    arrays = T.check_fit_arguments(_RNN, O.mse(_RNN), given, steps=1, batch_size=1)
    for k, a in arrays.items():
      assert isinstance(a, jax.Array) and a.dtype == jnp.float32 and not a.weak_type
      np.testing.assert_array_equal(a, np.asarray(given[k], np.float32))
    assert all((arrays[k] is v) == (given is not _RNN_DATA and isinstance(v, jax.Array)
                                    and v.dtype == jnp.float32) for k, v in given.items())
  trained = T.fit(_RNN, O.mse(_RNN), on_device, steps=40, batch_size=1, seed=5, log_every=40)
  assert _bitwise_equal(_fit_rnn().state, trained.state)


def test_public_train_step_equals_one_engine_step():
  """train_step on the engine's minibatch and key reproduces the engine's first step."""
  opt = T.adam(1e-3)
  objective = O.mse(_RNN)
  state = T.init_state(_RNN, 7, opt)
  batch_key, loss_key = jax.random.split(jax.random.fold_in(T.keys_from_seed(7)[1], 0))
  idx = S.minibatch_indices(batch_key, _X.shape[0], 4)
  batch = {"x": jnp.asarray(_X)[idx], "y": jnp.asarray(_Y)[idx]}
  mine, terms = T.train_step(state, batch, loss_key, objective=objective, optimizer=opt)
  engine = T.fit(_RNN, objective, _RNN_DATA, steps=1, batch_size=4, seed=7, optimizer=opt)
  for a, b in zip(_leaves(mine.params), _leaves(engine.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(terms["loss"], engine.history["loss"][0], rtol=1e-6)


def test_from_lift_min_rows_the_lifted_gradient_is_the_same_update():
  """With LIFT_MIN_ROWS rows a minibatch or more, fit's first step equals train_step's on the
  engine's minibatch and key, and the gradient under a vmap over one member (which both take
  then) gives the plain update to float rounding."""
  opt, objective, rows = T.adam(1e-2), O.neg_elbo(_VAE), T.LIFT_MIN_ROWS + 20
  state = T.init_state(_VAE, 3, opt)
  batch_key, loss_key = jax.random.split(jax.random.fold_in(T.keys_from_seed(3)[1], 0))
  batch = {"y": jnp.asarray(_RING)[S.minibatch_indices(batch_key, len(_RING), rows)]}
  mine, terms = T.train_step(state, batch, loss_key, objective=objective, optimizer=opt)
  engine = T.fit(_VAE, objective, {"y": _RING}, steps=1, batch_size=rows, seed=3, optimizer=opt)
  plain, plain_terms = jax.jit(lambda s: T._update(s, batch, loss_key, objective, opt))(state)
  for a, b, c in zip(_leaves(mine.params), _leaves(engine.params), _leaves(plain.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(terms["loss"], engine.history["loss"][0], rtol=1e-6)
  np.testing.assert_allclose(terms["loss"], plain_terms["loss"], rtol=1e-6)


def test_first_adam_step_moves_each_parameter_by_the_learning_rate():
  """Adam's first update is -lr g / (|g| + eps): each parameter with |g| >> eps moves by lr."""
  opt = T.adam(1e-3)
  state = T.init_state(_RNN, 0, opt)
  batch = {"x": jnp.asarray(_X), "y": jnp.asarray(_Y)}
  grads = jax.grad(lambda p: O.mse(_RNN)(p, batch)[0])(state.params)
  new, _ = T.train_step(state, batch, jax.random.PRNGKey(0), objective=O.mse(_RNN), optimizer=opt)
  for g, p0, p1 in zip(_leaves(grads), _leaves(state.params), _leaves(new.params)):
    big = np.abs(g) > 1e-4
    np.testing.assert_allclose((p1 - p0)[big], -1e-3 * np.sign(g[big]), rtol=1e-3)


def test_cosine_decay_reaches_zero():
  """With decay_steps=50 the learning rate is 0 from step 50: steps 50..59 change nothing."""
  opt = T.adam(1e-2, decay_steps=50)
  kw = dict(batch_size=4, seed=0, optimizer=opt, log_every=10)
  at_50 = T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=50, **kw)
  at_60 = T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=60, **kw)
  assert _bitwise_equal(at_50.params, at_60.params)
  assert not _bitwise_equal(at_50.params, T.init_state(_RNN, 0, opt).params)


def test_minibatches_are_uniform_subsets_without_replacement():
  """Indices are distinct and every index, and every pair, is equally likely (chi-square)."""
  n, b, draws = 6, 3, 20000
  keys = jax.random.split(jax.random.PRNGKey(0), draws)
  idx = np.asarray(jax.vmap(lambda k: S.minibatch_indices(k, n, b))(keys))
  assert idx.shape == (draws, b) and idx.min() >= 0 and idx.max() < n
  assert all(len(set(row)) == b for row in idx)
  singles = np.bincount(idx.ravel(), minlength=n)
  assert stats.chisquare(singles).pvalue > 1e-4
  subsets = np.sort(idx, axis=1) @ np.array([n * n, n, 1])
  counts = np.unique(subsets, return_counts=True)[1]
  assert len(counts) == 20  # C(6, 3) subsets, all seen
  assert stats.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize("n, b", [(61, 1), (40, S.FLOYD_MAX_BATCH), (40, S.FLOYD_MAX_BATCH + 1),
                                  (S.FLOYD_MAX_N, 2)])
def test_minibatch_indices_are_distinct_and_uniform_on_both_paths(n, b):
  """Floyd's draw (b <= 32, n <= 2^16, at both limits) and top_k's (b = 33): distinct, in range,
  and each index equally likely (chi-square; for n = 2^16, over the first 64 indices)."""
  draws = 4000
  keys = jax.random.split(jax.random.PRNGKey(1), draws)
  idx = np.asarray(jax.jit(jax.vmap(lambda k: S.minibatch_indices(k, n, b)))(keys))
  assert idx.shape == (draws, b) and idx.dtype == np.int32
  assert idx.min() >= 0 and idx.max() < n
  assert (np.diff(np.sort(idx, axis=1), axis=1) > 0).all()
  if n > 1000:  # 8000 draws over 65,536 indices: the first 64 and the rest
    low = np.bincount(idx.ravel(), minlength=n)[:64]
    assert stats.chisquare(np.append(low, 2 * draws - low.sum()),
                           np.append(np.full(64, 2 * draws / n), 2 * draws * (1 - 64 / n))).pvalue > 1e-4
    return
  assert stats.chisquare(np.bincount(idx.ravel(), minlength=n)).pvalue > 1e-4


def test_scaled_bits_equal_exact_integer_arithmetic():
  """Floyd's index floor(u m / 2^32), computed in uint32, against NumPy's uint64 product."""
  rng = np.random.default_rng(0)
  u = np.concatenate([rng.integers(0, 2**32, 5000, dtype=np.uint64), np.array([0, 1, 2**32 - 1, 2**31], np.uint64)])
  m = np.concatenate([rng.integers(1, 2**16 + 1, 5000, dtype=np.uint64), np.array([1, 2**16, 2**16, 7], np.uint64)])
  got = np.asarray(S._scale_bits(jnp.asarray(u, jnp.uint32), jnp.asarray(m, jnp.uint32)))
  np.testing.assert_array_equal(got, (u * m) >> 32)


def test_training_reduces_the_loss():
  """The RNN's MSE over its last 50 of 400 steps is below a fifth of its first 10 (0.92 -> 0.035)."""
  run = T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=400, batch_size=4, log_every=400)
  assert run.history["loss"][-50:].mean() < 0.2 * run.history["loss"][:10].mean()
  assert set(run.history) == {"loss", "mse"}


def test_float64_training():
  """dtype=float64 under x64 gives float64 parameters throughout."""
  with jax.enable_x64(True):
    run = T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=5, batch_size=2, dtype=jnp.float64)
    assert all(l.dtype == np.float64 for l in _leaves(run.params))


def test_callback_may_keep_its_state():
  """The state a callback gets stays readable after the next chunk (which is given, and
  deletes, the engine's own copy) and equals a run that stops there."""
  kept = []
  T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=25, batch_size=2, log_every=10,
        callback=lambda state, terms, s: kept.append(state))
  assert [int(s.step) for s in kept] == [10, 20, 25]
  assert _bitwise_equal(kept[0], T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=10, batch_size=2).state)


def test_a_zero_dimensional_seed_array_is_its_value():
  """seed=np.array(3) or jnp.array(3) trains the model of seed=3."""
  want = T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=5, batch_size=2, seed=3).state
  for seed in (np.array(3), jnp.array(3)):
    assert _bitwise_equal(T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=5, batch_size=2, seed=seed).state, want)


def test_callback_sees_every_chunk():
  """The callback is called once per chunk, with the chunk's terms."""
  seen = []
  T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=25, batch_size=2, log_every=10,
        callback=lambda state, terms, s: seen.append((int(state.step), terms["loss"].shape)))
  assert seen == [(10, (10,)), (20, (10,)), (25, (5,))]


_BAD = [
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=2.5), ValueError, "steps"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=62), ValueError, "batch_size"),
    (dict(log_every=0), ValueError, "log_every"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=[]), ValueError, "seed"),
    (dict(seed=[0, -2]), ValueError, r"seed\[1\]"),
    (dict(data={"x": _X, "y": _Y[:-1]}), ValueError, "same length"),
    (dict(data={"x": _X.astype(np.int32), "y": _Y}), TypeError, r"data\['x'\]"),
    (dict(data={"x": np.where(_X > 0.99, np.nan, _X), "y": _Y}), ValueError, r"data\['x'\]"),
    (dict(data={"x": _X[:0], "y": _Y[:0]}), ValueError, r"data\['x'\]"),
    (dict(data={}), ValueError, "data"),
    (dict(objective=None), TypeError, "objective"),
    (dict(optimizer="adam"), TypeError, "optimizer"),
    (dict(callback=1), TypeError, "callback"),
    (dict(state=object()), TypeError, "state"),
    (dict(state=T.init_state(M.rnn(hidden=5), 0, T.adam())), ValueError, r"state\.params\['U'\]"),
    (dict(state=T.init_state(_RNN, [0, 1], T.adam())), ValueError, r"state\.step must have shape \(\)"),
    (dict(state=T.init_state(_RNN, 0, optax.sgd(1e-3))), ValueError, "state must hold"),
    (dict(objective=lambda p, b, k: (jnp.mean((_RNN.apply(p, b["x"]) - b["y"]) ** 2),
                                     {"per_dim": jnp.mean(b["y"] ** 2, 0)})),
     ValueError, "term 'per_dim' must be a scalar"),
]


@pytest.mark.parametrize("override,error,match", _BAD)
def test_bad_arguments_fail_before_compiling(override, error, match):
  """Each bad argument raises a clear error naming it, and nothing is compiled."""
  kw = dict(model=_RNN, objective=O.mse(_RNN), data=_RNN_DATA, steps=10, batch_size=2, seed=0)
  kw.update(override)
  before = T._chunk._cache_size()
  with pytest.raises(error, match=match):
    T.fit(**kw)
  assert T._chunk._cache_size() == before


@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan"), "1e-3"])
def test_bad_learning_rate(lr):
  """A learning rate that is not a positive number is refused, naming learning_rate."""
  with pytest.raises(ValueError, match="learning_rate"):
    T.adam(lr)


def test_custom_optax_optimizer():
  """Any Optax optimizer works: plain SGD with lr 0 leaves the parameters unchanged."""
  run = T.fit(_RNN, O.mse(_RNN), _RNN_DATA, steps=5, batch_size=2, optimizer=optax.sgd(0.0))
  assert _bitwise_equal(run.params, T.init_state(_RNN, 0, optax.sgd(0.0)).params)


def test_jaxpr_bytes_count_every_value_made():
  """Against a hand count: sin and mul of [10] float32 make 40 bytes each; a scan of 3 steps
  makes its carry (40) and stacked outputs (3 x 40), and its body one product (40)."""
  x = jnp.ones(10, jnp.float32)
  assert groups.jaxpr_bytes(jax.make_jaxpr(lambda x: jnp.sin(x) * 2)(x).jaxpr) == 80
  scan = lambda x: jax.lax.scan(lambda c, _: (c * 2, c), x, None, length=3)
  assert groups.jaxpr_bytes(jax.make_jaxpr(scan)(x).jaxpr) == 40 + 120 + 40


def _one_member_bytes(objective, state, batch, dtype=jnp.float32):
  leaves, treedef = jax.tree.flatten(state.params)
  return groups.step_bytes(objective, treedef,
                       tuple(jax.ShapeDtypeStruct(a.shape[1:], a.dtype) for a in leaves),
                       tuple((k, jax.ShapeDtypeStruct(v, dtype)) for k, v in batch.items()))


_ON_CPU = pytest.mark.skipif(jax.default_backend() != "cpu", reason="member groups are the CPU's")


@_ON_CPU
def test_member_group_is_the_largest_divisor_within_the_budget(monkeypatch):
  state = T.init_state(_VAE, list(range(12)), T.adam())
  objective = O.neg_elbo(_VAE)
  per_member = _one_member_bytes(objective, state, {"y": (50, 2)})
  assert per_member > 50 * 2 * 4  # at least the batch's own values
  cpu = jax.devices()[0]
  member_data = {"y": np.broadcast_to(_RING, (12, *_RING.shape))}
  for budget, devices, data, want in [
      (12, None, None, None), (3.5, None, None, 3), (5.5, None, None, 4), (0.5, None, None, 1),
      (5.5, None, member_data, 4), (7, [cpu, cpu], None, 3), (5, [cpu, cpu], None, 2),
      (0.5, [types.SimpleNamespace(platform="gpu")], None, None)]:
    monkeypatch.setattr(groups, "MEMBER_GROUP_BYTES", budget * per_member)
    got = T.member_group(objective, state, data or {"y": _RING}, 50, devices=devices,
                         member_data=data is not None)
    assert got == want, (budget, devices, data is not None)
  assert T.member_group(objective, T.init_state(_VAE, 0, T.adam()), {"y": _RING}, 50) is None


@_ON_CPU
def test_member_groups_train_the_same_members_in_order(monkeypatch):
  """Four members run two at a time equal them run at once, member by member, to float32
  rounding (the batched matmuls may round differently); the memory estimate follows the groups,
  counting the data in the dtype fit casts it to."""
  seeds = [1, 3, 5, 7]
  whole = _fit_vae(seed=seeds)
  estimate = lambda **kw: resources.estimate(_VAE, O.neg_elbo(_VAE), {"y": _RING}, steps=120,
                                             batch_size=50, seed=seeds, **kw).host["chunk"]
  at_once = estimate()
  state = T.init_state(_VAE, seeds, T.adam())
  monkeypatch.setattr(groups, "MEMBER_GROUP_BYTES",
                      2 * _one_member_bytes(O.neg_elbo(_VAE), state, {"y": (50, 2)}))
  assert T.member_group(O.neg_elbo(_VAE), state, {"y": _RING}, 50) == 2
  cache = T._chunk_ensemble._cache_size()
  grouped = _fit_vae(seed=seeds)
  assert T._chunk_ensemble._cache_size() == cache + 1  # a program of its own
  for a, b in zip(_leaves(whole.params), _leaves(grouped.params)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grouped.history["loss"], whole.history["loss"], rtol=1e-5)
  assert estimate() < at_once
  seen = []
  chunk_program = T._chunk_program
  monkeypatch.setattr(T, "_chunk_program", lambda *a: (seen.append(a[-1]), chunk_program(*a))[1])
  # fit casts the float32 data to bfloat16, and the estimate must count the same batches
  half = T.init_state(_VAE, seeds, T.adam(), jnp.bfloat16)
  monkeypatch.setattr(groups, "MEMBER_GROUP_BYTES", 2 * _one_member_bytes(
      O.neg_elbo(_VAE), half, {"y": (50, 2)}, jnp.bfloat16))
  kw = dict(steps=10, batch_size=50, seed=seeds, log_every=10, dtype=jnp.bfloat16)
  resources.estimate(_VAE, O.neg_elbo(_VAE), {"y": _RING}, compile=False, **kw)
  T.fit(_VAE, O.neg_elbo(_VAE), {"y": _RING}, **kw)
  assert seen == [2, 2]


def test_large_ensembles_draw_in_shorter_blocks_and_train_the_same():
  """An ensemble's draw block is the most steps, a divisor of DRAW_BLOCK, within
  BLOCK_MEMBER_STEPS member-steps of its group (1000 steps for up to 16 members, 250 for 64, one
  for more than the budget); 32 RNNs in blocks of 500 train as in blocks of 1000, to rounding."""
  state = lambda k: types.SimpleNamespace(step=jnp.zeros((k,), jnp.int32))
  assert [T._member_block(state(k), None) for k in (2, 16, 32, 64, 100, 20_000)] == [
      1000, 1000, 500, 250, 125, 1]
  assert T._member_block(state(64), 8) == 1000
  seeds, fits, blocks = list(range(32)), [], []
  member_block = T._member_block
  for budget in (T.BLOCK_MEMBER_STEPS, 10**9):  # blocks of 500 (and a rest of 100); one of 600
    T.BLOCK_MEMBER_STEPS, saved = budget, T.BLOCK_MEMBER_STEPS
    T._member_block = lambda *a: (blocks.append(member_block(*a)), blocks[-1])[1]
    try:
      cache = T._chunk_ensemble._cache_size()  # a fresh optimizer object: traced anew
      fits.append(_fit_rnn(seed=seeds, steps=600, optimizer=optax.adam(1e-3)))
      assert T._chunk_ensemble._cache_size() == cache + 1
    finally:
      T.BLOCK_MEMBER_STEPS, T._member_block = saved, member_block
  assert blocks == [500, 1000]
  for a, b in zip(_leaves(fits[0].state), _leaves(fits[1].state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(fits[0].history["loss"], fits[1].history["loss"], rtol=1e-5,
                             atol=1e-7)
