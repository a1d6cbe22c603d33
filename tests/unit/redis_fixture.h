/*
 * redis_fixture.h - a private redis-server for the unit tests that need real
 * Redis: started on a free loopback port with persistence off, stopped at
 * the end of the group. When redis-server is missing or does not answer,
 * skip_reason says why and NEED_REDIS() skips the test with that message.
 * Header-only so that every test_*.c stays one self-contained ctest; include
 * it after <cmocka.h>.
 */
#ifndef IFQ_REDIS_FIXTURE_H
#define IFQ_REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t redis_pid = -1;
static int redis_port;
static char redis_url[64]; /* redis://127.0.0.1:<port>/<db> once started */
static char skip_reason[128];

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (redis_pid <= 0) {                                                                      \
            print_message("[  SKIPPED ] needs redis-server: %s\n", skip_reason);                   \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static inline int redis_fixture_find(const char *name, char *out, size_t size)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n && snprintf(out, size, "%.*s/%s", (int)n, path, name) < (int)size &&
            access(out, X_OK) == 0)
            return 0;
        path += n;
        if (*path == ':')
            path++;
    }
    return -1;
}

/* A port the kernel just handed out, not one of the local stack's. */
static inline int redis_fixture_free_port(void)
{
    static const int reserved[] = {16379, 19092, 26379, 29092};
    for (int tries = 0; tries < 20; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        if (fd < 0)
            return -1;
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
            close(fd);
            return -1;
        }
        close(fd);
        int port = ntohs(a.sin_port), ok = 1;
        for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
            ok &= port != reserved[i];
        if (ok)
            return port;
    }
    return -1;
}

static inline void redis_stop(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
}

/* Starts the server and waits (up to about 5 s) until it answers PING;
 * redis_url then names database db. Always returns 0 (a group setup):
 * failures are reported through skip_reason. */
static inline int redis_fixture_start(int db)
{
    char bin[512];
    if (redis_fixture_find("redis-server", bin, sizeof(bin)) < 0) {
        snprintf(skip_reason, sizeof(skip_reason), "no redis-server in PATH");
        return 0;
    }
    redis_port = redis_fixture_free_port();
    if (redis_port < 0) {
        snprintf(skip_reason, sizeof(skip_reason), "cannot find a free port");
        return 0;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execl(bin, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
              "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    if (redis_pid < 0) {
        snprintf(skip_reason, sizeof(skip_reason), "fork: %s", strerror(errno));
        return 0;
    }
    for (int i = 0; i < 100; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
        int up = 0;
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            up = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
        }
        if (c)
            redisFree(c);
        if (up) {
            snprintf(redis_url, sizeof(redis_url), "redis://127.0.0.1:%d/%d", redis_port, db);
            return 0;
        }
        int st;
        if (waitpid(redis_pid, &st, WNOHANG) == redis_pid) {
            redis_pid = -1;
            snprintf(skip_reason, sizeof(skip_reason), "redis-server exited at start");
            return 0;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    redis_stop();
    snprintf(skip_reason, sizeof(skip_reason), "redis-server did not answer on port %d",
             redis_port);
    return 0;
}

#endif
