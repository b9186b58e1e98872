/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/guest-services.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/ask.h"
#include "broker/audit.h"
#include "broker/clipboard.h"
#include "broker/route.h"
#include "broker/stream.h"
#include "common/log.h"
#include "common/macro.h"
#include "services/service-args.h"

struct Services {
        uint64_t clipboard_max;
        bool clear_after_paste;
        char **url_schemes;
        unsigned ask_timeout_sec;
        unsigned agent_timeout_sec;
        GHashTable *apps; /* VM name → char** app ids */
        GHashTable *in_flight; /* source VM → InFlight (guest-request.c): its routed requests pending */
        GHashTable *copying;   /* VMs with a vmfed.Clipboard.Copy stream under way (guest-clipboard-stream.c) */

        Clipboard *clipboard;
        RouteTable *routes;
        AskQueue *asks;
        StreamTable *streams;
};

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
        else if (*end == 'G' || *end == 'g')
                mult = 1024 * 1024 * 1024, end++;
        if (v > UINT64_MAX / mult)
                *ok = false;
        if (*end)
                *ok = false;
        return v * mult;
}

static void services_load_config(Broker *b, Services *s) {
        g_autofree char *path = g_build_filename(broker_config_dir(b), "services.conf", NULL);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;

        s->clipboard_max = CLIPBOARD_DEFAULT_MAX_SIZE;
        s->clear_after_paste = true;
        s->url_schemes = g_strsplit("http;https;ftp", ";", -1);
        s->ask_timeout_sec = 60;
        s->agent_timeout_sec = 60;
        s->apps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_strfreev);
        s->in_flight = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        s->copying = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

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
                        log_error("%s: [Clipboard] MaxSize=%s: expected 1 to 4G; keeping %" PRIu64 ".", path, max,
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
        broker_set_services(b, s);
        s->streams = stream_table_new(b);

        r = clipboard_register(b, s->clipboard);
        if (r >= 0)
                r = ask_register(b);
        return r;
}

void guest_services_stop(Broker *b) {
        if (!broker_services(b))
                return;
        ask_queue_cancel_all(b);
        /* Streams first: aborting one tells its agents (routed calls), then those fail too. */
        broker_services(b)->streams = stream_table_free(broker_services(b)->streams);
        route_cancel_all(b);
}

void guest_services_free(Broker *b) {
        Services *s = broker_services(b);
        if (!s)
                return;
        s->streams = stream_table_free(s->streams);
        broker_set_services(b, NULL);
        s->asks = ask_queue_free(s->asks);
        s->routes = route_table_free(s->routes);
        s->clipboard = clipboard_free(s->clipboard);
        g_strfreev(s->url_schemes);
        g_hash_table_unref(s->apps);
        g_hash_table_unref(s->in_flight);
        g_hash_table_unref(s->copying);
        g_free(s);
}

Clipboard *guest_services_clipboard(Broker *b) {
        return broker_services(b) ? broker_services(b)->clipboard : NULL;
}

GHashTable *guest_services_copying(Broker *b) {
        return broker_services(b) ? broker_services(b)->copying : NULL;
}

RouteTable *guest_services_routes(Broker *b) {
        return broker_services(b) ? broker_services(b)->routes : NULL;
}

StreamTable *guest_services_streams(Broker *b) {
        return broker_services(b) ? broker_services(b)->streams : NULL;
}

AskQueue *guest_services_asks(Broker *b) {
        return broker_services(b) ? broker_services(b)->asks : NULL;
}

uint64_t guest_services_message_max(Broker *b) {
        return MIN(broker_services(b) ? broker_services(b)->clipboard_max : CLIPBOARD_DEFAULT_MAX_SIZE,
                   (uint64_t) CLIPBOARD_MESSAGE_MAX);
}

const char *const *guest_services_url_schemes(Broker *b) {
        return broker_services(b) ? (const char *const *) broker_services(b)->url_schemes : NULL;
}

const char *const *guest_services_apps(Broker *b, const char *vm) {
        return broker_services(b) ? g_hash_table_lookup(broker_services(b)->apps, vm) : NULL;
}

GHashTable *guest_services_in_flight(Broker *b) {
        return broker_services(b) ? broker_services(b)->in_flight : NULL;
}

/* ---- helpers ---------------------------------------------------------------------- */

void guest_services_audit(Broker *b, const char *source, const char *target, const char *service, const char *arg,
                          const char *decision, const char *rule, bool notify) {
        uint64_t id = broker_next_request_id(b);

        if (notify && strcmp(decision, "ask") != 0)
                broker_post_request_notified(b, &(BrokerRequestNotice) { .id = id, .service = service, .arg = arg,
                                                                         .source = source, .target = target,
                                                                         .decision = decision, .rule = rule });
        audit_log(&(AuditRecord) {
                .request_id = id,
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
int guest_services_evaluate(Broker *b, const char *service, const char *arg, const char *source, const char *target,
                    PolicyDecision *d, char *rule, size_t rule_size) {
        PolicyRequest req = { .service = service, .arg = arg && *arg ? arg : NULL, .source = source, .target = target };
        int r = policy_evaluate(broker_policy(b), broker_facts(b), &req, d);
        if (d->rule_file)
                snprintf(rule, rule_size, "%s:%u", d->rule_file, d->rule_line);
        else
                snprintf(rule, rule_size, "%s", d->reason ? d->reason : "default-deny");
        return r;
}

bool guest_services_target_is_valid(const char *t) {
        if (strcmp(t, "@default") == 0 || strcmp(t, "@dispvm") == 0)
                return true;
        if (g_str_has_prefix(t, "@dispvm:"))
                t += strlen("@dispvm:");
        return policy_vm_name_is_valid(t, strlen(t)); /* the one VM-name syntax, POLICY_NAME_MAX */
}

/* Targets the user may pick for an ask: every VM (and @dispvm) the policy does not deny. */
char **guest_services_ask_candidates(Broker *b, const char *service, const char *arg, const char *source,
                             const char *default_target) {
        GPtrArray *c = g_ptr_array_new();
        PolicyDecision d;
        char rule[300];

        for (guint i = 0; i < vm_model_n_vms(broker_model(b)); i++) {
                const VmSpec *vm = vm_model_vm(broker_model(b), i);
                if (strcmp(vm->name, source) == 0 || vm->role == VM_ROLE_DISPOSABLE_TEMPLATE)
                        continue;
                if (guest_services_evaluate(b, service, arg, source, vm->name, &d, rule, sizeof rule) >= 0 &&
                    d.action != POLICY_ACTION_DENY)
                        g_ptr_array_add(c, g_strdup(vm->name));
        }
        if (guest_services_evaluate(b, service, arg, source, "@dispvm", &d, rule, sizeof rule) >= 0 && d.action != POLICY_ACTION_DENY)
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

const char *guest_services_vm_state(Broker *b, const char *name) {
        const VmObject *o = broker_find_vm(b, name);
        return o ? o->state : NULL;
}

