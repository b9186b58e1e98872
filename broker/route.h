/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Route: calls from the broker into a VM's agent (org.vmfed.Agent1 on
 * /org/vmfed/Agent1, over the VM's channel), after the policy allowed them.
 *
 * Never blocks: a call is sent with sd_bus_call_async and its RouteDoneFn
 * runs when the agent answers, the call times out, or the agent's
 * connection drops (then with an error: a lost call never counts as done).
 * A call to a VM whose agent has not said Hello yet (a VM that is booting,
 * a disposable just started) waits up to AgentTimeout= seconds for it.
 */
#pragma once

#include <systemd/sd-bus.h>

#include "broker/broker.h"

#define AGENT1_INTERFACE "org.vmfed.Agent1"
#define AGENT1_PATH "/org/vmfed/Agent1"

typedef struct RouteTable RouteTable;

/* reply is NULL when error is set. */
typedef void (*RouteDoneFn)(Broker *b, sd_bus_message *reply, const sd_bus_error *error, void *userdata);

RouteTable *route_table_new(unsigned agent_timeout_sec);
/* Pending calls are dropped without calling back (the broker is going away). */
RouteTable *route_table_free(RouteTable *t);

/*
 * A message to collect the arguments of a routed call (never sent itself;
 * its body is copied into the call once the agent is there).
 */
int route_new_args(Broker *b, sd_bus_message **ret);

/* Call Agent1.<member> in vm with args (consumed; may be NULL for none). */
int route_call(Broker *b, const char *vm, const char *member, sd_bus_message *args, uint64_t timeout_usec,
               RouteDoneFn done, void *userdata);

/* Calls sent to vm's agent that it has not answered yet. */
unsigned route_n_sent(Broker *b, const char *vm);

/* Fail every pending call (the broker is shutting down), calling back each. */
void route_cancel_all(Broker *b);

/* From channel.c: vm's agent said Hello on a new connection / its connection is gone. */
void route_agent_ready(Broker *b, const char *vm);
void route_agent_lost(Broker *b, const char *vm);
