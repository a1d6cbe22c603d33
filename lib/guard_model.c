/*
 * guard_model.c - the prompt-injection model: logistic regression over
 * hashed character n-grams, trained by tools/guard_train.py. The feature
 * extraction here and in the script must agree byte for byte:
 *
 *   - each byte maps to a code: letters (folded) 1..26, digits 27, any
 *     whitespace or control byte 28 (runs collapse to one), the 31 ASCII
 *     punctuation characters 29..59, a UTF-8 lead byte (or any byte >= 0xC0)
 *     60; UTF-8 continuation bytes are skipped. The text is wrapped in one
 *     space code on each side.
 *   - g = ((g << 6) | code) & (2^30 - 1); after each code, for every n in
 *     [n_min, n_max] with at least n codes seen, the n-gram g & (2^(6n) - 1)
 *     is hashed: idx = ((gram * 0x9E3779B97F4A7C15 + n * 0xC2B2AE3D27D4EB4F)
 *     mod 2^64) >> (64 - hash_bits).
 *   - z = bias + scale * sum(w[idx]) / sqrt(count); p = 1 / (1 + e^-z).
 *
 * Blob layout (little-endian): "IFQNGM1\0", u32 hash_bits, u32 n_min,
 * u32 n_max, u32 max_bytes, f32 bias, f32 scale, then 2^hash_bits int8
 * weights.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard_int.h"

static const char punct[] = ".,!?'\":;-()[]{}<>/\\|@#$%&*+=_~`^";

static uint8_t codes[256];
static pthread_once_t codes_once = PTHREAD_ONCE_INIT;

static void codes_build(void)
{
    uint8_t c[256];
    for (int b = 0; b < 256; b++) {
        uint8_t v = 28;
        if (b >= 'a' && b <= 'z')
            v = (uint8_t)(b - 'a' + 1);
        else if (b >= 'A' && b <= 'Z')
            v = (uint8_t)(b - 'A' + 1);
        else if (b >= '0' && b <= '9')
            v = 27;
        else if (b >= 0xC0)
            v = 60;
        else if (b >= 0x80)
            v = 0; /* continuation: skipped */
        else if (b > 32 && b < 127) {
            const char *p = strchr(punct, b);
            v = p ? (uint8_t)(29 + (p - punct)) : 28;
        }
        c[b] = v;
    }
    memcpy(codes, c, sizeof(codes));
}

static void codes_init(void)
{
    pthread_once(&codes_once, codes_build);
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float rdf32(const unsigned char *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

int ifq_gmodel_load(ifq_gmodel_t *m, const unsigned char *buf, size_t len, char *errstr,
                    size_t errstr_size)
{
    memset(m, 0, sizeof(*m));
    codes_init();
    if (len < 32 || memcmp(buf, "IFQNGM1", 8) != 0) {
        ifq_fmt(errstr, errstr_size, "not an inferq n-gram model (bad magic)");
        return -1;
    }
    m->hash_bits = rd32(buf + 8);
    m->n_min = rd32(buf + 12);
    m->n_max = rd32(buf + 16);
    m->max_bytes = rd32(buf + 20);
    m->bias = rdf32(buf + 24);
    m->scale = rdf32(buf + 28);
    if (m->hash_bits < 8 || m->hash_bits > 24 || m->n_min < 1 || m->n_max > 5 ||
        m->n_min > m->n_max || !isfinite(m->bias) || !isfinite(m->scale) || m->max_bytes == 0) {
        ifq_fmt(errstr, errstr_size, "model header out of range");
        return -1;
    }
    size_t nw = (size_t)1 << m->hash_bits;
    if (len != 32 + nw) {
        ifq_fmt(errstr, errstr_size, "model size %zu, expected %zu", len, 32 + nw);
        return -1;
    }
    m->w = malloc(nw);
    if (!m->w) {
        ifq_fmt(errstr, errstr_size, "out of memory");
        return -1;
    }
    memcpy(m->w, buf + 32, nw);
    return 0;
}

int ifq_gmodel_load_file(ifq_gmodel_t *m, const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ifq_fmt(errstr, errstr_size, "cannot open model %s", path);
        return -1;
    }
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap > ((size_t)1 << 25)) {
                free(buf);
                fclose(f);
                ifq_fmt(errstr, errstr_size, "model %s is too large", path);
                return -1;
            }
            cap = cap ? cap * 2 : 65536;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                ifq_fmt(errstr, errstr_size, "out of memory");
                return -1;
            }
            buf = nb;
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        if (k == 0)
            break;
        len += k;
    }
    fclose(f);
    char sub[200];
    int rc = ifq_gmodel_load(m, buf, len, sub, sizeof(sub));
    free(buf);
    if (rc)
        ifq_fmt(errstr, errstr_size, "model %s: %s", path, sub);
    return rc;
}

void ifq_gmodel_free(ifq_gmodel_t *m)
{
    if (!m)
        return;
    free(m->w);
    m->w = NULL;
}

const uint8_t *ifq_gmodel_codes(void)
{
    codes_init();
    return codes;
}

double ifq_gmodel_prob(const ifq_gmodel_t *m, int64_t sum, uint64_t count)
{
    if (!count)
        return 0;
    double z = m->bias + m->scale * (double)sum / sqrt((double)count);
    return 1.0 / (1.0 + exp(-z));
}

double ifq_gmodel_score(const ifq_gmodel_t *m, const char *text, size_t len)
{
    if (!m->w)
        return 0;
    codes_init();
    if (len > m->max_bytes)
        len = m->max_bytes;
    const unsigned char *p = (const unsigned char *)text;
    const int8_t *w = m->w;
    const unsigned shift = 64 - m->hash_bits;
    const uint32_t nmin = m->n_min, nmax = m->n_max;
    uint64_t g = 0;
    uint32_t seen = 0;
    int64_t sum = 0;
    uint64_t count = 0;
    uint8_t prev = 0;
    for (size_t i = 0; i <= len + 1; i++) {
        uint8_t c;
        if (i == 0 || i > len)
            c = 28;
        else
            c = codes[p[i - 1]];
        if (c == 0 || (c == 28 && prev == 28))
            continue;
        prev = c;
        g = ((g << 6) | c) & 0x3FFFFFFFu;
        seen++;
        for (uint32_t n = nmin; n <= nmax && n <= seen; n++) {
            uint64_t gram = g & (((uint64_t)1 << (6 * n)) - 1);
            uint64_t h = gram * 0x9E3779B97F4A7C15ull + (uint64_t)n * 0xC2B2AE3D27D4EB4Full;
            sum += w[h >> shift];
            count++;
        }
    }
    return ifq_gmodel_prob(m, sum, count);
}
