"""The figures of the examples on real data sets (dljax.realdata): the sunspot forecasts beside
the classical baselines, and the digits' decoded samples and completions (PNG)."""

from __future__ import annotations

import math

import numpy as np

N_SHOWN_YEARS = 60  # training years shown before the held-out span
Z_90 = 1.645  # the standard normal's 95th percentile: a central 90% interval is mean +- Z_90 sd
SCALE, GAP = 4, 2  # a mosaic draws a pixel as SCALE x SCALE, with GAP blank ones between images


def _band(ax, x: np.ndarray, pred: dict[str, np.ndarray], key: str, color: str) -> None:
  """Shade the 90% interval of ``pred[key]`` (``key``_low_90 / _high_90, a Gaussian model), or
  else the members' mean +- 2 std (an ensemble trained with MSE); nothing without either."""
  if f"{key}_low_90" in pred:
    low, high = pred[f"{key}_low_90"][:, 0], pred[f"{key}_high_90"][:, 0]
    ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0,
                    label="90% band (predicted variance)")
  elif f"{key}_members" in pred:
    m = pred[f"{key}_members"][..., 0]
    ax.fill_between(x, m.mean(0) - 2 * m.std(0), m.mean(0) + 2 * m.std(0), color=color,
                    alpha=0.2, lw=0, label="members: mean $\\pm$ 2 std")


def _sunspot_one_step(ax, pred: dict[str, np.ndarray]) -> None:
  """The last training years and the held-out years: the truth, our one-step predictions and
  the baselines' (ARIMA with its 90% interval, exponential smoothing, persistence)."""
  years, test = pred["years_test"], pred["series_test"][:, 0]
  shown = slice(-min(N_SHOWN_YEARS, len(pred["years_train"])), None)
  truth_years = np.concatenate([pred["years_train"][shown], years])
  truth = np.concatenate([pred["series_train"][shown, 0], test])
  ax.plot(truth_years, truth, "k-", lw=1.5, label="truth")
  _band(ax, years, pred, "one_step", "red")
  ax.plot(years, pred["one_step"][:, 0], "r-", lw=2, label="ours (one step)")
  mean, sd = pred["arima_mean_one_step"], pred["arima_sd_one_step"]
  ax.plot(years, mean, "--", color="C0", lw=1.8, label="ARIMA")
  ax.plot(years, mean - Z_90 * sd, "-", color="C0", lw=0.7, alpha=0.7, label="ARIMA 90%")
  ax.plot(years, mean + Z_90 * sd, "-", color="C0", lw=0.7, alpha=0.7)
  ax.plot(years, pred["ets_mean_one_step"], "-", color="C2", lw=0.9,
          label="exponential smoothing")
  ax.plot(years, pred["persistence_mean_one_step"], "-", color="C7", lw=0.9,
          label="persistence")
  ax.axvline(years[0] - 0.5, color="k", ls=":", lw=1)
  ax.set_title("one step ahead (from the true previous years)")


def sunspots(pred: dict[str, np.ndarray], path: str) -> None:
  """Left: the held-out years predicted one step ahead, beside ARIMA, exponential smoothing and
  persistence; right: the closed-loop forecast from the last training window; 90% bands."""
  fig, axes = figures.plt.subplots(1, 2, figsize=(12, 4.8))
  _sunspot_one_step(axes[0], pred)
  years = pred["years_test"]
  ax = axes[1]
  ax.plot(years, pred["series_test"][:, 0], "k-", lw=1.5, label="truth")
  _band(ax, years, pred, "forecast", "red")
  ax.plot(years, pred["forecast"][:, 0], "r--", lw=2, label="ours (closed loop)")
  ax.set_title(f"closed loop from {int(years[0]) - 1}")
  for ax in axes:
    ax.set_xlabel("year")
    ax.set_ylabel("sunspot number")
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top + 0.3 * (top - bottom))  # room for the legend
    ax.legend(loc="upper left", fontsize=7, ncol=3 if ax is axes[0] else 1)
  fig.suptitle("Yearly sunspot number: the held-out years")
  figures._save(fig, path)


def _mosaic(grid: np.ndarray) -> np.ndarray:
  """One image of a [rows, cols, h, w] grid of images, each pixel SCALE x SCALE, and GAP blank
  (NaN) pixels between them."""
  grid = np.repeat(np.repeat(grid, SCALE, axis=2), SCALE, axis=3)
  rows, cols, h, w = grid.shape
  out = np.full((rows * (h + GAP) - GAP, cols * (w + GAP) - GAP), np.nan)
  for i in range(rows):
    for j in range(cols):
      out[i * (h + GAP):i * (h + GAP) + h, j * (w + GAP):j * (w + GAP) + w] = grid[i, j]
  return out


def _show(ax, image: np.ndarray, title: str) -> None:
  """A mosaic in grey (0 white, 1 black: dark ink on paper; the gaps pale blue), no ticks."""
  cmap = figures.plt.get_cmap("gray_r").with_extremes(bad="#9fbfdf")
  ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_title(title)


def _grid(flat: np.ndarray, cols: int = 8) -> np.ndarray:
  """Flattened square images [n, side * side] as a [rows, cols, side, side] grid (NaN-padded)."""
  n, d = flat.shape
  side = math.isqrt(d)
  rows = -(-n // cols)
  padded = np.full((rows * cols, d), np.nan)
  padded[:n] = flat
  return padded.reshape(rows, cols, side, side)


def vae_digits(pred: dict[str, np.ndarray], path: str) -> None:
  """Decoder means of draws z ~ N(0, I) beside real test digits, 8 x 8 images on 8 x 8 grids."""
  fig, axes = figures.plt.subplots(1, 2, figsize=(10, 5.3))
  samples, digits = pred["sample_means"], pred["y_test"]
  _show(axes[0], _mosaic(_grid(samples)), f"decoded samples ({len(samples)})")
  _show(axes[1], _mosaic(_grid(digits)), f"test digits ({len(digits)})")
  figures._save(fig, path)


def cvae_digits(pred: dict[str, np.ndarray], path: str) -> None:
  """One column per test digit: the true image, then sampled completions, each the seen top
  half above a sampled bottom half (a red line between them)."""
  x, y, completions = pred["x_test"], pred["y_test"], pred["completions"]
  n, half = x.shape
  side = math.isqrt(2 * half)
  top = x.reshape(n, half // side, side)
  bottoms = np.concatenate([y[None], completions]).reshape(-1, n, half // side, side)
  grid = np.concatenate([np.broadcast_to(top, bottoms.shape), bottoms], axis=2)
  fig, ax = figures.plt.subplots(figsize=(1.0 * n, 0.95 * len(grid) + 0.6))
  _show(ax, _mosaic(grid), "seen top half, sampled bottom half (below the red line)")
  size = side * SCALE
  cell = size + GAP
  for i in range(1, len(grid)):
    y_line = i * cell + top.shape[1] * SCALE - 0.5
    for j in range(n):
      ax.plot([j * cell - 0.5, j * cell + size - 0.5], [y_line] * 2, color="red", lw=1.2)
  ax.set_yticks(np.arange(len(grid)) * cell + (size - 1) / 2,
                ["true"] + [f"sample {k}" for k in range(1, len(grid))])
  ax.tick_params(length=0)
  figures._save(fig, path)


FIGURES = {f"{name}{suffix}": figure
           for name, figure in (("lstm_sunspots", sunspots), ("rnn_sunspots", sunspots),
                                ("vae_digits", vae_digits), ("cvae_digits", cvae_digits))
           for suffix in ("", "_validation")}

# Last, so that importing this module first works too: figures.py imports it at its end and
# reads FIGURES, and the functions above only use figures.plt and figures._save when called.
from experiments import figures  # noqa: E402
