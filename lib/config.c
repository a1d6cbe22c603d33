/*
 * config.c - loads the YAML configuration into a jansson tree (libyaml does
 * the YAML) and validates it into ifq_config_t. Every error names the key.
 */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include <yaml.h>

#define MAX_CONFIG_BYTES (4 * 1024 * 1024)
#define MAX_YAML_DEPTH 64

/* ---- YAML to JSON ------------------------------------------------------ */

static json_t *yaml_scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(v, len);
    if (len == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
        strcmp(v, "NULL") == 0)
        return json_null();
    if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 || strcmp(v, "TRUE") == 0)
        return json_true();
    if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0 || strcmp(v, "FALSE") == 0)
        return json_false();
    char *end = NULL;
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (!errno && end && *end == '\0' &&
        (isdigit((unsigned char)v[0]) || v[0] == '-' || v[0] == '+'))
        return json_integer(i);
    errno = 0;
    double d = strtod(v, &end);
    if (!errno && end && *end == '\0' &&
        (isdigit((unsigned char)v[0]) || v[0] == '-' || v[0] == '.'))
        return json_real(d);
    return json_stringn(v, len);
}

typedef struct {
    yaml_parser_t parser;
    char *errstr;
    size_t errstr_size;
} yaml_ctx_t;

static int yaml_fail(yaml_ctx_t *c, const yaml_event_t *ev, const char *why)
{
    snprintf(c->errstr, c->errstr_size, "line %zu, column %zu: %s",
             ev ? ev->start_mark.line + 1 : c->parser.problem_mark.line + 1,
             ev ? ev->start_mark.column + 1 : c->parser.problem_mark.column + 1, why);
    return -1;
}

static json_t *yaml_node(yaml_ctx_t *c, yaml_event_t *first, int depth);

static int yaml_next(yaml_ctx_t *c, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&c->parser, ev)) {
        snprintf(c->errstr, c->errstr_size, "line %zu, column %zu: %s",
                 c->parser.problem_mark.line + 1, c->parser.problem_mark.column + 1,
                 c->parser.problem ? c->parser.problem : "YAML syntax error");
        return -1;
    }
    return 0;
}

static json_t *yaml_node(yaml_ctx_t *c, yaml_event_t *ev, int depth)
{
    if (depth > MAX_YAML_DEPTH) {
        yaml_fail(c, ev, "nesting too deep");
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.tag) {
            yaml_fail(c, ev, "YAML tags are not supported");
            return NULL;
        }
        return yaml_scalar(ev);
    case YAML_ALIAS_EVENT:
        yaml_fail(c, ev, "YAML anchors and aliases are not supported");
        return NULL;
    case YAML_SEQUENCE_START_EVENT: {
        json_t *arr = json_array();
        for (;;) {
            yaml_event_t e;
            if (yaml_next(c, &e) < 0)
                goto seq_fail;
            if (e.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&e);
                return arr;
            }
            json_t *item = yaml_node(c, &e, depth + 1);
            yaml_event_delete(&e);
            if (!item)
                goto seq_fail;
            json_array_append_new(arr, item);
        }
    seq_fail:
        json_decref(arr);
        return NULL;
    }
    case YAML_MAPPING_START_EVENT: {
        json_t *obj = json_object();
        for (;;) {
            yaml_event_t k;
            if (yaml_next(c, &k) < 0)
                goto map_fail;
            if (k.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&k);
                return obj;
            }
            if (k.type != YAML_SCALAR_EVENT) {
                yaml_fail(c, &k, "mapping keys must be scalars");
                yaml_event_delete(&k);
                goto map_fail;
            }
            char *key = strndup((const char *)k.data.scalar.value, k.data.scalar.length);
            if (json_object_get(obj, key)) {
                char why[200];
                snprintf(why, sizeof(why), "duplicate key '%s'", key);
                yaml_fail(c, &k, why);
                free(key);
                yaml_event_delete(&k);
                goto map_fail;
            }
            yaml_event_delete(&k);
            yaml_event_t v;
            if (yaml_next(c, &v) < 0) {
                free(key);
                goto map_fail;
            }
            json_t *val = yaml_node(c, &v, depth + 1);
            yaml_event_delete(&v);
            if (!val) {
                free(key);
                goto map_fail;
            }
            json_object_set_new(obj, key, val);
            free(key);
        }
    map_fail:
        json_decref(obj);
        return NULL;
    }
    default:
        yaml_fail(c, ev, "unexpected YAML event");
        return NULL;
    }
}

json_t *ifq_yaml_parse(const char *text, size_t len, char *errstr, size_t errstr_size)
{
    yaml_ctx_t c = {.errstr = errstr, .errstr_size = errstr_size};
    if (!yaml_parser_initialize(&c.parser)) {
        snprintf(errstr, errstr_size, "cannot initialise YAML parser");
        return NULL;
    }
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)text, len);
    json_t *doc = NULL;
    int done = 0;
    while (!done) {
        yaml_event_t ev;
        if (yaml_next(&c, &ev) < 0) {
            json_decref(doc);
            doc = NULL;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        default:
            if (doc) {
                yaml_fail(&c, &ev, "only one YAML document is allowed");
                json_decref(doc);
                doc = NULL;
                done = -1;
                break;
            }
            doc = yaml_node(&c, &ev, 0);
            if (!doc)
                done = -1;
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&c.parser);
    if (done < 0)
        return NULL;
    if (!doc)
        doc = json_object(); /* an empty file is an empty config */
    return doc;
}

/* ---- validation -------------------------------------------------------- */

typedef struct {
    char *errstr;
    size_t errstr_size;
    int failed;
} vctx_t;

static void verr(vctx_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void verr(vctx_t *v, const char *fmt, ...)
{
    if (v->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->errstr, v->errstr_size, fmt, ap);
    va_end(ap);
    v->failed = 1;
}

static int check_keys(vctx_t *v, json_t *obj, const char *where, const char *const *allowed)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(allowed[i], key) == 0)
                ok = 1;
        if (!ok) {
            verr(v, "%s: unknown key '%s'", where, key);
            return -1;
        }
    }
    return 0;
}

static json_t *get_section(vctx_t *v, json_t *root, const char *name)
{
    json_t *s = json_object_get(root, name);
    if (!s || json_is_null(s))
        return NULL;
    if (!json_is_object(s)) {
        verr(v, "%s: must be a mapping", name);
        return NULL;
    }
    return s;
}

static const char *get_str(vctx_t *v, json_t *obj, const char *where, const char *key,
                           const char *dflt)
{
    json_t *j = obj ? json_object_get(obj, key) : NULL;
    if (!j || json_is_null(j))
        return dflt;
    if (!json_is_string(j)) {
        verr(v, "%s.%s: must be a string", where, key);
        return dflt;
    }
    return json_string_value(j);
}

static int get_int(vctx_t *v, json_t *obj, const char *where, const char *key, int dflt, int min,
                   int max)
{
    json_t *j = obj ? json_object_get(obj, key) : NULL;
    if (!j || json_is_null(j))
        return dflt;
    if (!json_is_integer(j) || json_integer_value(j) < min || json_integer_value(j) > max) {
        verr(v, "%s.%s: must be an integer between %d and %d", where, key, min, max);
        return dflt;
    }
    return (int)json_integer_value(j);
}

static int get_bool(vctx_t *v, json_t *obj, const char *where, const char *key, int dflt)
{
    json_t *j = obj ? json_object_get(obj, key) : NULL;
    if (!j || json_is_null(j))
        return dflt;
    if (!json_is_boolean(j)) {
        verr(v, "%s.%s: must be true or false", where, key);
        return dflt;
    }
    return json_is_true(j);
}

int ifq_config_scalar(const json_t *v, char *buf, size_t size)
{
    if (json_is_string(v))
        return ifq_fmt(buf, size, "%s", json_string_value(v));
    if (json_is_integer(v))
        return ifq_fmt(buf, size, "%lld", (long long)json_integer_value(v));
    if (json_is_boolean(v))
        return ifq_fmt(buf, size, "%s", json_is_true(v) ? "true" : "false");
    if (json_is_real(v))
        return ifq_fmt(buf, size, "%g", json_real_value(v));
    return -1;
}

int ifq_topic_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > IFQ_MAX_TOPIC || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-')
            return 0;
    }
    return 1;
}

static int set_topic(vctx_t *v, char *dst, const char *prefix, const char *suffix)
{
    if (ifq_fmt(dst, IFQ_MAX_TOPIC + 1, "%s.%s", prefix, suffix) != IFQ_OK ||
        !ifq_topic_name_valid(dst)) {
        verr(v, "topic name '%s.%s' is not a valid Kafka topic name", prefix, suffix);
        return -1;
    }
    return 0;
}

static const char *const known_providers[] = {"openai", "azure",   "anthropic",
                                              "gemini", "bedrock", NULL};

static double get_price(vctx_t *v, json_t *obj, const char *where, const char *key)
{
    json_t *j = obj ? json_object_get(obj, key) : NULL;
    if (!j || json_is_null(j))
        return 0.0;
    if (!json_is_number(j) || json_number_value(j) < 0) {
        verr(v, "%s.%s: must be a non-negative number (USD per million tokens)", where, key);
        return 0.0;
    }
    return json_number_value(j);
}

static void parse_deployments(vctx_t *v, ifq_config_t *cfg, json_t *deps)
{
    if (!deps)
        return;
    if (!json_is_object(deps)) {
        verr(v, "deployments: must be a mapping of name to deployment");
        return;
    }
    cfg->n_deployments = json_object_size(deps);
    cfg->deployments =
        calloc(cfg->n_deployments ? cfg->n_deployments : 1, sizeof(*cfg->deployments));
    size_t i = 0;
    const char *name;
    json_t *d;
    static const char *const keys[] = {"provider",
                                       "base_url",
                                       "model",
                                       "api_key_env",
                                       "max_inflight",
                                       "timeout_ms",
                                       "api_version",
                                       "region",
                                       "aws_access_key_env",
                                       "aws_secret_key_env",
                                       "aws_session_token_env",
                                       "price_input_per_mtok",
                                       "price_output_per_mtok",
                                       "context_window",
                                       "tags",
                                       NULL};
    json_object_foreach(deps, name, d)
    {
        char where[IFQ_MAX_NAME + 32];
        snprintf(where, sizeof(where), "deployments.%s", name);
        ifq_deployment_t *dep = &cfg->deployments[i++];
        dep->name = name;
        if (strlen(name) > IFQ_MAX_NAME || !ifq_topic_name_valid(name)) {
            verr(v, "%s: deployment names use only letters, digits, '.', '_' and '-'", where);
            return;
        }
        if (!json_is_object(d)) {
            verr(v, "%s: must be a mapping", where);
            return;
        }
        if (check_keys(v, d, where, keys) < 0)
            return;
        dep->provider = get_str(v, d, where, "provider", "openai");
        int known = 0;
        for (size_t k = 0; known_providers[k]; k++)
            known |= strcmp(known_providers[k], dep->provider) == 0;
        if (!known)
            verr(v,
                 "%s.provider: unknown provider '%s' (known: openai, azure, anthropic, gemini, "
                 "bedrock)",
                 where, dep->provider);
        dep->base_url = get_str(v, d, where, "base_url", NULL);
        dep->region = get_str(v, d, where, "region", NULL);
        if (!dep->base_url) {
            /* The public endpoint of each hosted provider is the default. */
            if (strcmp(dep->provider, "openai") == 0)
                dep->base_url = "https://api.openai.com/v1";
            else if (strcmp(dep->provider, "anthropic") == 0)
                dep->base_url = "https://api.anthropic.com/v1";
            else if (strcmp(dep->provider, "gemini") == 0)
                dep->base_url = "https://generativelanguage.googleapis.com/v1beta";
            else if (strcmp(dep->provider, "bedrock") == 0 && dep->region) {
                snprintf(dep->default_url, sizeof(dep->default_url),
                         "https://bedrock-runtime.%s.amazonaws.com", dep->region);
                dep->base_url = dep->default_url;
            }
        }
        if (strcmp(dep->provider, "bedrock") == 0 && !dep->region)
            verr(v, "%s.region: required for provider bedrock (e.g. us-east-1)", where);
        if (!dep->base_url || strncmp(dep->base_url, "http", 4) != 0)
            verr(v, "%s.base_url: required, an http:// or https:// URL", where);
        dep->model = get_str(v, d, where, "model", name);
        dep->api_key_env = get_str(v, d, where, "api_key_env", NULL);
        dep->max_inflight = get_int(v, d, where, "max_inflight", 256, 1, 100000);
        dep->timeout_ms = get_int(v, d, where, "timeout_ms", 60000, 1, 3600000);
        dep->api_version = get_str(v, d, where, "api_version", NULL);
        dep->aws_access_key_env = get_str(v, d, where, "aws_access_key_env", NULL);
        dep->aws_secret_key_env = get_str(v, d, where, "aws_secret_key_env", NULL);
        dep->aws_session_token_env = get_str(v, d, where, "aws_session_token_env", NULL);
        dep->price_input_per_mtok = get_price(v, d, where, "price_input_per_mtok");
        dep->price_output_per_mtok = get_price(v, d, where, "price_output_per_mtok");
        dep->context_window = get_int(v, d, where, "context_window", 0, 0, 100000000);
        dep->tags = json_object_get(d, "tags");
        if (dep->tags && !json_is_object(dep->tags))
            verr(v, "%s.tags: must be a mapping of name to string", where);
        if (dep->tags) {
            const char *tk;
            json_t *tv;
            json_object_foreach(dep->tags, tk, tv)
            {
                if (!json_is_string(tv))
                    verr(v, "%s.tags.%s: must be a string", where, tk);
            }
        }
        if (strcmp(dep->provider, "azure") == 0 && !dep->api_version)
            verr(v, "%s.api_version: required for provider azure (e.g. 2024-10-21)", where);
        char suffix[IFQ_MAX_NAME + 16];
        snprintf(suffix, sizeof(suffix), "model.%s", name);
        set_topic(v, dep->topic, cfg->prefix, suffix);
    }
}

ifq_deployment_t *ifq_config_deployment(const ifq_config_t *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->n_deployments; i++)
        if (strcmp(cfg->deployments[i].name, name) == 0)
            return &cfg->deployments[i];
    return NULL;
}

/* Resolves a list of deployment names into out[] (allocated). */
static size_t resolve_list(vctx_t *v, ifq_config_t *cfg, json_t *list, const char *where,
                           ifq_deployment_t ***out)
{
    if (json_is_string(list)) {
        *out = calloc(1, sizeof(**out));
        (*out)[0] = ifq_config_deployment(cfg, json_string_value(list));
        if (!(*out)[0])
            verr(v, "%s: unknown deployment '%s'", where, json_string_value(list));
        return 1;
    }
    if (!json_is_array(list) || json_array_size(list) == 0) {
        verr(v, "%s: must be a non-empty list of deployment names", where);
        *out = NULL;
        return 0;
    }
    size_t n = json_array_size(list);
    *out = calloc(n, sizeof(**out));
    for (size_t k = 0; k < n; k++) {
        const char *dn = json_string_value(json_array_get(list, k));
        (*out)[k] = ifq_config_deployment(cfg, dn);
        if (!(*out)[k]) {
            verr(v, "%s[%zu]: unknown deployment '%s'", where, k, dn ? dn : "(not a string)");
            return k;
        }
    }
    return n;
}

static void parse_alias_object(vctx_t *v, ifq_config_t *cfg, ifq_alias_t *al, json_t *a,
                               const char *where)
{
    static const char *const keys[] = {
        "strategy", "deployments",   "weights",         "small",       "large",        "threshold",
        "bias",     "priority_bias", "honor_tier_hint", "description", "health_aware", NULL};
    if (check_keys(v, a, where, keys) < 0)
        return;
    const char *st = get_str(v, a, where, "strategy", "failover");
    al->health_aware = get_bool(v, a, where, "health_aware", 1);
    al->router = a;
    if (strcmp(st, "cost") == 0) {
        al->strategy = IFQ_STRATEGY_COST;
        char why[256];
        if (ifq_complexity_cfg_parse(a, &al->cx, why, sizeof(why)) != IFQ_OK)
            verr(v, "%s.%s", where, why);
        char w[IFQ_MAX_NAME + 32];
        ifq_deployment_t **small = NULL, **large = NULL;
        snprintf(w, sizeof(w), "%s.small", where);
        size_t ns = resolve_list(v, cfg, json_object_get(a, "small"), w, &small);
        snprintf(w, sizeof(w), "%s.large", where);
        size_t nl = resolve_list(v, cfg, json_object_get(a, "large"), w, &large);
        al->n = ns + nl;
        al->n_small = ns;
        al->chain = calloc(al->n ? al->n : 1, sizeof(*al->chain));
        for (size_t k = 0; k < ns; k++)
            al->chain[k] = small[k];
        for (size_t k = 0; k < nl; k++)
            al->chain[ns + k] = large[k];
        free(small);
        free(large);
        return;
    }
    if (strcmp(st, "failover") == 0)
        al->strategy = IFQ_STRATEGY_FAILOVER;
    else if (strcmp(st, "weighted") == 0)
        al->strategy = IFQ_STRATEGY_WEIGHTED;
    else if (strcmp(st, "least_busy") == 0)
        al->strategy = IFQ_STRATEGY_LEAST_BUSY;
    else {
        verr(v, "%s.strategy: '%s' is not one of failover, weighted, least_busy, cost", where, st);
        return;
    }
    char w[IFQ_MAX_NAME + 32];
    snprintf(w, sizeof(w), "%s.deployments", where);
    al->n = resolve_list(v, cfg, json_object_get(a, "deployments"), w, &al->chain);
    if (al->strategy == IFQ_STRATEGY_WEIGHTED) {
        json_t *ws = json_object_get(a, "weights");
        if (!json_is_array(ws) || json_array_size(ws) != al->n) {
            verr(v, "%s.weights: must list one positive number per deployment", where);
            return;
        }
        al->weights = calloc(al->n ? al->n : 1, sizeof(*al->weights));
        for (size_t k = 0; k < al->n; k++) {
            json_t *x = json_array_get(ws, k);
            if (!json_is_number(x) || json_number_value(x) <= 0) {
                verr(v, "%s.weights[%zu]: must be a positive number", where, k);
                return;
            }
            al->weights[k] = json_number_value(x);
        }
    }
}

static void parse_aliases(vctx_t *v, ifq_config_t *cfg, json_t *aliases)
{
    if (!aliases)
        return;
    if (!json_is_object(aliases)) {
        verr(v, "aliases: must be a mapping of alias to a list of deployments or a router");
        return;
    }
    cfg->n_aliases = json_object_size(aliases);
    cfg->aliases = calloc(cfg->n_aliases ? cfg->n_aliases : 1, sizeof(*cfg->aliases));
    size_t i = 0;
    const char *name;
    json_t *a;
    json_object_foreach(aliases, name, a)
    {
        ifq_alias_t *al = &cfg->aliases[i++];
        char where[IFQ_MAX_NAME + 16];
        snprintf(where, sizeof(where), "aliases.%s", name);
        al->name = name;
        al->health_aware = 1;
        if (ifq_config_deployment(cfg, name)) {
            verr(v, "%s: the name is already a deployment", where);
            return;
        }
        if (strcmp(name, "auto") == 0) {
            verr(v, "%s: 'auto' is reserved; configure it under routing.auto", where);
            return;
        }
        if (json_is_object(a))
            parse_alias_object(v, cfg, al, a, where);
        else
            al->n = resolve_list(v, cfg, a, where, &al->chain);
        if (v->failed)
            return;
    }
}

static int name_listed(const json_t *list, const char *name)
{
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        const char *s = json_string_value(x);
        if (!s)
            continue;
        size_t n = strlen(s);
        if (strcmp(s, "*") == 0 || strcmp(s, name) == 0)
            return 1;
        if (n > 1 && s[n - 1] == '*' && strncmp(s, name, n - 1) == 0)
            return 1;
    }
    return 0;
}

ifq_team_t *ifq_config_team(const ifq_config_t *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->n_teams; i++)
        if (strcmp(cfg->teams[i].name, name) == 0)
            return &cfg->teams[i];
    return NULL;
}

int ifq_team_allows_model(const ifq_team_t *team, const char *model)
{
    return !team->models || name_listed(team->models, model);
}

int ifq_team_allows_reply(const ifq_team_t *team, const ifq_config_t *cfg, const char *topic)
{
    if (strcmp(topic, cfg->topic_replies) == 0)
        return 1;
    return team->reply_topics && name_listed(team->reply_topics, topic);
}

void ifq_team_model_limits(const ifq_team_t *team, const char *model, int *rpm, int *tpm)
{
    json_t *m = team->model_limits ? json_object_get(team->model_limits, model) : NULL;
    *rpm = (int)json_integer_value(json_object_get(m, "rpm"));
    *tpm = (int)json_integer_value(json_object_get(m, "tpm"));
}

void ifq_lane_topic(const ifq_config_t *cfg, const ifq_deployment_t *dep, int lane, char *out,
                    size_t size)
{
    static const char *const lanes[] = {"model", "model-high", "model-low"};
    snprintf(out, size, "%s.%s.%s", cfg->prefix, lanes[lane >= 0 && lane < 3 ? lane : 0],
             dep->name);
}

static int check_name_list(vctx_t *v, json_t *list, const char *where)
{
    if (!list)
        return 0;
    if (!json_is_array(list)) {
        verr(v, "%s: must be a list of names", where);
        return -1;
    }
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        if (!json_is_string(x)) {
            verr(v, "%s[%zu]: must be a string", where, i);
            return -1;
        }
    }
    return 0;
}

static void parse_teams(vctx_t *v, ifq_config_t *cfg, json_t *teams)
{
    if (!teams)
        return;
    if (!json_is_object(teams)) {
        verr(v, "teams: must be a mapping of team name to its settings");
        return;
    }
    cfg->n_teams = json_object_size(teams);
    cfg->teams = calloc(cfg->n_teams ? cfg->n_teams : 1, sizeof(*cfg->teams));
    size_t i = 0;
    const char *name;
    json_t *t;
    static const char *const keys[] = {
        "models", "reply_topics", "guardrail_policy",        "hmac_key_env",
        "limits", "budget",       "over_limit_low_priority", "log_requests",
        NULL};
    static const char *const lkeys[] = {"rpm", "tpm", "models", NULL};
    static const char *const bkeys[] = {"daily_usd", "monthly_usd", NULL};
    static const char *const mkeys[] = {"rpm", "tpm", NULL};
    json_object_foreach(teams, name, t)
    {
        char where[IFQ_MAX_NAME + 64];
        snprintf(where, sizeof(where), "teams.%s", name);
        ifq_team_t *tm = &cfg->teams[i++];
        tm->name = name;
        if (!ifq_topic_name_valid(name) || strlen(name) > IFQ_MAX_NAME) {
            verr(v, "%s: team names use only letters, digits, '.', '_' and '-'", where);
            return;
        }
        if (!json_is_object(t)) {
            verr(v, "%s: must be a mapping", where);
            return;
        }
        if (check_keys(v, t, where, keys) < 0)
            return;
        char w[IFQ_MAX_NAME + 96];
        tm->models = json_object_get(t, "models");
        snprintf(w, sizeof(w), "%s.models", where);
        check_name_list(v, tm->models, w);
        tm->reply_topics = json_object_get(t, "reply_topics");
        snprintf(w, sizeof(w), "%s.reply_topics", where);
        check_name_list(v, tm->reply_topics, w);
        tm->guardrail_policy = get_str(v, t, where, "guardrail_policy", NULL);
        tm->hmac_key_env = get_str(v, t, where, "hmac_key_env", NULL);
        json_t *lim = json_object_get(t, "limits");
        snprintf(w, sizeof(w), "%s.limits", where);
        if (lim && !json_is_object(lim)) {
            verr(v, "%s: must be a mapping of rpm, tpm and models", w);
            return;
        }
        if (lim && check_keys(v, lim, w, lkeys) < 0)
            return;
        tm->rpm = get_int(v, lim, w, "rpm", 0, 0, 100000000);
        tm->tpm = get_int(v, lim, w, "tpm", 0, 0, 2000000000);
        tm->model_limits = lim ? json_object_get(lim, "models") : NULL;
        if (tm->model_limits) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(tm->model_limits)) {
                verr(v, "%s.models: must be a mapping of model to {rpm, tpm}", w);
                return;
            }
            json_object_foreach(tm->model_limits, mk, mv)
            {
                char mw[IFQ_MAX_NAME * 2 + 128];
                snprintf(mw, sizeof(mw), "%s.models.%s", w, mk);
                if (!json_is_object(mv)) {
                    verr(v, "%s: must be a mapping of rpm and tpm", mw);
                    return;
                }
                if (check_keys(v, mv, mw, mkeys) < 0)
                    return;
                get_int(v, mv, mw, "rpm", 0, 0, 100000000);
                get_int(v, mv, mw, "tpm", 0, 0, 2000000000);
            }
        }
        json_t *bud = json_object_get(t, "budget");
        snprintf(w, sizeof(w), "%s.budget", where);
        if (bud && !json_is_object(bud)) {
            verr(v, "%s: must be a mapping of daily_usd and monthly_usd", w);
            return;
        }
        if (bud && check_keys(v, bud, w, bkeys) < 0)
            return;
        tm->budget_daily_usd = get_price(v, bud, w, "daily_usd");
        tm->budget_monthly_usd = get_price(v, bud, w, "monthly_usd");
        tm->log_requests = get_bool(v, t, where, "log_requests", 0);
        const char *hold = get_str(v, t, where, "over_limit_low_priority", "reject");
        if (strcmp(hold, "hold") == 0)
            tm->hold_low_priority = 1;
        else if (strcmp(hold, "reject") != 0)
            verr(v, "%s.over_limit_low_priority: must be hold or reject", where);
        if (v->failed)
            return;
    }
}

ifq_config_t *ifq_config_parse(const char *text, size_t len, char *errstr, size_t errstr_size)
{
    json_t *root = ifq_yaml_parse(text, len, errstr, errstr_size);
    if (!root)
        return NULL;
    vctx_t v = {.errstr = errstr, .errstr_size = errstr_size};
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "the configuration must be a mapping");
        json_decref(root);
        return NULL;
    }
    ifq_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        json_decref(root);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    cfg->root = root;

    static const char *const top[] = {"kafka",   "redis", "broker",     "worker", "deployments",
                                      "aliases", "log",   "guardrails", "teams",  "cache",
                                      "routing", "trace", NULL};
    check_keys(&v, root, "config", top);

    json_t *kafka = get_section(&v, root, "kafka");
    static const char *const kkeys[] = {
        "bootstrap_servers", "topic_prefix", "partitions", "replication_factor",
        "create_topics",     "properties",   NULL};
    if (kafka)
        check_keys(&v, kafka, "kafka", kkeys);
    cfg->bootstrap = get_str(&v, kafka, "kafka", "bootstrap_servers", "127.0.0.1:9092");
    cfg->prefix = get_str(&v, kafka, "kafka", "topic_prefix", "inferq");
    cfg->partitions = get_int(&v, kafka, "kafka", "partitions", 4, 1, 10000);
    cfg->replication_factor = get_int(&v, kafka, "kafka", "replication_factor", 1, 1, 16);
    cfg->create_topics = get_bool(&v, kafka, "kafka", "create_topics", 1);
    cfg->kafka_props = kafka ? json_object_get(kafka, "properties") : NULL;
    if (cfg->kafka_props && json_is_null(cfg->kafka_props))
        cfg->kafka_props = NULL;
    if (cfg->kafka_props) {
        const char *k;
        json_t *pv;
        if (!json_is_object(cfg->kafka_props))
            verr(&v, "kafka.properties: must be a mapping of librdkafka properties");
        else {
            /* Check each property against librdkafka now, so a typo is a
             * start-up error naming it rather than a surprise later. */
            rd_kafka_conf_t *probe = rd_kafka_conf_new();
            json_object_foreach(cfg->kafka_props, k, pv)
            {
                char val[1024], why[256];
                if (ifq_config_scalar(pv, val, sizeof(val)) < 0) {
                    verr(&v, "kafka.properties.%s: must be a scalar", k);
                    continue;
                }
                if (rd_kafka_conf_set(probe, k, val, why, sizeof(why)) != RD_KAFKA_CONF_OK)
                    verr(&v, "kafka.properties.%s: %s", k, why);
            }
            rd_kafka_conf_destroy(probe);
        }
    }
    const char *env = getenv("INFERQ_KAFKA_BOOTSTRAP");
    if (env && *env)
        cfg->bootstrap = env;
    if (!v.failed && !ifq_topic_name_valid(cfg->prefix))
        verr(&v, "kafka.topic_prefix: '%s' is not a valid topic name prefix", cfg->prefix);
    if (!v.failed) {
        set_topic(&v, cfg->topic_requests, cfg->prefix, "requests");
        set_topic(&v, cfg->topic_replies, cfg->prefix, "replies");
        set_topic(&v, cfg->topic_traces, cfg->prefix, "traces");
        set_topic(&v, cfg->topic_dlq, cfg->prefix, "dlq");
        set_topic(&v, cfg->topic_logs, cfg->prefix, "logs");
    }

    json_t *redis = get_section(&v, root, "redis");
    static const char *const rkeys[] = {"url", "state_ttl_s", NULL};
    if (redis)
        check_keys(&v, redis, "redis", rkeys);
    cfg->redis_url = get_str(&v, redis, "redis", "url", "redis://127.0.0.1:6379/0");
    cfg->state_ttl_s = get_int(&v, redis, "redis", "state_ttl_s", 7 * 86400, 1, 365 * 86400);
    env = getenv("INFERQ_REDIS_URL");
    if (env && *env)
        cfg->redis_url = env;

    json_t *log = get_section(&v, root, "log");
    static const char *const lkeys[] = {"level", NULL};
    if (log)
        check_keys(&v, log, "log", lkeys);
    cfg->log_level = get_str(&v, log, "log", "level", "info");
    if (ifq_log_level_parse(cfg->log_level) < 0)
        verr(&v, "log.level: must be debug, info, warn or error");

    json_t *trace = get_section(&v, root, "trace");
    static const char *const trkeys[] = {"enabled", "sample_rate", NULL};
    if (trace)
        check_keys(&v, trace, "trace", trkeys);
    cfg->trace_enabled = get_bool(&v, trace, "trace", "enabled", 1);
    json_t *rate = trace ? json_object_get(trace, "sample_rate") : NULL;
    cfg->trace_sample_rate = 1.0;
    if (rate && !json_is_null(rate)) {
        if (!json_is_number(rate) || json_number_value(rate) < 0 || json_number_value(rate) > 1)
            verr(&v, "trace.sample_rate: must be a number between 0 and 1");
        else
            cfg->trace_sample_rate = json_number_value(rate);
    }

    json_t *broker = get_section(&v, root, "broker");
    static const char *const bkeys[] = {"admin_port",       "group_id",     "max_message_bytes",
                                        "batch_size",       "default_team", "transactions",
                                        "transactional_id", "hold_max_ms",  NULL};
    if (broker)
        check_keys(&v, broker, "broker", bkeys);
    cfg->broker_admin_port = get_int(&v, broker, "broker", "admin_port", 0, 0, 65535);
    cfg->broker_group = get_str(&v, broker, "broker", "group_id", "inferq-broker");
    cfg->max_message_bytes =
        (size_t)get_int(&v, broker, "broker", "max_message_bytes", 1048576, 1024, 64 * 1048576);
    cfg->broker_batch_size = get_int(&v, broker, "broker", "batch_size", 500, 1, 100000);
    cfg->default_team = get_str(&v, broker, "broker", "default_team", NULL);
    cfg->transactions = get_bool(&v, broker, "broker", "transactions", 1);
    cfg->transactional_id = get_str(&v, broker, "broker", "transactional_id", NULL);
    cfg->hold_max_ms = get_int(&v, broker, "broker", "hold_max_ms", 60000, 100, 86400000);

    json_t *cache = get_section(&v, root, "cache");
    static const char *const ckeys[] = {"enabled", "ttl_s", "max_bytes", "scope", NULL};
    if (cache)
        check_keys(&v, cache, "cache", ckeys);
    cfg->cache_enabled = get_bool(&v, cache, "cache", "enabled", 1);
    cfg->cache_ttl_s = get_int(&v, cache, "cache", "ttl_s", 3600, 1, 365 * 86400);
    cfg->cache_max_bytes =
        (size_t)get_int(&v, cache, "cache", "max_bytes", 262144, 64, 64 * 1048576);
    const char *scope = get_str(&v, cache, "cache", "scope", "team");
    if (strcmp(scope, "team") == 0)
        cfg->cache_per_team = 1;
    else if (strcmp(scope, "global") != 0)
        verr(&v, "cache.scope: must be team or global");

    json_t *routing = get_section(&v, root, "routing");
    static const char *const rtkeys[] = {"auto", NULL};
    if (routing)
        check_keys(&v, routing, "routing", rtkeys);
    cfg->routing_auto = routing ? json_object_get(routing, "auto") : NULL;

    json_t *worker = get_section(&v, root, "worker");
    static const char *const wkeys[] = {"admin_port",
                                        "group_id_prefix",
                                        "deployments",
                                        "max_inflight",
                                        "threads",
                                        "max_attempts",
                                        "backoff_base_ms",
                                        "backoff_max_ms",
                                        "shutdown_grace_ms",
                                        "circuit_failure_threshold",
                                        "circuit_open_ms",
                                        "max_undelivered",
                                        NULL};
    if (worker)
        check_keys(&v, worker, "worker", wkeys);
    cfg->worker_admin_port = get_int(&v, worker, "worker", "admin_port", 0, 0, 65535);
    cfg->worker_group_prefix = get_str(&v, worker, "worker", "group_id_prefix", "inferq-worker");
    cfg->worker_deployments = worker ? json_object_get(worker, "deployments") : NULL;
    if (cfg->worker_deployments && !json_is_array(cfg->worker_deployments))
        verr(&v, "worker.deployments: must be a list of deployment names (or [\"*\"])");
    cfg->worker_max_inflight = get_int(&v, worker, "worker", "max_inflight", 512, 1, 100000);
    cfg->worker_threads = get_int(&v, worker, "worker", "threads", 1, 1, 64);
    cfg->worker_max_undelivered = get_int(&v, worker, "worker", "max_undelivered", 0, 0, 10000000);
    cfg->max_attempts = get_int(&v, worker, "worker", "max_attempts", 3, 1, 100);
    cfg->backoff_base_ms = get_int(&v, worker, "worker", "backoff_base_ms", 200, 0, 600000);
    cfg->backoff_max_ms = get_int(&v, worker, "worker", "backoff_max_ms", 10000, 0, 3600000);
    cfg->shutdown_grace_ms = get_int(&v, worker, "worker", "shutdown_grace_ms", 10000, 0, 3600000);
    cfg->circuit_failure_threshold =
        get_int(&v, worker, "worker", "circuit_failure_threshold", 5, 1, 1000000);
    cfg->circuit_open_ms = get_int(&v, worker, "worker", "circuit_open_ms", 30000, 1, 3600000);

    if (!v.failed)
        parse_deployments(&v, cfg, json_object_get(root, "deployments"));
    if (!v.failed)
        parse_aliases(&v, cfg, json_object_get(root, "aliases"));
    if (!v.failed && cfg->routing_auto) {
        /* model "auto" is an alias with a cost router, configured apart. */
        if (!json_is_object(cfg->routing_auto)) {
            verr(&v, "routing.auto: must be a mapping {small, large, threshold}");
        } else {
            ifq_alias_t *al = realloc(cfg->aliases, (cfg->n_aliases + 1) * sizeof(*al));
            cfg->aliases = al;
            al = &cfg->aliases[cfg->n_aliases++];
            memset(al, 0, sizeof(*al));
            al->name = "auto";
            json_object_set_new(cfg->routing_auto, "strategy", json_string("cost"));
            parse_alias_object(&v, cfg, al, cfg->routing_auto, "routing.auto");
        }
    }
    if (!v.failed)
        parse_teams(&v, cfg, json_object_get(root, "teams"));
    for (size_t t = 0; !v.failed && t < cfg->n_teams; t++) {
        size_t k;
        json_t *m;
        json_array_foreach(cfg->teams[t].models, k, m)
        {
            const char *mn = json_string_value(m);
            size_t ml = strlen(mn);
            if (strcmp(mn, "*") == 0 || (ml && mn[ml - 1] == '*'))
                continue;
            int found = ifq_config_deployment(cfg, mn) != NULL;
            for (size_t a = 0; !found && a < cfg->n_aliases; a++)
                found = strcmp(cfg->aliases[a].name, mn) == 0;
            if (!found)
                verr(&v, "teams.%s.models[%zu]: '%s' is neither an alias nor a deployment",
                     cfg->teams[t].name, k, mn);
        }
    }
    if (!v.failed && cfg->default_team && !ifq_config_team(cfg, cfg->default_team))
        verr(&v, "broker.default_team: unknown team '%s'", cfg->default_team);
    if (!v.failed && cfg->worker_deployments) {
        size_t i;
        json_t *n;
        json_array_foreach(cfg->worker_deployments, i, n)
        {
            const char *s = json_string_value(n);
            if (!s || (strcmp(s, "*") != 0 && !ifq_config_deployment(cfg, s)))
                verr(&v, "worker.deployments[%zu]: unknown deployment '%s'", i, s ? s : "?");
        }
    }

    if (v.failed) {
        ifq_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

ifq_config_t *ifq_config_load(const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_CONFIG_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_CONFIG_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > MAX_CONFIG_BYTES) {
        snprintf(errstr, errstr_size, "%s: %s", path,
                 !buf  ? "out of memory"
                 : bad ? "read error"
                       : "file larger than 4 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    char why[512];
    ifq_config_t *cfg = ifq_config_parse(buf, n, why, sizeof(why));
    free(buf);
    if (!cfg)
        snprintf(errstr, errstr_size, "%s: %s", path, why);
    return cfg;
}

void ifq_config_destroy(ifq_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        free(cfg->aliases[i].chain);
        free(cfg->aliases[i].weights);
    }
    free(cfg->teams);
    free(cfg->aliases);
    free(cfg->deployments);
    json_decref(cfg->root);
    free(cfg);
}
