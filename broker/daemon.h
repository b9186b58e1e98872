/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The composition root of vmfedd (broker/daemon.c): the only place that
 * creates, starts and frees the broker's modules.  For main.c and the fuzz
 * harness; no other module includes this header.
 */
#pragma once

#include "broker/broker.h"

typedef struct Daemon Daemon;

/* vmfedd's options (copied). */
typedef struct DaemonOptions {
        const char *config_dir;
        const char *state_dir;
        const char *libvirt_uri;
        const char *bus_address;   /* NULL: the system bus */
        const char *manage_group;  /* its members may change the federation; NULL: nobody (only root, polkit) */
        const char *domain_prefix; /* --domain-prefix (tests), NULL: "vmfed-" */
        const char *bridge;        /* --bridge: the default netvm's bridge, NULL: no NICs */
} DaemonOptions;

/* The broker and the modules that need no bus nor hypervisor (VM events, operations, the channel table). */
int daemon_new(const DaemonOptions *o, Daemon **ret);
Daemon *daemon_free(Daemon *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Daemon, daemon_free)

Broker *daemon_broker(Daemon *d);

/* Connect to the bus and the hypervisor, load the configuration, export objects. */
int daemon_start(Daemon *d);
int daemon_run(Daemon *d);
/* Leave daemon_run() (SIGTERM, SIGINT). */
void daemon_quit(Daemon *d);
