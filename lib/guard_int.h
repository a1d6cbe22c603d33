/*
 * guard_int.h - internals of the guardrail engine shared by lib/guard*.c:
 * the entity and rule tables, the literal prefilter, the
 * n-gram model, compiled policies and the per-text scanner. Nothing here is
 * part of the public API (see guard.h).
 *
 * The engine is two-stage, the way gitleaks uses rule "keywords" and
 * Hyperscan uses literal factors: a first pass over the text finds every
 * rule's trigger literals (caseless, a hashed bitmap filter verified
 * exactly), sums the n-gram model and notes the windows where digits, '@',
 * hex-with-colons or long base64-like runs occur; then only the PCRE2 (JIT)
 * patterns whose trigger fired run, and only over the whole text (literal
 * triggers) or over those windows, and only where cheap necessary
 * conditions (a rule's `requires` literal, an '=' or ':', a digit pair)
 * hold. Prose without PII therefore costs a few table lookups per byte.
 */
#ifndef IFQ_GUARD_INT_H
#define IFQ_GUARD_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"

/* ---- entities ---- */

enum {
    GE_EMAIL = 0,
    GE_PHONE,
    GE_CARD,
    GE_IBAN,
    GE_SSN,
    GE_IP,
    GE_MAC,
    GE_BITCOIN,
    GE_OPENAI,
    GE_ANTHROPIC,
    GE_AWS_KEY_ID,
    GE_AWS_SECRET,
    GE_GITHUB,
    GE_GITLAB,
    GE_SLACK,
    GE_STRIPE,
    GE_GOOGLE,
    GE_PRIVATE_KEY,
    GE_JWT,
    GE_GENERIC_SECRET,
    GE_INJECTION,
    GE_INVISIBLE,
    GE_EXFIL,
    GE_COUNT,
    /* not configurable per entity; produced by custom lists and limits */
    GE_DENY = GE_COUNT,
    GE_ALLOW_MISS,
    GE_LIMIT,
};

enum { GG_PII = 0, GG_SECRETS, GG_INJECTION, GG_CUSTOM, GG_LIMITS, GG_COUNT };

typedef struct {
    const char *name; /* entity name, also the redaction label */
    int group;        /* GG_* */
} ifq_gentity_t;

extern const ifq_gentity_t ifq_guard_entities[GE_COUNT];
extern const char *const ifq_guard_group_names[GG_COUNT];

/* ---- rules ---- */

/* Where a rule's pattern runs. */
enum {
    RG_LIT = 1,  /* whole text, when one of its trigger literals occurs */
    RG_NUM = 2,  /* windows around digit clusters with >= min_digits digits */
    RG_HEX = 4,  /* windows around hex digits joined by ':' or '-' */
    RG_AT = 8,   /* windows around '@' */
    RG_RUN = 16, /* windows around runs of >= min_run base64-alphabet bytes */
};

/* Validators / scorers applied to a match (guard_rules.c). */
enum {
    CK_NONE = 0,
    CK_EMAIL,
    CK_PHONE,
    CK_CARD,
    CK_IBAN,
    CK_SSN,
    CK_IPV4,
    CK_IPV6,
    CK_BITCOIN,
    CK_JWT,
    CK_SECRET_VALUE, /* entropy + classes + not a placeholder */
    CK_TOKEN,        /* a prefixed key: enough entropy, not a placeholder */
    CK_B64TEXT,      /* base64 that decodes to text (encoded payload) */
    CK_HEXTEXT,      /* hex that decodes to text */
    CK_EXFIL,        /* markdown/HTML image URL carrying data */
};

/* Context word lists (Presidio-style score boosts). */
enum { CX_NONE = 0, CX_PHONE, CX_CARD, CX_SSN, CX_IBAN, CX_IP, CX_EMAIL, CX_MAC, CX_CRYPTO };

typedef struct {
    const char *id;       /* stable signal id, reported for injection ("override") */
    int entity;           /* GE_* */
    const char *pattern;  /* PCRE2 pattern, byte mode (no UTF) */
    uint32_t options;     /* extra PCRE2 compile options */
    const char *triggers; /* '|'-separated literals (caseless ASCII; "\\|" is a '|') */
    unsigned regions;     /* RG_* */
    int min_digits;       /* RG_NUM: smallest digit cluster worth running on */
    int group;            /* capture group that is the finding's span (0: whole) */
    double score;         /* base score; for injection rules the signal weight */
    int check;            /* CK_* */
    int ctx;              /* CX_* */
    int min_count;        /* matches needed before the rule counts (0/1: one) */
    /* '|'-separated literals (caseless ASCII) one of which every match
     * contains, NULL if none is known. They go into the literal filter too,
     * so their occurrences are known after the first pass; a region with
     * none of them cannot match and is not run (PCRE2 over a window costs
     * 10-15 cycles a byte; the literal filter has already paid for these). */
    const char *requires;
} ifq_grule_t;

extern const ifq_grule_t ifq_guard_rules[];
extern const size_t ifq_guard_nrules;
#define IFQ_GUARD_MAX_RULES 128
#define IFQ_GUARD_RULE_WORDS ((IFQ_GUARD_MAX_RULES + 63) / 64)

/* Validates/rescoring a match of rule r at text[s..e); returns the score (0
 * rejects). May narrow the span (IBAN). */
double ifq_guard_check(const ifq_grule_t *r, const char *text, size_t len, size_t *s, size_t *e);
/* Context boost for a match at [s, e): words before (and a few after). */
double ifq_guard_context(int ctx, const char *text, size_t len, size_t s, size_t e);

/* ---- literal prefilter ---- */

typedef struct {
    uint64_t w[IFQ_GUARD_RULE_WORDS];
} ifq_rbits_t;

/* Multi-literal filter: every position's next three bytes (case-folded by
 * OR 0x20) are hashed into a 64 Ki-bit bitmap; a set bit sends the position
 * to exact, caseless verification against the literals of that bucket.
 * Unlike an Aho-Corasick DFA (whose table outgrows L1 and turns every byte
 * into a dependent cache miss), each position is independent, so the loop
 * pipelines. Literals are 2..32 bytes; a 2-byte literal is entered under
 * every possible third byte. */
typedef struct {
    uint16_t next; /* next entry in the bucket + 1 (0: end) */
    uint16_t rule; /* rule index */
    uint8_t len;
    char lit[32]; /* folded: ASCII letters in lower case */
} ifq_lit_ent_t;

typedef struct {
    uint8_t bitmap[8192];
    /* second level, tested only where bitmap hits (common English 3-byte
     * prefixes such as "res", "pro", "act" hit often): bitmap4 holds the
     * 4-byte prefixes (ifq_lit_hash4) of the literals of 4 bytes or more,
     * short3 the 3-byte buckets of the shorter ones. A position goes on to
     * verification when bitmap and (short3 or bitmap4) hit. */
    uint8_t bitmap4[8192];
    uint8_t short3[8192];
    uint16_t head[65536]; /* bucket -> first entry + 1 (0: empty) */
    ifq_lit_ent_t *ent;
    size_t nent;
} ifq_lit_t;

static inline uint32_t ifq_lit_hash(uint32_t x)
{
    return (((x | 0x20202020u) & 0xFFFFFFu) * 0x9E3779B1u) >> 16;
}
static inline uint32_t ifq_lit_hash4(uint32_t x)
{
    return ((x | 0x20202020u) * 0x9E3779B1u) >> 16;
}

/* Builds the filter over every rule's triggers, and its `requires`
 * literals under rule index nrules + r. Returns 0 or -1. */
int ifq_lit_build(ifq_lit_t *lf, const ifq_grule_t *rules, size_t nrules);
void ifq_lit_free(ifq_lit_t *lf);
/* ORs into bits the rules whose literal occurs in text (bits nrules + r:
 * one of rule r's `requires` literals). */
void ifq_lit_scan(const ifq_lit_t *lf, const char *text, size_t len, ifq_rbits_t *bits);
/* The process-wide filter (the rule table is static); NULL if it could not
 * be built. */
const ifq_lit_t *ifq_guard_lits(void);

/* ---- n-gram model (guard_model.c) ---- */

typedef struct {
    uint32_t hash_bits;
    uint32_t n_min, n_max;
    uint32_t max_bytes; /* scored prefix of a text */
    float bias;
    float scale;
    int8_t *w; /* 1 << hash_bits weights, owned */
} ifq_gmodel_t;

/* Parses a model blob (see docs/guardrails.md for the layout). */
int ifq_gmodel_load(ifq_gmodel_t *m, const unsigned char *buf, size_t len, char *errstr,
                    size_t errstr_size);
int ifq_gmodel_load_file(ifq_gmodel_t *m, const char *path, char *errstr, size_t errstr_size);
void ifq_gmodel_free(ifq_gmodel_t *m);
/* Probability in [0, 1] that text is a prompt-injection / jailbreak. This
 * is the reference implementation; the scanner computes the same sum fused
 * into its prefilter pass (tests check they agree). */
double ifq_gmodel_score(const ifq_gmodel_t *m, const char *text, size_t len);
/* The byte -> code table of the feature extraction (0: skipped byte). */
const uint8_t *ifq_gmodel_codes(void);
/* Probability from an accumulated weight sum over count n-grams. */
double ifq_gmodel_prob(const ifq_gmodel_t *m, int64_t sum, uint64_t count);

/* The weights shipped with the library (generated at build time). */
extern const unsigned char ifq_guard_model_blob[];
extern const size_t ifq_guard_model_blob_len;

/* ---- engine and policies ---- */

enum { GA_OFF = 0, GA_FLAG, GA_REDACT, GA_MASK, GA_HASH, GA_BLOCK };

typedef struct {
    int action;       /* GA_* */
    double threshold; /* minimum score */
} ifq_gent_cfg_t;

typedef struct {
    char *name;       /* owned */
    pcre2_code *code; /* owned */
    int action;
} ifq_gcustom_t;

typedef struct {
    size_t max_text_bytes;  /* per text; longer texts are scanned up to this and flagged */
    size_t max_total_bytes; /* per request, over all scanned texts */
    size_t max_texts;       /* texts (messages, parts, choices) per request */
    size_t max_findings;    /* per text */
    int64_t time_budget_us; /* per request */
    uint32_t match_limit;   /* PCRE2 match limit per pattern run */
    uint32_t depth_limit;
    uint32_t heap_limit_kib;
    int on_limit; /* GA_BLOCK or GA_FLAG */
} ifq_glimits_t;

enum { GS_LATEST_USER = 1, GS_ALL_USER = 2, GS_ALL = 4, GS_SYSTEM = 8 };

struct ifq_guard_policy {
    char name[IFQ_MAX_NAME + 1];
    const struct ifq_guard *g;
    unsigned scope;                  /* GS_* bits */
    ifq_gent_cfg_t ent[2][GE_COUNT]; /* [IFQ_GUARD_INPUT / OUTPUT][entity] */
    int use_model;
    ifq_gcustom_t *deny;
    size_t ndeny;
    ifq_gcustom_t *allow;
    size_t nallow;
    int allow_action;
    ifq_gcustom_t *exempt;
    size_t nexempt;
    ifq_glimits_t lim;
    pcre2_match_context *mctx; /* limits; shared read-only by all scans */
    ifq_rbits_t enabled[2];    /* rules whose entity is not off, per direction */
    int any_enabled[2];
};

struct ifq_guard {
    pcre2_code *code[IFQ_GUARD_MAX_RULES]; /* built-in rules, compiled + JIT once */
    uint32_t max_ovec;
    ifq_gmodel_t model;
    int have_model;
    unsigned char *hmac_key; /* owned; NULL when hmac_key_env is unset */
    size_t hmac_key_len;
    struct ifq_guard_policy *policies;
    size_t npolicies;
    struct ifq_guard_policy builtin; /* the default when no "default" is configured */
};

/* ---- scanning one text (guard_scan.c) ---- */

typedef struct {
    size_t s, e; /* byte span in the scanned text */
    int entity;  /* GE_* */
    int sub;     /* GE_DENY: index into policy->deny; GE_LIMIT: IFQ_GLIM_* */
    int rule;    /* built-in rule index, -1 otherwise */
    double score;
    int action; /* GA_* */
} ifq_gcand_t;

enum { IFQ_GLIM_TIME = 0, IFQ_GLIM_SIZE, IFQ_GLIM_MATCH, IFQ_GLIM_FINDINGS, IFQ_GLIM_TEXTS };

/* Windows around trigger-literal hits for one rule (injection phrases run
 * only near the word that triggered them). */
#define IFQ_GUARD_HIT_WINS 32
typedef struct {
    uint32_t s[IFQ_GUARD_HIT_WINS], e[IFQ_GUARD_HIT_WINS];
    uint8_t n;
    uint8_t all; /* overflowed: run over the whole text */
} ifq_ghits_t;

typedef struct {
    const struct ifq_guard_policy *p;
    int dir;
    pcre2_match_data *md;
    ifq_ghits_t *hits; /* [ifq_guard_nrules], scratch */
    unsigned budget_checks;
    unsigned region_runs; /* pattern runs so far (the clock is read after rules that ran) */
    int64_t deadline_us;
    size_t total_bytes;
    unsigned limits_hit; /* 1 << IFQ_GLIM_* */
    /* results of the last ifq_gscan_text() */
    ifq_gcand_t *c;
    size_t n, cap;
    double injection_score; /* combined rules + model, -1 when not evaluated */
    double model_score;     /* -1 when not evaluated */
    char signals[256];      /* comma-separated injection signal ids */
} ifq_gscan_t;

int ifq_gscan_init(ifq_gscan_t *sc, const struct ifq_guard_policy *p, int dir);
void ifq_gscan_free(ifq_gscan_t *sc);
/* Scans one text; fills sc->c with the findings above threshold, overlaps
 * resolved, sorted by start. Returns IFQ_OK or IFQ_ERR_NOMEM. */
int ifq_gscan_text(ifq_gscan_t *sc, const char *text, size_t len);

#endif
