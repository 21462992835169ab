r"""The UCI regression benchmark (Hernandez-Lobato and Adams 2015) with 5-member Deep Ensembles,
beside the published Table 1 of Lakshminarayanan, Pritzel and Blundell (2017).

  pip install -e '.[data]'                         # the offline boston and concrete sets
  python -m experiments.uci                        # boston and concrete -> runs/uci
  python -m experiments.uci --data_dir=DIR         # a folder in the benchmark's layout, or a
                                                   # folder of such folders (all of them)
  python -m experiments.uci --dataset=boston --learning_rates=0.01 --schedules=constant

Per split: Adam's learning rate and schedule are chosen among --learning_rates x --schedules by
the validation NLL of ensembles trained on the first 1 - --validation_fraction of the split's
training rows and scored on the rest of them (never on a test row); then every split's
ensemble trains on its whole training rows, all splits x members (each at its split's choice)
as one vmapped program, and is scored on its test rows. Writes uci.json and uci.md (ours
beside the paper's table) into --workdir. --sequential names the data sets whose networks are
also trained one after another, to time the vmapped program against.
"""

from __future__ import annotations

import collections
import json
import logging as std_logging
import os
import platform
import statistics
import time

import numpy as np
from absl import app, flags, logging

from experiments import common

_DATASET = flags.DEFINE_list("dataset", ["boston", "concrete"], "Offline data sets (boston, "
                             "concrete; the data extra); only with --data_dir if given.")
_DATA_DIR = flags.DEFINE_list("data_dir", [], "Folders in the benchmark's layout (data.txt, "
                              "index_features.txt, index_target.txt, optional n_hidden.txt, "
                              "n_epochs.txt, n_splits.txt), or folders of such folders.")
_WORKDIR = flags.DEFINE_string("workdir", os.path.join("runs", "uci"), "Where uci.json and "
                               "uci.md are written.")
_RATES = flags.DEFINE_list("learning_rates", ["0.003", "0.01", "0.03"], "Adam's learning rates "
                           "to choose from, per split, on a validation part of its training rows.")
_SCHEDULES = flags.DEFINE_list("schedules", ["constant", "cosine"], "Learning-rate schedules to "
                               "choose from with them: constant, cosine (decay to 0).")
_VALIDATION = flags.DEFINE_float("validation_fraction", 0.2, "Of each split's training rows, "
                                 "held out to choose the learning rate on.")
_SPLITS = flags.DEFINE_integer("splits", None, "Use the first this many splits (default: the "
                               "data set's, 20; Protein 5).")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Epochs (default: the data set's, 40; Protein 20).")
_MEMBERS = flags.DEFINE_integer("members", 5, "Members of each split's ensemble.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the first network; network i has seed + i.")
_SEQUENTIAL = flags.DEFINE_list("sequential", ["boston"], "Data sets whose networks are also "
                                "trained one after another, to time against the vmapped program.")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", None, "CPU devices to split the networks "
                                    "across (default: the usable cores).")

# Table 1 of Lakshminarayanan et al. (2017): (mean, s.e.) of PBP, MC dropout and Deep Ensembles;
# MC dropout's "s.e." are standard deviations over the splits, as first published.
METHODS = ("PBP", "MC dropout", "Deep Ens.")
PAPER = {
    "Boston": ((3.01, .18), (2.97, .85), (3.28, 1.00), (2.57, .09), (2.46, .25), (2.41, .25)),
    "Concrete": ((5.67, .09), (5.23, .53), (6.03, .58), (3.16, .02), (3.04, .09), (3.06, .18)),
    "Energy": ((1.80, .05), (1.66, .19), (2.09, .29), (2.04, .02), (1.99, .09), (1.38, .22)),
    "Kin8nm": ((.10, 0), (.10, 0), (.09, 0), (-.90, .01), (-.95, .03), (-1.20, .02)),
    "Naval": ((.01, 0), (.01, 0), (0, 0), (-3.73, .01), (-3.80, .05), (-5.63, .05)),
    "Power": ((4.12, .03), (4.02, .18), (4.11, .17), (2.84, .01), (2.80, .05), (2.79, .04)),
    "Protein": ((4.73, .01), (4.36, .04), (4.71, .06), (2.97, 0), (2.89, .01), (2.83, .02)),
    "Wine": ((.64, .01), (.62, .04), (.64, .04), (.97, .01), (.93, .06), (.94, .12)),
    "Yacht": ((1.02, .05), (1.11, .38), (1.58, .48), (1.63, .02), (1.55, .12), (1.18, .21)),
}
PAPER_NAMES = {"boston": "Boston", "bostonhousing": "Boston", "concrete": "Concrete",
               "energy": "Energy", "kin8nm": "Kin8nm", "naval-propulsion-plant": "Naval",
               "power-plant": "Power", "protein-tertiary-structure": "Protein",
               "wine-quality-red": "Wine", "yacht": "Yacht"}


def paper(name: str) -> dict[str, dict[str, tuple[float, float]]] | None:
  """The paper's {metric: {method: (mean, s.e.)}} for data set ``name``, None if not in it."""
  row = PAPER.get(PAPER_NAMES.get(name.split(" ")[0].lower(), ""))
  if row is None:
    return None
  return {"rmse": dict(zip(METHODS, row[:3])), "nll": dict(zip(METHODS, row[3:]))}


def folders(paths: list[str]) -> list[str]:
  """Benchmark folders: each path that holds data.txt, or the subfolders of one that do."""
  found = []
  for path in paths:
    inside = sorted(os.path.join(path, f) for f in os.listdir(path)) if os.path.isdir(path) else []
    subs = [f for f in inside if os.path.isfile(os.path.join(f, "data.txt"))]
    found += subs if subs and not os.path.isfile(os.path.join(path, "data.txt")) else [path]
  return found


def load_all():
  """Every data set asked for, read and checked before any training (one line if bad)."""
  from dljax import checks, datasets  # noqa: PLC0415

  chosen = []
  names = _DATASET.value if (_DATASET.present or not _DATA_DIR.value) else []
  try:
    chosen += [datasets.load(checks.choice("dataset", n, tuple(datasets.OFFLINE))) for n in names]
    chosen += [datasets.read_folder(f, name="data_dir") for f in folders(_DATA_DIR.value)]
  except checks.BadArgument as e:
    common.fail(common.flag_message(e, {"dataset", "data_dir"}))
  if not chosen:
    common.fail("--dataset or --data_dir must name at least one data set, got none")
  names = [d.name for d in chosen]  # a folder named as an offline set (concrete): name + " 2"
  names = [n if n not in names[:i] else f"{n} {names[:i].count(n) + 1}"
           for i, n in enumerate(names)]
  return [d._replace(name=n, n_splits=min(d.n_splits, _SPLITS.value or d.n_splits),
                     n_epochs=_EPOCHS.value or d.n_epochs) for d, n in zip(chosen, names)]


def check_flags() -> list[tuple[float, bool]]:
  """The flags' values, one line and exit status 2 for a bad one; the candidate (learning rate,
  cosine) pairs."""
  try:
    rates = [float(v) for v in _RATES.value]
  except ValueError:
    common.fail(f"--learning_rates must be comma-separated numbers, got {','.join(_RATES.value)!r}")
  if not rates or not all(0 < r < float("inf") for r in rates):
    common.fail(f"--learning_rates must be positive numbers, got {','.join(_RATES.value)!r}")
  common.check_choices("schedules", _SCHEDULES.value, ("constant", "cosine"))
  if not 0 < _VALIDATION.value < 1:
    common.fail(f"--validation_fraction must be in (0, 1), got {_VALIDATION.value}")
  for flag in (_SPLITS, _EPOCHS, _MEMBERS, _CPU_DEVICES):
    if flag.value is not None and flag.value < 1:
      common.fail(f"--{flag.name} must be an integer >= 1, got {flag.value}")
  if _SEED.value < 0:
    common.fail(f"--seed must be an integer >= 0, got {_SEED.value}")
  common.check_output_folder("workdir", _WORKDIR.value)
  return [(r, schedule == "cosine") for r in rates for schedule in _SCHEDULES.value]


def label(candidate: tuple[float, bool]) -> str:
  return f"{candidate[0]:g}{' cosine' if candidate[1] else ''}"


def measure(d, candidates: list[tuple[float, bool]]) -> dict:
  """One data set: each split's (learning rate, schedule) chosen on its validation rows, then
  the protocol; timed."""
  from dljax import datasets, uci  # noqa: PLC0415

  t0 = time.perf_counter()
  splits = datasets.uci_splits(len(d.x), d.n_splits)
  choice, validation = [0] * len(splits), {}
  if len(candidates) > 1:
    choice, nll, rmse = uci.select(d, splits, candidates, _VALIDATION.value, d.n_epochs,
                                   _SEED.value, members=_MEMBERS.value)
    validation = {label(c): {"nll": float(np.mean(n)), "rmse": float(np.mean(r))}
                  for c, n, r in zip(candidates, nll, rmse)}
  t1 = time.perf_counter()
  prepared = uci.prepare(d, splits, _MEMBERS.value)
  rates = uci.member_rates(candidates, choice, _MEMBERS.value)
  fitted = uci.train(d, prepared, *rates, d.n_epochs, _SEED.value)
  s = uci.scores(d, fitted.params, prepared)
  t2 = time.perf_counter()
  result = {"rmse": uci.summary(s["rmse"]), "nll": uci.summary(s["nll"]), "splits": d.n_splits,
            "wall_s": t2 - t0, "protocol_s": t2 - t1, "selection_s": t1 - t0,
            "training_s": fitted.timings["total"], "networks": prepared.data["x"].shape[0],
            "epochs": d.n_epochs, "hidden": d.n_hidden, "rows": len(d.x),
            "chosen": [label(candidates[c]) for c in choice], "validation": validation,
            "per_split": {k: v.tolist() for k, v in s.items()},
            "linear_baseline": {k: uci.summary(v) for k, v in
                                uci.linear_baseline(d, splits).items()}}
  if d.name in _SEQUENTIAL.value:
    result["speed"] = speed(d, prepared, rates)
  logging.info("%s: %s", d.name, json.dumps({k: result[k] for k in ("rmse", "nll", "wall_s")}))
  return result


def speed(d, prepared, rates, repeats: int = 3) -> dict:
  """The vmapped program (median of ``repeats`` warm runs) against the same networks trained
  one after another (each fit timed; the first compiles), in one process."""
  from dljax import uci  # noqa: PLC0415

  vmapped = [uci.train(d, prepared, *rates, d.n_epochs, _SEED.value).timings["total"]
             for _ in range(repeats)]
  alone = uci.one_after_another(d, prepared, *rates, d.n_epochs, _SEED.value)
  warm = statistics.median(alone[1:]) * len(alone) if len(alone) > 1 else alone[0]
  return {"networks": len(alone), "vmapped_s": statistics.median(vmapped),
          "one_after_another_s": sum(alone), "one_after_another_warm_s": warm,
          "ratio": sum(alone) / statistics.median(vmapped),
          "ratio_warm": warm / statistics.median(vmapped)}


def _cell(mean: float, se: float, digits: int = 2) -> str:
  return f"{mean:.{digits}f}±{se:.{digits}f}"


def markdown(results: dict[str, dict]) -> str:
  """uci.md: ours beside Deep Ensembles' published numbers, then the paper's whole Table 1."""
  import jax  # noqa: PLC0415

  machine = platform.processor() or platform.machine()
  lines = [f"# UCI regression benchmark ({time.strftime('%Y-%m-%d')}, {machine}, "
           f"{os.cpu_count()} cores, jax {jax.__version__})", "",
           "| data set | splits | RMSE ours | RMSE Deep Ens. | RMSE linear | NLL ours | "
           "NLL Deep Ens. | NLL linear | as good (RMSE, NLL) | most chosen (splits) | wall (s) |",
           "|---" * 11 + "|"]
  for name, r in results.items():
    ref = paper(name)
    digits = 3 if r["rmse"]["mean"] < 0.5 else 2
    ours = [_cell(r[m]["mean"], r[m]["se"], digits if m == "rmse" else 2) for m in ("rmse", "nll")]
    theirs = [_cell(*ref[m]["Deep Ens."]) if ref else "-" for m in ("rmse", "nll")]
    good = ", ".join(("yes" if r[m]["mean"] <= sum(ref[m]["Deep Ens."]) else "no")
                     for m in ("rmse", "nll")) if ref else "-"
    common_choice = collections.Counter(r["chosen"]).most_common(1)[0]
    linear = [_cell(r["linear_baseline"][m]["mean"], r["linear_baseline"][m]["se"],
                    digits if m == "rmse" else 2) for m in ("rmse", "nll")]
    lines.append(f"| {name} | {r['splits']} | {ours[0]} | {theirs[0]} | {linear[0]} | "
                 f"{ours[1]} | {theirs[1]} | {linear[1]} | {good} | {common_choice[0]} "
                 f"({common_choice[1]}) | {r['wall_s']:.1f} |")
  lines += ["", "Ours: mean ± standard error over the splits, in y's units; 'as good': our mean <= "
            "theirs + their s.e.; linear: least squares with a Gaussian residual (statsmodels "
            "OLS), the same splits. The paper's Table 1 (MC dropout's ± are standard "
            "deviations):",
            "", "| data set | " + " | ".join(f"RMSE {m}" for m in METHODS) + " | "
            + " | ".join(f"NLL {m}" for m in METHODS) + " |", "|---" * 7 + "|"]
  lines += [f"| {name} | " + " | ".join(_cell(*v) for v in row) + " |"
            for name, row in PAPER.items()]
  speeds = {n: r["speed"] for n, r in results.items() if "speed" in r}
  for name, s in speeds.items():
    lines += ["", f"Speed, {name}: {s['networks']} networks as one vmapped program "
              f"{s['vmapped_s']:.2f} s (median of 3, warm); one after another "
              f"{s['one_after_another_s']:.2f} s ({s['ratio']:.1f}x; {s['ratio_warm']:.1f}x "
              "against their warm median)."]
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  common.quiet_backend_probe()
  candidates = check_flags()
  import jax  # noqa: PLC0415 (after the flags: the CPU devices are set before the backend)

  from dljax import distributed  # noqa: PLC0415

  jax.config.update("jax_num_cpu_devices", _CPU_DEVICES.value or distributed.usable_cores())
  std_logging.getLogger("dljax.train").setLevel(std_logging.WARNING)  # not 100 fits' lines
  common.enable_compilation_cache(flags.FLAGS.compilation_cache)
  chosen = load_all()
  results = {d.name: measure(d, candidates) for d in chosen}
  os.makedirs(_WORKDIR.value, exist_ok=True)
  common._write_json(os.path.join(_WORKDIR.value, "uci.json"), results)
  from dljax import checkpoint  # noqa: PLC0415

  def write(path):
    with open(path, "w") as f:
      f.write(markdown(results))

  checkpoint.write_atomically(os.path.join(_WORKDIR.value, "uci.md"), write)
  print(markdown(results), end="")


if __name__ == "__main__":
  common.define_cache_flag()
  app.run(main, flags_parser=common.parse_flags)
