r"""The tutorial's LSTM: hidden size 4, 10 lags, on sin(pi t); closed-loop forecast.

  python -m experiments.lstm                       # the tutorial's settings -> runs/lstm
  python -m experiments.lstm --lags=20 --hidden=16 --ensemble=4

Trained with Adam at a peak learning rate of 3e-3 and a cosine decay to 0 (--decay); the
tutorial's constant 1e-3 is --learning_rate=1e-3 --nodecay (see BUILD_NOTES.md for why).
"""

from absl import app, flags

from experiments import common

common.define_common_flags("lstm", steps=10_000, batch_size=1, learning_rate=3e-3)
_LAGS = flags.DEFINE_integer("lags", 10, "Lagged values in each input window.")
_HIDDEN = flags.DEFINE_integer("hidden", 4, "Hidden size.")
_DECAY = flags.DEFINE_bool("decay", True, "Cosine decay of the learning rate to 0 over the steps.")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  common.launch("lstm", lambda: {"lags": _LAGS.value, "hidden": _HIDDEN.value,
                                 "decay": _DECAY.value}, ("lags", "hidden", "decay"))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
