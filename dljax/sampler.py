"""Minibatches drawn on the device: ``batch_size`` distinct row indices, a uniform random subset.

Small batches use Floyd's algorithm, larger ones ``top_k`` of n uniforms; BUILD_NOTES.md
(Decisions: the minibatch sampler) says why and what was measured. ``epoch_indices`` draws by
epochs instead: each a random permutation of the rows, cut into consecutive batches.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dljax import checks

Array = jax.Array

# Floyd's loop below is unrolled: its comparisons grow as batch_size^2 / 2, and its index
# arithmetic is exact in 32 bits for n up to 2^16.
FLOYD_MAX_BATCH = 32
FLOYD_MAX_N = 1 << 16


def minibatch_indices(key: Array, n: int, batch_size: int) -> Array:
  """``batch_size`` distinct indices in [0, n), a uniformly random subset, int32 [batch_size].

  For ``batch_size <= 32`` and ``n <= 65536``, Floyd's algorithm (Bentley and Floyd, 1987): for
  j = n - b, ..., n - 1 draw t uniformly from {0, ..., j} and keep t, or j if t is already kept.
  Every b-subset is equally likely; the order within it is not uniform, which the objectives (a
  mean over the minibatch) do not see. Otherwise the b largest of n i.i.d. uniforms (``top_k``).
  """
  n, batch_size = checks.integer("n", n), checks.integer("batch_size", batch_size)
  if batch_size > n:
    checks.fail("batch_size", f"be at most n ({n})", batch_size)
  if batch_size == n:
    return jnp.arange(n, dtype=jnp.int32)
  if batch_size <= FLOYD_MAX_BATCH and n <= FLOYD_MAX_N:
    return _floyd(key, n, batch_size)
  return jax.lax.top_k(jax.random.uniform(key, (n,)), batch_size)[1]


def draws_indices(n: int, batch_size: int) -> bool:
  """Whether a block of steps can draw its indices ahead (Floyd's few words per step): not for
  ``top_k``, whose [block, n] uniforms would be large, nor for the whole data set."""
  return batch_size < n and batch_size <= FLOYD_MAX_BATCH and n <= FLOYD_MAX_N


def _scale_bits(u: Array, m: Array) -> Array:
  """floor(u m / 2^32) for uint32 words u and 1 <= m <= 2^16, in uint32 arithmetic.

  With u = hi 2^16 + lo: floor(u m / 2^32) = floor((hi m + floor(lo m / 2^16)) / 2^16), and
  m <= 2^16 keeps hi m + floor(lo m / 2^16) below 2^32 (Lemire's multiply-shift).
  """
  return ((u >> 16) * m + (((u & 0xFFFF) * m) >> 16)) >> 16


def _floyd(key: Array, n: int, b: int) -> Array:
  j = jnp.arange(n - b, n, dtype=jnp.uint32)
  t = _scale_bits(jax.random.bits(key, (b,), jnp.uint32), j + 1)  # uniform on {0, ..., j}
  kept = [t[0]]
  for i in range(1, b):
    taken = jnp.any(jnp.stack(kept) == t[i])
    kept.append(jnp.where(taken, j[i], t[i]))
  return jnp.stack(kept).astype(jnp.int32)


EPOCHS_TAG = 0xFFFFFFFF  # fold_in(train_key, EPOCHS_TAG): the epochs' key (steps are int32 < it)


def epoch_indices(key: Array, first_step: Array, steps: int, n: int, batch_size: int) -> Array:
  """Steps ``first_step, ..., first_step + steps - 1``'s rows [steps, batch_size], by epochs.

  The rows form a stream of epochs, epoch e a permutation of [0, n) (the argsort of n random
  32-bit words from fold_in(key, e), by ``argsort_words``); step t takes the stream's positions
  p = t b, ..., t b + b - 1, i.e. row perm_{p // n}[p mod n]. So every row is seen once per
  epoch of n / b steps; a batch that straddles two epochs may hold a row twice. The epochs these
  steps touch are drawn once, at most ceil(steps b / n) + 1 sorts of n for the block instead of
  an n-wide ``top_k`` per step. Positions are int32: steps t < 2^31 / b.
  """
  p0 = first_step.astype(jnp.int32) * batch_size
  positions = p0 + jnp.arange(steps * batch_size, dtype=jnp.int32).reshape(steps, batch_size)
  e0 = p0 // n
  touched = -(-steps * batch_size // n) + 1
  words = lambda e: jax.random.bits(jax.random.fold_in(key, e), (n,), jnp.uint32)
  perms = jax.vmap(argsort_words)(jax.vmap(words)(e0 + jnp.arange(touched)))
  return perms[positions // n - e0, positions % n]


PACKED_MAX_N = 1 << 16  # argsort_words packs a row index into the low bits of each word


def argsort_words(words: Array) -> Array:
  """``jnp.argsort(words)`` (stable) of uint32 words [n], int32; for random words, at about the
  cost of one plain sort.

  XLA's CPU sort of one operand is about 5x faster than the key-value sort an argsort is
  (BUILD_NOTES.md). So each word's low ceil(log2 n) bits are replaced by its row index and the
  packed words are sorted alone: that orders the rows by their words' high bits, then by index.
  Rows whose high bits tie (for random words about n^2 / 2^(33 - ceil(log2 n)) pairs, in short
  runs) are put in argsort's order, by (word, index): each pair out of order with its other
  neighbours in order is swapped in one pass (a run of two, nearly every tie), then odd-even
  transposition passes run until none is out of order (for random words, none: one check);
  words sharing their high bits in long runs would need up to n passes.
  For n > 2^16 the high bits are too few, and this is ``jnp.argsort``.
  """
  n = words.shape[0]
  if n > PACKED_MAX_N:
    return jnp.argsort(words).astype(jnp.int32)
  low = (1 << max(1, (n - 1).bit_length())) - 1
  rows = jnp.sort((words & ~jnp.uint32(low)) | jnp.arange(n, dtype=jnp.uint32)) & low
  rows = rows.astype(jnp.int32)
  ties = lambda wr: jnp.any(_after(*wr, slice(None, -1), slice(1, None)))
  return jax.lax.while_loop(ties, _transpositions, _swap_pairs(words[rows], rows))[1]


def _swap_pairs(w, r):
  """(w, r) with each neighbour pair out of order swapped where the pairs beside it are in order
  (so that no row takes part in two swaps)."""
  no = jnp.zeros(1, bool)
  out = jnp.concatenate([no, _after(w, r, slice(None, -1), slice(1, None)), no, no])
  back, ahead = out[:-2], out[1:-1]  # row i out of order with row i - 1, with row i + 1
  first = ahead & ~back & ~out[2:]  # out[2:]: row i + 1 out of order with row i + 2
  second = back & ~ahead & ~jnp.concatenate([no, out[:-3]])
  move = lambda a: jnp.where(first, jnp.roll(a, -1), jnp.where(second, jnp.roll(a, 1), a))
  return move(w), move(r)


def _after(w, r, a, b):
  """Whether (w[a], r[a]) comes after (w[b], r[b]) in argsort's order."""
  return (w[a] > w[b]) | ((w[a] == w[b]) & (r[a] > r[b]))


def _transpositions(wr):
  """One even and one odd pass of odd-even transposition sort of (word, row) pairs."""
  for start in (0, 1):
    w, r = wr
    m = (w.shape[0] - start) // 2 * 2  # the pass compares (start, start + 1), (start + 2, ...)
    pair = lambda a: a[start:start + m].reshape(-1, 2)
    pw, pr = pair(w), pair(r)
    moves = _after(pw, pr, (slice(None), 0), (slice(None), 1))[:, None]
    swapped = lambda p: jnp.where(moves, p[:, ::-1], p).reshape(-1)
    wr = tuple(jnp.concatenate([a[:start], swapped(p), a[start + m:]])
               for a, p in ((w, pw), (r, pr)))
  return wr
