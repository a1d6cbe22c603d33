#!/usr/bin/env python3
"""guard_train.py - trains the guardrail engine's prompt-injection model.

A logistic regression over hashed character n-grams (see lib/guard_model.c
for the exact feature definition, which this file mirrors byte for byte),
trained with AdaGrad on a labelled CSV (columns prompt,type; type is
"benign" or "jailbreak"). Pure Python, no dependencies.

    # cross-validation folds (models + held-out rows for tests/eval), then
    # the shipped model trained on every row:
    tools/guard_train.py --csv ../shared/data/guardrails/jailbreak_train.csv \
        --cv-dir /tmp/guard-cv --out data/guard/injection_model.bin

Figures must come from the folds (tests/eval/guard_eval.py --injection-cv
/tmp/guard-cv runs the C engine, rules + model, on each fold's held-out
rows); the printed model-only figures are the same held-out rows.
"""
import argparse
import csv
import json
import math
import os
import random
import struct
import sys

MASK64 = (1 << 64) - 1
K1 = 0x9E3779B97F4A7C15
K2 = 0xC2B2AE3D27D4EB4F
PUNCT = ".,!?'\":;-()[]{}<>/\\|@#$%&*+=_~`^"


def _code(b):
    if 97 <= b <= 122:
        return b - 96
    if 65 <= b <= 90:
        return b - 64
    if 48 <= b <= 57:
        return 27
    if b >= 0xC0:
        return 60
    if b >= 0x80:
        return 0  # UTF-8 continuation byte: skipped
    if 32 < b < 127:
        i = PUNCT.find(chr(b))
        return 29 + i if i >= 0 else 28
    return 28


CODES = [_code(b) for b in range(256)]


def features(data, bits, nmin, nmax, max_bytes):
    """Returns ({bucket: count}, total) exactly as ifq_gmodel_score() sees it."""
    data = data[:max_bytes]
    shift = 64 - bits
    feats = {}
    total = 0
    g = 0
    seen = 0
    prev = 0
    codes = CODES
    seq = [28]
    seq.extend(codes[b] for b in data)
    seq.append(28)
    for c in seq:
        if c == 0 or (c == 28 and prev == 28):
            continue
        prev = c
        g = ((g << 6) | c) & 0x3FFFFFFF
        seen += 1
        top = nmax if seen >= nmax else seen
        for n in range(nmin, top + 1):
            gram = g & ((1 << (6 * n)) - 1)
            idx = ((gram * K1 + n * K2) & MASK64) >> shift
            feats[idx] = feats.get(idx, 0) + 1
            total += 1
    return feats, total


def vectorize(texts, args):
    out = []
    for t in texts:
        f, total = features(t.encode("utf-8", "surrogatepass"), args.bits, args.nmin, args.nmax,
                            args.max_bytes)
        if total:
            norm = 1.0 / math.sqrt(total)
            out.append([(k, v * norm) for k, v in f.items()])
        else:
            out.append([])
    return out


def train(X, y, args, seed):
    dim = 1 << args.bits
    w = [0.0] * dim
    g2 = [1e-8] * dim
    b = 0.0
    gb2 = 1e-8
    npos = sum(y)
    nneg = len(y) - npos
    # balanced class weights, so the boundary does not lean to the majority
    cw = {1: len(y) / (2.0 * max(npos, 1)), 0: len(y) / (2.0 * max(nneg, 1))}
    order = list(range(len(y)))
    rng = random.Random(seed)
    lr = args.lr
    l2 = args.l2
    for _ in range(args.epochs):
        rng.shuffle(order)
        for i in order:
            xi = X[i]
            z = b
            for k, v in xi:
                z += w[k] * v
            p = 1.0 / (1.0 + math.exp(-z)) if z > -30 else 0.0
            err = (p - y[i]) * cw[y[i]]
            for k, v in xi:
                gk = err * v + l2 * w[k]
                g2[k] += gk * gk
                w[k] -= lr * gk / math.sqrt(g2[k])
            gb2 += err * err
            b -= lr * err / math.sqrt(gb2)
    return w, b


def quantize(w):
    m = max(abs(x) for x in w) or 1.0
    scale = m / 127.0
    q = [max(-127, min(127, int(round(x / scale)))) for x in w]
    return q, scale


def write_model(path, q, scale, bias, args):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"IFQNGM1\0")
        f.write(struct.pack("<IIIIff", args.bits, args.nmin, args.nmax, args.max_bytes, bias,
                            scale))
        f.write(struct.pack("<%db" % len(q), *q))


def score_q(xi, q, scale, bias):
    s = 0.0
    for k, v in xi:
        s += q[k] * v
    z = bias + scale * s
    return 1.0 / (1.0 + math.exp(-z)) if z > -30 else 0.0


def load_csv(path):
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            t = row.get("type", "").strip().lower()
            if t not in ("benign", "jailbreak"):
                continue
            texts.append(row["prompt"])
            labels.append(1 if t == "jailbreak" else 0)
    return texts, labels


def folds_for(labels, k, seed):
    """Stratified fold number per row, deterministic for a seed."""
    rng = random.Random(seed)
    fold = [0] * len(labels)
    for cls in (0, 1):
        idx = [i for i, y in enumerate(labels) if y == cls]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            fold[i] = j % k
    return fold


def tpr_at_fpr(scores, labels, max_fpr):
    neg = sorted((s for s, y in zip(scores, labels) if y == 0), reverse=True)
    pos = [s for s, y in zip(scores, labels) if y == 1]
    allowed = int(math.floor(max_fpr * len(neg)))
    thr = neg[allowed] if allowed < len(neg) else -1.0  # strictly above the (allowed+1)-th negative
    tp = sum(1 for s in pos if s > thr)
    return tp / max(len(pos), 1), thr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--out", help="write the model trained on all rows here")
    ap.add_argument("--cv-dir", help="write fold models + held-out rows here")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--bits", type=int, default=16)
    ap.add_argument("--nmin", type=int, default=3)
    ap.add_argument("--nmax", type=int, default=5)
    ap.add_argument("--max-bytes", type=int, default=16384)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--l2", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    texts, labels = load_csv(args.csv)
    print("rows: %d (%d jailbreak, %d benign)" % (len(texts), sum(labels),
                                                  len(labels) - sum(labels)), file=sys.stderr)
    X = vectorize(texts, args)

    if args.cv_dir:
        os.makedirs(args.cv_dir, exist_ok=True)
        fold = folds_for(labels, args.folds, args.seed)
        scores = [0.0] * len(labels)
        for k in range(args.folds):
            tr = [i for i in range(len(labels)) if fold[i] != k]
            w, b = train([X[i] for i in tr], [labels[i] for i in tr], args, args.seed + k)
            q, scale = quantize(w)
            write_model(os.path.join(args.cv_dir, "fold_%d.bin" % k), q, scale, b, args)
            for i in range(len(labels)):
                if fold[i] == k:
                    scores[i] = score_q(X[i], q, scale, b)
            print("fold %d trained on %d rows" % (k, len(tr)), file=sys.stderr)
        with open(os.path.join(args.cv_dir, "rows.jsonl"), "w", encoding="utf-8") as f:
            for i in range(len(labels)):
                f.write(json.dumps({"id": i, "fold": fold[i], "label": labels[i],
                                    "text": texts[i]}) + "\n")
        pos = sum(labels)
        neg = len(labels) - pos
        tp = sum(1 for s, y in zip(scores, labels) if y == 1 and s >= 0.5)
        fp = sum(1 for s, y in zip(scores, labels) if y == 0 and s >= 0.5)
        r3, thr = tpr_at_fpr(scores, labels, 0.03)
        print(json.dumps({"model_only_cv": {"folds": args.folds, "tpr_at_0.5": round(tp / pos, 4),
                                            "fpr_at_0.5": round(fp / neg, 4),
                                            "tpr_at_fpr_0.03": round(r3, 4),
                                            "threshold_fpr_0.03": round(thr, 4)}}))

    if args.out:
        w, b = train(X, labels, args, args.seed)
        q, scale = quantize(w)
        write_model(args.out, q, scale, b, args)
        print("wrote %s (%d bytes)" % (args.out, 32 + len(q)), file=sys.stderr)


if __name__ == "__main__":
    main()
