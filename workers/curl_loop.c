/*
 * curl_loop.c - libcurl's multi_socket interface on epoll (see curl_loop.h).
 */
#include "curl_loop.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common.h"

#define MAX_EVENTS 512

/* One multi handle of the loop. */
typedef struct {
    ifq_curl_loop_t *l;
    CURLM *multi;
    uint32_t tag;      /* its index + 1, in the high half of epoll's data */
    int64_t timer_due; /* monotonic ms when libcurl wants a timeout call; -1: none */
} shard_t;

struct ifq_curl_loop {
    int epfd;
    int extra_fd;
    int n;
    shard_t *shards;
};

/* epoll's data for a socket of shard tag (0: the extra descriptor). */
static uint64_t ev_data(uint32_t tag, int fd)
{
    return (uint64_t)tag << 32 | (uint32_t)fd;
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    shard_t *sh = userp;
    ifq_curl_loop_t *l = sh->l;
    if (what == CURL_POLL_REMOVE) {
        /* The socket may already be closed (then epoll dropped it). libcurl
         * forgets socketp with the socket. */
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.data.u64 = ev_data(sh->tag, s);
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    /* socketp marks a socket registered with epoll since libcurl last
     * removed it: one epoll_ctl per change, no failed MOD on a keep-alive
     * connection's next transfer. EEXIST/ENOENT cover a socket number
     * reused after a close epoll saw first (by this multi or another). */
    if (!socketp) {
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev) < 0 && errno == EEXIST)
            epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(sh->multi, s, sh);
    } else if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) < 0 && errno == ENOENT) {
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    shard_t *sh = userp;
    sh->timer_due = timeout_ms < 0 ? -1 : ifq_mono_ms() + timeout_ms;
    return 0;
}

ifq_curl_loop_t *ifq_curl_loop_new(CURLM *const *multis, int n, int extra_fd)
{
    if (n < 1)
        return NULL;
    ifq_curl_loop_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->shards = calloc((size_t)n, sizeof(*l->shards));
    l->extra_fd = extra_fd;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!l->shards || l->epfd < 0)
        goto fail;
    if (extra_fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_data(0, extra_fd)};
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, extra_fd, &ev) < 0)
            goto fail;
    }
    l->n = n;
    for (int i = 0; i < n; i++) {
        shard_t *sh = &l->shards[i];
        sh->l = l;
        sh->multi = multis[i];
        sh->tag = (uint32_t)i + 1;
        sh->timer_due = -1;
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
    }
    return l;
fail:
    if (l->epfd >= 0)
        close(l->epfd);
    free(l->shards);
    free(l);
    return NULL;
}

static void run_timeout_if_due(shard_t *sh)
{
    if (sh->timer_due < 0 || ifq_mono_ms() < sh->timer_due)
        return;
    int running;
    long next = -1;
    curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    /* libcurl calls on_timer only when its nearest timeout changes. Woken a
     * fraction of a millisecond early (it reports whole milliseconds), it
     * has nothing to do and stays silent, so the timer is read back here
     * rather than cleared: a lost timer would leave per-transfer timeouts
     * unserved until some other transfer moved the nearest one. */
    if (curl_multi_timeout(sh->multi, &next) == CURLM_OK)
        sh->timer_due = next < 0 ? -1 : ifq_mono_ms() + next;
}

void ifq_curl_loop_kick(ifq_curl_loop_t *l)
{
    for (int i = 0; i < l->n; i++)
        run_timeout_if_due(&l->shards[i]);
}

int ifq_curl_loop_wait(ifq_curl_loop_t *l, int timeout_ms)
{
    int64_t now = ifq_mono_ms();
    for (int i = 0; i < l->n; i++) {
        int64_t due = l->shards[i].timer_due;
        if (due >= 0 && due - now < timeout_ms)
            timeout_ms = due > now ? (int)(due - now) : 0;
    }
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(l->epfd, ev, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    int extra = 0;
    for (int i = 0; i < n; i++) {
        uint32_t tag = (uint32_t)(ev[i].data.u64 >> 32);
        int fd = (int)(uint32_t)ev[i].data.u64;
        if (tag == 0 || tag > (uint32_t)l->n) {
            extra = 1;
            continue;
        }
        int flags = 0;
        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
            flags |= CURL_CSELECT_IN;
        if (ev[i].events & EPOLLOUT)
            flags |= CURL_CSELECT_OUT;
        if (ev[i].events & EPOLLERR)
            flags |= CURL_CSELECT_ERR;
        int running;
        curl_multi_socket_action(l->shards[tag - 1].multi, fd, flags, &running);
    }
    ifq_curl_loop_kick(l);
    return extra;
}

void ifq_curl_loop_free(ifq_curl_loop_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++) {
        curl_multi_setopt(l->shards[i].multi, CURLMOPT_SOCKETFUNCTION, NULL);
        curl_multi_setopt(l->shards[i].multi, CURLMOPT_TIMERFUNCTION, NULL);
    }
    close(l->epfd);
    free(l->shards);
    free(l);
}
