"""experiments.classical's protocol: settings chosen on validation data only, then the test runs
at the chosen settings with disjoint seeds; its table."""

import types

import pytest

from experiments import classical


@pytest.fixture
def fake_runs(monkeypatch):
  """classical's runs recorded instead of trained: each scored by a known function of its
  settings; the metrics name which part (validation or test) they were computed on."""
  calls = []

  def prepare(part, item, settings, validation):
    calls.append((part, dict(settings), validation))
    return types.SimpleNamespace(settings=settings, validation=validation)

  def run(experiment):
    s = experiment.settings
    score = -abs(s.get("steps", 0) - 3000) - abs(s.get("lags", 0) - 10)
    keys = classical.OURS["sunspots"] + classical.BASELINES["sunspots"]
    metrics = {k: float(s["seed"]) for k in keys}
    return types.SimpleNamespace(metrics={**metrics, "test_nll_one_step": -score})

  from dljax import examples
  monkeypatch.setattr(classical, "_prepare", prepare)
  monkeypatch.setattr(examples, "run", run)
  return calls


def test_choice_on_validation_only_then_disjoint_test_seeds(fake_runs):
  grid = {"lags": (5, 10, 20), "steps": (1000, 3000), "ensemble": (5,)}
  choice = classical.choose("sunspots", {"cell": "lstm"}, grid)
  assert choice["chosen"] == {"lags": 10, "steps": 3000, "ensemble": 5}  # the best score
  seeds = classical.CHOICE_SEEDS["sunspots"]
  assert len(choice["tried"]) == 6 and len(fake_runs) == 6 * seeds
  assert all(v for _, _, v in fake_runs)  # all on validation
  # each setting scored on `seeds` disjoint five-member ensembles
  assert [s["seed"] for _, s, _ in fake_runs[:seeds]] == [5 * i for i in range(seeds)]
  fake_runs.clear()
  runs = classical.test_runs("sunspots", {"cell": "lstm"}, {**choice["chosen"], "ensemble": 10},
                             3)
  assert [r["seed"] for r in runs] == [0, 10, 20]  # ten-member ensembles, disjoint
  assert all(not v and s["lags"] == 10 and s["steps"] == 3000 for _, s, v in fake_runs)


def test_choice_averages_the_validation_scores_over_seeds(fake_runs, monkeypatch):
  from dljax import examples

  def run(experiment):  # the seed decides: setting A wins on seed 0 only, B on average
    s = experiment.settings
    nll = {("A", 0): 1.0, ("A", 5): 5.0, ("A", 10): 5.0}.get((s["tag"], s["seed"]), 2.0)
    return types.SimpleNamespace(metrics={"test_nll_one_step": nll})

  monkeypatch.setattr(examples, "run", run)
  monkeypatch.setitem(classical.CHOICE_SEEDS, "sunspots", 3)
  choice = classical.choose("sunspots", {"cell": "lstm"}, {"tag": ("A", "B"), "ensemble": (5,)})
  assert choice["chosen"]["tag"] == "B"
  assert choice["tried"][0]["scores"] == [-1.0, -5.0, -5.0]
  assert choice["tried"][0]["score"] == pytest.approx(-11 / 3)


def test_markdown_reports_mean_and_standard_error():
  runs = [{k: float(i) for k in classical.OURS["completion"]
           + classical.BASELINES["completion"]} for i in (1, 2, 3)]
  text = classical.markdown({"completion": [{"item": {"variant": "standard"},
                                             "chosen": {"steps": 10}, "runs": runs}]})
  assert "## completion: variant=standard, steps=10" in text
  assert "| test_iwae_1000 | 2 ± 0.58 | 1, 2, 3 |" in text  # s.e. = 1 / sqrt(3)
