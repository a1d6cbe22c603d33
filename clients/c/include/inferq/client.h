/*
 * inferq/client.h - the inferq C client library.
 *
 * Sends OpenAI Batch API requests to an inferq gateway over Kafka and hands
 * back their results, correlated by custom_id. One client owns one Kafka
 * producer (requests), one Kafka consumer of its reply topic and one
 * background thread that serves both; any number of threads may submit and
 * await on the same client. The wire format is docs/wire-contract.md.
 *
 *   inferq_config_t *cfg = inferq_config_new();
 *   inferq_config_set(cfg, "bootstrap.servers", "localhost:9092", NULL, 0);
 *   inferq_client_t *c = inferq_client_new(cfg, errstr, sizeof(errstr));
 *   inferq_config_destroy(cfg);
 *   inferq_request_t *rq = inferq_request_new("req-1");
 *   inferq_request_set_model(rq, "chat-default");
 *   inferq_request_add_message(rq, "user", "Hi");
 *   inferq_submit(c, rq, NULL, NULL);
 *   inferq_request_destroy(rq);
 *   inferq_result_t *res;
 *   if (inferq_await(c, "req-1", 60000, &res) == INFERQ_OK) { ...; inferq_result_free(res); }
 *   inferq_client_destroy(c);
 *
 * Conventions: every type is opaque; every *_new / *_destroy pair accepts
 * NULL in *_destroy; functions that can fail return an inferq_err_t (0 or a
 * negative code, see inferq_strerror()); setup calls also fill a caller's
 * errstr buffer (may be NULL when errstr_size is 0). Strings passed in are
 * copied unless a comment says otherwise; strings returned are borrowed from
 * the object they came from and live as long as it does.
 */
#ifndef INFERQ_CLIENT_H
#define INFERQ_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define INFERQ_API __attribute__((visibility("default")))
#else
#define INFERQ_API
#endif

typedef enum {
    INFERQ_OK = 0,
    INFERQ_ERR_INVALID = -1,   /* a bad argument, key, value or request */
    INFERQ_ERR_NOMEM = -2,     /* out of memory */
    INFERQ_ERR_KAFKA = -3,     /* Kafka refused or failed (message in errstr / the result) */
    INFERQ_ERR_TIMEOUT = -4,   /* no result (or no queue space) within the timeout */
    INFERQ_ERR_DUPLICATE = -5, /* this custom_id is already pending on this client */
    INFERQ_ERR_NOTFOUND = -6,  /* no pending request with this custom_id to await */
    INFERQ_ERR_FULL = -7,      /* max.pending requests are already pending */
    INFERQ_ERR_CLOSED = -8,    /* the client is being destroyed */
    INFERQ_ERR_TOOBIG = -9,    /* the encoded request exceeds kafka.message.max.bytes */
} inferq_err_t;

/* A static English sentence for an inferq_err_t. */
INFERQ_API const char *inferq_strerror(int err);

/* Library version, "MAJOR.MINOR.PATCH" (static). */
INFERQ_API const char *inferq_version(void);

/* ---- configuration ------------------------------------------------------ */

typedef struct inferq_config inferq_config_t;

/* A new config with the defaults listed below (caller owns). */
INFERQ_API inferq_config_t *inferq_config_new(void);
INFERQ_API void inferq_config_destroy(inferq_config_t *cfg);

/*
 * Sets one key; a later call replaces an earlier one. Returns INFERQ_OK, or
 * INFERQ_ERR_INVALID with a reason in errstr for an unknown key or a bad
 * value. Keys:
 *
 *   bootstrap.servers   Kafka brokers, "host:port[,host:port]" (required)
 *   encoding            "json" (default) or "avro" (single-object encoding)
 *   topic.prefix        inferq's topic prefix (default "inferq")
 *   requests.topic      where requests go (default "<prefix>.requests";
 *                       a team topic "<prefix>.requests.<team>" also works)
 *   reply.topic         a shared reply topic to read results from, e.g.
 *                       "inferq.replies"; results for custom_ids this
 *                       client did not submit are skipped. Unset (default):
 *                       a private topic "<prefix>.replies.c<16 hex>" is
 *                       created by inferq_client_new() and deleted by
 *                       inferq_client_destroy().
 *   reply.delete        "true" (default) / "false": delete the private
 *                       reply topic on destroy
 *   reply.partitions    partitions of the private reply topic (default 1)
 *   max.pending         requests submitted and not yet handed back, per
 *                       client (default 100000); inferq_submit() returns
 *                       INFERQ_ERR_FULL beyond it
 *   submit.timeout.ms   how long inferq_submit() may wait for space in the
 *                       producer queue (default 30000)
 *   setup.timeout.ms    Kafka timeout of inferq_client_new() (default 30000)
 *   kafka.<property>    any librdkafka property, passed to the producer and
 *                       the consumer unchanged: kafka.security.protocol,
 *                       kafka.sasl.mechanism, kafka.sasl.username,
 *                       kafka.sasl.password, kafka.ssl.ca.location, ...
 *                       (checked by librdkafka in inferq_client_new()).
 *                       Values are never logged or put in errstr.
 *   kafka.producer.<p>, kafka.consumer.<p>
 *                       a librdkafka property for only the producer (e.g.
 *                       kafka.producer.linger.ms) or only the consumer
 */
INFERQ_API int inferq_config_set(inferq_config_t *cfg, const char *key, const char *value,
                                 char *errstr, size_t errstr_size);

/* ---- requests ----------------------------------------------------------- */

typedef struct inferq_request inferq_request_t;

typedef enum {
    INFERQ_PRIORITY_NORMAL = 0,
    INFERQ_PRIORITY_HIGH = 1,
    INFERQ_PRIORITY_LOW = 2,
} inferq_priority_t;

/* A new chat request (url "/v1/chat/completions", empty body) with this
 * custom_id (1..512 bytes of UTF-8). Returns NULL for a bad custom_id or no
 * memory. Caller owns; inferq_request_destroy(). */
INFERQ_API inferq_request_t *inferq_request_new(const char *custom_id);

/* Parses one line of an OpenAI batch input file (a JSON object with at least
 * custom_id; every contract field of docs/wire-contract.md 2.1 is kept).
 * Returns NULL with a reason in errstr when it is not such a line. */
INFERQ_API inferq_request_t *inferq_request_from_json(const char *json, size_t len, char *errstr,
                                                      size_t errstr_size);

/* Decodes a request message as it travels on Kafka, JSON or Avro (detected
 * from the first bytes as in docs/wire-contract.md 6.1). NULL and errstr on
 * failure. Safe on arbitrary bytes. */
INFERQ_API inferq_request_t *inferq_request_from_bytes(const void *buf, size_t len, char *errstr,
                                                       size_t errstr_size);

INFERQ_API void inferq_request_destroy(inferq_request_t *req);

/* Borrowed from req. */
INFERQ_API const char *inferq_request_custom_id(const inferq_request_t *req);

/* The builder. Each returns INFERQ_OK or INFERQ_ERR_INVALID (bad value, e.g.
 * a string with invalid UTF-8 or a JSON text that is not what is asked). */
INFERQ_API int inferq_request_set_url(inferq_request_t *req, const char *url);
INFERQ_API int inferq_request_set_model(inferq_request_t *req, const char *model);
/* Appends {"role": role, "content": content} to body.messages. */
INFERQ_API int inferq_request_add_message(inferq_request_t *req, const char *role,
                                          const char *content);
/* body[key] = the JSON value in json_value, e.g. ("max_tokens", "64") or
 * ("input", "[\"a\",\"b\"]"). */
INFERQ_API int inferq_request_set_param(inferq_request_t *req, const char *key,
                                        const char *json_value);
/* Replaces the whole body with a JSON object text (model included). */
INFERQ_API int inferq_request_set_body_json(inferq_request_t *req, const char *json_object);
/* metadata[key] = value (at most 64 keys of 64 bytes, values of 512 bytes). */
INFERQ_API int inferq_request_set_metadata(inferq_request_t *req, const char *key,
                                           const char *value);
INFERQ_API int inferq_request_set_priority(inferq_request_t *req, inferq_priority_t priority);
/* Epoch milliseconds after which the request ends as "expired"; 0 clears. */
INFERQ_API int inferq_request_set_deadline_ms(inferq_request_t *req, int64_t deadline_ms);
/* A stored prompt template instead of messages: a JSON object text such as
 * {"id":"summarize","label":"production","variables":{...}}. */
INFERQ_API int inferq_request_set_prompt_json(inferq_request_t *req, const char *json_object);
/* reply_to. A client always overwrites it with its own reply topic on
 * submit; this is for building messages with inferq_request_encode(). */
INFERQ_API int inferq_request_set_reply_to(inferq_request_t *req, const char *topic);

typedef enum { INFERQ_ENCODING_JSON = 0, INFERQ_ENCODING_AVRO = 1 } inferq_encoding_t;

/* The message bytes for req: compact JSON, or Avro single-object encoding
 * byte-identical to schemas/vectors. *out is malloc'd, the caller free()s
 * it. Returns INFERQ_OK, or an error with errstr (e.g. Avro cannot carry a
 * field outside the contract). */
INFERQ_API int inferq_request_encode(const inferq_request_t *req, inferq_encoding_t encoding,
                                     void **out, size_t *out_len, char *errstr, size_t errstr_size);

/* The request as a compact JSON text (caller free()s), or NULL. */
INFERQ_API char *inferq_request_to_json(const inferq_request_t *req);

/* ---- results ------------------------------------------------------------ */

typedef struct inferq_result inferq_result_t;

/* Decodes a result message (JSON or Avro), e.g. read from a reply topic
 * yourself. NULL and errstr when it is not a result. Caller owns. */
INFERQ_API inferq_result_t *inferq_result_from_bytes(const void *buf, size_t len, char *errstr,
                                                     size_t errstr_size);
INFERQ_API void inferq_result_free(inferq_result_t *res);

/* All strings below are borrowed from res. */
INFERQ_API const char *inferq_result_custom_id(const inferq_result_t *res);
/* inferq's request id "ifq_..." ("" for a result made by the client itself). */
INFERQ_API const char *inferq_result_id(const inferq_result_t *res);
/* "succeeded", "failed", "rejected" or "expired". */
INFERQ_API const char *inferq_result_status(const inferq_result_t *res);
/* 1 when the status is "succeeded". */
INFERQ_API int inferq_result_ok(const inferq_result_t *res);
/* error.code / error.message, NULL on success. A request Kafka could not
 * deliver comes back from the client itself as status "failed" with code
 * "delivery_failed". */
INFERQ_API const char *inferq_result_error_code(const inferq_result_t *res);
INFERQ_API const char *inferq_result_error_message(const inferq_result_t *res);
/* response.status_code, 0 when there is no response. */
INFERQ_API int inferq_result_http_status(const inferq_result_t *res);
/* response.body as compact JSON text, NULL when there is no response. */
INFERQ_API const char *inferq_result_body_json(const inferq_result_t *res);
/* The first answer's text: choices[0].message.content (chat) or
 * choices[0].text (completions); NULL when there is none. */
INFERQ_API const char *inferq_result_content(const inferq_result_t *res);
/* inferq.deployment, NULL when none was chosen. */
INFERQ_API const char *inferq_result_deployment(const inferq_result_t *res);
/* inferq.usage; any pointer may be NULL. Absent counts are 0. */
INFERQ_API void inferq_result_usage(const inferq_result_t *res, int64_t *prompt_tokens,
                                    int64_t *completion_tokens, int64_t *total_tokens);
/* inferq.cost_usd, 0.0 when absent. */
INFERQ_API double inferq_result_cost_usd(const inferq_result_t *res);
/* The whole result as a compact JSON line (as in an OpenAI output file). */
INFERQ_API const char *inferq_result_json(const inferq_result_t *res);

/* ---- the client --------------------------------------------------------- */

typedef struct inferq_client inferq_client_t;

/* Connects: checks the config, creates the producer and the consumer, creates
 * the private reply topic (or finds the shared one) and starts reading it
 * from its current end, so that no result of a later submit can be missed.
 * cfg is only read (the caller still owns it and may destroy it right away).
 * Returns NULL with a reason in errstr. */
INFERQ_API inferq_client_t *inferq_client_new(const inferq_config_t *cfg, char *errstr,
                                              size_t errstr_size);

/* Waits up to flush_timeout_ms for queued requests to be delivered (their
 * delivery callbacks run), stops the background thread, wakes every thread
 * still in inferq_await() with INFERQ_ERR_CLOSED and waits for them to
 * leave, frees every result nobody collected, and deletes a private reply
 * topic. No other call on the client may start once this is called. */
INFERQ_API void inferq_client_destroy(inferq_client_t *client, int flush_timeout_ms);

/* The topic this client reads results from (borrowed). */
INFERQ_API const char *inferq_client_reply_topic(const inferq_client_t *client);

/* Number of submitted requests whose result has not been handed back yet. */
INFERQ_API size_t inferq_client_pending(inferq_client_t *client);

/*
 * Called once per submitted request when Kafka has stored it (err ==
 * INFERQ_OK) or given up (err == INFERQ_ERR_KAFKA, errmsg says why; the
 * request's result is then a "delivery_failed" one). custom_id and errmsg are
 * borrowed for the call. Runs on the client's delivery thread (or inside
 * inferq_client_destroy() while it flushes).
 */
typedef void (*inferq_delivery_cb)(const char *custom_id, int err, const char *errmsg,
                                   void *opaque);

/*
 * Called with each result of a request submitted while this callback was set.
 * The callback owns res and must inferq_result_free() it (possibly later, on
 * another thread). Runs on a background thread of the client (the reply
 * thread; the delivery thread for "delivery_failed" results): keep it short.
 * It may call inferq_submit(), never inferq_await() (the reply thread would
 * wait for itself).
 */
typedef void (*inferq_result_cb)(inferq_result_t *res, void *opaque);

/* Sets (or with cb NULL clears) the result callback. Requests submitted while
 * a callback is set deliver their results to it; the others keep theirs for
 * inferq_await(). Thread-safe. */
INFERQ_API void inferq_on_result(inferq_client_t *client, inferq_result_cb cb, void *opaque);

/*
 * Sends req asynchronously; req is only read (the caller still owns it and
 * may destroy it right away). reply_to is set to the client's reply topic;
 * the Kafka key is the custom_id. Blocks only while the producer queue is
 * full, up to submit.timeout.ms (inside a delivery callback it does not
 * wait: INFERQ_ERR_FULL). Returns INFERQ_OK (then on_delivery, when not
 * NULL, is called exactly once, with opaque, and exactly one result follows:
 * the gateway's, or a "delivery_failed" one), or an error and neither
 * callback is ever called for it: INFERQ_ERR_DUPLICATE (custom_id pending),
 * INFERQ_ERR_FULL, INFERQ_ERR_TIMEOUT, INFERQ_ERR_INVALID (cannot be
 * encoded, e.g. a field Avro cannot carry), INFERQ_ERR_TOOBIG,
 * INFERQ_ERR_KAFKA, INFERQ_ERR_CLOSED. Thread-safe.
 */
INFERQ_API int inferq_submit(inferq_client_t *client, const inferq_request_t *req,
                             inferq_delivery_cb on_delivery, void *opaque);

/* Submits one line of an OpenAI batch file as it is (see
 * inferq_request_from_json); errors as inferq_submit, INFERQ_ERR_INVALID
 * with the reason in errstr for a line that is not a request. */
INFERQ_API int inferq_submit_json(inferq_client_t *client, const char *line, size_t len,
                                  inferq_delivery_cb on_delivery, void *opaque, char *errstr,
                                  size_t errstr_size);

/*
 * Waits up to timeout_ms (-1: forever) for the result of a request submitted
 * without a result callback. On INFERQ_OK *result is set (caller owns) and
 * the custom_id is free for reuse. INFERQ_ERR_TIMEOUT: the request stays
 * pending and may be awaited again (or dropped with inferq_forget()).
 * INFERQ_ERR_NOTFOUND: nothing pending under that custom_id (or it belongs
 * to the result callback). INFERQ_ERR_CLOSED: the client is being destroyed.
 * Thread-safe; each custom_id should be awaited by one thread at a time
 * (a second one gets the result only if the first gave up).
 */
INFERQ_API int inferq_await(inferq_client_t *client, const char *custom_id, int timeout_ms,
                            inferq_result_t **result);

/* Stops waiting for custom_id: its result, already here or arriving later,
 * is dropped. INFERQ_OK or INFERQ_ERR_NOTFOUND. */
INFERQ_API int inferq_forget(inferq_client_t *client, const char *custom_id);

#ifdef __cplusplus
}
#endif

#endif
