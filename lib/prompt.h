/*
 * prompt.h - versioned prompt templates: the template format, a pure
 * renderer, and their storage in Redis with an in-process cache.
 *
 * A template is a JSON document (or a plain-text file, which becomes one user
 * message) whose message strings hold {{ name }} placeholders; see
 * docs/prompts.md for the format and the rules. Templates live in Redis:
 *
 *   <prefix>:prompt:<id>           hash: latest, created_ms, updated_ms,
 *                                  label:<label> -> version
 *   <prefix>:prompt:<id>:versions  hash: <n> -> content, <n>:created_ms,
 *                                  <n>:hash ("fnv1a64:<16 hex>")
 *   <prefix>:prompts               set of ids (for list)
 *
 * Versions are immutable and numbered 1, 2, 3, ...; labels point at
 * versions; "latest" is implicit. A request names a template with
 *   "prompt": {"id": "summarise", "label": "production"|"version": 3,
 *              "variables": {"text": "..."}}
 * and the broker renders it into body.messages.
 *
 * Rendering is not recursive: a variable's value is inserted as it is, even
 * when it contains "{{ x }}", so a client's text can never pull in another
 * variable or a template (no template injection).
 */
#ifndef IFQ_PROMPT_H
#define IFQ_PROMPT_H

#include <jansson.h>
#include <stddef.h>

#include "common.h"

/* Limits. Everything that grows has a maximum. */
#define IFQ_PROMPT_MAX_ID 128                  /* id: [A-Za-z0-9._-]{1,128} */
#define IFQ_PROMPT_MAX_LABEL 64                /* label: [a-z0-9_-]{1,64}, not "latest" */
#define IFQ_PROMPT_MAX_VAR_NAME 64             /* variable: [A-Za-z_][A-Za-z0-9_]{0,63} */
#define IFQ_PROMPT_MAX_TEMPLATE (256u * 1024)  /* stored template bytes */
#define IFQ_PROMPT_MAX_RENDERED (1024u * 1024) /* all rendered strings together */
#define IFQ_PROMPT_MAX_MESSAGES 256
#define IFQ_PROMPT_MAX_VARIABLES 256   /* declared, used, or passed by a client */
#define IFQ_PROMPT_MAX_DEPTH 16        /* JSON nesting inside one message */
#define IFQ_PROMPT_MAX_VERSIONS 100000 /* per id */
#define IFQ_PROMPT_MAX_LABELS 64       /* per id */
#define IFQ_PROMPT_MAX_LIST 10000      /* ids returned by list */
/* "id@version" fits in this many bytes, terminator included. */
#define IFQ_PROMPT_REF_SIZE (IFQ_PROMPT_MAX_ID + 16)

/* ---- pure functions (no Redis) ----------------------------------------- */

/* 1 when s is a legal template id / label name. */
int ifq_prompt_id_valid(const char *s);
int ifq_prompt_label_valid(const char *s);

/* Parses stored template text into a validated template document (caller
 * owns). Text whose first non-blank character is '{' followed by anything but
 * a second '{' is a JSON template; anything else is a plain-text template,
 * which becomes {"messages": [{"role": "user", "content": TEXT}]} with
 * trailing line breaks dropped. Returns NULL with a reason in errstr
 * ("line 3 column 5: ...", "messages[1].content: malformed placeholder ...",
 * "variable 'x' is declared but never used", ...). */
json_t *ifq_prompt_parse(const char *content, size_t len, char *errstr, size_t errstr_size);

/* Checks a template document without rendering it. IFQ_OK or
 * IFQ_ERR_INVALID with a reason. */
int ifq_prompt_validate(const json_t *tmpl, char *errstr, size_t errstr_size);

/* Renders tmpl (borrowed; validated again here, so any document is safe)
 * with variables (borrowed; NULL or an object of strings, numbers or
 * booleans). On IFQ_OK, *messages_out is a new array of messages and
 * *params_out a new object of the body fields the template supplies (its
 * "params", plus "model" when the template names one); the caller owns both.
 * On error both are set to NULL and errstr says why: IFQ_ERR_INVALID
 * ("variable 'text' is required", "unknown variable 'txet'", ...),
 * IFQ_ERR_TOOBIG (rendered text over IFQ_PROMPT_MAX_RENDERED bytes) or
 * IFQ_ERR_NOMEM. */
int ifq_prompt_render(const json_t *tmpl, const json_t *variables, json_t **messages_out,
                      json_t **params_out, char *errstr, size_t errstr_size);

/* ---- storage in Redis ---------------------------------------------------- */

/* A hiredis connection plus a cache of parsed versions and of each id's
 * labels and latest version. Not thread-safe: one per thread. */
typedef struct ifq_prompts ifq_prompts_t;

/* Connects to redis://[:password@]host[:port][/db]; prefix (copied, e.g. the
 * topic prefix "inferq") starts every key. Returns NULL with errstr. */
ifq_prompts_t *ifq_prompts_connect(const char *redis_url, const char *prefix, char *errstr,
                                   size_t errstr_size);
void ifq_prompts_destroy(ifq_prompts_t *p); /* NULL is a no-op */

/* Cache tuning. label_ttl_ms: how long an id's labels and latest version are
 * trusted before they are read again (default 2000; 0 = read every time;
 * negative keeps the current value). max_versions / max_bytes: the
 * parsed-version LRU holds at most this many versions (rounded up to a
 * multiple of 8) and about this many bytes of template text (defaults 512
 * and 32 MiB; 0 keeps the current value; changing either empties it). */
void ifq_prompts_set_cache(ifq_prompts_t *p, int label_ttl_ms, size_t max_versions,
                           size_t max_bytes);

/* Stores content (len bytes, borrowed) as the next version of id, atomically
 * (a Lua script). The content must parse as a template (ifq_prompt_parse) and
 * be at most IFQ_PROMPT_MAX_TEMPLATE bytes. When it is byte-identical to the
 * latest version, no version is created: *version_out is the latest and
 * *created_out (may be NULL) is 0; otherwise *created_out is 1. Returns IFQ_OK,
 * IFQ_ERR_INVALID (bad id or template; errstr says why), IFQ_ERR_TOOBIG, or
 * IFQ_ERR_IO. */
int ifq_prompts_push(ifq_prompts_t *p, const char *id, const char *content, size_t len,
                     int *version_out, int *created_out, char *errstr, size_t errstr_size);

/* Points label at an existing version of id (creating or moving the label).
 * Returns IFQ_OK, IFQ_ERR_INVALID (bad label, "latest", no such version),
 * IFQ_ERR_NOTFOUND (no such id), IFQ_ERR_TOOBIG (more than
 * IFQ_PROMPT_MAX_LABELS labels) or IFQ_ERR_IO. */
int ifq_prompts_label(ifq_prompts_t *p, const char *id, const char *label, int version,
                      char *errstr, size_t errstr_size);

/* Every id, sorted: [{"id", "latest", "created_ms", "updated_ms",
 * "labels": {"production": 3, ...}}, ...] (caller owns). At most
 * IFQ_PROMPT_MAX_LIST ids. NULL on a Redis error, with errstr. */
json_t *ifq_prompts_list(ifq_prompts_t *p, char *errstr, size_t errstr_size);

/* One version: the given version, else the version label points at, else the
 * latest. Returns {"id", "version", "latest", "created_ms", "hash", "bytes",
 * "labels": [labels pointing at it], "content": stored text} (caller owns),
 * or NULL with errstr ("prompt 'x' has no version 7", a Redis error). Always
 * reads Redis (no cache). */
json_t *ifq_prompts_show(ifq_prompts_t *p, const char *id, int version_or_0,
                         const char *label_or_NULL, char *errstr, size_t errstr_size);

/* For the broker: resolves a request's prompt field (borrowed)
 *   {"id": ID, "version": N | "label": L (neither: latest), "variables": {...}}
 * and renders it into body (borrowed, modified): body.messages is set (it must
 * be absent beforehand), and every template param and the template's model
 * are set unless body already has that key. ref_out receives "id@version"
 * (ref_size >= IFQ_PROMPT_REF_SIZE is always enough). Returns IFQ_OK;
 * IFQ_ERR_INVALID with a reason for the client in errstr ("prompt 'x' has no
 * version 7", "prompt 'x@3': variable 'text' is required"); IFQ_ERR_TOOBIG
 * (rendered prompt too large: also the client's fault); IFQ_ERR_IO when Redis
 * cannot be reached (retry later: the request is fine); IFQ_ERR_NOMEM. body
 * is untouched unless IFQ_OK is returned. */
int ifq_prompts_render_request(ifq_prompts_t *p, const json_t *prompt_field, json_t *body,
                               char *ref_out, size_t ref_size, char *errstr, size_t errstr_size);

#endif
