r"""The tutorial's neural network: 1-50-50-1 tanh with a learned noise sigma, on x sin(4 pi x).

  python -m experiments.mlp                       # the tutorial's settings -> runs/mlp
  python -m experiments.mlp --ensemble=8 --hidden=64,64
  python -m experiments.mlp --ensemble=8 --x_range=-0.25,1.25   # the spread widens off the data
  # the Deep Ensembles toy (Lakshminarayanan et al. 2017, Figure 1, right): 5 members of 1-100-1
  # with a per-x noise head, adversarial training at the cubic data set's defaults (relu units,
  # eps 0.05; why: BUILD_NOTES.md, Decisions), 4,000 steps of 10 at Adam 1e-3 (the figure's run)
  python -m experiments.mlp --dataset=cubic --hidden=100 --heteroscedastic --adversarial \
      --ensemble=5 --x_range=-6,6 --steps=4000
  # the same with the tutorial's tanh units
  python -m experiments.mlp --dataset=cubic --hidden=100 --heteroscedastic --adversarial \
      --ensemble=5 --x_range=-6,6 --steps=4000 --activation=tanh

The flags are ``dljax.examples.prepare_mlp``'s arguments (see experiments.common).
"""

from experiments import common

main = common.launcher("mlp", __name__)
