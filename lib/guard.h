/*
 * guard.h - the guardrail engine: PII, secrets and prompt-injection
 * detection over OpenAI request and response bodies, with per-policy
 * actions (block, redact, mask, hash, flag). Used by the broker on input and
 * by workers on output; `inferq guard scan` runs it locally.
 *
 * Life cycle: ifq_guard_new() compiles every pattern once (PCRE2 + JIT) from
 * the config's `guardrails` section; the engine and its policies are then
 * immutable and may be shared by any number of threads, each scan call
 * using only its own stack and a per-call match block. See
 * docs/guardrails.md for the detectors, the configuration and the figures.
 *
 * Findings never contain matched text: only detector, entity, action,
 * location, character spans and scores, so they may go into results, logs,
 * traces and metrics.
 */
#ifndef IFQ_GUARD_H
#define IFQ_GUARD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "config.h"
#include "envelope.h"

typedef struct ifq_guard ifq_guard_t;
typedef struct ifq_guard_policy ifq_guard_policy_t;

/* Which way the text flows: requests (input) or model answers (output).
 * A policy may configure different detectors for each. */
typedef enum { IFQ_GUARD_INPUT = 0, IFQ_GUARD_OUTPUT = 1 } ifq_guard_dir_t;

/* The outcome of one scan. Fill with ifq_guard_verdict_init() (or zero it)
 * before a scan; release with ifq_guard_verdict_clear(). */
typedef struct {
    json_t *findings;       /* array of finding objects; owned by the verdict */
    int blocked;            /* 1: some finding's action is "block" */
    char blocked_by[256];   /* "secrets/OPENAI_API_KEY,injection/PROMPT_INJECTION" */
    int modified;           /* 1: a redact/mask/hash changed the body (or text) */
    int incomplete;         /* 1: a limit cut the scan short (see the "limits" findings) */
    double injection_score; /* highest PROMPT_INJECTION score seen, -1 if not evaluated */
    int64_t elapsed_us;
} ifq_guard_verdict_t;

void ifq_guard_verdict_init(ifq_guard_verdict_t *v);
/* Frees the findings and resets the verdict; NULL is a no-op. */
void ifq_guard_verdict_clear(ifq_guard_verdict_t *v);

/* Builds the engine from a `guardrails` section (may be NULL: only the
 * built-in default policy). Every pattern is compiled here; a bad pattern,
 * unknown key, missing HMAC key or unreadable model file is an error
 * naming it ("guardrails.policies.strict.deny[2]: missing ) at offset 7").
 * The section is only read during the call. Returns NULL with errstr
 * filled on error; caller owns the result. */
ifq_guard_t *ifq_guard_new(const json_t *guardrails, char *errstr, size_t errstr_size);
/* Same from a loaded config (its `guardrails` section, if any). */
ifq_guard_t *ifq_guard_from_config(const ifq_config_t *cfg, char *errstr, size_t errstr_size);
void ifq_guard_destroy(ifq_guard_t *g); /* NULL is a no-op */

/* A policy by name; NULL name means "default" (the configured one, or the
 * built-in). Returns NULL for an unknown name. Borrowed from g: valid until
 * ifq_guard_destroy(g). */
const ifq_guard_policy_t *ifq_guard_policy(const ifq_guard_t *g, const char *name);
/* The policy's name (borrowed from the policy). */
const char *ifq_guard_policy_name(const ifq_guard_policy_t *p);
/* Number of policies and the i-th name (for listing; borrowed). */
size_t ifq_guard_policy_count(const ifq_guard_t *g);
const char *ifq_guard_policy_at(const ifq_guard_t *g, size_t i);

/* Scans an OpenAI request body per the policy's input detectors and message
 * scope: chat messages (string content and array content parts of type
 * "text"), completions `prompt` (string or array of strings), embeddings
 * `input` (string or array of strings). Redact/mask/hash are applied IN
 * PLACE to body's strings (body stays owned by the caller). Each finding is
 * {"detector","entity","action","count","score","spans":[[start,end],...],
 *  "message":i[,"part":j]} with character (code point) offsets into the
 * original string. Returns IFQ_OK (check out->blocked), IFQ_ERR_INVALID when
 * body is not an object, IFQ_ERR_NOMEM. out must have been initialised;
 * previous findings in it are replaced. */
int ifq_guard_scan_request(const ifq_guard_policy_t *p, json_t *body, ifq_url_kind_t kind,
                           ifq_guard_verdict_t *out);

/* Same for a provider response body with the policy's output detectors:
 * choices[].message.content (string or parts), choices[].message.tool_calls
 * [].function.arguments, choices[].text. Findings carry "choice":i instead
 * of "message". Embeddings responses carry no text and pass unchanged. */
int ifq_guard_scan_response(const ifq_guard_policy_t *p, json_t *body, ifq_url_kind_t kind,
                            ifq_guard_verdict_t *out);

/* Scans plain text (any bytes; invalid UTF-8 is tolerated) in direction
 * dir. When a transform applied, *out_text is a new NUL-terminated buffer
 * (caller frees) and *out_len its length; otherwise *out_text is NULL.
 * out_text may be NULL to only detect. Findings have no "message". */
int ifq_guard_scan_text(const ifq_guard_policy_t *p, ifq_guard_dir_t dir, const char *text,
                        size_t len, char **out_text, size_t *out_len, ifq_guard_verdict_t *out);

/* Names of every built-in entity (for docs, CLI and tests): NULL-terminated
 * static array. */
const char *const *ifq_guard_entity_names(void);

#endif
