r"""The recurrent nets, the VAE and the CVAE on real data against the classical baselines:
sunspots against ARIMA, digits against probabilistic PCA, digit completion against a
linear-Gaussian model (``dljax.realdata``; the data extra).

  pip install -e '.[data]'
  python -m experiments.classical                  # all three parts -> runs/classical
  python -m experiments.classical --parts=digits --seeds=2

Each part first chooses its settings on validation data held out of the training part (the last
30 training years; the last 300 training images), never on the test part: the grid below, by the
validation score named in SCORE. Then it trains with the chosen settings for each seed and
scores on the test part beside the baselines computed in the same run. Writes classical.json and
classical.md into --workdir.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
from typing import Any

from absl import app, flags

_PARTS = flags.DEFINE_list("parts", ["sunspots", "digits", "completion"], "Which comparisons.")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Test runs per setting, seeds 0, 1, ... (an ensemble "
                              "of the sunspots' has members seed * members, ... + members - 1).")
_WORKDIR = flags.DEFINE_string("workdir", os.path.join("runs", "classical"), "Where "
                               "classical.json and classical.md are written.")
_QUICK = flags.DEFINE_bool("quick", False, "A tiny grid and few steps (to test the script).")

# The settings each part fixes, the grid it chooses from on validation data, the validation
# score to maximise, and the settings it is run at (one test setting per item).
FIXED = {"sunspots": dict(dataset="sunspots", likelihood="gaussian", batch_size=16,
                          learning_rate=3e-3, decay=True),
         "digits": dict(dataset="digits", batch_size=200, learning_rate=1e-3),
         "completion": dict(dataset="digits", batch_size=100, learning_rate=1e-3)}
GRID = {"sunspots": dict(lags=(5, 10, 20), hidden=(4, 8, 16), steps=(1000, 3000, 10000),
                         ensemble=(5, 10)),
        "digits": dict(steps=(2000, 5000, 10000, 20000)),
        "completion": dict(steps=(2000, 5000, 10000, 20000))}
QUICK_GRID = {"sunspots": dict(lags=(5,), hidden=(4,), steps=(100, 200), ensemble=(2,)),
              "digits": dict(steps=(100, 200)), "completion": dict(steps=(100, 200))}
# Validation scores are averaged over this many disjoint seeds (ensembles): the sunspots' single
# ensemble left its best settings within seed noise of each other (BUILD_NOTES.md, 2026-12-01).
CHOICE_SEEDS = {"sunspots": 3, "digits": 1, "completion": 1}
SCORE = {"sunspots": "-test_nll_one_step", "digits": "test_iwae_1000",
         "completion": "test_iwae_1000"}
ITEMS = {"sunspots": ({"cell": "lstm"},), "digits": ({"latent": 2}, {"latent": 8}),
         "completion": ({"variant": "standard"}, {"variant": "tutorial"})}
EXAMPLE = {"sunspots": "lstm", "digits": "vae", "completion": "cvae"}
BASELINES = {"sunspots": ("arima_rmse_one_step", "arima_nll_one_step",
                          "arima_coverage_90_one_step", "ets_rmse_one_step",
                          "persistence_rmse_one_step"),
             "digits": ("ppca_test_log_likelihood", "gmm_test_log_likelihood"),
             "completion": ("linear_gaussian_test_log_likelihood",)}
OURS = {"sunspots": ("test_rmse_one_step", "test_rmse_closed_loop", "test_nll_one_step",
                     "coverage_90_one_step"),
        "digits": ("test_elbo", "test_iwae_1000"), "completion": ("test_elbo", "test_iwae_1000")}


def _prepare(part: str, item: dict[str, Any], settings: dict[str, Any], validation: bool):
  from dljax import examples, realdata  # noqa: PLC0415

  name = EXAMPLE[part]
  kwargs = {**examples.defaults(name), **FIXED[part], **item, **settings}
  kwargs.pop("dataset")
  if part == "sunspots":
    kwargs.pop("cell")
    return realdata.prepare_sunspots(item["cell"], validation=validation, **kwargs)
  preparer = realdata.prepare_digits_vae if part == "digits" else realdata.prepare_digits_cvae
  return preparer(validation=validation, **{k: v for k, v in kwargs.items() if k != "iwae_ks"})


def _score(part: str, metrics: dict[str, Any]) -> float:
  key = SCORE[part]
  return -metrics[key[1:]] if key.startswith("-") else metrics[key]


def _first_seed(part: str, settings: dict[str, Any], seed: int) -> int:
  """Run ``seed``'s first seed: ensembles of K members take seeds seed K, ..., seed K + K - 1."""
  return seed * settings.get("ensemble", FIXED[part].get("ensemble", 1))


def choose(part: str, item: dict[str, Any], grid: dict[str, tuple]) -> dict[str, Any]:
  """The grid's settings with the best validation score, the mean over ``CHOICE_SEEDS[part]``
  disjoint seeds, and every one's score."""
  from dljax import examples  # noqa: PLC0415

  tried = []
  for values in itertools.product(*grid.values()):
    settings = dict(zip(grid, values))
    scores = [_score(part, examples.run(_prepare(
        part, item, {**settings, "seed": _first_seed(part, settings, seed)},
        validation=True)).metrics) for seed in range(CHOICE_SEEDS[part])]
    tried.append({**settings, "score": statistics.fmean(scores), "scores": scores})
  best = max(tried, key=lambda t: t["score"])
  return {"chosen": {k: best[k] for k in grid}, "tried": tried}


def test_runs(part: str, item: dict[str, Any], chosen: dict[str, Any], seeds: int) -> list[dict]:
  """The test metrics (ours and the baselines') of each seed at the chosen settings."""
  from dljax import examples  # noqa: PLC0415

  runs = []
  for seed in range(seeds):
    start = _first_seed(part, chosen, seed)  # disjoint ensembles
    t0 = time.perf_counter()
    outcome = examples.run(_prepare(part, item, {**chosen, "seed": start}, validation=False))
    keep = OURS[part] + BASELINES[part]
    runs.append({"seed": start, "seconds": time.perf_counter() - t0,
                 **{k: outcome.metrics[k] for k in keep}})
  return runs


def _summary(values: list[float]) -> tuple[float, float]:
  """(mean, standard error) over the seeds."""
  se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
  return statistics.fmean(values), se


def markdown(results: dict[str, Any]) -> str:
  """classical.md: per part and setting, each metric's mean +- s.e. over the seeds."""
  lines = ["# dljax on real data against the classical baselines", ""]
  for part, entries in results.items():
    for entry in entries:
      label = ", ".join(f"{k}={v}" for k, v in {**entry["item"], **entry["chosen"]}.items())
      lines += [f"## {part}: {label}", "", "| metric | mean ± s.e. | per seed |",
                "|---|---|---|"]
      for key in OURS[part] + BASELINES[part]:
        values = [r[key] for r in entry["runs"]]
        mean, se = _summary(values)
        lines.append(f"| {key} | {mean:.4g} ± {se:.2g} | "
                     + ", ".join(f"{v:.4g}" for v in values) + " |")
      lines.append("")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from experiments import common  # noqa: PLC0415

  common.check_choices("parts", _PARTS.value, tuple(GRID))
  os.makedirs(_WORKDIR.value, exist_ok=True)
  grids = QUICK_GRID if _QUICK.value else GRID
  results = {}
  for part in _PARTS.value:
    results[part] = []
    for item in ITEMS[part]:
      choice = choose(part, item, grids[part])
      runs = test_runs(part, item, choice["chosen"], _SEEDS.value)
      results[part].append({"item": item, **choice, "runs": runs})
  with open(os.path.join(_WORKDIR.value, "classical.json"), "w") as f:
    json.dump({"fixed": {p: FIXED[p] for p in results}, "results": results}, f, indent=1)
  text = markdown(results)
  with open(os.path.join(_WORKDIR.value, "classical.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  app.run(main)
