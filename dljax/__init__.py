"""dljax: the deep-learning tutorial's five probabilistic models in JAX, trained by fused Optax steps."""

from dljax import checkpoint, data, examples, forecast, metrics, models, objectives, run, train
from dljax.forecast import closed_loop
from dljax.models import cvae, lstm, mlp, rnn, vae
from dljax.train import fit, train_step

__version__ = "0.1.0"
__all__ = ["checkpoint", "closed_loop", "cvae", "data", "examples", "fit", "forecast", "lstm",
           "metrics", "mlp", "models", "objectives", "rnn", "run", "train", "train_step", "vae"]
