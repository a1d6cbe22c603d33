/*
 * guard_validate.c - validators for guardrail matches: a regex finds the
 * shape, these decide whether the shape is real (checksums, issuer ranges,
 * numbering plans). See guard_validate.h. Everything here works on a
 * bounded copy on the stack; no allocation.
 */
#include "guard_validate.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <arpa/inet.h>
#include <math.h>
#include <string.h>

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}
static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_alnum(int c)
{
    return is_digit(c) || is_alpha(c);
}
static int to_upper(int c)
{
    return (c >= 'a' && c <= 'z') ? c - 32 : c;
}
static int to_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

size_t ifq_gv_digits(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (is_digit((unsigned char)s[i])) {
            if (n < cap)
                out[n] = s[i];
            n++;
        }
    }
    return n;
}

/* ---- payment cards ---- */

int ifq_gv_luhn(const char *d, size_t n)
{
    if (n == 0)
        return 0;
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int x = d[n - 1 - i] - '0';
        if (x < 0 || x > 9)
            return 0;
        if (i & 1) {
            x *= 2;
            if (x > 9)
                x -= 9;
        }
        sum += x;
    }
    return sum % 10 == 0;
}

static int prefix_num(const char *d, size_t n, size_t k)
{
    if (n < k)
        return -1;
    int v = 0;
    for (size_t i = 0; i < k; i++)
        v = v * 10 + (d[i] - '0');
    return v;
}

const char *ifq_gv_card_issuer(const char *d, size_t n)
{
    if (n < 12 || n > 19)
        return NULL;
    int p1 = prefix_num(d, n, 1), p2 = prefix_num(d, n, 2), p3 = prefix_num(d, n, 3);
    int p4 = prefix_num(d, n, 4), p6 = prefix_num(d, n, 6);
    if (p1 == 4 && (n == 13 || n == 16 || n == 19))
        return "visa";
    if (((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) && n == 16)
        return "mastercard";
    if ((p2 == 34 || p2 == 37) && n == 15)
        return "amex";
    if ((p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65 || (p6 >= 622126 && p6 <= 622925)) &&
        n >= 16)
        return "discover";
    if (p4 >= 3528 && p4 <= 3589 && n >= 16)
        return "jcb";
    if ((p4 == 1800 || p4 == 2131) && n == 15)
        return "jcb";
    if (((p3 >= 300 && p3 <= 305) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39) && n >= 14)
        return "diners";
    if (p4 >= 2200 && p4 <= 2204 && n >= 16)
        return "mir";
    if (p2 == 62 && n >= 16)
        return "unionpay";
    if ((p2 == 50 || (p2 >= 56 && p2 <= 69)) && n >= 12)
        return "maestro";
    if ((p2 == 60 || p2 == 81 || p2 == 82 || p3 == 508) && n == 16)
        return "rupay";
    return NULL;
}

int ifq_gv_card_separators_ok(const char *s, size_t len)
{
    char sep = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (is_digit((unsigned char)c))
            continue;
        if (c != ' ' && c != '-')
            return 0;
        if (sep && c != sep)
            return 0;
        sep = c;
        if (i + 1 < len && !is_digit((unsigned char)s[i + 1]))
            return 0; /* two separators in a row */
    }
    return 1;
}

/* ---- IBAN ---- */

static const struct {
    char cc[3];
    unsigned char len;
} iban_lengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
    {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
    {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
    {"GT", 28}, {"HN", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26},
    {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20},
    {"LU", 20}, {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20},
    {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24},
    {"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25},
    {"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
    {"YE", 30},
};

static int iban_country_len(int a, int b)
{
    a = to_upper(a);
    b = to_upper(b);
    for (size_t i = 0; i < sizeof(iban_lengths) / sizeof(iban_lengths[0]); i++)
        if (iban_lengths[i].cc[0] == a && iban_lengths[i].cc[1] == b)
            return iban_lengths[i].len;
    return 0;
}

int ifq_gv_iban(const char *s, size_t len)
{
    char c[40];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ')
            continue;
        if (!is_alnum(ch) || n >= sizeof(c))
            return 0;
        c[n++] = (char)to_upper(ch);
    }
    if (n < 15 || !is_alpha((unsigned char)c[0]) || !is_alpha((unsigned char)c[1]) ||
        !is_digit((unsigned char)c[2]) || !is_digit((unsigned char)c[3]))
        return 0;
    int want = iban_country_len(c[0], c[1]);
    if (want == 0 || (size_t)want != n)
        return 0;
    /* mod-97 over BBAN + country + check digits, letters as 10..35 */
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        char ch = c[(k + 4) % n];
        if (is_digit((unsigned char)ch))
            rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
        else
            rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
    }
    return rem == 1;
}

/* ---- US SSN ---- */

int ifq_gv_ssn(const char *s, size_t len)
{
    char d[16];
    char delim = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (is_digit((unsigned char)c)) {
            if (n >= 9)
                return 0;
            d[n++] = c;
        } else if (c == '-' || c == ' ' || c == '.') {
            if (delim && delim != c)
                return 0; /* mismatched delimiters */
            delim = c;
        } else {
            return 0;
        }
    }
    if (n != 9)
        return 0;
    int same = 1;
    for (size_t i = 1; i < 9; i++)
        same &= d[i] == d[0];
    if (same)
        return 0;
    int area = prefix_num(d, 9, 3);
    if (area == 0 || area == 666 || area >= 900)
        return 0;
    if (d[3] == '0' && d[4] == '0')
        return 0;
    if (memcmp(d + 5, "0000", 4) == 0)
        return 0;
    static const char *const samples[] = {"123456789", "078051120", "219099999", "98765432"};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        if (strncmp(d, samples[i], strlen(samples[i])) == 0)
            return 0;
    return 1;
}

/* ---- phone numbers ---- */

/* ITU-T E.164 country calling codes in use (1, 2 and 3 digits). */
static int country_code_len(const char *d, size_t n)
{
    if (n < 1)
        return 0;
    if (d[0] == '1' || d[0] == '7')
        return 1;
    static const char *const two[] = {
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98"};
    if (n >= 2)
        for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++)
            if (d[0] == two[i][0] && d[1] == two[i][1])
                return 2;
    if (n < 3)
        return 0;
    static const char *const three[] = {"21", "22", "23", "24", "25", "26", "29", "35",
                                        "37", "38", "42", "50", "59", "67", "68", "69",
                                        "85", "87", "88", "96", "97", "99"};
    for (size_t i = 0; i < sizeof(three) / sizeof(three[0]); i++)
        if (d[0] == three[i][0] && d[1] == three[i][1])
            return 3;
    return 0;
}

static int nanp_ok(const char *d)
{
    /* NXX-NXX-XXXX: area and exchange codes start with 2-9, and the
     * exchange is not an N11 service code. */
    if (d[0] < '2' || d[3] < '2')
        return 0;
    if (d[4] == '1' && d[5] == '1')
        return 0;
    return 1;
}

double ifq_gv_phone_score(const char *s, size_t len)
{
    char d[24];
    size_t n = 0, groups = 0, glen[16];
    size_t cur = 0;
    int plus = 0, parens = 0, depth = 0, trunk0 = 0;
    size_t i = 0;
    while (i < len && s[i] == '(') {
        parens++;
        depth++;
        i++;
    }
    if (i < len && s[i] == '+') {
        plus = 1;
        i++;
    }
    for (; i < len; i++) {
        char c = s[i];
        if (is_digit((unsigned char)c)) {
            if (n >= sizeof(d))
                return 0;
            d[n++] = c;
            cur++;
            continue;
        }
        if (cur) {
            if (groups < 16)
                glen[groups] = cur;
            groups++;
            cur = 0;
        }
        if (c == 'x' || c == 'X' || c == 'e' || c == '#')
            break; /* extension: not part of the number */
        if (c == '(') {
            /* "(0)" after a country code is the national trunk prefix: it
             * is not dialled from abroad, so it is not counted */
            if (plus && !trunk0 && i + 2 < len && s[i + 1] == '0' && s[i + 2] == ')') {
                trunk0 = 1;
                i += 2;
                continue;
            }
            if (depth)
                return 0;
            depth++;
            parens++;
        } else if (c == ')') {
            if (!depth)
                return 0;
            depth--;
        } else if (c != ' ' && c != '-' && c != '.') {
            return 0;
        }
    }
    if (cur) {
        if (groups < 16)
            glen[groups] = cur;
        groups++;
    }
    if (depth || parens > 2)
        return 0;
    if (n < 7 || n > 15)
        return 0;
    int same = 1;
    for (size_t k = 1; k < n; k++)
        same &= d[k] == d[0];
    if (same)
        return 0;
    /* Dates such as 2012-06-13: a 4-digit year group then month-like groups. */
    if (groups >= 3 && glen[0] == 4 && glen[1] == 2 && (d[0] == '1' || d[0] == '2') &&
        (d[1] == '9' || d[1] == '0') && (d[4] == '0' || d[4] == '1'))
        return 0;

    const char *e = d;
    size_t en = n;
    int intl = plus;
    if (!plus && n >= 9 && d[0] == '0' && d[1] == '0') {
        intl = 1; /* 00 international access prefix */
        e += 2;
        en -= 2;
    }
    if (intl) {
        int ccl = country_code_len(e, en);
        if (!ccl)
            return 0;
        size_t rest = en - (size_t)ccl;
        if (rest < 6 || rest > 13 || en > 15)
            return 0;
        /* A known plan with the wrong length or an impossible number is
         * still phone-shaped: it falls back to "needs context". */
        if (e[0] == '1')
            return (rest == 10 && nanp_ok(e + 1)) ? 0.75 : 0.3;
        if (ccl == 2 && e[0] == '4' && e[1] == '4') /* UK: 9-10 national digits */
            return (rest == 9 || rest == 10) ? 0.75 : 0.3;
        if (ccl == 2 && e[0] == '3' && e[1] == '3') /* FR: 9 digits */
            return rest == 9 ? 0.75 : 0.3;
        if (ccl == 2 && e[0] == '9' && e[1] == '1') /* IN: 10 digits */
            return rest == 10 ? 0.75 : 0.3;
        if (ccl == 2 && e[0] == '4' && e[1] == '9') /* DE: 6-13 digits */
            return 0.7;
        return plus ? 0.7 : 0.55;
    }
    /* NANP: (NXX) NXX-XXXX, NXX-NXX-XXXX, with an optional leading 1 */
    const char *nn = d;
    size_t nnl = n;
    if (n == 11 && d[0] == '1') {
        nn++;
        nnl--;
    }
    if (nnl == 10 && nanp_ok(nn)) {
        size_t g0 = (n == 11 && groups >= 1 && glen[0] == 1) ? 1 : 0;
        if (groups - g0 == 3 && glen[g0] == 3 && glen[g0 + 1] == 3 && glen[g0 + 2] == 4)
            return 0.7;
        if (groups == 1)
            return 0.35; /* a bare 10-digit number needs context */
    }
    if (d[0] == '0' && groups >= 2) {
        /* FR: 0X XX XX XX XX */
        if (n == 10 && groups == 5 && glen[0] == 2 && glen[1] == 2 && glen[2] == 2 &&
            glen[3] == 2 && glen[4] == 2 && d[1] != '0')
            return 0.65;
        /* UK mobiles 07xxx xxxxxx */
        if (n == 11 && d[1] == '7')
            return 0.65;
        /* UK, DE, IN and most national plans: trunk 0 + 9-11 digits */
        if (n >= 10 && n <= 12 && d[1] != '0')
            return 0.55;
    }
    /* IN mobile: [6-9]XXXX XXXXX */
    if (n == 10 && d[0] >= '6' && groups == 2 && glen[0] == 5 && glen[1] == 5)
        return 0.6;
    if (groups >= 2)
        return 0.3; /* digits in groups: a phone only with context */
    return n <= 12 ? 0.2 : 0;
}

/* ---- network addresses ---- */

int ifq_gv_ipv4(const char *s, size_t len)
{
    int parts = 0, val = 0, digits = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (digits == 0 || val > 255)
                return 0;
            parts++;
            val = 0;
            digits = 0;
            continue;
        }
        if (!is_digit((unsigned char)s[i]))
            return 0;
        if (digits == 1 && val == 0)
            return 0; /* leading zero */
        val = val * 10 + (s[i] - '0');
        if (++digits > 3)
            return 0;
    }
    return parts == 4;
}

int ifq_gv_ipv6(const char *s, size_t len)
{
    char buf[64];
    unsigned char out[16];
    if (len < 2 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (inet_pton(AF_INET6, buf, out) != 1)
        return 0;
    /* Require something address-like: at least three groups, so that
     * "a::b" in code or "::" alone are not reported. */
    int groups = 0;
    for (size_t i = 0; i < len; i++)
        if ((i == 0 || s[i - 1] == ':') && s[i] != ':')
            groups++;
    return groups >= 3;
}

/* ---- SHA-256 / HMAC (OpenSSL's libcrypto) ---- */

void ifq_gv_sha256(const void *data, size_t len, unsigned char out[32])
{
    SHA256(data, len, out);
}

void ifq_gv_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n);
}

/* ---- Bitcoin ---- */

static int base58check(const char *s, size_t len)
{
    static const char alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    unsigned char b[40] = {0}; /* big-endian number, 25 bytes used */
    const size_t size = 25;
    if (len < 26 || len > 35)
        return 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = memchr(alphabet, s[i], 58);
        if (!p || !s[i])
            return 0;
        unsigned carry = (unsigned)(p - alphabet);
        for (size_t k = size; k-- > 0;) {
            carry += 58u * b[k];
            b[k] = (unsigned char)(carry & 0xff);
            carry >>= 8;
        }
        if (carry)
            return 0; /* does not fit in 25 bytes */
    }
    /* leading '1's encode leading zero bytes */
    size_t ones = 0;
    while (ones < len && s[ones] == '1')
        ones++;
    size_t zeros = 0;
    while (zeros < size && b[zeros] == 0)
        zeros++;
    if (ones != zeros && !(ones == 1 && zeros >= 1))
        return 0;
    unsigned char ver = b[0];
    if (ver != 0x00 && ver != 0x05 && ver != 0x6f && ver != 0xc4)
        return 0;
    unsigned char h1[32], h2[32];
    ifq_gv_sha256(b, 21, h1);
    ifq_gv_sha256(h1, 32, h2);
    return memcmp(h2, b + 21, 4) == 0;
}

static uint32_t bech32_polymod(const unsigned char *v, size_t n)
{
    static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
    uint32_t chk = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t top = chk >> 25;
        chk = (chk & 0x1ffffff) << 5 ^ v[i];
        for (int k = 0; k < 5; k++)
            if ((top >> k) & 1)
                chk ^= gen[k];
    }
    return chk;
}

static int bech32_segwit(const char *s, size_t len)
{
    static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    if (len < 14 || len > 90)
        return 0;
    int lower = 0, upper = 0;
    for (size_t i = 0; i < len; i++) {
        lower |= s[i] >= 'a' && s[i] <= 'z';
        upper |= s[i] >= 'A' && s[i] <= 'Z';
    }
    if (lower && upper)
        return 0;
    if (to_lower(s[2]) != '1')
        return 0;
    char hrp0 = (char)to_lower(s[0]), hrp1 = (char)to_lower(s[1]);
    if (!((hrp0 == 'b' && hrp1 == 'c') || (hrp0 == 't' && hrp1 == 'b')))
        return 0;
    unsigned char v[100];
    size_t n = 0;
    v[n++] = (unsigned char)(hrp0 >> 5);
    v[n++] = (unsigned char)(hrp1 >> 5);
    v[n++] = 0;
    v[n++] = hrp0 & 31;
    v[n++] = hrp1 & 31;
    size_t data_start = n;
    for (size_t i = 3; i < len; i++) {
        const char *p = memchr(charset, to_lower(s[i]), 32);
        if (!p || !s[i])
            return 0;
        v[n++] = (unsigned char)(p - charset);
    }
    size_t ndata = n - data_start;
    if (ndata < 7)
        return 0;
    uint32_t pm = bech32_polymod(v, n);
    int witver = v[data_start];
    if (witver > 16)
        return 0;
    if (!((witver == 0 && pm == 1) || (witver > 0 && pm == 0x2bc830a3)))
        return 0;
    /* witness program: 5-bit groups after the version, minus 6 checksum */
    size_t bits = (ndata - 1 - 6) * 5;
    size_t bytes = bits / 8;
    if (bits % 8 >= 5)
        return 0; /* excess padding */
    if (witver == 0)
        return bytes == 20 || bytes == 32;
    return bytes >= 2 && bytes <= 40;
}

int ifq_gv_bitcoin(const char *s, size_t len)
{
    if (len >= 3 && (to_lower(s[0]) == 'b' || to_lower(s[0]) == 't') && to_lower(s[2]) == '1' &&
        bech32_segwit(s, len))
        return 1;
    return (s[0] == '1' || s[0] == '3' || s[0] == 'm' || s[0] == 'n' || s[0] == '2') &&
           base58check(s, len);
}

/* ---- email ---- */

int ifq_gv_email(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (!at || at == s)
        return 0;
    size_t local = (size_t)(at - s);
    if (local > 64 || s[0] == '.' || s[local - 1] == '.')
        return 0;
    for (size_t i = 1; i < local; i++)
        if (s[i] == '.' && s[i - 1] == '.')
            return 0;
    const char *d = at + 1;
    size_t dl = len - local - 1;
    if (dl < 4 || dl > 253)
        return 0;
    size_t label = 0, tld_alpha = 1, tld_len = 0;
    for (size_t i = 0; i <= dl; i++) {
        if (i == dl || d[i] == '.') {
            if (label == 0 || d[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (label == 0) {
            if (d[i] == '-')
                return 0;
            tld_alpha = 1;
            tld_len = 0;
        }
        label++;
        tld_len++;
        if (!is_alpha((unsigned char)d[i]))
            tld_alpha = 0;
    }
    return tld_alpha && tld_len >= 2 && tld_len <= 24 && memchr(d, '.', dl) != NULL;
}

/* ---- base64 / JWT ---- */

long ifq_gv_base64_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    while (len && s[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+' || c == '-')
            v = 62;
        else if (c == '/' || c == '_')
            v = 63;
        else
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)n;
}

int ifq_gv_jwt(const char *s, size_t len)
{
    const char *dot = memchr(s, '.', len);
    if (!dot)
        return 0;
    unsigned char hdr[512];
    long n = ifq_gv_base64_decode(s, (size_t)(dot - s), hdr, sizeof(hdr) - 1);
    if (n < 8 || hdr[0] != '{')
        return 0;
    hdr[n] = 0;
    return strstr((char *)hdr, "\"alg\"") != NULL || strstr((char *)hdr, "\"typ\"") != NULL;
}

/* ---- secret values ---- */

double ifq_gv_entropy(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    unsigned cnt[256] = {0};
    for (size_t i = 0; i < len; i++)
        cnt[(unsigned char)s[i]]++;
    double h = 0;
    for (int i = 0; i < 256; i++) {
        if (!cnt[i])
            continue;
        double p = (double)cnt[i] / (double)len;
        h -= p * log2(p);
    }
    return h;
}

int ifq_gv_char_classes(const char *s, size_t len)
{
    int lo = 0, up = 0, di = 0, ot = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'a' && c <= 'z')
            lo = 1;
        else if (c >= 'A' && c <= 'Z')
            up = 1;
        else if (is_digit(c))
            di = 1;
        else
            ot = 1;
    }
    return lo + up + di + ot;
}

int ifq_gv_placeholder(const char *s, size_t len)
{
    char low[64];
    size_t n = len < sizeof(low) - 1 ? len : sizeof(low) - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)to_lower((unsigned char)s[i]);
    low[n] = 0;
    if (len && (s[0] == '<' || s[0] == '$' || s[0] == '{' || s[0] == '%' || s[0] == '['))
        return 1;
    static const char *const words[] = {
        "xxxx",       "****",    "....",        "changeme",  "your_", "your-",
        "yourpass",   "example", "placeholder", "redacted",  "dummy", "sample",
        "password",   "secret",  "<",           "{{",        "${",    "process.env",
        "os.environ", "getenv",  "null",        "undefined", "none"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strstr(low, words[i]))
            return 1;
    return 0;
}
