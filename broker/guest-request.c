/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Routed requests from guests: OpenURL, OpenFile, Launch, PingVM.  Decided
 * by the policy, delivered to the target's agent (broker/route.c), starting
 * the target, a disposable or — after an ask — a persona switch first.
 */
#include "broker/guest-services.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker/ask.h"
#include "broker/channel.h"
#include "broker/errors.h"
#include "broker/route.h"
#include "broker/stream.h"
#include "common/log.h"
#include "common/stream-frame.h"
#include "common/macro.h"
#include "services/service-args.h"

#define ROUTE_TIMEOUT_USEC (60ULL * 1000000)
#define ROUTE_LONG_TIMEOUT_USEC (24ULL * 3600 * 1000000) /* a viewer in a disposable: as long as it runs */

/* ---- routed requests: OpenURL, OpenFile, Launch, PingVM ------------------------------- */

typedef enum RequestKind {
        REQUEST_OPEN_URL,
        REQUEST_OPEN_FILE,
        REQUEST_LAUNCH,
        REQUEST_PING,
        REQUEST_STREAM, /* OpenStream: the service is the guest's, checked like any */
} RequestKind;

typedef struct Request {
        Broker *broker;
        RequestKind kind;
        sd_bus_message *m;   /* the guest's call, answered at the end */
        char *source;
        char *service;       /* "vmfed.OpenURL" */
        char *arg;           /* policy argument or NULL */
        char *url, *app_id, *file_name;
        char **args;
        const void *data;    /* OpenFile content: inside m, which the request holds */
        size_t size;
        char *vm;            /* where it went */
        char *dispvm;        /* started for this request: released at the end */
} Request;

typedef struct InFlight {
        unsigned n;      /* routed requests of one source VM not answered yet */
        uint64_t bytes;  /* OpenFile data they hold */
} InFlight;

static InFlight in_flight_get(Broker *b, const char *source) {
        GHashTable *t = guest_services_in_flight(b);
        InFlight *f = t ? g_hash_table_lookup(t, source) : NULL;
        return f ? *f : (InFlight) {};
}

static bool in_flight_high(InFlight f) {
        return f.n >= GUEST_SERVICES_MAX_IN_FLIGHT || f.bytes >= GUEST_SERVICES_MAX_IN_FLIGHT_BYTES;
}

/*
 * Backpressure: at the high-water mark the source's channel is not read any
 * more (its next requests wait in its socket), below the low-water mark it
 * is read again.
 */
static void in_flight_add(Broker *b, const char *source, int delta, uint64_t bytes) {
        GHashTable *t = guest_services_in_flight(b);
        if (!t)
                return;
        InFlight *f = g_hash_table_lookup(t, source);
        if (!f) {
                f = g_new0(InFlight, 1);
                g_hash_table_insert(t, g_strdup(source), f);
        }
        f->n += (unsigned) delta;
        f->bytes = delta > 0 ? f->bytes + bytes : f->bytes - bytes;
        if (in_flight_high(*f))
                (void) channel_set_throttled(b, source, true);
        else if (f->n <= GUEST_SERVICES_IN_FLIGHT_LOW && f->bytes <= GUEST_SERVICES_MAX_IN_FLIGHT_BYTES / 2)
                (void) channel_set_throttled(b, source, false);
        if (f->n == 0)
                g_hash_table_remove(t, source);
}

static void request_free(Request *q) {
        if (!q)
                return;
        in_flight_add(q->broker, q->source, -1, q->size);
        if (q->dispvm) {
                int r = broker_dispvm_release(q->broker, q->dispvm);
                if (r < 0 && r != -ENOENT)
                        log_warning_errno(r, "Cannot release disposable %s: %m", q->dispvm);
                else
                        log_info("Disposable %s released after its job.", q->dispvm);
        }
        sd_bus_message_unref(q->m);
        g_free(q->source);
        g_free(q->service);
        g_free(q->arg);
        g_free(q->url);
        g_free(q->app_id);
        g_free(q->file_name);
        g_strfreev(q->args);
        g_free(q->vm);
        g_free(q->dispvm);
        g_free(q);
}

static void request_fail(Request *q, const char *name, const char *fmt, ...) _printf_(3, 4);
static void request_fail(Request *q, const char *name, const char *fmt, ...) {
        va_list ap;
        char buf[1024];
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        log_info("%s from %s failed: %s", q->service, q->source, buf);
        (void) sd_bus_reply_method_error(q->m, &SD_BUS_ERROR_MAKE_CONST(name, errors_utf8_cut(buf)));
        request_free(q);
}

static void request_routed(Broker *b, sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Request *q = userdata;

        if (error) {
                const char *name = error->name && g_str_has_prefix(error->name, "org.vmfed.") ? error->name
                                                                                             : VMFED_ERROR_FAILED;
                /* TooLarge is the broker's own limit, checked before the policy (vmfed-guest open-file
                 * then streams the file: nothing was asked yet).  A target's, after the policy, is not. */
                if (strcmp(name, VMFED_ERROR_TOO_LARGE) == 0)
                        name = VMFED_ERROR_FAILED;
                request_fail(q, name, "%s: %s", q->vm, error->message ? error->message : error->name);
                return;
        }
        if (q->kind == REQUEST_OPEN_FILE) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *out = NULL;
                const void *data = NULL;
                size_t size = 0;
                int changed = 0;
                int r = sd_bus_message_read(reply, "b", &changed);
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'y', &data, &size);
                if (r >= 0 && size > guest_services_message_max(b))
                        r = -EFBIG;
                if (r >= 0)
                        r = sd_bus_message_new_method_return(q->m, &out);
                if (r >= 0)
                        r = sd_bus_message_append(out, "sb", q->vm, changed);
                if (r >= 0)
                        r = sd_bus_message_append_array(out, 'y', data ? data : "", size);
                if (r >= 0)
                        r = sd_bus_send(NULL, out, NULL);
                if (r < 0) {
                        request_fail(q, VMFED_ERROR_FAILED, "%s answered OpenFile with something unusable.", q->vm);
                        return;
                }
        } else
                (void) sd_bus_reply_method_return(q->m, "s", q->vm);
        log_debug("%s from %s done in %s.", q->service, q->source, q->vm);
        request_free(q);
}

static void request_stream_opened(Broker *b, int r, const StreamOpened *o, const char *error_name,
                                  const char *error, void *userdata) {
        Request *q = userdata;
        if (r < 0) {
                request_fail(q, error_name ? error_name : VMFED_ERROR_FAILED, "%s", error ? error : strerror(-r));
                return;
        }
        (void) sd_bus_reply_method_return(q->m, "suut", o->vm, (uint32_t) o->port, o->tag, o->id);
        log_debug("%s from %s: stream %" PRIu64 " to %s open.", q->service, q->source, o->id, o->vm);
        /* q lives on until the stream ends: a disposable started for it is released then. */
}

static void request_stream_ended(Broker *b, int status, const char *message, void *userdata) {
        request_free(userdata);
}

static void request_open_stream(Request *q, const char *vm) {
        static const StreamCallbacks cb = { .opened = request_stream_opened, .ended = request_stream_ended };
        StreamTable *t = guest_services_streams(q->broker);
        int r = t ? stream_open(t, q->source, vm, q->service, q->arg, &cb, q) : -ESHUTDOWN;
        if (r == -EBUSY)
                request_fail(q, VMFED_ERROR_BUSY, "Too many streams of %s are waiting for a port; try again later.",
                             q->source);
        else if (r == -ELOOP)
                request_fail(q, VMFED_ERROR_INVALID_ARGS, "A stream from %s to itself is not possible.", vm);
        else if (r == -ENXIO)
                request_fail(q, VMFED_ERROR_FAILED, "%s or %s has no stream ports (Streams=0).", q->source, vm);
        else if (r < 0)
                request_fail(q, VMFED_ERROR_FAILED, "Cannot open a stream to %s: %s", vm, strerror(-r));
}

static void request_route(Request *q, const char *vm) {
        Broker *b = q->broker;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *args = NULL;
        const char *member = NULL;
        bool wait = q->dispvm != NULL; /* a disposable lives as long as its job */
        uint64_t timeout = wait ? ROUTE_LONG_TIMEOUT_USEC : ROUTE_TIMEOUT_USEC;
        int r;

        g_free(q->vm);
        q->vm = g_strdup(vm);
        if (q->kind == REQUEST_STREAM) {
                request_open_stream(q, vm);
                return;
        }
        r = q->kind == REQUEST_PING ? 0 : route_new_args(b, &args); /* Ping: no arguments to carry */
        if (r >= 0)
                switch (q->kind) {
                case REQUEST_OPEN_URL:
                        member = "OpenURL";
                        r = sd_bus_message_append(args, "sb", q->url, wait);
                        break;
                case REQUEST_LAUNCH:
                        member = "Launch";
                        r = sd_bus_message_append(args, "s", q->app_id);
                        if (r >= 0)
                                r = sd_bus_message_append_strv(args, q->args);
                        if (r >= 0)
                                r = sd_bus_message_append(args, "b", wait);
                        break;
                case REQUEST_OPEN_FILE:
                        member = "OpenFile";
                        timeout = ROUTE_LONG_TIMEOUT_USEC;
                        r = sd_bus_message_append(args, "s", q->file_name);
                        if (r >= 0)
                                r = sd_bus_message_append_array(args, 'y', q->data ? q->data : "", q->size);
                        break;
                case REQUEST_PING:
                        member = "Ping";
                        break;
                case REQUEST_STREAM:
                        break;
                }
        if (r >= 0)
                r = route_call(b, vm, member, steal_pointer(&args), timeout, request_routed, q);
        if (r < 0)
                request_fail(q, VMFED_ERROR_FAILED, "Cannot route to %s: %s", vm, strerror(-r));
}

static void request_vm_ready(Broker *b, int r, const char *vm, const char *error, void *userdata) {
        Request *q = userdata;

        if (r < 0) {
                request_fail(q, VMFED_ERROR_FAILED, "%s", error ? error : strerror(-r));
                return;
        }
        request_route(q, vm);
}

static void request_dispvm_ready(Broker *b, int r, const char *vm, const char *error, void *userdata) {
        Request *q = userdata;

        if (r < 0) {
                request_fail(q, VMFED_ERROR_FAILED, "No disposable: %s", error ? error : strerror(-r));
                return;
        }
        q->dispvm = g_strdup(vm);
        log_info("Disposable %s started for %s from %s.", vm, q->service, q->source);
        request_route(q, vm);
}

/* For a persona that needs a switch: the switch itself is asked for (never silent). */
static int request_switch_answered(Broker *b, const char *target, const char *why, char **ret_why, void *userdata);

/* Launch: the app must be declared for the VM (or the disposable's template). */
/* The template of a disposable for source: its DefaultDispVM=, else the only disposable template. */
static const char *dispvm_template(Broker *b, const char *source) {
        const VmObject *o = broker_find_vm(b, source);
        const char *only = NULL;
        if (o && o->spec->default_dispvm)
                return o->spec->default_dispvm;
        for (guint i = 0; i < vm_model_n_vms(broker_model(b)); i++) {
                const VmSpec *c = vm_model_vm(broker_model(b), i);
                if (c->role != VM_ROLE_DISPOSABLE_TEMPLATE)
                        continue;
                if (only)
                        return NULL; /* several: the policy must name one */
                only = c->name;
        }
        return only;
}

static bool request_app_declared(Request *q, const char *target) {
        const char *vm = target;
        if (strcmp(vm, "@dispvm") == 0)
                vm = dispvm_template(q->broker, q->source);
        else if (g_str_has_prefix(vm, "@dispvm:"))
                vm += strlen("@dispvm:");
        if (!vm)
                return false;
        const char *const *ids = guest_services_apps(q->broker, vm);
        return ids && g_strv_contains(ids, q->app_id);
}

/* Deliver an allowed request to target (a VM name or @dispvm[:TEMPLATE]). */
static void request_deliver(Request *q, const char *target, bool autostart) {
        Broker *b = q->broker;
        g_autofree char *err = NULL;
        int r;

        if (q->kind == REQUEST_LAUNCH && !request_app_declared(q, target)) {
                request_fail(q, VMFED_ERROR_NOT_FOUND, "%s does not offer the application %s (services.conf [Apps]).",
                             target, q->app_id);
                return;
        }
        if (g_str_has_prefix(target, "@dispvm")) {
                r = broker_dispvm_start(b, target, q->source, request_dispvm_ready, q, &err);
                if (r < 0)
                        request_fail(q, VMFED_ERROR_FAILED, "No disposable for %s: %s", target,
                                     err ? err : strerror(-r));
                return;
        }
        const char *state = guest_services_vm_state(b, target);
        if (!state) {
                request_fail(q, VMFED_ERROR_NOT_FOUND, "No VM named %s.", target);
                return;
        }
        /* A connected agent means the VM runs, whatever libvirt said last. */
        if (channel_agent_bus(b, target) || strcmp(state, "running") == 0) {
                request_route(q, target);
                return;
        }
        if (q->kind == REQUEST_PING || !autostart) {
                request_fail(q, VMFED_ERROR_FAILED, "%s is not running%s.", target,
                             q->kind == REQUEST_PING ? "" : " and the policy says autostart=no");
                return;
        }
        const VmObject *o = broker_find_vm(b, target);
        const char *active = broker_active_persona(b);
        if (o->spec->role == VM_ROLE_PERSONA && active && strcmp(active, target) != 0) {
                char *cands[] = { (char *) target, NULL };
                g_autofree char *service = g_strdup_printf("vmfed.Admin.SwitchPersona+%s", target);
                g_free(q->vm);
                q->vm = g_strdup(target);
                int64_t id = ask_new(b, q->source, service, cands, target, false /* not a rule's ask */, request_switch_answered,
                                     q);
                if (id < 0)
                        request_fail(q, VMFED_ERROR_BUSY, "Too many questions pending.");
                else
                        log_info("%s from %s needs a switch to %s: asking (question %" PRIi64 ").", q->service,
                                 q->source, target, id);
                return;
        }
        r = broker_vm_ensure_running(b, target, request_vm_ready, q, &err);
        if (r < 0)
                request_fail(q, r == -ENOENT ? VMFED_ERROR_NOT_FOUND : r == -EBUSY ? VMFED_ERROR_BUSY : VMFED_ERROR_FAILED,
                             "Cannot start %s: %s", target, err ? err : strerror(-r));
}

static void request_switched(Broker *b, int r, const char *vm, const char *error, void *userdata) {
        request_vm_ready(b, r, vm, error, userdata);
}

static int request_switch_answered(Broker *b, const char *target, const char *why, char **ret_why, void *userdata) {
        Request *q = userdata;
        g_autofree char *err = NULL;

        if (!target) {
                request_fail(q, VMFED_ERROR_ACCESS_DENIED, "Switching to %s was not allowed: %s", q->vm, why);
                return 0;
        }
        int r = guest_admin_operation(b, GUEST_ADMIN_SWITCH, target, request_switched, q, &err);
        if (r < 0) {
                *ret_why = g_strdup_printf("Cannot switch to %s: %s", target, err ? err : strerror(-r));
                request_fail(q, VMFED_ERROR_FAILED, "%s", *ret_why);
                return r;
        }
        return 0;
}

static int request_answered(Broker *b, const char *target, const char *why, char **ret_why, void *userdata) {
        Request *q = userdata;
        PolicyDecision d;
        char rule[300];

        if (!target) {
                request_fail(q, VMFED_ERROR_ACCESS_DENIED, "%s", why);
                return 0;
        }
        /* Re-check the chosen target against the policy in force now. */
        int r = guest_services_evaluate(b, q->service, q->arg, q->source, target, &d, rule, sizeof rule);
        if (r < 0 || d.action == POLICY_ACTION_DENY) {
                *ret_why = g_strdup_printf("The policy does not allow %s for %s now (%s).", target, q->service, rule);
                request_fail(q, VMFED_ERROR_ACCESS_DENIED, "%s", *ret_why);
                return -EACCES;
        }
        const char *where = d.action == POLICY_ACTION_ALLOW && d.target ? d.target : target;
        g_autofree char *where_copy = g_strdup(where);
        request_deliver(q, where_copy, d.autostart);
        return 0;
}

/* Decide a parsed, validated request. */
static int request_decide(Request *q, const char *untrusted_target, sd_bus_error *error) {
        Broker *b = q->broker;
        PolicyDecision d;
        char rule[300];
        int r;

        /*
         * Past the high-water mark only when the channel could not stop being read
         * (the broker waits for an answer of this VM's agent): refuse, memory stays bounded.
         * The slack is for what was read before reading stopped.
         */
        InFlight f = in_flight_get(b, q->source);
        if (f.n > GUEST_SERVICES_MAX_IN_FLIGHT + GUEST_SERVICES_IN_FLIGHT_SLACK ||
            f.bytes > GUEST_SERVICES_MAX_IN_FLIGHT_BYTES + guest_services_message_max(b)) {
                request_free(q);
                return sd_bus_error_setf(error, VMFED_ERROR_BUSY,
                                         "Too many requests of this VM are pending (%u, %" PRIu64 " bytes); try again later.",
                                         f.n - 1, f.bytes - q->size);
        }
        if (!guest_services_target_is_valid(untrusted_target)) {
                request_free(q);
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "Target '%s' is not a VM name, @default or @dispvm.",
                                         ERRORS_EXCERPT(untrusted_target, 64));
        }
        const char *target = untrusted_target;

        r = guest_services_evaluate(b, q->service, q->arg, q->source, target, &d, rule, sizeof rule);
        if (r < 0) {
                guest_services_audit(b, q->source, target, q->service, q->arg, "deny", rule, d.notify);
                request_free(q);
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "Malformed request: %s", rule);
        }
        guest_services_audit(b, q->source, d.action == POLICY_ACTION_ALLOW ? d.target : target, q->service, q->arg,
              policy_action_to_string(d.action), rule, d.notify);
        switch (d.action) {
        case POLICY_ACTION_DENY:
                r = sd_bus_error_setf(error, VMFED_ERROR_ACCESS_DENIED, "The policy does not allow %s to %s (%s).",
                                      q->service, target, rule);
                request_free(q);
                return r;
        case POLICY_ACTION_ALLOW:
                request_deliver(q, d.target, d.autostart);
                return 1;
        case POLICY_ACTION_ASK: {
                const char *def = d.default_target ? d.default_target
                                  : strcmp(target, "@default") != 0 ? target : NULL;
                g_auto(GStrv) cands = guest_services_ask_candidates(b, q->service, q->arg, q->source, def);
                if (!cands[0]) {
                        r = sd_bus_error_setf(error, VMFED_ERROR_ACCESS_DENIED,
                                              "The policy asks for %s but allows no target.", q->service);
                        request_free(q);
                        return r;
                }
                g_autofree char *service = q->arg ? g_strdup_printf("%s+%s", q->service, q->arg) : g_strdup(q->service);
                int64_t id = ask_new(b, q->source, service, cands, def, d.notify, request_answered, q);
                if (id < 0) {
                        request_free(q);
                        return sd_bus_error_set(error, VMFED_ERROR_BUSY, "Too many questions pending; try again.");
                }
                return 1;
        }
        }
        request_free(q);
        return -EINVAL;
}

static Request *request_new(GuestConnection *g, sd_bus_message *m, RequestKind kind, const char *service,
                            size_t size) {
        Request *q = g_new0(Request, 1);
        q->size = size;
        in_flight_add(guest_connection_broker(g), guest_connection_vm(g), +1, size);
        q->broker = guest_connection_broker(g);
        q->kind = kind;
        q->m = sd_bus_message_ref(m);
        q->source = g_strdup(guest_connection_vm(g));
        q->service = g_strdup(service);
        return q;
}

int guest_request_open_url(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        Broker *b = guest_connection_broker(g);
        const char *untrusted_url, *untrusted_target;
        g_autofree char *why = NULL;
        int r;

        r = sd_bus_message_read(m, "ss", &untrusted_url, &untrusted_target);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        if (!service_args_url_is_valid(untrusted_url, guest_services_url_schemes(b), &why))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "%s", why);
        Request *q = request_new(g, m, REQUEST_OPEN_URL, "vmfed.OpenURL", 0);
        q->url = g_strdup(untrusted_url);
        return request_decide(q, untrusted_target, error);
}

int guest_request_open_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        Broker *b = guest_connection_broker(g);
        const char *untrusted_name, *untrusted_target;
        const void *untrusted_data;
        size_t size;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_name);
        if (r >= 0)
                r = sd_bus_message_read_array(m, 'y', &untrusted_data, &size);
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &untrusted_target);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        if (!service_args_file_name_is_valid(untrusted_name))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "File name '%s' is not a plain name: no '/', not starting with '.' or '-'.",
                                         ERRORS_EXCERPT(untrusted_name, 64));
        if (size > guest_services_message_max(b))
                return sd_bus_error_setf(error, VMFED_ERROR_TOO_LARGE,
                                         "Files up to %" PRIu64 " bytes can be opened in one call; larger ones go "
                                         "through a vmfed.OpenFile stream (vmfed-guest open-file does so).",
                                         guest_services_message_max(b));
        Request *q = request_new(g, m, REQUEST_OPEN_FILE, "vmfed.OpenFile", size);
        q->file_name = g_strdup(untrusted_name);
        q->data = untrusted_data; /* no copy: q->m keeps it alive */
        return request_decide(q, untrusted_target, error);
}

int guest_request_launch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        const char *untrusted_app_id, *untrusted_target;
        g_auto(GStrv) untrusted_args = NULL;
        g_autofree char *why = NULL;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_app_id);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &untrusted_args);
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &untrusted_target);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        if (!service_args_app_id_is_valid(untrusted_app_id))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "Application id '%s' is not [A-Za-z0-9_.-], at most 127 characters, not "
                                         "starting with '.' or '-'.",
                                         ERRORS_EXCERPT(untrusted_app_id, 64));
        if (!service_args_args_are_valid((const char *const *) untrusted_args, &why))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "%s", why);
        Request *q = request_new(g, m, REQUEST_LAUNCH, "vmfed.Launch", 0);
        q->app_id = g_strdup(untrusted_app_id);
        q->arg = g_strdup(untrusted_app_id);
        q->args = g_steal_pointer(&untrusted_args);
        return request_decide(q, untrusted_target, error);
}

int guest_request_ping_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        const char *untrusted_target;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_target);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        Request *q = request_new(g, m, REQUEST_PING, "vmfed.Ping", 0);
        return request_decide(q, untrusted_target, error);
}


/* ---- streams (docs/streams.md): set up here, run by broker/stream.c ------------------------- */

int guest_request_open_stream(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        const char *untrusted_target, *untrusted_service, *untrusted_arg;
        long bad;
        int r;

        r = sd_bus_message_read(m, "sss", &untrusted_target, &untrusted_service, &untrusted_arg);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        bad = policy_service_invalid_at(untrusted_service, strlen(untrusted_service));
        if (bad >= 0)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "Service '%s' is not a service name ([A-Za-z0-9_.-], 1 to %d characters; "
                                         "first bad byte at %ld).",
                                         ERRORS_EXCERPT(untrusted_service, 64), POLICY_SERVICE_MAX, bad);
        bad = policy_arg_invalid_at(untrusted_arg, strlen(untrusted_arg));
        if (bad >= 0)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "Argument '%s' is not a service argument ([A-Za-z0-9_.+-], at most %d "
                                         "characters; first bad byte at %ld).",
                                         ERRORS_EXCERPT(untrusted_arg, 64), POLICY_ARG_MAX, bad);
        /* A stream to the broker itself: the clipboard's large copies and pastes. */
        if (strcmp(untrusted_target, "@host") == 0)
                return guest_clipboard_open_stream(m, g, untrusted_service, untrusted_arg, error);
        Request *q = request_new(g, m, REQUEST_STREAM, untrusted_service, 0);
        q->arg = *untrusted_arg ? g_strdup(untrusted_arg) : NULL;
        return request_decide(q, untrusted_target, error);
}

int guest_request_stream_exited(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        StreamTable *t = guest_services_streams(guest_connection_broker(g));
        const char *untrusted_message;
        uint64_t untrusted_id;
        int32_t untrusted_status;
        int r;

        r = sd_bus_message_read(m, "tis", &untrusted_id, &untrusted_status, &untrusted_message);
        if (r < 0)
                return r;
        if (!stream_status_is_valid(untrusted_status))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "Exit status %d is not -1, an exit code (0-255) or 128+signal.",
                                         untrusted_status);
        if (strlen(untrusted_message) > STREAM_MESSAGE_MAX)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "The message is longer than %d bytes.",
                                         STREAM_MESSAGE_MAX);
        r = t ? stream_exited(t, guest_connection_vm(g), untrusted_id, untrusted_status, untrusted_message) : -ENOENT;
        if (r < 0)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "No running stream %" PRIu64 " has %s as its target.", untrusted_id,
                                         guest_connection_vm(g));
        return sd_bus_reply_method_return(m, NULL);
}

int guest_request_close_stream(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        StreamTable *t = guest_services_streams(guest_connection_broker(g));
        uint64_t untrusted_id;
        int r;

        r = sd_bus_message_read(m, "t", &untrusted_id);
        if (r < 0)
                return r;
        r = t ? stream_close(t, guest_connection_vm(g), untrusted_id) : -ENOENT;
        if (r < 0)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND, "%s has no stream %" PRIu64 ".",
                                         guest_connection_vm(g), untrusted_id);
        return sd_bus_reply_method_return(m, NULL);
}
