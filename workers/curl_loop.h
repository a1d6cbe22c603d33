/*
 * curl_loop.h - drives a libcurl multi handle from epoll with
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
 * Single-threaded: one loop per multi handle, used by the thread that owns
 * the multi. Completed transfers are read as usual with
 * curl_multi_info_read() after ifq_curl_loop_wait().
 */
#ifndef IFQ_CURL_LOOP_H
#define IFQ_CURL_LOOP_H

#include <curl/curl.h>

typedef struct ifq_curl_loop ifq_curl_loop_t;

/* Creates the loop and installs its socket and timer callbacks on multi
 * (borrowed; must outlive the loop). extra_fd (>= 0) is watched for
 * readability too, e.g. a wake-up pipe; -1 for none. NULL on failure. */
ifq_curl_loop_t *ifq_curl_loop_new(CURLM *multi, int extra_fd);

/* Waits at most timeout_ms (0: do not block) for socket activity, libcurl's
 * own timeout or extra_fd, and lets libcurl act on what happened. Returns 1
 * when extra_fd was readable, 0 otherwise, -1 when epoll failed (other
 * than by a signal). */
int ifq_curl_loop_wait(ifq_curl_loop_t *l, int timeout_ms);

/* Lets libcurl run everything that is due now (new handles, expired
 * timeouts) without waiting. */
void ifq_curl_loop_kick(ifq_curl_loop_t *l);

/* Removes the callbacks from the multi and frees the loop. NULL is fine. */
void ifq_curl_loop_free(ifq_curl_loop_t *l);

#endif
