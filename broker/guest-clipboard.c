/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guests' side of the clipboard: Guest.Copy (always allowed: an explicit
 * user action in that VM) and Guest.Paste (vmfed.Clipboard.Paste, source =
 * the owner, target = the pasting VM).  The store is broker/clipboard.c.
 */
#include "broker/guest-services.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/ask.h"
#include "broker/channel.h"
#include "broker/clipboard.h"
#include "broker/errors.h"
#include "common/log.h"
#include "common/macro.h"
#include "services/service-args.h"

/* ---- clipboard ---------------------------------------------------------------------- */

int guest_clipboard_copy(sd_bus_message *m, void *userdata, sd_bus_error *error) {
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
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "Clipboard type '%s' is not a MIME type such as text/plain or image/png.",
                                         ERRORS_EXCERPT(untrusted_mime, 64));
        if (size > CLIPBOARD_MESSAGE_MAX && size <= clipboard_max_size(guest_services_clipboard(b))) {
                why = g_strdup_printf("One Copy call carries at most %u bytes; %zu bytes go through a "
                                      "vmfed.Clipboard.Copy stream (vmfed-guest copy does so). Nothing was copied.",
                                      CLIPBOARD_MESSAGE_MAX, size);
                r = -EFBIG;
        } else
                r = clipboard_copy(b, guest_services_clipboard(b), guest_connection_vm(g), mime, untrusted_data, size,
                                   &why);
        guest_services_audit(b, guest_connection_vm(g), "@host", "vmfed.Clipboard.Copy", NULL, r < 0 ? "deny" : "allow",
              r == -EFBIG ? "too-large" : r == -EILSEQ ? "not-utf-8" : r < 0 ? "error" : "copy",
              false /* no policy decision */);
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
        bool stream; /* OpenStream "@host" vmfed.Clipboard.Paste: answered with a stream */
} PasteRequest;

static void paste_request_free(PasteRequest *p) {
        if (!p)
                return;
        sd_bus_message_unref(p->m);
        g_free(p->target);
        g_free(p);
}

static int paste_deliver(Broker *b, sd_bus_message *m, const char *target, bool stream) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Clipboard *c = guest_services_clipboard(b);
        const char *owner, *mime;
        const void *data;
        size_t size;
        int r;

        if (stream)
                return guest_clipboard_stream_paste(b, m, target);
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
        else if (clipboard_generation(guest_services_clipboard(b)) != p->generation) {
                *ret_why = g_strdup("The clipboard changed while the question was pending; nothing was pasted.");
                (void) sd_bus_reply_method_errorf(p->m, VMFED_ERROR_CONFLICT, "%s", *ret_why);
                paste_request_free(p);
                return -ESTALE;
        } else
                (void) paste_deliver(b, p->m, p->target, p->stream);
        paste_request_free(p);
        return 0;
}

static int paste_decide(sd_bus_message *m, GuestConnection *g, bool stream, sd_bus_error *error) {
        Broker *b = guest_connection_broker(g);
        Clipboard *c = guest_services_clipboard(b);
        const char *target = guest_connection_vm(g);
        const char *owner, *mime;
        const void *data;
        size_t size;
        char arg[SERVICE_ARGS_MIME_MAX + 1], rule[300];
        PolicyDecision d;
        int r;

        if (!stream && guest_connection_check_flood(g) < 0) /* OpenStream checked it */
                return 1;
        r = clipboard_peek(c, &owner, &mime, &data, &size);
        if (r < 0)
                return sd_bus_error_set(error, VMFED_ERROR_NOT_FOUND, "The clipboard is empty.");
        /* Before the policy (and a question to a person): a paste that cannot come in one message. */
        if (!stream && size > CLIPBOARD_MESSAGE_MAX)
                return sd_bus_error_setf(error, VMFED_ERROR_TOO_LARGE,
                                         "The clipboard holds %zu bytes; one Paste call carries at most %u. Paste "
                                         "it through a vmfed.Clipboard.Paste stream (vmfed-guest paste does so).",
                                         size, CLIPBOARD_MESSAGE_MAX);
        /* Pasting back into the VM that copied crosses no boundary. */
        if (strcmp(owner, target) == 0)
                return paste_deliver(b, m, target, stream);

        /* Text is vmfed.Clipboard.Paste without argument; other types carry the type ("+image.png"). */
        service_args_mime_to_policy_arg(mime, arg);
        r = guest_services_evaluate(b, "vmfed.Clipboard.Paste", arg, owner, target, &d, rule, sizeof rule);
        if (r >= 0 && d.action == POLICY_ACTION_ALLOW && d.target && strcmp(d.target, target) != 0) {
                d.action = POLICY_ACTION_DENY; /* a paste cannot be redirected into another VM */
                snprintf(rule, sizeof rule, "%s:%u (redirect)", d.rule_file ? d.rule_file : "?", d.rule_line);
        }
        guest_services_audit(b, owner, target, "vmfed.Clipboard.Paste", arg, r < 0 ? "deny" : policy_action_to_string(d.action),
              rule, d.notify);
        if (r < 0 || d.action == POLICY_ACTION_DENY)
                return sd_bus_error_setf(error, VMFED_ERROR_ACCESS_DENIED,
                                         "The policy does not allow pasting %s from %s into %s (%s).", mime, owner,
                                         target, rule);
        if (d.action == POLICY_ACTION_ALLOW)
                return paste_deliver(b, m, target, stream);

        char *cands[] = { (char *) target, NULL };
        g_autofree char *service = *arg ? g_strdup_printf("vmfed.Clipboard.Paste+%s", arg)
                                        : g_strdup("vmfed.Clipboard.Paste");
        PasteRequest *p = g_new0(PasteRequest, 1);
        p->broker = b;
        p->m = sd_bus_message_ref(m);
        p->target = g_strdup(target);
        p->generation = clipboard_generation(c);
        p->stream = stream;
        if (ask_new(b, owner, service, cands, target, d.notify, paste_answered, p) < 0) {
                paste_request_free(p);
                return sd_bus_error_set(error, VMFED_ERROR_BUSY, "Too many questions pending; try again.");
        }
        return 1;
}


int guest_clipboard_paste(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return paste_decide(m, userdata, false, error);
}

int guest_clipboard_paste_stream(sd_bus_message *m, GuestConnection *g, sd_bus_error *error) {
        return paste_decide(m, g, true, error);
}
