/*
 * complexity.h - the cost router's judgement: how likely a request needs the
 * large model tier, from cheap features of the request line.
 *
 * One pass over the message text (bounded) yields a handful of features:
 * estimated prompt tokens, code and math content, turns, question-type cues,
 * constraint cues, requested max_tokens and system prompt length. They are
 * scaled to about [0, 1] and combined linearly into a logit; the score is its
 * logistic, a number in [0, 1] read as "probability the large tier is
 * needed". score >= threshold routes large. metadata.tier ("small"/"large")
 * forces the decision; priority shifts the logit. The default weights were
 * fitted by logistic regression on tests/eval/routing/labeled.jsonl; see
 * docs/routing-cost.md. Pure: no I/O, no global state apart from a keyword
 * table built once (thread-safe), so any thread may call it.
 */
#ifndef IFQ_COMPLEXITY_H
#define IFQ_COMPLEXITY_H

#include <jansson.h>
#include <stddef.h>

/* The model's inputs, in the order of ifq_complexity_cfg_t.weights. The
 * names are the keys of the config's `weights` mapping and of the result's
 * features.contrib object. */
typedef enum {
    IFQ_CX_LEN = 0,     /* log2(1 + est_tokens) / 14, at most 1 */
    IFQ_CX_CODE,        /* code content in the text: fences, code keywords, symbol density */
    IFQ_CX_CODE_TASK,   /* cues asking for code work (implement, debug, refactor...), /3 */
    IFQ_CX_MATH,        /* math content: LaTeX, operators, math terms, numbers with units */
    IFQ_CX_TURNS,       /* (user/assistant messages - 1) / 8, at most 1 */
    IFQ_CX_HARD_Q,      /* reasoning cues (why, explain, compare, design, step by step...), /3 */
    IFQ_CX_EASY_Q,      /* simple-task cues (what is, translate, list, extract, typos...), /3 */
    IFQ_CX_CONSTRAINTS, /* constraint cues (must, at least, without, budget...), /6 */
    IFQ_CX_MAX_TOKENS,  /* log2(1 + max_tokens) / 12 (absent: 300), at most 1 */
    IFQ_CX_SYSTEM,      /* log2(1 + system prompt tokens) / 12, at most 1 */
    IFQ_CX_NFEAT
} ifq_cx_feature_t;

/* Feature names indexed by ifq_cx_feature_t ("len", "code", ...). */
extern const char *const ifq_complexity_feature_names[IFQ_CX_NFEAT];

typedef struct {
    double threshold;             /* score >= threshold -> large; in [0, 1] */
    double bias;                  /* the logit's intercept */
    double weights[IFQ_CX_NFEAT]; /* per feature, indexed by ifq_cx_feature_t */
    double priority_bias[3];      /* added to the logit; indexed normal=0, high=1, low=2 */
    int honor_tier_hint;          /* 1: metadata.tier small|large forces the decision */
} ifq_complexity_cfg_t;

/* Fills out from a config section (an alias with strategy: cost, or
 * routing.auto). NULL or JSON null -> the defaults. Keys:
 *   threshold: number in [0, 1]
 *   bias: number
 *   weights: {feature name: number}   (features not named keep their default)
 *   priority_bias: {high|normal|low: number}
 *   honor_tier_hint: boolean
 * The router's own keys (strategy, small, large, description, health_aware)
 * are accepted and ignored; any other key is an error. Returns IFQ_OK, or IFQ_ERR_CONFIG
 * with errstr naming the key relative to the section (e.g.
 * "weights.code: must be a number"); the caller prefixes the section's path.
 * out is left holding the defaults on error. */
int ifq_complexity_cfg_parse(const json_t *section, ifq_complexity_cfg_t *out, char *errstr,
                             size_t errstr_size);

/* The raw measurements behind one score. */
typedef struct {
    double x[IFQ_CX_NFEAT]; /* the scaled model inputs */
    long est_tokens;        /* ceil(bytes / 4) over all message text, system included */
    long system_tokens;     /* the same over system/developer messages */
    long max_tokens;        /* body.max_tokens / max_completion_tokens, -1 when absent */
    int turns;              /* user + assistant (+ tool) messages */
    int code_cues;          /* code-work cue words */
    int hard_cues;          /* reasoning cue words and phrases */
    int easy_cues;          /* simple-task cue words and phrases */
    int constraint_cues;
    int fences;           /* ``` fences seen */
    int priority;         /* 0 normal, 1 high, 2 low */
    int tier_hint;        /* 0 none, 1 small, 2 large (metadata.tier) */
    size_t scanned_bytes; /* bytes of text actually scanned (bounded) */
} ifq_complexity_raw_t;

/* Measures a request line (the whole line: body, metadata, priority).
 * Never fails on any JSON: a missing or odd body gives zero features.
 * Text beyond the scan bound (8 KiB head + 2 KiB tail per message, 32 KiB per
 * request) still counts towards est_tokens but is not searched for cues. */
void ifq_complexity_measure(const json_t *request, ifq_complexity_raw_t *out);

typedef struct {
    double score; /* logistic of the logit, in [0, 1] */
    double logit;
    int large;          /* the decision: 1 large tier, 0 small tier */
    json_t *features;   /* caller owns (json_decref); see below */
    const char *reason; /* static string saying which rule decided */
} ifq_complexity_t;

/* Scores a request line. On IFQ_OK out is filled and out->features is a new
 * object the caller owns:
 *   {"est_tokens", "system_tokens", "max_tokens" (null when absent), "turns",
 *    "code" (0..1), "code_cues", "math" (0..1), "question_type"
 *    ("reasoning"|"simple"|"mixed"|"none"), "hard_cues", "easy_cues",
 *    "constraints", "tier_hint" ("small"|"large"|null), "priority",
 *    "logit", "contrib": {feature: weight * input}}
 * reason is one of "metadata.tier=small", "metadata.tier=large",
 * "score>=threshold", "score<threshold". Returns IFQ_ERR_INVALID when
 * request is not an object (out->features NULL), IFQ_ERR_NOMEM when the
 * features object cannot be built (the decision fields are still valid). */
int ifq_complexity_score(const ifq_complexity_cfg_t *cfg, const json_t *request,
                         ifq_complexity_t *out);

/* The score from measurements alone (no JSON); used by the score above and
 * by the evaluation tool. Sets *large when large is not NULL. */
double ifq_complexity_eval(const ifq_complexity_cfg_t *cfg, const ifq_complexity_raw_t *raw,
                           double *logit, int *large, const char **reason);

#endif
