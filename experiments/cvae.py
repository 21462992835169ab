r"""The tutorial's conditional VAE on a noisy step: latent 2, prior, encoder and decoder 50-50.

  python -m experiments.cvae                      # the tutorial's settings -> runs/cvae
  python -m experiments.cvae --variant=standard --ensemble=4

The flags are ``dljax.examples.prepare_cvae``'s arguments (see experiments.common).
"""

from experiments import common

main = common.launcher("cvae", __name__)
