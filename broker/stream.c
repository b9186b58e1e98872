/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/audit.h"
#include "broker/errors.h"
#include "broker/route.h"
#include "broker/stream-internal.h"
#include "broker/stream-port.h"
#include "federation/domain-xml.h"
#include "federation/netvm-query.h"
#include "common/log.h"
#include "common/macro.h"

/* ---- ports of a VM ---------------------------------------------------------------- */

/*
 * Streams= of vm (a disposable's is its template's, as its domain was defined).  A running VM whose
 * vms.d/ file changed keeps the ports it started with; a larger count than it has only fails to connect.
 */
static unsigned vm_port_count(Broker *b, const char *vm) {
        Federation *f = broker_federation(b);
        const VmSpec *spec = f ? federation_vm_spec(f, vm) : NULL;
        const char *template = !spec && f ? federation_vm_template(f, vm) : NULL;
        if (template)
                spec = federation_vm_spec(f, template);
        const VmObject *o = spec ? NULL : broker_find_vm(b, vm);
        if (o)
                spec = o->spec;
        return spec ? spec->streams : 0;
}

static void vm_ports_free(VmPorts *v) {
        if (!v)
                return;
        for (unsigned i = 0; i < v->n; i++)
                v->port[i] = stream_port_free(v->port[i]);
        g_free(v->port);
        g_free(v->owner);
        g_free(v->vm);
        g_free(v);
}

VmPorts *vm_ports_get(StreamTable *t, const char *vm) {
        VmPorts *v = g_hash_table_lookup(t->vms, vm);
        if (v)
                return v;
        v = g_new0(VmPorts, 1);
        v->table = t;
        v->vm = g_strdup(vm);
        v->n = vm_port_count(t->broker, vm);
        v->port = g_new0(StreamPort *, MAX(v->n, 1u));
        v->owner = g_new0(Stream *, MAX(v->n, 1u));
        g_hash_table_insert(t->vms, v->vm, v);
        return v;
}

int vm_ports_free_index(VmPorts *v) {
        for (unsigned i = 0; i < v->n; i++)
                if (!v->owner[i])
                        return (int) i;
        return -1;
}

/* Ports of target held by streams from source. */
unsigned vm_ports_held_by(VmPorts *target, const char *source) {
        unsigned n = 0;
        for (unsigned i = 0; i < target->n; i++)
                if (target->owner[i] && strcmp(target->owner[i]->source, source) == 0)
                        n++;
        return n;
}

static void port_event(StreamPort *p, StreamPortEventKind kind, const char *why, void *userdata);
static void table_bury(StreamTable *t, StreamPort *p);

int vm_ports_connect(VmPorts *v, unsigned i) {
        if (v->port[i] && stream_port_is_open(v->port[i]))
                return 0;
        /* A closed port may be the one whose dispatch is running (its failure started this stream). */
        if (v->port[i]) {
                stream_port_set_handler(v->port[i], NULL, NULL);
                table_bury(v->table, g_steal_pointer(&v->port[i]));
        }
        g_autofree char *agent = g_strdup_printf("%s/%s.sock", broker_channel_dir(v->table->broker), v->vm);
        g_autofree char *path = domain_xml_stream_channel_path(agent, i);
        return stream_port_connect(path, v->vm, i, port_event, v, &v->port[i]);
}

/* ---- a stream's end ------------------------------------------------------------------ */

static void stream_audit(Stream *s, const char *decision) {
        audit_log_stream(&(AuditStreamRecord) {
                .stream_id = s->id,
                .source = s->source,
                .target = s->target,
                .service = s->service,
                .arg = s->arg,
                .decision = decision,
                .bytes_in = s->bytes[SIDE_CALLER],
                .bytes_out = s->bytes[SIDE_TARGET],
                .duration_usec = s->started_usec ? (uint64_t) (g_get_monotonic_time() - s->started_usec) : 0,
                .status = s->status,
                .message = s->message,
        });
}

static gboolean table_reap_hosts(gpointer userdata) {
        StreamTable *t = userdata;
        t->reap_id = 0;
        g_ptr_array_set_size(t->dead_hosts, 0);
        return G_SOURCE_REMOVE;
}

/* Free p from an idle: never inside the dispatch of a port (it may be p's own). */
static void table_bury(StreamTable *t, StreamPort *p) {
        g_ptr_array_add(t->dead_hosts, p);
        if (!t->reap_id)
                t->reap_id = g_idle_add(table_reap_hosts, t);
}

static void stream_release_side(Stream *s, int side) {
        if (!s->have_port[side])
                return;
        if (s->raw[side]) {
                s->have_port[side] = false;
                s->bytes[side] = stream_port_bytes(s->raw[side]);
                stream_port_set_handler(s->raw[side], NULL, NULL);
                stream_port_stop_flow(s->raw[side]);
                table_bury(s->table, g_steal_pointer(&s->raw[side]));
                return;
        }
        VmPorts *v = g_hash_table_lookup(s->table->vms, side == SIDE_CALLER ? s->source : s->target);
        s->have_port[side] = false;
        if (!v || v->owner[s->port[side]] != s)
                return;
        StreamPort *p = v->port[s->port[side]];
        if (p) {
                s->bytes[side] = stream_port_bytes(p);
                stream_port_stop_flow(p);
                stream_port_bind(p, 0);
        }
        v->owner[s->port[side]] = NULL;
}

static void stream_free(Stream *s) {
        for (int i = 0; i < N_SIDES; i++)
                stream_release_side(s, i);
        for (int i = 0; i < N_SIDES; i++)
                if (s->raw[i]) { /* never bound: not started */
                        stream_port_set_handler(s->raw[i], NULL, NULL);
                        table_bury(s->table, g_steal_pointer(&s->raw[i]));
                }
        s->host_fd = safe_close(s->host_fd);
        g_hash_table_remove(s->table->streams, &s->id);
        g_free(s->source);
        g_free(s->target);
        g_free(s->service);
        g_free(s->arg);
        g_free(s->message);
        g_free(s);
}

static void route_ignore(Broker *b, sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        if (error)
                log_debug("Stream message not delivered: %s", error->message ? error->message : error->name);
}

static void tell_vmv(Broker *b, const char *vm, const char *member, const char *types, va_list ap) {
        if (vm[0] == '@')
                return; /* the host's end: its caller hears through StreamCallbacks.ended */
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *args = NULL;
        int r = route_new_args(b, &args);
        if (r >= 0)
                r = sd_bus_message_appendv(args, types, ap);
        if (r >= 0)
                r = route_call(b, vm, member, steal_pointer(&args), STREAM_START_TIMEOUT_USEC, route_ignore, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot send %s to %s: %m", member, vm);
}

void stream_tell_vm(Broker *b, const char *vm, const char *member, const char *types, ...) {
        va_list ap;
        va_start(ap, types);
        tell_vmv(b, vm, member, types, ap);
        va_end(ap);
}

static void stream_tell(Stream *s, const char *vm, const char *member, const char *types, ...) {
        va_list ap;
        va_start(ap, types);
        tell_vmv(s->table->broker, vm, member, types, ap);
        va_end(ap);
}

/* The port a side of s is bound to (NULL: none, or gone). */
StreamPort *stream_side_port(Stream *s, int side) {
        if (s->raw[side])
                return s->raw[side];
        VmPorts *v = g_hash_table_lookup(s->table->vms, side == SIDE_CALLER ? s->source : s->target);
        return v && s->have_port[side] ? v->port[s->port[side]] : NULL;
}

/* Release what is done; once both sides are free the stream is over. */
void stream_progress(Stream *s) {
        if (s->state != STREAM_RUNNING)
                return;
        if (s->exited && !s->eof[SIDE_CALLER] && s->have_port[SIDE_CALLER]) {
                /* The handler is gone: what the caller still sends is dropped until its EOF. */
                StreamPort *p = stream_side_port(s, SIDE_CALLER);
                if (p) {
                        stream_port_set_flow(p, NULL, true);
                        stream_port_refuse_input(p);
                }
        }
        if (s->exited && s->eof[SIDE_TARGET] && !s->ended_sent) {
                s->ended_sent = true;
                stream_tell(s, s->source, "StreamEnded", "tis", s->id, s->status, s->message ? s->message : "");
                stream_release_side(s, SIDE_TARGET);
        }
        if (s->ended_sent && s->eof[SIDE_CALLER])
                stream_release_side(s, SIDE_CALLER);
        if (s->have_port[SIDE_CALLER] || s->have_port[SIDE_TARGET])
                return;
        log_debug("Stream %" PRIu64 " %s -> %s %s ended: status %d.", s->id, s->source, s->target, s->service, s->status);
        stream_audit(s, "allow");
        StreamCallbacks cb = s->cb;
        void *ud = s->userdata;
        Broker *b = s->table->broker;
        StreamTable *t = s->table;
        int status = s->status;
        g_autofree char *message = g_steal_pointer(&s->message);
        stream_free(s);
        if (cb.ended)
                cb.ended(b, status, message, ud);
        stream_table_try_start(t);
}

void stream_abort(Stream *s, const char *error_name, const char *untrimmed_why) {
        /* What goes to the caller in StreamEnded: an agent refuses a message over STREAM_MESSAGE_MAX. */
        char why[STREAM_MESSAGE_MAX + 1];
        g_strlcpy(why, untrimmed_why, sizeof why);
        errors_utf8_cut(why);
        StreamState was = s->state;
        StreamTable *t = s->table;
        Broker *b = t->broker;
        StreamCallbacks cb = s->cb;
        void *ud = s->userdata;

        log_info("Stream %" PRIu64 " %s -> %s %s aborted: %s", s->id, s->source, s->target, s->service, why);
        if (was == STREAM_QUEUED)
                g_queue_remove(&t->queue, s);
        if (was != STREAM_QUEUED && !s->exited)
                stream_tell(s, s->target, "StopStream", "ts", s->id, why);
        bool answered = s->answered;
        if (answered && !s->ended_sent)
                stream_tell(s, s->source, "StreamEnded", "tis", s->id, -1, why);
        s->status = -1;
        g_free(s->message);
        s->message = g_strdup(why);
        if (answered) {
                for (int i = 0; i < N_SIDES; i++)
                        stream_release_side(s, i); /* counts what each port moved, for the audit */
                stream_audit(s, "aborted");
        }
        stream_free(s);
        if (answered) {
                if (cb.ended)
                        cb.ended(b, -1, why, ud);
        } else if (cb.opened)
                cb.opened(b, -ECONNABORTED, NULL, error_name, why, ud);
        stream_table_try_start(t);
}

/* ---- events of the ports ------------------------------------------------------------- */

static Stream *port_owner(VmPorts *v, StreamPort *p, int *ret_side) {
        Stream *s = v->owner[stream_port_index(p)];
        if (!s)
                return NULL;
        *ret_side = strcmp(s->source, v->vm) == 0 && s->have_port[SIDE_CALLER] &&
                                    s->port[SIDE_CALLER] == stream_port_index(p)
                            ? SIDE_CALLER
                            : SIDE_TARGET;
        return s;
}

static gboolean port_reap(gpointer userdata) {
        StreamTable *t = userdata;
        GHashTableIter it;
        gpointer value;
        g_hash_table_iter_init(&it, t->vms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                VmPorts *v = value;
                for (unsigned i = 0; i < v->n; i++)
                        if (v->port[i] && !stream_port_is_open(v->port[i]) && !v->owner[i])
                                v->port[i] = stream_port_free(v->port[i]);
        }
        return G_SOURCE_REMOVE;
}

static void port_event(StreamPort *p, StreamPortEventKind kind, const char *why, void *userdata) {
        VmPorts *v = userdata;
        int side = SIDE_CALLER;
        Stream *s = port_owner(v, p, &side);

        if (kind == STREAM_PORT_FAILED) {
                g_idle_add(port_reap, v->table); /* not from inside the port's own dispatch */
                if (s) {
                        g_autofree char *m = g_strdup_printf("stream port %u of %s: %s", stream_port_index(p), v->vm, why);
                        stream_abort(s, VMFED_ERROR_FAILED, m);
                }
                return;
        }
        if (!s)
                return;
        s->bytes[side] = stream_port_bytes(p);
        s->eof[side] = true;
        stream_progress(s);
}

/* A host end of a stream (userdata: the stream; unset before the stream goes). */
static void host_event(StreamPort *p, StreamPortEventKind kind, const char *why, void *userdata) {
        Stream *s = userdata;
        int side = p == s->raw[SIDE_TARGET] ? SIDE_TARGET : SIDE_CALLER;
        if (kind == STREAM_PORT_FAILED) {
                g_autofree char *m = g_strdup_printf("the host's end: %s", why);
                stream_abort(s, VMFED_ERROR_FAILED, m);
                return;
        }
        s->bytes[side] = stream_port_bytes(p);
        s->eof[side] = true;
        stream_progress(s);
}

Stream *stream_table_lookup(StreamTable *t, uint64_t id) {
        return g_hash_table_lookup(t->streams, &id);
}

/* ---- public -------------------------------------------------------------------------------- */

static void table_on_event(Broker *b, const BrokerEvent *e, void *userdata) {
        StreamTable *t = userdata;
        GHashTableIter it;
        gpointer value;

        if (e->kind != BROKER_EVENT_AGENT_LOST || !e->vm)
                return;
        g_autofree char *why = g_strdup_printf("the agent of %s went away", e->vm);
        for (;;) {
                Stream *hit = NULL;
                g_hash_table_iter_init(&it, t->streams);
                while (!hit && g_hash_table_iter_next(&it, NULL, &value)) {
                        Stream *s = value;
                        if (strcmp(s->source, e->vm) == 0 || strcmp(s->target, e->vm) == 0)
                                hit = s;
                }
                if (!hit)
                        break;
                if (strcmp(hit->target, e->vm) == 0)
                        hit->exited = true; /* nobody to stop there */
                stream_abort(hit, VMFED_ERROR_FAILED, why);
        }
        /* Its port connections start afresh (with the padding) next time. */
        g_hash_table_remove(t->vms, e->vm);
}

static void dead_host_free(void *p) {
        stream_port_free(p);
}

StreamTable *stream_table_new(Broker *b) {
        StreamTable *t = g_new0(StreamTable, 1);
        t->broker = b;
        t->vms = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) vm_ports_free);
        t->streams = g_hash_table_new(g_int64_hash, g_int64_equal);
        g_queue_init(&t->queue);
        t->dead_hosts = g_ptr_array_new_with_free_func(dead_host_free);
        t->next_id = 1;
        t->ref = g_rc_box_new0(TableRef);
        t->ref->table = t;
        t->watch = broker_watch_add(b, table_on_event, t, NULL);
        return t;
}

StreamTable *stream_table_free(StreamTable *t) {
        if (!t)
                return NULL;
        broker_watch_remove(t->broker, t->watch);
        for (;;) {
                GHashTableIter it;
                gpointer value;
                g_hash_table_iter_init(&it, t->streams);
                if (!g_hash_table_iter_next(&it, NULL, &value))
                        break;
                stream_abort(value, VMFED_ERROR_FAILED, "the broker is shutting down");
        }
        g_queue_clear(&t->queue);
        if (t->reap_id)
                g_source_remove(t->reap_id);
        g_ptr_array_unref(t->dead_hosts);
        t->ref->table = NULL;
        g_rc_box_release(t->ref);
        g_hash_table_unref(t->streams);
        g_hash_table_unref(t->vms);
        g_free(t);
        return NULL;
}

/* host: the caller's raw end (source "@host"); host_target: the target's (target "@host"), host_fd its peer. */
static int stream_new(StreamTable *t, const char *source, const char *target, const char *service, const char *arg,
                      const StreamCallbacks *cb, void *userdata, StreamPort *host, StreamPort *host_target,
                      int host_fd, uint64_t *ret_id) {
        unsigned queued = 0;
        for (GList *l = t->queue.head; l; l = l->next)
                queued += strcmp(((Stream *) l->data)->source, source) == 0;
        if (queued >= STREAM_MAX_QUEUED_PER_VM)
                return -EBUSY;
        if (strcmp(source, target) == 0)
                return -ELOOP; /* both ends would be the same ports */
        if ((!host && vm_ports_get(t, source)->n == 0) || (!host_target && vm_ports_get(t, target)->n == 0))
                return -ENXIO;

        Stream *s = g_new0(Stream, 1);
        s->table = t;
        s->id = t->next_id++;
        s->source = g_strdup(source);
        s->target = g_strdup(target);
        s->service = g_strdup(service);
        s->arg = arg && *arg ? g_strdup(arg) : NULL;
        s->cb = *cb;
        s->userdata = userdata;
        s->state = STREAM_QUEUED;
        s->raw[SIDE_CALLER] = host;
        s->raw[SIDE_TARGET] = host_target;
        s->host_fd = host_fd;
        for (int i = 0; i < N_SIDES; i++)
                if (s->raw[i]) /* have_port[i] is set when it starts */
                        stream_port_set_handler(s->raw[i], host_event, s);
        g_hash_table_insert(t->streams, &s->id, s);
        g_queue_push_tail(&t->queue, s);
        if (ret_id)
                *ret_id = s->id;
        stream_table_try_start(t);
        return 0;
}

int stream_open(StreamTable *t, const char *source, const char *target, const char *service, const char *arg,
                const StreamCallbacks *cb, void *userdata) {
        return stream_new(t, source, target, service, arg, cb, userdata, NULL, NULL, -EBADF, NULL);
}

int stream_open_host(StreamTable *t, const char *target, const char *service, const char *arg,
                     const StreamCallbacks *cb, void *userdata, int *ret_fd, uint64_t *ret_id) {
        int sp[2];
        StreamPort *host = NULL;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return -errno;
        int r = stream_port_new_raw(sp[0], "@host", NULL, NULL, &host);
        if (r < 0) {
                close(sp[0]);
                close(sp[1]);
                return r;
        }
        r = stream_new(t, "@host", target, service, arg, cb, userdata, host, NULL, -EBADF, ret_id);
        if (r < 0) {
                stream_port_free(host);
                close(sp[1]);
                return r;
        }
        *ret_fd = sp[1];
        return 0;
}

int stream_open_to_host(StreamTable *t, const char *source, const char *service, const char *arg,
                        const StreamCallbacks *cb, void *userdata) {
        int sp[2];
        StreamPort *end = NULL;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
                return -errno;
        int r = stream_port_new_raw(sp[0], "@host", NULL, NULL, &end);
        if (r < 0) {
                close(sp[0]);
                close(sp[1]);
                return r;
        }
        r = stream_new(t, source, "@host", service, arg, cb, userdata, NULL, end, sp[1], NULL);
        if (r < 0) {
                stream_port_free(end);
                close(sp[1]);
        }
        return r;
}

int stream_exited(StreamTable *t, const char *vm, uint64_t id, int status, const char *message) {
        Stream *s = stream_table_lookup(t, id);
        if (!s || strcmp(s->target, vm) != 0 || s->state != STREAM_RUNNING || s->exited)
                return -ENOENT;
        s->exited = true;
        s->status = status;
        s->message = message && *message ? g_strdup(message) : NULL;
        stream_progress(s);
        return 0;
}

int stream_close(StreamTable *t, const char *vm, uint64_t id) {
        Stream *s = stream_table_lookup(t, id);
        if (!s || (strcmp(s->target, vm) != 0 && strcmp(s->source, vm) != 0))
                return -ENOENT;
        g_autofree char *why = g_strdup_printf("closed by %s", vm);
        if (strcmp(s->target, vm) == 0)
                s->exited = true; /* it stopped its handler itself */
        stream_abort(s, VMFED_ERROR_FAILED, why);
        return 0;
}

unsigned stream_table_count(StreamTable *t, const char *vm) {
        GHashTableIter it;
        gpointer value;
        unsigned n = 0;
        g_hash_table_iter_init(&it, t->streams);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                Stream *s = value;
                n += strcmp(s->source, vm) == 0 || strcmp(s->target, vm) == 0;
        }
        return n;
}
