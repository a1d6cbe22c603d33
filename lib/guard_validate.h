/*
 * guard_validate.h - the checks that turn a pattern match into a finding:
 * checksums (Luhn, IBAN mod-97, Base58Check, Bech32/Bech32m), issuer and
 * numbering rules (card ranges, SSN areas, phone shapes), address parsing
 * (IPv4/IPv6), entropy, plus the SHA-256/HMAC-SHA256 and base64 helpers
 * they need. Pure functions over caller-owned bytes: nothing allocates,
 * nothing keeps a pointer, so each one is unit tested and fuzzed directly.
 * Internal to the guardrail engine (lib/guard*.c).
 */
#ifndef IFQ_GUARD_VALIDATE_H
#define IFQ_GUARD_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

/* Copies the ASCII digits of s[0..len) into out (at most cap), returns how
 * many digits there were (may exceed cap; then out holds the first cap). */
size_t ifq_gv_digits(const char *s, size_t len, char *out, size_t cap);

/* Luhn checksum over a digit string. */
int ifq_gv_luhn(const char *digits, size_t n);
/* Card issuer for a digit string that passed Luhn ("visa", "mastercard",
 * "amex", ...), or NULL when no issuer uses that prefix with that length. */
const char *ifq_gv_card_issuer(const char *digits, size_t n);
/* 1 when a card number's separators are consistent: none, or only spaces,
 * or only dashes, between groups of digits. */
int ifq_gv_card_separators_ok(const char *s, size_t len);

/* IBAN: 2 letters country, 2 check digits, BBAN; spaces allowed between
 * groups; case-insensitive. 1 when the country's length and mod-97 match. */
int ifq_gv_iban(const char *s, size_t len);

/* US SSN (digits with or without one kind of delimiter): 0 for area 000,
 * 666 or 900-999, group 00, serial 0000, all-same digits, known sample
 * numbers, or mixed delimiters (Presidio's rules plus the SSA's 9xx). */
int ifq_gv_ssn(const char *s, size_t len);

/* Phone candidate: returns a base score in [0, 1] from its shape (E.164
 * with a known country code, NANP, UK, DE, FR, IN national formats,
 * generic digit groups), or 0 when it cannot be a phone number. */
double ifq_gv_phone_score(const char *s, size_t len);

/* Dotted-quad IPv4 with octets 0-255 and no leading zeros. */
int ifq_gv_ipv4(const char *s, size_t len);
/* IPv6 in any RFC 4291 text form (inet_pton). */
int ifq_gv_ipv6(const char *s, size_t len);

/* Bitcoin: Base58Check P2PKH/P2SH (main and test nets) or Bech32/Bech32m
 * segwit (bc1/tb1) with a valid witness program. */
int ifq_gv_bitcoin(const char *s, size_t len);

/* Email: a local part and a domain of dot-separated labels that neither
 * start nor end with '-', with an alphabetic TLD of 2..24 letters. */
int ifq_gv_email(const char *s, size_t len);

/* JWT: the header segment decodes (base64url) to a JSON object naming "alg"
 * or "typ". */
int ifq_gv_jwt(const char *s, size_t len);

/* Shannon entropy of the bytes, in bits per byte. */
double ifq_gv_entropy(const char *s, size_t len);
/* Number of character classes present: lower, upper, digit, other. */
int ifq_gv_char_classes(const char *s, size_t len);
/* 1 when a would-be secret value is an obvious placeholder (<...>, ${...},
 * xxxx, ****, "changeme", "your_...", "example", ...). */
int ifq_gv_placeholder(const char *s, size_t len);

/* Decodes standard or URL-safe base64 (padding optional, whitespace not
 * allowed) into out; returns the decoded length or -1. */
long ifq_gv_base64_decode(const char *s, size_t len, unsigned char *out, size_t cap);

/* SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104). */
void ifq_gv_sha256(const void *data, size_t len, unsigned char out[32]);
void ifq_gv_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        unsigned char out[32]);

#endif
