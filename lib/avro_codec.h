/*
 * avro_codec.h - Avro binary encoding of inferq requests and results.
 *
 * The Avro records mirror the JSON wire contract field for field (see
 * docs/wire-contract.md and schemas/{request,result}.avsc); free-form JSON parts (`body`,
 * `prompt`, the result's `inferq` object) travel as JSON strings. In memory,
 * the rest of inferq works on jansson objects, so this module only converts
 * between Avro bytes and the same json_t a JSON message would have produced.
 *
 * Framing on the wire, detected per message by the first bytes:
 *   - Avro single-object encoding: 0xC3 0x01, the 8-byte little-endian
 *     CRC-64-AVRO fingerprint of the writer schema's canonical form, then
 *     the Avro binary datum. This is what inferq writes.
 *   - Confluent wire framing: 0x00, a 4-byte big-endian schema id, then the
 *     datum. Accepted when the id was registered with ifq_avro_set_confluent_id().
 */
#ifndef IFQ_AVRO_CODEC_H
#define IFQ_AVRO_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ifq_avro ifq_avro_t;

typedef enum { IFQ_AVRO_REQUEST = 0, IFQ_AVRO_RESULT = 1 } ifq_avro_kind_t;

/* Parses the built-in schemas. Returns NULL and fills errstr on failure.
 * The codec is immutable after creation apart from set_confluent_id and may
 * then be shared by threads that each call decode/encode. */
ifq_avro_t *ifq_avro_new(char *errstr, size_t errstr_size);
void ifq_avro_destroy(ifq_avro_t *codec); /* NULL is a no-op */

/* Accepts Confluent-framed messages carrying this schema id as `kind`
 * (one id per kind; a new call replaces it, -1 removes it). The writer schema
 * behind the id must be exactly the built-in one. Atomic: safe while other
 * threads decode. */
void ifq_avro_set_confluent_id(ifq_avro_t *codec, ifq_avro_kind_t kind, int32_t id);

/* True when buf starts like an Avro message of either framing. */
int ifq_avro_is_framed(const void *buf, size_t len);

/* Decodes a framed Avro message of `kind` into a new JSON object (caller
 * owns, json_decref) shaped exactly like the JSON encoding: JSON-text fields
 * (body, prompt, response.body, inferq) parsed back into objects, a request's
 * null optional fields left out, a result's response/error kept as JSON null.
 * On failure returns NULL and writes a human-readable reason (e.g. "unknown
 * schema fingerprint 0x..", "truncated datum (field 'body', byte 43)",
 * "body is not valid JSON: ...") to errstr. Never reads past len and never
 * sizes an allocation from a length prefix, so memory grows only with len;
 * safe on arbitrary bytes. */
json_t *ifq_avro_decode(ifq_avro_t *codec, ifq_avro_kind_t kind, const void *buf, size_t len,
                        char *errstr, size_t errstr_size);

/* Encodes a JSON object of `kind` into single-object-encoded Avro bytes;
 * JSON-text fields are written compactly in the object's key order, an
 * absent request method as "POST". On success *out is a malloc'd buffer the
 * caller frees, *out_len its size. Returns 0 on success, -1 and errstr on
 * failure (missing required field, wrong type, a field the schema does not
 * have, a NUL byte in a string); *out is then NULL. obj is not modified. */
int ifq_avro_encode(ifq_avro_t *codec, ifq_avro_kind_t kind, const json_t *obj, void **out,
                    size_t *out_len, char *errstr, size_t errstr_size);

#endif
