r"""Benchmarks the training engine on whatever devices JAX sees; writes JSON, plots and a table.

  python -m experiments.benchmark                         # full run (a few minutes on 2 CPU cores)
  python -m experiments.benchmark --tiny                  # seconds: what CI runs so it cannot rot
  python -m experiments.benchmark --sections=models,ensemble --workdir=/tmp/bench

Sections:
  models    each example at the tutorial's settings: steps/s of the fused engine (median of
            --repeats runs after a warm-up), compile time, XLA's memory estimate and the process's
            peak RSS, and steps/s of a plain Python loop that calls one jitted step per
            iteration (the usual Flax-example loop, written lean: NumPy minibatches on the
            host, the key derived inside the jit) on the same model and data;
  lags      RNN and LSTM steps/s against the number of lags (5 to 200);
  hidden    RNN and LSTM steps/s against the hidden size (4 to 512);
  batch     VAE steps/s against the batch size (1 to 8192), with achieved FLOP/s (XLA's cost
            analysis of one step times steps/s) against the machine's matmul peak, measured in
            the same run by a large float32 ``jnp.dot``;
  ensemble  each example's wall time for K members (1 to 256) as one vmapped program;
  flax      the Flax front-ends against model.apply (flax_cost.py);
  baseline  fit against the fused loop a user writes by hand (baseline.py), K = 1 at the
            tutorial's steps and K = 64, interleaved, with the quartiles of the repeats' ratios;
            at K = 64 fit also as the launchers run it, across one CPU device per core;
  launcher  each launcher's marginal steps/s against fit's in this process (launcher_cost.py).
Each sweep point also records how many programs were compiled for it (1 for a new shape).
"""

import json
import os
import platform
import resource
import statistics
import time

from absl import app, flags, logging

from experiments import common, launcher_cost

SECTIONS = ("models", "lags", "hidden", "batch", "ensemble", "flax", "baseline", "launcher")
_WORKDIR = flags.DEFINE_string("workdir", os.path.join("runs", "benchmark"), "Output folder.")
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS), "Sections to run.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats per measurement (median).")
_TINY = flags.DEFINE_bool("tiny", False, "A seconds-long configuration (CI): few steps, two "
                          "points per sweep.")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", None, "CPU devices the ensemble and baseline "
                                    "sections split members across (default: the usable "
                                    "cores).")
common.define_cache_flag()
common.define_allow_large_flag()

EXAMPLES = ("mlp", "rnn", "lstm", "vae", "cvae")


def _median_time(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


class Bench:
  """Measurements on prepared examples (``dljax.examples``) with the engine's compiled chunk."""

  def __init__(self, repeats: int, tiny: bool):
    import jax  # noqa: PLC0415

    from dljax import examples, train  # noqa: PLC0415

    self.jax, self.E, self.T = jax, examples, train
    self.repeats, self.tiny = repeats, tiny

  def prepare(self, name: str, **settings):
    return self.E.PREPARERS[name](**settings)

  def _programs(self) -> int:
    T = self.T
    return T._chunk._cache_size() + T._chunk_ensemble._cache_size() + T._chunk_sharded._cache_size()

  def first_call(self, exp, kw: dict) -> tuple[float, int]:
    """Seconds of the first ``fit`` (compiles if the shape is new) and the programs it compiled."""
    cache = self._programs()
    t = time.perf_counter()
    if not flags.FLAGS.allow_large:  # compiles the chunk that fit then runs
      self.check_memory(exp, kw)
    self.T.fit(exp.model, exp.objective, exp.data, **kw)
    return time.perf_counter() - t, self._programs() - cache

  def check_memory(self, exp, kw: dict) -> None:
    """One line and exit 2 (before anything is written) when a measurement cannot fit."""
    from dljax import resources  # noqa: PLC0415

    try:
      resources.check(resources.estimate(exp.model, exp.objective, exp.data, joined=True, **kw))
    except resources.TooLarge as e:
      common.fail(f"--sections: {exp.name} with {kw.get('seed')!r} as seed(s): {e}; "
                  "--allow_large runs it anyway")

  def fused(self, exp, steps: int, log_every: int | None = None, devices=None) -> dict:
    """Steps/s of ``fit``: the first call (compiles if the shape is new), then timed repeats."""
    kw = dict(exp.fit_kwargs, steps=steps, log_every=log_every or steps, devices=devices)
    first, compiled = self.first_call(exp, kw)
    wall = _median_time(lambda: self.T.fit(exp.model, exp.objective, exp.data, **kw), self.repeats)
    return {"steps": steps, "wall_s": wall, "steps_per_s": steps / wall, "first_call_s": first,
            "programs_compiled": compiled}

  def compile_seconds(self, exp) -> dict:
    """Lowering plus XLA compilation of the training chunk, ahead of time, and XLA's memory."""
    jax, T = self.jax, self.T
    kw = exp.fit_kwargs
    seeds = kw["seed"] if isinstance(kw["seed"], list) else [kw["seed"]]
    state, key = T._init_and_keys(exp.model, kw["optimizer"], jax.numpy.float32, seeds,
                                  isinstance(kw["seed"], list))
    t = time.perf_counter()
    compiled = T._chunk.lower(state, key, exp.data, objective=exp.objective,
                              optimizer=kw["optimizer"], batch_size=kw["batch_size"],
                              length=kw["log_every"] - 1).compile()  # a length no run has used
    # (one less, not one more: the examples' log_every is train.DRAW_BLOCK, and one step more
    # would add a scan of the rest, compiling the step twice, which their chunks never do)
    seconds = time.perf_counter() - t
    m = compiled.memory_analysis()
    mb = None if m is None else (m.argument_size_in_bytes + m.output_size_in_bytes
                                 + m.temp_size_in_bytes - m.alias_size_in_bytes) / 2**20
    return {"compile_s": seconds, "xla_memory_mb": mb}

  def python_loop(self, exp, steps: int) -> dict:
    """The usual loop, written lean: NumPy data and minibatch indices on the host, one jitted
    step per iteration (the engine's update with the plain gradient, its key derived in the jit)."""
    import functools  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    jax, T = self.jax, self.T
    kw = exp.fit_kwargs
    opt = kw["optimizer"]
    data = {k: np.asarray(v) for k, v in exp.data.items()}
    n = next(iter(data.values())).shape[0]
    rng = np.random.default_rng(0)
    key = jax.random.PRNGKey(1)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, batch, t):
      return T._update(state, batch, jax.random.fold_in(key, t), exp.objective, opt, lifted=False)

    def run():
      state = T.init_state(exp.model, kw["seed"], opt)
      for t in range(steps):
        idx = rng.choice(n, kw["batch_size"], replace=False)
        state, _ = step(state, {k: v[idx] for k, v in data.items()}, t)
      jax.block_until_ready(state)

    run()  # compile
    wall = _median_time(run, self.repeats)
    return {"steps": steps, "wall_s": wall, "steps_per_s": steps / wall}

  def step_flops(self, exp) -> float:
    """XLA's count of floating-point operations in one training step."""
    jax, T = self.jax, self.T
    kw = exp.fit_kwargs
    state = T.init_state(exp.model, kw["seed"], kw["optimizer"])
    batch = {k: v[:kw["batch_size"]] for k, v in exp.data.items()}
    lowered = T.train_step.lower(state, batch, jax.random.PRNGKey(0), objective=exp.objective,
                                 optimizer=kw["optimizer"])
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))

  def matmul_peak(self, n: int) -> float:
    """FLOP/s of a float32 [n, n] @ [n, n] ``jnp.dot`` (median of repeats)."""
    jnp = self.jax.numpy
    a = jnp.ones((n, n), jnp.float32)
    f = self.jax.jit(lambda x: jnp.dot(x, x))
    f(a).block_until_ready()
    wall = _median_time(lambda: f(a).block_until_ready(), max(self.repeats, 5))
    return 2.0 * n**3 / wall


def section_models(b: Bench) -> list[dict]:
  rows = []
  loop_steps = 200 if b.tiny else 2000
  for name in EXAMPLES:
    default = b.E.defaults(name)  # the tutorial's settings
    steps = 200 if b.tiny else default["steps"]
    log_every = min(default["log_every"], steps)
    exp = b.prepare(name, steps=steps, log_every=log_every)
    row = {"example": name, **b.compile_seconds(exp)}
    row["fused"] = b.fused(exp, steps, log_every=log_every)
    row["python_loop"] = b.python_loop(exp, loop_steps)
    row["fused_over_loop"] = row["fused"]["steps_per_s"] / row["python_loop"]["steps_per_s"]
    row["peak_rss_mb"] = _peak_rss_mb()
    logging.warning("models %s: %s", name, json.dumps(row))
    rows.append(row)
  return rows


def _sweep(b: Bench, name: str, key: str, values, steps: int, **fixed) -> list[dict]:
  rows = []
  for v in values:
    exp = b.prepare(name, steps=steps, log_every=steps, **{key: v}, **fixed)
    row = {"example": name, key: v, **b.fused(exp, steps)}
    logging.warning("%s %s=%s: %.0f steps/s", name, key, v, row["steps_per_s"])
    rows.append(row)
  return rows


def section_lags(b: Bench) -> list[dict]:
  values = (3, 6) if b.tiny else (5, 10, 20, 50, 100, 200)
  steps = 100 if b.tiny else 1000
  # lags up to 200 need a longer series: 3 x 200 points of sin(pi t), the first two thirds train
  return [r for cell in ("rnn", "lstm")
          for r in _sweep(b, cell, "lags", values, steps, n_points=700)]


def section_hidden(b: Bench) -> list[dict]:
  values = (4, 8) if b.tiny else (4, 16, 64, 256, 512)
  steps = 100 if b.tiny else 1000
  return [r for cell in ("rnn", "lstm") for r in _sweep(b, cell, "hidden", values, steps)]


def section_batch(b: Bench) -> dict:
  values = (1, 64) if b.tiny else (1, 8, 64, 512, 4096, 8192)
  steps = 20 if b.tiny else 200
  rows = _sweep(b, "vae", "batch_size", values, steps, n_train=max(values))
  for row in rows:
    exp = b.prepare("vae", batch_size=row["batch_size"], n_train=max(values), steps=steps,
                    log_every=steps)
    row["flops_per_step"] = b.step_flops(exp)
    row["flop_per_s"] = row["flops_per_step"] * row["steps_per_s"]
  peak = b.matmul_peak(512 if b.tiny else 2048)
  for row in rows:
    row["fraction_of_matmul_peak"] = row["flop_per_s"] / peak
  return {"matmul_peak_flop_per_s": peak, "rows": rows}


def section_ensemble(b: Bench) -> list[dict]:
  """Wall time of K members against one, and what the arithmetic allows: XLA's FLOP count of
  one member's step x K, at the measured matmul peak, against one member's measured step.

  K members are split across ``dljax.distributed.cpu_devices_for(K, D)`` of the D devices (on a
  CPU, --cpu_devices of them, one per core by default), as the launchers do; one member runs on
  one device. The timed fits of one example take turns (K = 1, 4, ..., then again), so that a
  slow spell of a shared machine reaches every K alike; each K's median of --repeats. --tiny:
  the MLP and the VAE, K = 1 and 4."""
  from dljax import distributed  # noqa: PLC0415

  all_devices = b.jax.devices()
  values = (1, 4) if b.tiny else (1, 4, 16, 64, 256)
  peak = b.matmul_peak(512 if b.tiny else 2048)
  rows = []
  for name in ("mlp", "vae") if b.tiny else EXAMPLES:  # tiny: split across devices, groups
    steps = 20 if b.tiny else (1000 if name in ("mlp", "rnn", "lstm", "cvae") else 200)
    runs, times = {}, {k: [] for k in values}
    for k in values:
      exp = b.prepare(name, steps=steps, log_every=steps, ensemble=k)
      devices = all_devices[:distributed.cpu_devices_for(k, len(all_devices))]
      kw = dict(exp.fit_kwargs, devices=None if k == 1 else devices)
      runs[k] = (exp, kw, len(devices), *b.first_call(exp, kw))
    for _ in range(b.repeats):
      for k in values:
        exp, kw = runs[k][:2]
        t = time.perf_counter()
        b.T.fit(exp.model, exp.objective, exp.data, **kw)
        times[k].append(time.perf_counter() - t)
    base = statistics.median(times[1])
    member_flops = b.step_flops(runs[1][0])
    for k in values:
      wall = statistics.median(times[k])
      row = {"example": name, "ensemble": k, "devices": runs[k][2], "steps": steps,
             "wall_s": wall, "steps_per_s": steps / wall, "first_call_s": runs[k][3],
             "programs_compiled": runs[k][4], "wall_over_one_member": wall / base,
             "flop_per_s": k * member_flops * steps / wall,
             "ratio_bound_at_peak": max(1.0, k * member_flops / peak / (base / steps))}
      logging.warning("ensemble %s K=%d on %d device(s): %.3f s (%.1fx one member; %.1f GFLOP/s; "
                      ">= %.1fx at peak)", name, k, row["devices"], wall,
                      row["wall_over_one_member"], row["flop_per_s"] / 1e9,
                      row["ratio_bound_at_peak"])
      rows.append(row)
  return rows


def section_flax(b: Bench) -> list[dict]:
  """Each model's jitted apply, step and fused steps through dljax.linen / dljax.nnx against
  model.apply, interleaved in one run (experiments/flax_cost.py); --tiny: two models, few calls."""
  from experiments import flax_cost  # noqa: PLC0415 (imports flax)

  problems = list(flax_cost._problems().items())
  problems = [problems[0], problems[2]] if b.tiny else problems
  calls = 10 if b.tiny else 200
  return [{"model": name, **row} for name, (model, inputs) in problems
          for row in flax_cost.interop_cost(model, inputs, max(b.repeats, 3), calls)]


def section_baseline(b: Bench) -> list[dict]:
  """fit against the fused loop a user writes by hand (experiments/baseline.py), K = 1 and 64
  (--tiny: the MLP, K = 1 and 4): both on one device, and for the ensemble also fit with its
  members split across ``cpu_devices_for(K, D)`` of the D devices, as the launchers run it."""
  from dljax import distributed  # noqa: PLC0415
  from experiments import baseline  # noqa: PLC0415

  # steps: K = 1 the tutorial's (the examples' defaults: 10,000 or 5,000); K = 64 about
  # 0.2-1 s of training per call, so that fit's fixed cost per call (checks, initial state,
  # copies) is a small part of it, as in real runs
  k64 = {"mlp": 1000, "rnn": 5000, "lstm": 2000, "vae": 100, "cvae": 500}
  runs = [("mlp", k, 20) for k in (1, 4)] if b.tiny else [
      (name, k, n) for name in EXAMPLES for k, n in ((1, None), (64, k64[name]))]
  rows = []
  all_devices = b.jax.devices()
  for name, k, n in runs:
    exp = b.prepare(name, ensemble=k)
    spread = all_devices[:distributed.cpu_devices_for(k, len(all_devices))]
    rows.append({"example": name, **baseline.against_fit(
        exp, k, n or exp.fit_kwargs["steps"], max(b.repeats, 3), 0.1 if b.tiny else 1.0,
        spread if len(spread) > 1 else None)})
  return rows


RUNNERS = {"models": section_models, "lags": section_lags, "hidden": section_hidden,
           "batch": section_batch, "ensemble": section_ensemble, "flax": section_flax,
           "baseline": section_baseline, "launcher": lambda b: launcher_cost.section(
               b, _WORKDIR.value, flags.FLAGS.compilation_cache)}


def plots(results: dict, workdir: str) -> list[str]:
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  made = []

  def loglog(rows, x, y, series, title, ylabel, path):
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for s in sorted({r[series] for r in rows}):
      pts = [(r[x], r[y]) for r in rows if r[series] == s]
      ax.loglog(*zip(*pts), "o-", label=s)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, path), dpi=100)
    plt.close(fig)
    made.append(path)

  for key in ("lags", "hidden"):
    if key in results:
      loglog(results[key], key, "steps_per_s", "example", f"steps/s against {key}", "steps/s",
             f"scaling_{key}.png")
  if "batch" in results:
    loglog(results["batch"]["rows"], "batch_size", "steps_per_s", "example",
           "VAE steps/s against batch size", "steps/s", "scaling_batch.png")
  if "ensemble" in results:
    loglog(results["ensemble"], "ensemble", "wall_over_one_member", "example",
           "wall time of K members / one member", "ratio", "scaling_ensemble.png")
  return made


def _md_table(caption: str, header: tuple[str, ...], rows: list[list[str]]) -> list[str]:
  return ["", caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
          *("| " + " | ".join(row) + " |" for row in rows)]


def _front_end_tables(results: dict) -> list[str]:
  """The baseline and flax sections' tables."""
  out = []
  if "baseline" in results:
    from experiments import baseline  # noqa: PLC0415

    out += _md_table(
        "fit against a hand-written fused loop (jit of a lax.scan of optax.adam steps, randint "
        "minibatches, vmap over seeds), one device, interleaved in one run; medians of the "
        "repeats (at least --repeats, and enough for 1 s of calls per side, 0.1 s with "
        f"--tiny, at most {baseline.MAX_REPEATS}); the repeats' ratios: the quartiles of "
        "each repeat's own ratio. The last three columns: fit as the launchers run an "
        "ensemble, split across D CPU devices (one per core), in the same turns, against the "
        "same one-device hand-written loop.",
        ("example", "K", "steps", "repeats", "fit steps/s", "hand-written steps/s",
         "fit / hand-written", "repeats' ratios", "D", "fit on D devices / hand-written",
         "repeats' ratios"),
        [[r["example"], str(r["members"]), f"{r['steps']:,}", str(r["repeats"]),
          f"{r['fit_steps_per_s']:,.0f}", f"{r['baseline_steps_per_s']:,.0f}",
          f"{r['fit_over_baseline']:.2f}x", "{:.2f}-{:.2f}".format(*r["ratio_quartiles"]),
          *([str(r["spread_devices"]), f"{r['fit_spread_over_baseline']:.2f}x",
             "{:.2f}-{:.2f}".format(*r["spread_ratio_quartiles"])] if "spread_devices" in r
            else ["1", "", ""])]
         for r in results["baseline"]])
  if "flax" in results:
    out += _md_table(
        "Flax front-ends against model.apply (us per call; fused: per step, 100 Adam steps in "
        "one scan); ratio = front-end / dljax, goal within 5% (linen).",
        ("model", "program", "dljax", "linen", "ratio", "nnx", "ratio", "same HLO"),
        [[r["model"], r["program"], f"{r['dljax_us']:.1f}", f"{r['linen_us']:.1f}",
          f"{r['linen_ratio']:.3f}", f"{r['nnx_us']:.1f}", f"{r['nnx_ratio']:.3f}",
          str(r["linen_same_hlo"] and r["nnx_same_hlo"])] for r in results["flax"]])
  return out


def table(results: dict, header: str) -> str:
  out = [header]
  if "models" in results:
    out += ["", "| example | fused steps/s | Python loop steps/s | fused / loop | compile (s) | "
            "XLA memory (MB) | peak RSS (MB) |", "|---|---|---|---|---|---|---|"]
    for r in results["models"]:
      out.append(f"| {r['example']} | {r['fused']['steps_per_s']:,.0f} | "
                 f"{r['python_loop']['steps_per_s']:,.0f} | {r['fused_over_loop']:.1f}x | "
                 f"{r['compile_s']:.2f} | {r['xla_memory_mb']:.2f} | {r['peak_rss_mb']:.0f} |")
  for key in ("lags", "hidden"):
    if key in results:
      out += ["", f"| example | {key} | steps/s | first call (s) | programs compiled |",
              "|---|---|---|---|---|"]
      out += [f"| {r['example']} | {r[key]} | {r['steps_per_s']:,.0f} | {r['first_call_s']:.2f} "
              f"| {r['programs_compiled']} |" for r in results[key]]
  if "batch" in results:
    peak = results["batch"]["matmul_peak_flop_per_s"]
    out += ["", f"VAE against batch size; matmul peak {peak / 1e9:.1f} GFLOP/s.", "",
            "| batch | steps/s | GFLOP/step | GFLOP/s | fraction of peak |", "|---|---|---|---|---|"]
    out += [f"| {r['batch_size']} | {r['steps_per_s']:,.1f} | {r['flops_per_step'] / 1e9:.4f} | "
            f"{r['flop_per_s'] / 1e9:.1f} | {r['fraction_of_matmul_peak']:.0%} |"
            for r in results["batch"]["rows"]]
  if "ensemble" in results:
    out += ["", "Ensembles: wall / one member, and the least it could be if the K members' "
            "arithmetic (XLA's FLOP count) ran at the matmul peak of this run; the K members "
            "split across the devices shown.", "",
            "| example | K | devices | steps | wall (s) | wall / one member | GFLOP/s | "
            "least at peak |", "|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['example']} | {r['ensemble']} | {r['devices']} | {r['steps']} | {r['wall_s']:.3f} | "
            f"{r['wall_over_one_member']:.1f}x | {r['flop_per_s'] / 1e9:.1f} | "
            f"{r['ratio_bound_at_peak']:.1f}x |" for r in results["ensemble"]]
  out += _front_end_tables(results)
  if "launcher" in results:
    out += launcher_cost.table(results["launcher"], results["repeats"])
  return "\n".join(out) + "\n"


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments {argv[1:]}")
  common.check_choices("sections", _SECTIONS.value, SECTIONS)
  launcher_cost.steps_flag(_TINY.value)
  if _REPEATS.value < 1:
    common.fail(f"--repeats must be >= 1, got {_REPEATS.value}")
  common.check_output_folder("workdir", _WORKDIR.value)
  common.quiet_backend_probe()
  if _CPU_DEVICES.value is not None and _CPU_DEVICES.value < 1:
    common.fail(f"--cpu_devices must be an integer >= 1, got {_CPU_DEVICES.value}")
  common.enable_compilation_cache(flags.FLAGS.compilation_cache)
  import jax  # noqa: PLC0415

  from dljax import distributed  # noqa: PLC0415

  cpu_devices = _CPU_DEVICES.value or distributed.usable_cores()
  # before the backend starts: the sections that split an ensemble across CPU devices
  if {"ensemble", "baseline"} & set(_SECTIONS.value) and cpu_devices > 1:
    jax.config.update("jax_num_cpu_devices", cpu_devices)
  b = Bench(_REPEATS.value, _TINY.value)
  results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                         "cpu_count": os.cpu_count(), "devices": [str(d) for d in jax.devices()],
                         "device_kind": jax.devices()[0].device_kind},
             "versions": common.versions(), "tiny": _TINY.value, "repeats": _REPEATS.value}
  for section in _SECTIONS.value:
    results[section] = RUNNERS[section](b)
  results["peak_rss_mb"] = _peak_rss_mb()
  os.makedirs(_WORKDIR.value, exist_ok=True)
  with open(os.path.join(_WORKDIR.value, "benchmark.json"), "w") as f:
    json.dump(results, f, indent=1)
  m = results["machine"]
  header = (f"Machine: {m['cpu_count']} CPU cores, devices {m['devices']}, jax "
            f"{results['versions']['jax']}; repeats {_REPEATS.value} (medians); "
            f"peak RSS {results['peak_rss_mb']:.0f} MB.")
  md = table(results, header)
  with open(os.path.join(_WORKDIR.value, "benchmark.md"), "w") as f:
    f.write(md)
  plots(results, _WORKDIR.value)
  print(md)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
