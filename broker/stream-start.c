/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Setting a stream up (broker/stream.h): a queued stream gets a free port
 * on each side, fresh tags and its flows; the target's agent is asked for
 * the handler (Agent1.StartService), or for a stream to the host the
 * broker's own service gets its end.
 */
#include <errno.h>
#include <string.h>

#include "broker/errors.h"
#include "broker/route.h"
#include "broker/stream-internal.h"
#include "common/log.h"
#include "common/macro.h"

static void stream_started(Broker *b, sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        StartCall *call = userdata;
        StreamTable *t = call->ref->table;
        Stream *s = t ? stream_table_lookup(t, call->id) : NULL;
        uint64_t id = call->id;
        g_autofree char *target = call->target;
        g_rc_box_release(call->ref);
        g_free(call);

        if (!s || s->state != STREAM_STARTING) {
                /* Aborted meanwhile.  Its StopStream may have reached the target's agent before this
                 * StartService did (both waited for the agent): stop what the agent started since. */
                if (t && !error)
                        stream_tell_vm(b, target, "StopStream", "ts", id, "the stream was aborted while it started");
                return;
        }
        if (error) {
                /* The caller has its end already: it hears why through StreamEnded (status -1), the
                 * error's name in the message as vmfed-guest shows a D-Bus error's. */
                bool missing = error->name && strcmp(error->name, "org.vmfed.Agent1.Error.NoHandler") == 0;
                g_autofree char *m = g_strdup_printf("%s: %s (%s)", s->target,
                                                     ERRORS_EXCERPT(error->message ? error->message : error->name, 400),
                                                     missing ? "NotFound" : "Failed");
                s->exited = true; /* nothing runs there: no StopStream */
                stream_abort(s, missing ? VMFED_ERROR_NOT_FOUND : VMFED_ERROR_FAILED, m);
                return;
        }
        s->state = STREAM_RUNNING;
        /* The target's end is bound to its tag now: the caller's bytes may go. */
        StreamPort *sp = stream_side_port(s, SIDE_CALLER), *dp = stream_side_port(s, SIDE_TARGET);
        if (!sp || !dp) {
                stream_abort(s, VMFED_ERROR_FAILED, "a stream port went away while the stream started");
                return;
        }
        stream_port_set_flow(sp, dp, false);
        stream_progress(s);
}

/* The target is the host: both flows start now, and the host's service gets its end. */
static void stream_start_host(Stream *s) {
        StreamTable *t = s->table;
        uint64_t id = s->id;

        s->state = STREAM_RUNNING;
        stream_port_set_flow(stream_side_port(s, SIDE_CALLER), s->raw[SIDE_TARGET], false);
        s->answered = true;
        s->started_usec = g_get_monotonic_time();
        if (s->cb.opened)
                s->cb.opened(t->broker, 0,
                             &(StreamOpened) { .vm = s->target, .port = s->port[SIDE_CALLER],
                                               .tag = s->tag[SIDE_CALLER], .id = s->id },
                             NULL, NULL, s->userdata);
        s = stream_table_lookup(t, id);
        if (s && s->cb.host_start)
                s->cb.host_start(t->broker, id, steal_fd(&s->host_fd), s->userdata);
}

/* Bind both ports, start the flows, ask the target for the handler (dst NULL: the host is the target). */
static void stream_start(Stream *s, VmPorts *src, unsigned si, VmPorts *dst, unsigned di) {
        Broker *b = s->table->broker;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *args = NULL;
        int r;

        s->state = STREAM_STARTING;
        s->exited = true; /* until StartService is sent: nothing to stop in the target */
        r = src ? vm_ports_connect(src, si) : 0;
        if (r < 0) {
                g_autofree char *m = g_strdup_printf("cannot connect to stream port %u of %s: %s", si, src->vm, strerror(-r));
                stream_abort(s, VMFED_ERROR_FAILED, m);
                return;
        }
        r = dst ? vm_ports_connect(dst, di) : 0;
        if (r < 0) {
                g_autofree char *m = g_strdup_printf("cannot connect to stream port %u of %s: %s", di, dst->vm, strerror(-r));
                stream_abort(s, VMFED_ERROR_FAILED, m);
                return;
        }
        if (src)
                src->owner[si] = s;
        if (dst)
                dst->owner[di] = s;
        s->port[SIDE_CALLER] = si;
        s->port[SIDE_TARGET] = di;
        s->have_port[SIDE_CALLER] = s->have_port[SIDE_TARGET] = true;
        s->tag[SIDE_CALLER] = stream_frame_new_tag();
        do
                s->tag[SIDE_TARGET] = stream_frame_new_tag();
        while (s->tag[SIDE_TARGET] == s->tag[SIDE_CALLER]);
        StreamPort *sp = src ? src->port[si] : s->raw[SIDE_CALLER];
        StreamPort *dp = dst ? dst->port[di] : s->raw[SIDE_TARGET];
        stream_port_bind(sp, s->tag[SIDE_CALLER]);
        stream_port_bind(dp, s->tag[SIDE_TARGET]);
        /* The target's output may come before its agent's answer (both from the target, on two channels);
         * the caller's input waits for the answer: until then the target's port may not know the tag. */
        stream_port_set_flow(dp, sp, false);

        s->exited = false;
        if (!dst) {
                stream_start_host(s);
                return;
        }
        r = route_new_args(b, &args);
        if (r >= 0)
                r = sd_bus_message_append(args, "tsssuu", s->id, s->service, s->arg ? s->arg : "", s->source,
                                          (uint32_t) di, s->tag[SIDE_TARGET]);
        if (r >= 0) {
                StartCall *call = g_new(StartCall, 1);
                call->ref = g_rc_box_acquire(s->table->ref);
                call->id = s->id;
                call->target = g_strdup(s->target);
                r = route_call(b, s->target, "StartService", steal_pointer(&args), STREAM_START_TIMEOUT_USEC,
                               stream_started, call);
                if (r < 0) {
                        g_rc_box_release(call->ref);
                        g_free(call->target);
                        g_free(call);
                }
        }
        if (r < 0) {
                s->exited = true;
                stream_abort(s, VMFED_ERROR_FAILED, "cannot ask the target's agent to start the service");
                return;
        }
        /*
         * The caller is answered now, not after StartService's round trip to the target (setup as fast
         * as a routed call, like qrexec's connect): a handler that cannot start ends the stream with
         * status -1 and why.
         */
        s->answered = true;
        s->started_usec = g_get_monotonic_time();
        if (s->cb.opened)
                s->cb.opened(b, 0,
                             &(StreamOpened) { .vm = s->target, .port = s->port[SIDE_CALLER],
                                               .tag = s->tag[SIDE_CALLER], .id = s->id },
                             NULL, NULL, s->userdata);
}

void stream_table_try_start(StreamTable *t) {
        for (GList *l = t->queue.head; l;) {
                Stream *s = l->data;
                GList *next = l->next;
                VmPorts *src = s->raw[SIDE_CALLER] ? NULL : vm_ports_get(t, s->source);
                VmPorts *dst = s->raw[SIDE_TARGET] ? NULL : vm_ports_get(t, s->target);
                int si = src ? vm_ports_free_index(src) : 0, di = dst ? vm_ports_free_index(dst) : 0;
                if (si >= 0 && di >= 0 && (!dst || vm_ports_held_by(dst, s->source) < MAX(1u, (dst->n + 1) / 2))) {
                        g_queue_delete_link(&t->queue, l);
                        stream_start(s, src, (unsigned) si, dst, (unsigned) di);
                        stream_table_try_start(t); /* the queue may have changed under us */
                        return;
                }
                l = next;
        }
}
