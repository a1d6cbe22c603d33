/*
 * inferq-mock-kafka — the embedded Kafka of the local stack.
 *
 * Runs librdkafka's mock cluster (rdkafka_mock.h) as a stand-alone process so
 * that kcat, the CLI, inferq-broker and inferq-worker can talk to it over
 * loopback TCP like to a real broker, without Java. It is what
 * `deploy/local/stack.sh up --kafka embedded` (the default) starts.
 *
 *   inferq-mock-kafka [--port N] [--brokers N] [--partitions N]
 *                     [--topic NAME[:PARTITIONS]]... [--bootstrap-file PATH]
 *                     [--debug]
 *
 * librdkafka 2.0.2 binds each mock broker to a random loopback port and has no
 * API to choose it. So that clients can use a fixed bootstrap address (the
 * local config says 127.0.0.1:19092), --port N opens a small TCP forwarder on
 * 127.0.0.1:N that relays bootstrap connections to the first mock broker. The
 * metadata a client then receives names the brokers' real (random) ports,
 * which clients on this machine reach directly. Without --port the mock
 * brokers' own list is the bootstrap.
 *
 * When ready (cluster up, topics created, forwarder listening) the bootstrap
 * address is printed on stdout and written to --bootstrap-file (atomically,
 * one line). Logs are JSON lines on stderr. SIGTERM or SIGINT stops it.
 *
 * Known limits of the mock (librdkafka 2.0.2): no admin API (CreateTopics,
 * DescribeConfigs, ... answer "unsupported"), unknown topics are auto-created
 * with 4 partitions (librdkafka's fixed mock default) on the first metadata
 * request or produce, no
 * read_committed isolation, transactional offset commits not emulated, a
 * new consumer group waits ~3 s before its first assignment, and a member
 * joining a group that already has members can wait up to the group's
 * session.timeout.ms - 1 s for its assignment.
 */
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_TOPICS 256
#define MAX_CONNS 256
#define BUF_SIZE (256 * 1024)

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* ---- logging: one JSON object per line on stderr ------------------------ */

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

static void log_line(const char *level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    flockfile(stderr);
    fprintf(stderr,
            "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"mock-kafka\",\"msg\":\"", when,
            ts.tv_nsec / 1000000L, level);
    json_escape(stderr, msg);
    fputs("\"}\n", stderr);
    funlockfile(stderr);
}

static void rk_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "bootstrap.servers"))
        return; /* expected: the owner handle of the mock connects to nothing */
    const char *lv = level <= 3 ? "error" : level == 4 ? "warn" : level <= 6 ? "info" : "debug";
    log_line(lv, "librdkafka %s: %s", fac, buf);
}

/* ---- command line ------------------------------------------------------- */

struct topic_spec {
    const char *name;
    int partitions;
};

struct options {
    int port; /* 0: no forwarder */
    int brokers;
    int partitions;
    bool debug;
    const char *bootstrap_file;
    struct topic_spec topics[MAX_TOPICS];
    int topic_cnt;
};

static void usage(FILE *f)
{
    fputs("usage: inferq-mock-kafka [--port N] [--brokers N] [--partitions N]\n"
          "                         [--topic NAME[:PARTITIONS]]... [--bootstrap-file PATH] "
          "[--debug]\n"
          "  --port N             fixed bootstrap port on 127.0.0.1 (forwards to the mock broker)\n"
          "  --brokers N          number of mock brokers (default 1)\n"
          "  --partitions N       partitions of a --topic given without a count (default 4)\n"
          "  --topic NAME[:P]     create topic NAME with P partitions (repeatable)\n"
          "  --bootstrap-file F   write the bootstrap servers to F when ready\n"
          "  --debug              librdkafka mock debug logging\n",
          f);
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || end == s || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    o->port = 0;
    o->brokers = 1;
    o->partitions = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--debug")) {
            o->debug = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "inferq-mock-kafka: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (!strcmp(a, "--port")) {
            if (!parse_int(v, 1, 65535, &o->port))
                goto bad;
        } else if (!strcmp(a, "--brokers")) {
            if (!parse_int(v, 1, 16, &o->brokers))
                goto bad;
        } else if (!strcmp(a, "--partitions")) {
            if (!parse_int(v, 1, 10000, &o->partitions))
                goto bad;
        } else if (!strcmp(a, "--bootstrap-file")) {
            o->bootstrap_file = v;
        } else if (!strcmp(a, "--topic")) {
            if (o->topic_cnt == MAX_TOPICS) {
                fprintf(stderr, "inferq-mock-kafka: too many topics (max %d)\n", MAX_TOPICS);
                return -1;
            }
            struct topic_spec *t = &o->topics[o->topic_cnt++];
            t->name = v;
            t->partitions = 0;
            char *colon = strrchr(argv[i], ':');
            if (colon) {
                *colon = '\0'; /* topic names never contain ':' */
                if (!parse_int(colon + 1, 1, 10000, &t->partitions))
                    goto bad;
            }
            if (!*t->name)
                goto bad;
        } else {
            fprintf(stderr, "inferq-mock-kafka: unknown option %s\n", a);
            usage(stderr);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "inferq-mock-kafka: bad value for %s: %s\n", a, v);
        return -1;
    }
    for (int i = 0; i < o->topic_cnt; i++)
        if (!o->topics[i].partitions)
            o->topics[i].partitions = o->partitions;
    return 0;
}

/* ---- bootstrap forwarder ------------------------------------------------ */

struct conn {
    int cfd, ufd; /* client side, upstream (mock broker) side; -1 when unused */
    size_t c2u_len, c2u_off, u2c_len, u2c_off;
    char *c2u, *u2c;
};

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL, 0);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 128) < 0 ||
        set_nonblock(fd) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int connect_upstream(const struct sockaddr_in *up)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)up, sizeof *up) < 0 || set_nonblock(fd) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void conn_close(struct conn *c)
{
    if (c->cfd >= 0)
        close(c->cfd);
    if (c->ufd >= 0)
        close(c->ufd);
    free(c->c2u);
    free(c->u2c);
    memset(c, 0, sizeof *c);
    c->cfd = c->ufd = -1;
}

/* Move bytes from fd into buf (when empty) and from buf to out. Returns false
 * when the pair must be closed. */
static bool pump_in(int fd, char *buf, size_t *len, size_t *off)
{
    if (*len)
        return true;
    ssize_t n = recv(fd, buf, BUF_SIZE, 0);
    if (n > 0) {
        *len = (size_t)n;
        *off = 0;
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return true;
    return false; /* EOF or error */
}

static bool pump_out(int fd, char *buf, size_t *len, size_t *off)
{
    while (*off < *len) {
        ssize_t n = send(fd, buf + *off, *len - *off, MSG_NOSIGNAL);
        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return true;
        return false;
    }
    *len = *off = 0;
    return true;
}

static int parse_first_broker(const char *bootstraps, struct sockaddr_in *out)
{
    char host[64];
    int port = 0;
    const char *colon = strchr(bootstraps, ':');
    if (!colon || (size_t)(colon - bootstraps) >= sizeof host)
        return -1;
    memcpy(host, bootstraps, (size_t)(colon - bootstraps));
    host[colon - bootstraps] = '\0';
    port = atoi(colon + 1);
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    if (port <= 0 || inet_pton(AF_INET, host, &out->sin_addr) != 1)
        return -1;
    return 0;
}

static void forward_loop(int lfd, const struct sockaddr_in *up)
{
    static struct conn conns[MAX_CONNS];
    static struct pollfd pfds[1 + 2 * MAX_CONNS];
    static int owner[1 + 2 * MAX_CONNS];
    for (int i = 0; i < MAX_CONNS; i++)
        conns[i].cfd = conns[i].ufd = -1;

    while (!g_stop) {
        int n = 0;
        if (lfd >= 0) {
            pfds[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
            owner[n++] = -1;
        }
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &conns[i];
            if (c->cfd < 0)
                continue;
            pfds[n] = (struct pollfd){
                .fd = c->cfd,
                .events = (short)((c->c2u_len ? 0 : POLLIN) | (c->u2c_len ? POLLOUT : 0))};
            owner[n++] = i;
            pfds[n] = (struct pollfd){
                .fd = c->ufd,
                .events = (short)((c->u2c_len ? 0 : POLLIN) | (c->c2u_len ? POLLOUT : 0))};
            owner[n++] = i;
        }
        int r = poll(pfds, (nfds_t)n, 500);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            log_line("error", "poll: %s", strerror(errno));
            break;
        }
        for (int k = 0; k < n && r > 0; k++) {
            if (!pfds[k].revents)
                continue;
            if (owner[k] == -1) {
                int cfd;
                while ((cfd = accept(lfd, NULL, NULL)) >= 0) {
                    int slot = -1;
                    for (int i = 0; i < MAX_CONNS; i++)
                        if (conns[i].cfd < 0) {
                            slot = i;
                            break;
                        }
                    int ufd = slot >= 0 ? connect_upstream(up) : -1;
                    if (slot < 0 || ufd < 0 || set_nonblock(cfd) < 0) {
                        log_line("warn", "bootstrap connection refused (%s)",
                                 slot < 0 ? "too many connections" : "mock broker unreachable");
                        if (ufd >= 0)
                            close(ufd);
                        close(cfd);
                        continue;
                    }
                    struct conn *c = &conns[slot];
                    c->cfd = cfd;
                    c->ufd = ufd;
                    c->c2u = malloc(BUF_SIZE);
                    c->u2c = malloc(BUF_SIZE);
                    c->c2u_len = c->c2u_off = c->u2c_len = c->u2c_off = 0;
                    if (!c->c2u || !c->u2c)
                        conn_close(c);
                }
                continue;
            }
            struct conn *c = &conns[owner[k]];
            if (c->cfd < 0)
                continue; /* closed earlier in this round */
            bool ok = true;
            bool is_client = pfds[k].fd == c->cfd;
            short ev = pfds[k].revents;
            if (is_client) {
                if (ok && (ev & (POLLIN | POLLHUP | POLLERR)))
                    ok = pump_in(c->cfd, c->c2u, &c->c2u_len, &c->c2u_off);
                if (ok && (ev & POLLOUT))
                    ok = pump_out(c->cfd, c->u2c, &c->u2c_len, &c->u2c_off);
                if (ok && c->c2u_len) /* try to pass it on right away */
                    ok = pump_out(c->ufd, c->c2u, &c->c2u_len, &c->c2u_off);
            } else {
                if (ok && (ev & (POLLIN | POLLHUP | POLLERR)))
                    ok = pump_in(c->ufd, c->u2c, &c->u2c_len, &c->u2c_off);
                if (ok && (ev & POLLOUT))
                    ok = pump_out(c->ufd, c->c2u, &c->c2u_len, &c->c2u_off);
                if (ok && c->u2c_len)
                    ok = pump_out(c->cfd, c->u2c, &c->u2c_len, &c->u2c_off);
            }
            if (!ok)
                conn_close(c);
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].cfd >= 0)
            conn_close(&conns[i]);
}

/* ---- topics ------------------------------------------------------------- */

struct create_job {
    pthread_t thread;
    bool threaded;
    rd_kafka_mock_cluster_t *mc;
    const struct topic_spec *topic;
    int replication;
    rd_kafka_resp_err_t err;
};

static void *create_one(void *arg)
{
    struct create_job *j = arg;
    j->err =
        rd_kafka_mock_topic_create(j->mc, j->topic->name, j->topic->partitions, j->replication);
    return NULL;
}

/* Each rd_kafka_mock_topic_create() is a request to the mock cluster's thread,
 * which in librdkafka 2.0.2 sometimes misses the wake-up and serves it only at
 * its next 1 s poll timeout. Issuing all requests at once bounds that delay to
 * about one second in all, instead of up to one second per topic. */
static int create_topics(rd_kafka_mock_cluster_t *mc, const struct options *o, int rf)
{
    static struct create_job jobs[MAX_TOPICS];
    int started = 0, rc = 0;
    for (int i = 0; i < o->topic_cnt; i++) {
        jobs[i] = (struct create_job){.mc = mc, .topic = &o->topics[i], .replication = rf};
        jobs[i].threaded = pthread_create(&jobs[i].thread, NULL, create_one, &jobs[i]) == 0;
        if (!jobs[i].threaded)
            create_one(&jobs[i]); /* no thread: create it from here */
        started++;
    }
    for (int i = 0; i < started; i++) {
        if (jobs[i].threaded)
            pthread_join(jobs[i].thread, NULL);
        if (jobs[i].err) {
            log_line("error", "create topic %s: %s", jobs[i].topic->name,
                     rd_kafka_err2str(jobs[i].err));
            rc = -1;
        }
    }
    return rc;
}

/* ---- main --------------------------------------------------------------- */

static int write_file_atomic(const char *path, const char *text)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int bad = fprintf(f, "%s\n", text) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options opt;
    memset(&opt, 0, sizeof opt);
    if (parse_args(argc, argv, &opt) != 0)
        return 2;

    /* Block the stop signals while librdkafka starts its threads (they inherit
     * the mask), so only the main thread sees them and poll() wakes up. */
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, rk_log_cb);
    if (rd_kafka_conf_set(conf, "client.id", "inferq-mock-kafka", errstr, sizeof errstr) ||
        (opt.debug && rd_kafka_conf_set(conf, "debug", "mock", errstr, sizeof errstr))) {
        log_line("error", "config: %s", errstr);
        return 1;
    }
    /* This handle is only the mock cluster's owner; it connects to nothing. */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        log_line("error", "rd_kafka_new: %s", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, opt.brokers);
    if (!mc) {
        log_line("error", "could not create the mock cluster");
        rd_kafka_destroy(rk);
        return 1;
    }
    const char *mock_bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    int rf = opt.brokers < 3 ? opt.brokers : 3;
    int rc = 0;
    int lfd = -1;
    struct sockaddr_in upstream;
    char bootstrap[256];
    memset(&upstream, 0, sizeof upstream);

    if (create_topics(mc, &opt, rf) != 0) {
        rc = 1;
        goto out;
    }

    if (opt.port) {
        if (parse_first_broker(mock_bootstraps, &upstream) != 0) {
            log_line("error", "cannot parse mock bootstrap servers %s", mock_bootstraps);
            rc = 1;
            goto out;
        }
        lfd = listen_on(opt.port);
        if (lfd < 0) {
            log_line("error", "cannot listen on 127.0.0.1:%d: %s", opt.port, strerror(errno));
            rc = 1;
            goto out;
        }
        snprintf(bootstrap, sizeof bootstrap, "127.0.0.1:%d", opt.port);
    } else {
        snprintf(bootstrap, sizeof bootstrap, "%s", mock_bootstraps);
    }

    if (opt.bootstrap_file && write_file_atomic(opt.bootstrap_file, bootstrap) != 0) {
        log_line("error", "cannot write %s: %s", opt.bootstrap_file, strerror(errno));
        rc = 1;
        goto out;
    }
    printf("%s\n", bootstrap);
    fflush(stdout);
    log_line("info",
             "ready: bootstrap=%s mock_brokers=%s brokers=%d topics=%d default_partitions=%d",
             bootstrap, mock_bootstraps, opt.brokers, opt.topic_cnt, opt.partitions);

    pthread_sigmask(SIG_UNBLOCK, &stopset, NULL);
    forward_loop(lfd, &upstream);
    log_line("info", "stopping");

out:
    if (lfd >= 0)
        close(lfd);
    if (opt.bootstrap_file && rc == 0)
        unlink(opt.bootstrap_file);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return rc;
}
