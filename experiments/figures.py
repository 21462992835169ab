"""The tutorial's five figures, and training curves, drawn from a run's predictions (PNG)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str) -> None:
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def mlp(pred: dict[str, np.ndarray], path: str) -> None:
  """Training data, the true f(x), the predictive (mixture) mean and a +-2 std band, on x_test.

  The y axis shows the truth, the data and the mean with a margin of a quarter of their span;
  a band wider than that is cut at the frame (a heteroscedastic noise head can grow without
  bound away from the data).
  """
  fig, ax = plt.subplots(figsize=(6.4, 4.8))
  x, mean, std = pred["x_test"][:, 0], pred["y_mean"][:, 0], pred["y_std"][:, 0]
  members = "y_mean_members" in pred
  noise = "per-x noise" if pred["sigma"].ndim > 1 else "learned noise"  # [N, R] or [R]
  label = f"mean $\\pm$ 2 std ({noise} + members)" if members else f"mean $\\pm$ 2 std ({noise})"
  lo, hi = mean - 2 * std, mean + 2 * std
  ax.fill_between(x, lo, hi, color="red", alpha=0.15, lw=0, label=label)
  ax.plot(x, pred["y_true"][:, 0], "b-", lw=2, label="$f(x)$")
  ax.plot(x, mean, "r--", lw=2.5, label="prediction")
  ax.scatter(pred["x_train"][:, 0], pred["y_train"][:, 0], s=18, zorder=3,
             label=f"{len(pred['x_train'])} training data")
  shown = np.concatenate([pred["y_true"][:, 0], pred["y_train"][:, 0], mean])
  pad = 0.25 * (shown.max() - shown.min())
  bottom = max(min(lo.min(), shown.min()), shown.min() - pad)
  top = min(max(hi.max(), shown.max()), shown.max() + pad)
  ax.set_ylim(bottom - 0.05 * (top - bottom), top + 0.05 * (top - bottom))
  ax.set_xlabel("$x$")
  ax.set_ylabel("$f(x)$")
  ax.legend(loc="best", fontsize=9)
  _save(fig, path)


def recurrent(pred: dict[str, np.ndarray], path: str) -> None:
  """The series, the closed-loop forecast, and a dashed line where the training windows end;
  the forecast's 90% band for a Gaussian model, else the members' mean +- 2 std (ensemble)."""
  series, fc = pred["series"][:, 0], pred["forecast"][:, 0]
  lags = len(series) - len(fc)
  t = np.arange(len(fc))
  fig, ax = plt.subplots(figsize=(6.4, 4.8))
  if "forecast_low_90" in pred:  # a Gaussian model: its (mixture's) central 90% interval
    lo, hi = pred["forecast_low_90"][:, 0], pred["forecast_high_90"][:, 0]
    ax.fill_between(t, lo, hi, color="red", alpha=0.2, lw=0, label="90% band (predicted variance)")
  elif "forecast_members" in pred:
    m = pred["forecast_members"][..., 0]
    lo, hi = fc - 2 * m.std(0), fc + 2 * m.std(0)
    ax.fill_between(t, lo, hi, color="red", alpha=0.2, lw=0, label="members: mean $\\pm$ 2 std")
  ax.plot(t, series[lags:], "b-", lw=2, label="Exact")
  ax.plot(t, fc, "r--", lw=2.5, label="Prediction (closed loop)")
  n_windows = int(pred["n_train_windows"])
  ax.axvline(n_windows, color="k", ls="--", lw=2)
  ax.text(n_windows + 1, 1.55, "training windows end", fontsize=8, va="top")
  ax.set_ylim(-1.8, 1.8)
  ax.set_xlabel("$t$")
  ax.set_ylabel("$y_t$")
  ax.legend(loc="lower left", fontsize=9)
  _save(fig, path)


def vae(pred: dict[str, np.ndarray], path: str) -> None:
  """Training data beside the decoder means of 1000 draws z ~ N(0, I)."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
  y, s = pred["y_train"], pred["sample_means"]
  axes[0].scatter(y[:, 0], y[:, 1], s=8, color="blue")
  axes[0].set_title(f"Training data ({len(y)})")
  axes[1].scatter(s[:, 0], s[:, 1], s=8, color="red")
  pooled = " (pooled over members)" if "sample_means_members" in pred else ""
  axes[1].set_title(f"Generated samples: decoder means{pooled}")
  for ax in axes:
    ax.set_xlabel("$y_1$")
    ax.set_ylabel("$y_2$")
    ax.set_aspect("equal")
  _save(fig, path)


def cvae(pred: dict[str, np.ndarray], path: str) -> None:
  """Training data and 100 conditional curves (one shared noise draw each), with their mean."""
  fig, ax = plt.subplots(figsize=(6.4, 4.8))
  x, curves = pred["x_test"][:, 0], pred["sample_means"][..., 0]
  colors = plt.cm.tab10(np.arange(len(curves)) % 10)
  for c, color in zip(curves, colors):
    ax.plot(x, c, color=color, lw=1, alpha=0.7)
  ax.plot(x, pred["y_true"][:, 0], "k-", lw=1.5, label="truth")
  ax.plot(x, curves.mean(0), "k--", lw=2, label=f"mean of {len(curves)} curves")
  ax.scatter(pred["x_train"][:, 0], pred["y_train"][:, 0], s=18, zorder=3, color="C0",
             edgecolor="k", label=f"{len(pred['x_train'])} training data")
  ax.set_xlabel("$x$")
  ax.set_ylabel("$f(x)$")
  ax.legend(loc="upper left", fontsize=9)
  _save(fig, path)


FIGURES = {"mlp": mlp, "rnn": recurrent, "lstm": recurrent, "vae": vae, "cvae": cvae}


def _buckets(v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Split a per-step series into at most n equal buckets: (last step, 10th percentile, mean,
  90th percentile) of each."""
  size = max(1, len(v) // n)
  m = len(v) // size * size
  b = v[:m].reshape(-1, size)
  steps = np.arange(size, m + 1, size)
  lo, hi = np.percentile(b, [10, 90], axis=1)
  return steps, lo, b.mean(1), hi


def loss_curves(history: dict[str, np.ndarray], path: str, title: str = "") -> None:
  """Every loss term against the step: the 10-90% range of the per-step values in each of ~400
  buckets (faint band) and their mean (line); one band and line per ensemble member. A term
  equal to the loss at every step (the MSE objective's ``mse``) shares the loss's panel."""
  same = [k for k in history if k != "loss" and "loss" in history
          and np.array_equal(history[k], history["loss"])]
  names = [k for k in history if k not in same]
  fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False)
  for ax, name in zip(axes[0], names):
    v = np.atleast_2d(history[name])  # [K, steps]
    for member in v:
      steps, lo, mean, hi = _buckets(member, 400)
      ax.fill_between(steps, lo, hi, color="C0", alpha=0.25, lw=0)
      ax.plot(steps, mean, lw=1.2, color="C1")
    if np.all(v > 0):
      ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(" = ".join([name, *same]) if name == "loss" else name)
  fig.suptitle(f"{title} training: per-step 10-90% range (band) and mean (line) per bucket")
  _save(fig, path)


from experiments import datafigures, realfigures  # noqa: E402 (data runs' figures; use _save)

FIGURES.update(datafigures.FIGURES)
FIGURES.update(realfigures.FIGURES)
