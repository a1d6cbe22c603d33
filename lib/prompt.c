/*
 * prompt.c - prompt templates: validation, rendering ({{ name }}
 * substitution, never recursive), and versioned storage in Redis with a
 * cache of parsed versions (immutable, so cached until evicted) and of each
 * id's labels (re-read after label_ttl_ms). See prompt.h and docs/prompts.md.
 */
#include "prompt.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_url.h"

/* ======================================================================
 * Names
 * ====================================================================== */

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int ifq_prompt_id_valid(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    for (; s[n]; n++)
        if (!(is_alpha(s[n]) || is_digit(s[n]) || s[n] == '.' || s[n] == '_' || s[n] == '-'))
            return 0;
    return n >= 1 && n <= IFQ_PROMPT_MAX_ID;
}

int ifq_prompt_label_valid(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || is_digit(s[n]) || s[n] == '_' || s[n] == '-'))
            return 0;
    return n >= 1 && n <= IFQ_PROMPT_MAX_LABEL && strcmp(s, "latest") != 0;
}

static int var_name_valid(const char *s)
{
    size_t n = 0;
    if (!s || !(is_alpha(s[0]) || s[0] == '_'))
        return 0;
    for (; s[n]; n++)
        if (!(is_alpha(s[n]) || is_digit(s[n]) || s[n] == '_'))
            return 0;
    return n <= IFQ_PROMPT_MAX_VAR_NAME;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "value";
}

/* ======================================================================
 * Rendering
 * ====================================================================== */

/* One pass over a template's messages. With rendering == 0 it validates and
 * collects the names of the variables used (in order of first use); with
 * rendering == 1 it builds the rendered copy. Both passes share the scanner
 * so that what is validated is exactly what is rendered. */
typedef struct {
    int rendering;
    json_t *used;         /* name -> true, in order of first use */
    const json_t *values; /* rendering: name -> string value */
    size_t total;         /* bytes of rendered text so far (all strings) */
    char *buf;            /* the string being rendered */
    size_t len, cap;
    char *err;
    size_t errsize;
} walk_t;

typedef struct {
    const json_t *messages;
    const json_t *variables; /* NULL or object of declarations */
    const json_t *params;    /* NULL or object */
    const json_t *model;     /* NULL or string */
    int allow_extra;
} tinfo_t;

#define PATH_MAX_LEN 160

static int fail(walk_t *w, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(walk_t *w, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (w->err && w->errsize)
        vsnprintf(w->err, w->errsize, fmt, ap);
    va_end(ap);
    return rc;
}

static int buf_add(walk_t *w, const char *s, size_t n)
{
    if (n == 0)
        return IFQ_OK;
    if (n > IFQ_PROMPT_MAX_RENDERED - w->total)
        return fail(w, IFQ_ERR_TOOBIG, "rendered prompt exceeds %u bytes",
                    (unsigned)IFQ_PROMPT_MAX_RENDERED);
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b)
            return fail(w, IFQ_ERR_NOMEM, "out of memory");
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->total += n;
    return IFQ_OK;
}

static int malformed(walk_t *w, const char *path, size_t at)
{
    return fail(w, IFQ_ERR_INVALID,
                "%s: malformed placeholder at byte %zu (write {{ name }} for a variable, "
                "{{ \"{{\" }} for literal braces)",
                path, at);
}

/* The first "{{" in s[0..n), or NULL (memmem is a GNU extension). */
static const char *find_open(const char *s, size_t n)
{
    while (n >= 2) {
        const char *q = memchr(s, '{', n - 1);
        if (!q)
            return NULL;
        if (q[1] == '{')
            return q;
        n -= (size_t)(q + 1 - s);
        s = q + 1;
    }
    return NULL;
}

/* Scans one template string: literal text is copied, "{{ name }}" becomes
 * the variable's value, "{{ "text" }}" / "{{ 'text' }}" becomes text. Any
 * other "{{" is an error, so a typo never ships silently. "}}" on its own is
 * ordinary text. The value of a variable is copied and never scanned. */
static int scan_string(walk_t *w, const char *path, const char *s, size_t n)
{
    w->len = 0;
    size_t i = 0;
    while (i < n) {
        const char *open = find_open(s + i, n - i);
        size_t at = open ? (size_t)(open - s) : n;
        if (w->rendering) {
            int rc = buf_add(w, s + i, at - i);
            if (rc)
                return rc;
        }
        if (!open)
            break;
        size_t j = at + 2;
        while (j < n && (s[j] == ' ' || s[j] == '\t'))
            j++;
        const char *piece;
        size_t plen;
        int is_var = 0;
        if (j < n && (s[j] == '"' || s[j] == '\'')) {
            const char *q = memchr(s + j + 1, s[j], n - j - 1);
            if (!q)
                return malformed(w, path, at);
            piece = s + j + 1;
            plen = (size_t)(q - piece);
            j = (size_t)(q - s) + 1;
        } else {
            size_t k = j;
            if (k < n && (is_alpha(s[k]) || s[k] == '_'))
                for (k++; k < n && (is_alpha(s[k]) || is_digit(s[k]) || s[k] == '_'); k++)
                    ;
            if (k == j)
                return malformed(w, path, at);
            if (k - j > IFQ_PROMPT_MAX_VAR_NAME)
                return fail(w, IFQ_ERR_INVALID,
                            "%s: variable name at byte %zu is longer than %d characters", path, at,
                            IFQ_PROMPT_MAX_VAR_NAME);
            piece = s + j;
            plen = k - j;
            is_var = 1;
            j = k;
        }
        while (j < n && (s[j] == ' ' || s[j] == '\t'))
            j++;
        if (j + 1 >= n || s[j] != '}' || s[j + 1] != '}')
            return malformed(w, path, at);
        i = j + 2;
        if (!is_var) {
            if (w->rendering) {
                int rc = buf_add(w, piece, plen);
                if (rc)
                    return rc;
            }
            continue;
        }
        char name[IFQ_PROMPT_MAX_VAR_NAME + 1];
        memcpy(name, piece, plen);
        name[plen] = '\0';
        if (!w->rendering) {
            if (!json_object_get(w->used, name)) {
                if (json_object_size(w->used) >= IFQ_PROMPT_MAX_VARIABLES)
                    return fail(w, IFQ_ERR_INVALID, "template uses more than %d variables",
                                IFQ_PROMPT_MAX_VARIABLES);
                if (json_object_set_new(w->used, name, json_true()))
                    return fail(w, IFQ_ERR_NOMEM, "out of memory");
            }
        } else {
            json_t *v = json_object_get(w->values, name);
            if (!json_is_string(v)) /* the analysis pass makes this impossible */
                return fail(w, IFQ_ERR_INVALID, "variable '%s' has no value", name);
            int rc = buf_add(w, json_string_value(v), json_string_length(v));
            if (rc)
                return rc;
        }
    }
    return IFQ_OK;
}

static void path_join(char *dst, const char *base, const char *key, size_t index, int is_index)
{
    /* Truncation only shortens an error message's location. */
    if (is_index)
        (void)ifq_fmt(dst, PATH_MAX_LEN, "%s[%zu]", base, index);
    else
        (void)ifq_fmt(dst, PATH_MAX_LEN, "%s.%.40s", base, key);
}

/* Walks any JSON value inside a message: strings are scanned (and rendered
 * into *out when out is not NULL); other scalars are copied. */
static int walk_value(walk_t *w, const json_t *v, const char *path, int depth, json_t **out)
{
    if (out)
        *out = NULL;
    if (depth > IFQ_PROMPT_MAX_DEPTH)
        return fail(w, IFQ_ERR_INVALID, "%s: nested deeper than %d levels", path,
                    IFQ_PROMPT_MAX_DEPTH);
    char sub[PATH_MAX_LEN];
    int rc = IFQ_OK;
    switch (json_typeof(v)) {
    case JSON_STRING:
        rc = scan_string(w, path, json_string_value(v), json_string_length(v));
        if (rc == IFQ_OK && out) {
            *out = json_stringn(w->len ? w->buf : "", w->len);
            if (!*out)
                rc = fail(w, IFQ_ERR_NOMEM, "out of memory");
        }
        return rc;
    case JSON_ARRAY: {
        json_t *arr = out ? json_array() : NULL;
        if (out && !arr)
            return fail(w, IFQ_ERR_NOMEM, "out of memory");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            json_t *c = NULL;
            path_join(sub, path, NULL, i, 1);
            rc = walk_value(w, e, sub, depth + 1, out ? &c : NULL);
            if (rc == IFQ_OK && arr && json_array_append_new(arr, c))
                rc = fail(w, IFQ_ERR_NOMEM, "out of memory");
            if (rc) {
                json_decref(arr);
                return rc;
            }
        }
        if (out)
            *out = arr;
        return IFQ_OK;
    }
    case JSON_OBJECT: {
        json_t *obj = out ? json_object() : NULL;
        if (out && !obj)
            return fail(w, IFQ_ERR_NOMEM, "out of memory");
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            json_t *c = NULL;
            path_join(sub, path, k, 0, 0);
            rc = walk_value(w, e, sub, depth + 1, out ? &c : NULL);
            if (rc == IFQ_OK && obj && json_object_set_new(obj, k, c))
                rc = fail(w, IFQ_ERR_NOMEM, "out of memory");
            if (rc) {
                json_decref(obj);
                return rc;
            }
        }
        if (out)
            *out = obj;
        return IFQ_OK;
    }
    default:
        if (out && !(*out = json_copy((json_t *)v)))
            return fail(w, IFQ_ERR_NOMEM, "out of memory");
        return IFQ_OK;
    }
}

static const char *const roles[] = {"system", "developer", "user", "assistant", "tool"};

/* One message: an object with a known role (copied, never substituted) and a
 * content (a string, or an array of parts as in OpenAI's multimodal
 * messages). Every string value in it except the role is scanned. */
static int walk_message(walk_t *w, const json_t *m, size_t index, json_t **out)
{
    char path[PATH_MAX_LEN];
    path_join(path, "messages", NULL, index, 1);
    if (out)
        *out = NULL;
    if (!json_is_object(m))
        return fail(w, IFQ_ERR_INVALID, "%s must be an object, got %s", path, type_name(m));
    const char *role = json_string_value(json_object_get(m, "role"));
    int known = 0;
    for (size_t i = 0; role && i < IFQ_ARRAY_LEN(roles); i++)
        known |= strcmp(role, roles[i]) == 0;
    if (!known)
        return fail(w, IFQ_ERR_INVALID,
                    "%s.role must be one of system, developer, user, assistant, tool", path);
    json_t *content = json_object_get(m, "content");
    if (!json_is_string(content) && !json_is_array(content))
        return fail(w, IFQ_ERR_INVALID, "%s.content must be a string or an array of content parts",
                    path);
    json_t *obj = out ? json_object() : NULL;
    if (out && !obj)
        return fail(w, IFQ_ERR_NOMEM, "out of memory");
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)m, k, e)
    {
        json_t *c = NULL;
        int rc = IFQ_OK;
        if (strcmp(k, "role") == 0) {
            if (obj && !(c = json_copy(e)))
                rc = fail(w, IFQ_ERR_NOMEM, "out of memory");
        } else {
            char sub[PATH_MAX_LEN];
            path_join(sub, path, k, 0, 0);
            rc = walk_value(w, e, sub, 1, obj ? &c : NULL);
        }
        if (rc == IFQ_OK && obj && json_object_set_new(obj, k, c))
            rc = fail(w, IFQ_ERR_NOMEM, "out of memory");
        if (rc) {
            json_decref(obj);
            return rc;
        }
    }
    if (out)
        *out = obj;
    return IFQ_OK;
}

static int is_scalar(const json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

static const char *const params_forbidden[] = {"messages", "model", "prompt", "input"};

/* Validates the document and fills ti; collects the variables the messages
 * use into w->used. */
static int check_template(walk_t *w, const json_t *t, tinfo_t *ti)
{
    memset(ti, 0, sizeof(*ti));
    if (!json_is_object(t))
        return fail(w, IFQ_ERR_INVALID, "a template must be a JSON object, got %s",
                    t ? type_name(t) : "nothing");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)t, k, v)
    {
        if (strcmp(k, "messages") && strcmp(k, "variables") && strcmp(k, "model") &&
            strcmp(k, "params") && strcmp(k, "allow_extra_variables") && strcmp(k, "description"))
            return fail(w, IFQ_ERR_INVALID,
                        "unknown template field '%.64s' (expected messages, variables, model, "
                        "params, allow_extra_variables, description)",
                        k);
    }
    ti->messages = json_object_get(t, "messages");
    if (!json_is_array(ti->messages) || json_array_size(ti->messages) == 0)
        return fail(w, IFQ_ERR_INVALID, "messages must be a non-empty array");
    if (json_array_size(ti->messages) > IFQ_PROMPT_MAX_MESSAGES)
        return fail(w, IFQ_ERR_INVALID, "a template has at most %d messages",
                    IFQ_PROMPT_MAX_MESSAGES);

    v = json_object_get(t, "description");
    if (v && !json_is_string(v))
        return fail(w, IFQ_ERR_INVALID, "description must be a string");
    v = json_object_get(t, "allow_extra_variables");
    if (v && !json_is_boolean(v))
        return fail(w, IFQ_ERR_INVALID, "allow_extra_variables must be true or false");
    ti->allow_extra = json_is_true(v);
    ti->model = json_object_get(t, "model");
    if (ti->model && (!json_is_string(ti->model) || json_string_length(ti->model) == 0 ||
                      json_string_length(ti->model) > 256))
        return fail(w, IFQ_ERR_INVALID, "model must be a non-empty string (up to 256 bytes)");
    ti->params = json_object_get(t, "params");
    if (ti->params) {
        if (!json_is_object(ti->params))
            return fail(w, IFQ_ERR_INVALID, "params must be an object of body fields");
        for (size_t i = 0; i < IFQ_ARRAY_LEN(params_forbidden); i++)
            if (json_object_get(ti->params, params_forbidden[i]))
                return fail(w, IFQ_ERR_INVALID, "params may not set '%s'%s", params_forbidden[i],
                            strcmp(params_forbidden[i], "model") == 0
                                ? " (use the template's model field)"
                                : "");
    }

    size_t i;
    json_t *m;
    json_array_foreach(ti->messages, i, m)
    {
        int rc = walk_message(w, m, i, NULL);
        if (rc)
            return rc;
    }

    ti->variables = json_object_get(t, "variables");
    if (ti->variables) {
        if (!json_is_object(ti->variables))
            return fail(w, IFQ_ERR_INVALID, "variables must be an object");
        if (json_object_size(ti->variables) > IFQ_PROMPT_MAX_VARIABLES)
            return fail(w, IFQ_ERR_INVALID, "a template declares at most %d variables",
                        IFQ_PROMPT_MAX_VARIABLES);
        json_object_foreach((json_t *)ti->variables, k, v)
        {
            if (!var_name_valid(k))
                return fail(w, IFQ_ERR_INVALID,
                            "variable name '%.64s' is not [A-Za-z_][A-Za-z0-9_]{0,63}", k);
            if (!json_is_object(v))
                return fail(w, IFQ_ERR_INVALID,
                            "variables.%s must be an object {default, required, description}", k);
            const char *dk;
            json_t *dv;
            json_object_foreach(v, dk, dv)
            {
                if (strcmp(dk, "default") && strcmp(dk, "required") && strcmp(dk, "description"))
                    return fail(w, IFQ_ERR_INVALID,
                                "variables.%s has an unknown field '%.64s' (expected default, "
                                "required, description)",
                                k, dk);
            }
            json_t *def = json_object_get(v, "default");
            json_t *req = json_object_get(v, "required");
            json_t *desc = json_object_get(v, "description");
            if (def && !is_scalar(def))
                return fail(w, IFQ_ERR_INVALID,
                            "variables.%s.default must be a string, number or boolean", k);
            if (req && !json_is_boolean(req))
                return fail(w, IFQ_ERR_INVALID, "variables.%s.required must be true or false", k);
            if (def && json_is_true(req))
                return fail(w, IFQ_ERR_INVALID,
                            "variables.%s has a default, so it cannot be required", k);
            if (desc && !json_is_string(desc))
                return fail(w, IFQ_ERR_INVALID, "variables.%s.description must be a string", k);
            if (!json_object_get(w->used, k))
                return fail(w, IFQ_ERR_INVALID,
                            "variable '%s' is declared but never used in messages", k);
        }
    }
    return IFQ_OK;
}

int ifq_prompt_validate(const json_t *tmpl, char *errstr, size_t errstr_size)
{
    walk_t w = {.err = errstr, .errsize = errstr_size, .used = json_object()};
    tinfo_t ti;
    int rc = w.used ? check_template(&w, tmpl, &ti) : fail(&w, IFQ_ERR_NOMEM, "out of memory");
    json_decref(w.used);
    free(w.buf);
    return rc;
}

/* A scalar variable value as text: strings as they are, integers in
 * decimal, reals in the shortest form that reads back the same, booleans as
 * true/false. */
static json_t *scalar_text(const json_t *v)
{
    char buf[40];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_stringn(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(buf);
    case JSON_REAL: {
        double d = json_real_value(v);
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
        return json_string(buf);
    }
    case JSON_TRUE:
        return json_string("true");
    case JSON_FALSE:
        return json_string("false");
    default:
        return NULL;
    }
}

/* "a, b, c" of the template's variables for an error message. */
static void used_list(const json_t *used, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)used, k, v)
    {
        int w = snprintf(out + n, size - n, "%s%s", n ? ", " : "", k);
        if (w < 0 || (size_t)w >= size - n) {
            if (size > 4)
                memcpy(out + size - 4, "...", 4);
            return;
        }
        n += (size_t)w;
    }
    if (n == 0)
        snprintf(out, size, "none");
}

int ifq_prompt_render(const json_t *tmpl, const json_t *variables, json_t **messages_out,
                      json_t **params_out, char *errstr, size_t errstr_size)
{
    *messages_out = NULL;
    *params_out = NULL;
    walk_t w = {.err = errstr, .errsize = errstr_size, .used = json_object()};
    json_t *values = json_object(), *msgs = NULL, *params = NULL;
    tinfo_t ti;
    int rc;
    if (!w.used || !values) {
        rc = fail(&w, IFQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = check_template(&w, tmpl, &ti)))
        goto done;

    if (json_is_null(variables))
        variables = NULL;
    if (variables) {
        if (!json_is_object(variables)) {
            rc = fail(&w, IFQ_ERR_INVALID, "variables must be an object, got %s",
                      type_name(variables));
            goto done;
        }
        if (json_object_size(variables) > IFQ_PROMPT_MAX_VARIABLES) {
            rc = fail(&w, IFQ_ERR_INVALID, "more than %d variables", IFQ_PROMPT_MAX_VARIABLES);
            goto done;
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)variables, k, v)
        {
            if (!json_object_get(w.used, k)) {
                if (ti.allow_extra)
                    continue;
                char list[200];
                used_list(w.used, list, sizeof(list));
                rc = fail(&w, IFQ_ERR_INVALID,
                          "unknown variable '%.64s' (the template's variables are: %s)", k, list);
                goto done;
            }
            if (!is_scalar(v)) {
                rc = fail(&w, IFQ_ERR_INVALID,
                          "variable '%s' must be a string, number or boolean, got %s", k,
                          type_name(v));
                goto done;
            }
        }
    }

    const char *name;
    json_t *unused;
    json_object_foreach(w.used, name, unused)
    {
        json_t *decl = ti.variables ? json_object_get(ti.variables, name) : NULL;
        const json_t *v = variables ? json_object_get(variables, name) : NULL;
        if (!v && decl)
            v = json_object_get(decl, "default");
        json_t *text;
        if (v)
            text = scalar_text(v);
        else if (decl && json_is_false(json_object_get(decl, "required")))
            text = json_string("");
        else {
            rc = fail(&w, IFQ_ERR_INVALID, "variable '%s' is required", name);
            goto done;
        }
        if (!text || json_object_set_new(values, name, text)) {
            rc = fail(&w, IFQ_ERR_NOMEM, "out of memory");
            goto done;
        }
    }

    w.rendering = 1;
    w.values = values;
    if (!(msgs = json_array())) {
        rc = fail(&w, IFQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t i;
    json_t *m;
    json_array_foreach(ti.messages, i, m)
    {
        json_t *out = NULL;
        if ((rc = walk_message(&w, m, i, &out)))
            goto done;
        if (json_array_append_new(msgs, out)) {
            rc = fail(&w, IFQ_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    params = ti.params ? json_deep_copy(ti.params) : json_object();
    if (!params || (ti.model && json_object_set(params, "model", (json_t *)ti.model))) {
        rc = fail(&w, IFQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    *messages_out = msgs;
    *params_out = params;
    msgs = params = NULL;
    rc = IFQ_OK;
done:
    json_decref(msgs);
    json_decref(params);
    json_decref(values);
    json_decref(w.used);
    free(w.buf);
    return rc;
}

json_t *ifq_prompt_parse(const char *content, size_t len, char *errstr, size_t errstr_size)
{
    if (len > IFQ_PROMPT_MAX_TEMPLATE) {
        snprintf(errstr, errstr_size, "template of %zu bytes exceeds the limit of %u bytes", len,
                 (unsigned)IFQ_PROMPT_MAX_TEMPLATE);
        return NULL;
    }
    if (len >= 3 && memcmp(content, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 byte order mark */
        content += 3;
        len -= 3;
    }
    size_t i = 0;
    while (i < len &&
           (content[i] == ' ' || content[i] == '\t' || content[i] == '\r' || content[i] == '\n'))
        i++;
    if (i == len) {
        snprintf(errstr, errstr_size, "template is empty");
        return NULL;
    }
    json_t *t;
    if (content[i] == '{' && !(i + 1 < len && content[i + 1] == '{')) {
        json_error_t je;
        t = json_loadb(content, len, JSON_REJECT_DUPLICATES, &je);
        if (!t) {
            snprintf(errstr, errstr_size, "template is not valid JSON: %s at line %d column %d",
                     je.text, je.line, je.column);
            return NULL;
        }
    } else {
        size_t n = len;
        while (n > 0 && (content[n - 1] == '\n' || content[n - 1] == '\r'))
            n--;
        json_t *text = json_stringn(content, n);
        if (!text) {
            snprintf(errstr, errstr_size, "template text is not valid UTF-8");
            return NULL;
        }
        t = json_pack("{s:[{s:s,s:o}]}", "messages", "role", "user", "content", text);
        if (!t) {
            snprintf(errstr, errstr_size, "out of memory");
            return NULL;
        }
    }
    if (ifq_prompt_validate(t, errstr, errstr_size) != IFQ_OK) {
        json_decref(t);
        return NULL;
    }
    return t;
}

/* ======================================================================
 * Storage
 * ====================================================================== */

/* Both caches are set-associative: an entry can only live in the WAYS slots
 * of the set its hash picks, the least recently used of them is replaced.
 * Lookups are O(WAYS) and the memory is fixed at creation. */
#define WAYS 8
#define META_SETS 128 /* 1024 ids */
#define DEFAULT_LABEL_TTL_MS 2000
#define DEFAULT_MAX_VERSIONS 512
#define DEFAULT_MAX_BYTES (32u * 1024 * 1024)
#define REDIS_TIMEOUT_MS 2000
#define RECONNECT_BACKOFF_MS 1000

typedef struct {
    uint64_t used; /* LRU tick; 0 = empty */
    uint64_t hash;
    char key[IFQ_PROMPT_REF_SIZE]; /* "id@version" */
    json_t *tmpl;                  /* parsed template */
    size_t bytes;                  /* stored text size */
} vslot_t;

typedef struct {
    uint64_t used;
    uint64_t hash;
    char id[IFQ_PROMPT_MAX_ID + 1];
    int latest;     /* 0: the id does not exist (cached as such) */
    json_t *labels; /* label -> version */
    int64_t fetched_ms;
} mslot_t;

struct ifq_prompts {
    redisContext *rc;
    ifq_redis_url_t url;
    int64_t next_connect_ms;
    char prefix[IFQ_MAX_NAME];
    int label_ttl_ms;
    uint64_t tick;
    vslot_t *v;
    size_t v_sets;
    size_t v_bytes, v_max_bytes;
    mslot_t m[META_SETS * WAYS];
};

static const char push_script[] =
    /* KEYS: meta, versions, index. ARGV: id, content, now_ms, hash, max versions. */
    "local latest = tonumber(redis.call('HGET', KEYS[1], 'latest') or '0')\n"
    "if latest > 0 and redis.call('HGET', KEYS[2], tostring(latest)) == ARGV[2] then\n"
    "  return {latest, 0}\n"
    "end\n"
    "if latest >= tonumber(ARGV[5]) then\n"
    "  return redis.error_reply('IFQ_TOOMANY versions: ' .. latest)\n"
    "end\n"
    "local v = latest + 1\n"
    "redis.call('HSET', KEYS[2], tostring(v), ARGV[2], v .. ':created_ms', ARGV[3],\n"
    "           v .. ':hash', ARGV[4])\n"
    "redis.call('HSET', KEYS[1], 'latest', v, 'updated_ms', ARGV[3])\n"
    "redis.call('HSETNX', KEYS[1], 'created_ms', ARGV[3])\n"
    "redis.call('SADD', KEYS[3], ARGV[1])\n"
    "return {v, 1}\n";

static const char label_script[] =
    /* KEYS: meta. ARGV: label, version, max labels. */
    "local latest = tonumber(redis.call('HGET', KEYS[1], 'latest') or '0')\n"
    "if latest == 0 then return redis.error_reply('IFQ_NOPROMPT no such prompt') end\n"
    "local v = tonumber(ARGV[2])\n"
    "if v < 1 or v > latest then return redis.error_reply('IFQ_NOVERSION ' .. latest) end\n"
    "local f = 'label:' .. ARGV[1]\n"
    "if redis.call('HEXISTS', KEYS[1], f) == 0 then\n"
    "  local n = 0\n"
    "  for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
    "    if string.sub(k, 1, 6) == 'label:' then n = n + 1 end\n"
    "  end\n"
    "  if n >= tonumber(ARGV[3]) then return redis.error_reply('IFQ_TOOMANY too many labels') end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], f, v)\n"
    "return v\n";

static void vcache_clear(ifq_prompts_t *p)
{
    for (size_t i = 0; p->v && i < p->v_sets * WAYS; i++) {
        json_decref(p->v[i].tmpl);
        memset(&p->v[i], 0, sizeof(p->v[i]));
    }
    p->v_bytes = 0;
}

static int vcache_alloc(ifq_prompts_t *p, size_t max_versions)
{
    size_t sets = (max_versions + WAYS - 1) / WAYS;
    if (sets == 0)
        sets = 1;
    vslot_t *v = calloc(sets * WAYS, sizeof(*v));
    if (!v)
        return IFQ_ERR_NOMEM;
    vcache_clear(p);
    free(p->v);
    p->v = v;
    p->v_sets = sets;
    return IFQ_OK;
}

ifq_prompts_t *ifq_prompts_connect(const char *redis_url, const char *prefix, char *errstr,
                                   size_t errstr_size)
{
    ifq_prompts_t *p = calloc(1, sizeof(*p));
    if (!p || vcache_alloc(p, DEFAULT_MAX_VERSIONS) != IFQ_OK) {
        snprintf(errstr, errstr_size, "out of memory");
        free(p);
        return NULL;
    }
    p->label_ttl_ms = DEFAULT_LABEL_TTL_MS;
    p->v_max_bytes = DEFAULT_MAX_BYTES;
    if (ifq_fmt(p->prefix, sizeof(p->prefix), "%s", prefix ? prefix : "") != IFQ_OK) {
        snprintf(errstr, errstr_size, "key prefix longer than %d bytes", IFQ_MAX_NAME - 1);
        ifq_prompts_destroy(p);
        return NULL;
    }
    if (ifq_redis_url_parse(redis_url, &p->url, errstr, errstr_size) != IFQ_OK ||
        !(p->rc = ifq_redis_url_connect(&p->url, REDIS_TIMEOUT_MS, errstr, errstr_size))) {
        ifq_prompts_destroy(p);
        return NULL;
    }
    return p;
}

void ifq_prompts_destroy(ifq_prompts_t *p)
{
    if (!p)
        return;
    vcache_clear(p);
    free(p->v);
    for (size_t i = 0; i < IFQ_ARRAY_LEN(p->m); i++)
        json_decref(p->m[i].labels);
    if (p->rc)
        redisFree(p->rc);
    free(p);
}

void ifq_prompts_set_cache(ifq_prompts_t *p, int label_ttl_ms, size_t max_versions,
                           size_t max_bytes)
{
    if (label_ttl_ms >= 0)
        p->label_ttl_ms = label_ttl_ms;
    if (max_versions && max_versions != p->v_sets * WAYS && vcache_alloc(p, max_versions) != IFQ_OK)
        ifq_warn("prompt_cache", "cannot resize the prompt cache; keeping %zu entries",
                 p->v_sets * WAYS);
    if (max_bytes) {
        p->v_max_bytes = max_bytes;
        vcache_clear(p);
    }
}

/* ---- Redis access -------------------------------------------------------- */

static int pr_connect(ifq_prompts_t *p, char *errstr, size_t errstr_size)
{
    int64_t now = ifq_mono_ms();
    if (now < p->next_connect_ms) {
        snprintf(errstr, errstr_size, "redis %s:%d is unreachable (next attempt within 1 s)",
                 p->url.host, p->url.port);
        return IFQ_ERR_IO;
    }
    p->rc = ifq_redis_url_connect(&p->url, REDIS_TIMEOUT_MS, errstr, errstr_size);
    if (!p->rc) {
        /* While Redis is down, every caller would otherwise wait for a
         * connect timeout; fail fast until the next attempt is due. */
        p->next_connect_ms = now + RECONNECT_BACKOFF_MS;
        return IFQ_ERR_IO;
    }
    return IFQ_OK;
}

/* Runs one command, reconnecting once if the connection broke. Returns the
 * reply (caller frees; it may be an error reply) or NULL with errstr. A
 * command that is retried must be idempotent: every command here is. */
static redisReply *pr_cmd(ifq_prompts_t *p, int argc, const char **argv, const size_t *lens,
                          char *errstr, size_t errstr_size)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!p->rc && pr_connect(p, errstr, errstr_size) != IFQ_OK)
            return NULL;
        redisReply *r = redisCommandArgv(p->rc, argc, argv, lens);
        if (r)
            return r;
        snprintf(errstr, errstr_size, "redis %s:%d: %s", p->url.host, p->url.port,
                 p->rc->errstr[0] ? p->rc->errstr : "connection lost");
        redisFree(p->rc);
        p->rc = NULL;
    }
    return NULL;
}

static void key_meta(const ifq_prompts_t *p, const char *id, char *out, size_t size)
{
    (void)ifq_fmt(out, size, "%s:prompt:%s", p->prefix, id);
}

#define KEY_SIZE (IFQ_MAX_NAME + IFQ_PROMPT_MAX_ID + 32)

static int parse_int_field(const char *s, int *out)
{
    int64_t v;
    if (!s || ifq_parse_i64(s, &v) != IFQ_OK || v < 0 || v > 2147483647)
        return -1;
    *out = (int)v;
    return 0;
}

static int64_t i64_field(const char *s)
{
    int64_t v = 0;
    if (!s || ifq_parse_i64(s, &v) != IFQ_OK)
        return 0;
    return v;
}

/* Reads a meta hash (HGETALL reply) into latest / created / updated and a
 * labels object (caller owns). */
static json_t *meta_from_reply(const redisReply *r, int *latest, int64_t *created, int64_t *updated)
{
    *latest = 0;
    *created = *updated = 0;
    json_t *labels = json_object();
    if (!labels)
        return NULL;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const char *k = r->element[i]->str, *v = r->element[i + 1]->str;
        int n;
        if (!k || !v)
            continue;
        if (strcmp(k, "latest") == 0)
            parse_int_field(v, latest);
        else if (strcmp(k, "created_ms") == 0)
            *created = i64_field(v);
        else if (strcmp(k, "updated_ms") == 0)
            *updated = i64_field(v);
        else if (strncmp(k, "label:", 6) == 0 && parse_int_field(v, &n) == 0)
            json_object_set_new(labels, k + 6, json_integer(n));
    }
    return labels;
}

static mslot_t *meta_find(ifq_prompts_t *p, const char *id, uint64_t h, mslot_t **victim)
{
    mslot_t *set = &p->m[(h % META_SETS) * WAYS];
    mslot_t *lru = &set[0];
    for (int i = 0; i < WAYS; i++) {
        if (set[i].used && set[i].hash == h && strcmp(set[i].id, id) == 0)
            return &set[i];
        if (set[i].used < lru->used)
            lru = &set[i];
    }
    if (victim)
        *victim = lru;
    return NULL;
}

static void meta_forget(ifq_prompts_t *p, const char *id)
{
    mslot_t *m = meta_find(p, id, ifq_fnv1a64(id, strlen(id), 0), NULL);
    if (m) {
        json_decref(m->labels);
        memset(m, 0, sizeof(*m));
    }
}

/* The id's latest version and labels, from the cache when read less than
 * label_ttl_ms ago, else from Redis. The slot is borrowed until the next
 * call into p. */
static int meta_get(ifq_prompts_t *p, const char *id, const mslot_t **out, char *errstr,
                    size_t errstr_size)
{
    uint64_t h = ifq_fnv1a64(id, strlen(id), 0);
    mslot_t *victim = NULL;
    mslot_t *m = meta_find(p, id, h, &victim);
    int64_t now = ifq_mono_ms();
    if (m && now - m->fetched_ms < p->label_ttl_ms) {
        m->used = ++p->tick;
        *out = m;
        return IFQ_OK;
    }
    char key[KEY_SIZE];
    key_meta(p, id, key, sizeof(key));
    const char *argv[] = {"HGETALL", key};
    redisReply *r = pr_cmd(p, 2, argv, NULL, errstr, errstr_size);
    if (!r)
        return IFQ_ERR_IO;
    if (r->type != REDIS_REPLY_ARRAY) {
        snprintf(errstr, errstr_size, "redis HGETALL %s: %s", key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return IFQ_ERR_IO;
    }
    int latest;
    int64_t created, updated;
    json_t *labels = meta_from_reply(r, &latest, &created, &updated);
    freeReplyObject(r);
    if (!labels) {
        snprintf(errstr, errstr_size, "out of memory");
        return IFQ_ERR_NOMEM;
    }
    if (!m) {
        m = victim;
        json_decref(m->labels);
        memset(m, 0, sizeof(*m));
        m->hash = h;
        memcpy(m->id, id, strlen(id) + 1);
    }
    json_decref(m->labels);
    m->labels = labels;
    m->latest = latest;
    m->fetched_ms = now;
    m->used = ++p->tick;
    *out = m;
    return IFQ_OK;
}

static vslot_t *vcache_find(ifq_prompts_t *p, const char *key, uint64_t h, vslot_t **victim)
{
    vslot_t *set = &p->v[(h % p->v_sets) * WAYS];
    vslot_t *lru = &set[0];
    for (int i = 0; i < WAYS; i++) {
        if (set[i].used && set[i].hash == h && strcmp(set[i].key, key) == 0)
            return &set[i];
        if (set[i].used < lru->used)
            lru = &set[i];
    }
    if (victim)
        *victim = lru;
    return NULL;
}

static void vslot_drop(ifq_prompts_t *p, vslot_t *s)
{
    if (!s->used)
        return;
    json_decref(s->tmpl);
    p->v_bytes -= s->bytes;
    memset(s, 0, sizeof(*s));
}

static void vcache_put(ifq_prompts_t *p, const char *key, uint64_t h, json_t *tmpl, size_t bytes,
                       vslot_t *victim)
{
    if (bytes > p->v_max_bytes)
        return;
    vslot_drop(p, victim);
    /* Over the byte budget: drop the least recently used versions anywhere. */
    while (p->v_bytes + bytes > p->v_max_bytes) {
        vslot_t *lru = NULL;
        for (size_t i = 0; i < p->v_sets * WAYS; i++)
            if (p->v[i].used && (!lru || p->v[i].used < lru->used))
                lru = &p->v[i];
        if (!lru)
            break;
        vslot_drop(p, lru);
    }
    victim->used = ++p->tick;
    victim->hash = h;
    memcpy(victim->key, key, strlen(key) + 1);
    victim->tmpl = json_incref(tmpl);
    victim->bytes = bytes;
    p->v_bytes += bytes;
}

/* The parsed template of id@version (a new reference: caller decrefs).
 * IFQ_ERR_NOTFOUND when that version does not exist, IFQ_ERR_INVALID when
 * the stored text is not a valid template, IFQ_ERR_IO. */
static int version_get(ifq_prompts_t *p, const char *id, int version, json_t **out, char *errstr,
                       size_t errstr_size)
{
    *out = NULL;
    char ref[IFQ_PROMPT_REF_SIZE];
    (void)ifq_fmt(ref, sizeof(ref), "%s@%d", id, version);
    uint64_t h = ifq_fnv1a64(ref, strlen(ref), 0);
    vslot_t *victim = NULL;
    vslot_t *s = vcache_find(p, ref, h, &victim);
    if (s) {
        s->used = ++p->tick;
        *out = json_incref(s->tmpl);
        return IFQ_OK;
    }
    /* A fresh cached view of the id answers "no such version" without a
     * round trip, so a client asking for a missing version again and again
     * does not reach Redis every time. */
    mslot_t *m = meta_find(p, id, ifq_fnv1a64(id, strlen(id), 0), NULL);
    if (m && ifq_mono_ms() - m->fetched_ms < p->label_ttl_ms && version > m->latest)
        return IFQ_ERR_NOTFOUND;

    char key[KEY_SIZE], field[16];
    (void)ifq_fmt(key, sizeof(key), "%s:prompt:%s:versions", p->prefix, id);
    (void)ifq_fmt(field, sizeof(field), "%d", version);
    const char *argv[] = {"HGET", key, field};
    redisReply *r = pr_cmd(p, 3, argv, NULL, errstr, errstr_size);
    if (!r)
        return IFQ_ERR_IO;
    int rc;
    if (r->type == REDIS_REPLY_NIL) {
        rc = IFQ_ERR_NOTFOUND;
    } else if (r->type != REDIS_REPLY_STRING) {
        snprintf(errstr, errstr_size, "redis HGET %s: %s", key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        rc = IFQ_ERR_IO;
    } else {
        char why[256];
        json_t *t = ifq_prompt_parse(r->str, r->len, why, sizeof(why));
        if (!t) {
            snprintf(errstr, errstr_size, "prompt '%s' is not a valid template: %s", ref, why);
            rc = IFQ_ERR_INVALID;
        } else {
            vcache_put(p, ref, h, t, r->len, victim);
            *out = t;
            rc = IFQ_OK;
        }
    }
    freeReplyObject(r);
    return rc;
}

/* ---- public storage API ------------------------------------------------- */

int ifq_prompts_push(ifq_prompts_t *p, const char *id, const char *content, size_t len,
                     int *version_out, int *created_out, char *errstr, size_t errstr_size)
{
    *version_out = 0;
    if (created_out)
        *created_out = 0;
    if (!ifq_prompt_id_valid(id)) {
        snprintf(errstr, errstr_size, "prompt id must be 1..%d characters of [A-Za-z0-9._-]",
                 IFQ_PROMPT_MAX_ID);
        return IFQ_ERR_INVALID;
    }
    if (len > IFQ_PROMPT_MAX_TEMPLATE) {
        snprintf(errstr, errstr_size, "template of %zu bytes exceeds the limit of %u bytes", len,
                 (unsigned)IFQ_PROMPT_MAX_TEMPLATE);
        return IFQ_ERR_TOOBIG;
    }
    char why[384];
    json_t *t = ifq_prompt_parse(content, len, why, sizeof(why));
    if (!t) {
        snprintf(errstr, errstr_size, "not a valid template: %s", why);
        return IFQ_ERR_INVALID;
    }
    json_decref(t);

    char meta[KEY_SIZE], versions[KEY_SIZE], index[KEY_SIZE], now[24], hash[32], maxv[16];
    key_meta(p, id, meta, sizeof(meta));
    (void)ifq_fmt(versions, sizeof(versions), "%s:prompt:%s:versions", p->prefix, id);
    (void)ifq_fmt(index, sizeof(index), "%s:prompts", p->prefix);
    (void)ifq_fmt(now, sizeof(now), "%lld", (long long)ifq_now_ms());
    (void)ifq_fmt(hash, sizeof(hash), "fnv1a64:%016llx",
                  (unsigned long long)ifq_fnv1a64(content, len, 0));
    (void)ifq_fmt(maxv, sizeof(maxv), "%d", IFQ_PROMPT_MAX_VERSIONS);
    const char *argv[] = {"EVAL", push_script, "3", meta, versions, index,
                          id,     content,     now, hash, maxv};
    size_t lens[IFQ_ARRAY_LEN(argv)];
    for (size_t i = 0; i < IFQ_ARRAY_LEN(argv); i++)
        lens[i] = argv[i] == content ? len : strlen(argv[i]);
    redisReply *r = pr_cmd(p, (int)IFQ_ARRAY_LEN(argv), argv, lens, errstr, errstr_size);
    if (!r)
        return IFQ_ERR_IO;
    int rc = IFQ_OK;
    if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "IFQ_TOOMANY")) {
        snprintf(errstr, errstr_size, "prompt '%s' already has %d versions, the maximum", id,
                 IFQ_PROMPT_MAX_VERSIONS);
        rc = IFQ_ERR_TOOBIG;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               r->element[0]->type == REDIS_REPLY_INTEGER &&
               r->element[1]->type == REDIS_REPLY_INTEGER) {
        *version_out = (int)r->element[0]->integer;
        if (created_out)
            *created_out = (int)r->element[1]->integer;
    } else {
        snprintf(errstr, errstr_size, "redis: push failed: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        rc = IFQ_ERR_IO;
    }
    freeReplyObject(r);
    meta_forget(p, id);
    return rc;
}

int ifq_prompts_label(ifq_prompts_t *p, const char *id, const char *label, int version,
                      char *errstr, size_t errstr_size)
{
    if (!ifq_prompt_id_valid(id)) {
        snprintf(errstr, errstr_size, "prompt id must be 1..%d characters of [A-Za-z0-9._-]",
                 IFQ_PROMPT_MAX_ID);
        return IFQ_ERR_INVALID;
    }
    if (!ifq_prompt_label_valid(label)) {
        snprintf(errstr, errstr_size,
                 "a label is 1..%d characters of [a-z0-9_-] and not \"latest\" (which is "
                 "implicit)",
                 IFQ_PROMPT_MAX_LABEL);
        return IFQ_ERR_INVALID;
    }
    if (version < 1) {
        snprintf(errstr, errstr_size, "version must be a positive integer");
        return IFQ_ERR_INVALID;
    }
    char meta[KEY_SIZE], ver[16], maxl[16];
    key_meta(p, id, meta, sizeof(meta));
    (void)ifq_fmt(ver, sizeof(ver), "%d", version);
    (void)ifq_fmt(maxl, sizeof(maxl), "%d", IFQ_PROMPT_MAX_LABELS);
    const char *argv[] = {"EVAL", label_script, "1", meta, label, ver, maxl};
    redisReply *r = pr_cmd(p, (int)IFQ_ARRAY_LEN(argv), argv, NULL, errstr, errstr_size);
    if (!r)
        return IFQ_ERR_IO;
    int rc = IFQ_OK;
    if (r->type == REDIS_REPLY_INTEGER) {
        rc = IFQ_OK;
    } else if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "IFQ_NOPROMPT")) {
        snprintf(errstr, errstr_size, "prompt '%s' does not exist", id);
        rc = IFQ_ERR_NOTFOUND;
    } else if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "IFQ_NOVERSION ")) {
        /* Redis may put a code before ours; the latest version follows it. */
        snprintf(errstr, errstr_size, "prompt '%s' has no version %d (latest is %.12s)", id,
                 version, strstr(r->str, "IFQ_NOVERSION ") + 14);
        rc = IFQ_ERR_INVALID;
    } else if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "IFQ_TOOMANY")) {
        snprintf(errstr, errstr_size, "prompt '%s' already has %d labels, the maximum", id,
                 IFQ_PROMPT_MAX_LABELS);
        rc = IFQ_ERR_TOOBIG;
    } else {
        snprintf(errstr, errstr_size, "redis: label failed: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        rc = IFQ_ERR_IO;
    }
    freeReplyObject(r);
    meta_forget(p, id);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *ifq_prompts_list(ifq_prompts_t *p, char *errstr, size_t errstr_size)
{
    char index[KEY_SIZE];
    (void)ifq_fmt(index, sizeof(index), "%s:prompts", p->prefix);
    char **ids = calloc(IFQ_PROMPT_MAX_LIST, sizeof(*ids));
    size_t n = 0;
    json_t *out = NULL;
    if (!ids) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    /* SSCAN in steps, so a huge set never arrives in one reply. */
    char cursor[32] = "0";
    do {
        const char *argv[] = {"SSCAN", index, cursor, "COUNT", "500"};
        redisReply *r = pr_cmd(p, 5, argv, NULL, errstr, errstr_size);
        if (!r)
            goto done;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(errstr, errstr_size, "redis SSCAN %s: %s", index,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            freeReplyObject(r);
            goto done;
        }
        (void)ifq_fmt(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements && n < IFQ_PROMPT_MAX_LIST; i++) {
            const redisReply *e = r->element[1]->element[i];
            if (e->type != REDIS_REPLY_STRING || !ifq_prompt_id_valid(e->str))
                continue;
            if (!(ids[n++] = strdup(e->str))) {
                n--;
                snprintf(errstr, errstr_size, "out of memory");
                freeReplyObject(r);
                goto done;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && n < IFQ_PROMPT_MAX_LIST);
    /* SSCAN may return an element more than once: sort, then drop repeats. */
    qsort(ids, n, sizeof(*ids), cmp_str);
    size_t uniq = 0;
    for (size_t i = 0; i < n; i++) {
        if (uniq && strcmp(ids[uniq - 1], ids[i]) == 0)
            free(ids[i]);
        else
            ids[uniq++] = ids[i];
    }
    n = uniq;

    /* One pipelined round trip for every id's meta hash. */
    if (n && !p->rc && pr_connect(p, errstr, errstr_size) != IFQ_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        char key[KEY_SIZE];
        key_meta(p, ids[i], key, sizeof(key));
        const char *argv[] = {"HGETALL", key};
        redisAppendCommandArgv(p->rc, 2, argv, NULL);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(p->rc, (void **)&r) != REDIS_OK || !r) {
            snprintf(errstr, errstr_size, "redis %s:%d: %s", p->url.host, p->url.port,
                     p->rc->errstr[0] ? p->rc->errstr : "connection lost");
            redisFree(p->rc);
            p->rc = NULL;
            json_decref(arr);
            goto done;
        }
        int latest;
        int64_t created, updated;
        json_t *labels = meta_from_reply(r, &latest, &created, &updated);
        freeReplyObject(r);
        if (labels && latest > 0 && arr)
            json_array_append_new(arr,
                                  json_pack("{s:s,s:i,s:I,s:I,s:o}", "id", ids[i], "latest", latest,
                                            "created_ms", (json_int_t)created, "updated_ms",
                                            (json_int_t)updated, "labels", labels));
        else
            json_decref(labels);
    }
    if (!arr)
        snprintf(errstr, errstr_size, "out of memory");
    out = arr;
done:
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return out;
}

json_t *ifq_prompts_show(ifq_prompts_t *p, const char *id, int version_or_0,
                         const char *label_or_NULL, char *errstr, size_t errstr_size)
{
    if (!ifq_prompt_id_valid(id)) {
        snprintf(errstr, errstr_size, "prompt id must be 1..%d characters of [A-Za-z0-9._-]",
                 IFQ_PROMPT_MAX_ID);
        return NULL;
    }
    if (label_or_NULL && strcmp(label_or_NULL, "latest") != 0 &&
        !ifq_prompt_label_valid(label_or_NULL)) {
        snprintf(errstr, errstr_size, "a label is 1..%d characters of [a-z0-9_-]",
                 IFQ_PROMPT_MAX_LABEL);
        return NULL;
    }
    if (version_or_0 < 0) {
        snprintf(errstr, errstr_size, "version must be a positive integer");
        return NULL;
    }
    char key[KEY_SIZE];
    key_meta(p, id, key, sizeof(key));
    const char *argv[] = {"HGETALL", key};
    redisReply *r = pr_cmd(p, 2, argv, NULL, errstr, errstr_size);
    if (!r)
        return NULL;
    int latest;
    int64_t created, updated;
    json_t *labels =
        r->type == REDIS_REPLY_ARRAY ? meta_from_reply(r, &latest, &created, &updated) : NULL;
    if (!labels) {
        snprintf(errstr, errstr_size, "redis HGETALL %s: %s", key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return NULL;
    }
    freeReplyObject(r);
    int v = version_or_0;
    if (latest == 0) {
        snprintf(errstr, errstr_size, "prompt '%s' does not exist", id);
        goto fail;
    }
    if (!v && label_or_NULL && strcmp(label_or_NULL, "latest") != 0) {
        json_t *lv = json_object_get(labels, label_or_NULL);
        if (!lv) {
            snprintf(errstr, errstr_size, "prompt '%s' has no label '%s'", id, label_or_NULL);
            goto fail;
        }
        v = (int)json_integer_value(lv);
    }
    if (!v)
        v = latest;

    char vkey[KEY_SIZE], f_content[16], f_created[32], f_hash[32];
    (void)ifq_fmt(vkey, sizeof(vkey), "%s:prompt:%s:versions", p->prefix, id);
    (void)ifq_fmt(f_content, sizeof(f_content), "%d", v);
    (void)ifq_fmt(f_created, sizeof(f_created), "%d:created_ms", v);
    (void)ifq_fmt(f_hash, sizeof(f_hash), "%d:hash", v);
    const char *argv2[] = {"HMGET", vkey, f_content, f_created, f_hash};
    r = pr_cmd(p, 5, argv2, NULL, errstr, errstr_size);
    if (!r)
        goto fail;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        snprintf(errstr, errstr_size, "redis HMGET %s: %s", vkey,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        goto fail;
    }
    if (r->element[0]->type != REDIS_REPLY_STRING) {
        snprintf(errstr, errstr_size, "prompt '%s' has no version %d (latest is %d)", id, v,
                 latest);
        freeReplyObject(r);
        goto fail;
    }
    json_t *pointing = json_array();
    const char *lk;
    json_t *lv;
    json_object_foreach(labels, lk, lv)
    {
        if (json_integer_value(lv) == v)
            json_array_append_new(pointing, json_string(lk));
    }
    json_t *content = json_stringn(r->element[0]->str, r->element[0]->len);
    json_t *out = json_pack("{s:s,s:i,s:i,s:I,s:s,s:I,s:o,s:o}", "id", id, "version", v, "latest",
                            latest, "created_ms", (json_int_t)i64_field(r->element[1]->str), "hash",
                            r->element[2]->str ? r->element[2]->str : "", "bytes",
                            (json_int_t)r->element[0]->len, "labels", pointing, "content", content);
    freeReplyObject(r);
    json_decref(labels);
    if (!out)
        snprintf(errstr, errstr_size, "stored template text is not valid UTF-8");
    return out;
fail:
    json_decref(labels);
    return NULL;
}

/* ---- the broker's entry point ------------------------------------------ */

static int reject(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reject(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
    return IFQ_ERR_INVALID;
}

int ifq_prompts_render_request(ifq_prompts_t *p, const json_t *pf, json_t *body, char *ref_out,
                               size_t ref_size, char *errstr, size_t errstr_size)
{
    if (ref_out && ref_size)
        ref_out[0] = '\0';
    if (!json_is_object(pf))
        return reject(errstr, errstr_size,
                      "prompt must be an object {id, version|label, variables}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)pf, k, v)
    {
        if (strcmp(k, "id") && strcmp(k, "version") && strcmp(k, "label") && strcmp(k, "variables"))
            return reject(errstr, errstr_size,
                          "prompt has an unknown field '%.64s' (expected id, version, label, "
                          "variables)",
                          k);
    }
    const char *id = json_string_value(json_object_get(pf, "id"));
    if (!ifq_prompt_id_valid(id))
        return reject(errstr, errstr_size,
                      "prompt.id must be a string of 1..%d characters [A-Za-z0-9._-]",
                      IFQ_PROMPT_MAX_ID);
    json_t *jv = json_object_get(pf, "version");
    json_t *jl = json_object_get(pf, "label");
    json_t *vars = json_object_get(pf, "variables");
    if (json_is_null(jv))
        jv = NULL;
    if (json_is_null(jl))
        jl = NULL;
    if (json_is_null(vars))
        vars = NULL;
    int version = 0;
    if (jv) {
        if (!json_is_integer(jv) || json_integer_value(jv) < 1 ||
            json_integer_value(jv) > IFQ_PROMPT_MAX_VERSIONS)
            return reject(errstr, errstr_size, "prompt.version must be an integer from 1 to %d",
                          IFQ_PROMPT_MAX_VERSIONS);
        version = (int)json_integer_value(jv);
    }
    const char *label = NULL;
    if (jl) {
        label = json_string_value(jl);
        if (!label || (strcmp(label, "latest") != 0 && !ifq_prompt_label_valid(label)))
            return reject(errstr, errstr_size,
                          "prompt.label must be a string of 1..%d characters [a-z0-9_-]",
                          IFQ_PROMPT_MAX_LABEL);
    }
    if (jv && jl)
        return reject(errstr, errstr_size, "prompt: give a version or a label, not both");
    if (vars && !json_is_object(vars))
        return reject(errstr, errstr_size, "prompt.variables must be an object");
    if (!json_is_object(body))
        return reject(errstr, errstr_size, "body must be an object");
    if (json_object_get(body, "messages"))
        return reject(errstr, errstr_size,
                      "body.messages must be absent when prompt is given (the template supplies "
                      "the messages)");

    int rc;
    const mslot_t *m = NULL;
    if (!version) {
        if ((rc = meta_get(p, id, &m, errstr, errstr_size)))
            return rc;
        if (!m->latest)
            return reject(errstr, errstr_size, "prompt '%s' does not exist", id);
        if (label && strcmp(label, "latest") != 0) {
            json_t *lv = json_object_get(m->labels, label);
            if (!lv)
                return reject(errstr, errstr_size, "prompt '%s' has no label '%s'", id, label);
            version = (int)json_integer_value(lv);
        } else {
            version = m->latest;
        }
    }
    json_t *tmpl = NULL;
    rc = version_get(p, id, version, &tmpl, errstr, errstr_size);
    if (rc == IFQ_ERR_NOTFOUND) {
        int mrc = meta_get(p, id, &m, errstr, errstr_size);
        if (mrc)
            return mrc;
        if (!m->latest)
            return reject(errstr, errstr_size, "prompt '%s' does not exist", id);
        return reject(errstr, errstr_size, "prompt '%s' has no version %d (latest is %d)", id,
                      version, m->latest);
    }
    if (rc)
        return rc;

    json_t *msgs = NULL, *params = NULL;
    char why[384];
    rc = ifq_prompt_render(tmpl, vars, &msgs, &params, why, sizeof(why));
    json_decref(tmpl);
    if (rc) {
        snprintf(errstr, errstr_size, "prompt '%s@%d': %s", id, version, why);
        return rc;
    }
    /* All or nothing: the body is changed only after everything succeeded. */
    if (json_object_set_new(body, "messages", msgs)) {
        json_decref(params);
        snprintf(errstr, errstr_size, "out of memory");
        return IFQ_ERR_NOMEM;
    }
    json_object_foreach(params, k, v)
    {
        if (!json_object_get(body, k))
            json_object_set(body, k, v);
    }
    json_decref(params);
    if (ref_out && ref_size)
        (void)ifq_fmt(ref_out, ref_size, "%s@%d", id, version);
    return IFQ_OK;
}
