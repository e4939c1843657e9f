"""Command line: python -m models presets | run PRESET | reproduce | bench | claims | worker (see README)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from models.config import CELLS, ConfigError
from models.presets import PRESETS, SEED004


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _progress(e) -> None:
    if e.kind == "epoch":
        d = e.data
        val = "" if d["val_accuracy"] is None else f"  val_loss {d['val_loss']:.4f}  val {d['val_accuracy']:.4f}"
        print(f"epoch {e.epoch}: loss {d['loss']:.4f}  metric {d['accuracy']:.4f}{val}  "
              f"({d['seconds']:.2f} s)", file=sys.stderr, flush=True)


def run_preset(name: str, epochs: int | None = None, seed: int | None = None,
               cell: str | None = None, layers: int | None = None,
               bidirectional: bool | None = None) -> dict:
    from models.engine import Engine
    cfg = PRESETS[name].config
    cfg = cfg.replace(**{k: v for k, v in (("epochs", epochs), ("seed", seed), ("cell", cell),
                                                  ("layers", layers),
                                                  ("bidirectional", bidirectional))
                         if v is not None})
    t = time.perf_counter()
    eng = Engine(cfg)
    try:
        r = eng.run(on_event=_progress)
    finally:
        eng.close()
    check = r.trace.carry_check()
    return {"preset": name, "config": cfg.to_dict(), "epochs": r.epochs,
            "carry_check": dict(check),
            "contaminated": check["contaminated"], "notes": r.notes, "metric": r.metric,
            "seconds": time.perf_counter() - t, "_trace": r.trace}


def cmd_run(a) -> int:
    if a.preset not in PRESETS:
        return _err(f"no preset {a.preset!r}; choose one of: {', '.join(PRESETS)}")
    try:
        out = run_preset(a.preset, a.epochs, a.seed, a.cell, a.layers, a.bidirectional)
    except ConfigError as e:
        return _err(str(e))
    trace = out.pop("_trace")
    if a.trace:
        try:
            trace.save(a.trace)
        except OSError as e:
            return _err(f"cannot write trace to {a.trace}: {e.strerror}")
    if a.json:
        print(json.dumps(out))
        return 0
    last = out["epochs"][-1] if out["epochs"] else {}
    c = out["carry_check"]
    print(f"{a.preset}: val {out['metric']} {last.get('val_accuracy')}  in {out['seconds']:.1f} s")
    print(f"carry check: {c['carried']} carried (max error {c['max_carry_error']:g}), "
          f"{c['fresh_starts']} fresh starts (max |h0| {c['max_fresh_abs']:g}), "
          f"{out['contaminated']} contaminated")
    for n in out["notes"]:
        print(f"note: {n}")
    return 0


def reproduce() -> list[dict]:
    rows = []
    for name in SEED004:
        p = PRESETS[name]
        print(f"reproduce: {name}...", file=sys.stderr, flush=True)
        out = run_preset(name)
        got = out["epochs"][-1]["val_accuracy"]
        # Direction: the winners reach ~1.0, the others stay near chance.
        ok = got >= 0.9 if p.published >= 0.9 else got < 0.65
        rows.append({"preset": name, "published": p.published, "measured": round(got, 3),
                     "epochs": p.config.epochs, "direction_reproduced": bool(ok),
                     "seconds": round(out["seconds"], 2)})
    return rows


def cmd_reproduce(a) -> int:
    rows = reproduce()
    if a.json:
        print(json.dumps(rows))
    else:
        print(f"{'experiment':28s} {'epochs':>6s} {'published':>9s} {'measured':>9s}  direction")
        for r in rows:
            print(f"{r['preset']:28s} {r['epochs']:6d} {r['published']:9.2f} {r['measured']:9.3f}  "
                  f"{'reproduced' if r['direction_reproduced'] else 'NOT reproduced'}")
    return 0 if all(r["direction_reproduced"] for r in rows) else 1


def cmd_bench(a) -> int:
    from models import bench
    if a.compile_only:  # the compile rows alone (a minute, not the whole bench)
        r = {"compile_new_shape": bench.compile_new_shape()}
        print(json.dumps(r) if a.json else "\n".join(
            f"{x:<58}  {y:>22}  {z}" for x, y, z in bench.compile_rows(r["compile_new_shape"])))
        return 0
    if a.repeat < 1:
        print(f"--repeat must be at least 1 (got {a.repeat}).", file=sys.stderr)
        return 2
    if a.cells_only:  # the per-cell and stacked rows alone
        runs = bench.cell_steps_per_second(repeat=a.repeat, before=a.before)
        print(json.dumps({"cells": runs, "cells_median": bench.cell_summary(runs),
                          "cells_target": bench.cell_targets(runs)}) if a.json
              else bench.align(bench.cell_rows(runs)))
        return 0
    r = bench.run_all(repeat=a.repeat, before=a.before)
    print(json.dumps(r) if a.json else bench.format_table(r))
    return 0


def cmd_claims(a) -> int:
    from models import claims
    chosen = claims.CLAIMS
    if a.only:
        unknown = [i for i in a.only if i not in claims.BY_ID]
        if unknown:
            return _err(f"no claim {', '.join(map(repr, unknown))}; claims: {', '.join(claims.BY_ID)}")
        chosen = tuple(claims.BY_ID[i] for i in a.only)
    t = time.perf_counter()
    verdicts, info = claims.run_all(chosen, progress=lambda s: print(f"claims: {s}...", file=sys.stderr,
                                                             flush=True))
    seconds = time.perf_counter() - t
    if a.json:
        print(json.dumps({"claims": [v.to_dict() for v in verdicts],
                          "seconds": round(seconds, 2),
                          "run_seconds": {k: round(v, 2) for k, v in info["seconds"].items()}},
                         default=_jsonable))
    else:
        for v in verdicts:
            print(f"{'holds ' if v.holds else 'FAILS '} {v.claim.id}")
            print(f"       claim:    {v.claim.statement}")
            print(f"       measured: {v.measured}")
        n_ok = sum(v.holds for v in verdicts)
        print(f"{n_ok} of {len(verdicts)} claims hold ({len(info['seconds'])} runs, {seconds:.1f} s)")
    return 0 if all(v.holds for v in verdicts) else 1


def _jsonable(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("presets", help="list preset names, one a line")
    r = sub.add_parser("run", help="train a preset and report its carry check")
    r.add_argument("preset")
    r.add_argument("--epochs", type=int)
    r.add_argument("--seed", type=int)
    r.add_argument("--cell", choices=CELLS, help="run the preset with this recurrent cell")
    r.add_argument("--layers", type=int, help="run the preset with this many stacked recurrent "
                   "layers (1-3)")
    r.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="run the preset with (or, --no-bidirectional, without) a Bidirectional "
                   "recurrent layer")
    r.add_argument("--trace", help="save the trace to this .npz file")
    r.add_argument("--json", action="store_true")
    rp = sub.add_parser("reproduce", help="the seed-004 table: published vs measured")
    rp.add_argument("--json", action="store_true")
    b = sub.add_parser("bench", help="performance figures, side by side")
    b.add_argument("--json", action="store_true")
    b.add_argument("--compile-only", action="store_true", help="only the new-shape compile rows")
    b.add_argument("--cells-only", action="store_true",
                   help="only the per-cell and stacked-layer rows (engine vs train_on_batch)")
    b.add_argument("--repeat", type=int, default=3, metavar="N",
                   help="interleaved rounds of the per-cell and stacked rows; medians (default 3)")
    b.add_argument("--before", action="store_true",
                   help="per-cell rows: also GRU and SimpleRNN built without unroll (as before "
                        "models/cells.unroll), in the same interleaved rounds")
    c = sub.add_parser("claims", help="run every preset once and check every claim the app makes")
    c.add_argument("--json", action="store_true")
    c.add_argument("--only", nargs="+", metavar="CLAIM", help="check only these claims (ids)")
    w = sub.add_parser("worker", help="train jobs from Redis (RQ); needs LSTM_REDIS_URL or --url")
    w.add_argument("--url", help="Redis URL (default: $LSTM_REDIS_URL)")
    w.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    w.add_argument("--no-prewarm", action="store_true", help="do not compile the presets' nets while idle")
    w.add_argument("--name", help="worker name (default: RQ's)")
    w.add_argument("--max-rss-mb", type=float,
                   default=float(os.environ.get("LSTM_WORKER_MAX_RSS_MB", 2500)),
                   help="quit between jobs once the process uses more memory (MB; its "
                        "supervisor starts a fresh one; 0: never). Default "
                        "$LSTM_WORKER_MAX_RSS_MB or 2500")
    a = ap.parse_args(argv)
    if a.cmd == "presets":
        print("\n".join(PRESETS))
        return 0
    return {"run": cmd_run, "reproduce": cmd_reproduce, "bench": cmd_bench,
            "claims": cmd_claims, "worker": cmd_worker}[a.cmd](a)


def cmd_worker(a) -> int:
    """One worker process: trains one job at a time and keeps its compiled nets warm."""
    import logging
    import os
    url = a.url or os.environ.get("LSTM_REDIS_URL", "").strip()
    if not url:
        return _err("no Redis to work for: set LSTM_REDIS_URL (e.g. redis://localhost:6379/0) or pass --url")
    os.environ["LSTM_REDIS_URL"] = url  # the job's result store is the same Redis
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from models import hosting
    from models.hosting.rq_jobs import run_worker
    hosting.get_store(local_copy=False)  # a worker keeps no SQLite copy
    return run_worker(url, burst=a.burst, prewarm=not a.no_prewarm, name=a.name,
                      max_rss_mb=a.max_rss_mb or None)


if __name__ == "__main__":
    sys.exit(main())
