"""python -m experiments.lstm: the tutorial's LSTM, 10 lags (usage: experiments/recurrent.py)."""
from experiments import recurrent

main = recurrent.launcher("lstm", __name__)
