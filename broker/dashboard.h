/*
 * dashboard.h - the broker's dashboard on its admin port: one
 * self-contained HTML page (GET / and /dashboard; broker/dashboard/, built
 * into the binary) and the JSON API it reads (GET /api/...). See
 * docs/dashboard.md.
 *
 * The dashboard keeps its own Redis connection and Kafka clients, never
 * the broker's main-thread objects: admin handlers run on the admin
 * server's threads.
 */
#ifndef IFQ_DASHBOARD_H
#define IFQ_DASHBOARD_H

#include "admin.h"
#include "config.h"

/* Adds the dashboard's routes to h (sets route, route_opaque, route_free;
 * the admin server then owns the dashboard). Guardrail findings are read
 * from the program's own metrics through h->metrics and h->opaque, which
 * must be set first. cfg is borrowed and must outlive the admin server.
 * Returns 0, or -1 when out of memory (h is then unchanged). */
int ifq_dashboard_attach(ifq_admin_handlers_t *h, const ifq_config_t *cfg);

#endif
