/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the netvm links (not for other modules): the types shared by
 * netvm-link.c (one netvm's vmfed-netd connection and its calls) and
 * netvm-links.c (which VMs are clients of which netvm; the NetvmLinks of
 * broker/netvm-link.h).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "broker/addressing.h"
#include "broker/network-conf.h"
#include "federation/vmspec.h"
#include "netvm/host/hostnet.h"

typedef struct Broker Broker;
typedef struct NetvmLinks NetvmLinks;
typedef struct NetvmLink NetvmLink;

/* A running client VM, as sent to its netvm. */
typedef struct ClientVm {
        char *name;
        char *netvm;
        char *mac;
        char *address;
        char *address6;   /* NULL: no IPv6 ([Network] Subnet6=none) */
        char *rules;      /* vmfed.firewall(5) text; NULL: no firewall */
        char *tap;
        bool transient;   /* a disposable: its address index is not kept */
        unsigned network_pending; /* SetNetwork calls (IPv4, IPv6) to its agent queued or in flight */
} ClientVm;

struct NetvmLink {
        NetvmLinks *links;
        char *name;
        char *path;
        char *bridge;
        bool running;       /* the netvm runs: keep (re)connecting */
        guint retry_id;
        sd_bus *bus;        /* vmfed-netd's connection, NULL: none */
        GSource *source;
        guint reap_id;
        uint64_t n_connections;
        NetvmUplink up;     /* from network.conf */
};

struct NetvmLinks {
        Broker *broker;         /* netvm-links.c only */
        char *channel_dir;      /* STATE/channels */
        char *bridge;           /* the default netvm's bridge (--bridge), NULL: none */
        NetworkConf *conf;
        Addressing *addressing;
        HostNet *host;          /* NULL: no host plumbing (no --bridge, or not root) */
        GHashTable *netvms;     /* name → NetvmLink* */
        GHashTable *clients;    /* name → ClientVm* */
        unsigned watch;         /* on broker/vm-events.h */
        unsigned broker_watch;  /* broker events (broker.h): the federation ready, an agent's Hello */
};

/* ---- netvm-link.c: one netvm's link ---- */

/* The link of netvm s, created (with its bridge) when it has none. */
NetvmLink *netvm_link_ensure(NetvmLinks *links, const VmSpec *s);
void netvm_link_free(void *p);
void netvm_link_drop_connection(NetvmLink *n, const char *why);
/* Serve fd as the link's connection to vmfed-netd and send it the whole state (takes fd). */
int netvm_link_adopt(NetvmLink *n, int fd);
/* The netvm runs: (re)connect; it stopped: drop the connection. */
void netvm_link_set_running(NetvmLink *n, bool running);
/* AddClient/RemoveClient (n may be NULL; nothing without a connection: the whole state follows). */
void netvm_link_add_client(NetvmLink *n, ClientVm *c);
void netvm_link_remove_client(NetvmLink *n, const char *name);
