"""The real-data examples' figures (experiments/realfigures.py) and the recurrent figures' 90%
bands, drawn from synthetic predictions of the shapes the runs write."""

import matplotlib.image
import numpy as np
import pytest

from experiments import datafigures, figures, realfigures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N, H, K = 269, 40, 3
SCALE, GAP = realfigures.SCALE, realfigures.GAP
SIZE = 8 * SCALE  # a digit's side in a mosaic
CELL = SIZE + GAP
SUNSPOT_REQUIRED = ("series_train", "series_test", "years_train", "years_test", "one_step",
                    "forecast", "arima_mean_one_step", "arima_sd_one_step",
                    "ets_mean_one_step", "persistence_mean_one_step")


class Recording(dict):
  """A dict that records the keys looked up (``d[k]``)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.read = set()

  def __getitem__(self, key):
    self.read.add(key)
    return super().__getitem__(key)


def _sunspots(gaussian: bool, members: bool) -> dict[str, np.ndarray]:
  """Predictions of a sunspot run: a Gaussian model has the bands, an ensemble the members."""
  rng = np.random.default_rng(0)
  t = np.arange(N + H)
  values = 80 + 70 * np.sin(2 * np.pi * t / 11) + rng.normal(0, 10, N + H)
  test = values[N:, None]
  pred = {"series_train": values[:N, None], "series_test": test,
          "years_train": 1700 + t[:N], "years_test": 1700 + t[N:],
          "arima_mean_one_step": test[:, 0] + 5, "arima_sd_one_step": np.full(H, 15.0),
          "ets_mean_one_step": test[:, 0] - 5, "persistence_mean_one_step": values[N - 1:-1]}
  for key in ("one_step", "forecast"):
    pred[key] = test + rng.normal(0, 8, (H, 1))
    if gaussian:
      pred.update({f"{key}_std": np.full((H, 1), 12.0), f"{key}_low_90": pred[key] - 20,
                   f"{key}_high_90": pred[key] + 20})
    if members:
      pred[f"{key}_members"] = pred[key] + rng.normal(0, 5, (K, H, 1))
      if gaussian:
        pred[f"{key}_std_members"] = np.full((K, H, 1), 11.0)
  return pred


def _digits_vae() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(1)
  return {"sample_means": rng.uniform(size=(64, 64)), "y_test": rng.uniform(size=(64, 64))}


def _digits_cvae() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(2)
  return {"x_test": rng.uniform(size=(10, 32)), "y_test": rng.uniform(size=(10, 32)),
          "completions": rng.uniform(size=(5, 10, 32))}


@pytest.fixture
def drawn(monkeypatch):
  """The figures saved, in order (figures._save still writes them)."""
  saved = []
  original = figures._save

  def save(fig, path):
    saved.append(fig)
    original(fig, path)

  monkeypatch.setattr(figures, "_save", save)
  yield saved
  figures.plt.close("all")


def _check_png(path, height: tuple[int, int], width: tuple[int, int]) -> None:
  """``path`` is a PNG of a height and width in the given ranges."""
  with open(path, "rb") as f:
    assert f.read(8) == PNG_MAGIC
  image = matplotlib.image.imread(path)
  assert height[0] <= image.shape[0] <= height[1], image.shape
  assert width[0] <= image.shape[1] <= width[1], image.shape
  assert image.shape[2] in (3, 4)


def _cell(mosaic: np.ndarray, i: int, j: int) -> np.ndarray:
  """The 8 x 8 image at row i, column j of a mosaic (one value per SCALE x SCALE block)."""
  block = mosaic[i * CELL:i * CELL + SIZE, j * CELL:j * CELL + SIZE]
  np.testing.assert_array_equal(block, np.repeat(np.repeat(block[::SCALE, ::SCALE], SCALE, 0),
                                                 SCALE, 1))
  return block[::SCALE, ::SCALE]


def _labels(ax) -> list[str]:
  return [c.get_label() for c in ax.collections]


def test_registered():
  """The six new names, with their _validation twins, are in figures.FIGURES."""
  for name in ("lstm_sunspots", "rnn_sunspots", "vae_digits", "cvae_digits"):
    for suffix in ("", "_validation"):
      assert figures.FIGURES[name + suffix] is realfigures.FIGURES[name + suffix]
  assert figures.FIGURES["rnn_sunspots"] is realfigures.sunspots
  assert figures.FIGURES["vae_digits_validation"] is realfigures.vae_digits
  assert figures.FIGURES["cvae_digits"] is realfigures.cvae_digits


@pytest.mark.parametrize("gaussian,members", [(True, True), (True, False), (False, True),
                                              (False, False)])
def test_sunspots(tmp_path, drawn, gaussian, members):
  """Both panels draw with or without the bands and members; the bands follow the keys."""
  pred = Recording(_sunspots(gaussian, members))
  figures.FIGURES["lstm_sunspots"](pred, str(tmp_path / "f.png"))
  _check_png(tmp_path / "f.png", (400, 700), (1000, 1600))
  bands = [f"{k}_{end}" for k in ("one_step", "forecast") for end in ("low_90", "high_90")]
  spread = ["one_step_members", "forecast_members"]
  assert pred.read == set(SUNSPOT_REQUIRED).union(
      bands if gaussian else spread if members else [])
  expected = ["90% band (predicted variance)"] if gaussian else (
      ["members: mean $\\pm$ 2 std"] if members else [])
  for ax in drawn[0].axes:
    assert _labels(ax) == expected
    assert ax.get_ylabel() == "sunspot number"
  assert len(drawn[0].axes[0].lines) == 8  # truth, ours, ARIMA, its limits, ETS, persistence, split


@pytest.mark.parametrize("key", SUNSPOT_REQUIRED)
def test_sunspots_key_required(tmp_path, drawn, key):
  pred = _sunspots(False, False)
  del pred[key]
  with pytest.raises(KeyError):
    realfigures.sunspots(pred, str(tmp_path / "f.png"))
  assert not (tmp_path / "f.png").exists()


def test_vae_digits(tmp_path, drawn):
  """Two 8 x 8 grids of 8 x 8 images, GAP px apart, greyscale on [0, 1], titled."""
  pred = Recording(_digits_vae())
  figures.FIGURES["vae_digits_validation"](pred, str(tmp_path / "f.png"))
  _check_png(tmp_path / "f.png", (400, 800), (900, 1300))
  assert pred.read == set(pred)
  axes = drawn[0].axes
  assert [ax.get_title().split(" (")[0] for ax in axes] == ["decoded samples", "test digits"]
  for ax, key in zip(axes, ("sample_means", "y_test")):
    image = ax.images[0]
    assert image.get_array().shape == (8 * CELL - GAP,) * 2
    assert image.get_clim() == (0.0, 1.0)
    np.testing.assert_array_equal(_cell(image.get_array(), 0, 1), pred[key][1].reshape(8, 8))
    assert np.isnan(np.ma.getdata(image.get_array())[:, SIZE:CELL]).all()  # the gap
    assert not ax.get_xticks().size and not ax.get_yticks().size


def test_cvae_digits(tmp_path, drawn):
  """Ten columns: the true digit, then five completions (seen top over sampled bottom)."""
  pred = Recording(_digits_cvae())
  figures.FIGURES["cvae_digits"](pred, str(tmp_path / "f.png"))
  _check_png(tmp_path / "f.png", (500, 900), (900, 1300))
  assert pred.read == set(pred)
  ax = drawn[0].axes[0]
  image = ax.images[0].get_array()
  assert image.shape == (6 * CELL - GAP, 10 * CELL - GAP)
  x, y, c = pred["x_test"], pred["y_test"], pred["completions"]
  np.testing.assert_array_equal(_cell(image, 0, 1), np.concatenate([x[1], y[1]]).reshape(8, 8))
  np.testing.assert_array_equal(_cell(image, 3, 2),
                                np.concatenate([x[2], c[2, 2]]).reshape(8, 8))
  assert [t.get_text() for t in ax.get_yticklabels()] == ["true"] + [
      f"sample {k}" for k in range(1, 6)]
  assert len(ax.lines) == 5 * 10 and all(line.get_color() == "red" for line in ax.lines)


@pytest.mark.parametrize("name,key", [("vae_digits", "sample_means"), ("vae_digits", "y_test"),
                                      ("cvae_digits", "x_test"), ("cvae_digits", "y_test"),
                                      ("cvae_digits", "completions")])
def test_digits_key_required(tmp_path, drawn, name, key):
  pred = _digits_vae() if name == "vae_digits" else _digits_cvae()
  del pred[key]
  with pytest.raises(KeyError):
    figures.FIGURES[name](pred, str(tmp_path / "f.png"))


def _tutorial(band: bool, members: bool) -> dict[str, np.ndarray]:
  t = np.linspace(0, 20, 230)
  series = np.sin(t)[:, None]
  pred = {"series": series, "forecast": series[30:] + 0.05, "n_train_windows": np.array(150)}
  if band:
    pred.update(forecast_low_90=pred["forecast"] - 0.3, forecast_high_90=pred["forecast"] + 0.3)
  if members:
    pred["forecast_members"] = pred["forecast"] + np.zeros((K, 1, 1)) + [[[0.1]], [[0]], [[-.1]]]
  return pred


@pytest.mark.parametrize("band,members,expected", [
    (False, False, []), (False, True, ["members: mean $\\pm$ 2 std"]),
    (True, False, ["90% band (predicted variance)"]),
    (True, True, ["90% band (predicted variance)"])])
def test_tutorial_recurrent_band(tmp_path, drawn, band, members, expected):
  """The tutorial's figure shades a Gaussian model's 90% band, else the members' spread."""
  figures.FIGURES["lstm"](_tutorial(band, members), str(tmp_path / "f.png"))
  _check_png(tmp_path / "f.png", (400, 700), (500, 900))
  assert _labels(drawn[0].axes[0]) == expected


def test_data_recurrent_bands(tmp_path, drawn):
  """The --data figure shades both 90% bands when present, and nothing new without them."""
  full = _sunspots(True, True)
  keys = ("series_train", "series_test", "forecast", "one_step", "forecast_members")
  plain = {k: full[k] for k in keys}
  datafigures.recurrent(plain, str(tmp_path / "plain.png"))
  figures.FIGURES["rnn_data"](full, str(tmp_path / "full.png"))
  _check_png(tmp_path / "full.png", (400, 700), (500, 900))
  assert _labels(drawn[0].axes[0]) == ["members: mean $\\pm$ 2 std"]
  assert _labels(drawn[1].axes[0]) == ["one step: 90% band", "90% band (predicted variance)"]
