/*
 * curl_loop.h - drives libcurl multi handles from one epoll with
 * curl_multi_socket_action, so a wake-up costs work proportional to the
 * sockets that are ready, not to the transfers in flight.
 *
 * curl_multi_perform() + curl_multi_poll() walk every easy handle (and poll
 * every socket) on each call; with thousands of transfers in flight that
 * dominated the worker's CPU. Here libcurl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when it needs a timeout call
 * (CURLMOPT_TIMERFUNCTION), and only the sockets epoll reports are handed
 * back to it.
 *
 * Several multi handles can share the loop: each keeps its own connection
 * cache, and libcurl looks for a free connection to a host by walking the
 * cache's list of connections to that host, in use or not. With thousands
 * of HTTP/1.1 connections to one model server in one cache, that walk was
 * the largest part of libcurl's CPU per request; spread over several
 * multis, each walk is short.
 *
 * Single-threaded: one loop and its multis belong to the thread that owns
 * them. Completed transfers are read as usual with curl_multi_info_read()
 * on each multi after ifq_curl_loop_wait().
 */
#ifndef IFQ_CURL_LOOP_H
#define IFQ_CURL_LOOP_H

#include <curl/curl.h>

typedef struct ifq_curl_loop ifq_curl_loop_t;

/* Creates the loop and installs its socket and timer callbacks on the n
 * multis (borrowed; they must outlive the loop). extra_fd (>= 0) is watched
 * for readability too, e.g. a wake-up pipe; -1 for none. NULL on failure. */
ifq_curl_loop_t *ifq_curl_loop_new(CURLM *const *multis, int n, int extra_fd);

/* Waits at most timeout_ms (0: do not block) for socket activity, libcurl's
 * own timeouts or extra_fd, and lets libcurl act on what happened. Returns
 * 1 when extra_fd was readable, 0 otherwise, -1 when epoll failed (other
 * than by a signal). */
int ifq_curl_loop_wait(ifq_curl_loop_t *l, int timeout_ms);

/* Lets libcurl run everything that is due now (new handles, expired
 * timeouts) without waiting. */
void ifq_curl_loop_kick(ifq_curl_loop_t *l);

/* Removes the callbacks from the multis and frees the loop. NULL is fine. */
void ifq_curl_loop_free(ifq_curl_loop_t *l);

#endif
