#!/usr/bin/env python3
"""evaluate.py - measures the cost router on the labeled set.

Every score and decision comes from the C scorer (ifq-complexity-score, i.e.
lib/complexity.c). The headline figures are held out: k-fold cross-validation
grouped by template (a template's lines never straddle training and test),
with the weights refitted on the training folds (fit.py, rounded as in C) and
the test fold scored by the C scorer with those weights. The threshold is
reported at fixed values and as chosen on each training fold by the rule
"largest saving with large-tier recall >= --recall-target on the training
folds", then applied to the held-out fold.

Cost model (example prices, USD per million tokens): small 0.15 in / 0.60 out,
large 2.50 in / 10.00 out; input tokens = the scorer's est_tokens (bytes/4),
output tokens = max_tokens, or 300 when the request does not set it.

    python3 tests/eval/routing/evaluate.py [--bin PATH] [--folds 5]
        [--thresholds 0.3,0.4,0.5,0.6] [--recall-target 0.95] [--drop F,...]
        [--bench] [--json]

Also reported: a leave-one-family-out run (every kind of task unseen in
training: a stress test), the shipped default weights (in-sample: they were
fitted on the whole set), the shipped defaults on holdout.jsonl (a blind set
written after the features and weights were frozen) and per-family errors of
the held-out run.
"""
import argparse
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fit  # noqa: E402

PRICES = {"small": (0.15, 0.60), "large": (2.50, 10.00)}
DEFAULT_OUT = 300
GRID = [round(0.01 * i, 2) for i in range(1, 100)]


def cost(row_tokens, tier):
    pin, pout = PRICES[tier]
    tin, tout = row_tokens
    return (tin * pin + tout * pout) / 1e6


def tokens(out_row):
    f = out_row["features"]
    mt = f.get("max_tokens")
    return f["est_tokens"], (mt if mt is not None else DEFAULT_OUT)


def metrics(labels, scores, toks, threshold):
    """labels: 1 large; scores: C scores; toks: (in, out) per row."""
    n = len(labels)
    tp = fp = tn = fn = 0
    routed = large_cost = 0.0
    for y, s, t in zip(labels, scores, toks):
        big = s >= threshold
        large_cost += cost(t, "large")
        routed += cost(t, "large" if big else "small")
        if big and y:
            tp += 1
        elif big and not y:
            fp += 1
        elif not big and y:
            fn += 1
        else:
            tn += 1
    return {
        "threshold": threshold,
        "n": n,
        "accuracy": (tp + tn) / n,
        "small_share": (tn + fn) / n,
        "large_recall": tp / (tp + fn) if tp + fn else 1.0,
        "small_recall": tn / (tn + fp) if tn + fp else 1.0,
        # Requests that got a tier able to answer them: everything except
        # large-needing requests sent small.
        "quality_kept": 1 - fn / n,
        "cost_saved": 1 - routed / large_cost if large_cost else 0.0,
        "cost_routed_usd": routed,
        "cost_always_large_usd": large_cost,
        "missed_large": fn,
        "needless_large": fp,
    }


def choose_threshold(labels, scores, toks, recall_target):
    """Largest saving with large recall >= target; ties go to the lower threshold."""
    best = None
    for t in GRID:
        m = metrics(labels, scores, toks, t)
        if m["large_recall"] + 1e-12 < recall_target:
            continue
        if best is None or m["cost_saved"] > best["cost_saved"] + 1e-12:
            best = m
    return best["threshold"] if best else GRID[0]


def group_folds(rows, k, seed):
    """Assigns each group to a fold: groups shuffled, then greedily to the
    smallest fold, large and small labels balanced separately."""
    groups = {}
    for i, r in enumerate(rows):
        groups.setdefault(r["group"], []).append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    keys.sort(key=lambda g: -len(groups[g]))  # big groups first, stable within size
    size = {lab: [0] * k for lab in ("small", "large")}
    fold_of = {}
    for g in keys:
        lab = rows[groups[g][0]]["label"]
        f = min(range(k), key=lambda j: size[lab][j])
        size[lab][f] += len(groups[g])
        fold_of[g] = f
    return [fold_of[r["group"]] for r in rows]


def cross_validate(binary, rows, xs, labels, folds, l2, drop, recall_target):
    """Returns held-out scores, per-fold tuned thresholds and fold weights."""
    k = max(folds) + 1
    held = [None] * len(rows)
    tuned = [None] * len(rows)
    per_fold = []
    for f in range(k):
        train = [i for i in range(len(rows)) if folds[i] != f]
        test = [i for i in range(len(rows)) if folds[i] == f]
        bias, weights = fit.rounded(*fit.fit_logreg([xs[i] for i in train],
                                                    [labels[i] for i in train], l2, drop))
        out = fit.run_scorer(binary, rows, fit.config_section(bias, weights), inputs=False)
        scores = [o["score"] for o in out]
        toks = [tokens(o) for o in out]
        t = choose_threshold([labels[i] for i in train], [scores[i] for i in train],
                             [toks[i] for i in train], recall_target)
        for i in test:
            held[i] = scores[i]
            tuned[i] = t
        per_fold.append({"fold": f, "n_test": len(test), "threshold": t, "bias": bias,
                         "weights": dict(zip(fit.FEATURES, weights))})
    return held, tuned, per_fold


def tuned_metrics(labels, scores, toks, tuned):
    """Metrics when each row is decided by its own fold's chosen threshold."""
    decided = [1.0 if s >= t else 0.0 for s, t in zip(scores, tuned)]
    m = metrics(labels, decided, toks, 0.5)
    m["threshold"] = "per fold"
    return m


def fmt_row(name, m):
    return "| %s | %s | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %d | %d |" % (
        name, m["threshold"] if isinstance(m["threshold"], str) else "%.2f" % m["threshold"],
        100 * m["accuracy"], 100 * m["small_share"], 100 * m["large_recall"],
        100 * m["quality_kept"], 100 * m["cost_saved"], m["missed_large"], m["needless_large"])


HEADER = ("| run | threshold | accuracy | routed small | large recall | quality kept | "
          "cost saved vs always-large | large sent small | small sent large |\n"
          "|---|---|---|---|---|---|---|---|---|")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="path of ifq-complexity-score")
    ap.add_argument("--data", default=fit.LABELED)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6")
    ap.add_argument("--recall-target", type=float, default=0.95)
    ap.add_argument("--l2", type=float, default=fit.DEFAULT_L2)
    ap.add_argument("--drop", default=fit.DEFAULT_DROP,
                    help="comma-separated features to leave out (default %(default)s; "
                         "'' keeps all)")
    ap.add_argument("--holdout", default=os.path.join(fit.HERE, "holdout.jsonl"),
                    help="blind set scored with the shipped defaults ('' to skip)")
    ap.add_argument("--bench", action="store_true", help="also time the C scorer")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    drop = [d for d in args.drop.split(",") if d]
    binary = fit.find_bin(args.bin)
    rows = fit.load_labeled(args.data)
    labels = [1 if r["label"] == "large" else 0 for r in rows]
    base = fit.run_scorer(binary, rows)  # shipped defaults, and the model inputs
    xs = [o["x"] for o in base]
    toks = [tokens(o) for o in base]
    thresholds = [float(t) for t in args.thresholds.split(",") if t]

    report = {"n": len(rows), "large": sum(labels), "folds": args.folds,
              "recall_target": args.recall_target, "drop": drop}

    # 1. Grouped k-fold: the headline.
    folds = group_folds(rows, args.folds, args.seed)
    held, tuned, per_fold = cross_validate(binary, rows, xs, labels, folds, args.l2, drop,
                                           args.recall_target)
    cv = [metrics(labels, held, toks, t) for t in thresholds]
    cv_tuned = tuned_metrics(labels, held, toks, tuned)
    fold_ts = sorted(p["threshold"] for p in per_fold)
    median_t = fold_ts[len(fold_ts) // 2]
    recommended = round(round(median_t / 0.05) * 0.05, 2)
    cv_rec = metrics(labels, held, toks, recommended)
    report["cv"] = {"fixed": cv, "tuned": cv_tuned, "per_fold": per_fold,
                    "recommended_threshold": recommended, "at_recommended": cv_rec}

    # 2. Leave one family out: each kind of task never seen in training.
    fams = sorted({r["family"] for r in rows})
    fam_folds = [fams.index(r["family"]) for r in rows]
    lofo, lofo_tuned, _ = cross_validate(binary, rows, xs, labels, fam_folds, args.l2, drop,
                                         args.recall_target)
    report["leave_family_out"] = {
        "fixed": [metrics(labels, lofo, toks, t) for t in thresholds],
        "at_recommended": metrics(labels, lofo, toks, recommended)}

    # 3. The shipped defaults (in-sample).
    default_scores = [o["score"] for o in base]
    report["defaults_in_sample"] = [metrics(labels, default_scores, toks, t)
                                    for t in sorted(set(thresholds + [recommended]))]

    # 4. The blind set, with the shipped defaults: written after they were frozen.
    if args.holdout and os.path.exists(args.holdout):
        hrows = fit.load_labeled(args.holdout)
        hout = fit.run_scorer(binary, hrows, inputs=False)
        hl = [1 if r["label"] == "large" else 0 for r in hrows]
        ht = [tokens(o) for o in hout]
        hs = [o["score"] for o in hout]
        report["holdout_defaults"] = [metrics(hl, hs, ht, t)
                                      for t in sorted(set(thresholds + [recommended]))]
        report["holdout_n"] = [len(hrows), sum(hl)]

    # 5. Errors of the held-out run at the recommended threshold, per family.
    fam_err = {}
    for r, y, s in zip(rows, labels, held):
        e = fam_err.setdefault(r["family"], [0, 0])
        e[0] += 1
        e[1] += int((s >= recommended) != bool(y))
    report["cv_family_errors"] = {f: {"n": v[0], "wrong": v[1]} for f, v in sorted(fam_err.items())
                                  if v[1]}

    if args.bench:
        res = subprocess.run([binary, "--bench", "200"],
                             input="".join(json.dumps(r) + "\n" for r in rows).encode(),
                             capture_output=True, check=True)
        report["bench"] = res.stderr.decode().strip()

    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    n_small = len(rows) - sum(labels)
    print("labeled set: %d requests, %d small (%.0f%%), %d large; %d folds grouped by template; "
          "recall target %.2f%s" % (len(rows), n_small, 100.0 * n_small / len(rows), sum(labels),
                                    args.folds, args.recall_target,
                                    "; dropped " + ",".join(drop) if drop else ""))
    print()
    print(HEADER)
    for m in cv:
        print(fmt_row("held-out (CV)", m))
    print(fmt_row("held-out, threshold tuned per fold", cv_tuned))
    print(fmt_row("held-out at recommended", cv_rec))
    for m in report["leave_family_out"]["fixed"]:
        print(fmt_row("leave-one-family-out", m))
    print(fmt_row("leave-one-family-out at recommended", report["leave_family_out"]["at_recommended"]))
    for m in report["defaults_in_sample"]:
        print(fmt_row("shipped defaults (in-sample)", m))
    for m in report.get("holdout_defaults", []):
        print(fmt_row("shipped defaults on holdout.jsonl (blind, %d: %d large)" %
                      tuple(report["holdout_n"]), m))
    print()
    print("per-fold thresholds (chosen on training folds): %s -> recommended default %.2f" %
          (", ".join("%.2f" % t for t in fold_ts), recommended))
    print("held-out errors by family at %.2f: %s" % (recommended, ", ".join(
        "%s %d/%d" % (f, v["wrong"], v["n"]) for f, v in report["cv_family_errors"].items())))
    if args.bench:
        print("C scorer: " + report["bench"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
