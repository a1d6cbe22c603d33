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

struct ifq_curl_loop {
    CURLM *multi;
    int epfd;
    int extra_fd;
    int64_t timer_due; /* monotonic ms when libcurl wants a timeout call; -1: none */
};

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    ifq_curl_loop_t *l = userp;
    if (what == CURL_POLL_REMOVE) {
        /* The socket may already be closed (then epoll dropped it). libcurl
         * forgets socketp with the socket. */
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.data.fd = s;
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    /* socketp marks a socket registered with epoll since libcurl last
     * removed it: one epoll_ctl per change, no failed MOD on a keep-alive
     * connection's next transfer. EEXIST/ENOENT cover a socket number
     * reused after a close epoll saw first. */
    if (!socketp) {
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev) < 0 && errno == EEXIST)
            epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(l->multi, s, l);
    } else if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) < 0 && errno == ENOENT) {
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    ifq_curl_loop_t *l = userp;
    l->timer_due = timeout_ms < 0 ? -1 : ifq_mono_ms() + timeout_ms;
    return 0;
}

ifq_curl_loop_t *ifq_curl_loop_new(CURLM *multi, int extra_fd)
{
    ifq_curl_loop_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->multi = multi;
    l->extra_fd = extra_fd;
    l->timer_due = -1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    if (extra_fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = extra_fd};
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, extra_fd, &ev) < 0) {
            close(l->epfd);
            free(l);
            return NULL;
        }
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, l);
    return l;
}

static void run_timeout_if_due(ifq_curl_loop_t *l)
{
    if (l->timer_due < 0 || ifq_mono_ms() < l->timer_due)
        return;
    int running;
    long next = -1;
    curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    /* libcurl calls on_timer only when its nearest timeout changes. Woken a
     * fraction of a millisecond early (it reports whole milliseconds), it
     * has nothing to do and stays silent, so the timer is read back here
     * rather than cleared: a lost timer would leave per-transfer timeouts
     * unserved until some other transfer moved the nearest one. */
    if (curl_multi_timeout(l->multi, &next) == CURLM_OK)
        l->timer_due = next < 0 ? -1 : ifq_mono_ms() + next;
}

void ifq_curl_loop_kick(ifq_curl_loop_t *l)
{
    run_timeout_if_due(l);
}

int ifq_curl_loop_wait(ifq_curl_loop_t *l, int timeout_ms)
{
    if (l->timer_due >= 0) {
        int64_t in = l->timer_due - ifq_mono_ms();
        if (in < timeout_ms)
            timeout_ms = in > 0 ? (int)in : 0;
    }
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(l->epfd, ev, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    int extra = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == l->extra_fd) {
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
        curl_multi_socket_action(l->multi, ev[i].data.fd, flags, &running);
    }
    run_timeout_if_due(l);
    return extra;
}

void ifq_curl_loop_free(ifq_curl_loop_t *l)
{
    if (!l)
        return;
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, NULL);
    close(l->epfd);
    free(l);
}
