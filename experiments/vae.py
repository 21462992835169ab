r"""The tutorial's VAE on a noisy ring: encoder 2-100-50-(2, 2), decoder 2-50-100-(2, 2).

  python -m experiments.vae                       # the tutorial's settings -> runs/vae
  python -m experiments.vae --latent=4 --beta=0.5 --ensemble=4

The flags are ``dljax.examples.prepare_vae``'s arguments (see experiments.common).
"""

from experiments import common

main = common.launcher("vae", __name__)
