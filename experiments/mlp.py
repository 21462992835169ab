r"""The tutorial's neural network: 1-50-50-1 tanh with a learned noise sigma, on x sin(4 pi x).

  python -m experiments.mlp                       # the tutorial's settings -> runs/mlp
  python -m experiments.mlp --ensemble=8 --hidden=64,64
  python -m experiments.mlp --ensemble=8 --x_range=-0.25,1.25   # the spread widens off the data
  # the Deep Ensembles toy (Lakshminarayanan et al. 2017, Figure 1, right): 5 members of 1-100-1
  # with a per-x noise head, adversarial training; cubic's defaults: --activation=relu (the
  # paper's units; tanh units extrapolate flat and the members agree off the data) and
  # --adversarial_epsilon=0.05 (the paper's 0.01 leaves the relu ensemble overconfident: its 90%
  # intervals hold 52-57% of fresh draws); 4,000 steps of 10 at Adam 1e-3 (the figure's run)
  python -m experiments.mlp --dataset=cubic --hidden=100 --heteroscedastic --adversarial \
      --ensemble=5 --x_range=-6,6 --steps=4000
  # the same with the tutorial's tanh units
  python -m experiments.mlp --dataset=cubic --hidden=100 --heteroscedastic --adversarial \
      --ensemble=5 --x_range=-6,6 --steps=4000 --activation=tanh
"""

from absl import app, flags

from experiments import common

common.define_common_flags("mlp", steps=10_000, batch_size=10, learning_rate=1e-3)
_DATASET = flags.DEFINE_string("dataset", "wiggle", "wiggle: the tutorial's x sin(4 pi x) + 0.1 "
                               "eps, 100 points on [0, 1]; cubic: the Deep Ensembles toy x^3 + 3 "
                               "eps, 20 points x ~ U[-4, 4], plotted on [-6, 6].")
_HIDDEN = flags.DEFINE_list("hidden", ["50", "50"], "Hidden layer sizes.")
_N_TRAIN = flags.DEFINE_integer("n_train", None, "Training points (default: the data set's, "
                                "100 for wiggle, 20 for cubic).")
_NOISE = flags.DEFINE_float("noise", None, "Standard deviation of the data's noise (default: "
                            "the data set's, 0.1 for wiggle, 3 for cubic).")
_X_RANGE = flags.DEFINE_list("x_range", None, "Interval of the test inputs and the figure "
                             "(default: 0,1 for wiggle, -6,6 for cubic; e.g. -0.25,1.25 to see "
                             "the predictive widen beyond the data).")
_HETEROSCEDASTIC = flags.DEFINE_bool("heteroscedastic", False, "A per-x noise head log sigma(x) "
                                     "instead of one learned sigma (Deep Ensembles).")
_ADVERSARIAL = flags.DEFINE_bool("adversarial", False, "Adversarial training by the fast "
                                 "gradient sign method: loss(x) + loss(x + eps sign(grad_x)).")
_ADVERSARIAL_EPSILON = flags.DEFINE_float("adversarial_epsilon", None, "eps of --adversarial as "
                                          "a fraction of the training inputs' range (default: "
                                          "the data set's, 0.01 for wiggle, 0.05 for cubic).")
_ACTIVATION = flags.DEFINE_string("activation", None, "Hidden units, tanh or relu (default: the "
                                  "data set's, tanh for wiggle as in the tutorial, relu for cubic "
                                  "as in the Deep Ensembles paper).")
MODEL_FLAGS = ("dataset", "hidden", "n_train", "noise", "x_range", "heteroscedastic",
               "adversarial", "adversarial_epsilon", "activation")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  x_range = _X_RANGE.value
  common.launch("mlp", lambda: {"dataset": _DATASET.value,
                                "hidden": common.int_list("hidden", _HIDDEN.value),
                                "n_train": _N_TRAIN.value, "noise": _NOISE.value,
                                "x_range": x_range and common.float_list("x_range", x_range),
                                "heteroscedastic": _HETEROSCEDASTIC.value,
                                "adversarial": _ADVERSARIAL.value,
                                "adversarial_epsilon": _ADVERSARIAL_EPSILON.value,
                                "activation": _ACTIVATION.value},
                MODEL_FLAGS)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
