r"""The tutorial's VAE on a noisy ring: encoder 2-100-50-(2, 2), decoder 2-50-100-(2, 2).

  python -m experiments.vae                       # the tutorial's settings -> runs/vae
  python -m experiments.vae --latent=4 --beta=0.5 --ensemble=4
"""

from absl import app, flags

from experiments import common

common.define_common_flags("vae", steps=5000, batch_size=200, learning_rate=1e-3)
_LATENT = flags.DEFINE_integer("latent", 2, "Latent dimension.")
_ENCODER = flags.DEFINE_list("encoder", ["100", "50"], "Encoder hidden sizes.")
_DECODER = flags.DEFINE_list("decoder", ["50", "100"], "Decoder hidden sizes.")
_N_TRAIN = flags.DEFINE_integer("n_train", 1000, "Training points.")
_BETA = flags.DEFINE_float("beta", 1.0, "Weight of the KL term (1: the ELBO).")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  common.launch("vae", lambda: {"latent": _LATENT.value,
                                "encoder": common.int_list("encoder", _ENCODER.value),
                                "decoder": common.int_list("decoder", _DECODER.value),
                                "n_train": _N_TRAIN.value, "beta": _BETA.value},
                ("latent", "encoder", "decoder", "n_train", "beta"))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
