/*
 * sigv4.h - AWS Signature Version 4 (header form) for one HTTP request, with
 * the SHA-256 and HMAC-SHA256 it needs.
 *
 * Why not libcurl's CURLOPT_AWS_SIGV4: the libcurl of Debian 12 (7.88) signs
 * the request path as written, while AWS signs the path URI-encoded once
 * more (curl fixed that in 8.9.0), so every Bedrock model id with a ':'
 * ("anthropic.claude-3-5-sonnet-20240620-v1:0") fails with "signature does
 * not match"; and it signs header lines like "Expect:" that only remove a
 * header (fixed in 8.3.0), which the worker sends on every request. Signing
 * here works with any libcurl, is checked against AWS's published test
 * vectors, and keeps the secret key out of libcurl altogether.
 */
#ifndef IFQ_SIGV4_H
#define IFQ_SIGV4_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;  /* any case; lowercased for signing */
    const char *value; /* trimmed for signing */
} ifq_sigv4_header_t;

#define IFQ_SHA256_LEN 32

void ifq_sha256(const void *data, size_t len, uint8_t out[IFQ_SHA256_LEN]);
void ifq_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[IFQ_SHA256_LEN]);

/* "YYYYMMDDTHHMMSSZ" for epoch seconds (UTC). */
void ifq_sigv4_date(int64_t epoch_s, char out[17]);

/*
 * Computes the Authorization header value
 * "AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request,
 *  SignedHeaders=a;b;c, Signature=hex" for a request.
 *
 * path is the request path exactly as sent (already percent-encoded; it is
 * encoded once more for the canonical request, as AWS does for every
 * service but S3). query must be "" (no query string). headers are the
 * headers to sign, which must include host and x-amz-date (amz_date); all
 * of them are signed. Returns 0, or -1 when an input is out of bounds (path
 * over 2 KB, more than 16 headers, out too small).
 */
int ifq_sigv4_authorization(const char *method, const char *path, const char *query,
                            const ifq_sigv4_header_t *headers, size_t n_headers, const void *body,
                            size_t body_len, const char *region, const char *service,
                            const char *access_key, const char *secret_key, const char *amz_date,
                            char *out, size_t out_size);

#endif
