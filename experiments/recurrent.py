r"""The tutorial's recurrent networks: hidden size 4 on sin(pi t), then a closed-loop forecast; an
RNN with 5 lags (``python -m experiments.rnn``) and an LSTM with 10 (``experiments.lstm``).

  python -m experiments.rnn                       # the tutorial's settings -> runs/rnn
  python -m experiments.lstm                      # the tutorial's settings -> runs/lstm
  python -m experiments.rnn --lags=20 --hidden=16 --ensemble=4

Trained with Adam at a peak learning rate of 3e-3 and a cosine decay to 0 (--decay); the
tutorial's constant 1e-3 is --learning_rate=1e-3 --nodecay (see BUILD_NOTES.md for why).
"""

from collections.abc import Callable

from experiments import common


def launcher(cell: str, module: str) -> Callable[[list[str]], None]:
  """``common.launcher`` of the ``cell`` example ("rnn" or "lstm"), --lags defaulting to the
  cell's (``dljax.examples.LAGS``)."""
  from dljax import examples  # noqa: PLC0415

  return common.launcher(cell, module, lags=examples.LAGS[cell])
