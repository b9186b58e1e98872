/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Channel: the broker's end of one VM's virtio-serial channel.
 *
 * The broker listens on STATE/channels/NAME.sock (mode 0660 in a 0750
 * directory); QEMU connects to it (libvirt <source mode='connect'> with
 * <reconnect enabled='yes'/>), so a broker restart only makes QEMU
 * reconnect.  On an accepted connection the broker is the server side of a
 * peer-to-peer D-Bus connection (ANONYMOUS auth, no fd passing) and serves
 * org.vmfed.Federation1.Guest on /org/vmfed/Federation1.  Whoever calls on
 * that connection *is* the channel's VM: nothing in a message (sender,
 * headers, arguments) can change that.
 *
 * Limits: one connection per channel (a new one replaces the old: the
 * guest's agent reconnects after a broker or agent restart); at most
 * BUS_SOURCE_MAX_PER_DISPATCH messages per main-loop iteration; a peer that
 * lets more than CHANNEL_MAX_QUEUED_REPLIES replies pile up unread, sends
 * something sd-bus cannot parse, or fails authentication is disconnected.
 */
#pragma once

#include "broker/broker.h"

#define GUEST_INTERFACE "org.vmfed.Federation1.Guest"
#define CHANNEL_MAX_QUEUED_REPLIES 256
#define CHANNEL_BACKLOG 16
#define CHANNEL_SNDBUF (64 * 1024)

int channel_new(Broker *b, const char *vm_name, Channel **ret);
void channel_free(void *c);

/*
 * Serve a connected socket as the channel's connection (replacing the one
 * it has): what the listener does with each accepted connection, and what
 * the guest channel's fuzz target (tests/broker/fuzz-guest-channel.c) does
 * with one end of a socketpair.  Takes cfd (non-blocking) in every case.
 */
void channel_adopt_connection(Channel *c, int cfd);

const char *channel_path(Channel *c);
bool channel_is_connected(Channel *c);

/*
 * The bus of vm's agent when it is connected and has said Hello (the broker
 * calls org.vmfed.Agent1 there, see broker/route.h), else NULL.
 */
sd_bus *channel_agent_bus(Broker *b, const char *vm);

/* One accepted connection on a channel: the userdata of Guest method handlers. */
typedef struct GuestConnection GuestConnection;
Broker *guest_connection_broker(GuestConnection *g);
/* The channel's VM: the caller of every message on this connection. */
const char *guest_connection_vm(GuestConnection *g);
/* -ENOBUFS when the peer floods (it is being disconnected: do not answer). */
int guest_connection_check_flood(GuestConnection *g);

/* Create/remove channels so that there is exactly one per defined VM. */
int channel_sync_all(Broker *b);
