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
 * lets CHANNEL_PAUSE_QUEUED_REPLIES replies pile up unread is not read for
 * CHANNEL_PAUSE_MSEC (then one message per pause while they stay unread);
 * one that reads none in CHANNEL_MAX_STALLS such pauses in a row, or lets
 * more than CHANNEL_MAX_QUEUED_REPLIES pile up, sends
 * something sd-bus cannot parse, or fails authentication is disconnected.
 * Requests in flight throttle reading too (guest-services.h).
 */
#pragma once

#include "broker/broker.h"

#define GUEST_INTERFACE "org.vmfed.Federation1.Guest"
/* Above the requests one VM may have in flight (guest-services.h), whose replies may all come at once. */
#define CHANNEL_MAX_QUEUED_REPLIES 8192
/* Replies queued unread (beyond the socket buffers) at which reading pauses for CHANNEL_PAUSE_MSEC. */
#define CHANNEL_PAUSE_QUEUED_REPLIES 256
#define CHANNEL_PAUSE_MSEC 5
/* Pauses in a row (2 s) in which the peer read none of its replies: it does not read. */
#define CHANNEL_MAX_STALLS 400
#define CHANNEL_BACKLOG 16
#define CHANNEL_SNDBUF (64 * 1024)

/*
 * The broker's channels, one per VM (broker_channel_table()).  It watches
 * the VM events (broker/vm-events.h): a disposable of ours that is down
 * loses its channel.
 */
ChannelTable *channel_table_new(Broker *b);
ChannelTable *channel_table_free(ChannelTable *t);

/* vm's channel, created (listening) when it has none: 1 created, 0 it had one; *ret (may be NULL) gets it. */
int channel_ensure(Broker *b, const char *vm, Channel **ret);

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

/*
 * Backpressure (guest-request.c decides when): stop or resume reading vm's
 * connection.  While stopped, vm's further messages wait in its socket.
 * Refused (false) while the broker waits for an answer of vm's agent, which
 * would be behind them.  Returns whether reading is now stopped.
 */
bool channel_set_throttled(Broker *b, const char *vm, bool throttled);
/* route.c sent a call to vm's agent: its connection is read again (the answer is due there). */
void channel_agent_call_sent(Broker *b, const char *vm);

/* One accepted connection on a channel: the userdata of Guest method handlers. */
typedef struct GuestConnection GuestConnection;
Broker *guest_connection_broker(GuestConnection *g);
/* The channel's VM: the caller of every message on this connection. */
const char *guest_connection_vm(GuestConnection *g);
/* -ENOBUFS when the peer floods (it is being disconnected: do not answer). */
int guest_connection_check_flood(GuestConnection *g);

/* Create/remove channels so that there is exactly one per defined VM. */
int channel_sync_all(Broker *b);
