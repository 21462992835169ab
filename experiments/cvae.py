r"""The tutorial's conditional VAE on a noisy step: latent 2, prior, encoder and decoder 50-50.

  python -m experiments.cvae                      # the tutorial's settings -> runs/cvae
  python -m experiments.cvae --variant=standard --ensemble=4
"""

from absl import app, flags

from experiments import common

common.define_common_flags("cvae", steps=5000, batch_size=5, learning_rate=1e-3)
_VARIANT = flags.DEFINE_string("variant", "tutorial", "'tutorial' (q(z|y), p(y|z)) or 'standard' "
                               "(q(z|x,y), p(y|x,z), Sohn et al. 2015).")
_LATENT = flags.DEFINE_integer("latent", 2, "Latent dimension.")
_HIDDEN = flags.DEFINE_list("hidden", ["50", "50"], "Hidden sizes of the prior, encoder, decoder.")
_N_TRAIN = flags.DEFINE_integer("n_train", 100, "Training points (Latin hypercube on [0, 1]).")
_NOISE = flags.DEFINE_float("noise", 0.1, "Standard deviation of the data's noise.")
_BETA = flags.DEFINE_float("beta", 1.0, "Weight of the KL term (1: the ELBO).")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  common.launch("cvae", lambda: {"variant": _VARIANT.value, "latent": _LATENT.value,
                                 "hidden": common.int_list("hidden", _HIDDEN.value),
                                 "n_train": _N_TRAIN.value, "noise": _NOISE.value,
                                 "beta": _BETA.value},
                ("variant", "latent", "hidden", "n_train", "noise", "beta"))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
