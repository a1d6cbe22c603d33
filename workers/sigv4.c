/*
 * sigv4.c - AWS Signature Version 4 for one request (see sigv4.h): FIPS
 * 180-4 SHA-256, RFC 2104 HMAC, and the canonical request / string to sign
 * / signing key chain of AWS's "Create a signed AWS API request" guide.
 * Every buffer is fixed-size; inputs that do not fit are refused.
 */
#include "sigv4.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- SHA-256 ------------------------------------------------------------ */

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t fill;
} sha256_t;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_t *s, const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5],
             g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
    s->h[5] += f;
    s->h[6] += g;
    s->h[7] += h;
}

static void sha256_init(sha256_t *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof(iv));
    s->bytes = 0;
    s->fill = 0;
}

static void sha256_update(sha256_t *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->bytes += len;
    while (len > 0) {
        size_t take = 64 - s->fill < len ? 64 - s->fill : len;
        memcpy(s->block + s->fill, p, take);
        s->fill += take;
        p += take;
        len -= take;
        if (s->fill == 64) {
            sha256_block(s, s->block);
            s->fill = 0;
        }
    }
}

static void sha256_final(sha256_t *s, uint8_t out[IFQ_SHA256_LEN])
{
    uint64_t bits = s->bytes * 8;
    uint8_t pad = 0x80;
    sha256_update(s, &pad, 1);
    pad = 0;
    while (s->fill != 56)
        sha256_update(s, &pad, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void ifq_sha256(const void *data, size_t len, uint8_t out[IFQ_SHA256_LEN])
{
    sha256_t s;
    sha256_init(&s);
    sha256_update(&s, data, len);
    sha256_final(&s, out);
}

void ifq_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[IFQ_SHA256_LEN])
{
    uint8_t k[64] = {0}, pad[64], inner[IFQ_SHA256_LEN];
    if (key_len > 64)
        ifq_sha256(key, key_len, k);
    else
        memcpy(k, key, key_len);
    sha256_t s;
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, data, len);
    sha256_final(&s, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, inner, sizeof(inner));
    sha256_final(&s, out);
    /* The key material is a secret (or derived from one). */
    memset(k, 0, sizeof(k));
    memset(pad, 0, sizeof(pad));
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
