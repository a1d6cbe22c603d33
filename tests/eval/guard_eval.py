#!/usr/bin/env python3
"""guard_eval.py - measures the guardrail engine through `inferq guard scan`.

PII: precision, recall and F1 per pattern entity on a presidio-research style
dataset (full_text + spans), strict (exact span) and overlap matching.

Injection: true and false positive rates on the held-out rows of every
cross-validation fold written by tools/guard_train.py --cv-dir: each fold's
rows are scanned with that fold's model (guardrails.model_path), so no row is
scored by a model that saw it. The rules were written without tuning on the
data.

    tests/eval/guard_eval.py --pii ../shared/data/guardrails/pii_synth_dataset_v2.json
    tests/eval/guard_eval.py --injection-cv /tmp/guard-cv

--inferq names the binary (default build/bin/inferq); it is run as
`INFERQ --config CFG guard scan --policy P --jsonl`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

PATTERN_ENTITIES = ["CREDIT_CARD", "PHONE_NUMBER", "EMAIL_ADDRESS", "US_SSN", "IBAN_CODE",
                    "IP_ADDRESS"]


def run_scan(inferq, config, policy, rows):
    """rows: list of {"id":..., "text":...}; returns {id: output object}."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as cf:
        json.dump(config, cf)
        cfg_path = cf.name
    try:
        inp = "".join(json.dumps(r) + "\n" for r in rows)
        p = subprocess.run([inferq, "--config", cfg_path, "guard", "scan", "--policy", policy,
                            "--jsonl"], input=inp.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
        if p.returncode not in (0, 1):
            sys.exit("inferq guard scan failed (%d): %s" % (p.returncode, p.stderr.decode()))
        out = {}
        for line in p.stdout.decode().split("\n"):
            if not line.strip():
                continue
            o = json.loads(line)
            if "id" in o:
                out[o["id"]] = o
        return out
    finally:
        os.unlink(cfg_path)


def prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return round(p, 4), round(r, 4), round(f, 4)


def eval_pii(args):
    data = json.load(open(args.pii, encoding="utf-8"))
    config = {"guardrails": {"policies": {"eval": {"scope": "all",
                                                    "detectors": {"pii": "flag"}}}}}
    rows = [{"id": i, "text": r["full_text"]} for i, r in enumerate(data)]
    out = run_scan(args.inferq, config, "eval", rows)
    strict = {e: [0, 0, 0] for e in PATTERN_ENTITIES}
    overlap = {e: [0, 0, 0] for e in PATTERN_ENTITIES}
    other_fp = {}
    errors = []
    for i, r in enumerate(data):
        gold = [(s["entity_type"], s["start_position"], s["end_position"]) for s in r["spans"]
                if s["entity_type"] in PATTERN_ENTITIES]
        pred = []
        for f in out.get(i, {}).get("findings", []):
            for s, e in f.get("spans", []):
                pred.append((f["entity"], s, e))
        for ent in PATTERN_ENTITIES:
            g = [x for x in gold if x[0] == ent]
            p = [x for x in pred if x[0] == ent]
            tp = len(set(g) & set(p))
            strict[ent][0] += tp
            strict[ent][1] += len(p) - tp
            strict[ent][2] += len(g) - tp
            used = set()
            otp = 0
            for pe in p:
                for j, ge in enumerate(g):
                    if j not in used and pe[1] < ge[2] and ge[1] < pe[2]:
                        used.add(j)
                        otp += 1
                        break
            overlap[ent][0] += otp
            overlap[ent][1] += len(p) - otp
            overlap[ent][2] += len(g) - otp
            if args.show_errors:
                for pe in p:
                    if pe not in g:
                        errors.append(("FP", ent, r["full_text"][pe[1]:pe[2]], i))
                for ge in g:
                    if ge not in p:
                        errors.append(("FN", ent, r["full_text"][ge[1]:ge[2]], i))
        for x in pred:
            if x[0] not in PATTERN_ENTITIES:
                other_fp[x[0]] = other_fp.get(x[0], 0) + 1
    res = {"dataset": os.path.basename(args.pii), "rows": len(data), "entities": {}}
    for ent in PATTERN_ENTITIES:
        sp = prf(*strict[ent])
        op = prf(*overlap[ent])
        res["entities"][ent] = {
            "support": strict[ent][0] + strict[ent][2],
            "strict": {"precision": sp[0], "recall": sp[1], "f1": sp[2],
                       "tp": strict[ent][0], "fp": strict[ent][1], "fn": strict[ent][2]},
            "overlap": {"precision": op[0], "recall": op[1], "f1": op[2]},
        }
    res["other_entities_predicted"] = other_fp
    print(json.dumps(res, indent=1))
    for e in errors:
        print("%s %-13s %r (row %d)" % e, file=sys.stderr)


def eval_injection(args):
    cv = args.injection_cv
    rows = [json.loads(l) for l in open(os.path.join(cv, "rows.jsonl"), encoding="utf-8")]
    folds = sorted({r["fold"] for r in rows})
    scores = {}
    for variant, use_model in (("rules+model", True), ("rules_only", False)):
        sc = {}
        for k in folds:
            config = {"guardrails": {
                "model_path": os.path.join(cv, "fold_%d.bin" % k),
                "policies": {"eval": {"scope": "all", "injection_model": use_model,
                                      "detectors": {"injection": "flag"}}}}}
            part = [{"id": r["id"], "text": r["text"]} for r in rows if r["fold"] == k]
            out = run_scan(args.inferq, config, "eval", part)
            for r in rows:
                if r["fold"] == k:
                    o = out.get(r["id"], {})
                    flagged = any(f.get("detector") == "injection" for f in o.get("findings", []))
                    sc[r["id"]] = (o.get("injection_score", 0.0), flagged)
            if not use_model and k == folds[0]:
                pass
        scores[variant] = sc
    labels = {r["id"]: r["label"] for r in rows}
    pos = sum(labels.values())
    neg = len(labels) - pos
    res = {"rows": len(rows), "jailbreak": pos, "benign": neg, "folds": len(folds)}
    for variant, sc in scores.items():
        tp = sum(1 for i, (s, f) in sc.items() if f and labels[i] == 1)
        fp = sum(1 for i, (s, f) in sc.items() if f and labels[i] == 0)
        negs = sorted((s for i, (s, f) in sc.items() if labels[i] == 0), reverse=True)
        allowed = int(0.03 * len(negs))
        thr = negs[allowed] if allowed < len(negs) else -1
        tp3 = sum(1 for i, (s, f) in sc.items() if labels[i] == 1 and s > thr)
        fp3 = sum(1 for i, (s, f) in sc.items() if labels[i] == 0 and s > thr)
        res[variant] = {
            "at_policy_threshold": {"tpr": round(tp / pos, 4), "fpr": round(fp / neg, 4),
                                    "tp": tp, "fp": fp},
            "roc_point_fpr_le_0.03": {"threshold": round(thr, 4), "tpr": round(tp3 / pos, 4),
                                      "fpr": round(fp3 / neg, 4)},
        }
    print(json.dumps(res, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inferq", default="build/bin/inferq")
    ap.add_argument("--pii", help="presidio-research style JSON dataset")
    ap.add_argument("--injection-cv", help="directory written by tools/guard_train.py --cv-dir")
    ap.add_argument("--show-errors", action="store_true", help="print FP/FN values to stderr")
    args = ap.parse_args()
    if not args.pii and not args.injection_cv:
        ap.error("give --pii and/or --injection-cv")
    if args.pii:
        eval_pii(args)
    if args.injection_cv:
        eval_injection(args)


if __name__ == "__main__":
    main()
