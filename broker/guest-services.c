/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/guest-services.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/ask.h"
#include "broker/audit.h"
#include "broker/channel.h"
#include "broker/clipboard.h"
#include "broker/errors.h"
#include "broker/lifecycle.h"
#include "broker/operation.h"
#include "broker/route.h"
#include "common/log.h"
#include "common/macro.h"
#include "services/service-args.h"

#define ROUTE_TIMEOUT_USEC (60ULL * 1000000)
#define ROUTE_LONG_TIMEOUT_USEC (24ULL * 3600 * 1000000) /* a viewer in a disposable: as long as it runs */


/*
 * Switch, start and stop exactly as the host's Manager does them
 * (broker/lifecycle-iface.c): an Operation (Progress signals, tracked by
 * the lifecycle) around the federation library's call.  Only who decided
 * differs: the policy, for guests.
 */
typedef struct AdminOp {
        BrokerVmReadyFn cb;
        void *userdata;
        char *vm;
} AdminOp;

static void admin_op_done(Broker *b, int r, const char *message, void *userdata) {
        AdminOp *o = userdata;
        o->cb(b, r, o->vm, r < 0 ? message : NULL, o->userdata);
        g_free(o->vm);
        g_free(o);
}

typedef enum AdminKind { ADMIN_START, ADMIN_STOP, ADMIN_SWITCH } AdminKind;

static int admin_operation(Broker *b, AdminKind kind, const char *name, BrokerVmReadyFn cb, void *userdata,
                           char **ret_error) {
        const char *reason;
        Federation *f = lifecycle_federation(b->lifecycle, &reason);
        g_autofree char *error = NULL;
        int r;

        if (!f) {
                *ret_error = g_strdup(reason);
                return -ENXIO;
        }
        AdminOp *o = g_new0(AdminOp, 1);
        o->cb = cb;
        o->userdata = userdata;
        o->vm = g_strdup(name);
        g_autofree char *what = g_strdup_printf("%s %s (asked by a guest)",
                                                kind == ADMIN_START ? "start" : kind == ADMIN_STOP ? "stop" : "switch to",
                                                name);
        Operation *op = operation_new(b, NULL, what, admin_op_done, o);
        switch (kind) {
        case ADMIN_START:
                r = federation_start_vm(f, name, operation_callbacks(op), &error);
                break;
        case ADMIN_STOP:
                r = federation_stop_vm(f, name, false, operation_callbacks(op), &error);
                break;
        default:
                r = federation_switch_persona(f, name, operation_callbacks(op), &error);
                break;
        }
        if (r == -EALREADY) {
                operation_finish(op, 0, NULL); /* already running: what was asked for */
                return 0;
        }
        if (r < 0) {
                operation_cancel(op);
                g_free(o->vm);
                g_free(o);
                *ret_error = g_steal_pointer(&error);
                return r;
        }
        return 0;
}

static int admin_switch_persona(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        return admin_operation(b, ADMIN_SWITCH, name, cb, userdata, ret_error);
}

static int admin_stop_vm(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        return admin_operation(b, ADMIN_STOP, name, cb, userdata, ret_error);
}

static int admin_start_vm(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        return admin_operation(b, ADMIN_START, name, cb, userdata, ret_error);
}

/* ---- configuration ------------------------------------------------------------ */

static uint64_t parse_size(const char *s, bool *ok) {
        char *end;
        guint64 v = g_ascii_strtoull(s, &end, 10);
        uint64_t mult = 1;
        *ok = end != s;
        if (*end == 'K' || *end == 'k')
                mult = 1024, end++;
        else if (*end == 'M' || *end == 'm')
                mult = 1024 * 1024, end++;
        if (*end)
                *ok = false;
        return v * mult;
}

static void services_load_config(Broker *b, Services *s) {
        g_autofree char *path = g_build_filename(b->config_dir, "services.conf", NULL);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;

        s->clipboard_max = CLIPBOARD_DEFAULT_MAX_SIZE;
        s->clear_after_paste = true;
        s->url_schemes = g_strsplit("http;https;ftp", ";", -1);
        s->ask_timeout_sec = 60;
        s->agent_timeout_sec = 60;
        s->apps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_strfreev);
        s->in_flight = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &e)) {
                if (!g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                        log_error("%s: %s; using the defaults (no apps declared).", path, e->message);
                return;
        }
        g_autofree char *max = g_key_file_get_string(kf, "Clipboard", "MaxSize", NULL);
        if (max) {
                bool ok;
                uint64_t v = parse_size(max, &ok);
                if (!ok || v == 0 || v > CLIPBOARD_HARD_MAX_SIZE)
                        log_error("%s: [Clipboard] MaxSize=%s: expected 1 to 64M; keeping %" PRIu64 ".", path, max,
                                  s->clipboard_max);
                else
                        s->clipboard_max = v;
        }
        g_clear_error(&e);
        gboolean clear = g_key_file_get_boolean(kf, "Clipboard", "ClearAfterPaste", &e);
        if (!e)
                s->clear_after_paste = clear;
        g_auto(GStrv) schemes = g_key_file_get_string_list(kf, "Open", "URLSchemes", NULL, NULL);
        if (schemes) {
                g_strfreev(s->url_schemes);
                s->url_schemes = g_steal_pointer(&schemes);
        }
        g_clear_error(&e);
        int t = g_key_file_get_integer(kf, "Ask", "Timeout", &e);
        if (!e && t > 0)
                s->ask_timeout_sec = (unsigned) t;
        g_clear_error(&e);
        t = g_key_file_get_integer(kf, "Agents", "ConnectTimeout", &e);
        if (!e && t > 0)
                s->agent_timeout_sec = (unsigned) t;
        g_auto(GStrv) vms = g_key_file_get_keys(kf, "Apps", NULL, NULL);
        for (char **v = vms; v && *v; v++) {
                g_auto(GStrv) ids = g_key_file_get_string_list(kf, "Apps", *v, NULL, NULL);
                GPtrArray *ok = g_ptr_array_new();
                for (char **i = ids; i && *i; i++)
                        if (service_args_app_id_is_valid(*i))
                                g_ptr_array_add(ok, g_strdup(*i));
                        else
                                log_error("%s: [Apps] %s: '%s' is not an application id; ignored.", path, *v, *i);
                g_ptr_array_add(ok, NULL);
                g_hash_table_insert(s->apps, g_strdup(*v), g_ptr_array_free(ok, FALSE));
        }
}

int guest_services_start(Broker *b) {
        Services *s = g_new0(Services, 1);
        int r;

        services_load_config(b, s);
        s->clipboard = clipboard_new(s->clipboard_max, s->clear_after_paste);
        s->routes = route_table_new(s->agent_timeout_sec);
        s->asks = ask_queue_new(s->ask_timeout_sec);
        b->services = s;

        r = clipboard_register(b, s->clipboard);
        if (r >= 0)
                r = ask_register(b);
        return r;
}

void guest_services_stop(Broker *b) {
        if (!b->services)
                return;
        ask_queue_cancel_all(b);
        route_cancel_all(b);
}

void guest_services_free(Broker *b) {
        Services *s = b->services;
        if (!s)
                return;
        b->services = NULL;
        s->asks = ask_queue_free(s->asks);
        s->routes = route_table_free(s->routes);
        s->clipboard = clipboard_free(s->clipboard);
        g_strfreev(s->url_schemes);
        g_hash_table_unref(s->apps);
        g_hash_table_unref(s->in_flight);
        g_free(s);
}

/* ---- helpers ---------------------------------------------------------------------- */

static void audit(Broker *b, const char *source, const char *target, const char *service, const char *arg,
                  const char *decision, const char *rule) {
        audit_log(&(AuditRecord) {
                .request_id = broker_next_request_id(b),
                .source = source,
                .caller = "channel",
                .target = target,
                .service = service,
                .arg = arg,
                .decision = decision,
                .rule = rule,
        });
}

/* Evaluate; rule gets "FILE:LINE" or "default". */
static int evaluate(Broker *b, const char *service, const char *arg, const char *source, const char *target,
                    PolicyDecision *d, char *rule, size_t rule_size) {
        PolicyRequest req = { .service = service, .arg = arg && *arg ? arg : NULL, .source = source, .target = target };
        int r = policy_evaluate(b->policy, b->facts, &req, d);
        if (d->rule_file)
                snprintf(rule, rule_size, "%s:%u", d->rule_file, d->rule_line);
        else
                snprintf(rule, rule_size, "%s", d->reason ? d->reason : "default-deny");
        return r;
}

static bool target_is_valid(const char *t) {
        if (strcmp(t, "@default") == 0 || strcmp(t, "@dispvm") == 0)
                return true;
        if (g_str_has_prefix(t, "@dispvm:"))
                t += strlen("@dispvm:");
        size_t n = strlen(t);
        if (n == 0 || n > 31 || !g_ascii_isalpha(t[0]))
                return false;
        for (const char *p = t; *p; p++)
                if (!g_ascii_isalnum(*p) && *p != '_' && *p != '.' && *p != '-')
                        return false;
        return true;
}

/* Targets the user may pick for an ask: every VM (and @dispvm) the policy does not deny. */
static char **ask_candidates(Broker *b, const char *service, const char *arg, const char *source,
                             const char *default_target) {
        GPtrArray *c = g_ptr_array_new();
        PolicyDecision d;
        char rule[300];

        for (guint i = 0; i < b->vms->len; i++) {
                VmConfig *vm = g_ptr_array_index(b->vms, i);
                if (strcmp(vm->name, source) == 0 || vm->role == VM_ROLE_DISPOSABLE_TEMPLATE)
                        continue;
                if (evaluate(b, service, arg, source, vm->name, &d, rule, sizeof rule) >= 0 &&
                    d.action != POLICY_ACTION_DENY)
                        g_ptr_array_add(c, g_strdup(vm->name));
        }
        if (evaluate(b, service, arg, source, "@dispvm", &d, rule, sizeof rule) >= 0 && d.action != POLICY_ACTION_DENY)
                g_ptr_array_add(c, g_strdup("@dispvm"));
        if (default_target && *default_target) {
                bool have = false;
                for (guint i = 0; i < c->len; i++)
                        have = have || strcmp(g_ptr_array_index(c, i), default_target) == 0;
                if (!have)
                        g_ptr_array_add(c, g_strdup(default_target));
        }
        g_ptr_array_add(c, NULL);
        return (char **) g_ptr_array_free(c, FALSE);
}

static const char *vm_state(Broker *b, const char *name) {
        VmObject *o = broker_find_vm(b, name);
        return o ? o->state : NULL;
}

/* ---- routed requests: OpenURL, OpenFile, Launch, PingVM ------------------------------- */

typedef enum RequestKind {
        REQUEST_OPEN_URL,
        REQUEST_OPEN_FILE,
        REQUEST_LAUNCH,
        REQUEST_PING,
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
        void *data;          /* OpenFile content */
        size_t size;
        char *vm;            /* where it went */
        char *dispvm;        /* started for this request: released at the end */
} Request;

static unsigned in_flight_get(Broker *b, const char *source) {
        return b->services ? GPOINTER_TO_UINT(g_hash_table_lookup(b->services->in_flight, source)) : 0;
}

static void in_flight_add(Broker *b, const char *source, int delta) {
        if (!b->services)
                return;
        unsigned n = in_flight_get(b, source) + (unsigned) delta;
        if (n == 0)
                g_hash_table_remove(b->services->in_flight, source);
        else
                g_hash_table_insert(b->services->in_flight, g_strdup(source), GUINT_TO_POINTER(n));
}

static void request_free(Request *q) {
        if (!q)
                return;
        in_flight_add(q->broker, q->source, -1);
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
        g_free(q->data);
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
        (void) sd_bus_reply_method_error(q->m, &SD_BUS_ERROR_MAKE_CONST(name, buf));
        request_free(q);
}

static void request_routed(Broker *b, sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        Request *q = userdata;

        if (error) {
                request_fail(q, error->name && g_str_has_prefix(error->name, "org.vmfed.") ? error->name
                                                                                           : VMFED_ERROR_FAILED,
                             "%s: %s", q->vm, error->message ? error->message : error->name);
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
                if (r >= 0 && size > b->services->clipboard_max)
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

static void request_route(Request *q, const char *vm) {
        Broker *b = q->broker;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *args = NULL;
        const char *member = NULL;
        bool wait = q->dispvm != NULL; /* a disposable lives as long as its job */
        uint64_t timeout = wait ? ROUTE_LONG_TIMEOUT_USEC : ROUTE_TIMEOUT_USEC;
        int r;

        g_free(q->vm);
        q->vm = g_strdup(vm);
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
        VmObject *o = broker_find_vm(b, source);
        const char *only = NULL;
        if (o && o->config->default_dispvm)
                return o->config->default_dispvm;
        for (guint i = 0; i < b->vms->len; i++) {
                VmConfig *c = g_ptr_array_index(b->vms, i);
                if (c->role != VM_ROLE_DISPOSABLE_TEMPLATE)
                        continue;
                if (only)
                        return NULL; /* several: the policy must name one */
                only = c->name;
        }
        return only;
}

static bool request_app_declared(Request *q, const char *target) {
        Services *s = q->broker->services;
        const char *vm = target;
        if (strcmp(vm, "@dispvm") == 0)
                vm = dispvm_template(q->broker, q->source);
        else if (g_str_has_prefix(vm, "@dispvm:"))
                vm += strlen("@dispvm:");
        if (!vm)
                return false;
        char **ids = g_hash_table_lookup(s->apps, vm);
        return ids && g_strv_contains((const char *const *) ids, q->app_id);
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
        const char *state = vm_state(b, target);
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
        VmObject *o = broker_find_vm(b, target);
        if (o->config->role == VM_ROLE_PERSONA && b->active_persona && strcmp(b->active_persona, target) != 0) {
                char *cands[] = { (char *) target, NULL };
                g_autofree char *service = g_strdup_printf("vmfed.Admin.SwitchPersona+%s", target);
                g_free(q->vm);
                q->vm = g_strdup(target);
                int64_t id = ask_new(b, q->source, service, cands, target, request_switch_answered, q);
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
        int r = admin_switch_persona(b, target, request_switched, q, &err);
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
        int r = evaluate(b, q->service, q->arg, q->source, target, &d, rule, sizeof rule);
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

        if (in_flight_get(b, q->source) > GUEST_SERVICES_MAX_IN_FLIGHT) {
                request_free(q);
                return sd_bus_error_setf(error, VMFED_ERROR_BUSY,
                                         "Too many requests of this VM are pending (%d); try again later.",
                                         GUEST_SERVICES_MAX_IN_FLIGHT);
        }
        if (!target_is_valid(untrusted_target)) {
                request_free(q);
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "Target must be a VM name, @default or @dispvm.");
        }
        const char *target = untrusted_target;

        r = evaluate(b, q->service, q->arg, q->source, target, &d, rule, sizeof rule);
        if (r < 0) {
                audit(b, q->source, target, q->service, q->arg, "deny", rule);
                request_free(q);
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "Malformed request: %s", rule);
        }
        audit(b, q->source, d.action == POLICY_ACTION_ALLOW ? d.target : target, q->service, q->arg,
              policy_action_to_string(d.action), rule);
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
                g_auto(GStrv) cands = ask_candidates(b, q->service, q->arg, q->source, def);
                if (!cands[0]) {
                        r = sd_bus_error_setf(error, VMFED_ERROR_ACCESS_DENIED,
                                              "The policy asks for %s but allows no target.", q->service);
                        request_free(q);
                        return r;
                }
                g_autofree char *service = q->arg ? g_strdup_printf("%s+%s", q->service, q->arg) : g_strdup(q->service);
                int64_t id = ask_new(b, q->source, service, cands, def, request_answered, q);
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

static Request *request_new(GuestConnection *g, sd_bus_message *m, RequestKind kind, const char *service) {
        Request *q = g_new0(Request, 1);
        in_flight_add(guest_connection_broker(g), guest_connection_vm(g), +1);
        q->broker = guest_connection_broker(g);
        q->kind = kind;
        q->m = sd_bus_message_ref(m);
        q->source = g_strdup(guest_connection_vm(g));
        q->service = g_strdup(service);
        return q;
}

int guest_services_open_url(sd_bus_message *m, void *userdata, sd_bus_error *error) {
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
        if (!service_args_url_is_valid(untrusted_url, (const char *const *) b->services->url_schemes, &why))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "%s", why);
        Request *q = request_new(g, m, REQUEST_OPEN_URL, "vmfed.OpenURL");
        q->url = g_strdup(untrusted_url);
        return request_decide(q, untrusted_target, error);
}

int guest_services_open_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
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
                return sd_bus_error_set(error, VMFED_ERROR_INVALID_ARGS,
                                        "A file name must be a plain name: no '/', not starting with '.' or '-'.");
        if (size > b->services->clipboard_max)
                return sd_bus_error_setf(error, VMFED_ERROR_TOO_LARGE, "Files up to %" PRIu64 " bytes can be opened.",
                                         b->services->clipboard_max);
        Request *q = request_new(g, m, REQUEST_OPEN_FILE, "vmfed.OpenFile");
        q->file_name = g_strdup(untrusted_name);
        q->data = g_memdup2(untrusted_data, size);
        q->size = size;
        return request_decide(q, untrusted_target, error);
}

int guest_services_launch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
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
                return sd_bus_error_set(error, VMFED_ERROR_INVALID_ARGS,
                                        "An application id is [A-Za-z0-9_.-], at most 127 characters.");
        if (!service_args_args_are_valid((const char *const *) untrusted_args, &why))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "%s", why);
        Request *q = request_new(g, m, REQUEST_LAUNCH, "vmfed.Launch");
        q->app_id = g_strdup(untrusted_app_id);
        q->arg = g_strdup(untrusted_app_id);
        q->args = g_steal_pointer(&untrusted_args);
        return request_decide(q, untrusted_target, error);
}

int guest_services_ping_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        const char *untrusted_target;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_target);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        Request *q = request_new(g, m, REQUEST_PING, "vmfed.Ping");
        return request_decide(q, untrusted_target, error);
}

/* ---- clipboard ---------------------------------------------------------------------- */

int guest_services_copy(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        Broker *b = guest_connection_broker(g);
        const char *untrusted_mime;
        const void *untrusted_data;
        char mime[SERVICE_ARGS_MIME_MAX + 1];
        g_autofree char *why = NULL;
        size_t size;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_mime);
        if (r >= 0)
                r = sd_bus_message_read_array(m, 'y', &untrusted_data, &size);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        if (!service_args_mime_normalize(untrusted_mime, mime))
                return sd_bus_error_set(error, VMFED_ERROR_INVALID_ARGS,
                                        "A clipboard type is a MIME type such as text/plain or image/png.");
        r = clipboard_copy(b, b->services->clipboard, guest_connection_vm(g), mime, untrusted_data, size, &why);
        audit(b, guest_connection_vm(g), "@host", "vmfed.Clipboard.Copy", NULL, r < 0 ? "deny" : "allow",
              r == -EFBIG ? "too-large" : r == -EILSEQ ? "not-utf-8" : r < 0 ? "error" : "copy");
        if (r == -EFBIG)
                return sd_bus_error_setf(error, VMFED_ERROR_TOO_LARGE, "%s", why);
        if (r == -EILSEQ)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "%s", why);
        if (r < 0)
                return sd_bus_error_setf(error, VMFED_ERROR_FAILED, "%s", why);
        log_info("Clipboard: %zu bytes of %s copied from %s.", size, mime, guest_connection_vm(g));
        return sd_bus_reply_method_return(m, NULL);
}

typedef struct PasteRequest {
        Broker *broker;
        sd_bus_message *m;
        char *target;
        uint64_t generation;
} PasteRequest;

static void paste_request_free(PasteRequest *p) {
        if (!p)
                return;
        sd_bus_message_unref(p->m);
        g_free(p->target);
        g_free(p);
}

static int paste_deliver(Broker *b, sd_bus_message *m, const char *target) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Clipboard *c = b->services->clipboard;
        const char *owner, *mime;
        const void *data;
        size_t size;
        int r;

        r = clipboard_peek(c, &owner, &mime, &data, &size);
        if (r < 0)
                return sd_bus_reply_method_errorf(m, VMFED_ERROR_NOT_FOUND, "The clipboard is empty.");
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "ss", owner, mime);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', data, size);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                return r;
        log_info("Clipboard: %zu bytes of %s pasted from %s into %s.", size, mime, owner, target);
        if (clipboard_clear_after_paste(c))
                clipboard_clear(b, c, "pasted");
        return 1;
}

static int paste_answered(Broker *b, const char *target, const char *why, char **ret_why, void *userdata) {
        PasteRequest *p = userdata;

        if (!target)
                (void) sd_bus_reply_method_errorf(p->m, VMFED_ERROR_ACCESS_DENIED, "%s", why);
        else if (clipboard_generation(b->services->clipboard) != p->generation) {
                *ret_why = g_strdup("The clipboard changed while the question was pending; nothing was pasted.");
                (void) sd_bus_reply_method_errorf(p->m, VMFED_ERROR_CONFLICT, "%s", *ret_why);
                paste_request_free(p);
                return -ESTALE;
        } else
                (void) paste_deliver(b, p->m, p->target);
        paste_request_free(p);
        return 0;
}

int guest_services_paste(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        Broker *b = guest_connection_broker(g);
        Clipboard *c = b->services->clipboard;
        const char *target = guest_connection_vm(g);
        const char *owner, *mime;
        const void *data;
        size_t size;
        char arg[SERVICE_ARGS_MIME_MAX + 1], rule[300];
        PolicyDecision d;
        int r;

        if (guest_connection_check_flood(g) < 0)
                return 1;
        r = clipboard_peek(c, &owner, &mime, &data, &size);
        if (r < 0)
                return sd_bus_error_set(error, VMFED_ERROR_NOT_FOUND, "The clipboard is empty.");
        /* Pasting back into the VM that copied crosses no boundary. */
        if (strcmp(owner, target) == 0)
                return paste_deliver(b, m, target);

        /* Text is vmfed.Clipboard.Paste without argument; other types carry the type ("+image.png"). */
        service_args_mime_to_policy_arg(mime, arg);
        r = evaluate(b, "vmfed.Clipboard.Paste", arg, owner, target, &d, rule, sizeof rule);
        if (r >= 0 && d.action == POLICY_ACTION_ALLOW && d.target && strcmp(d.target, target) != 0) {
                d.action = POLICY_ACTION_DENY; /* a paste cannot be redirected into another VM */
                snprintf(rule, sizeof rule, "%s:%u (redirect)", d.rule_file ? d.rule_file : "?", d.rule_line);
        }
        audit(b, owner, target, "vmfed.Clipboard.Paste", arg, r < 0 ? "deny" : policy_action_to_string(d.action),
              rule);
        if (r < 0 || d.action == POLICY_ACTION_DENY)
                return sd_bus_error_setf(error, VMFED_ERROR_ACCESS_DENIED,
                                         "The policy does not allow pasting %s from %s into %s (%s).", mime, owner,
                                         target, rule);
        if (d.action == POLICY_ACTION_ALLOW)
                return paste_deliver(b, m, target);

        char *cands[] = { (char *) target, NULL };
        g_autofree char *service = *arg ? g_strdup_printf("vmfed.Clipboard.Paste+%s", arg)
                                        : g_strdup("vmfed.Clipboard.Paste");
        PasteRequest *p = g_new0(PasteRequest, 1);
        p->broker = b;
        p->m = sd_bus_message_ref(m);
        p->target = g_strdup(target);
        p->generation = clipboard_generation(c);
        if (ask_new(b, owner, service, cands, target, paste_answered, p) < 0) {
                paste_request_free(p);
                return sd_bus_error_set(error, VMFED_ERROR_BUSY, "Too many questions pending; try again.");
        }
        return 1;
}

/* ---- management from guests: vmfed.Admin.<Op> ---------------------------------------- */

typedef struct AdminRequest {
        Broker *broker;
        sd_bus_message *m;
        char *op;   /* "SwitchPersona", "StartVM", "StopVM" */
        char *vm;
        char *source;
} AdminRequest;

static void admin_request_free(AdminRequest *a) {
        if (!a)
                return;
        sd_bus_message_unref(a->m);
        g_free(a->op);
        g_free(a->vm);
        g_free(a->source);
        g_free(a);
}

static void admin_done(Broker *b, int r, const char *vm, const char *error, void *userdata) {
        AdminRequest *a = userdata;
        if (r < 0)
                (void) sd_bus_reply_method_errorf(a->m, r == -EBUSY ? VMFED_ERROR_BUSY : VMFED_ERROR_FAILED, "%s %s: %s",
                                                  a->op, a->vm, error ? error : strerror(-r));
        else
                (void) sd_bus_reply_method_return(a->m, NULL);
        admin_request_free(a);
}

/* The same internal functions as the host's Manager; only who decides differs. */
static void admin_act(AdminRequest *a) {
        Broker *b = a->broker;
        g_autofree char *err = NULL;
        int r;

        if (strcmp(a->op, "StartVM") == 0)
                r = admin_start_vm(b, a->vm, admin_done, a, &err);
        else if (strcmp(a->op, "StopVM") == 0)
                r = admin_stop_vm(b, a->vm, admin_done, a, &err);
        else
                r = admin_switch_persona(b, a->vm, admin_done, a, &err);
        if (r < 0) {
                (void) sd_bus_reply_method_errorf(a->m,
                                                  r == -ENOENT  ? VMFED_ERROR_NOT_FOUND
                                                  : r == -EBUSY ? VMFED_ERROR_BUSY
                                                                : VMFED_ERROR_FAILED,
                                                  "%s %s: %s", a->op, a->vm, err ? err : strerror(-r));
                admin_request_free(a);
        }
}

static int admin_answered(Broker *b, const char *target, const char *why, char **ret_why, void *userdata) {
        AdminRequest *a = userdata;
        PolicyDecision d;
        char rule[300];
        g_autofree char *service = g_strdup_printf("vmfed.Admin.%s", a->op);

        if (!target) {
                (void) sd_bus_reply_method_errorf(a->m, VMFED_ERROR_ACCESS_DENIED, "%s", why);
                admin_request_free(a);
                return 0;
        }
        int r = evaluate(b, service, NULL, a->source, a->vm, &d, rule, sizeof rule);
        if (r < 0 || d.action == POLICY_ACTION_DENY) {
                *ret_why = g_strdup_printf("The policy does not allow %s on %s now (%s).", service, a->vm, rule);
                (void) sd_bus_reply_method_errorf(a->m, VMFED_ERROR_ACCESS_DENIED, "%s", *ret_why);
                admin_request_free(a);
                return -EACCES;
        }
        admin_act(a);
        return 0;
}

int guest_services_admin(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        Broker *b = guest_connection_broker(g);
        const char *op = sd_bus_message_get_member(m);
        const char *untrusted_vm, *source = guest_connection_vm(g);
        char rule[300];
        PolicyDecision d;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_vm);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        if (strlen(untrusted_vm) > 31 || !broker_find_vm(b, untrusted_vm))
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND, "No VM named '%.31s'.", untrusted_vm);
        const char *vm = untrusted_vm;
        g_autofree char *service = g_strdup_printf("vmfed.Admin.%s", op);

        r = evaluate(b, service, NULL, source, vm, &d, rule, sizeof rule);
        audit(b, source, vm, service, NULL, r < 0 ? "deny" : policy_action_to_string(d.action), rule);
        if (r < 0 || d.action == POLICY_ACTION_DENY)
                return sd_bus_error_setf(error, VMFED_ERROR_ACCESS_DENIED, "The policy does not allow %s on %s (%s).",
                                         service, vm, rule);

        AdminRequest *a = g_new0(AdminRequest, 1);
        a->broker = b;
        a->m = sd_bus_message_ref(m);
        a->op = g_strdup(op);
        a->vm = g_strdup(vm);
        a->source = g_strdup(source);
        if (d.action == POLICY_ACTION_ALLOW) {
                admin_act(a);
                return 1;
        }
        char *cands[] = { (char *) vm, NULL };
        if (ask_new(b, source, service, cands, vm, admin_answered, a) < 0) {
                admin_request_free(a);
                return sd_bus_error_set(error, VMFED_ERROR_BUSY, "Too many questions pending; try again.");
        }
        return 1;
}

int guest_services_list_vms(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        GuestConnection *g = userdata;
        Broker *b = guest_connection_broker(g);
        const char *source = guest_connection_vm(g);
        PolicyDecision d;
        char rule[300];
        int r;

        if (guest_connection_check_flood(g) < 0)
                return 1;
        r = evaluate(b, "vmfed.Admin.ListVMs", NULL, source, "@host", &d, rule, sizeof rule);
        audit(b, source, "@host", "vmfed.Admin.ListVMs", NULL, r < 0 ? "deny" : policy_action_to_string(d.action),
              rule);
        if (r < 0 || d.action != POLICY_ACTION_ALLOW)
                return sd_bus_error_setf(error, VMFED_ERROR_ACCESS_DENIED,
                                         "The policy does not allow vmfed.Admin.ListVMs (%s).", rule);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ss)");
        for (guint i = 0; r >= 0 && i < b->vms->len; i++) {
                VmConfig *c = g_ptr_array_index(b->vms, i);
                const char *state = vm_state(b, c->name);
                r = sd_bus_message_append(reply, "(ss)", c->name, state ? state : "unknown");
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}
