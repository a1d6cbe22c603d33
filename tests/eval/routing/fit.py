#!/usr/bin/env python3
"""fit.py - fits the cost router's weights on the labeled set.

The features come from the C scorer itself (ifq-complexity-score --inputs),
so the model is fitted on exactly what lib/complexity.c computes. The fit is
an L2-regularised logistic regression (Newton's method; the intercept is not
penalised); the weights are rounded to two decimals, as they are embedded in
lib/complexity.c and written in config files.

    python3 tests/eval/routing/fit.py [--bin build/bin/ifq-complexity-score]
                                      [--l2 0.001] [--drop max_tokens]

prints the fitted weights as a config section (JSON) and as the C
initialiser for lib/complexity.c. Pure standard library; evaluate.py reuses
these functions for its cross-validation.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
LABELED = os.path.join(HERE, "labeled.jsonl")
FEATURES = ["len", "code", "code_task", "math", "turns", "hard_q", "easy_q", "constraints",
            "max_tokens", "system"]
C_ENUM = ["IFQ_CX_LEN", "IFQ_CX_CODE", "IFQ_CX_CODE_TASK", "IFQ_CX_MATH", "IFQ_CX_TURNS",
          "IFQ_CX_HARD_Q", "IFQ_CX_EASY_Q", "IFQ_CX_CONSTRAINTS", "IFQ_CX_MAX_TOKENS",
          "IFQ_CX_SYSTEM"]
DEFAULT_L2 = 0.001
# max_tokens is left out by default: in labeled.jsonl it was assigned at
# random with a made-up, weak link to the label (see README.md), so a weight
# fitted on it would encode that invention. Fit it on real traffic instead.
DEFAULT_DROP = "max_tokens"


def find_bin(path=None):
    cands = [path, os.environ.get("IFQ_COMPLEXITY_SCORE"),
             os.path.join(ROOT, "build", "bin", "ifq-complexity-score")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    sys.exit("ifq-complexity-score not found: build it (ninja -C build ifq-complexity-score) "
             "or pass --bin / set IFQ_COMPLEXITY_SCORE")


def load_labeled(path=LABELED):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def run_scorer(binary, rows, config=None, inputs=True):
    """Runs the C scorer over rows; returns its output objects in order.
    config: a dict written as the --config section, or None for defaults."""
    args = [binary]
    cfg_file = None
    if config is not None:
        cfg_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(config, cfg_file)
        cfg_file.close()
        args += ["--config", cfg_file.name]
    if inputs:
        args.append("--inputs")
    try:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        res = subprocess.run(args, input=data.encode("utf-8"), capture_output=True, check=False)
    finally:
        if cfg_file:
            os.unlink(cfg_file.name)
    if res.returncode != 0:
        sys.exit("ifq-complexity-score failed: " + res.stderr.decode(errors="replace"))
    out = [json.loads(l) for l in res.stdout.decode("utf-8").splitlines() if l.strip()]
    if len(out) != len(rows):
        sys.exit("ifq-complexity-score returned %d lines for %d requests" % (len(out), len(rows)))
    return out


def _solve(a, b):
    """Solves a x = b (small dense system) by Gaussian elimination."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        if abs(m[c][c]) < 1e-12:
            continue
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                if f:
                    for k in range(c, n + 1):
                        m[r][k] -= f * m[c][k]
    return [m[i][n] / m[i][i] if abs(m[i][i]) >= 1e-12 else 0.0 for i in range(n)]


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def fit_logreg(xs, ys, l2=DEFAULT_L2, drop=(), iters=50):
    """Logistic regression; returns (bias, weights). Dropped features get 0."""
    keep = [i for i in range(len(FEATURES)) if FEATURES[i] not in drop]
    d = len(keep) + 1
    w = [0.0] * d  # w[0] is the intercept
    n = float(len(xs))
    rows = [[1.0] + [x[i] for i in keep] for x in xs]
    for _ in range(iters):
        g = [0.0] * d
        h = [[0.0] * d for _ in range(d)]
        for r, y in zip(rows, ys):
            p = sigmoid(sum(a * b for a, b in zip(w, r)))
            s = p * (1 - p)
            for i in range(d):
                g[i] += (p - y) * r[i] / n
                ri = r[i] * s / n
                for j in range(i, d):
                    h[i][j] += ri * r[j]
        for i in range(d):
            for j in range(i):
                h[i][j] = h[j][i]
        for i in range(1, d):
            g[i] += l2 * w[i]
            h[i][i] += l2
        step = _solve(h, g)
        w = [a - b for a, b in zip(w, step)]
        if max(abs(s) for s in step) < 1e-9:
            break
    weights = [0.0] * len(FEATURES)
    for k, i in enumerate(keep):
        weights[i] = w[k + 1]
    return w[0], weights


def rounded(bias, weights):
    return round(bias, 2), [round(v, 2) for v in weights]


def config_section(bias, weights, threshold=None):
    c = {"bias": bias, "weights": dict(zip(FEATURES, weights))}
    if threshold is not None:
        c["threshold"] = threshold
    return c


def score(bias, weights, x):
    return sigmoid(bias + sum(a * b for a, b in zip(weights, x)))


def c_initialiser(bias, weights):
    lines = ["static const double default_bias = %.2f;" % bias,
             "static const double default_weights[IFQ_CX_NFEAT] = {"]
    for e, v in zip(C_ENUM, weights):
        lines.append("    [%s] = %.2f," % (e, v))
    lines.append("};")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="path of ifq-complexity-score")
    ap.add_argument("--data", default=LABELED)
    ap.add_argument("--l2", type=float, default=DEFAULT_L2)
    ap.add_argument("--drop", default=DEFAULT_DROP,
                    help="comma-separated features to leave out (default %(default)s; "
                         "'' keeps all)")
    args = ap.parse_args()
    drop = [d for d in args.drop.split(",") if d]
    for d in drop:
        if d not in FEATURES:
            sys.exit("unknown feature %s (known: %s)" % (d, ", ".join(FEATURES)))
    rows = load_labeled(args.data)
    out = run_scorer(find_bin(args.bin), rows)
    xs = [o["x"] for o in out]
    ys = [1 if r["label"] == "large" else 0 for r in rows]
    bias, weights = rounded(*fit_logreg(xs, ys, args.l2, drop))
    print("# fitted on %d lines (%d large), l2 %g%s" %
          (len(rows), sum(ys), args.l2, ", dropped " + ",".join(drop) if drop else ""))
    print(json.dumps(config_section(bias, weights), indent=2))
    print()
    print(c_initialiser(bias, weights))
    return 0


if __name__ == "__main__":
    sys.exit(main())
