/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The netvm's desired network state: uplink, downstream interface, DNS
 * servers and the client VMs (name, MAC, addresses, firewall), and its text
 * format (docs/netvm.md, "State file").
 *
 * The format is INI-like and line oriented so that every error names
 * SOURCE:LINE.  A state that does not parse is refused whole.  A client
 * whose *firewall rules* do not parse is kept, with a broken Firewall, so
 * that its traffic is dropped (fail closed) while every other client keeps
 * working; netstate_firewall_errors() reports those errors.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "netvm/firewall.h"
#include "netvm/fwplan.h"
#include "netvm/ifname.h"
#include "netvm/netaddr.h"

#define NETSTATE_CLIENTS_MAX 4096
#define NETSTATE_ADDRS_MAX 16
#define NETSTATE_NAME_MAX 48

/*
 * A client is immutable once it is in a NetState (only the caches below are
 * filled in lazily), so states share clients by reference: copying a state
 * costs O(clients), not O(rules).
 */
typedef struct NetClient {
        unsigned n_ref;
        char *name;
        uint8_t mac[6];
        GArray *addrs;          /* NetAddr, host addresses (full prefix) */
        bool has_rules;         /* false: no firewall given = "default accept" */
        GPtrArray *rule_lines;  /* char*, the rules' text, one line each */
        Firewall *firewall;     /* never NULL; may be broken */
        char *digest;           /* cache for ruleset.c: digest of the above, or NULL */
        FwPlan *plan;           /* cache for ruleset.c: the compiled firewall, or NULL */
        void *model;            /* cache for ruleset.c: its part of the nftables model, or NULL */
        void (*model_free)(void *model);
} NetClient;

typedef struct NetState {
        char *uplink;
        GArray *uplink_addrs;   /* NetAddr with prefix; may be empty (managed elsewhere) */
        GArray *gateways;       /* NetAddr host; at most one per family */
        GArray *dns;            /* NetAddr host: upstream resolvers */
        char *downstream;
        GArray *downstream_addrs;       /* NetAddr with prefix: the clients' gateway */
        bool dhcp;              /* [Downstream] DHCP=yes: serve clients DHCPv4 (and RA/DHCPv6) */
        GPtrArray *clients;     /* NetClient*, sorted by name */
        GPtrArray *rules_files; /* char*, the RulesFile= paths read (for watching) */
} NetState;

NetState *netstate_new(void);
NetState *netstate_free(NetState *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NetState, netstate_free)

NetClient *netclient_ref(NetClient *c);
NetClient *netclient_unref(NetClient *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NetClient, netclient_unref)

/*
 * Parse a state from untrusted text.  source names it in errors.
 * RulesFile= is resolved against rules_dir; with rules_dir NULL it is an
 * error (states received over D-Bus must be self-contained).
 * On failure returns -EINVAL and *errorsp gets every error, one
 * "SOURCE:LINE: message" per line.
 */
int netstate_parse(const char *source, const char *untrusted_text, const char *rules_dir,
                   NetState **ret, char **errorsp);

/* Read and parse a state file; RulesFile= relative to its directory. */
int netstate_load(const char *path, NetState **ret, char **errorsp);

/* The canonical text of s (rules inlined as Rule= lines); parses back to an equal state. */
char *netstate_format(const NetState *s);

/* A new state sharing s's clients (see NetClient). */
NetState *netstate_copy(const NetState *s);

/* Same desired state (same text)?  Clients shared by reference compare in O(1). */
bool netstate_equal(const NetState *a, const NetState *b);

/*
 * Build a client from untrusted D-Bus arguments.  untrusted_rules NULL means
 * no firewall ("default accept"); rule errors are reported against
 * "NAME.rules:LINE" and leave the client fail-closed (see above).
 */
int netclient_new(const char *untrusted_name, const char *untrusted_mac,
                  const char *const *untrusted_addrs, const char *untrusted_rules,
                  NetClient **ret, char **errorp);

/*
 * Add c to s, replacing a client of the same name.  Refuses (-EEXIST) a MAC
 * or an address another client has, and (-EINVAL) an address outside every
 * downstream subnet or equal to the gateway.  Takes over the caller's
 * reference to c on success only.
 */
int netstate_put_client(NetState *s, NetClient *c, char **errorp);
/* -ENOENT if there is no such client. */
int netstate_remove_client(NetState *s, const char *name);
NetClient *netstate_find_client(const NetState *s, const char *name);

/* Firewall errors of all clients, or NULL when every firewall parsed. */
char *netstate_firewall_errors(const NetState *s);

bool netstate_name_is_valid(const char *name);
