/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/policy-iface.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/errors.h"
#include "broker/policy-file.h"
#include "common/log.h"
#include "common/macro.h"

#define EVAL_FIELD_MAX 256
#define DIAGNOSTICS_IN_ERROR 5

/* The userdata of the Policy vtable; freed with the broker's watches. */
typedef struct PolicyIface {
        Broker *broker;
        sd_bus_track *request_watchers; /* callers of Subscribe(), NULL: none yet */
} PolicyIface;

typedef struct PolicyEdit {
        char *name;
        char *content; /* NULL: remove */
        char *etag;
} PolicyEdit;

static void policy_edit_free(void *p) {
        PolicyEdit *e = p;
        if (!e)
                return;
        g_free(e->name);
        g_free(e->content);
        g_free(e->etag);
        g_free(e);
}

/* ---- Evaluate -------------------------------------------------------- */

static int method_evaluate(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Broker *b = ((PolicyIface *) userdata)->broker;
        const char *untrusted_source, *untrusted_target, *untrusted_service;
        char service[EVAL_FIELD_MAX + 1], rule[EVAL_FIELD_MAX + 32];
        const char *arg = NULL;
        PolicyDecision d;
        int r;

        r = sd_bus_message_read(m, "sss", &untrusted_source, &untrusted_target, &untrusted_service);
        if (r < 0)
                return r;
        const char *too_long = strlen(untrusted_source) > EVAL_FIELD_MAX    ? untrusted_source
                               : strlen(untrusted_target) > EVAL_FIELD_MAX  ? untrusted_target
                               : strlen(untrusted_service) > EVAL_FIELD_MAX ? untrusted_service
                                                                            : NULL;
        if (too_long)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "The %s is %zu bytes; source, target and service are at most %d bytes each.",
                                         too_long == untrusted_source   ? "source"
                                         : too_long == untrusted_target ? "target"
                                                                        : "service",
                                         strlen(too_long), EVAL_FIELD_MAX);

        /* "SERVICE+ARG": the policy engine validates both parts. */
        strcpy(service, untrusted_service);
        char *plus = strchr(service, '+');
        if (plus) {
                *plus = 0;
                arg = plus + 1;
        }

        PolicyRequest req = {
                .service = service,
                .arg = arg,
                .source = untrusted_source,
                .target = untrusted_target,
        };
        r = policy_evaluate(broker_policy(b), broker_facts(b), &req, &d);
        if (r < 0)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "Cannot evaluate source '%s', target '%s', service '%s': %s",
                                         ERRORS_EXCERPT(untrusted_source, 64), ERRORS_EXCERPT(untrusted_target, 64),
                                         ERRORS_EXCERPT(untrusted_service, 128),
                                         d.reason ? d.reason : "invalid source, target or service");

        if (d.rule_file)
                snprintf(rule, sizeof rule, "%s:%u", d.rule_file, d.rule_line);
        else
                rule[0] = 0;

        log_debug("Policy.Evaluate %s -> %s %s: %s (%s)", untrusted_source, untrusted_target,
                  untrusted_service, policy_action_to_string(d.action), rule[0] ? rule : "default");

        return sd_bus_reply_method_return(m, "ssss", policy_action_to_string(d.action),
                                          d.target ? d.target : "",
                                          d.default_target ? d.default_target : "", rule);
}

/* ---- reading ---------------------------------------------------------- */

static int method_list_files(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autoptr(GPtrArray) names = NULL;
        Broker *b = ((PolicyIface *) userdata)->broker;
        int r;

        r = policy_file_list(broker_policy_dir(b), &names);
        if (r < 0)
                return errors_set_errno(error, r, "Cannot list %s: %s", broker_policy_dir(b), strerror(-r));

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ss)");
        if (r < 0)
                return r;
        for (guint i = 0; i < names->len; i++) {
                const char *name = g_ptr_array_index(names, i);
                g_autofree char *etag = NULL;

                if (policy_file_read(broker_policy_dir(b), name, NULL, &etag) < 0)
                        continue; /* vanished or unreadable meanwhile */
                r = sd_bus_message_append(reply, "(ss)", name, etag);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int validate_name(Broker *b, const char *untrusted_name, sd_bus_error *error) {
        if (!policy_file_name_is_valid(untrusted_name))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "'%s' is not a policy file name: use [0-9a-z_-][0-9a-z_.-]*.policy "
                                         "(at most %d bytes, no '/' or '..').",
                                         ERRORS_EXCERPT(untrusted_name, POLICY_FILE_NAME_MAX), POLICY_FILE_NAME_MAX);
        return 0;
}

static int method_get_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Broker *b = ((PolicyIface *) userdata)->broker;
        const char *untrusted_name;
        g_autofree char *content = NULL, *etag = NULL;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_name);
        if (r < 0)
                return r;
        r = validate_name(b, untrusted_name, error);
        if (r < 0)
                return r;
        const char *name = untrusted_name;

        r = policy_file_read(broker_policy_dir(b), name, &content, &etag);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "No policy file %s in %s (ListFiles shows those that exist).", name,
                                         broker_policy_dir(b));
        if (r == -EFBIG)
                return sd_bus_error_setf(error, VMFED_ERROR_TOO_LARGE, "%s is larger than %d bytes.", name,
                                         POLICY_FILE_MAX);
        if (r < 0)
                return errors_set_errno(error, r, "Cannot read %s/%s: %s", broker_policy_dir(b), name, strerror(-r));
        if (!g_utf8_validate(content, -1, NULL))
                return sd_bus_error_setf(error, VMFED_ERROR_FAILED,
                                         "%s is not valid UTF-8 and cannot be sent over D-Bus; fix it on disk.",
                                         name);
        return sd_bus_reply_method_return(m, "ss", content, etag);
}

/* ---- editing ---------------------------------------------------------- */

/*
 * Compare the caller's etag with the file on disk.  0 when it matches
 * (*ret_content: the current content or NULL when the file does not exist),
 * else a D-Bus error.
 */
static int check_etag(Broker *b, const char *name, const char *etag, bool removing, char **ret_content,
                      sd_bus_error *error) {
        g_autofree char *content = NULL, *current = NULL;
        int r;

        r = policy_file_read(broker_policy_dir(b), name, &content, &current);
        if (r == -ENOENT) {
                if (removing)
                        return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND, "No policy file %s in %s.", name,
                                                 broker_policy_dir(b));
                if (etag[0] != 0)
                        return sd_bus_error_setf(error, VMFED_ERROR_CONFLICT,
                                                 "%s no longer exists (it was removed since you read it); "
                                                 "pass etag \"\" to create it.",
                                                 name);
                *ret_content = NULL;
                return 0;
        }
        if (r == -EFBIG)
                return sd_bus_error_setf(error, VMFED_ERROR_TOO_LARGE,
                                         "%s on disk is larger than %d bytes; fix it on disk.", name,
                                         POLICY_FILE_MAX);
        if (r < 0)
                return errors_set_errno(error, r, "Cannot read %s/%s: %s", broker_policy_dir(b), name, strerror(-r));
        if (etag[0] == 0)
                return sd_bus_error_setf(error, VMFED_ERROR_CONFLICT,
                                         "%s already exists (etag %s); pass its current etag to replace it.",
                                         name, current);
        if (strcmp(etag, current) != 0)
                return sd_bus_error_setf(error, VMFED_ERROR_CONFLICT,
                                         "%s changed since you read it (current etag %s); GetFile it again, "
                                         "merge, and retry.",
                                         name, current);
        *ret_content = steal_pointer(&content);
        return 0;
}

/*
 * Compile the whole policy with the edit applied.  0 with the snapshot when
 * valid, else InvalidArgs naming FILE:LINE:COLUMN.
 */
static int validate_edit(Broker *b, const PolicyEdit *e, PolicySnapshot **ret, sd_bus_error *error) {
        PolicySnapshot *s = NULL;
        PolicyOverride o = { .name = e->name, .content = e->content };
        int r;

        r = policy_snapshot_load(broker_policy_dir(b), &o, 1, &s);
        if (r < 0)
                return errors_set_errno(error, r, "Cannot compile the policy: %s", strerror(-r));
        if (!policy_snapshot_is_valid(s)) {
                g_autoptr(GString) msg = g_string_new(NULL);
                size_t n = policy_snapshot_n_diagnostics(s);

                g_string_append_printf(msg, "Refusing to %s %s: the policy would not compile: ",
                                       e->content ? "write" : "remove", e->name);
                for (size_t i = 0; i < n && i < DIAGNOSTICS_IN_ERROR; i++) {
                        g_autofree char *line = policy_diagnostic_format(policy_snapshot_diagnostic(s, i));
                        g_string_append_printf(msg, "%s%s", i > 0 ? "; " : "", line ? line : "?");
                }
                if (n > DIAGNOSTICS_IN_ERROR)
                        g_string_append_printf(msg, "; and %zu more", n - DIAGNOSTICS_IN_ERROR);
                if (n == 0)
                        g_string_append(msg, "unknown error");
                policy_snapshot_unref(s);
                return sd_bus_error_set(error, VMFED_ERROR_INVALID_ARGS, msg->str);
        }
        *ret = s;
        return 0;
}

static int edit_apply(Broker *b, const PolicyEdit *e, char **ret_etag, sd_bus_error *error) {
        g_autofree char *current = NULL;
        PolicySnapshot *s = NULL;
        int r;

        /* Re-check: other edits may have landed while the caller was authorized. */
        r = check_etag(b, e->name, e->etag, !e->content, &current, error);
        if (r < 0)
                return r;
        r = validate_edit(b, e, &s, error);
        if (r < 0)
                return r;

        if (e->content)
                r = policy_file_write(broker_policy_dir(b), e->name, e->content, strlen(e->content));
        else
                r = policy_file_remove(broker_policy_dir(b), e->name);
        if (r < 0) {
                policy_snapshot_unref(s);
                return errors_set_errno(error, r == -EINVAL ? -EIO : r, "Cannot %s %s/%s: %s",
                                        e->content ? "write" : "remove", broker_policy_dir(b), e->name, strerror(-r));
        }

        /* What is on disk now is exactly what was compiled. */
        broker_set_policy(b, s);
        policy_snapshot_unref(s);
        {
                g_autofree char *desc = g_strdup_printf("%s policy file %s", e->content ? "write" : "remove",
                                                        e->name);
                (void) broker_record_generation(b, desc);
        }
        if (ret_etag)
                *ret_etag = e->content ? policy_file_etag(e->content, strlen(e->content)) : NULL;
        return 0;
}

static void edit_done(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who,
                      void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        PolicyEdit *e = userdata;
        g_autofree char *etag = NULL;
        int r;

        if (!auth_audit_decision(b, m, allowed, how, who, &(AuthAction) {
                        .service = e->content ? "vmfed.Admin.ReplacePolicyFile" : "vmfed.Admin.RemovePolicyFile",
                        .arg = e->name,
                        .activity = "Changing policy",
                }))
                return;

        r = edit_apply(b, e, &etag, &error);
        if (r < 0) {
                (void) sd_bus_reply_method_error(m, &error);
                return;
        }
        log_info("Policy file %s %s by %s (revision %" PRIu64 ").", e->name,
                 e->content ? "written" : "removed", who, broker_policy_revision(b));
        if (e->content)
                (void) sd_bus_reply_method_return(m, "s", etag);
        else
                (void) sd_bus_reply_method_return(m, NULL);
}

/*
 * The tail of ReplaceFile and RemoveFile: validate the whole policy with the edit in memory, then
 * authorize → act → emit → reply in edit_done() (which gets a copy of the edit).
 */
static int edit_validate_and_authorize(Broker *b, sd_bus_message *m, const PolicyEdit *edit,
                                       sd_bus_error *error) {
        PolicySnapshot *s = NULL;
        PolicyEdit *e;
        int r;

        r = validate_edit(b, edit, &s, error);
        if (r < 0)
                return r;
        policy_snapshot_unref(s);

        e = g_new0(PolicyEdit, 1);
        e->name = g_strdup(edit->name);
        e->content = g_strdup(edit->content);
        e->etag = g_strdup(edit->etag);
        auth_check_manage(b, m, edit_done, e, policy_edit_free);
        return 1;
}

static int method_replace_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *untrusted_name, *untrusted_content, *untrusted_etag;
        g_autofree char *current = NULL;
        Broker *b = ((PolicyIface *) userdata)->broker;
        int r;

        /* parse */
        r = sd_bus_message_read(m, "sss", &untrusted_name, &untrusted_content, &untrusted_etag);
        if (r < 0)
                return r;

        /* validate */
        r = validate_name(b, untrusted_name, error);
        if (r < 0)
                return r;
        if (strlen(untrusted_content) > POLICY_FILE_MAX)
                return sd_bus_error_setf(error, VMFED_ERROR_TOO_LARGE,
                                         "A policy file may be at most %d bytes; this one is %zu.",
                                         POLICY_FILE_MAX, strlen(untrusted_content));
        if (strlen(untrusted_etag) > 128)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "That is not an etag.");
        r = check_etag(b, untrusted_name, untrusted_etag, false, &current, error);
        if (r < 0)
                return r;

        /* no-op */
        if (current && strcmp(current, untrusted_content) == 0)
                return sd_bus_reply_method_return(m, "s", untrusted_etag);

        return edit_validate_and_authorize(b, m,
                                           &(PolicyEdit) {
                                                   .name = (char *) untrusted_name,
                                                   .content = (char *) untrusted_content,
                                                   .etag = (char *) untrusted_etag,
                                           },
                                           error);
}

static int method_remove_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *untrusted_name, *untrusted_etag;
        g_autofree char *current = NULL;
        Broker *b = ((PolicyIface *) userdata)->broker;
        int r;

        r = sd_bus_message_read(m, "ss", &untrusted_name, &untrusted_etag);
        if (r < 0)
                return r;
        r = validate_name(b, untrusted_name, error);
        if (r < 0)
                return r;
        if (strlen(untrusted_etag) > 128)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "That is not an etag.");
        r = check_etag(b, untrusted_name, untrusted_etag, true, &current, error);
        if (r < 0)
                return r;

        return edit_validate_and_authorize(
                b, m, &(PolicyEdit) { .name = (char *) untrusted_name, .etag = (char *) untrusted_etag }, error);
}

/* ---- properties ------------------------------------------------------- */

static int property_get_revision(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Broker *b = ((PolicyIface *) userdata)->broker;
        return sd_bus_message_append(reply, "t", broker_policy_revision(b));
}

static int property_get_valid(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Broker *b = ((PolicyIface *) userdata)->broker;
        return sd_bus_message_append(reply, "b", policy_snapshot_is_valid(broker_policy(b)));
}

static int property_get_diagnostics(sd_bus *bus, const char *path, const char *interface,
                                    const char *property, sd_bus_message *reply, void *userdata,
                                    sd_bus_error *error) {
        Broker *b = ((PolicyIface *) userdata)->broker;
        size_t n = policy_snapshot_n_diagnostics(broker_policy(b));
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                g_autofree char *line = policy_diagnostic_format(policy_snapshot_diagnostic(broker_policy(b), i));
                r = sd_bus_message_append(reply, "s", line ? line : "?");
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* ---- Subscribe: RequestNotified only while someone listens -------------- */

static int method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        PolicyIface *p = userdata;
        int r;

        if (!p->request_watchers) {
                r = sd_bus_track_new(sd_bus_message_get_bus(m), &p->request_watchers, NULL, NULL);
                if (r < 0)
                        return r;
        }
        r = sd_bus_track_add_sender(p->request_watchers, m);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        PolicyIface *p = userdata;

        if (p->request_watchers)
                (void) sd_bus_track_remove_sender(p->request_watchers, m);
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable policy_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Revision", "t", property_get_revision, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Valid", "b", property_get_valid, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Diagnostics", "as", property_get_diagnostics, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Evaluate", SD_BUS_ARGS("s", source, "s", target, "s", service),
                                SD_BUS_RESULT("s", action, "s", target, "s", default_target, "s", rule),
                                method_evaluate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListFiles", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ss)", files), method_list_files,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetFile", SD_BUS_ARGS("s", name), SD_BUS_RESULT("s", content, "s", etag),
                                method_get_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReplaceFile", SD_BUS_ARGS("s", name, "s", content, "s", etag),
                                SD_BUS_RESULT("s", etag), method_replace_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveFile", SD_BUS_ARGS("s", name, "s", etag), SD_BUS_NO_RESULT,
                                method_remove_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Subscribe", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_subscribe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unsubscribe", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_unsubscribe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("RequestNotified",
                                SD_BUS_ARGS("t", id, "s", service, "s", argument, "s", source, "s", target, "s",
                                            decision, "s", rule),
                                0),
        SD_BUS_VTABLE_END,
};

static void policy_iface_emit_request_notified(PolicyIface *p, const BrokerRequestNotice *n) {
        sd_bus *bus = broker_bus(p->broker);
        int r;

        /* Nobody subscribed: not even a message (a signal per routed call costs the bus its time). */
        if (!bus || !p->request_watchers || sd_bus_track_count(p->request_watchers) == 0)
                return;
        r = sd_bus_emit_signal(bus, BROKER_ROOT_PATH, POLICY_INTERFACE, "RequestNotified", "tssssss", n->id,
                               n->service, n->arg, n->source, n->target, n->decision, n->rule);
        if (r < 0)
                log_warning_errno(r, "Cannot announce request %" PRIu64 ": %m", n->id);
}

static void policy_iface_on_broker_event(Broker *b, const BrokerEvent *e, void *userdata) {
        PolicyIface *p = userdata;

        if (e->kind == BROKER_EVENT_POLICY && broker_bus(b))
                (void) sd_bus_emit_properties_changed(broker_bus(b), BROKER_ROOT_PATH, POLICY_INTERFACE, "Revision",
                                                      "Valid", "Diagnostics", NULL);
        else if (e->kind == BROKER_EVENT_REQUEST_NOTIFIED)
                policy_iface_emit_request_notified(p, e->request);
}

static void policy_iface_free(void *userdata) {
        PolicyIface *p = userdata;

        sd_bus_track_unref(p->request_watchers);
        g_free(p);
}

int policy_iface_register(Broker *b) {
        PolicyIface *p = g_new0(PolicyIface, 1);

        p->broker = b;
        /* The watch owns p: the vtable's userdata lives as long as the broker. */
        (void) broker_watch_add(b, policy_iface_on_broker_event, p, policy_iface_free);
        return sd_bus_add_object_vtable(broker_bus(b), NULL, BROKER_ROOT_PATH, POLICY_INTERFACE, policy_vtable, p);
}
