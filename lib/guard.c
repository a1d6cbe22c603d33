/*
 * guard.c - the guardrail engine's public side: building the engine and
 * its policies from the `guardrails` config section (every pattern compiled
 * once, every error naming its key), walking OpenAI request and response
 * bodies per the policy's scope, turning scan candidates into findings
 * (never the matched text) and applying redact / mask / hash in place.
 * Detection itself lives in guard_scan.c, guard_rules.c, guard_validate.c
 * and guard_model.c; see docs/guardrails.md.
 */
#include "guard.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard_int.h"
#include "guard_validate.h"

static const char *const action_names[] = {"off", "flag", "redact", "mask", "hash", "block"};
static const char *const limit_names[] = {"TIME_BUDGET", "TEXT_TOO_LARGE", "MATCH_LIMIT",
                                          "TOO_MANY_FINDINGS", "TOO_MANY_TEXTS"};

const char *const *ifq_guard_entity_names(void)
{
    static const char *names[GE_COUNT + 1];
    for (int i = 0; i < GE_COUNT; i++)
        names[i] = ifq_guard_entities[i].name;
    names[GE_COUNT] = NULL;
    return names;
}

/* ---------------- configuration ---------------- */

typedef struct {
    char *errstr;
    size_t errstr_size;
    int failed;
} cerr_t;

static void cfail(cerr_t *ce, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfail(cerr_t *ce, const char *fmt, ...)
{
    if (ce->failed)
        return;
    ce->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ce->errstr, ce->errstr_size, fmt, ap);
    va_end(ap);
}

static int parse_action(const char *s)
{
    for (int i = 0; i < (int)IFQ_ARRAY_LEN(action_names); i++)
        if (s && strcmp(s, action_names[i]) == 0)
            return i;
    return -1;
}

static void check_keys(cerr_t *ce, const json_t *obj, const char *where, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            cfail(ce, "%s: unknown key '%s'", where, key);
            return;
        }
    }
}

static int get_uint(cerr_t *ce, const json_t *obj, const char *where, const char *key,
                    long long def, long long lo, long long hi, long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        cfail(ce, "%s.%s: expected an integer in [%lld, %lld]", where, key, lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static pcre2_code *compile_user(cerr_t *ce, const char *where, const char *pattern)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        cfail(ce, "%s: %s at offset %zu", where, (const char *)msg, (size_t)eo);
        return NULL;
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return code;
}

static void policy_free(struct ifq_guard_policy *p)
{
    for (size_t i = 0; i < p->ndeny; i++) {
        free(p->deny[i].name);
        pcre2_code_free(p->deny[i].code);
    }
    free(p->deny);
    for (size_t i = 0; i < p->nallow; i++) {
        free(p->allow[i].name);
        pcre2_code_free(p->allow[i].code);
    }
    free(p->allow);
    for (size_t i = 0; i < p->nexempt; i++) {
        free(p->exempt[i].name);
        pcre2_code_free(p->exempt[i].code);
    }
    free(p->exempt);
    pcre2_match_context_free(p->mctx);
    memset(p, 0, sizeof(*p));
}

static void set_all(ifq_gent_cfg_t *ent, int group, int action, double threshold)
{
    for (int e = 0; e < GE_COUNT; e++)
        if (group < 0 || ifq_guard_entities[e].group == group) {
            ent[e].action = action;
            ent[e].threshold = threshold;
        }
}

static void default_limits(ifq_glimits_t *l)
{
    l->max_text_bytes = 1u << 20;
    l->max_total_bytes = 8u << 20;
    l->max_texts = 4096;
    l->max_findings = 1024;
    l->time_budget_us = 100 * 1000;
    l->match_limit = 1000000;
    l->depth_limit = 10000;
    l->heap_limit_kib = 20480;
    l->on_limit = GA_FLAG;
}

/* The policy used when the config names none: see docs/guardrails.md for
 * why PII is flagged, secrets redacted and injection flagged. */
static void builtin_default(struct ifq_guard_policy *p)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->name, "default", 8);
    p->scope = GS_ALL;
    p->use_model = 1;
    for (int d = 0; d < 2; d++) {
        set_all(p->ent[d], GG_PII, GA_FLAG, 0.5);
        set_all(p->ent[d], GG_SECRETS, GA_REDACT, 0.5);
        set_all(p->ent[d], GG_INJECTION, GA_FLAG, 0.5);
    }
    /* Answers are not instructions to us: the injection phrase model is off
     * on output; invisible text and image exfiltration stay flagged. */
    p->ent[IFQ_GUARD_OUTPUT][GE_INJECTION].action = GA_OFF;
    default_limits(&p->lim);
}

static int entity_by_name(const char *name)
{
    char up[64];
    size_t n = strlen(name);
    if (n >= sizeof(up))
        return -1;
    for (size_t i = 0; i <= n; i++)
        up[i] = (char)toupper((unsigned char)name[i]);
    for (int e = 0; e < GE_COUNT; e++)
        if (strcmp(up, ifq_guard_entities[e].name) == 0)
            return e;
    return -1;
}

static void parse_detectors(cerr_t *ce, const json_t *det, const char *where, ifq_gent_cfg_t *ent)
{
    if (!json_is_object(det)) {
        cfail(ce, "%s: expected a mapping of detector or entity to action", where);
        return;
    }
    set_all(ent, -1, GA_OFF, 0.5);
    /* groups first, then entities, so an entity overrides its group */
    for (int pass = 0; pass < 2 && !ce->failed; pass++) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)det, key, v)
        {
            int group = -1, entity = -1;
            for (int gi = 0; gi < GG_CUSTOM; gi++)
                if (strcmp(key, ifq_guard_group_names[gi]) == 0)
                    group = gi;
            if (group < 0)
                entity = entity_by_name(key);
            if (group < 0 && entity < 0) {
                cfail(ce,
                      "%s.%s: unknown detector (groups: pii, secrets, injection; or an entity "
                      "such as EMAIL_ADDRESS)",
                      where, key);
                return;
            }
            if ((pass == 0) != (group >= 0))
                continue;
            const char *an = NULL;
            double thr = -1;
            if (json_is_string(v)) {
                an = json_string_value(v);
            } else if (json_is_object(v)) {
                static const char *const keys[] = {"action", "threshold", NULL};
                char w2[300];
                ifq_fmt(w2, sizeof(w2), "%s.%s", where, key);
                check_keys(ce, v, w2, keys);
                an = json_string_value(json_object_get(v, "action"));
                json_t *t = json_object_get(v, "threshold");
                if (t) {
                    if (!json_is_number(t) || json_number_value(t) < 0 ||
                        json_number_value(t) > 1) {
                        cfail(ce, "%s.%s.threshold: expected a number in [0, 1]", where, key);
                        return;
                    }
                    thr = json_number_value(t);
                }
                if (!an)
                    an = "flag";
            } else if (json_is_false(v)) {
                an = "off";
            } else if (json_is_true(v)) {
                an = "flag";
            }
            int a = parse_action(an);
            if (a < 0) {
                cfail(ce, "%s.%s: action must be one of block, redact, mask, hash, flag, off",
                      where, key);
                return;
            }
            for (int e = 0; e < GE_COUNT; e++) {
                if (group >= 0 ? ifq_guard_entities[e].group != group : e != entity)
                    continue;
                ent[e].action = a;
                if (thr >= 0)
                    ent[e].threshold = thr;
            }
        }
    }
}

static int parse_list(cerr_t *ce, const json_t *arr, const char *where, int with_action,
                      ifq_gcustom_t **out, size_t *nout)
{
    if (!arr)
        return 0;
    if (!json_is_array(arr)) {
        cfail(ce, "%s: expected a list of patterns", where);
        return -1;
    }
    size_t n = json_array_size(arr);
    if (n > 256) {
        cfail(ce, "%s: at most 256 patterns", where);
        return -1;
    }
    *out = calloc(n ? n : 1, sizeof(ifq_gcustom_t));
    if (!*out) {
        cfail(ce, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(arr, i);
        char w[300];
        ifq_fmt(w, sizeof(w), "%s[%zu]", where, i);
        const char *pat = NULL, *name = NULL;
        int action = GA_BLOCK;
        if (json_is_string(it)) {
            pat = json_string_value(it);
        } else if (json_is_object(it) && with_action) {
            static const char *const keys[] = {"name", "pattern", "action", NULL};
            check_keys(ce, it, w, keys);
            pat = json_string_value(json_object_get(it, "pattern"));
            name = json_string_value(json_object_get(it, "name"));
            json_t *a = json_object_get(it, "action");
            if (a) {
                action = parse_action(json_string_value(a));
                if (action <= GA_OFF) {
                    cfail(ce, "%s.action: must be one of block, redact, mask, hash, flag", w);
                    return -1;
                }
            }
        }
        if (!pat) {
            cfail(ce, "%s: expected a pattern string%s", w,
                  with_action ? " or {name, pattern, action}" : "");
            return -1;
        }
        char defname[32];
        if (!name) {
            ifq_fmt(defname, sizeof(defname), "deny_%zu", i);
            name = defname;
        }
        if (strlen(name) > IFQ_MAX_NAME) {
            cfail(ce, "%s.name: longer than %d characters", w, IFQ_MAX_NAME);
            return -1;
        }
        (*out)[i].code = compile_user(ce, w, pat);
        (*out)[i].name = strdup(name);
        (*out)[i].action = action;
        (*nout)++;
        if (!(*out)[i].code || !(*out)[i].name) {
            if ((*out)[i].code && !(*out)[i].name)
                cfail(ce, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int parse_scope(cerr_t *ce, const json_t *v, const char *where, unsigned *scope)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"latest_user", GS_LATEST_USER},
                 {"all_user", GS_ALL_USER},
                 {"all", GS_ALL},
                 {"system", GS_SYSTEM}};
    *scope = 0;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_is_array(v) ? json_array_get(v, i) : v;
        const char *s = json_string_value(it);
        unsigned bit = 0;
        for (size_t k = 0; s && k < IFQ_ARRAY_LEN(names); k++)
            if (strcmp(s, names[k].name) == 0)
                bit = names[k].bit;
        if (!bit) {
            cfail(ce, "%s: expected latest_user, all_user, all or system (or a list of them)",
                  where);
            return -1;
        }
        *scope |= bit;
    }
    if (!*scope) {
        cfail(ce, "%s: empty", where);
        return -1;
    }
    return 0;
}

static void finish_policy(struct ifq_guard_policy *p, struct ifq_guard *g, cerr_t *ce)
{
    p->g = g;
    p->mctx = pcre2_match_context_create(NULL);
    if (!p->mctx) {
        cfail(ce, "out of memory");
        return;
    }
    pcre2_set_match_limit(p->mctx, p->lim.match_limit);
    pcre2_set_depth_limit(p->mctx, p->lim.depth_limit);
    pcre2_set_heap_limit(p->mctx, p->lim.heap_limit_kib);
    for (int d = 0; d < 2; d++) {
        memset(&p->enabled[d], 0, sizeof(p->enabled[d]));
        p->any_enabled[d] = 0;
        for (size_t r = 0; r < ifq_guard_nrules; r++) {
            if (p->ent[d][ifq_guard_rules[r].entity].action != GA_OFF) {
                p->enabled[d].w[r / 64] |= (uint64_t)1 << (r % 64);
                p->any_enabled[d] = 1;
            }
        }
    }
}

static int uses_hash(const struct ifq_guard_policy *p)
{
    for (int d = 0; d < 2; d++)
        for (int e = 0; e < GE_COUNT; e++)
            if (p->ent[d][e].action == GA_HASH)
                return 1;
    for (size_t i = 0; i < p->ndeny; i++)
        if (p->deny[i].action == GA_HASH)
            return 1;
    return 0;
}

static void parse_policy(cerr_t *ce, const char *name, const json_t *obj,
                         struct ifq_guard_policy *p)
{
    char where[200];
    ifq_fmt(where, sizeof(where), "guardrails.policies.%s", name);
    builtin_default(p);
    if (strlen(name) > IFQ_MAX_NAME) {
        cfail(ce, "%s: policy name longer than %d characters", where, IFQ_MAX_NAME);
        return;
    }
    memcpy(p->name, name, strlen(name) + 1);
    if (!json_is_object(obj)) {
        cfail(ce, "%s: expected a mapping", where);
        return;
    }
    static const char *const keys[] = {"scope", "detectors",    "output", "injection_model", "deny",
                                       "allow", "allow_action", "exempt", "limits",          NULL};
    check_keys(ce, obj, where, keys);
    char w[300];
    json_t *v;
    if ((v = json_object_get(obj, "scope"))) {
        ifq_fmt(w, sizeof(w), "%s.scope", where);
        parse_scope(ce, v, w, &p->scope);
    }
    if ((v = json_object_get(obj, "detectors"))) {
        ifq_fmt(w, sizeof(w), "%s.detectors", where);
        parse_detectors(ce, v, w, p->ent[IFQ_GUARD_INPUT]);
        memcpy(p->ent[IFQ_GUARD_OUTPUT], p->ent[IFQ_GUARD_INPUT], sizeof(p->ent[0]));
    }
    if ((v = json_object_get(obj, "output"))) {
        ifq_fmt(w, sizeof(w), "%s.output", where);
        static const char *const okeys[] = {"detectors", NULL};
        if (!json_is_object(v))
            cfail(ce, "%s: expected a mapping", w);
        else
            check_keys(ce, v, w, okeys);
        json_t *od = json_object_get(v, "detectors");
        if (od) {
            ifq_fmt(w, sizeof(w), "%s.output.detectors", where);
            parse_detectors(ce, od, w, p->ent[IFQ_GUARD_OUTPUT]);
        }
    }
    if ((v = json_object_get(obj, "injection_model"))) {
        if (!json_is_boolean(v))
            cfail(ce, "%s.injection_model: expected true or false", where);
        p->use_model = json_is_true(v);
    }
    ifq_fmt(w, sizeof(w), "%s.deny", where);
    parse_list(ce, json_object_get(obj, "deny"), w, 1, &p->deny, &p->ndeny);
    ifq_fmt(w, sizeof(w), "%s.allow", where);
    parse_list(ce, json_object_get(obj, "allow"), w, 0, &p->allow, &p->nallow);
    ifq_fmt(w, sizeof(w), "%s.exempt", where);
    parse_list(ce, json_object_get(obj, "exempt"), w, 0, &p->exempt, &p->nexempt);
    p->allow_action = GA_BLOCK;
    if ((v = json_object_get(obj, "allow_action"))) {
        int a = parse_action(json_string_value(v));
        if (a != GA_BLOCK && a != GA_FLAG)
            cfail(ce, "%s.allow_action: expected block or flag", where);
        p->allow_action = a;
    }
    if ((v = json_object_get(obj, "limits"))) {
        ifq_fmt(w, sizeof(w), "%s.limits", where);
        static const char *const lkeys[] = {
            "max_text_bytes", "max_total_bytes", "max_texts",      "max_findings", "time_budget_ms",
            "match_limit",    "depth_limit",     "heap_limit_kib", "on_limit",     NULL};
        if (!json_is_object(v)) {
            cfail(ce, "%s: expected a mapping", w);
            return;
        }
        check_keys(ce, v, w, lkeys);
        long long x;
        if (!get_uint(ce, v, w, "max_text_bytes", (long long)p->lim.max_text_bytes, 1, 1ll << 30,
                      &x))
            p->lim.max_text_bytes = (size_t)x;
        if (!get_uint(ce, v, w, "max_total_bytes", (long long)p->lim.max_total_bytes, 1, 1ll << 32,
                      &x))
            p->lim.max_total_bytes = (size_t)x;
        if (!get_uint(ce, v, w, "max_texts", (long long)p->lim.max_texts, 1, 1000000, &x))
            p->lim.max_texts = (size_t)x;
        if (!get_uint(ce, v, w, "max_findings", (long long)p->lim.max_findings, 1, 1000000, &x))
            p->lim.max_findings = (size_t)x;
        if (!get_uint(ce, v, w, "time_budget_ms", p->lim.time_budget_us / 1000, 1, 600000, &x))
            p->lim.time_budget_us = x * 1000;
        if (!get_uint(ce, v, w, "match_limit", p->lim.match_limit, 1000, 1ll << 31, &x))
            p->lim.match_limit = (uint32_t)x;
        if (!get_uint(ce, v, w, "depth_limit", p->lim.depth_limit, 100, 1ll << 31, &x))
            p->lim.depth_limit = (uint32_t)x;
        if (!get_uint(ce, v, w, "heap_limit_kib", p->lim.heap_limit_kib, 64, 1ll << 31, &x))
            p->lim.heap_limit_kib = (uint32_t)x;
        json_t *ol = json_object_get(v, "on_limit");
        if (ol) {
            int a = parse_action(json_string_value(ol));
            if (a != GA_BLOCK && a != GA_FLAG)
                cfail(ce, "%s.on_limit: expected block or flag", w);
            p->lim.on_limit = a;
        }
    }
}

static int compile_builtins(struct ifq_guard *g, cerr_t *ce)
{
    if (ifq_guard_nrules > IFQ_GUARD_MAX_RULES) {
        cfail(ce, "too many built-in guardrail rules");
        return -1;
    }
    if (!ifq_guard_lits()) {
        cfail(ce, "guardrails: cannot build the literal prefilter");
        return -1;
    }
    g->max_ovec = 1;
    for (size_t r = 0; r < ifq_guard_nrules; r++) {
        int ec;
        PCRE2_SIZE eo;
        g->code[r] = pcre2_compile((PCRE2_SPTR)ifq_guard_rules[r].pattern, PCRE2_ZERO_TERMINATED,
                                   ifq_guard_rules[r].options, &ec, &eo, NULL);
        if (!g->code[r]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof(msg));
            cfail(ce, "built-in rule %s: %s at offset %zu", ifq_guard_rules[r].id,
                  (const char *)msg, (size_t)eo);
            return -1;
        }
        pcre2_jit_compile(g->code[r], PCRE2_JIT_COMPLETE);
        uint32_t cap = 0;
        pcre2_pattern_info(g->code[r], PCRE2_INFO_CAPTURECOUNT, &cap);
        if (cap + 1 > g->max_ovec)
            g->max_ovec = cap + 1;
    }
    return 0;
}

ifq_guard_t *ifq_guard_new(const json_t *gr, char *errstr, size_t errstr_size)
{
    cerr_t ce = {errstr, errstr_size, 0};
    if (errstr_size)
        errstr[0] = 0;
    struct ifq_guard *g = calloc(1, sizeof(*g));
    if (!g) {
        cfail(&ce, "out of memory");
        return NULL;
    }
    if (gr && !json_is_object(gr)) {
        cfail(&ce, "guardrails: expected a mapping");
        goto fail;
    }
    if (gr) {
        static const char *const keys[] = {"hmac_key_env", "policies", "model_path", NULL};
        check_keys(&ce, gr, "guardrails", keys);
        if (ce.failed)
            goto fail;
    }
    if (compile_builtins(g, &ce))
        goto fail;

    const char *model_path = gr ? json_string_value(json_object_get(gr, "model_path")) : NULL;
    if (gr && json_object_get(gr, "model_path") && !model_path) {
        cfail(&ce, "guardrails.model_path: expected a file path");
        goto fail;
    }
    char merr[256];
    if (model_path) {
        if (ifq_gmodel_load_file(&g->model, model_path, merr, sizeof(merr))) {
            cfail(&ce, "guardrails.model_path: %s", merr);
            goto fail;
        }
        g->have_model = 1;
    } else if (ifq_guard_model_blob_len > 0) {
        if (ifq_gmodel_load(&g->model, ifq_guard_model_blob, ifq_guard_model_blob_len, merr,
                            sizeof(merr))) {
            cfail(&ce, "built-in injection model: %s", merr);
            goto fail;
        }
        g->have_model = 1;
    }

    const char *key_env = gr ? json_string_value(json_object_get(gr, "hmac_key_env")) : NULL;
    if (gr && json_object_get(gr, "hmac_key_env") && !key_env) {
        cfail(&ce, "guardrails.hmac_key_env: expected an environment variable name");
        goto fail;
    }
    if (key_env) {
        const char *k = getenv(key_env);
        if (k && *k) {
            g->hmac_key_len = strlen(k);
            g->hmac_key = malloc(g->hmac_key_len);
            if (!g->hmac_key) {
                cfail(&ce, "out of memory");
                goto fail;
            }
            memcpy(g->hmac_key, k, g->hmac_key_len);
        }
    }

    builtin_default(&g->builtin);
    finish_policy(&g->builtin, g, &ce);
    json_t *pols = gr ? json_object_get(gr, "policies") : NULL;
    if (pols && !json_is_object(pols)) {
        cfail(&ce, "guardrails.policies: expected a mapping of policy name to policy");
        goto fail;
    }
    size_t np = pols ? json_object_size(pols) : 0;
    if (np) {
        g->policies = calloc(np, sizeof(*g->policies));
        if (!g->policies) {
            cfail(&ce, "out of memory");
            goto fail;
        }
        const char *name;
        json_t *pv;
        json_object_foreach(pols, name, pv)
        {
            struct ifq_guard_policy *p = &g->policies[g->npolicies++];
            parse_policy(&ce, name, pv, p);
            if (ce.failed)
                goto fail;
            finish_policy(p, g, &ce);
            if (ce.failed)
                goto fail;
            if (uses_hash(p) && !g->hmac_key) {
                cfail(&ce,
                      "guardrails.policies.%s: the hash action needs guardrails.hmac_key_env "
                      "naming a non-empty environment variable%s%s",
                      name, key_env ? " (unset: " : "", key_env ? key_env : "");
                if (key_env && ce.errstr_size > 2) {
                    size_t l = strlen(ce.errstr);
                    if (l + 2 < ce.errstr_size)
                        memcpy(ce.errstr + l, ")", 2);
                }
                goto fail;
            }
        }
    }
    if (ce.failed)
        goto fail;
    return g;
fail:
    ifq_guard_destroy(g);
    return NULL;
}

ifq_guard_t *ifq_guard_from_config(const ifq_config_t *cfg, char *errstr, size_t errstr_size)
{
    return ifq_guard_new(cfg ? json_object_get(cfg->root, "guardrails") : NULL, errstr,
                         errstr_size);
}

void ifq_guard_destroy(ifq_guard_t *g)
{
    if (!g)
        return;
    for (size_t r = 0; r < IFQ_GUARD_MAX_RULES; r++)
        pcre2_code_free(g->code[r]);
    for (size_t i = 0; i < g->npolicies; i++)
        policy_free(&g->policies[i]);
    free(g->policies);
    policy_free(&g->builtin);
    ifq_gmodel_free(&g->model);
    if (g->hmac_key) {
        memset(g->hmac_key, 0, g->hmac_key_len);
        free(g->hmac_key);
    }
    free(g);
}

const ifq_guard_policy_t *ifq_guard_policy(const ifq_guard_t *g, const char *name)
{
    if (!g)
        return NULL;
    const char *want = name ? name : "default";
    for (size_t i = 0; i < g->npolicies; i++)
        if (strcmp(g->policies[i].name, want) == 0)
            return &g->policies[i];
    if (strcmp(want, "default") == 0)
        return &g->builtin;
    return NULL;
}

const char *ifq_guard_policy_name(const ifq_guard_policy_t *p)
{
    return p ? p->name : NULL;
}

size_t ifq_guard_policy_count(const ifq_guard_t *g)
{
    if (!g)
        return 0;
    return g->npolicies + (ifq_guard_policy(g, "default") == &g->builtin ? 1 : 0);
}

const char *ifq_guard_policy_at(const ifq_guard_t *g, size_t i)
{
    if (!g)
        return NULL;
    if (i < g->npolicies)
        return g->policies[i].name;
    if (i == g->npolicies && ifq_guard_policy(g, "default") == &g->builtin)
        return g->builtin.name;
    return NULL;
}

/* ---------------- verdicts and findings ---------------- */

void ifq_guard_verdict_init(ifq_guard_verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    v->injection_score = -1;
}

void ifq_guard_verdict_clear(ifq_guard_verdict_t *v)
{
    if (!v)
        return;
    json_decref(v->findings);
    ifq_guard_verdict_init(v);
}

static int verdict_reset(ifq_guard_verdict_t *v)
{
    json_decref(v->findings);
    ifq_guard_verdict_init(v);
    v->findings = json_array();
    return v->findings ? IFQ_OK : IFQ_ERR_NOMEM;
}

typedef struct {
    const char *field; /* "message" or "choice"; NULL for plain text */
    long index;
    long part;      /* content part, -1 when the content is a string */
    long tool_call; /* tool call index, -1 otherwise */
} loc_t;

static void note_block(ifq_guard_verdict_t *v, const char *detector, const char *entity)
{
    v->blocked = 1;
    char item[200];
    ifq_fmt(item, sizeof(item), "%s/%s", detector, entity);
    /* once each, comma-separated, bounded */
    const char *b = v->blocked_by;
    size_t il = strlen(item);
    for (const char *q = b; (q = strstr(q, item)) != NULL; q += il)
        if ((q == b || q[-1] == ',') && (q[il] == ',' || q[il] == 0))
            return;
    size_t bl = strlen(b);
    if (bl + il + 2 >= sizeof(v->blocked_by))
        return;
    if (bl)
        v->blocked_by[bl++] = ',';
    memcpy(v->blocked_by + bl, item, il + 1);
}

/* Code point index of byte offset `off`, using a forward cursor. */
typedef struct {
    const char *t;
    size_t byte, cp;
} cpcur_t;

static size_t cp_at(cpcur_t *c, size_t off)
{
    if (off < c->byte) {
        c->byte = 0;
        c->cp = 0;
    }
    for (; c->byte < off; c->byte++)
        if (((unsigned char)c->t[c->byte] & 0xC0) != 0x80)
            c->cp++;
    return c->cp;
}

static const char *cand_detector(const ifq_gcand_t *c)
{
    if (c->entity == GE_DENY || c->entity == GE_ALLOW_MISS)
        return "custom";
    if (c->entity == GE_LIMIT)
        return "limits";
    return ifq_guard_group_names[ifq_guard_entities[c->entity].group];
}

static const char *cand_entity(const struct ifq_guard_policy *p, const ifq_gcand_t *c)
{
    if (c->entity == GE_DENY)
        return p->deny[c->sub].name;
    if (c->entity == GE_ALLOW_MISS)
        return "ALLOW_LIST_MISS";
    if (c->entity == GE_LIMIT)
        return limit_names[c->sub];
    return ifq_guard_entities[c->entity].name;
}

#define MAX_SPANS 32

static int add_findings(const struct ifq_guard_policy *p, ifq_gscan_t *sc, const char *text,
                        const loc_t *loc, ifq_guard_verdict_t *v)
{
    cpcur_t cur = {text, 0, 0};
    /* spans in code points, computed once in start order */
    size_t *cs = NULL;
    if (sc->n) {
        cs = malloc(sizeof(size_t) * 2 * sc->n);
        if (!cs)
            return IFQ_ERR_NOMEM;
        for (size_t i = 0; i < sc->n; i++)
            cs[2 * i] = cp_at(&cur, sc->c[i].s);
        for (size_t i = 0; i < sc->n; i++)
            cs[2 * i + 1] = cp_at(&cur, sc->c[i].e);
    }
    char *done = calloc(sc->n ? sc->n : 1, 1);
    if (!done) {
        free(cs);
        return IFQ_ERR_NOMEM;
    }
    for (size_t i = 0; i < sc->n; i++) {
        if (done[i])
            continue;
        const ifq_gcand_t *c = &sc->c[i];
        json_t *f = json_object();
        json_t *spans = json_array();
        if (!f || !spans) {
            json_decref(f);
            json_decref(spans);
            free(cs);
            free(done);
            return IFQ_ERR_NOMEM;
        }
        double score = 0;
        size_t count = 0;
        for (size_t k = i; k < sc->n; k++) {
            const ifq_gcand_t *o = &sc->c[k];
            if (done[k] || o->entity != c->entity || o->sub != c->sub)
                continue;
            done[k] = 1;
            count++;
            if (o->score > score)
                score = o->score;
            if (json_array_size(spans) < MAX_SPANS)
                json_array_append_new(
                    spans, json_pack("[II]", (json_int_t)cs[2 * k], (json_int_t)cs[2 * k + 1]));
        }
        const char *det = cand_detector(c), *ent = cand_entity(p, c);
        json_object_set_new(f, "detector", json_string(det));
        json_object_set_new(f, "entity", json_string(ent));
        json_object_set_new(f, "action", json_string(action_names[c->action]));
        json_object_set_new(f, "count", json_integer((json_int_t)count));
        json_object_set_new(f, "score", json_real((double)(long)(score * 1000 + 0.5) / 1000));
        json_object_set_new(f, "spans", spans);
        if (c->entity == GE_INJECTION && sc->signals[0]) {
            json_t *sig = json_array();
            char buf[sizeof(sc->signals)];
            memcpy(buf, sc->signals, sizeof(buf));
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t && sig; t = strtok_r(NULL, ",", &save))
                json_array_append_new(sig, json_string(t));
            json_object_set_new(f, "signals", sig);
        }
        if (loc && loc->field) {
            json_object_set_new(f, loc->field, json_integer(loc->index));
            if (loc->part >= 0)
                json_object_set_new(f, "part", json_integer(loc->part));
            if (loc->tool_call >= 0)
                json_object_set_new(f, "tool_call", json_integer(loc->tool_call));
        }
        if (json_array_append_new(v->findings, f)) {
            free(cs);
            free(done);
            return IFQ_ERR_NOMEM;
        }
        if (c->action == GA_BLOCK)
            note_block(v, det, ent);
    }
    free(cs);
    free(done);
    return IFQ_OK;
}

/* ---------------- transforms ---------------- */

typedef struct {
    char *b;
    size_t n, cap;
    int oom;
} buf_t;

static void bput(buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *nb = realloc(b->b, nc);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->b = nb;
        b->cap = nc;
    }
    memcpy(b->b + b->n, s, n);
    b->n += n;
    b->b[b->n] = 0;
}

static void put_mask(buf_t *b, const char *s, size_t n)
{
    /* keep separators and the last 4 letters/digits; every other character
     * (a whole UTF-8 sequence counts as one) becomes '*' */
    size_t alnum = 0;
    for (size_t i = 0; i < n; i++)
        if (isalnum((unsigned char)s[i]) || (unsigned char)s[i] >= 0xC0)
            alnum++;
    size_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) == 0x80)
            continue;
        size_t cl = 1;
        while (i + cl < n && ((unsigned char)s[i + cl] & 0xC0) == 0x80)
            cl++;
        int counted = isalnum(c) || c >= 0xC0;
        if (counted)
            seen++;
        if (counted && seen + 4 > alnum)
            bput(b, s + i, cl);
        else if (!counted && c < 0x80)
            bput(b, s + i, 1);
        else
            bput(b, "*", 1);
    }
}

static void put_hash(buf_t *b, const struct ifq_guard *g, const char *label, int entity,
                     const char *s, size_t n)
{
    /* normalise so that formatting does not change the pseudonym */
    char norm[512];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof(norm); i++) {
        unsigned char c = (unsigned char)s[i];
        if (entity == GE_PHONE || entity == GE_CARD || entity == GE_SSN) {
            if (isdigit(c))
                norm[k++] = (char)c;
        } else if (entity == GE_IBAN) {
            if (isalnum(c))
                norm[k++] = (char)toupper(c);
        } else if (entity == GE_EMAIL) {
            norm[k++] = (char)tolower(c);
        } else {
            norm[k++] = (char)c;
        }
    }
    unsigned char mac[32];
    char msg[600];
    size_t ll = strlen(label);
    if (ll > 64)
        ll = 64;
    memcpy(msg, label, ll);
    msg[ll] = ':';
    memcpy(msg + ll + 1, norm, k);
    ifq_gv_hmac_sha256(g->hmac_key, g->hmac_key_len, msg, ll + 1 + k, mac);
    char out[128];
    int w = snprintf(out, sizeof(out), "<%.*s:", (int)ll, label);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 6 && w + 3 < (int)sizeof(out); i++) {
        out[w++] = hex[mac[i] >> 4];
        out[w++] = hex[mac[i] & 15];
    }
    out[w++] = '>';
    bput(b, out, (size_t)w);
}

/* Builds the transformed text when some candidate redacts, masks or
 * hashes. Overlapping spans: the earliest (then longest) wins. Returns 1
 * with *out set, 0 when nothing changes, -1 on OOM. */
static int transform(const struct ifq_guard_policy *p, const ifq_gscan_t *sc, const char *text,
                     size_t len, char **out, size_t *out_len)
{
    int any = 0;
    for (size_t i = 0; i < sc->n && !any; i++)
        any = sc->c[i].action == GA_REDACT || sc->c[i].action == GA_MASK ||
              sc->c[i].action == GA_HASH;
    if (!any)
        return 0;
    buf_t b = {0};
    size_t pos = 0;
    for (size_t i = 0; i < sc->n; i++) {
        const ifq_gcand_t *c = &sc->c[i];
        if (c->action != GA_REDACT && c->action != GA_MASK && c->action != GA_HASH)
            continue;
        if (c->s < pos || c->e > len || c->e <= c->s)
            continue; /* overlaps an applied span */
        bput(&b, text + pos, c->s - pos);
        const char *label = cand_entity(p, c);
        if (c->action == GA_REDACT) {
            bput(&b, "<", 1);
            bput(&b, label, strlen(label));
            bput(&b, ">", 1);
        } else if (c->action == GA_MASK) {
            put_mask(&b, text + c->s, c->e - c->s);
        } else {
            put_hash(&b, p->g, label, c->entity, text + c->s, c->e - c->s);
        }
        pos = c->e;
    }
    bput(&b, text + pos, len - pos);
    if (b.oom) {
        free(b.b);
        return -1;
    }
    *out = b.b;
    *out_len = b.n;
    return 1;
}

/* ---------------- scanning bodies ---------------- */

typedef struct {
    const struct ifq_guard_policy *p;
    ifq_gscan_t sc;
    ifq_guard_verdict_t *v;
    size_t texts;
    int err;
} walk_t;

static void finish_limits(walk_t *w)
{
    for (int k = 0; k < (int)IFQ_ARRAY_LEN(limit_names); k++) {
        if (!(w->sc.limits_hit & (1u << k)))
            continue;
        json_t *f =
            json_pack("{s:s, s:s, s:s, s:i}", "detector", "limits", "entity", limit_names[k],
                      "action", action_names[w->p->lim.on_limit], "count", 1);
        if (!f || json_array_append_new(w->v->findings, f)) {
            w->err = IFQ_ERR_NOMEM;
            return;
        }
        w->v->incomplete = 1;
        if (w->p->lim.on_limit == GA_BLOCK)
            note_block(w->v, "limits", limit_names[k]);
    }
}

/* Scans one JSON string in place. */
static void scan_jstring(walk_t *w, json_t *str, const loc_t *loc)
{
    if (w->err || !json_is_string(str))
        return;
    if (++w->texts > w->p->lim.max_texts) {
        w->sc.limits_hit |= 1u << IFQ_GLIM_TEXTS;
        return;
    }
    const char *t = json_string_value(str);
    size_t len = json_string_length(str);
    int rc = ifq_gscan_text(&w->sc, t, len);
    if (rc) {
        w->err = rc;
        return;
    }
    if (w->sc.injection_score > w->v->injection_score)
        w->v->injection_score = w->sc.injection_score;
    if (!w->sc.n)
        return;
    rc = add_findings(w->p, &w->sc, t, loc, w->v);
    if (rc) {
        w->err = rc;
        return;
    }
    char *nt = NULL;
    size_t nl = 0;
    int tr = transform(w->p, &w->sc, t, len, &nt, &nl);
    if (tr < 0) {
        w->err = IFQ_ERR_NOMEM;
        return;
    }
    if (tr > 0) {
        /* the replacements are ASCII and whole characters are replaced, so
         * valid UTF-8 stays valid */
        if (json_string_setn(str, nt, nl) == 0)
            w->v->modified = 1;
        else
            w->err = IFQ_ERR_INVALID;
        free(nt);
    }
}

/* A message's or choice's content: a string, or an array of parts whose
 * text parts ({"type":"text","text":...}) are scanned. */
static void scan_content(walk_t *w, json_t *content, loc_t loc)
{
    if (json_is_string(content)) {
        loc.part = -1;
        scan_jstring(w, content, &loc);
        return;
    }
    if (!json_is_array(content))
        return;
    size_t n = json_array_size(content);
    for (size_t j = 0; j < n && !w->err; j++) {
        json_t *part = json_array_get(content, j);
        loc.part = (long)j;
        if (json_is_string(part)) {
            scan_jstring(w, part, &loc);
            continue;
        }
        if (!json_is_object(part))
            continue;
        json_t *t = json_object_get(part, "text");
        if (json_is_string(t))
            scan_jstring(w, t, &loc);
        else if (json_is_object(t)) /* {"type":"text","text":{"value":...}} */
            scan_jstring(w, json_object_get(t, "value"), &loc);
    }
}

static void scan_prompt_like(walk_t *w, json_t *v, const char *field)
{
    loc_t loc = {field, 0, -1, -1};
    if (json_is_string(v)) {
        scan_jstring(w, v, &loc);
        return;
    }
    if (!json_is_array(v))
        return;
    for (size_t i = 0; i < json_array_size(v) && !w->err; i++) {
        loc.index = (long)i;
        scan_jstring(w, json_array_get(v, i), &loc); /* token arrays are skipped */
    }
}

static int begin(walk_t *w, const ifq_guard_policy_t *p, int dir, ifq_guard_verdict_t *out)
{
    memset(w, 0, sizeof(*w));
    w->p = p;
    w->v = out;
    int rc = verdict_reset(out);
    if (rc)
        return rc;
    return ifq_gscan_init(&w->sc, p, dir);
}

static int end(walk_t *w, int64_t t0)
{
    if (!w->err)
        finish_limits(w);
    ifq_gscan_free(&w->sc);
    w->v->elapsed_us = ifq_mono_us() - t0;
    return w->err;
}

int ifq_guard_scan_request(const ifq_guard_policy_t *p, json_t *body, ifq_url_kind_t kind,
                           ifq_guard_verdict_t *out)
{
    int64_t t0 = ifq_mono_us();
    if (!p || !out)
        return IFQ_ERR_INVALID;
    walk_t w;
    int rc = begin(&w, p, IFQ_GUARD_INPUT, out);
    if (rc) {
        ifq_gscan_free(&w.sc);
        return rc;
    }
    if (!json_is_object(body)) {
        ifq_gscan_free(&w.sc);
        return IFQ_ERR_INVALID;
    }
    if (kind == IFQ_URL_CHAT) {
        json_t *msgs = json_object_get(body, "messages");
        size_t n = json_array_size(msgs);
        long latest = -1;
        for (size_t i = 0; i < n; i++) {
            const char *role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
            if (role && strcmp(role, "user") == 0)
                latest = (long)i;
        }
        for (size_t i = 0; i < n && !w.err; i++) {
            json_t *m = json_array_get(msgs, i);
            const char *role = json_string_value(json_object_get(m, "role"));
            int is_user = role && strcmp(role, "user") == 0;
            int is_sys = role && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0);
            int take = (p->scope & GS_ALL) || ((p->scope & GS_ALL_USER) && is_user) ||
                       ((p->scope & GS_LATEST_USER) && (long)i == latest) ||
                       ((p->scope & GS_SYSTEM) && is_sys);
            if (!take)
                continue;
            loc_t loc = {"message", (long)i, -1, -1};
            scan_content(&w, json_object_get(m, "content"), loc);
        }
    } else if (kind == IFQ_URL_COMPLETIONS) {
        scan_prompt_like(&w, json_object_get(body, "prompt"), "message");
    } else if (kind == IFQ_URL_EMBEDDINGS) {
        scan_prompt_like(&w, json_object_get(body, "input"), "message");
    }
    return end(&w, t0);
}

int ifq_guard_scan_response(const ifq_guard_policy_t *p, json_t *body, ifq_url_kind_t kind,
                            ifq_guard_verdict_t *out)
{
    int64_t t0 = ifq_mono_us();
    if (!p || !out)
        return IFQ_ERR_INVALID;
    walk_t w;
    int rc = begin(&w, p, IFQ_GUARD_OUTPUT, out);
    if (rc) {
        ifq_gscan_free(&w.sc);
        return rc;
    }
    if (!json_is_object(body)) {
        ifq_gscan_free(&w.sc);
        return IFQ_ERR_INVALID;
    }
    (void)kind; /* chat and completions answers share the choices[] shape */
    json_t *choices = json_object_get(body, "choices");
    for (size_t i = 0; i < json_array_size(choices) && !w.err; i++) {
        json_t *c = json_array_get(choices, i);
        loc_t loc = {"choice", (long)i, -1, -1};
        json_t *msg = json_object_get(c, "message");
        if (json_is_object(msg)) {
            scan_content(&w, json_object_get(msg, "content"), loc);
            json_t *calls = json_object_get(msg, "tool_calls");
            for (size_t k = 0; k < json_array_size(calls) && !w.err; k++) {
                loc_t tl = {"choice", (long)i, -1, (long)k};
                json_t *fn = json_object_get(json_array_get(calls, k), "function");
                scan_jstring(&w, json_object_get(fn, "arguments"), &tl);
            }
        }
        json_t *text = json_object_get(c, "text");
        if (json_is_string(text))
            scan_jstring(&w, text, &loc);
    }
    return end(&w, t0);
}

int ifq_guard_scan_text(const ifq_guard_policy_t *p, ifq_guard_dir_t dir, const char *text,
                        size_t len, char **out_text, size_t *out_len, ifq_guard_verdict_t *out)
{
    int64_t t0 = ifq_mono_us();
    if (out_text)
        *out_text = NULL;
    if (out_len)
        *out_len = 0;
    if (!p || !out || (!text && len))
        return IFQ_ERR_INVALID;
    walk_t w;
    int rc = begin(&w, p, dir == IFQ_GUARD_OUTPUT ? IFQ_GUARD_OUTPUT : IFQ_GUARD_INPUT, out);
    if (rc) {
        ifq_gscan_free(&w.sc);
        return rc;
    }
    if (!text)
        text = "";
    rc = ifq_gscan_text(&w.sc, text, len);
    if (rc) {
        w.err = rc;
        return end(&w, t0);
    }
    out->injection_score = w.sc.injection_score;
    if (w.sc.n) {
        rc = add_findings(p, &w.sc, text, NULL, out);
        if (rc) {
            w.err = rc;
            return end(&w, t0);
        }
        if (out_text) {
            char *nt = NULL;
            size_t nl = 0;
            int tr = transform(p, &w.sc, text, len, &nt, &nl);
            if (tr < 0)
                w.err = IFQ_ERR_NOMEM;
            else if (tr > 0) {
                *out_text = nt;
                if (out_len)
                    *out_len = nl;
                out->modified = 1;
            }
        }
    }
    return end(&w, t0);
}
