"""python -m experiments.rnn: the tutorial's RNN, 5 lags (usage: experiments/recurrent.py)."""
from experiments import recurrent

main = recurrent.launcher("rnn", __name__)
