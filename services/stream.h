/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * StreamTable: the agent's side of the streams of docs/streams.md — the
 * stream ports of this VM and the streams on them, both ends:
 *
 *   - as the *caller* (an app's Guest1.OpenStream): the broker's answer
 *     binds a port and tag to one end of a socketpair whose other end the
 *     app gets; Agent1.StreamEnded ends it, Guest1.WaitStream reports it.
 *   - as the *target* (Agent1.StartService): the handler of the service
 *     (vmfed.services(5)) runs with its stdin and stdout on the port; when
 *     it has exited and its output's EOF frame is written, the broker gets
 *     Guest.StreamExited; Agent1.StopStream kills it.
 *
 * Ports are opened when a stream first uses one and kept open: in a VM the
 * virtio port org.vmfed.stream.I (found through sysfs), in tests
 * (StreamOptions.socket_prefix) a unix socket PREFIX I ".sock" on which the
 * agent listens like QEMU would, the broker's latest connection being the
 * port.  The broker connection going away aborts every stream (handlers
 * killed, apps' sockets closed, WaitStream answered -1); the ports stay.
 */
#pragma once

#include <stdint.h>
#include <systemd/sd-bus.h>

typedef struct StreamTable StreamTable;

typedef struct StreamOptions {
        const char *socket_prefix; /* emulate the ports on PREFIX I ".sock"; NULL: the VM's virtio ports */
        unsigned n_ports;          /* how many to emulate (socket_prefix only) */
        const char *sysfs_root;
        const char *services_dir;
        const char *service_user; /* NULL: the agent's own user */
} StreamOptions;

/* A method call to the broker's org.vmfed.Federation1.Guest, to fill and send; -ENOTCONN without one. */
typedef int (*StreamBrokerCallFn)(void *userdata, const char *member, sd_bus_message **ret);

int stream_table_new(const StreamOptions *o, StreamBrokerCallFn call, void *userdata, StreamTable **ret);
/* Kills the handlers, closes the apps' sockets and the ports, removes the emulated ports' sockets. */
StreamTable *stream_table_free(StreamTable *t);
/* The broker connection is gone: every stream aborts. */
void stream_table_broker_lost(StreamTable *t);

/* org.vmfed.Agent1 (the broker's calls), sd-bus method handlers but for the table. */
int stream_table_start_service(StreamTable *t, sd_bus_message *m, sd_bus_error *error);
int stream_table_stream_ended(StreamTable *t, sd_bus_message *m, sd_bus_error *error);
int stream_table_stop_stream(StreamTable *t, sd_bus_message *m, sd_bus_error *error);

/*
 * Guest1.OpenStream(s target, s service, s argument, a{sv} options): read
 * and check the app's arguments (strings point into m).  0, or an error set.
 */
int stream_table_check_open(sd_bus_message *m, const char **ret_target, const char **ret_service,
                            const char **ret_argument, sd_bus_error *error);
/* The broker's answer to its OpenStream (s vm, u port, u tag, t stream): set the stream up, answer the app. */
int stream_table_opened(StreamTable *t, sd_bus_message *guest_call, sd_bus_message *broker_reply);
/* Guest1.WaitStream(t stream) → (i status, s message). */
int stream_table_wait_stream(StreamTable *t, sd_bus_message *m, sd_bus_error *error);
