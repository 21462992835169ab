"""dljax: the deep-learning tutorial's five probabilistic models in JAX, trained by fused Optax steps."""

from dljax import xla_flags

xla_flags.configure()  # before JAX starts a backend: XLA reads its flags then (see xla_flags)

from dljax import (checkpoint, data, examples, forecast, interop, metrics,  # noqa: E402
                   models, objectives, run, train)
from dljax.forecast import closed_loop
from dljax.interop import linen, nnx  # Flax front-ends; flax itself is imported when first used
from dljax.models import cvae, lstm, mlp, rnn, vae
from dljax.train import fit, train_step

__version__ = "0.1.0"
__all__ = ["checkpoint", "closed_loop", "cvae", "data", "examples", "fit", "forecast", "interop",
           "linen", "lstm", "metrics", "mlp", "models", "nnx", "objectives", "rnn", "run", "train",
           "train_step", "vae"]
