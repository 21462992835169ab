r"""The tutorial's neural network: 1-50-50-1 tanh with a learned noise sigma, on x sin(4 pi x).

  python -m experiments.mlp                       # the tutorial's settings -> runs/mlp
  python -m experiments.mlp --ensemble=8 --hidden=64,64
  python -m experiments.mlp --ensemble=8 --x_range=-0.25,1.25   # the spread widens off the data
"""

from absl import app, flags

from experiments import common

common.define_common_flags("mlp", steps=10_000, batch_size=10, learning_rate=1e-3)
_HIDDEN = flags.DEFINE_list("hidden", ["50", "50"], "Hidden layer sizes.")
_N_TRAIN = flags.DEFINE_integer("n_train", 100, "Training points (Latin hypercube on [0, 1]).")
_NOISE = flags.DEFINE_float("noise", 0.1, "Standard deviation of the data's noise.")
_X_RANGE = flags.DEFINE_list("x_range", ["0", "1"], "Interval of the test inputs and the figure "
                             "(e.g. -0.25,1.25 to see the predictive widen beyond the data).")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  common.launch("mlp", lambda: {"hidden": common.int_list("hidden", _HIDDEN.value),
                                "n_train": _N_TRAIN.value, "noise": _NOISE.value,
                                "x_range": common.float_list("x_range", _X_RANGE.value)},
                ("hidden", "n_train", "noise", "x_range"))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
