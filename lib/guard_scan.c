/*
 * guard_scan.c - scanning one text: the literal prefilter (a hashed bitmap
 * filter over every rule's trigger and `requires` literals, verified
 * exactly), the n-gram model's sum, the shape windows (digit clusters, hex
 * with separators, '@', long base64-like runs),
 * running the triggered PCRE2 patterns under the policy's match limits and
 * time budget, validation and context scoring, the injection score (rule
 * signals combined with the n-gram model), custom deny/allow lists, and
 * overlap resolution. Produces candidates (spans + scores); guard.c turns
 * them into findings and transforms.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "guard_int.h"

/* ---------------- literal filter ---------------- */

static void rbits_set(ifq_rbits_t *b, size_t i)
{
    b->w[i / 64] |= (uint64_t)1 << (i % 64);
}
static int rbits_has(const ifq_rbits_t *b, size_t i)
{
    return (b->w[i / 64] >> (i % 64)) & 1;
}

static unsigned char fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

void ifq_lit_free(ifq_lit_t *lf)
{
    if (!lf)
        return;
    free(lf->ent);
    lf->ent = NULL;
    lf->nent = 0;
}

static int lit_add(ifq_lit_t *lf, size_t *cap, const char *lit, size_t len, size_t rule)
{
    if (len < 2 || len > sizeof(lf->ent[0].lit))
        return -1;
    int third_any = len == 2;
    for (int c3 = 0; c3 < (third_any ? 256 : 1); c3++) {
        unsigned char b2 = third_any ? (unsigned char)c3 : (unsigned char)lit[2];
        if (third_any && (c3 & 0x20) == 0)
            continue; /* c3 and c3 | 0x20 hash alike */
        uint32_t x = (uint32_t)(unsigned char)lit[0] | (uint32_t)(unsigned char)lit[1] << 8 |
                     (uint32_t)b2 << 16;
        uint32_t h = ifq_lit_hash(x);
        if (lf->nent == *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            if (nc > 65535)
                return -1;
            ifq_lit_ent_t *ne = realloc(lf->ent, nc * sizeof(*ne));
            if (!ne)
                return -1;
            lf->ent = ne;
            *cap = nc;
        }
        ifq_lit_ent_t *e = &lf->ent[lf->nent];
        memset(e, 0, sizeof(*e));
        memcpy(e->lit, lit, len);
        e->len = (uint8_t)len;
        e->rule = (uint16_t)rule;
        e->next = lf->head[h];
        lf->head[h] = (uint16_t)(++lf->nent);
        lf->bitmap[h >> 3] |= (uint8_t)(1u << (h & 7));
        if (len >= 4) {
            uint32_t h4 = ifq_lit_hash4(x | (uint32_t)(unsigned char)lit[3] << 24);
            lf->bitmap4[h4 >> 3] |= (uint8_t)(1u << (h4 & 7));
        } else {
            lf->short3[h >> 3] |= (uint8_t)(1u << (h & 7));
        }
    }
    return 0;
}

/* Adds a '|'-separated literal list under rule index idx. */
static int lit_add_list(ifq_lit_t *lf, size_t *cap, const char *t, size_t idx)
{
    while (t && *t) {
        char lit[64];
        size_t n = 0;
        while (*t && *t != '|') {
            if (*t == '\\' && t[1])
                t++;
            if (n < sizeof(lit))
                lit[n] = (char)fold((unsigned char)*t);
            n++;
            t++;
        }
        if (*t == '|')
            t++;
        if (n > sizeof(lit) || lit_add(lf, cap, lit, n, idx))
            return -1;
    }
    return 0;
}

int ifq_lit_build(ifq_lit_t *lf, const ifq_grule_t *rules, size_t nrules)
{
    memset(lf, 0, sizeof(*lf));
    size_t cap = 0;
    if (2 * nrules > IFQ_GUARD_MAX_RULES)
        return -1;
    for (size_t r = 0; r < nrules; r++) {
        if (lit_add_list(lf, &cap, rules[r].triggers, r) ||
            lit_add_list(lf, &cap, rules[r].requires, nrules + r)) {
            ifq_lit_free(lf);
            return -1;
        }
    }
    return 0;
}

/* Exact check of the literals in bucket h at text[i..]; calls back with
 * each rule whose literal matches (end offset i + len). */
#define LIT_VERIFY(lf, p, len, i, h, ON_HIT)                                                       \
    do {                                                                                           \
        for (uint16_t k_ = (lf)->head[h]; k_; k_ = (lf)->ent[k_ - 1].next) {                       \
            const ifq_lit_ent_t *e_ = &(lf)->ent[k_ - 1];                                          \
            if ((i) + e_->len > (len))                                                             \
                continue;                                                                          \
            size_t j_ = 0;                                                                         \
            while (j_ < e_->len && fold((p)[(i) + j_]) == (unsigned char)e_->lit[j_])              \
                j_++;                                                                              \
            if (j_ == e_->len) {                                                                   \
                size_t rule_ = e_->rule, end_ = (i) + e_->len;                                     \
                (void)end_;                                                                        \
                ON_HIT;                                                                            \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static uint32_t load3(const unsigned char *p, size_t i, size_t len)
{
    uint32_t x = 0;
    if (i + 4 <= len) {
        memcpy(&x, p + i, 4);
        return x;
    }
    for (size_t k = 0; k < 3 && i + k < len; k++)
        x |= (uint32_t)p[i + k] << (8 * k);
    return x;
}

void ifq_lit_scan(const ifq_lit_t *lf, const char *text, size_t len, ifq_rbits_t *bits)
{
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < len; i++) {
        uint32_t h = ifq_lit_hash(load3(p, i, len));
        if (lf->bitmap[h >> 3] & (1u << (h & 7)))
            LIT_VERIFY(lf, p, len, i, h, rbits_set(bits, rule_));
    }
}

/* The filter depends only on the static rule table, so one per process. */
static ifq_lit_t g_lits;
static int g_lits_ok;
static ifq_rbits_t g_strong_injection;
static ifq_rbits_t g_need_colon; /* rules whose every match contains ':' */
static pthread_once_t g_lits_once = PTHREAD_ONCE_INIT;

static void lits_init_once(void)
{
    g_lits_ok = ifq_lit_build(&g_lits, ifq_guard_rules, ifq_guard_nrules) == 0;
    static const char *const strong[] = {"override",      "prompt_extraction", "role_marker",
                                         "dan",           "jailbreak_mode",    "jailbreak_word",
                                         "policy_bypass", "new_instructions"};
    for (size_t r = 0; r < ifq_guard_nrules; r++)
        for (size_t k = 0; k < sizeof(strong) / sizeof(strong[0]); k++)
            if (strcmp(ifq_guard_rules[r].id, strong[k]) == 0)
                rbits_set(&g_strong_injection, r);
    for (size_t r = 0; r < ifq_guard_nrules; r++)
        if (strcmp(ifq_guard_rules[r].id, "new_instructions") == 0 ||
            strcmp(ifq_guard_rules[r].id, "role_line") == 0)
            rbits_set(&g_need_colon, r);
}

const ifq_lit_t *ifq_guard_lits(void)
{
    pthread_once(&g_lits_once, lits_init_once);
    return g_lits_ok ? &g_lits : NULL;
}

double ifq_guard_decoded_text_score(const unsigned char *b, long n)
{
    const ifq_lit_t *lf = ifq_guard_lits();
    ifq_rbits_t bits = {{0}};
    if (lf)
        ifq_lit_scan(lf, (const char *)b, (size_t)n, &bits);
    for (size_t k = 0; k < IFQ_GUARD_RULE_WORDS; k++)
        if (bits.w[k] & g_strong_injection.w[k])
            return 0.75; /* encoded text that talks like an injection */
    return 0.45;
}

/* ---------------- shape windows ---------------- */

#define MAX_WIN 256

typedef struct {
    uint32_t s, e;
    uint32_t weight; /* digits in the densest cluster, or run length */
} win_t;

typedef struct {
    win_t w[MAX_WIN];
    size_t n;
    int all; /* overflowed: scan the whole text */
} winlist_t;

enum { W_NUM = 0, W_HEX, W_AT, W_RUN, W_KINDS };

static void win_add(winlist_t *l, size_t s, size_t e, uint32_t weight)
{
    if (l->all)
        return;
    if (l->n && s <= l->w[l->n - 1].e) {
        win_t *last = &l->w[l->n - 1];
        if (e > last->e)
            last->e = (uint32_t)e;
        if (weight > last->weight)
            last->weight = weight;
        return;
    }
    if (l->n == MAX_WIN) {
        l->all = 1;
        return;
    }
    l->w[l->n].s = (uint32_t)s;
    l->w[l->n].e = (uint32_t)e;
    l->w[l->n].weight = weight;
    l->n++;
}

enum { B_DIGIT = 1, B_B64 = 2, B_SEP = 4, B_AT = 8, B_NL = 16, B_HEX = 32 };

static uint8_t bcls[256];
static uint8_t model_skip[4096]; /* model: [previous code << 6 | code] -> skipped */
static pthread_once_t bcls_once = PTHREAD_ONCE_INIT;

static void bcls_init(void)
{
    for (int c = 0; c < 256; c++) {
        uint8_t f = 0;
        if (c >= '0' && c <= '9')
            f |= B_DIGIT | B_B64 | B_HEX;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' || c == '/' || c == '=' ||
            c == '_' || c == '-')
            f |= B_B64;
        if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            f |= B_HEX;
        if (c == ':' || c == '-')
            f |= B_SEP;
        if (c == '@')
            f |= B_AT;
        if (c == '\n' || c == '\r')
            f |= B_NL;
        bcls[c] = f;
    }
    for (int prev = 0; prev < 64; prev++)
        for (int code = 0; code < 64; code++)
            model_skip[prev << 6 | code] = code == 0 || (code == 28 && prev == 28);
}

#define RUN_MIN 20
#define NUM_MARGIN 40

/* Rules whose trigger literal starts a window instead of a whole-text run:
 * how far before and after the literal's end their matches can lie. */
static int hit_window(const ifq_grule_t *r, uint32_t *back, uint32_t *fwd)
{
    if (!(r->regions & RG_LIT))
        return 0;
    switch (r->entity) {
    case GE_INJECTION:
        *back = 320;
        *fwd = 512;
        return 1;
    case GE_INVISIBLE:
        *back = 8;
        *fwd = 4096;
        return 1;
    case GE_EXFIL:
        *back = 300;
        *fwd = 4608;
        return 1;
    case GE_PRIVATE_KEY:
    case GE_JWT:
    case GE_BITCOIN:
        return 0; /* long or rare: literal-first patterns over the whole text */
    default:
        if (ifq_guard_entities[r->entity].group == GG_SECRETS) {
            *back = 96; /* "aws_secret_access_key" style names before the value */
            *fwd = 600;
            return 1;
        }
        return 0;
    }
}

static void hits_add(ifq_ghits_t *h, size_t s, size_t e)
{
    if (h->all)
        return;
    if (h->n && s <= h->e[h->n - 1]) {
        if (e > h->e[h->n - 1])
            h->e[h->n - 1] = (uint32_t)e;
        return;
    }
    if (h->n == IFQ_GUARD_HIT_WINS) {
        h->all = 1;
        return;
    }
    h->s[h->n] = (uint32_t)s;
    h->e[h->n] = (uint32_t)e;
    h->n++;
}

#define REQ_MAX 128

typedef struct {
    ifq_rbits_t trig; /* rules to run over the whole text */
    ifq_rbits_t hit;  /* rules with hit windows in sc->hits */
    winlist_t wl[W_KINDS];
    int64_t msum;    /* model: sum of weights */
    uint64_t mcount; /* model: number of n-grams */
    /* occurrences of `requires` literals, in text order */
    uint32_t req_s[REQ_MAX], req_e[REQ_MAX];
    uint8_t req_rule[REQ_MAX];
    size_t req_n;
    int req_over; /* the list overflowed: every region may match */
} pre_t;

static void on_literal(ifq_gscan_t *sc, pre_t *pr, size_t ri, size_t i, size_t len, size_t litlen)
{
    if (ri >= ifq_guard_nrules) { /* a `requires` literal of rule ri - nrules */
        if (pr->req_n == REQ_MAX) {
            pr->req_over = 1;
            return;
        }
        pr->req_s[pr->req_n] = (uint32_t)(i - litlen);
        pr->req_e[pr->req_n] = (uint32_t)i;
        pr->req_rule[pr->req_n] = (uint8_t)(ri - ifq_guard_nrules);
        pr->req_n++;
        return;
    }
    if (!rbits_has(&sc->p->enabled[sc->dir], ri))
        return;
    uint32_t back, fwd;
    if (hit_window(&ifq_guard_rules[ri], &back, &fwd)) {
        ifq_ghits_t *h = &sc->hits[ri];
        if (!rbits_has(&pr->hit, ri)) {
            h->n = 0;
            h->all = 0;
            rbits_set(&pr->hit, ri);
        }
        hits_add(h, i > back ? i - back : 0, i + fwd < len ? i + fwd : len);
    } else {
        rbits_set(&pr->trig, ri);
    }
}

/* The model's n-gram sum over text[0..n) wrapped in spaces (the definition
 * is in guard_model.c; ifq_gmodel_score() is the reference). A loop of its
 * own, so its state stays in registers. The last code kept is always g's low
 * six bits, so whether a code is skipped (0: a continuation byte; a space
 * after a space) is a function of the candidate g's low 12 bits: one table
 * lookup and one rarely-taken branch, rather than a branch on every space
 * (which mispredicts) or a conditional move on g's dependency chain. */
#define MODEL_K 0x9E3779B97F4A7C15ull
#define MODEL_C 0xC2B2AE3D27D4EB4Full

static inline void model_hot35(const int8_t *w, unsigned shift, const uint8_t *codes,
                               const unsigned char *p, size_t i, size_t n, uint64_t *gp,
                               int64_t *sum, uint64_t *count)
{
    uint64_t k = MODEL_K, c3 = 3 * MODEL_C, c4 = 4 * MODEL_C, c5 = 5 * MODEL_C;
#if defined(__GNUC__)
    /* keep the constants in registers: GCC otherwise reloads a 64-bit
     * immediate for every n-gram */
    __asm__("" : "+r"(k), "+r"(c3), "+r"(c4), "+r"(c5));
#endif
    uint64_t g = *gp;
    int64_t s3 = 0, s4 = 0, s5 = 0;
    uint64_t skipped = 0, start = i;
    for (; i < n; i++) {
        uint64_t gn = (g << 6) | codes[p[i]]; /* only the low 30 bits are used */
        if (__builtin_expect(model_skip[gn & 0xFFF], 0)) {
            skipped++;
            continue;
        }
        g = gn;
        s3 += w[((g & 0x3FFFF) * k + c3) >> shift];
        s4 += w[((g & 0xFFFFFF) * k + c4) >> shift];
        s5 += w[((g & 0x3FFFFFFF) * k + c5) >> shift];
    }
    *gp = g & 0x3FFFFFFF;
    *sum += s3 + s4 + s5;
    *count += 3 * (n - start - skipped);
}

__attribute__((noinline)) static void model_sum(const ifq_gmodel_t *model, const unsigned char *p,
                                                size_t n, int64_t *sum_out, uint64_t *count_out)
{
    const uint8_t *codes = ifq_gmodel_codes();
    const int8_t *w = model->w;
    const unsigned shift = 64 - model->hash_bits;
    uint64_t g = 28; /* the leading space; g's low 6 bits are the last code kept */
    uint64_t seen = 1;
    int64_t msum = 0;
    uint64_t mcount = 0;
    if (model->n_min == 1) {
        msum += w[(28 * MODEL_K + MODEL_C) >> shift];
        mcount++;
    }
    const int fast35 = model->n_min == 3 && model->n_max == 5;
    size_t i = 0;
    /* generic: any n range, and the first codes until every n-gram exists */
    for (; i < n && !(fast35 && seen >= 5); i++) {
        uint8_t mc = codes[p[i]];
        if (!mc || (mc == 28 && (g & 63) == 28))
            continue;
        g = ((g << 6) | mc) & 0x3FFFFFFFu;
        seen++;
        for (uint32_t k = model->n_min; k <= model->n_max && k <= seen; k++) {
            uint64_t gram = g & (((uint64_t)1 << (6 * k)) - 1);
            msum += w[(gram * MODEL_K + (uint64_t)k * MODEL_C) >> shift];
            mcount++;
        }
    }
    if (i < n) {
        uint64_t c0 = mcount;
        if (shift == 48) /* the shipped 2^16-bucket model: a constant shift */
            model_hot35(w, 48, codes, p, i, n, &g, &msum, &mcount);
        else
            model_hot35(w, shift, codes, p, i, n, &g, &msum, &mcount);
        seen += (mcount - c0) / 3;
    }
    /* the trailing space */
    if ((g & 63) != 28) {
        g = ((g << 6) | 28) & 0x3FFFFFFFu;
        seen++;
        for (uint32_t k = model->n_min; k <= model->n_max && k <= seen; k++) {
            uint64_t gram = g & (((uint64_t)1 << (6 * k)) - 1);
            msum += w[(gram * MODEL_K + (uint64_t)k * MODEL_C) >> shift];
            mcount++;
        }
    }
    *sum_out = msum;
    *count_out = mcount;
}

/* Byte classes of 64 bytes at p (n <= 64 of them valid) as bit masks, bit j
 * for p[j]: b64 = base64-alphabet bytes (B_B64), ev = bytes the shape
 * windows act on (B_DIGIT | B_SEP | B_AT | B_NL). */
static inline void class_masks64(const unsigned char *p, size_t n, uint64_t *b64, uint64_t *ev)
{
#ifdef __SSE2__
    if (n == 64) {
        const __m128i a = _mm_set1_epi8('a'), z25 = _mm_set1_epi8(25), d0 = _mm_set1_epi8('0');
        const __m128i n9 = _mm_set1_epi8(9), sp = _mm_set1_epi8(0x20), zero = _mm_setzero_si128();
        uint64_t mb = 0, me = 0;
        for (int k = 0; k < 4; k++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * k));
            __m128i alpha =
                _mm_cmpeq_epi8(_mm_subs_epu8(_mm_sub_epi8(_mm_or_si128(v, sp), a), z25), zero);
            __m128i digit = _mm_cmpeq_epi8(_mm_subs_epu8(_mm_sub_epi8(v, d0), n9), zero);
            __m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
            __m128i sym = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('+')),
                                                    _mm_cmpeq_epi8(v, _mm_set1_epi8('/'))),
                                       _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('=')),
                                                    _mm_cmpeq_epi8(v, _mm_set1_epi8('_'))));
            __m128i evv =
                _mm_or_si128(_mm_or_si128(digit, dash),
                             _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(':')),
                                                       _mm_cmpeq_epi8(v, _mm_set1_epi8('@'))),
                                          _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')),
                                                       _mm_cmpeq_epi8(v, _mm_set1_epi8('\r')))));
            __m128i bb = _mm_or_si128(_mm_or_si128(alpha, digit), _mm_or_si128(dash, sym));
            mb |= (uint64_t)(uint16_t)_mm_movemask_epi8(bb) << (16 * k);
            me |= (uint64_t)(uint16_t)_mm_movemask_epi8(evv) << (16 * k);
        }
        *b64 = mb;
        *ev = me;
        return;
    }
#endif
    uint64_t mb = 0, me = 0;
    for (size_t j = 0; j < n; j++) {
        uint8_t f = bcls[p[j]];
        mb |= (uint64_t)((f & B_B64) != 0) << j;
        me |= (uint64_t)((f & (B_DIGIT | B_SEP | B_AT | B_NL)) != 0) << j;
    }
    *b64 = mb;
    *ev = me;
}

/* Trigger literals: every position hashed, one bitmap test per byte. The
 * hashing loop has no branch: four positions' bits form a nibble, and each
 * group with a hit is appended to a small list (branch-free), which is then
 * walked in order: the second-level test (bitmap4 / short3), and exact
 * verification for what passes. A branch per group would mispredict on
 * about one group in eight in English prose. */
#define LIT_CHUNK 4096
__attribute__((noinline)) static void lit_pass(ifq_gscan_t *sc, const unsigned char *p, size_t len,
                                               pre_t *pr)
{
    const ifq_lit_t *lf = ifq_guard_lits();
    const uint8_t *bitmap = lf->bitmap;
    uint32_t cand[LIT_CHUNK / 4];
    size_t i = 0;
    while (i + 8 <= len) {
        size_t stop = len - 8 < i + LIT_CHUNK - 4 ? len - 8 : i + LIT_CHUNK - 4;
        size_t base = i, nc = 0;
        for (; i <= stop; i += 4) {
            uint64_t x;
            memcpy(&x, p + i, 8);
            x |= 0x2020202020202020ull; /* the fold of ifq_lit_hash, once for four */
            uint32_t h0 = (((uint32_t)x & 0xFFFFFFu) * 0x9E3779B1u) >> 16;
            uint32_t h1 = (((uint32_t)(x >> 8) & 0xFFFFFFu) * 0x9E3779B1u) >> 16;
            uint32_t h2 = (((uint32_t)(x >> 16) & 0xFFFFFFu) * 0x9E3779B1u) >> 16;
            uint32_t h3 = (((uint32_t)(x >> 24) & 0xFFFFFFu) * 0x9E3779B1u) >> 16;
            uint32_t m =
                ((bitmap[h0 >> 3] >> (h0 & 7)) & 1) | ((bitmap[h1 >> 3] >> (h1 & 7)) & 1) << 1 |
                ((bitmap[h2 >> 3] >> (h2 & 7)) & 1) << 2 | ((bitmap[h3 >> 3] >> (h3 & 7)) & 1) << 3;
            cand[nc] = (uint32_t)(i - base) << 4 | m;
            nc += m != 0;
        }
        for (size_t c = 0; c < nc; c++) {
            size_t gi = base + (cand[c] >> 4);
            uint32_t m = cand[c] & 15;
            uint64_t x;
            memcpy(&x, p + gi, 8);
            uint32_t hs[4], m2 = 0;
            for (unsigned k = 0; k < 4; k++) {
                uint32_t xk = (uint32_t)(x >> (8 * k));
                uint32_t h = ifq_lit_hash(xk), h4 = ifq_lit_hash4(xk);
                hs[k] = h;
                m2 |= (((lf->short3[h >> 3] >> (h & 7)) | (lf->bitmap4[h4 >> 3] >> (h4 & 7))) & 1)
                      << k;
            }
            for (m2 &= m; m2; m2 &= m2 - 1) {
                unsigned k = (unsigned)__builtin_ctz(m2);
                LIT_VERIFY(lf, p, len, gi + k, hs[k],
                           on_literal(sc, pr, rule_, end_, len, e_->len));
            }
        }
    }
    for (; i < len; i++) {
        uint32_t h = ifq_lit_hash(load3(p, i, len));
        if ((bitmap[h >> 3] >> (h & 7)) & 1)
            LIT_VERIFY(lf, p, len, i, h, on_literal(sc, pr, rule_, end_, len, e_->len));
    }
}

/* Shape windows: the byte classes 64 bytes at a time (SSE2 compares to bit
 * masks), stopping only at bytes the windows act on (digits, ':', '-', '@',
 * newlines) and in blocks where a base64-like run may reach RUN_MIN. */
__attribute__((noinline)) static void shape_pass(const unsigned char *p, size_t len, pre_t *pr)
{
    winlist_t *wl = pr->wl;
    size_t run = 0;
    size_t cl_s = 0, last_d = 0, last_nl = 0, last_sep = (size_t)-1;
    uint32_t cl_d = 0;
    int have_nl = 0;
    for (size_t base = 0; base < len; base += 64) {
        size_t n = len - base < 64 ? len - base : 64;
        uint64_t mb, ev;
        class_masks64(p + base, n, &mb, &ev);
        /* base64-like runs: a run is noted once, when it reaches RUN_MIN,
         * and its end is found after the loop. a20: bit j when bytes
         * j..j+19 are all in the class. */
        uint64_t a = mb & (mb >> 1);
        a &= a >> 2;
        a &= a >> 4;
        uint64_t a20 = a & (a >> 8);
        a20 &= a20 >> 4;
        size_t lead = mb == ~0ull ? 64 : (size_t)__builtin_ctzll(~mb);
        if (__builtin_expect(a20 != 0 || (run < RUN_MIN && run + lead >= RUN_MIN), 0)) {
            for (size_t j = 0; j < n; j++) {
                run = (mb >> j) & 1 ? run + 1 : 0;
                if (run == RUN_MIN)
                    win_add(&wl[W_RUN], base + j + 1 - RUN_MIN, base + j + 1, RUN_MIN);
            }
        } else if (mb == ~0ull) {
            run += 64;
        } else {
            /* the block's trailing run (a partial block is the last one) */
            run = (size_t)__builtin_clzll(~mb);
        }
        while (ev) {
            size_t i2 = base + (size_t)__builtin_ctzll(ev);
            ev &= ev - 1;
            uint8_t f = bcls[p[i2]];
            if (f & B_DIGIT) {
                if (cl_d && (i2 - last_d > 3 || (have_nl && last_nl > last_d))) {
                    if (cl_d >= 4)
                        win_add(&wl[W_NUM], cl_s > NUM_MARGIN ? cl_s - NUM_MARGIN : 0,
                                last_d + 1 + NUM_MARGIN, cl_d);
                    cl_d = 0;
                }
                if (!cl_d)
                    cl_s = i2;
                cl_d++;
                last_d = i2;
            }
            if (f & B_NL) {
                last_nl = i2;
                have_nl = 1;
            }
            if ((f & B_SEP) && i2 > 0 && i2 + 1 < len) {
                uint8_t fa = bcls[p[i2 - 1]], fb = bcls[p[i2 + 1]];
                if ((fa & B_HEX || p[i2 - 1] == ':') && (fb & B_HEX || p[i2 + 1] == ':')) {
                    if (last_sep != (size_t)-1 && i2 - last_sep <= 5)
                        win_add(&wl[W_HEX], i2 > 48 ? i2 - 48 : 0, i2 + 48, 1);
                    last_sep = i2;
                }
            }
            if (f & B_AT)
                win_add(&wl[W_AT], i2 > 66 ? i2 - 66 : 0, i2 + 256, 1);
        }
    }
    /* each long run's real end and length */
    for (size_t j = 0; j < wl[W_RUN].n; j++) {
        win_t *wi = &wl[W_RUN].w[j];
        size_t e = wi->e;
        while (e < len && (bcls[p[e]] & B_B64))
            e++;
        wi->e = (uint32_t)e;
        wi->weight = (uint32_t)(e - wi->s);
    }
    if (cl_d >= 4)
        win_add(&wl[W_NUM], cl_s > NUM_MARGIN ? cl_s - NUM_MARGIN : 0, last_d + 1 + NUM_MARGIN,
                cl_d);
    /* clamp, and extend each window's end to the end of its token so that
     * a pattern's lookahead never sees a false end of subject */
    for (int k = 0; k < W_KINDS; k++) {
        for (size_t j = 0; j < wl[k].n; j++) {
            win_t *wi = &wl[k].w[j];
            size_t e = wi->e < len ? wi->e : len;
            size_t lim = e + 64 < len ? e + 64 : len;
            while (e < lim && p[e] != ' ' && p[e] != '\n' && p[e] != '\t' && p[e] != '\r')
                e++;
            wi->e = (uint32_t)e;
            if (wi->s > wi->e)
                wi->s = wi->e;
        }
    }
}

/* The pass over the text: trigger literals, the n-gram model's sum (over
 * the first model_len bytes; 0 when the model does not run) and the shape
 * windows. Three loops rather than one fused loop: each keeps its state in
 * registers (the fused loop spilled), and the model's loop has no
 * unpredictable branch. */
static void prefilter(ifq_gscan_t *sc, const char *text, size_t len, const ifq_gmodel_t *model,
                      size_t model_len, pre_t *pr)
{
    pthread_once(&bcls_once, bcls_init);
    const unsigned char *p = (const unsigned char *)text;
    lit_pass(sc, p, len, pr);
    pr->msum = 0;
    pr->mcount = 0;
    if (model_len)
        model_sum(model, p, model_len, &pr->msum, &pr->mcount);
    shape_pass(p, len, pr);
    for (size_t ri = 0; ri < ifq_guard_nrules; ri++) {
        if (!rbits_has(&pr->hit, ri))
            continue;
        ifq_ghits_t *h = &sc->hits[ri];
        for (size_t j = 0; j < h->n; j++) {
            size_t e = h->e[j];
            size_t lim = e + 64 < len ? e + 64 : len;
            while (e < lim && p[e] != ' ' && p[e] != '\n' && p[e] != '\t' && p[e] != '\r')
                e++;
            h->e[j] = (uint32_t)e;
        }
    }
}

/* ---------------- scanning ---------------- */

int ifq_gscan_init(ifq_gscan_t *sc, const struct ifq_guard_policy *p, int dir)
{
    memset(sc, 0, sizeof(*sc));
    sc->p = p;
    sc->dir = dir;
    sc->md = pcre2_match_data_create(p->g->max_ovec, NULL);
    sc->hits = malloc(sizeof(ifq_ghits_t) * ifq_guard_nrules);
    if (!sc->md || !sc->hits) {
        ifq_gscan_free(sc);
        return IFQ_ERR_NOMEM;
    }
    sc->deadline_us = ifq_mono_us() + p->lim.time_budget_us;
    sc->injection_score = -1;
    sc->model_score = -1;
    return IFQ_OK;
}

void ifq_gscan_free(ifq_gscan_t *sc)
{
    if (!sc)
        return;
    pcre2_match_data_free(sc->md);
    free(sc->c);
    free(sc->hits);
    sc->md = NULL;
    sc->c = NULL;
    sc->hits = NULL;
}

static int add_cand(ifq_gscan_t *sc, size_t s, size_t e, int entity, int sub, int rule,
                    double score, int action)
{
    if (sc->n >= sc->p->lim.max_findings) {
        sc->limits_hit |= 1u << IFQ_GLIM_FINDINGS;
        return IFQ_OK;
    }
    if (sc->n == sc->cap) {
        size_t ncap = sc->cap ? sc->cap * 2 : 16;
        ifq_gcand_t *c = realloc(sc->c, ncap * sizeof(*c));
        if (!c)
            return IFQ_ERR_NOMEM;
        sc->c = c;
        sc->cap = ncap;
    }
    sc->c[sc->n++] = (ifq_gcand_t){s, e, entity, sub, rule, score, action};
    return IFQ_OK;
}

static int over_budget(ifq_gscan_t *sc)
{
    if (sc->limits_hit & (1u << IFQ_GLIM_TIME))
        return 1;
    /* the clock is read on every 4th check: checks come often and are cheap */
    if ((sc->budget_checks++ & 3) != 0)
        return 0;
    if (ifq_mono_us() > sc->deadline_us) {
        sc->limits_hit |= 1u << IFQ_GLIM_TIME;
        return 1;
    }
    return 0;
}

/* Per-rule count of matches within one text (injection signals and rules
 * that need several matches are judged after the whole text is scanned). */
typedef struct {
    int matches;
} sigacc_t;

/* A necessary condition for a match of rule r inside the shape window
 * text[s..e): a byte pair or quad that every match contains. Windows
 * around digit clusters are frequent in prose (years, prices) and these
 * patterns cost 3-13 cycles a byte to run, the check well under one; a
 * window that fails it cannot match, so skipping it changes nothing. */
static int window_may_match(const ifq_grule_t *r, const unsigned char *p, size_t s, size_t e)
{
#define IS_D(c) ((unsigned)((c) - '0') < 10u)
#define IS_A(c) ((unsigned)(((c) | 0x20) - 'a') < 26u)
#define IS_H(c) (IS_D(c) || (unsigned)(((c) | 0x20) - 'a') < 6u)
    switch (r->check) {
    case CK_IBAN: /* [A-Za-z]{2}\d{2} */
        for (size_t k = s; k + 4 <= e; k++)
            if (IS_D(p[k + 2]) && IS_D(p[k + 3]) && IS_A(p[k]) && IS_A(p[k + 1]))
                return 1;
        return 0;
    case CK_IPV4: /* \d\.\d */
        for (size_t k = s + 1; k + 1 < e; k++)
            if (p[k] == '.' && IS_D(p[k - 1]) && IS_D(p[k + 1]))
                return 1;
        return 0;
    default:
        break;
    }
    if (r->entity == GE_MAC) { /* hh[:-]hh then the same separator; hhhh.hhhh. */
        for (size_t k = s + 2; k + 3 < e; k++) {
            unsigned char c = p[k];
            if ((c == ':' || c == '-') && p[k + 3] == c && IS_H(p[k - 1]) && IS_H(p[k - 2]) &&
                IS_H(p[k + 1]) && IS_H(p[k + 2]))
                return 1;
            if (c == '.' && k >= s + 4 && k + 5 < e && p[k + 5] == '.' && IS_H(p[k - 1]) &&
                IS_H(p[k - 2]) && IS_H(p[k - 3]) && IS_H(p[k - 4]) && IS_H(p[k + 1]) &&
                IS_H(p[k + 2]) && IS_H(p[k + 3]) && IS_H(p[k + 4]))
                return 1;
        }
        return 0;
    }
    return 1;
#undef IS_D
#undef IS_A
#undef IS_H
}

/* Whether rule ri can match inside text[s..e): secrets assigned to a name
 * need an '=' or ':'; a rule with `requires` literals needs one of them
 * wholly inside (unless their list overflowed). Necessary conditions only,
 * so a region that fails cannot match and skipping it changes nothing. */
static int required_in(const pre_t *pr, size_t ri, const char *text, size_t s, size_t e)
{
    const ifq_grule_t *r = &ifq_guard_rules[ri];
    if (r->entity == GE_GENERIC_SECRET || r->entity == GE_AWS_SECRET) {
        /* name, then one of = := => : */
        const char *q = text + s;
        if (!memchr(q, '=', e - s) && !memchr(q, ':', e - s))
            return 0;
    } else if (rbits_has(&g_need_colon, ri) && !memchr(text + s, ':', e - s)) {
        return 0; /* "new instructions:", "System:" */
    }
    if (!r->requires || pr->req_over)
        return 1;
    for (size_t k = 0; k < pr->req_n; k++)
        if (pr->req_rule[k] == ri && pr->req_s[k] >= s && pr->req_e[k] <= e)
            return 1;
    return 0;
}

/* Runs one compiled pattern over text[s..e) (lookbehind may see before s).
 * Calls back into the rule logic for each match. */
static int run_region(ifq_gscan_t *sc, size_t ri, const pcre2_code *code, const char *text,
                      size_t len, size_t s, size_t e, sigacc_t *sig)
{
    const ifq_grule_t *r = &ifq_guard_rules[ri];
    const ifq_gent_cfg_t *cfg = &sc->p->ent[sc->dir][r->entity];
    size_t off = s;
    sc->region_runs++;
    unsigned iter = 0;
    while (off < e) {
        int rc = pcre2_match(code, (PCRE2_SPTR)text, e, off, 0, sc->md, sc->p->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
                rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
                sc->limits_hit |= 1u << IFQ_GLIM_MATCH;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
        size_t ms = ov[0], me = ov[1];
        size_t ss = ms, se = me;
        if (r->group > 0 && rc > r->group && ov[2 * r->group] != PCRE2_UNSET) {
            ss = ov[2 * r->group];
            se = ov[2 * r->group + 1];
        }
        off = me > ms ? me : ms + 1;
        if (se > ss) {
            double score = ifq_guard_check(r, text, len, &ss, &se);
            if (score > 0 && r->entity != GE_INJECTION) {
                score += ifq_guard_context(r->ctx, text, len, ss, se);
                if (score > 1.0)
                    score = 1.0;
            }
            if (score > 0) {
                if (r->entity == GE_INJECTION || r->min_count > 1) {
                    /* collected now, judged once the whole text is scanned */
                    sig->matches++;
                    int rc2 = add_cand(sc, ss, se, r->entity, 0, (int)ri, score, cfg->action);
                    if (rc2)
                        return rc2;
                } else if (score >= cfg->threshold) {
                    int rc2 = add_cand(sc, ss, se, r->entity, 0, (int)ri, score, cfg->action);
                    if (rc2)
                        return rc2;
                }
            }
        }
        if ((++iter & 63) == 0 && over_budget(sc))
            break;
    }
    return IFQ_OK;
}

static int rank(const ifq_gcand_t *c)
{
    if (c->entity >= GE_COUNT)
        return 2;
    int g = ifq_guard_entities[c->entity].group;
    return g == GG_SECRETS ? 0 : g == GG_PII ? 1 : 2;
}

static int cmp_priority(const void *a, const void *b)
{
    const ifq_gcand_t *x = a, *y = b;
    int rx = rank(x), ry = rank(y);
    if (rx != ry)
        return rx < ry ? -1 : 1; /* secrets before PII before the rest */
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    size_t lx = x->e - x->s, ly = y->e - y->s;
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x->s < y->s ? -1 : x->s > y->s;
}

static int cmp_start(const void *a, const void *b)
{
    const ifq_gcand_t *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    if (x->e != y->e)
        return x->e > y->e ? -1 : 1;
    return x->entity - y->entity;
}

/* Keeps the best of overlapping PII/secret candidates (an SSN is not also a
 * phone number; a key is not also a card). Injection, custom and limit
 * candidates are left alone. */
static void resolve_overlaps(ifq_gscan_t *sc, size_t from)
{
    size_t n = sc->n - from;
    if (n < 2)
        return;
    ifq_gcand_t *c = sc->c + from;
    qsort(c, n, sizeof(*c), cmp_priority);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int grp = c[i].entity < GE_COUNT ? ifq_guard_entities[c[i].entity].group : GG_CUSTOM;
        int clash = 0;
        if (grp == GG_PII || grp == GG_SECRETS) {
            for (size_t k = 0; k < kept && !clash; k++) {
                int gk = c[k].entity < GE_COUNT ? ifq_guard_entities[c[k].entity].group : GG_CUSTOM;
                if ((gk == GG_PII || gk == GG_SECRETS) && c[k].s < c[i].e && c[i].s < c[k].e)
                    clash = 1;
            }
        }
        if (!clash)
            c[kept++] = c[i];
    }
    sc->n = from + kept;
}

static int exempted(const struct ifq_guard_policy *p, pcre2_match_data *md, const char *text,
                    const ifq_gcand_t *c)
{
    for (size_t k = 0; k < p->nexempt; k++) {
        int rc = pcre2_match(p->exempt[k].code, (PCRE2_SPTR)(text + c->s), c->e - c->s, 0,
                             PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, p->mctx);
        if (rc >= 0)
            return 1;
    }
    return 0;
}

static int run_custom(ifq_gscan_t *sc, const char *text, size_t len)
{
    const struct ifq_guard_policy *p = sc->p;
    for (size_t k = 0; k < p->ndeny; k++) {
        size_t off = 0;
        unsigned iter = 0;
        while (off <= len) {
            int rc = pcre2_match(p->deny[k].code, (PCRE2_SPTR)text, len, off, 0, sc->md, p->mctx);
            if (rc < 0) {
                if (rc != PCRE2_ERROR_NOMATCH && rc != PCRE2_ERROR_BADOFFSET)
                    sc->limits_hit |= 1u << IFQ_GLIM_MATCH;
                break;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
            int rc2 = add_cand(sc, ov[0], ov[1], GE_DENY, (int)k, -1, 1.0, p->deny[k].action);
            if (rc2)
                return rc2;
            off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
            if ((++iter & 63) == 0 && over_budget(sc))
                break;
        }
    }
    if (p->nallow && sc->dir == IFQ_GUARD_INPUT) {
        int hit = 0;
        for (size_t k = 0; k < p->nallow && !hit; k++) {
            int rc = pcre2_match(p->allow[k].code, (PCRE2_SPTR)text, len, 0, 0, sc->md, p->mctx);
            if (rc >= 0)
                hit = 1;
            else if (rc != PCRE2_ERROR_NOMATCH)
                sc->limits_hit |= 1u << IFQ_GLIM_MATCH;
        }
        if (!hit)
            return add_cand(sc, 0, len, GE_ALLOW_MISS, 0, -1, 1.0, p->allow_action);
    }
    return IFQ_OK;
}

int ifq_gscan_text(ifq_gscan_t *sc, const char *text, size_t len)
{
    const struct ifq_guard_policy *p = sc->p;
    const struct ifq_guard *g = p->g;
    int dir = sc->dir;
    sc->n = 0;
    sc->injection_score = -1;
    sc->model_score = -1;
    sc->signals[0] = 0;
    if (!text)
        len = 0;
    size_t orig_len = len;
    if (sc->total_bytes + len > p->lim.max_total_bytes) {
        sc->limits_hit |= 1u << IFQ_GLIM_SIZE;
        size_t left =
            p->lim.max_total_bytes > sc->total_bytes ? p->lim.max_total_bytes - sc->total_bytes : 0;
        if (len > left)
            len = left;
    }
    if (len > p->lim.max_text_bytes) {
        sc->limits_hit |= 1u << IFQ_GLIM_SIZE;
        len = p->lim.max_text_bytes;
    }
    /* a cut never splits a UTF-8 sequence */
    if (len < orig_len)
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
    sc->total_bytes += len;
    if (!len || over_budget(sc))
        return IFQ_OK;

    if (p->any_enabled[dir] && ifq_guard_lits()) {
        const ifq_gent_cfg_t *icfg0 = &p->ent[dir][GE_INJECTION];
        int want_model = icfg0->action != GA_OFF && p->use_model && g->have_model;
        size_t model_len = want_model ? (len < g->model.max_bytes ? len : g->model.max_bytes) : 0;
        pre_t pr;
        memset(&pr.trig, 0, sizeof(pr.trig));
        memset(&pr.hit, 0, sizeof(pr.hit));
        pr.req_n = 0;
        pr.req_over = 0;
        for (int k = 0; k < W_KINDS; k++) {
            pr.wl[k].n = 0;
            pr.wl[k].all = 0;
        }
        prefilter(sc, text, len, want_model ? &g->model : NULL, model_len, &pr);
        if (want_model)
            sc->model_score = ifq_gmodel_prob(&g->model, pr.msum, pr.mcount);
        winlist_t *wl = pr.wl;

        sigacc_t sig[IFQ_GUARD_MAX_RULES];
        memset(sig, 0, sizeof(sig));
        for (size_t ri = 0; ri < ifq_guard_nrules; ri++) {
            if (!rbits_has(&p->enabled[dir], ri))
                continue;
            const ifq_grule_t *r = &ifq_guard_rules[ri];
            const pcre2_code *code = g->code[ri];
            int rc = IFQ_OK;
            unsigned runs0 = sc->region_runs;
            if ((r->regions & RG_LIT) && rbits_has(&pr.trig, ri) &&
                required_in(&pr, ri, text, 0, len))
                rc = run_region(sc, ri, code, text, len, 0, len, &sig[ri]);
            if ((r->regions & RG_LIT) && rbits_has(&pr.hit, ri)) {
                const ifq_ghits_t *h = &sc->hits[ri];
                if (h->all && required_in(&pr, ri, text, 0, len))
                    rc = run_region(sc, ri, code, text, len, 0, len, &sig[ri]);
                for (size_t j = 0; !h->all && j < h->n && rc == IFQ_OK; j++)
                    if (required_in(&pr, ri, text, h->s[j], h->e[j]))
                        rc = run_region(sc, ri, code, text, len, h->s[j], h->e[j], &sig[ri]);
            }
            static const struct {
                unsigned rg;
                int kind;
            } map[] = {{RG_NUM, W_NUM}, {RG_HEX, W_HEX}, {RG_AT, W_AT}, {RG_RUN, W_RUN}};
            for (size_t m = 0; m < sizeof(map) / sizeof(map[0]) && rc == IFQ_OK; m++) {
                if (!(r->regions & map[m].rg))
                    continue;
                const winlist_t *l = &wl[map[m].kind];
                if (l->all) {
                    rc = run_region(sc, ri, code, text, len, 0, len, &sig[ri]);
                    break;
                }
                for (size_t j = 0; j < l->n && rc == IFQ_OK; j++) {
                    if (r->min_digits && l->w[j].weight < (uint32_t)r->min_digits)
                        continue;
                    size_t s = l->w[j].s, e = l->w[j].e;
                    if (s < e && window_may_match(r, (const unsigned char *)text, s, e))
                        rc = run_region(sc, ri, code, text, len, s, e, &sig[ri]);
                }
            }
            if (rc)
                return rc;
            /* a rule that ran no pattern took no time worth a clock read */
            if (sc->region_runs != runs0 && over_budget(sc))
                break;
        }

        /* rules that need several matches (zero-width characters) */
        for (size_t ri = 0; ri < ifq_guard_nrules; ri++) {
            const ifq_grule_t *r = &ifq_guard_rules[ri];
            if (r->entity == GE_INJECTION || r->min_count <= 1 || sig[ri].matches == 0)
                continue;
            if (sig[ri].matches < r->min_count) {
                for (size_t i = 0; i < sc->n; i++)
                    if (sc->c[i].rule == (int)ri)
                        sc->c[i].score = 0;
            }
        }
        /* duplicates from a rule that runs in two kinds of windows */
        if (sc->n > 1) {
            qsort(sc->c, sc->n, sizeof(*sc->c), cmp_start);
            size_t k = 0;
            for (size_t i = 0; i < sc->n; i++) {
                if (k && sc->c[k - 1].s == sc->c[i].s && sc->c[k - 1].e == sc->c[i].e &&
                    sc->c[k - 1].rule == sc->c[i].rule)
                    continue;
                sc->c[k++] = sc->c[i];
            }
            sc->n = k;
        }

        /* prompt injection: noisy-or of the distinct rule signals, then the
         * model's probability combined the same way */
        const ifq_gent_cfg_t *icfg = &p->ent[dir][GE_INJECTION];
        if (icfg->action != GA_OFF) {
            double keep = 1.0;
            size_t sl = 0;
            for (size_t ri = 0; ri < ifq_guard_nrules; ri++) {
                if (ifq_guard_rules[ri].entity != GE_INJECTION || !sig[ri].matches)
                    continue;
                double w = 0;
                for (size_t i = 0; i < sc->n; i++)
                    if (sc->c[i].rule == (int)ri && sc->c[i].score > w)
                        w = sc->c[i].score;
                keep *= 1.0 - w;
                const char *id = ifq_guard_rules[ri].id;
                size_t il = strlen(id);
                if (sl + il + 2 < sizeof(sc->signals)) {
                    if (sl)
                        sc->signals[sl++] = ',';
                    memcpy(sc->signals + sl, id, il);
                    sl += il;
                    sc->signals[sl] = 0;
                }
            }
            double rules_score = 1.0 - keep;
            double score = rules_score;
            if (sc->model_score >= 0) {
                score = 1.0 - (1.0 - rules_score) * (1.0 - sc->model_score);
                if (sc->model_score >= 0.5) {
                    size_t il = 5;
                    if (sl + il + 2 < sizeof(sc->signals)) {
                        if (sl)
                            sc->signals[sl++] = ',';
                        memcpy(sc->signals + sl, "model", il);
                        sl += il;
                        sc->signals[sl] = 0;
                    }
                }
            }
            sc->injection_score = score;
            int hit = score >= icfg->threshold;
            int any_span = 0;
            for (size_t i = 0; i < sc->n; i++) {
                if (sc->c[i].entity != GE_INJECTION)
                    continue;
                if (hit) {
                    sc->c[i].score = score;
                    any_span = 1;
                } else {
                    sc->c[i].score = 0;
                }
            }
            if (hit && !any_span) {
                int rc = add_cand(sc, 0, len, GE_INJECTION, 0, -1, score, icfg->action);
                if (rc)
                    return rc;
            }
        }
        /* drop what fell below its threshold */
        size_t k = 0;
        for (size_t i = 0; i < sc->n; i++) {
            ifq_gcand_t *c = &sc->c[i];
            if (c->score <= 0)
                continue;
            if (c->entity < GE_COUNT && c->entity != GE_INJECTION &&
                c->score < p->ent[dir][c->entity].threshold)
                continue;
            sc->c[k++] = *c;
        }
        sc->n = k;
        resolve_overlaps(sc, 0);
        if (p->nexempt) {
            k = 0;
            for (size_t i = 0; i < sc->n; i++) {
                int grp = ifq_guard_entities[sc->c[i].entity].group;
                if ((grp == GG_PII || grp == GG_SECRETS) && exempted(p, sc->md, text, &sc->c[i]))
                    continue;
                sc->c[k++] = sc->c[i];
            }
            sc->n = k;
        }
    }
    int rc = run_custom(sc, text, len);
    if (rc)
        return rc;
    if (sc->n > 1)
        qsort(sc->c, sc->n, sizeof(*sc->c), cmp_start);
    return IFQ_OK;
}
