/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <syslog.h>

#include "common/log.h"

/* Audit values are names we validated, but keep the line parseable anyway. */
static void sanitize(char *dst, size_t size, const char *src) {
        size_t i = 0;
        for (; src && *src && i + 1 < size; src++)
                dst[i++] = (*src <= ' ' || *src == 0x7f) ? '_' : *src;
        dst[i] = 0;
        if (i == 0 && size > 1) {
                dst[0] = '-';
                dst[1] = 0;
        }
}

void audit_log(const AuditRecord *rec) {
        char source[256], caller[256], target[256], service[256], arg[256], decision[32], rule[512];
        char f_id[64], f_source[300], f_caller[300], f_target[300], f_service[300], f_arg[300],
                f_decision[64], f_rule[560];

        sanitize(source, sizeof source, rec->source);
        sanitize(caller, sizeof caller, rec->caller);
        sanitize(target, sizeof target, rec->target);
        sanitize(service, sizeof service, rec->service);
        sanitize(arg, sizeof arg, rec->arg);
        sanitize(decision, sizeof decision, rec->decision);
        sanitize(rule, sizeof rule, rec->rule);

        snprintf(f_id, sizeof f_id, "VMFED_REQUEST_ID=%" PRIu64, rec->request_id);
        snprintf(f_source, sizeof f_source, "VMFED_SOURCE=%s", source);
        snprintf(f_caller, sizeof f_caller, "VMFED_CALLER=%s", caller);
        snprintf(f_target, sizeof f_target, "VMFED_TARGET=%s", target);
        snprintf(f_service, sizeof f_service, "VMFED_SERVICE=%s", service);
        snprintf(f_arg, sizeof f_arg, "VMFED_ARG=%s", arg);
        snprintf(f_decision, sizeof f_decision, "VMFED_DECISION=%s", decision);
        snprintf(f_rule, sizeof f_rule, "VMFED_RULE=%s", rule);

        const char *const fields[] = {
                "VMFED_AUDIT=1", f_id, f_source, f_caller, f_target, f_service,
                f_arg, f_decision, f_rule, NULL,
        };
        (void) log_struct_internal(LOG_NOTICE, fields, "audit: request %" PRIu64 " %s -> %s %s%s%s: %s",
                                   rec->request_id, source, target, service,
                                   rec->arg && *rec->arg ? "+" : "", rec->arg && *rec->arg ? arg : "",
                                   decision);
}

void audit_log_stream(const AuditStreamRecord *rec) {
        char source[256], target[256], service[256], arg[256], decision[32], message[512];
        char f_id[64], f_source[300], f_target[300], f_service[300], f_arg[300], f_decision[64], f_in[64], f_out[64],
                f_dur[64], f_status[64], f_message[560];

        sanitize(source, sizeof source, rec->source);
        sanitize(target, sizeof target, rec->target);
        sanitize(service, sizeof service, rec->service);
        sanitize(arg, sizeof arg, rec->arg);
        sanitize(decision, sizeof decision, rec->decision);
        sanitize(message, sizeof message, rec->message);
        snprintf(f_id, sizeof f_id, "VMFED_STREAM_ID=%" PRIu64, rec->stream_id);
        snprintf(f_source, sizeof f_source, "VMFED_SOURCE=%s", source);
        snprintf(f_target, sizeof f_target, "VMFED_TARGET=%s", target);
        snprintf(f_service, sizeof f_service, "VMFED_SERVICE=%s", service);
        snprintf(f_arg, sizeof f_arg, "VMFED_ARG=%s", arg);
        snprintf(f_decision, sizeof f_decision, "VMFED_DECISION=%s", decision);
        snprintf(f_in, sizeof f_in, "VMFED_BYTES_IN=%" PRIu64, rec->bytes_in);
        snprintf(f_out, sizeof f_out, "VMFED_BYTES_OUT=%" PRIu64, rec->bytes_out);
        snprintf(f_dur, sizeof f_dur, "VMFED_DURATION_USEC=%" PRIu64, rec->duration_usec);
        snprintf(f_status, sizeof f_status, "VMFED_EXIT_STATUS=%d", rec->status);
        snprintf(f_message, sizeof f_message, "VMFED_MESSAGE=%s", message);

        const char *const fields[] = {
                "VMFED_AUDIT=1", f_id, f_source, f_target, f_service, f_arg, f_decision,
                f_in, f_out, f_dur, f_status, f_message, NULL,
        };
        (void) log_struct_internal(LOG_NOTICE, fields,
                                   "audit: stream %" PRIu64 " %s -> %s %s%s%s: %s, %" PRIu64 " bytes in, %" PRIu64
                                   " bytes out, %" PRIu64 " ms, exit status %d%s%s",
                                   rec->stream_id, source, target, service, rec->arg && *rec->arg ? "+" : "",
                                   rec->arg && *rec->arg ? arg : "", decision, rec->bytes_in, rec->bytes_out,
                                   rec->duration_usec / 1000, rec->status, rec->message ? ": " : "",
                                   rec->message ? message : "");
}
