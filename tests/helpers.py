"""Small helpers shared by several test modules (imported as ``helpers``: pytest puts tests/ on
the path)."""

from dljax import models as M
from dljax import objectives as O


def objective_for(model):
  """The objective each of the tutorial's models trains on: Gaussian NLL for the network, MSE for
  the recurrent ones, the negative ELBO for the VAEs."""
  if isinstance(model, M.MLP):
    return O.gaussian_nll(model)
  if isinstance(model, (M.RNN, M.LSTM)):
    return O.mse(model)
  return O.neg_elbo(model)
