/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The composition root of vmfedd (broker/daemon.c): the only place that
 * creates, starts and frees the broker's modules.  For main.c and the fuzz
 * harness; no other module includes this header.
 */
#pragma once

#include "broker/broker.h"

int broker_new(const char *config_dir, const char *state_dir, const char *libvirt_uri,
               const char *bus_address, Broker **ret);
Broker *broker_free(Broker *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Broker, broker_free)

/* Connect to the bus and the hypervisor, load the configuration, export objects. */
int broker_start(Broker *b);
int broker_run(Broker *b);
