/*
 * fake_model.c - inferq-fake-model, the one fake in inferq's tests.
 *
 * It speaks the OpenAI HTTP API (chat completions, completions, embeddings,
 * models; Azure-style /openai/deployments/<name>/... paths too) and the
 * dialects of the other providers the gateway translates to: Anthropic
 * Messages (/v1/messages), Gemini (models/{model}:generateContent,
 * :embedContent, :batchEmbedContents) and Bedrock Converse
 * (/model/{modelId}/converse, SigV4 header required but not verified), each
 * with its own request checks, answer shape and error shape. Answers are
 * deterministic, plus the failure modes a gateway must survive:
 * error statuses with Retry-After, latency, hangs, truncated JSON, dropped
 * connections and "fail the first N attempts". Failures are scripted by
 * [[fake:NAME=VALUE]] directives in the last user message, so end-to-end
 * tests can drive them through Kafka, the broker and the workers. See
 * README.md in this folder for the flags and directives.
 *
 * Design: two connection modes on libmicrohttpd.
 *
 * Event loop (the default): one MHD epoll thread serves every connection
 * (MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME), and a waker
 * thread owns the waits. A request that must wait (--latency-ms, the
 * latency directive, a hang) suspends its connection and leaves it to the
 * waker; when the wait is over the waker resumes the connection and MHD
 * calls the handler again, which carries on where it stopped (fm_api,
 * r->step). Latency: a min-heap of deadlines and one timerfd. Hang: the
 * socket goes into the waker's epoll set with EPOLLRDHUP, so the hang ends
 * as soon as the client closes or resets the connection, even when it had
 * pipelined more bytes (which the thread mode cannot see), and costs
 * nothing meanwhile. Why: in thread mode every request in flight is a
 * thread; with 2,000 keep-alive connections waiting 200 ms (the worker
 * benchmark, 10,000 requests/s) the wake-ups, timed waits and context
 * switches cost about 65 us of CPU per request on the 2-core dev box; the
 * event loop costs about 30, and 25 with the chat answer written without
 * jansson (fm_chat_json; figures and commands in README.md). What the rest
 * is: loopback TCP (send, receive, epoll; about 40 %), parsing the request
 * with jansson, MHD's HTTP handling and its suspend/resume (an epoll_ctl
 * pair and a walk of its suspended list per resume).
 * Constraints of this mode: one thread runs every handler, so a request
 * that takes long to parse (megabytes of JSON) delays the others for that
 * time; and MHD zeroes a connection's memory pool for every request, so the
 * pool is 8 KiB (FM_CONN_MEMORY): request headers up to about 7 KiB (431
 * beyond).
 *
 * Thread per connection (--thread-per-connection, the design before):
 * MHD_USE_THREAD_PER_CONNECTION with poll; latency is a timed poll() on the
 * stop pipe and a hang a poll() on the client socket in the connection's
 * own thread (it peeks at readable bytes every 200 ms, so a close behind
 * pipelined bytes goes unseen until the server stops). Kept as the
 * reference the event loop is checked against (smoke.sh runs in both
 * modes) and for comparisons.
 *
 * Both modes stop cleanly: SIGINT/SIGTERM writes the stop pipe, which ends
 * every wait (fm_stop_pauses: the sleeping threads in thread mode; the
 * waker, which resumes every suspended connection, in event mode, as
 * MHD_stop_daemon must find none), then MHD stops and the process exits 0.
 *
 * Shared state: counters are C11 atomics; the per-key tables (by_key stats
 * and fail_first state) are fixed-size open-addressing tables behind one
 * mutex, so memory stays bounded whatever the tests send; the waker's
 * deadlines and hangs (wk) are behind wk.lock.
 */
#include <microhttpd.h>
#include <jansson.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define FM_BODY_MAX (16u * 1024u * 1024u) /* request body limit (413 above) */
#define FM_MAX_MODELS 64
#define FM_MODEL_NAME_MAX 128
#define FM_KEY_MAX 128             /* longest key=K value */
#define FM_KEY_SLOTS 32768         /* by_key stats table (power of two) */
#define FM_FAIL_SLOTS 32768        /* fail_first state table (power of two) */
#define FM_LATENCY_MAX_MS 3600000L /* one hour */
#define FM_FAIL_FIRST_MAX 1000000L
#define FM_RETRY_AFTER_MAX 64
#define FM_STATUS_SLOTS 600
/* MHD's memory pool per connection in event mode: request line and headers
 * (up to about 7 KiB; 431 above) and the response headers. MHD zeroes the
 * whole pool for every request, and 2,000 pools of the default 32 KiB cost
 * more cache than the rest of a request (see the header comment). */
#define FM_CONN_MEMORY (8u * 1024u)
#define FM_FINGERPRINT "fp_inferq_fake"

/* ---- configuration ----------------------------------------------------- */

struct fm_config {
    const char *host;
    unsigned port;
    const char *port_file;
    char *api_key; /* never printed */
    size_t api_key_len;
    char *models[FM_MAX_MODELS];
    size_t n_models;
    long latency_ms;
    double fail_rate;
    uint64_t seed;
    bool quiet;
    bool verbose;
    bool strict_models;
    bool thread_per_conn; /* --thread-per-connection instead of the event loop */
    bool slow_json;       /* --slow-json: every answer through jansson (fm_chat_json off) */
    unsigned max_conns;
    unsigned idle_timeout;
};

static struct fm_config cfg = {
    .host = "127.0.0.1",
    .max_conns = 4096,
    .idle_timeout = 120,
};

static int stop_pipe[2] = {-1, -1};
static uint64_t boot_nonce;

/* ---- statistics -------------------------------------------------------- */

enum fm_ep {
    EP_NONE,
    EP_CHAT,
    EP_COMPL,
    EP_EMB,
    EP_MODELS,
    EP_MODEL_ONE,
    EP_ANTHROPIC,    /* POST /v1/messages */
    EP_GEMINI,       /* POST /v1beta/models/{model}:generateContent */
    EP_GEMINI_EMB,   /* POST /v1beta/models/{model}:embedContent */
    EP_GEMINI_BATCH, /* POST /v1beta/models/{model}:batchEmbedContents */
    EP_BEDROCK,      /* POST /model/{modelId}/converse */
    EP_N
};

/* The API dialect of an endpoint: it decides the request shape, the answer
 * shape and the error shape. */
enum fm_dialect { FM_OPENAI, FM_ANTHROPIC, FM_GEMINI, FM_BEDROCK };

static enum fm_dialect fm_dialect_of(enum fm_ep ep)
{
    switch (ep) {
    case EP_ANTHROPIC:
        return FM_ANTHROPIC;
    case EP_GEMINI:
    case EP_GEMINI_EMB:
    case EP_GEMINI_BATCH:
        return FM_GEMINI;
    case EP_BEDROCK:
        return FM_BEDROCK;
    default:
        return FM_OPENAI;
    }
}

/* by_path label of each endpoint; EP_NONE counts as "other". */
static const char *const fm_ep_label[EP_N] = {
    [EP_NONE] = "other",
    [EP_CHAT] = "/v1/chat/completions",
    [EP_COMPL] = "/v1/completions",
    [EP_EMB] = "/v1/embeddings",
    [EP_MODELS] = "/v1/models",
    [EP_MODEL_ONE] = "/v1/models/{id}",
    [EP_ANTHROPIC] = "/v1/messages",
    [EP_GEMINI] = "/v1beta/models/{model}:generateContent",
    [EP_GEMINI_EMB] = "/v1beta/models/{model}:embedContent",
    [EP_GEMINI_BATCH] = "/v1beta/models/{model}:batchEmbedContents",
    [EP_BEDROCK] = "/model/{modelId}/converse",
};

static struct {
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t by_path[EP_N];
    atomic_uint_fast64_t by_status[FM_STATUS_SLOTS];
    atomic_uint_fast64_t dropped, hung, malformed;
    atomic_uint_fast64_t fail_rate_seq; /* drives --fail-rate */
    atomic_uint_fast64_t ids;           /* response ids, never reset */
    atomic_long in_flight, max_in_flight;
} st;

struct fm_keyslot {
    uint64_t h; /* 0 = empty */
    uint64_t count;
    char name[FM_KEY_MAX + 1];
};

struct fm_failslot {
    uint64_t h; /* 0 = empty */
    uint64_t seen;
};

static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fm_keyslot key_tab[FM_KEY_SLOTS];
static size_t key_used;
static uint64_t key_overflow;
static struct fm_failslot fail_tab[FM_FAIL_SLOTS];
static size_t fail_used;

/* ---- small helpers ----------------------------------------------------- */

static void fm_log(const char *fmt, ...)
{
    if (cfg.quiet)
        return;
    /* One fputs per line, so lines from concurrent connections never mix. */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) - 1 ? (size_t)n : sizeof(line) - 2;
    line[len] = '\n';
    line[len + 1] = '\0';
    fprintf(stderr, "inferq-fake-model: %s", line);
}

static uint64_t fm_hash(uint8_t tag, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
    h = (h ^ tag) * 1099511628211ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h ? h : 1; /* 0 marks an empty slot */
}

static uint64_t fm_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL; /* splitmix64: a bijection, so ids stay unique */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static const char *fm_memmem(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m == 0 || n < m)
        return NULL;
    const char *end = hay + n - m;
    for (const char *p = hay; p <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, m) == 0)
            return p;
    }
    return NULL;
}

/* Parses exactly n bytes as a base-10 integer in [min, max]. */
static bool fm_parse_long(const char *s, size_t n, long min, long max, long *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (buf[0] != '-' && (buf[0] < '0' || buf[0] > '9'))
        return false;
    errno = 0;
    char *end;
    long v = strtol(buf, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static json_int_t fm_tokens(size_t bytes)
{
    return (json_int_t)((bytes + 3) / 4);
}

/* Growable byte buffer with a hard maximum; p is always NUL-terminated. */
struct fm_buf {
    char *p;
    size_t len, cap, max;
};

static bool fm_buf_add(struct fm_buf *b, const void *d, size_t n)
{
    if (n > b->max - b->len)
        return false;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np)
            return false;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

static bool fm_buf_str(struct fm_buf *b, const char *s)
{
    return fm_buf_add(b, s, strlen(s));
}

/* Waits ms milliseconds without CPU; returns false if the server is stopping. */
static bool fm_sleep_ms(long ms)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long done = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        long left = ms - done;
        if (left <= 0)
            return true;
        struct pollfd p = {.fd = stop_pipe[0], .events = POLLIN};
        int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return false;
        if (n < 0 && errno != EINTR)
            return true;
    }
}

/*
 * Holds the request open until the client closes its side or the server
 * stops. The connection's own thread blocks in poll(), so other connections
 * are untouched and no CPU is spent.
 */
static void fm_hang(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = ci ? ci->connect_fd : -1;
    for (;;) {
        struct pollfd p[2] = {{.fd = stop_pipe[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
        int n = poll(p, fd >= 0 ? 2 : 1, 1000);
        if (n < 0 && errno != EINTR)
            return;
        if (p[0].revents)
            return;
        if (fd < 0 || n <= 0)
            continue;
        if (p[1].revents & (POLLHUP | POLLERR | POLLNVAL))
            return;
        if (p[1].revents & POLLIN) {
            char ch;
            ssize_t k = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                return; /* the client gave up */
            /* The client sent more bytes (a pipelined request): we cannot
             * see a close behind them, so look again later instead of
             * spinning on a readable socket. */
            if (!fm_sleep_ms(200))
                return;
        }
    }
}

/* ---- per-key tables ---------------------------------------------------- */

static void fm_key_count(const char *key, size_t n)
{
    uint64_t h = fm_hash('K', key, n);
    pthread_mutex_lock(&tab_lock);
    size_t i = (size_t)h & (FM_KEY_SLOTS - 1);
    while (key_tab[i].h != 0 && !(key_tab[i].h == h && strlen(key_tab[i].name) == n &&
                                  memcmp(key_tab[i].name, key, n) == 0))
        i = (i + 1) & (FM_KEY_SLOTS - 1);
    if (key_tab[i].h != 0) {
        key_tab[i].count++;
    } else if (key_used < FM_KEY_SLOTS * 3 / 4) {
        key_tab[i].h = h;
        key_tab[i].count = 1;
        memcpy(key_tab[i].name, key, n);
        key_tab[i].name[n] = '\0';
        key_used++;
    } else {
        key_overflow++;
    }
    pthread_mutex_unlock(&tab_lock);
}

/* Counts one more request for the fail_first key h and returns how many it
 * has seen including this one, or 0 when the table is full. */
static uint64_t fm_fail_seen(uint64_t h)
{
    uint64_t seen = 0;
    pthread_mutex_lock(&tab_lock);
    size_t i = (size_t)h & (FM_FAIL_SLOTS - 1);
    while (fail_tab[i].h != 0 && fail_tab[i].h != h)
        i = (i + 1) & (FM_FAIL_SLOTS - 1);
    if (fail_tab[i].h == h) {
        seen = ++fail_tab[i].seen;
    } else if (fail_used < FM_FAIL_SLOTS * 3 / 4) {
        fail_tab[i].h = h;
        seen = fail_tab[i].seen = 1;
        fail_used++;
    }
    pthread_mutex_unlock(&tab_lock);
    return seen;
}

static void fm_stats_reset(void)
{
    atomic_store(&st.requests, 0);
    for (int i = 0; i < EP_N; i++)
        atomic_store(&st.by_path[i], 0);
    for (int i = 0; i < FM_STATUS_SLOTS; i++)
        atomic_store(&st.by_status[i], 0);
    atomic_store(&st.dropped, 0);
    atomic_store(&st.hung, 0);
    atomic_store(&st.malformed, 0);
    atomic_store(&st.fail_rate_seq, 0);
    atomic_store(&st.max_in_flight, atomic_load(&st.in_flight));
    pthread_mutex_lock(&tab_lock);
    memset(key_tab, 0, sizeof(key_tab));
    key_used = 0;
    key_overflow = 0;
    memset(fail_tab, 0, sizeof(fail_tab));
    fail_used = 0;
    pthread_mutex_unlock(&tab_lock);
}

static json_t *fm_stats_json(void)
{
    json_t *by_path = json_object(), *by_status = json_object(), *by_key = json_object();
    for (int i = 0; i < EP_N; i++) {
        uint64_t v = atomic_load(&st.by_path[i]);
        if (v)
            json_object_set_new(by_path, fm_ep_label[i], json_integer((json_int_t)v));
    }
    for (int i = 0; i < FM_STATUS_SLOTS; i++) {
        uint64_t v = atomic_load(&st.by_status[i]);
        if (v) {
            char k[12];
            snprintf(k, sizeof(k), "%d", i);
            json_object_set_new(by_status, k, json_integer((json_int_t)v));
        }
    }
    pthread_mutex_lock(&tab_lock);
    for (size_t i = 0; i < FM_KEY_SLOTS; i++)
        if (key_tab[i].h)
            json_object_set_new(by_key, key_tab[i].name,
                                json_integer((json_int_t)key_tab[i].count));
    json_int_t overflow = (json_int_t)key_overflow, fail_keys = (json_int_t)fail_used;
    pthread_mutex_unlock(&tab_lock);
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "requests",
        (json_int_t)atomic_load(&st.requests), "in_flight", (json_int_t)atomic_load(&st.in_flight),
        "max_in_flight", (json_int_t)atomic_load(&st.max_in_flight), "dropped",
        (json_int_t)atomic_load(&st.dropped), "hung", (json_int_t)atomic_load(&st.hung),
        "malformed", (json_int_t)atomic_load(&st.malformed), "fail_first_keys", fail_keys,
        "by_key_overflow", overflow, "by_path", by_path, "by_status", by_status, "by_key", by_key);
}

/* ---- directives -------------------------------------------------------- */

struct fm_directives {
    int status; /* 0 = none */
    char retry_after[FM_RETRY_AFTER_MAX + 1];
    long latency_ms;
    bool hang, malformed, drop;
    bool pretty;     /* chat answer indented over several lines, as OpenAI's API writes it */
    long fail_first; /* -1 = none */
    const char *key; /* borrowed from the scanned text; NULL = none */
    size_t key_len;
    const char *content; /* borrowed; NULL = echo */
    size_t content_len;
};

static bool fm_name_is(const char *name, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(name, lit, n) == 0;
}

/*
 * Scans text for [[fake:NAME]] / [[fake:NAME=VALUE]] directives. Returns 0,
 * or -1 with a reason in err for an unknown name or a bad value: a typo in a
 * test script should fail loudly, not silently answer 200. d borrows from
 * text.
 */
static int fm_directives_parse(const char *text, size_t n, struct fm_directives *d, char *err,
                               size_t errsz)
{
    static const char open[] = "[[fake:";
    const size_t olen = sizeof(open) - 1;
    memset(d, 0, sizeof(*d));
    d->fail_first = -1;
    const char *p = text, *end = text + n;
    while ((p = fm_memmem(p, (size_t)(end - p), open, olen)) != NULL) {
        const char *name = p + olen;
        const char *close = fm_memmem(name, (size_t)(end - name), "]]", 2);
        if (!close) {
            snprintf(err, errsz, "fake: unterminated [[fake: directive (missing ]])");
            return -1;
        }
        const char *eq = memchr(name, '=', (size_t)(close - name));
        size_t nl = (size_t)((eq ? eq : close) - name);
        const char *v = eq ? eq + 1 : close;
        size_t vl = (size_t)(close - v);
        long num;
        if (fm_name_is(name, nl, "status")) {
            if (!fm_parse_long(v, vl, 400, 599, &num))
                goto bad;
            d->status = (int)num;
        } else if (fm_name_is(name, nl, "retry_after")) {
            if (vl == 0 || vl > FM_RETRY_AFTER_MAX)
                goto bad;
            for (size_t i = 0; i < vl; i++)
                if (v[i] < 0x20 || v[i] > 0x7e)
                    goto bad;
            memcpy(d->retry_after, v, vl);
            d->retry_after[vl] = '\0';
        } else if (fm_name_is(name, nl, "latency")) {
            if (!fm_parse_long(v, vl, 0, FM_LATENCY_MAX_MS, &num))
                goto bad;
            d->latency_ms = num;
        } else if (fm_name_is(name, nl, "hang")) {
            d->hang = true;
        } else if (fm_name_is(name, nl, "malformed")) {
            d->malformed = true;
        } else if (fm_name_is(name, nl, "drop")) {
            d->drop = true;
        } else if (fm_name_is(name, nl, "pretty")) {
            d->pretty = true;
        } else if (fm_name_is(name, nl, "fail_first")) {
            if (!fm_parse_long(v, vl, 0, FM_FAIL_FIRST_MAX, &num))
                goto bad;
            d->fail_first = num;
        } else if (fm_name_is(name, nl, "key")) {
            if (vl == 0 || vl > FM_KEY_MAX || memchr(v, '\0', vl))
                goto bad;
            d->key = v;
            d->key_len = vl;
        } else if (fm_name_is(name, nl, "content")) {
            if (!eq)
                goto bad;
            d->content = v;
            d->content_len = vl;
        } else {
            snprintf(err, errsz, "fake: unknown directive [[fake:%.*s]]", (int)(nl > 32 ? 32 : nl),
                     name);
            return -1;
        }
        p = close + 2;
        continue;
    bad:
        snprintf(err, errsz, "fake: bad value for directive %.*s", (int)(nl > 32 ? 32 : nl), name);
        return -1;
    }
    return 0;
}

/* ---- request context and responses ------------------------------------- */

/* Where fm_api carries on when MHD calls the handler again after a pause. */
enum fm_step {
    STEP_START,  /* nothing done yet (then the --latency-ms wait) */
    STEP_CHECK,  /* route, auth, body, directives (then the latency directive) */
    STEP_ANSWER, /* failures, fail_first, the answer */
    STEP_HUNG    /* a hang ended: close */
};

struct fm_req {
    enum fm_ep ep;
    bool api;       /* an API request (counted), not /_fake/ */
    bool responded; /* a response was queued early (413): skip the upload */
    bool paused;    /* the connection is suspended (event mode): MHD calls again */
    bool too_big;
    struct fm_buf body;
    const char *azure_dep; /* borrowed from url: Azure deployment name */
    size_t azure_dep_len;
    const char *model_id;   /* borrowed from url: GET /v1/models/{id} */
    const char *path_model; /* borrowed from url: Gemini / Bedrock model in the path */
    size_t path_model_len;
    const char *aws_error; /* Bedrock: exception name for x-amzn-ErrorType */
    /* What fm_api_check parsed, kept across pauses (fm_completed frees it). */
    enum fm_step step;
    bool checked; /* fm_api_check passed: the fields below are set */
    json_t *req;
    struct fm_buf user; /* text of the last user turn (directives, echo) */
    struct fm_directives d;
    const char *src; /* where directives were read from: user.p or a string of req */
    size_t src_len;
    char model[FM_MODEL_NAME_MAX * 2 + 1];
    /* Event mode: the waker's bookkeeping (under wk.lock while paused). */
    struct MHD_Connection *conn;
    uint64_t due_ns; /* latency deadline, CLOCK_MONOTONIC */
    int hung_fd;     /* socket watched for the client's close, -1 = none */
    struct fm_req *hung_prev, *hung_next;
};

static void fm_count_status(struct fm_req *r, unsigned status)
{
    if (r->api && status < FM_STATUS_SLOTS)
        atomic_fetch_add(&st.by_status[status], 1);
}

/* Queues body (takes ownership; freed with free()) with status. */
static enum MHD_Result fm_send(struct fm_req *r, struct MHD_Connection *c, unsigned status,
                               char *body, size_t len, const char *ctype, const char *retry_after)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    char rid[40];
    snprintf(rid, sizeof(rid), "req_%016llx",
             (unsigned long long)fm_mix(atomic_fetch_add(&st.ids, 1) ^ boot_nonce));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "x-request-id", rid);
    enum fm_dialect dialect = fm_dialect_of(r->ep);
    if (dialect == FM_ANTHROPIC) {
        MHD_add_response_header(resp, "request-id", rid);
    } else if (dialect == FM_BEDROCK) {
        MHD_add_response_header(resp, "x-amzn-RequestId", rid);
        if (r->aws_error && status >= 400) {
            char et[128];
            snprintf(et, sizeof(et), "%s:http://internal.amazon.com/coral/com.amazon.bedrock/",
                     r->aws_error);
            MHD_add_response_header(resp, "x-amzn-ErrorType", et);
        }
    }
    if (retry_after && retry_after[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    fm_count_status(r, status);
    return ret;
}

static enum MHD_Result fm_send_json(struct fm_req *r, struct MHD_Connection *c, unsigned status,
                                    json_t *j, size_t flags, bool malformed);

/* The error type each dialect uses for an HTTP status. */
static const char *fm_anthropic_type(unsigned status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static const char *fm_gemini_status(unsigned status)
{
    switch (status) {
    case 400:
    case 413:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 409:
        return "ABORTED";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 499:
        return "CANCELLED";
    case 501:
        return "NOT_IMPLEMENTED";
    case 502:
    case 503:
    case 529:
        return "UNAVAILABLE";
    case 504:
        return "DEADLINE_EXCEEDED";
    default:
        return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
    }
}

static const char *fm_bedrock_exception(unsigned status)
{
    switch (status) {
    case 403:
        return "AccessDeniedException";
    case 404:
        return "ResourceNotFoundException";
    case 408:
        return "ModelTimeoutException";
    case 424:
        return "ModelErrorException";
    case 429:
        return "ThrottlingException";
    case 500:
        return "InternalServerException";
    default:
        return status >= 500 ? "ServiceUnavailableException" : "ValidationException";
    }
}

/*
 * Sends an error in the request's dialect. type, param and code are the
 * OpenAI fields; the other dialects derive theirs from the status:
 * Anthropic {"type":"error","error":{"type","message"}}, Gemini
 * {"error":{"code","message","status"}}, Bedrock {"message"} with the
 * exception name in x-amzn-ErrorType (r->aws_error overrides it).
 */
static enum MHD_Result fm_send_error(struct fm_req *r, struct MHD_Connection *c, unsigned status,
                                     const char *msg, const char *type, const char *param,
                                     const char *code, const char *retry_after)
{
    json_t *j;
    switch (fm_dialect_of(r->ep)) {
    case FM_ANTHROPIC:
        j = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
                      fm_anthropic_type(status), "message", msg);
        break;
    case FM_GEMINI:
        j = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", (int)status, "message", msg, "status",
                      fm_gemini_status(status));
        break;
    case FM_BEDROCK:
        if (!r->aws_error)
            r->aws_error = fm_bedrock_exception(status);
        j = json_pack("{s:s}", "message", msg);
        break;
    default:
        j = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", msg, "type", type, "param",
                      param, "code", code);
        break;
    }
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return MHD_NO;
    return fm_send(r, c, status, s, strlen(s), "application/json", retry_after);
}

static enum MHD_Result fm_send_json(struct fm_req *r, struct MHD_Connection *c, unsigned status,
                                    json_t *j, size_t flags, bool malformed)
{
    /* JSON_INDENT in flags: indented, with a space after ':' */
    char *s = j ? json_dumps(j, (flags & JSON_INDENT(31)) ? flags : JSON_COMPACT | flags) : NULL;
    json_decref(j);
    if (!s)
        return fm_send_error(r, c, 500, "fake: could not build the response", "server_error", NULL,
                             NULL, NULL);
    size_t n = strlen(s);
    if (malformed) {
        n = n / 2 > 0 ? n / 2 : 1; /* a real prefix of the answer, cut mid-way */
        atomic_fetch_add(&st.malformed, 1);
    }
    return fm_send(r, c, status, s, n, "application/json", NULL);
}

static enum MHD_Result fm_send_buf(struct fm_req *r, struct MHD_Connection *c, unsigned status,
                                   struct fm_buf *b, const char *ctype, bool malformed)
{
    size_t n = b->len;
    if (malformed) {
        n = n / 2 > 0 ? n / 2 : 1;
        atomic_fetch_add(&st.malformed, 1);
    }
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return fm_send(r, c, status, p, n, ctype, NULL);
}

/* Sends the error an injected status stands for. */
static enum MHD_Result fm_send_injected(struct fm_req *r, struct MHD_Connection *c, int status,
                                        const char *retry_after)
{
    const char *type = "invalid_request_error", *code = NULL, *msg;
    char buf[96];
    if (status == 429) {
        type = code = "rate_limit_exceeded";
        msg = "Rate limit reached for requests (injected by inferq-fake-model).";
    } else if (status == 529) {
        type = code = "overloaded";
        msg = "The server is currently overloaded (injected by inferq-fake-model).";
    } else if (status >= 500) {
        type = code = "server_error";
        msg = "The server had an error while processing your request "
              "(injected by inferq-fake-model).";
    } else {
        if (status == 401)
            code = "invalid_api_key";
        snprintf(buf, sizeof(buf), "Injected error status %d (inferq-fake-model).", status);
        msg = buf;
    }
    return fm_send_error(r, c, (unsigned)status, msg, type, NULL, code, retry_after);
}

static enum MHD_Result fm_bad_request(struct fm_req *r, struct MHD_Connection *c, const char *msg,
                                      const char *param)
{
    return fm_send_error(r, c, 400, msg, "invalid_request_error", param, NULL, NULL);
}

static void fm_make_id(char *out, size_t n, const char *prefix)
{
    snprintf(out, n, "%s%016llx", prefix,
             (unsigned long long)fm_mix(atomic_fetch_add(&st.ids, 1) ^ boot_nonce));
}

/* ---- content helpers ---------------------------------------------------- */

/* Bytes of a message content: a string, or the text parts of an array. */
static size_t fm_content_bytes(json_t *content)
{
    if (json_is_string(content))
        return json_string_length(content);
    size_t n = 0, i;
    json_t *part;
    /* json_array_foreach does nothing on a non-array. */
    json_array_foreach(content, i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (json_is_string(t))
            n += json_string_length(t);
    }
    return n;
}

/* Appends the text of a content (string or text parts) to b. */
static bool fm_content_text(json_t *content, struct fm_buf *b)
{
    if (json_is_string(content))
        return fm_buf_add(b, json_string_value(content), json_string_length(content));
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (json_is_string(t) && !fm_buf_add(b, json_string_value(t), json_string_length(t)))
            return false;
    }
    return true;
}

/* Length of the longest prefix of s[0..n) no longer than max that does not
 * split a UTF-8 sequence. */
static size_t fm_utf8_cut(const char *s, size_t n, size_t max)
{
    if (max >= n)
        return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

static bool fm_model_known(const char *model)
{
    for (size_t i = 0; i < cfg.n_models; i++)
        if (strcmp(cfg.models[i], model) == 0)
            return true;
    return false;
}

/* ---- endpoints ---------------------------------------------------------- */

static json_t *fm_model_obj(const char *id)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                     (json_int_t)1700000000, "owned_by", "inferq-fake");
}

static enum MHD_Result fm_models(struct fm_req *r, struct MHD_Connection *c, bool malformed)
{
    if (r->ep == EP_MODEL_ONE) {
        if (!fm_model_known(r->model_id)) {
            char msg[FM_MODEL_NAME_MAX + 96];
            snprintf(msg, sizeof(msg),
                     "The model `%.*s` does not exist or you do not have access to it.",
                     FM_MODEL_NAME_MAX, r->model_id);
            return fm_send_error(r, c, 404, msg, "invalid_request_error", NULL, "model_not_found",
                                 NULL);
        }
        return fm_send_json(r, c, 200, fm_model_obj(r->model_id), 0, malformed);
    }
    json_t *data = json_array();
    for (size_t i = 0; i < cfg.n_models; i++)
        json_array_append_new(data, fm_model_obj(cfg.models[i]));
    return fm_send_json(r, c, 200, json_pack("{s:s, s:o}", "object", "list", "data", data), 0,
                        malformed);
}

/* Appends one server-sent event "data: <json>\n\n" (steals j). */
static bool fm_sse(struct fm_buf *b, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    bool ok = s && fm_buf_str(b, "data: ") && fm_buf_str(b, s) && fm_buf_str(b, "\n\n");
    free(s);
    return ok;
}

/* Streams answer as chat.completion.chunk or text_completion events. */
static enum MHD_Result fm_stream(struct fm_req *r, struct MHD_Connection *c, bool chat,
                                 const char *id, const char *model, json_int_t created,
                                 const char *ans, size_t alen, json_t *usage, bool malformed)
{
    struct fm_buf b = {.max = 8 * (size_t)FM_BODY_MAX};
    const char *object = chat ? "chat.completion.chunk" : "text_completion";
    /* About 64 chunks whatever the answer length, so the stream stays bounded. */
    size_t step = alen / 64 > 16 ? alen / 64 : 16;
    bool ok = true;
    if (chat)
        ok = fm_sse(&b,
                    json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:{s:s, s:s}, s:n, s:n}]}", "id",
                              id, "object", object, "created", created, "model", model,
                              "system_fingerprint", FM_FINGERPRINT, "choices", "index", 0, "delta",
                              "role", "assistant", "content", "", "logprobs", "finish_reason"));
    for (size_t off = 0; ok && off < alen;) {
        size_t k = fm_utf8_cut(ans + off, alen - off, step);
        if (k == 0)
            k = alen - off < step ? alen - off : step;
        if (chat)
            ok = fm_sse(&b,
                        json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:{s:s%}, s:n, s:n}]}", "id",
                                  id, "object", object, "created", created, "model", model,
                                  "system_fingerprint", FM_FINGERPRINT, "choices", "index", 0,
                                  "delta", "content", ans + off, k, "logprobs", "finish_reason"));
        else
            ok = fm_sse(&b,
                        json_pack("{s:s, s:s, s:I, s:s, s:[{s:s%, s:i, s:n, s:n}]}", "id", id,
                                  "object", object, "created", created, "model", model, "choices",
                                  "text", ans + off, k, "index", 0, "logprobs", "finish_reason"));
        off += k;
    }
    if (ok && chat)
        ok = fm_sse(&b, json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:{}, s:n, s:s}]}", "id", id,
                                  "object", object, "created", created, "model", model,
                                  "system_fingerprint", FM_FINGERPRINT, "choices", "index", 0,
                                  "delta", "logprobs", "finish_reason", "stop"));
    else if (ok)
        ok = fm_sse(&b, json_pack("{s:s, s:s, s:I, s:s, s:[{s:s, s:i, s:n, s:s}]}", "id", id,
                                  "object", object, "created", created, "model", model, "choices",
                                  "text", "", "index", 0, "logprobs", "finish_reason", "stop"));
    if (ok && usage)
        ok = fm_sse(&b, json_pack("{s:s, s:s, s:I, s:s, s:[], s:O}", "id", id, "object", object,
                                  "created", created, "model", model, "choices", "usage", usage));
    ok = ok && fm_buf_str(&b, "data: [DONE]\n\n");
    if (!ok) {
        free(b.p);
        return fm_send_error(r, c, 500, "fake: could not build the stream", "server_error", NULL,
                             NULL, NULL);
    }
    return fm_send_buf(r, c, 200, &b, "text/event-stream", malformed);
}

static bool fm_stream_usage_wanted(json_t *req)
{
    return json_is_true(json_object_get(json_object_get(req, "stream_options"), "include_usage"));
}

/* Reads max_tokens (or max_completion_tokens); -1 when absent. */
static int fm_max_tokens(json_t *req, json_int_t *out)
{
    *out = -1;
    const char *names[] = {"max_tokens", "max_completion_tokens"};
    for (size_t i = 0; i < 2; i++) {
        json_t *m = json_object_get(req, names[i]);
        if (!m || json_is_null(m))
            continue;
        if (!json_is_integer(m) || json_integer_value(m) < 1)
            return -1;
        *out = json_integer_value(m);
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at s (as jansson accepts it: no
 * overlong forms, no surrogates, at most U+10FFFF), or 0. */
static size_t fm_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

/*
 * Appends s (n bytes) as a JSON string escaped exactly as jansson's compact
 * dump does it (\" \\ \b \f \n \r \t, other control characters as
 * \u00XX, everything else as is). Returns false for invalid UTF-8 (jansson
 * refuses it too) or out of memory.
 */
static bool fm_json_str(struct fm_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    if (!fm_buf_add(b, "\"", 1))
        return false;
    while (p < end) {
        unsigned c = *p;
        if (c >= 0x20 && c != '"' && c != '\\') {
            size_t k = c < 0x80 ? 1 : fm_utf8_len(p, (size_t)(end - p));
            if (k == 0)
                return false;
            p += k;
            continue;
        }
        char esc[6] = {'\\', 0, '0', '0', 0, 0};
        size_t en = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            en = 6;
            break;
        }
        if (!fm_buf_add(b, run, (size_t)(p - run)) || !fm_buf_add(b, esc, en))
            return false;
        run = ++p;
    }
    return fm_buf_add(b, run, (size_t)(p - run)) && fm_buf_add(b, "\"", 1);
}

/*
 * The chat.completion answer written straight into a buffer: the bytes
 * json_dumps(JSON_COMPACT) gives for the json_pack in fm_chat, at a fifth
 * of the CPU (the hot path of the benchmarks). Returns false when a string
 * is not valid UTF-8 or memory runs out; fm_chat then takes the jansson
 * path, which answers as before.
 */
static bool fm_chat_json(struct fm_buf *b, const char *id, json_int_t created, const char *model,
                         const char *a, size_t alen, json_int_t pt, json_int_t ct)
{
    char num[256];
    if (!fm_buf_str(b, "{\"id\":\"") || !fm_buf_str(b, id))
        return false;
    snprintf(num, sizeof(num),
             "\",\"object\":\"chat.completion\",\"created\":%" JSON_INTEGER_FORMAT ",\"model\":",
             created);
    if (!fm_buf_str(b, num) || !fm_json_str(b, model, strlen(model)) ||
        !fm_buf_str(b, ",\"system_fingerprint\":\"" FM_FINGERPRINT
                       "\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                       "\"content\":") ||
        !fm_json_str(b, a, alen))
        return false;
    snprintf(num, sizeof(num),
             ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{"
             "\"prompt_tokens\":%" JSON_INTEGER_FORMAT
             ",\"completion_tokens\":%" JSON_INTEGER_FORMAT
             ",\"total_tokens\":%" JSON_INTEGER_FORMAT "}}",
             pt, ct, pt + ct);
    return fm_buf_str(b, num);
}

static enum MHD_Result fm_chat(struct fm_req *r, struct MHD_Connection *c, json_t *req,
                               const char *model, const struct fm_directives *d,
                               struct fm_buf *user, bool malformed)
{
    json_t *msgs = json_object_get(req, "messages");
    json_int_t max_tokens;
    if (fm_max_tokens(req, &max_tokens) < 0)
        return fm_bad_request(r, c, "max_tokens must be a positive integer", "max_tokens");
    size_t i, prompt_bytes = 0;
    json_t *m;
    json_int_t prompt_tokens = 0;
    json_array_foreach(msgs, i, m)
    {
        prompt_bytes = fm_content_bytes(json_object_get(m, "content"));
        prompt_tokens += fm_tokens(prompt_bytes);
    }
    if (prompt_tokens < 1)
        prompt_tokens = 1;
    struct fm_buf ans = {.max = FM_BODY_MAX + 16};
    bool ok = d->content ? fm_buf_add(&ans, d->content, d->content_len)
                         : fm_buf_str(&ans, "echo: ") &&
                               fm_buf_add(&ans, user->p ? user->p : "", user->len);
    if (!ok) {
        free(ans.p);
        return fm_send_error(r, c, 500, "fake: out of memory", "server_error", NULL, NULL, NULL);
    }
    const char *a = ans.p ? ans.p : "";
    json_int_t completion_tokens = fm_tokens(ans.len);
    if (max_tokens >= 0 && completion_tokens > max_tokens)
        completion_tokens = max_tokens;
    char id[48];
    fm_make_id(id, sizeof(id), "chatcmpl-");
    struct fm_buf out = {.max = SIZE_MAX / 2};
    json_int_t created = (json_int_t)time(NULL);
    json_t *usage =
        json_pack("{s:I, s:I, s:I}", "prompt_tokens", prompt_tokens, "completion_tokens",
                  completion_tokens, "total_tokens", prompt_tokens + completion_tokens);
    enum MHD_Result ret;
    if (json_is_true(json_object_get(req, "stream"))) {
        ret = fm_stream(r, c, true, id, model, created, a, ans.len,
                        fm_stream_usage_wanted(req) ? usage : NULL, malformed);
        json_decref(usage);
    } else if (!cfg.slow_json && !d->pretty &&
               fm_chat_json(&out, id, created, model, a, ans.len, prompt_tokens,
                            completion_tokens)) {
        json_decref(usage);
        ret = fm_send_buf(r, c, 200, &out, "application/json", malformed);
    } else {
        json_t *resp = json_pack(
            "{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:{s:s, s:s%, s:n}, s:n, s:s}], s:o}", "id", id,
            "object", "chat.completion", "created", created, "model", model, "system_fingerprint",
            FM_FINGERPRINT, "choices", "index", 0, "message", "role", "assistant", "content", a,
            ans.len, "refusal", "logprobs", "finish_reason", "stop", "usage", usage);
        ret = fm_send_json(r, c, 200, resp, d->pretty ? JSON_INDENT(2) : 0, malformed);
    }
    free(out.p);
    free(ans.p);
    return ret;
}

static enum MHD_Result fm_completions(struct fm_req *r, struct MHD_Connection *c, json_t *req,
                                      const char *model, const struct fm_directives *d,
                                      bool malformed)
{
    json_t *prompt = json_object_get(req, "prompt");
    json_int_t max_tokens;
    if (fm_max_tokens(req, &max_tokens) < 0)
        return fm_bad_request(r, c, "max_tokens must be a positive integer", "max_tokens");
    json_t *list = json_is_string(prompt) ? json_pack("[O]", prompt) : json_incref(prompt);
    json_t *choices = json_array();
    json_int_t prompt_tokens = 0, completion_tokens = 0;
    struct fm_buf ans = {.max = FM_BODY_MAX + 16};
    size_t i;
    json_t *p;
    bool ok = list && choices;
    json_array_foreach(list, i, p)
    {
        if (!ok)
            break;
        ans.len = 0;
        prompt_tokens += fm_tokens(json_string_length(p));
        ok = d->content ? fm_buf_add(&ans, d->content, d->content_len)
                        : fm_buf_str(&ans, "echo: ") &&
                              fm_buf_add(&ans, json_string_value(p), json_string_length(p));
        json_int_t ct = fm_tokens(ans.len);
        if (max_tokens >= 0 && ct > max_tokens)
            ct = max_tokens;
        completion_tokens += ct;
        ok = ok &&
             json_array_append_new(choices, json_pack("{s:s%, s:i, s:n, s:s}", "text",
                                                      ans.p ? ans.p : "", ans.len, "index", (int)i,
                                                      "logprobs", "finish_reason", "stop")) == 0;
    }
    if (prompt_tokens < 1)
        prompt_tokens = 1;
    char id[48];
    fm_make_id(id, sizeof(id), "cmpl-");
    json_int_t created = (json_int_t)time(NULL);
    json_t *usage =
        json_pack("{s:I, s:I, s:I}", "prompt_tokens", prompt_tokens, "completion_tokens",
                  completion_tokens, "total_tokens", prompt_tokens + completion_tokens);
    enum MHD_Result ret;
    if (!ok) {
        json_decref(choices);
        json_decref(usage);
        ret = fm_send_error(r, c, 500, "fake: out of memory", "server_error", NULL, NULL, NULL);
    } else if (json_is_true(json_object_get(req, "stream")) && json_array_size(list) == 1) {
        json_decref(choices);
        ret = fm_stream(r, c, false, id, model, created, ans.p ? ans.p : "", ans.len,
                        fm_stream_usage_wanted(req) ? usage : NULL, malformed);
        json_decref(usage);
    } else {
        json_t *resp =
            json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:o}", "id", id, "object", "text_completion",
                      "created", created, "model", model, "system_fingerprint", FM_FINGERPRINT,
                      "choices", choices, "usage", usage);
        ret = fm_send_json(r, c, 200, resp, 0, malformed);
    }
    json_decref(list);
    free(ans.p);
    return ret;
}

static void fm_b64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* The 8-dimensional unit vector of an input: splitmix64 steps from its hash. */
#define FM_EMB_DIM 8
static json_t *fm_embedding(const char *s, size_t n, bool base64)
{
    uint64_t h = fm_hash('E', s, n);
    double v[FM_EMB_DIM], norm = 0;
    for (int i = 0; i < FM_EMB_DIM; i++) {
        uint64_t x = fm_mix(h + (uint64_t)i);
        v[i] = (double)(x >> 11) * 0x1.0p-53 * 2.0 - 1.0;
        norm += v[i] * v[i];
    }
    norm = sqrt(norm);
    if (norm == 0)
        norm = 1;
    if (base64) {
        unsigned char raw[FM_EMB_DIM * 4];
        for (int i = 0; i < FM_EMB_DIM; i++) {
            float f = (float)(v[i] / norm);
            uint32_t u;
            memcpy(&u, &f, sizeof(u));
            for (int k = 0; k < 4; k++) /* little-endian float32, as the API sends */
                raw[i * 4 + k] = (unsigned char)(u >> (8 * k));
        }
        char b64[((FM_EMB_DIM * 4 + 2) / 3) * 4 + 1];
        fm_b64(raw, sizeof(raw), b64);
        return json_string(b64);
    }
    json_t *arr = json_array();
    for (int i = 0; i < FM_EMB_DIM; i++)
        json_array_append_new(arr, json_real((double)(float)(v[i] / norm)));
    return arr;
}

static enum MHD_Result fm_embeddings(struct fm_req *r, struct MHD_Connection *c, json_t *req,
                                     const char *model, bool malformed)
{
    json_t *input = json_object_get(req, "input");
    const char *fmt = json_string_value(json_object_get(req, "encoding_format"));
    bool base64 = fmt && strcmp(fmt, "base64") == 0;
    if (fmt && !base64 && strcmp(fmt, "float") != 0)
        return fm_bad_request(r, c, "encoding_format must be \"float\" or \"base64\"",
                              "encoding_format");
    json_t *list = json_is_string(input) ? json_pack("[O]", input) : json_incref(input);
    json_t *data = json_array();
    json_int_t tokens = 0;
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        tokens += fm_tokens(json_string_length(s));
        json_array_append_new(
            data, json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", (int)i, "embedding",
                            fm_embedding(json_string_value(s), json_string_length(s), base64)));
    }
    json_decref(list);
    if (tokens < 1)
        tokens = 1;
    json_t *resp =
        json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model", model,
                  "usage", "prompt_tokens", tokens, "total_tokens", tokens);
    return fm_send_json(r, c, 200, resp, JSON_REAL_PRECISION(9), malformed);
}

/* ---- other dialects: Anthropic, Gemini, Bedrock ------------------------- */

/*
 * Each dialect is checked about as strictly as the real API checks it, so
 * an adapter that builds a body the provider would refuse fails here too
 * (Bedrock's alternating roles and non-blank text, Anthropic's required
 * max_tokens). The text directives are read from (and the echo repeats) is
 * the last user turn's text, or the last embedding input.
 */

/* Sum over turns of the tokens of turn[key] (a string or an array of parts
 * with "text"). */
static json_int_t fm_turn_tokens(json_t *turns, const char *key)
{
    json_int_t n = 0;
    size_t i;
    json_t *t;
    json_array_foreach(turns, i, t)
    {
        n += fm_tokens(fm_content_bytes(json_object_get(t, key)));
    }
    return n;
}

/* A system prompt counts as one message, as in the OpenAI dialect. */
static json_int_t fm_system_tokens(json_t *sys)
{
    size_t n = fm_content_bytes(sys);
    return n ? fm_tokens(n) : 0;
}

static bool fm_answer(const struct fm_directives *d, const struct fm_buf *user, struct fm_buf *ans)
{
    return d->content
               ? fm_buf_add(ans, d->content, d->content_len)
               : fm_buf_str(ans, "echo: ") && fm_buf_add(ans, user->p ? user->p : "", user->len);
}

/* A positive integer member, 0 when absent, -1 when malformed. */
static json_int_t fm_pos_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    return json_is_integer(v) && json_integer_value(v) >= 1 ? json_integer_value(v) : -1;
}

static const char *fm_validate_anthropic(json_t *req, json_t **last_user, char *eb, size_t es)
{
    if (fm_pos_int(req, "max_tokens") <= 0)
        return json_object_get(req, "max_tokens") ? "max_tokens: Input should be a positive integer"
                                                  : "max_tokens: Field required";
    if (json_is_true(json_object_get(req, "stream")))
        return "fake: \"stream\" is not implemented for /v1/messages";
    json_t *sys = json_object_get(req, "system");
    if (sys && !json_is_string(sys) && !json_is_array(sys))
        return "system: Input should be a valid string or a list of text blocks";
    json_t *msgs = json_object_get(req, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return "messages: Field required (a non-empty list)";
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
            snprintf(eb, es, "messages.%zu.role: Input should be 'user' or 'assistant'", i);
            return eb;
        }
        if (!json_is_string(content) && !json_is_array(content)) {
            snprintf(eb, es, "messages.%zu.content: Field required", i);
            return eb;
        }
        if (strcmp(role, "user") == 0)
            *last_user = content;
    }
    return NULL;
}

static const char *fm_validate_gemini(json_t *req, json_t **last_user, char *eb, size_t es)
{
    json_t *contents = json_object_get(req, "contents");
    if (!json_is_array(contents) || json_array_size(contents) == 0)
        return "* GenerateContentRequest.contents: contents is not specified";
    size_t i;
    json_t *m;
    json_array_foreach(contents, i, m)
    {
        json_t *role = json_object_get(m, "role");
        json_t *parts = json_object_get(m, "parts");
        const char *rs = json_string_value(role);
        if (role && (!rs || (strcmp(rs, "user") != 0 && strcmp(rs, "model") != 0)))
            return "Please use a valid role: user, model.";
        if (!json_is_array(parts) || json_array_size(parts) == 0) {
            snprintf(eb, es,
                     "* GenerateContentRequest.contents[%zu].parts: contents.parts must "
                     "not be empty.",
                     i);
            return eb;
        }
        if (!rs || strcmp(rs, "user") == 0)
            *last_user = parts;
    }
    json_t *gc = json_object_get(req, "generationConfig");
    if (gc && fm_pos_int(gc, "maxOutputTokens") < 0)
        return "* GenerateContentRequest.generation_config.max_output_tokens: must be positive";
    return NULL;
}

/* Gemini embeddings: one content, or requests[] whose model is this one. */
static const char *fm_validate_gemini_embed(struct fm_req *r, json_t *req, json_t **last, char *eb,
                                            size_t es)
{
    if (r->ep == EP_GEMINI_EMB) {
        json_t *parts = json_object_get(json_object_get(req, "content"), "parts");
        if (!json_is_array(parts) || json_array_size(parts) == 0)
            return "* EmbedContentRequest.content: content is not specified";
        *last = parts;
        return NULL;
    }
    json_t *reqs = json_object_get(req, "requests");
    if (!json_is_array(reqs) || json_array_size(reqs) == 0)
        return "* BatchEmbedContentsRequest.requests: requests is not specified";
    size_t i;
    json_t *q;
    json_array_foreach(reqs, i, q)
    {
        const char *m = json_string_value(json_object_get(q, "model"));
        json_t *parts = json_object_get(json_object_get(q, "content"), "parts");
        if (!m || strncmp(m, "models/", 7) != 0 || strlen(m + 7) != r->path_model_len ||
            memcmp(m + 7, r->path_model, r->path_model_len) != 0) {
            snprintf(eb, es,
                     "* BatchEmbedContentsRequest.requests[%zu].model: the model of each "
                     "request must be the model of the URL (models/%.*s)",
                     i, (int)r->path_model_len, r->path_model);
            return eb;
        }
        if (!json_is_array(parts) || json_array_size(parts) == 0) {
            snprintf(eb, es,
                     "* BatchEmbedContentsRequest.requests[%zu].content: content is not "
                     "specified",
                     i);
            return eb;
        }
        *last = parts;
    }
    return NULL;
}

static const char *fm_validate_bedrock(json_t *req, json_t **last_user, char *eb, size_t es)
{
    json_t *msgs = json_object_get(req, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return "A conversation must start with a user message. Try again with a conversation "
               "that starts with a user message.";
    size_t i, k;
    json_t *m, *b;
    const char *prev = NULL;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
            snprintf(eb, es,
                     "1 validation error detected: Value at 'messages.%zu.member.role' "
                     "failed to satisfy constraint: Member must satisfy enum value set: "
                     "[user, assistant]",
                     i + 1);
            return eb;
        }
        if (i == 0 && strcmp(role, "user") != 0)
            return "A conversation must start with a user message. Try again with a "
                   "conversation that starts with a user message.";
        if (prev && strcmp(prev, role) == 0)
            return "A conversation must alternate between user and assistant roles. Make sure "
                   "the conversation alternates between user and assistant roles and try again.";
        prev = role;
        if (!json_is_array(content) || json_array_size(content) == 0) {
            snprintf(eb, es,
                     "The content field in the Message object at messages.%zu is empty. "
                     "Add a ContentBlock object to the content field and try again.",
                     i);
            return eb;
        }
        json_array_foreach(content, k, b)
        {
            json_t *t = json_object_get(b, "text");
            if (!json_is_object(b) || json_object_size(b) != 1) {
                snprintf(eb, es,
                         "The ContentBlock object at messages.%zu.content.%zu must have "
                         "exactly one member (text, image, toolUse, toolResult ...).",
                         i, k);
                return eb;
            }
            if (t && (!json_is_string(t) || json_string_length(t) == 0)) {
                snprintf(eb, es,
                         "The text field in the ContentBlock object at "
                         "messages.%zu.content.%zu is blank. Add text to the text field, "
                         "and try again.",
                         i, k);
                return eb;
            }
        }
        if (strcmp(role, "user") == 0)
            *last_user = content;
    }
    json_t *sys = json_object_get(req, "system");
    if (sys && !json_is_array(sys))
        return "1 validation error detected: Value at 'system' failed to satisfy constraint: "
               "Member must be a list of SystemContentBlock";
    json_t *ic = json_object_get(req, "inferenceConfig");
    if (ic && fm_pos_int(ic, "maxTokens") < 0)
        return "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to "
               "satisfy constraint: Member must have value greater than or equal to 1";
    return NULL;
}

/* Validates a non-OpenAI body and collects the directive text into *user.
 * Returns NULL when valid, else the message of a 400. */
static const char *fm_validate_dialect(struct fm_req *r, json_t *req, struct fm_buf *user, char *eb,
                                       size_t es)
{
    json_t *last = NULL;
    const char *bad;
    switch (r->ep) {
    case EP_ANTHROPIC:
        bad = fm_validate_anthropic(req, &last, eb, es);
        break;
    case EP_GEMINI:
        bad = fm_validate_gemini(req, &last, eb, es);
        break;
    case EP_GEMINI_EMB:
    case EP_GEMINI_BATCH:
        bad = fm_validate_gemini_embed(r, req, &last, eb, es);
        break;
    default:
        bad = fm_validate_bedrock(req, &last, eb, es);
        break;
    }
    if (!bad && last && !fm_content_text(last, user))
        bad = "fake: out of memory";
    return bad;
}

static enum MHD_Result fm_oom(struct fm_req *r, struct MHD_Connection *c)
{
    return fm_send_error(r, c, 500, "fake: out of memory", "server_error", NULL, NULL, NULL);
}

static enum MHD_Result fm_anthropic(struct fm_req *r, struct MHD_Connection *c, json_t *req,
                                    const char *model, const struct fm_directives *d,
                                    const struct fm_buf *user, bool malformed)
{
    json_int_t prompt = fm_system_tokens(json_object_get(req, "system")) +
                        fm_turn_tokens(json_object_get(req, "messages"), "content");
    struct fm_buf ans = {.max = FM_BODY_MAX + 16};
    if (!fm_answer(d, user, &ans)) {
        free(ans.p);
        return fm_oom(r, c);
    }
    json_int_t max = fm_pos_int(req, "max_tokens"), out = fm_tokens(ans.len);
    char id[48];
    fm_make_id(id, sizeof(id), "msg_");
    json_t *resp =
        json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s%}], s:s, s:n, s:{s:I, s:I}}", "id", id, "type",
                  "message", "role", "assistant", "model", model, "content", "type", "text", "text",
                  ans.p ? ans.p : "", ans.len, "stop_reason", "end_turn", "stop_sequence", "usage",
                  "input_tokens", prompt < 1 ? 1 : prompt, "output_tokens", out > max ? max : out);
    free(ans.p);
    return fm_send_json(r, c, 200, resp, 0, malformed);
}

static enum MHD_Result fm_gemini(struct fm_req *r, struct MHD_Connection *c, json_t *req,
                                 const char *model, const struct fm_directives *d,
                                 const struct fm_buf *user, bool malformed)
{
    json_int_t prompt =
        fm_system_tokens(json_object_get(json_object_get(req, "systemInstruction"), "parts")) +
        fm_turn_tokens(json_object_get(req, "contents"), "parts");
    if (prompt < 1)
        prompt = 1;
    struct fm_buf ans = {.max = FM_BODY_MAX + 16};
    if (!fm_answer(d, user, &ans)) {
        free(ans.p);
        return fm_oom(r, c);
    }
    json_int_t max = fm_pos_int(json_object_get(req, "generationConfig"), "maxOutputTokens");
    json_int_t out = fm_tokens(ans.len);
    if (max > 0 && out > max)
        out = max;
    char id[48];
    fm_make_id(id, sizeof(id), "");
    json_t *resp = json_pack(
        "{s:[{s:{s:[{s:s%}], s:s}, s:s, s:i}], s:{s:I, s:I, s:I}, s:s, s:s}", "candidates",
        "content", "parts", "text", ans.p ? ans.p : "", ans.len, "role", "model", "finishReason",
        "STOP", "index", 0, "usageMetadata", "promptTokenCount", prompt, "candidatesTokenCount",
        out, "totalTokenCount", prompt + out, "modelVersion", model, "responseId", id);
    free(ans.p);
    return fm_send_json(r, c, 200, resp, 0, malformed);
}

/* The text of a parts array, for embedding. */
static json_t *fm_parts_embedding(json_t *parts)
{
    struct fm_buf t = {.max = FM_BODY_MAX};
    if (!fm_content_text(parts, &t)) {
        free(t.p);
        return NULL;
    }
    json_t *e = fm_embedding(t.p ? t.p : "", t.len, false);
    free(t.p);
    return e;
}

static enum MHD_Result fm_gemini_embed(struct fm_req *r, struct MHD_Connection *c, json_t *req,
                                       bool malformed)
{
    json_t *resp;
    if (r->ep == EP_GEMINI_EMB) {
        json_t *e = fm_parts_embedding(json_object_get(json_object_get(req, "content"), "parts"));
        resp = e ? json_pack("{s:{s:o}}", "embedding", "values", e) : NULL;
    } else {
        json_t *list = json_array();
        size_t i;
        json_t *q;
        json_array_foreach(json_object_get(req, "requests"), i, q)
        {
            json_t *e = fm_parts_embedding(json_object_get(json_object_get(q, "content"), "parts"));
            if (!e || json_array_append_new(list, json_pack("{s:o}", "values", e)) != 0) {
                json_decref(list);
                return fm_oom(r, c);
            }
        }
        resp = json_pack("{s:o}", "embeddings", list);
    }
    if (!resp)
        return fm_oom(r, c);
    return fm_send_json(r, c, 200, resp, JSON_REAL_PRECISION(9), malformed);
}

static enum MHD_Result fm_bedrock(struct fm_req *r, struct MHD_Connection *c, json_t *req,
                                  const char *model, const struct fm_directives *d,
                                  const struct fm_buf *user, bool malformed)
{
    (void)model; /* Converse answers do not name the model */
    json_int_t prompt = fm_system_tokens(json_object_get(req, "system")) +
                        fm_turn_tokens(json_object_get(req, "messages"), "content");
    if (prompt < 1)
        prompt = 1;
    struct fm_buf ans = {.max = FM_BODY_MAX + 16};
    if (!fm_answer(d, user, &ans)) {
        free(ans.p);
        return fm_oom(r, c);
    }
    json_int_t max = fm_pos_int(json_object_get(req, "inferenceConfig"), "maxTokens");
    json_int_t out = fm_tokens(ans.len);
    if (max > 0 && out > max)
        out = max;
    json_t *resp =
        json_pack("{s:{s:{s:s, s:[{s:s%}]}}, s:s, s:{s:I, s:I, s:I}, s:{s:i}}", "output", "message",
                  "role", "assistant", "content", "text", ans.p ? ans.p : "", ans.len, "stopReason",
                  "end_turn", "usage", "inputTokens", prompt, "outputTokens", out, "totalTokens",
                  prompt + out, "metrics", "latencyMs", 0);
    free(ans.p);
    return fm_send_json(r, c, 200, resp, 0, malformed);
}

/* ---- routing ------------------------------------------------------------ */

static enum fm_ep fm_ep_of_tail(const char *tail)
{
    if (strcmp(tail, "/chat/completions") == 0)
        return EP_CHAT;
    if (strcmp(tail, "/completions") == 0)
        return EP_COMPL;
    if (strcmp(tail, "/embeddings") == 0)
        return EP_EMB;
    return EP_NONE;
}

/* "{model}:{method}" after ".../models/": Gemini's generateContent,
 * embedContent and batchEmbedContents. */
static bool fm_route_gemini(struct fm_req *r, const char *rest)
{
    const char *colon = strrchr(rest, ':');
    if (!colon || colon == rest || memchr(rest, '/', (size_t)(colon - rest)) ||
        (size_t)(colon - rest) > FM_MODEL_NAME_MAX)
        return false;
    if (strcmp(colon, ":generateContent") == 0)
        r->ep = EP_GEMINI;
    else if (strcmp(colon, ":embedContent") == 0)
        r->ep = EP_GEMINI_EMB;
    else if (strcmp(colon, ":batchEmbedContents") == 0)
        r->ep = EP_GEMINI_BATCH;
    else
        return false;
    r->path_model = rest;
    r->path_model_len = (size_t)(colon - rest);
    return true;
}

static void fm_route(struct fm_req *r, const char *url)
{
    static const char azure[] = "/openai/deployments/";
    r->ep = EP_NONE;
    if (strncmp(url, "/v1beta/models/", 15) == 0) {
        fm_route_gemini(r, url + 15);
    } else if (strncmp(url, "/v1/models/", 11) == 0 && strchr(url + 11, ':') &&
               fm_route_gemini(r, url + 11)) {
        /* Gemini's stable v1 paths. */
    } else if (strcmp(url, "/v1/messages") == 0) {
        r->ep = EP_ANTHROPIC;
    } else if (strncmp(url, "/model/", 7) == 0) {
        /* Bedrock: /model/{modelId}/converse (MHD has already decoded %3A). */
        const char *id = url + 7;
        const char *slash = strrchr(id, '/');
        if (slash && slash > id && strcmp(slash, "/converse") == 0 &&
            (size_t)(slash - id) <= FM_MODEL_NAME_MAX * 2) {
            r->ep = EP_BEDROCK;
            r->path_model = id;
            r->path_model_len = (size_t)(slash - id);
        }
    } else if (strncmp(url, "/v1/", 4) == 0) {
        if (strcmp(url, "/v1/models") == 0) {
            r->ep = EP_MODELS;
        } else if (strncmp(url, "/v1/models/", 11) == 0 && url[11]) {
            r->ep = EP_MODEL_ONE;
            r->model_id = url + 11;
        } else {
            r->ep = fm_ep_of_tail(url + 3);
        }
    } else if (strncmp(url, azure, sizeof(azure) - 1) == 0) {
        const char *dep = url + sizeof(azure) - 1;
        const char *slash = strchr(dep, '/');
        if (slash && slash > dep && (size_t)(slash - dep) <= FM_MODEL_NAME_MAX) {
            r->ep = fm_ep_of_tail(slash);
            r->azure_dep = dep;
            r->azure_dep_len = (size_t)(slash - dep);
        }
    }
}

/* Constant-time so response timing says nothing about the key. */
static bool fm_key_eq(const char *got, size_t n)
{
    unsigned char diff = (unsigned char)(n != cfg.api_key_len);
    for (size_t i = 0; i < cfg.api_key_len; i++)
        diff |= (unsigned char)(cfg.api_key[i] ^ (i < n ? got[i] : 0));
    return diff == 0;
}

/* 0 = authorized, 1 = no key sent, 2 = wrong key. */
static int fm_auth(struct MHD_Connection *c)
{
    if (!cfg.api_key)
        return 0;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
        while (*h == ' ')
            h++;
        return fm_key_eq(h, strlen(h)) ? 0 : 2;
    }
    const char *az = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "api-key"); /* Azure */
    if (az)
        return fm_key_eq(az, strlen(az)) ? 0 : 2;
    return h ? 2 : 1;
}

static const char *fm_header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Bedrock: an "AWS4-HMAC-SHA256 Credential=AK/..., SignedHeaders=...,
 * Signature=..." header (not verified) plus X-Amz-Date, or a Bedrock API key
 * as "Bearer". With --api-key K the access key id (or the bearer token) must
 * be K. Returns NULL when authorized, else the exception name and *msg. */
static const char *fm_auth_bedrock(struct MHD_Connection *c, const char **msg)
{
    const char *h = fm_header(c, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h) {
        *msg = "Missing Authentication Token";
        return "MissingAuthenticationTokenException";
    }
    if (strncasecmp(h, "Bearer ", 7) == 0) {
        const char *t = h + 7;
        if (cfg.api_key && !fm_key_eq(t, strlen(t))) {
            *msg = "Invalid API Key format: Must start with pre-defined prefix";
            return "UnrecognizedClientException";
        }
        return NULL;
    }
    static const char pre[] = "AWS4-HMAC-SHA256 Credential=";
    const char *slash = strncmp(h, pre, sizeof(pre) - 1) == 0 ? strchr(h, '/') : NULL;
    if (!slash || !strstr(h, "SignedHeaders=") || !strstr(h, "Signature=") ||
        !fm_header(c, "X-Amz-Date")) {
        *msg = "Authorization header requires 'Credential', 'Signature', 'SignedHeaders' "
               "parameters and an X-Amz-Date header.";
        return "IncompleteSignatureException";
    }
    const char *ak = h + sizeof(pre) - 1;
    if (cfg.api_key && !fm_key_eq(ak, (size_t)(slash - ak))) {
        *msg = "The security token included in the request is invalid.";
        return "UnrecognizedClientException";
    }
    return NULL;
}

/* Checks the credentials the way the request's dialect carries them.
 * Returns true when the request may go on; otherwise an error response has
 * been queued and *ret holds the result. */
static bool fm_check_auth(struct fm_req *r, struct MHD_Connection *c, enum MHD_Result *ret)
{
    const char *msg = NULL, *k;
    unsigned status = 0;
    switch (fm_dialect_of(r->ep)) {
    case FM_ANTHROPIC:
        if (cfg.api_key) {
            k = fm_header(c, "x-api-key");
            if (!k || !fm_key_eq(k, strlen(k))) {
                status = 401;
                msg = k ? "invalid x-api-key" : "x-api-key header is required";
            }
        }
        /* The real API insists on a version, key or not. */
        if (!status && !fm_header(c, "anthropic-version")) {
            status = 400;
            msg = "anthropic-version: header is required";
        }
        break;
    case FM_GEMINI:
        if (cfg.api_key) {
            k = fm_header(c, "x-goog-api-key");
            if (!k) {
                status = 403;
                msg = "Method doesn't allow unregistered callers (callers without established "
                      "identity). Please use API Key or other form of API consumer identity to "
                      "call this API.";
            } else if (!fm_key_eq(k, strlen(k))) {
                status = 400;
                msg = "API key not valid. Please pass a valid API key.";
            }
        }
        break;
    case FM_BEDROCK:
        r->aws_error = fm_auth_bedrock(c, &msg);
        if (r->aws_error)
            status = 403;
        break;
    default: {
        int auth = fm_auth(c);
        if (auth) {
            *ret = fm_send_error(r, c, 401,
                                 auth == 1 ? "You didn't provide an API key. Send it in an "
                                             "Authorization header using Bearer auth."
                                           : "Incorrect API key provided.",
                                 "invalid_request_error", NULL, "invalid_api_key", NULL);
            return false;
        }
        break;
    }
    }
    if (!status)
        return true;
    *ret = fm_send_error(r, c, status, msg, "invalid_request_error", NULL, NULL, NULL);
    return false;
}

/* ---- pauses: latency waits and hangs ------------------------------------ */

/*
 * Event mode (the default): a paused request's connection is suspended
 * (MHD_suspend_connection) and handed to the waker thread, which resumes it
 *  - for a latency wait, when its deadline passes: a binary min-heap of
 *    deadlines and one timerfd armed at the earliest. Deadlines are rounded
 *    up to a whole millisecond, so requests due in the same millisecond are
 *    resumed by one wake-up (a latency is never shorter than asked, and at
 *    most 1 ms longer);
 *  - for a hang, when the client closes: the socket is in the waker's epoll
 *    set with EPOLLRDHUP (EPOLLHUP and EPOLLERR come anyway). The kernel
 *    reports the FIN or RST even behind unread pipelined bytes, and no
 *    event at all while the client stays, so a hang costs no CPU;
 *  - all of them at once when the server stops.
 * MHD then calls the handler again, and fm_api carries on at r->step.
 *
 * The suspend happens under wk.lock before the request is in the heap or
 * the hang list, and the waker takes it out under wk.lock before it
 * resumes, so every resume follows its suspend and r is never touched after
 * the resume (fm_completed may free it then). MHD functions are called
 * under wk.lock only by the handler (suspend); the waker resumes after
 * unlocking.
 *
 * Thread mode (--thread-per-connection): the connection's own thread waits
 * in fm_sleep_ms / fm_hang and the waker is not started.
 *
 * State: wk is global, everything in it under wk.lock apart from the fds
 * (set before MHD starts, closed after it stopped) and `stopping` (atomic:
 * fm_api reads it on every resume).
 */
enum fm_pause {
    FM_GO,     /* waited already (thread mode): carry on */
    FM_PAUSED, /* the connection is suspended: return MHD_YES, nothing queued */
    FM_STOP    /* the server stops: return MHD_NO */
};

#define FM_WAKE_BATCH 256 /* connections resumed per lock round */

static struct {
    pthread_mutex_t lock;
    struct fm_req **heap; /* min-heap on due_ns */
    size_t n, cap;
    uint64_t armed_ns;   /* the timerfd's deadline, 0 = disarmed */
    struct fm_req *hung; /* hung requests, linked by hung_next/hung_prev */
    atomic_bool stopping;
    int epfd, tfd; /* epoll: the timerfd, the stop pipe, hung sockets */
    bool started;
    pthread_t thread;
} wk = {.lock = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .tfd = -1};

static uint64_t fm_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* Sets the timerfd to fire at due_ns (CLOCK_MONOTONIC). Under wk.lock. */
static void fm_arm(uint64_t due_ns)
{
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(due_ns / 1000000000ULL),
                                          .tv_nsec = (long)(due_ns % 1000000000ULL)}};
    if (timerfd_settime(wk.tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        wk.armed_ns = due_ns;
}

/* Adds r (r->due_ns set) to the heap; false when out of memory. Under wk.lock. */
static bool fm_heap_push(struct fm_req *r)
{
    if (wk.n == wk.cap) {
        size_t nc = wk.cap ? wk.cap * 2 : 1024;
        struct fm_req **nh = realloc(wk.heap, nc * sizeof(*nh));
        if (!nh)
            return false;
        wk.heap = nh;
        wk.cap = nc;
    }
    size_t i = wk.n++;
    while (i > 0 && wk.heap[(i - 1) / 2]->due_ns > r->due_ns) {
        wk.heap[i] = wk.heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    wk.heap[i] = r;
    return true;
}

/* Removes and returns the earliest request. Under wk.lock, wk.n > 0. */
static struct fm_req *fm_heap_pop(void)
{
    struct fm_req *top = wk.heap[0], *last = wk.heap[--wk.n];
    size_t i = 0;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= wk.n)
            break;
        if (k + 1 < wk.n && wk.heap[k + 1]->due_ns < wk.heap[k]->due_ns)
            k++;
        if (wk.heap[k]->due_ns >= last->due_ns)
            break;
        wk.heap[i] = wk.heap[k];
        i = k;
    }
    if (wk.n > 0)
        wk.heap[i] = last;
    return top;
}

static void fm_hung_unlink(struct fm_req *r)
{
    if (r->hung_prev)
        r->hung_prev->hung_next = r->hung_next;
    else
        wk.hung = r->hung_next;
    if (r->hung_next)
        r->hung_next->hung_prev = r->hung_prev;
    r->hung_prev = r->hung_next = NULL;
    if (r->hung_fd >= 0)
        epoll_ctl(wk.epfd, EPOLL_CTL_DEL, r->hung_fd, NULL);
    r->hung_fd = -1;
}

/*
 * Delays the request by ms. Thread mode: sleeps in this thread (FM_GO, or
 * FM_STOP when the server stops meanwhile). Event mode: suspends the
 * connection until the waker resumes it at the deadline (FM_PAUSED).
 */
static enum fm_pause fm_pause(struct fm_req *r, struct MHD_Connection *c, long ms)
{
    if (cfg.thread_per_conn)
        return fm_sleep_ms(ms) ? FM_GO : FM_STOP;
    uint64_t due = fm_now_ns() + (uint64_t)ms * 1000000ULL;
    r->due_ns = (due + 999999ULL) / 1000000ULL * 1000000ULL;
    r->conn = c;
    pthread_mutex_lock(&wk.lock);
    if (atomic_load(&wk.stopping) || !fm_heap_push(r)) {
        pthread_mutex_unlock(&wk.lock);
        return FM_STOP;
    }
    MHD_suspend_connection(c);
    if (wk.armed_ns == 0 || r->due_ns < wk.armed_ns)
        fm_arm(r->due_ns);
    pthread_mutex_unlock(&wk.lock);
    r->paused = true;
    return FM_PAUSED;
}

/*
 * Holds a hung request until the client closes its side or the server
 * stops. Thread mode: blocks in fm_hang (FM_STOP afterwards: close). Event
 * mode: suspends the connection and has the waker watch its socket
 * (FM_PAUSED); MHD calls the handler again once it is over.
 */
static enum fm_pause fm_hold(struct fm_req *r, struct MHD_Connection *c)
{
    if (cfg.thread_per_conn) {
        fm_hang(c);
        return FM_STOP;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->conn = c;
    r->hung_fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&wk.lock);
    if (atomic_load(&wk.stopping)) {
        pthread_mutex_unlock(&wk.lock);
        return FM_STOP;
    }
    MHD_suspend_connection(c);
    struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = r};
    if (r->hung_fd >= 0 && epoll_ctl(wk.epfd, EPOLL_CTL_ADD, r->hung_fd, &ev) != 0)
        r->hung_fd = -1; /* cannot watch it: held until the server stops */
    r->hung_prev = NULL;
    r->hung_next = wk.hung;
    if (wk.hung)
        wk.hung->hung_prev = r;
    wk.hung = r;
    pthread_mutex_unlock(&wk.lock);
    r->paused = true;
    return FM_PAUSED;
}

static void fm_resume(struct MHD_Connection **cs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(cs[i]);
}

/* Resumes every request whose deadline has passed and re-arms the timerfd
 * for the next one. */
static void fm_wake_due(void)
{
    struct MHD_Connection *cs[FM_WAKE_BATCH];
    bool more;
    do {
        size_t k = 0;
        uint64_t now = fm_now_ns();
        pthread_mutex_lock(&wk.lock);
        while (wk.n > 0 && wk.heap[0]->due_ns <= now && k < FM_WAKE_BATCH)
            cs[k++] = fm_heap_pop()->conn;
        more = wk.n > 0 && wk.heap[0]->due_ns <= now;
        if (!more && wk.n > 0 && (wk.armed_ns == 0 || wk.heap[0]->due_ns < wk.armed_ns))
            fm_arm(wk.heap[0]->due_ns);
        pthread_mutex_unlock(&wk.lock);
        fm_resume(cs, k);
    } while (more);
}

/* The server stops: no new pauses, and every paused request is resumed
 * (fm_api then closes it), because MHD_stop_daemon must not find a
 * suspended connection. */
static void fm_wake_all(void)
{
    struct MHD_Connection *cs[FM_WAKE_BATCH];
    size_t k;
    atomic_store(&wk.stopping, true);
    do {
        k = 0;
        pthread_mutex_lock(&wk.lock);
        while (wk.n > 0 && k < FM_WAKE_BATCH)
            cs[k++] = fm_heap_pop()->conn;
        while (wk.hung && k < FM_WAKE_BATCH) {
            struct fm_req *r = wk.hung;
            fm_hung_unlink(r);
            cs[k++] = r->conn;
        }
        pthread_mutex_unlock(&wk.lock);
        fm_resume(cs, k);
    } while (k > 0);
}

static void *fm_waker(void *arg)
{
    (void)arg;
    struct epoll_event ev[64];
    struct MHD_Connection *cs[64];
    for (;;) {
        int n = epoll_wait(wk.epfd, ev, 64, -1);
        if (n < 0 && errno != EINTR) {
            perror("inferq-fake-model: waker: epoll_wait (waits end now)");
            break;
        }
        bool stop = false;
        size_t k = 0;
        pthread_mutex_lock(&wk.lock);
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &stop_pipe) {
                stop = true;
            } else if (p == &wk.tfd) {
                uint64_t expirations;
                if (read(wk.tfd, &expirations, sizeof(expirations)) < 0)
                    expirations = 0;
                wk.armed_ns = 0;
            } else {
                struct fm_req *r = p; /* a hang whose client closed */
                fm_hung_unlink(r);
                cs[k++] = r->conn;
            }
        }
        pthread_mutex_unlock(&wk.lock);
        fm_resume(cs, k);
        if (stop)
            break;
        fm_wake_due();
    }
    fm_wake_all();
    return NULL;
}

/* Creates the waker's timerfd and epoll set and starts it (event mode). */
static bool fm_waker_start(void)
{
    wk.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    wk.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (wk.tfd < 0 || wk.epfd < 0)
        return false;
    struct epoll_event et = {.events = EPOLLIN, .data.ptr = &wk.tfd};
    struct epoll_event es = {.events = EPOLLIN, .data.ptr = &stop_pipe};
    if (epoll_ctl(wk.epfd, EPOLL_CTL_ADD, wk.tfd, &et) != 0 ||
        epoll_ctl(wk.epfd, EPOLL_CTL_ADD, stop_pipe[0], &es) != 0)
        return false;
    if (pthread_create(&wk.thread, NULL, fm_waker, NULL) != 0)
        return false;
    wk.started = true;
    return true;
}

/*
 * Ends every latency wait and hang: writes the stop pipe, which wakes the
 * sleeping connection threads (thread mode) or the waker, and joins the
 * waker, which resumed every paused connection before it returned. Call
 * before MHD_stop_daemon, which must not find a suspended connection.
 */
static void fm_stop_pauses(void)
{
    ssize_t w;
    do
        w = write(stop_pipe[1], "x", 1);
    while (w < 0 && errno == EINTR);
    if (wk.started)
        pthread_join(wk.thread, NULL);
    wk.started = false;
}

/* Frees the waker's heap and fds, once MHD has stopped. */
static void fm_waker_free(void)
{
    free(wk.heap);
    wk.heap = NULL;
    wk.n = wk.cap = 0;
    if (wk.tfd >= 0)
        close(wk.tfd);
    if (wk.epfd >= 0)
        close(wk.epfd);
    wk.tfd = wk.epfd = -1;
}

/* Checks an API request whose body has been fully received: route, method,
 * auth, JSON, dialect and directives, keeping what it parsed in r (freed by
 * fm_completed). Answers a broken request and returns MHD_YES or MHD_NO as
 * fm_send does; otherwise sets r->checked and returns MHD_YES. */
static enum MHD_Result fm_api_check(struct fm_req *r, struct MHD_Connection *c, const char *url,
                                    const char *method)
{
    if (r->ep == EP_NONE) {
        char msg[320];
        snprintf(msg, sizeof(msg), "Invalid URL (%.16s %.256s)", method, url);
        return fm_send_error(r, c, 404, msg, "invalid_request_error", NULL, NULL, NULL);
    }
    bool is_get = r->ep == EP_MODELS || r->ep == EP_MODEL_ONE;
    if (strcmp(method, is_get ? "GET" : "POST") != 0) {
        char msg[320];
        snprintf(msg, sizeof(msg), "Method Not Allowed (%.16s %.256s)", method, url);
        return fm_send_error(r, c, 405, msg, "invalid_request_error", NULL, NULL, NULL);
    }
    if (r->too_big)
        return fm_send_error(r, c, 413, "Request body too large (limit 16 MiB).",
                             "invalid_request_error", NULL, NULL, NULL);
    enum MHD_Result auth_ret;
    if (!fm_check_auth(r, c, &auth_ret))
        return auth_ret;
    /* Azure answers a request without ?api-version=... with a 404. */
    if (r->azure_dep && !MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "api-version"))
        return fm_send_error(r, c, 404,
                             "Resource not found (the api-version query parameter is "
                             "required)",
                             "invalid_request_error", NULL, "404", NULL);

    struct fm_buf *user = &r->user;
    struct fm_directives *d = &r->d;
    char *model = r->model;
    const size_t model_size = sizeof(r->model);
    json_t *req = NULL;

    if (!is_get) {
        json_error_t jerr;
        req = r->req = json_loadb(r->body.p ? r->body.p : "", r->body.len, 0, &jerr);
        if (!json_is_object(req)) {
            char msg[256];
            snprintf(msg, sizeof(msg), "We could not parse the JSON body of your request. (%s)",
                     req ? "the body must be a JSON object" : jerr.text);
            return fm_bad_request(r, c, msg, NULL);
        }
        json_t *jm = json_object_get(req, "model");
        if (r->path_model) {
            /* Gemini and Bedrock name the model in the path. */
            memcpy(model, r->path_model, r->path_model_len);
            model[r->path_model_len] = '\0';
        } else if (json_is_string(jm) && json_string_length(jm) > 0 &&
                   json_string_length(jm) < model_size) {
            memcpy(model, json_string_value(jm), json_string_length(jm) + 1);
        } else if (!jm && r->azure_dep) {
            memcpy(model, r->azure_dep, r->azure_dep_len);
            model[r->azure_dep_len] = '\0';
        } else {
            return fm_bad_request(r, c,
                                  jm ? "model must be a non-empty string of at most 256 bytes"
                                     : "you must provide a model parameter",
                                  jm ? "model" : NULL);
        }
        if (cfg.strict_models && !fm_model_known(model)) {
            char msg[FM_MODEL_NAME_MAX * 2 + 96];
            snprintf(msg, sizeof(msg),
                     "The model `%s` does not exist or you do not have access to it.", model);
            return fm_send_error(r, c, 404, msg, "invalid_request_error", NULL, "model_not_found",
                                 NULL);
        }
        if (fm_dialect_of(r->ep) != FM_OPENAI) {
            char errbuf[256];
            const char *bad = fm_validate_dialect(r, req, user, errbuf, sizeof(errbuf));
            if (bad) {
                return fm_send_error(r, c, 400, bad, "invalid_request_error", NULL, NULL, NULL);
            }
            r->src = user->p;
            r->src_len = user->len;
        } else if (r->ep == EP_CHAT) {
            json_t *msgs = json_object_get(req, "messages");
            if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
                return fm_bad_request(r, c, "messages must be a non-empty array", "messages");
            }
            size_t i;
            json_t *m, *last_user = NULL;
            json_array_foreach(msgs, i, m)
            {
                json_t *role = json_object_get(m, "role");
                if (!json_is_string(role)) {
                    return fm_bad_request(r, c, "each message must be an object with a role",
                                          "messages");
                }
                if (strcmp(json_string_value(role), "user") == 0)
                    last_user = m;
            }
            if (last_user && !fm_content_text(json_object_get(last_user, "content"), user)) {
                return fm_send_error(r, c, 500, "fake: out of memory", "server_error", NULL, NULL,
                                     NULL);
            }
            r->src = user->p;
            r->src_len = user->len;
        } else {
            const char *field = r->ep == EP_COMPL ? "prompt" : "input";
            json_t *v = json_object_get(req, field);
            bool ok = json_is_string(v) || (json_is_array(v) && json_array_size(v) > 0);
            size_t i;
            json_t *s;
            json_array_foreach(v, i, s)
            {
                ok = ok && json_is_string(s);
            }
            if (!ok) {
                char msg[96];
                snprintf(msg, sizeof(msg), "%s must be a string or a non-empty array of strings",
                         field);
                return fm_bad_request(r, c, msg, field);
            }
            json_t *last = json_is_string(v) ? v : json_array_get(v, json_array_size(v) - 1);
            r->src = json_string_value(last);
            r->src_len = json_string_length(last);
        }
        char err[128];
        if (r->src && fm_directives_parse(r->src, r->src_len, d, err, sizeof(err)) < 0) {
            return fm_bad_request(r, c, err, NULL);
        }
    }
    r->checked = true;
    return MHD_YES;
}

/* Answers a checked API request after its latency: fail_first, the failure
 * directives, --fail-rate, then the endpoint's answer. A hang pauses the
 * request (fm_hold) and returns MHD_YES with nothing queued. */
static enum MHD_Result fm_api_answer(struct fm_req *r, struct MHD_Connection *c)
{
    struct fm_directives *d = &r->d;
    /* With fail_first=N the failure directives apply to the first N requests
     * of the key only, and the failure defaults to status 503. */
    bool failing = true;
    if (d->fail_first >= 0) {
        uint64_t seen = d->key ? fm_fail_seen(fm_hash('k', d->key, d->key_len))
                               : fm_fail_seen(fm_hash('c', r->src, r->src_len));
        if (seen == 0)
            return fm_send_error(r, c, 500,
                                 "fake: fail_first table is full; POST /_fake/reset between tests",
                                 "server_error", NULL, NULL, NULL);
        failing = seen <= (uint64_t)d->fail_first;
        if (failing && !d->drop && !d->hang && !d->status && !d->malformed)
            d->status = 503;
    }
    if (failing && d->drop) {
        atomic_fetch_add(&st.dropped, 1);
        return MHD_NO; /* MHD closes the socket without a response */
    }
    if (failing && d->hang) {
        atomic_fetch_add(&st.hung, 1);
        return fm_hold(r, c) == FM_PAUSED ? MHD_YES : MHD_NO;
    }
    if (failing && d->status)
        return fm_send_injected(r, c, d->status, d->retry_after);
    if (cfg.fail_rate > 0) {
        uint64_t x = fm_mix(cfg.seed ^ fm_mix(atomic_fetch_add(&st.fail_rate_seq, 1)));
        if ((double)(x >> 11) * 0x1.0p-53 < cfg.fail_rate)
            return fm_send_injected(r, c, 503, NULL);
    }
    bool malformed = failing && d->malformed;
    json_t *req = r->req;
    switch (r->ep) {
    case EP_CHAT:
        return fm_chat(r, c, req, r->model, d, &r->user, malformed);
    case EP_COMPL:
        return fm_completions(r, c, req, r->model, d, malformed);
    case EP_EMB:
        return fm_embeddings(r, c, req, r->model, malformed);
    case EP_ANTHROPIC:
        return fm_anthropic(r, c, req, r->model, d, &r->user, malformed);
    case EP_GEMINI:
        return fm_gemini(r, c, req, r->model, d, &r->user, malformed);
    case EP_GEMINI_EMB:
    case EP_GEMINI_BATCH:
        return fm_gemini_embed(r, c, req, malformed);
    case EP_BEDROCK:
        return fm_bedrock(r, c, req, r->model, d, &r->user, malformed);
    default:
        return fm_models(r, c, malformed);
    }
}

/*
 * Answers an API request whose body has been fully received. In event mode
 * MHD calls it again after each pause (the --latency-ms wait, the latency
 * directive, a hang), and r->step says where to carry on.
 */
static enum MHD_Result fm_api(struct fm_req *r, struct MHD_Connection *c, const char *url,
                              const char *method)
{
    enum fm_pause p;
    if (r->step != STEP_START && atomic_load(&wk.stopping))
        return MHD_NO; /* resumed because the server stops */
    switch (r->step) {
    case STEP_START:
        r->step = STEP_CHECK;
        if (cfg.latency_ms > 0 && (p = fm_pause(r, c, cfg.latency_ms)) != FM_GO)
            return p == FM_PAUSED ? MHD_YES : MHD_NO;
        /* fall through */
    case STEP_CHECK: {
        enum MHD_Result ret = fm_api_check(r, c, url, method);
        if (!r->checked)
            return ret;
        if (r->d.key)
            fm_key_count(r->d.key, r->d.key_len);
        r->step = STEP_ANSWER;
        if (r->d.latency_ms > 0 && (p = fm_pause(r, c, r->d.latency_ms)) != FM_GO)
            return p == FM_PAUSED ? MHD_YES : MHD_NO;
    }
        /* fall through */
    case STEP_ANSWER:
        r->step = STEP_HUNG; /* only reached again if fm_api_answer holds a hang */
        return fm_api_answer(r, c);
    case STEP_HUNG:
    default:
        return MHD_NO; /* the client of a hang closed its side */
    }
}

/* /_fake/ introspection: never counted, never authenticated. */
static enum MHD_Result fm_introspect(struct fm_req *r, struct MHD_Connection *c, const char *url,
                                     const char *method)
{
    if (strcmp(url, "/_fake/stats") == 0 && strcmp(method, "GET") == 0)
        return fm_send_json(r, c, 200, fm_stats_json(), 0, false);
    if (strcmp(url, "/_fake/reset") == 0 && strcmp(method, "POST") == 0) {
        fm_stats_reset();
        return fm_send_json(r, c, 200, json_pack("{s:b}", "ok", 1), 0, false);
    }
    if (strcmp(url, "/_fake/health") == 0 && strcmp(method, "GET") == 0)
        return fm_send_json(r, c, 200, json_pack("{s:b}", "ok", 1), 0, false);
    char msg[320];
    snprintf(msg, sizeof(msg), "Invalid URL (%.16s %.256s)", method, url);
    return fm_send_error(r, c, 404, msg, "invalid_request_error", NULL, NULL, NULL);
}

static enum MHD_Result fm_handler(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct fm_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->body.max = FM_BODY_MAX;
        r->user.max = FM_BODY_MAX;
        r->d.fail_first = -1;
        r->hung_fd = -1;
        r->api = strncmp(url, "/_fake/", 7) != 0;
        if (r->api) {
            fm_route(r, url);
            atomic_fetch_add(&st.requests, 1);
            atomic_fetch_add(&st.by_path[r->ep], 1);
            long now = atomic_fetch_add(&st.in_flight, 1) + 1;
            long max = atomic_load(&st.max_in_flight);
            while (now > max && !atomic_compare_exchange_weak(&st.max_in_flight, &max, now))
                ;
        }
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno == 0 && *end == '\0' && n > FM_BODY_MAX) {
                /* Answer before the upload: MHD then skips the body and closes. */
                r->responded = true;
                return fm_send_error(r, c, 413, "Request body too large (limit 16 MiB).",
                                     "invalid_request_error", NULL, NULL, NULL);
            }
            if (errno == 0 && *end == '\0' && n > 0) {
                char *p = malloc((size_t)n + 1); /* one allocation for the whole body */
                if (p) {
                    r->body.p = p;
                    r->body.cap = (size_t)n + 1;
                }
            }
        }
        return MHD_YES;
    }
    if (r->responded) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_big && !fm_buf_add(&r->body, upload_data, *upload_data_size)) {
            r->too_big = true; /* keep reading (chunked upload), answer 413 at the end */
            free(r->body.p);
            r->body.p = NULL;
            r->body.len = r->body.cap = 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* The body is complete; in event mode this is also where MHD comes back
     * after a pause (fm_api knows the step). */
    r->paused = false;
    enum MHD_Result ret = r->api ? fm_api(r, c, url, method) : fm_introspect(r, c, url, method);
    if (cfg.verbose && !r->paused)
        fm_log("%s %s%s", method, url, ret == MHD_YES ? "" : " (closed without response)");
    return ret;
}

static void fm_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct fm_req *r = *con_cls;
    if (!r)
        return;
    if (r->api)
        atomic_fetch_sub(&st.in_flight, 1);
    free(r->body.p);
    json_decref(r->req);
    free(r->user.p);
    free(r);
    *con_cls = NULL;
}

/* ---- command line and main ---------------------------------------------- */

static void fm_usage(FILE *f)
{
    fputs("usage: inferq-fake-model [options]\n"
          "  --host ADDR          listen address (default 127.0.0.1; IPv4 or IPv6)\n"
          "  --port N             listen port, 0 = pick a free one (default 0)\n"
          "  --port-file PATH     write the chosen port there once listening\n"
          "  --api-key K          require key K: Authorization: Bearer K or api-key: K; x-api-key\n"
          "                       (Anthropic), x-goog-api-key (Gemini), SigV4 access key id\n"
          "                       (Bedrock)\n"
          "  --api-key-env NAME   same, key read from environment variable NAME\n"
          "  --models a,b,c       models listed by GET /v1/models (default fake-chat,fake-embed)\n"
          "  --strict-models      404 model_not_found for models not in --models\n"
          "  --latency-ms N       add N ms to every API request\n"
          "  --fail-rate P        answer a fraction P (0..1) of API requests with 503\n"
          "  --seed S             seed of the --fail-rate sequence (default 0)\n"
          "  --max-connections N  concurrent connection limit (default 4096)\n"
          "  --idle-timeout S     close idle keep-alive connections after S s (default 120, 0 = "
          "never)\n"
          "  --thread-per-connection  one thread per connection that sleeps through latency\n"
          "                       and hangs (default: one event-loop thread plus a timer thread)\n"
          "  --slow-json          build every answer with jansson (checks the chat fast path)\n"
          "  --quiet              print nothing but errors in the arguments\n"
          "  --verbose            log every request (never headers, never the key)\n",
          f);
}

static bool fm_arg_long(const char *s, long min, long max, long *out)
{
    return fm_parse_long(s, strlen(s), min, max, out);
}

static bool fm_set_models(const char *list)
{
    for (size_t i = 0; i < cfg.n_models; i++)
        free(cfg.models[i]);
    cfg.n_models = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n > 0) {
            if (n > FM_MODEL_NAME_MAX || cfg.n_models == FM_MAX_MODELS)
                return false;
            cfg.models[cfg.n_models] = strndup(p, n);
            if (!cfg.models[cfg.n_models])
                return false;
            cfg.n_models++;
        }
        p += n + (comma ? 1 : 0);
    }
    return true;
}

static bool fm_set_key(const char *k)
{
    if (!k || !k[0])
        return false;
    free(cfg.api_key);
    cfg.api_key = strdup(k);
    cfg.api_key_len = cfg.api_key ? strlen(cfg.api_key) : 0;
    return cfg.api_key != NULL;
}

static int fm_parse_args(int argc, char **argv)
{
    enum {
        O_HOST = 256,
        O_PORT,
        O_PORT_FILE,
        O_KEY,
        O_KEY_ENV,
        O_MODELS,
        O_STRICT,
        O_LAT,
        O_FAIL,
        O_SEED,
        O_MAXC,
        O_IDLE,
        O_THREADS,
        O_SLOW_JSON,
        O_QUIET,
        O_VERBOSE,
        O_HELP
    };
    static const struct option opts[] = {
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"port-file", required_argument, NULL, O_PORT_FILE},
        {"api-key", required_argument, NULL, O_KEY},
        {"api-key-env", required_argument, NULL, O_KEY_ENV},
        {"models", required_argument, NULL, O_MODELS},
        {"strict-models", no_argument, NULL, O_STRICT},
        {"latency-ms", required_argument, NULL, O_LAT},
        {"fail-rate", required_argument, NULL, O_FAIL},
        {"seed", required_argument, NULL, O_SEED},
        {"max-connections", required_argument, NULL, O_MAXC},
        {"idle-timeout", required_argument, NULL, O_IDLE},
        {"thread-per-connection", no_argument, NULL, O_THREADS},
        {"slow-json", no_argument, NULL, O_SLOW_JSON},
        {"quiet", no_argument, NULL, O_QUIET},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int o;
    long v;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_HOST:
            cfg.host = optarg;
            break;
        case O_PORT:
            if (!fm_arg_long(optarg, 0, 65535, &v))
                goto bad;
            cfg.port = (unsigned)v;
            break;
        case O_PORT_FILE:
            if (strlen(optarg) > PATH_MAX - 16)
                goto bad;
            cfg.port_file = optarg;
            break;
        case O_KEY:
            if (!fm_set_key(optarg))
                goto bad;
            break;
        case O_KEY_ENV:
            if (!fm_set_key(getenv(optarg))) {
                fprintf(stderr, "inferq-fake-model: environment variable %s is empty or unset\n",
                        optarg);
                return -1;
            }
            break;
        case O_MODELS:
            if (!fm_set_models(optarg))
                goto bad;
            break;
        case O_STRICT:
            cfg.strict_models = true;
            break;
        case O_LAT:
            if (!fm_arg_long(optarg, 0, FM_LATENCY_MAX_MS, &v))
                goto bad;
            cfg.latency_ms = v;
            break;
        case O_FAIL: {
            char *end;
            errno = 0;
            double p = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(p >= 0.0 && p <= 1.0))
                goto bad;
            cfg.fail_rate = p;
            break;
        }
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 0);
            if (errno || end == optarg || *end)
                goto bad;
            cfg.seed = s;
            break;
        }
        case O_MAXC:
            if (!fm_arg_long(optarg, 1, 1000000, &v))
                goto bad;
            cfg.max_conns = (unsigned)v;
            break;
        case O_IDLE:
            if (!fm_arg_long(optarg, 0, 86400, &v))
                goto bad;
            cfg.idle_timeout = (unsigned)v;
            break;
        case O_THREADS:
            cfg.thread_per_conn = true;
            break;
        case O_SLOW_JSON:
            cfg.slow_json = true;
            break;
        case O_QUIET:
            cfg.quiet = true;
            break;
        case O_VERBOSE:
            cfg.verbose = true;
            break;
        case O_HELP:
            fm_usage(stdout);
            exit(0);
        default:
            fm_usage(stderr);
            return -1;
        }
        continue;
    bad:
        /* Never echo the value: it may be the API key. */
        fprintf(stderr, "inferq-fake-model: bad value for --%s\n", opts[o - O_HOST].name);
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "inferq-fake-model: unexpected argument\n");
        fm_usage(stderr);
        return -1;
    }
    if (cfg.n_models == 0 && !fm_set_models("fake-chat,fake-embed"))
        return -1;
    return 0;
}

/* Writes the port to PATH atomically (temp file + rename), so a script
 * polling for the file never reads half of it. */
static int fm_write_port_file(const char *path, unsigned port)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    bool ok = fprintf(f, "%u\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (fm_parse_args(argc, argv) < 0)
        return 2;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    boot_nonce =
        fm_mix((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^ (uint64_t)getpid();

    json_object_seed(0); /* seed jansson's hash once, before any thread exists */
    if (pipe(stop_pipe) != 0) {
        perror("inferq-fake-model: pipe");
        return 1;
    }
    for (int i = 0; i < 2; i++)
        fcntl(stop_pipe[i], F_SETFD, FD_CLOEXEC);

    /* Block the stop signals before MHD starts its threads, so they inherit
     * the mask and only sigwait() below sees them. */
    signal(SIGINT, SIG_DFL); /* a shell starts background jobs with SIGINT ignored */
    signal(SIGTERM, SIG_DFL);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    unsigned flags = cfg.thread_per_conn ? MHD_USE_THREAD_PER_CONNECTION |
                                               MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL
                                         : MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    flags |= MHD_USE_TURBO;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg.host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)cfg.port);
    } else if (inet_pton(AF_INET6, cfg.host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)cfg.port);
        flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "inferq-fake-model: --host must be a numeric IPv4 or IPv6 address\n");
        return 2;
    }
    if (cfg.verbose)
        flags |= MHD_USE_ERROR_LOG;
    if (!cfg.thread_per_conn && !fm_waker_start()) {
        perror("inferq-fake-model: timer thread");
        return 1;
    }

    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)cfg.port, NULL, NULL, fm_handler, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, fm_completed, NULL,
        MHD_OPTION_CONNECTION_LIMIT, cfg.max_conns, MHD_OPTION_CONNECTION_TIMEOUT, cfg.idle_timeout,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024), MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(cfg.thread_per_conn ? 32u * 1024u : FM_CONN_MEMORY), MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "inferq-fake-model: cannot listen on %s port %u\n", cfg.host, cfg.port);
        fm_stop_pauses();
        fm_waker_free();
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = di ? di->port : cfg.port;
    if (cfg.port_file && fm_write_port_file(cfg.port_file, port) != 0) {
        fprintf(stderr, "inferq-fake-model: cannot write the port file\n");
        fm_stop_pauses();
        MHD_stop_daemon(d);
        fm_waker_free();
        return 1;
    }
    fm_log("listening on %s port %u (auth %s, %zu models, latency %ld ms, fail-rate %g)", cfg.host,
           port, cfg.api_key ? "on" : "off", cfg.n_models, cfg.latency_ms, cfg.fail_rate);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    fm_log("signal %d, stopping", sig);
    /* Wake every latency wait and hang, then join the connection threads. */
    fm_stop_pauses();
    MHD_stop_daemon(d);
    fm_waker_free();
    if (cfg.port_file)
        unlink(cfg.port_file);
    for (size_t i = 0; i < cfg.n_models; i++)
        free(cfg.models[i]);
    free(cfg.api_key);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    fm_log("stopped");
    return 0;
}
