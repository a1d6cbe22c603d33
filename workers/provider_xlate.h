/*
 * provider_xlate.h - helpers shared by the adapters that translate the
 * OpenAI body into another provider's dialect (anthropic, gemini, bedrock,
 * and azure's URL/header assembly) and the provider's answer back into an
 * OpenAI-shaped body: bounded URL/header/body assembly, request checks,
 * message/content/tool conversion, OpenAI-shaped responses and error
 * classification. Nothing here does I/O or keeps state beyond an id counter.
 *
 * Conventions: functions that can reject a request fill an
 * ifq_upstream_err_t and return IFQ_ERR_INVALID (or NULL); err->type is
 * "unsupported" for a request the provider cannot express and
 * "invalid_request" for a body that is malformed; both are not retryable.
 */
#ifndef IFQ_PROVIDER_XLATE_H
#define IFQ_PROVIDER_XLATE_H

#include <jansson.h>
#include <stddef.h>

#include "provider.h"

/* max_tokens sent to providers that require one (Anthropic) when the request
 * has none. */
#define IFQ_XLATE_DEFAULT_MAX_TOKENS 4096

/* Upper bound of any text accumulated while translating a response. */
#define IFQ_XLATE_MAX_TEXT (16u * 1024u * 1024u)

/* ---- errors ---------------------------------------------------------- */

/* err = {retryable 0, type "unsupported", message}; returns IFQ_ERR_INVALID. */
int ifq_xlate_unsupported(ifq_upstream_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* err = {retryable 0, type "invalid_request", message}; returns IFQ_ERR_INVALID. */
int ifq_xlate_invalid(ifq_upstream_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A 2xx response whose body is not what the provider documents: retryable
 * (a truncated answer usually is a transient fault), type
 * "malformed_response". what says what was wrong. */
void ifq_xlate_malformed(const ifq_deployment_t *dep, long status, size_t len, const char *what,
                         ifq_upstream_err_t *err);

/* An HTTP error answer: type "http_<status>" (or type_override when not
 * NULL, e.g. "content_filter"), message "HTTP <status> from <deployment>
 * (<ptype>): <pmsg>" bounded to fit, with secret (may be NULL) redacted. */
void ifq_xlate_http_error(const ifq_deployment_t *dep, long status, const char *type_override,
                          const char *ptype, const char *pmsg, int retryable, const char *secret,
                          ifq_upstream_err_t *err);

/* Replaces every occurrence of secret (when at least 4 bytes) in msg with
 * "[redacted]", in place, keeping msg within size. */
void ifq_xlate_redact(char *msg, size_t size, const char *secret);

/* Parses a response body; returns a new object, or NULL when the body is
 * empty or not a JSON object. */
json_t *ifq_xlate_load(const char *body, size_t len);

/* ---- request assembly ------------------------------------------------- */

/* out->url = base (without trailing slashes) + the formatted tail. */
int ifq_xlate_url(ifq_http_req_t *out, ifq_upstream_err_t *err, const char *base, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));
/* Appends one "Name: value" header line. */
int ifq_xlate_header(ifq_http_req_t *out, ifq_upstream_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Serialises j into out->body (malloc'd, caller frees) and drops the
 * reference to j in every case. */
int ifq_xlate_body(ifq_http_req_t *out, ifq_upstream_err_t *err, json_t *j);
/* Percent-encodes s as one URL path segment (RFC 3986 unreserved characters
 * are kept). Returns IFQ_OK or IFQ_ERR_TOOBIG. */
int ifq_xlate_escape(char *dst, size_t size, const char *s);

/* ---- request checks and parameters ------------------------------------ */

/* Rejects what none of the translated providers can express: "stream": true,
 * "n" > max_n, "logprobs"/"top_logprobs", audio output, and the completions
 * options echo/best_of/suffix. provider names the provider in the message. */
int ifq_xlate_check_common(const json_t *body, ifq_url_kind_t kind, const char *provider, int max_n,
                           ifq_upstream_err_t *err);

/* The conversation as OpenAI chat messages (a new reference): for chat, a
 * checked copy of body.messages; for completions, one user message holding
 * the prompt (a string or an array of one string). NULL with err filled. */
json_t *ifq_xlate_messages(const json_t *body, ifq_url_kind_t kind, const char *provider,
                           ifq_upstream_err_t *err);

/* max_completion_tokens, else max_tokens: the value; 0 when absent; -1 with
 * err filled when present but not a positive integer. */
json_int_t ifq_xlate_max_tokens(const json_t *body, ifq_upstream_err_t *err);

/* body.stop as a new array of strings ("x" becomes ["x"]); *out is NULL when
 * absent or empty. */
int ifq_xlate_stop(const json_t *body, json_t **out, ifq_upstream_err_t *err);

/* Copies body[key] to dst[dst_key] when it is a number; absent or null is
 * skipped; another type is an error. */
int ifq_xlate_number(json_t *dst, const char *dst_key, const json_t *body, const char *key,
                     ifq_upstream_err_t *err);

/* ---- content ----------------------------------------------------------- */

/* One part of a message's content, normalised. */
typedef struct {
    int is_image;
    const char *text; /* text part: borrowed, never NULL */
    size_t text_len;
    const char *url; /* image part: the image_url.url, borrowed */
} ifq_xlate_part_t;

/* Number of parts of an OpenAI content (string = one text part, null = none,
 * array = its parts); -1 with err for another type. */
int ifq_xlate_nparts(const json_t *content, ifq_upstream_err_t *err);
/* Part i of content; text and image_url parts are understood (and
 * "refusal" text), other part types are "unsupported" naming the provider. */
int ifq_xlate_part(const json_t *content, size_t i, const char *provider, ifq_xlate_part_t *part,
                   ifq_upstream_err_t *err);
/* The text of a content (string, or its text parts concatenated) as a new
 * JSON string; NULL with err when a part is not text. */
json_t *ifq_xlate_text(const json_t *content, const char *provider, const char *what,
                       ifq_upstream_err_t *err);
/* Splits "data:<mime>;base64,<data>": returns 0 with mime copied and *data
 * pointing into url, or -1 when url is not a base64 data URL. */
int ifq_xlate_data_url(const char *url, char *mime, size_t mime_size, const char **data);

/* Merges adjacent turns with the same role (role_key) by concatenating
 * their item arrays (items_key), in place: providers that require
 * alternating turns, or want all the results of parallel tool calls in one
 * turn, accept the merged form. */
void ifq_xlate_merge_turns(json_t *turns, const char *role_key, const char *items_key);

/* ---- tools --------------------------------------------------------------- */

/* Checks body.tools: *tools is NULL when absent or empty, else the borrowed
 * array whose elements are {"type":"function","function":{"name",...}}. */
int ifq_xlate_tools(const json_t *body, const char *provider, const json_t **tools,
                    ifq_upstream_err_t *err);
/* The function object of tools[i] and its fields (borrowed; description and
 * parameters may be NULL). */
void ifq_xlate_tool_fn(const json_t *tool, const char **name, const char **description,
                       const json_t **parameters);

typedef enum {
    IFQ_TC_DEFAULT = 0, /* absent: the provider's default */
    IFQ_TC_AUTO,
    IFQ_TC_NONE,
    IFQ_TC_REQUIRED,
    IFQ_TC_NAMED,
} ifq_tool_choice_t;

/* body.tool_choice; *name is set (borrowed) for IFQ_TC_NAMED. */
int ifq_xlate_tool_choice(const json_t *body, ifq_tool_choice_t *tc, const char **name,
                          ifq_upstream_err_t *err);

/* An assistant message's tool_calls[i]: id and name (borrowed) and the
 * arguments parsed into a new object ("" means {}). NULL with err when the
 * call is malformed or its arguments are not a JSON object. */
json_t *ifq_xlate_tool_call_args(const json_t *call, const char **id, const char **name,
                                 ifq_upstream_err_t *err);

/* ---- responses ---------------------------------------------------------- */

/* Growable text with the IFQ_XLATE_MAX_TEXT bound. */
typedef struct {
    char *p;
    size_t len, cap;
} ifq_xlate_buf_t;
int ifq_xlate_buf_add(ifq_xlate_buf_t *b, const char *s, size_t n);
void ifq_xlate_buf_free(ifq_xlate_buf_t *b);

/* A unique id: prefix + 24 hex digits from the clock, a process-wide
 * counter and the pid. */
void ifq_xlate_id(char *out, size_t size, const char *prefix);

/* An OpenAI tool call {"id","type":"function","function":{"name","arguments"}}
 * whose arguments are the compact JSON of input (an object; NULL = {}). */
json_t *ifq_xlate_tool_call(const char *id, const char *name, const json_t *input);

/* One choice. chat: {"index","message":{"role":"assistant","content",
 * "tool_calls"?},"logprobs":null,"finish_reason"}; content is null when text
 * is empty and there are tool calls. completions: {"text","index",
 * "logprobs":null,"finish_reason"}. tool_calls is stolen (NULL or empty =
 * none). */
json_t *ifq_xlate_choice(ifq_url_kind_t kind, size_t index, const char *text, size_t text_len,
                         json_t *tool_calls, const char *finish_reason);

/* usage {"prompt_tokens","completion_tokens","total_tokens"} plus
 * prompt_tokens_details.cached_tokens and completion_tokens_details.
 * reasoning_tokens when those are > 0. */
json_t *ifq_xlate_usage(json_int_t prompt, json_int_t completion, json_int_t cached,
                        json_int_t reasoning);

/* The whole body: chat.completion or text_completion with "created" = now.
 * choices and usage are stolen. */
json_t *ifq_xlate_response(ifq_url_kind_t kind, const char *id, const char *model, json_t *choices,
                           json_t *usage);

/* A non-negative integer member, 0 when absent or another type. */
json_int_t ifq_xlate_int(const json_t *obj, const char *key);

/* The conversation walk shared by the block-based dialects (Anthropic
 * Messages, Bedrock Converse): system and developer messages are collected
 * as texts, user/assistant/tool messages become turns of provider blocks
 * built by the dialect's callbacks, empty turns are dropped and adjacent
 * same-role turns merged. */
typedef struct {
    const char *provider; /* for error messages */
    /* Appends the blocks of a message's content; allow_images for users. */
    int (*content)(const json_t *content, json_t *blocks, int allow_images,
                   ifq_upstream_err_t *err);
    /* A tool call of the assistant (input is stolen). */
    json_t *(*tool_use)(const char *id, const char *name, json_t *input);
    /* A tool message's result (text borrowed). */
    json_t *(*tool_result)(const char *id, json_t *text);
} ifq_xlate_dialect_t;

/* Returns the turns (caller owns) and the system texts in *system (a new
 * array of strings, possibly empty), or NULL with err filled. */
json_t *ifq_xlate_turns(const ifq_xlate_dialect_t *d, const json_t *msgs, json_t **system,
                        ifq_upstream_err_t *err);

#endif
