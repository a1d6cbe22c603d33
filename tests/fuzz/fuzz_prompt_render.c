/*
 * fuzz_prompt_render.c - the prompt template parser and renderer on arbitrary
 * bytes. The input is TEMPLATE [NUL VARIABLES-JSON]: the template text goes
 * through ifq_prompt_parse (what `push` stores) and, parsed as raw JSON,
 * straight into ifq_prompt_render (any document must be refused cleanly);
 * the variables are whatever JSON follows the first NUL byte.
 *
 * Invariants checked: every failure has a message; parse accepts only what
 * validate accepts; a successful render returns an array with one message
 * per template message, an object of params, and at most
 * IFQ_PROMPT_MAX_RENDERED bytes of text; rendering is deterministic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"

static size_t text_bytes(const json_t *v)
{
    size_t n = 0, i;
    const char *k;
    json_t *e;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_length(v);
    case JSON_ARRAY:
        json_array_foreach(v, i, e) n += text_bytes(e);
        return n;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, e)
        {
            if (strcmp(k, "role") != 0)
                n += text_bytes(e);
        }
        return n;
    default:
        return 0;
    }
}

static void check_render(const json_t *tmpl, const json_t *vars)
{
    char err[512] = "";
    json_t *msgs = NULL, *params = NULL;
    int rc = ifq_prompt_render(tmpl, vars, &msgs, &params, err, sizeof(err));
    if (rc != IFQ_OK) {
        if (!err[0] || msgs || params)
            abort();
        return;
    }
    if (!json_is_array(msgs) || !json_is_object(params) ||
        json_array_size(msgs) != json_array_size(json_object_get(tmpl, "messages")) ||
        text_bytes(msgs) > IFQ_PROMPT_MAX_RENDERED)
        abort();
    json_t *msgs2 = NULL, *params2 = NULL;
    if (ifq_prompt_render(tmpl, vars, &msgs2, &params2, err, sizeof(err)) != IFQ_OK ||
        !json_equal(msgs, msgs2) || !json_equal(params, params2))
        abort();
    json_decref(msgs);
    json_decref(params);
    json_decref(msgs2);
    json_decref(params2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - text) : size;
    json_t *vars = NULL;
    if (nul) {
        json_error_t je;
        vars = json_loadb(nul + 1, size - tlen - 1, JSON_DECODE_ANY, &je);
    }

    char err[512] = "";
    json_t *tmpl = ifq_prompt_parse(text, tlen, err, sizeof(err));
    if (!tmpl && !err[0])
        abort();
    if (tmpl) {
        if (ifq_prompt_validate(tmpl, err, sizeof(err)) != IFQ_OK)
            abort();
        check_render(tmpl, vars);
        json_decref(tmpl);
    }

    /* Any JSON document, not only the ones parse lets through. */
    json_error_t je;
    json_t *raw = json_loadb(text, tlen, JSON_DECODE_ANY, &je);
    if (raw) {
        check_render(raw, vars);
        json_decref(raw);
    }
    json_decref(vars);
    return 0;
}
