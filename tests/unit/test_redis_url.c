/*
 * test_redis_url.c - redis:// URL parsing shared by state.c and prompt.c:
 * defaults, password, database, and readable refusals that never echo a
 * password.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "redis_url.h"

static void parses_host_port_db_and_password(void **state)
{
    (void)state;
    ifq_redis_url_t u;
    char err[128];
    assert_int_equal(ifq_redis_url_parse("redis://127.0.0.1", &u, err, sizeof(err)), IFQ_OK);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");

    assert_int_equal(
        ifq_redis_url_parse("redis://:s3cret@cache.local:16380/3", &u, err, sizeof(err)), IFQ_OK);
    assert_string_equal(u.host, "cache.local");
    assert_int_equal(u.port, 16380);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "s3cret");

    assert_int_equal(ifq_redis_url_parse("redis://user:pw@h/", &u, err, sizeof(err)), IFQ_OK);
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 0);
}

static void refuses_bad_urls_without_echoing_secrets(void **state)
{
    (void)state;
    static const struct {
        const char *url, *err;
    } bad[] = {
        {"http://h:1", "must start with redis://"},
        {"redis://", "has no host"},
        {"redis://:pw@", "has no host"},
        {"redis://h:0", "bad port"},
        {"redis://h:70000", "bad port"},
        {"redis://h:12ab", "bad port"},
        {"redis://h:", "bad port"},
        {"redis://h:1/x", "bad database"},
        {"redis://h:1/-1", "bad database"},
        {"redis://h/2000", "bad database"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ifq_redis_url_t u;
        char err[128];
        assert_int_equal(ifq_redis_url_parse(bad[i].url, &u, err, sizeof(err)), IFQ_ERR_CONFIG);
        if (!strstr(err, bad[i].err)) {
            print_error("%s: got \"%s\", want \"%s\"\n", bad[i].url, err, bad[i].err);
            fail();
        }
    }
    ifq_redis_url_t u;
    char err[128];
    assert_int_equal(ifq_redis_url_parse("rediss://:hunter2@h", &u, err, sizeof(err)),
                     IFQ_ERR_CONFIG);
    assert_null(strstr(err, "hunter2"));
    assert_int_equal(ifq_redis_url_parse(NULL, &u, err, sizeof(err)), IFQ_ERR_CONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_host_port_db_and_password),
        cmocka_unit_test(refuses_bad_urls_without_echoing_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
