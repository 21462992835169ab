"""The figures of runs on the user's own data (--data), in the data's original units (PNG)."""

from __future__ import annotations

import numpy as np


def mlp(pred: dict[str, np.ndarray], path: str) -> None:
  """Predicted against observed on the test rows with 90% intervals (first output), and the
  calibration panel: observed coverage of the central intervals against their nominal level."""
  plt = figures.plt
  panels = 2 if "calibration" in pred else 1
  fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.6), squeeze=False)
  ax = axes[0, 0]
  y, mean = pred["y_test"][:, 0], pred["y_mean"][:, 0]
  low, high = pred["y_low_90"][:, 0], pred["y_high_90"][:, 0]
  ax.errorbar(y, mean, yerr=[mean - low, high - mean], fmt="o", ms=3, lw=0.8, alpha=0.6,
              label="prediction, 90% interval")
  span = [min(y.min(), low.min()), max(y.max(), high.max())]
  ax.plot(span, span, "k--", lw=1, label="observed = predicted")
  rows = "test" if "calibration" in pred else "training (no test rows)"
  ax.set_xlabel(f"observed ({len(y)} {rows} rows)")
  ax.set_ylabel("predicted")
  ax.legend(loc="upper left", fontsize=9)
  if panels == 2:
    ax = axes[0, 1]
    levels = pred["calibration_levels"]
    ax.plot(levels, pred["calibration"], "o-", label="observed")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="ideal")
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage")
    ax.legend(loc="upper left", fontsize=9)
  figures._save(fig, path)


def _bands(ax, t: np.ndarray, pred: dict[str, np.ndarray]) -> None:
  """The 90% bands of a Gaussian model's one-step predictions and forecast, else the forecast
  members' mean +- 2 std (an ensemble trained with MSE)."""
  if "one_step_low_90" in pred:
    ax.fill_between(t, pred["one_step_low_90"][:, 0], pred["one_step_high_90"][:, 0],
                    color="green", alpha=0.15, lw=0, label="one step: 90% band")
  if "forecast_low_90" in pred:
    ax.fill_between(t, pred["forecast_low_90"][:, 0], pred["forecast_high_90"][:, 0],
                    color="red", alpha=0.2, lw=0, label="90% band (predicted variance)")
  elif "forecast_members" in pred:
    m = pred["forecast_members"][..., 0]
    ax.fill_between(t, m.mean(0) - 2 * m.std(0), m.mean(0) + 2 * m.std(0), color="red",
                    alpha=0.2, lw=0, label="members: mean $\\pm$ 2 std")


def recurrent(pred: dict[str, np.ndarray], path: str) -> None:
  """The end of the training series, the held-out span, and the closed-loop forecast and the
  one-step predictions, with their 90% bands (Gaussian model) or the forecast members' mean
  +- 2 std (an ensemble)."""
  plt = figures.plt
  train, test = pred["series_train"][:, 0], pred["series_test"][:, 0]
  shown = train[-max(len(test), 20):]
  t0 = np.arange(-len(shown), 0)
  t1 = np.arange(len(test))
  fig, ax = plt.subplots(figsize=(6.4, 4.8))
  ax.plot(t0, shown, "b-", lw=1.5, label="training series")
  if len(test):
    ax.plot(t1, test, "k-", lw=1.5, label="held out")
    ax.plot(t1, pred["forecast"][:, 0], "r--", lw=2, label="closed-loop forecast")
    ax.plot(t1, pred["one_step"][:, 0], "g:", lw=1.5, label="one step ahead")
    _bands(ax, t1, pred)
  ax.axvline(0, color="k", ls="--", lw=1)
  ax.set_xlabel("$t$ (0: the first held-out point)")
  ax.set_ylabel("$y_t$")
  ax.legend(loc="best", fontsize=9)
  figures._save(fig, path)


def _pairs(data: np.ndarray, samples: np.ndarray, path: str, names: tuple[str, str],
           data_title: str) -> None:
  """Data beside samples, their first two columns."""
  plt = figures.plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
  for ax, points, title, color in ((axes[0], data, data_title, "blue"),
                                   (axes[1], samples, "samples", "red")):
    ax.scatter(points[:, 0], points[:, 1], s=6, color=color, alpha=0.6)
    ax.set_title(f"{title} ({len(points)})")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
  figures._save(fig, path)


def vae(pred: dict[str, np.ndarray], path: str) -> None:
  """The first two columns of the data beside those of decoder means of draws z ~ N(0, I)."""
  y, s = pred.get("y_test", pred["y_train"]), pred["sample_means"]
  if y.shape[1] == 1:  # one column: against its index
    y, s = (np.column_stack([np.arange(len(a)), a[:, 0]]) for a in (y, s))
  _pairs(y, s, path, ("column 1", "column 2"), "test rows" if "y_test" in pred else "training")


def cvae(pred: dict[str, np.ndarray], path: str) -> None:
  """(first feature, first target) of the test rows beside draws of y | x at the same x."""
  x, y, draws = pred["x_test"][:, 0], pred["y_test"][:, 0], pred["samples"][..., 0]
  samples = np.column_stack([np.broadcast_to(x, draws.shape).ravel(), draws.ravel()])
  _pairs(np.column_stack([x, y]), samples, path, ("x (first feature)", "y (first target)"),
         "rows")


FIGURES = {"mlp_data": mlp, "rnn_data": recurrent, "lstm_data": recurrent, "vae_data": vae,
           "cvae_data": cvae}

# Last, so that importing this module first works too: figures.py imports it at its end and
# reads FIGURES, and the functions above only use figures.plt and figures._save when called.
from experiments import figures  # noqa: E402
