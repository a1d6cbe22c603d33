/*
 * sigv4.c - AWS Signature Version 4 for one request (see sigv4.h): SHA-256
 * and HMAC from OpenSSL's libcrypto, and the canonical request / string to sign
 * / signing key chain of AWS's "Create a signed AWS API request" guide.
 * Every buffer is fixed-size; inputs that do not fit are refused.
 */
#include "sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- SHA-256 / HMAC (OpenSSL's libcrypto) --------------------------------- */

void ifq_sha256(const void *data, size_t len, uint8_t out[IFQ_SHA256_LEN])
{
    SHA256(data, len, out);
}

void ifq_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[IFQ_SHA256_LEN])
{
    unsigned int n = IFQ_SHA256_LEN;
    HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n);
}

/* ---- SigV4 ------------------------------------------------------------- */

static void hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void ifq_sigv4_date(int64_t epoch_s, char out[17])
{
    time_t t = (time_t)epoch_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* Appends n bytes to a bounded buffer; returns -1 on overflow. */
static int put(char *buf, size_t size, size_t *len, const char *s, size_t n)
{
    if (n >= size - *len)
        return -1;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
    return 0;
}

static int puts0(char *buf, size_t size, size_t *len, const char *s)
{
    return put(buf, size, len, s, strlen(s));
}

/* The canonical URI: every byte of the (already encoded) path that is not
 * unreserved or '/' is percent-encoded, so "%3A" becomes "%253A". */
static int canonical_uri(const char *path, char *buf, size_t size, size_t *len)
{
    static const char digits[] = "0123456789ABCDEF";
    if (!*path)
        return put(buf, size, len, "/", 1);
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
                   *p == '/';
        char enc[3] = {'%', digits[*p >> 4], digits[*p & 15]};
        if (put(buf, size, len, keep ? (const char *)p : enc, keep ? 1 : 3) < 0)
            return -1;
    }
    return 0;
}

#define SIGV4_MAX_HEADERS 16
#define SIGV4_CANON_MAX 8192

/* "name:value" lowercased name, trimmed value with inner runs of spaces
 * folded, as the canonical headers want it. */
static int canon_header(const ifq_sigv4_header_t *h, char *buf, size_t size, size_t *len)
{
    for (const char *p = h->name; *p; p++) {
        char c = (*p >= 'A' && *p <= 'Z') ? (char)(*p + 32) : *p;
        if (put(buf, size, len, &c, 1) < 0)
            return -1;
    }
    if (put(buf, size, len, ":", 1) < 0)
        return -1;
    const char *v = h->value;
    while (*v == ' ' || *v == '\t')
        v++;
    int space = 0;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = 1;
            continue;
        }
        if (space && put(buf, size, len, " ", 1) < 0)
            return -1;
        space = 0;
        if (put(buf, size, len, v, 1) < 0)
            return -1;
    }
    return put(buf, size, len, "\n", 1);
}

int ifq_sigv4_authorization(const char *method, const char *path, const char *query,
                            const ifq_sigv4_header_t *headers, size_t n_headers, const void *body,
                            size_t body_len, const char *region, const char *service,
                            const char *access_key, const char *secret_key, const char *amz_date,
                            char *out, size_t out_size)
{
    if (n_headers == 0 || n_headers > SIGV4_MAX_HEADERS || strlen(path) > 2048 ||
        (query && *query) || strlen(amz_date) != 16)
        return -1;
    /* Sort header indexes by lowercase name (insertion sort: n <= 16). */
    size_t order[SIGV4_MAX_HEADERS];
    for (size_t i = 0; i < n_headers; i++) {
        size_t j = i;
        while (j > 0 && strcasecmp(headers[order[j - 1]].name, headers[i].name) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }

    char canon[SIGV4_CANON_MAX], signed_hdrs[512];
    size_t cl = 0, sl = 0;
    canon[0] = signed_hdrs[0] = '\0';
    uint8_t digest[IFQ_SHA256_LEN];
    char body_hex[2 * IFQ_SHA256_LEN + 1];
    ifq_sha256(body ? body : "", body_len, digest);
    hex(digest, sizeof(digest), body_hex);

    if (puts0(canon, sizeof(canon), &cl, method) < 0 || put(canon, sizeof(canon), &cl, "\n", 1) ||
        canonical_uri(path, canon, sizeof(canon), &cl) < 0 ||
        put(canon, sizeof(canon), &cl, "\n\n", 2) < 0) /* empty canonical query */
        return -1;
    for (size_t i = 0; i < n_headers; i++) {
        const ifq_sigv4_header_t *h = &headers[order[i]];
        if (canon_header(h, canon, sizeof(canon), &cl) < 0)
            return -1;
        if (i > 0 && put(signed_hdrs, sizeof(signed_hdrs), &sl, ";", 1) < 0)
            return -1;
        for (const char *p = h->name; *p; p++) {
            char c = (*p >= 'A' && *p <= 'Z') ? (char)(*p + 32) : *p;
            if (put(signed_hdrs, sizeof(signed_hdrs), &sl, &c, 1) < 0)
                return -1;
        }
    }
    if (put(canon, sizeof(canon), &cl, "\n", 1) < 0 ||
        puts0(canon, sizeof(canon), &cl, signed_hdrs) < 0 ||
        put(canon, sizeof(canon), &cl, "\n", 1) < 0 ||
        puts0(canon, sizeof(canon), &cl, body_hex) < 0)
        return -1;

    char day[9];
    memcpy(day, amz_date, 8);
    day[8] = '\0';
    char scope[256];
    if (snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", day, region, service) >=
        (int)sizeof(scope))
        return -1;
    char canon_hex[2 * IFQ_SHA256_LEN + 1];
    ifq_sha256(canon, cl, digest);
    hex(digest, sizeof(digest), canon_hex);
    char sts[512];
    int n = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, canon_hex);
    if (n < 0 || (size_t)n >= sizeof(sts))
        return -1;

    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service),
     * "aws4_request") */
    char k0[300];
    if (snprintf(k0, sizeof(k0), "AWS4%s", secret_key) >= (int)sizeof(k0))
        return -1;
    uint8_t k[IFQ_SHA256_LEN];
    ifq_hmac_sha256(k0, strlen(k0), day, strlen(day), k);
    memset(k0, 0, sizeof(k0));
    ifq_hmac_sha256(k, sizeof(k), region, strlen(region), k);
    ifq_hmac_sha256(k, sizeof(k), service, strlen(service), k);
    ifq_hmac_sha256(k, sizeof(k), "aws4_request", 12, k);
    ifq_hmac_sha256(k, sizeof(k), sts, (size_t)n, digest);
    memset(k, 0, sizeof(k));
    char sig[2 * IFQ_SHA256_LEN + 1];
    hex(digest, sizeof(digest), sig);

    n = snprintf(out, out_size, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                 access_key, scope, signed_hdrs, sig);
    return n < 0 || (size_t)n >= out_size ? -1 : 0;
}
