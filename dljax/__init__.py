"""dljax: the deep-learning tutorial's five probabilistic models in JAX, trained by fused Optax steps."""

from dljax import data, forecast, metrics, models, objectives, train
from dljax.forecast import closed_loop
from dljax.models import cvae, lstm, mlp, rnn, vae
from dljax.train import fit, train_step

__version__ = "0.1.0"
