/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Audit: one log line per request that the broker routed or refused, on
 * stderr (" KEY=value" fields after the message) and, when a journal runs,
 * as structured journal fields VMFED_REQUEST_ID, VMFED_SOURCE, ...
 */
#pragma once

#include <stdint.h>

typedef struct AuditRecord {
        uint64_t request_id;
        const char *source;   /* VM name, or "@host" */
        const char *caller;   /* extra identity: "uid=0", a channel, NULL */
        const char *target;   /* VM name, "@host", "@default", ... */
        const char *service;  /* "vmfed.Admin.ReplacePolicyFile" */
        const char *arg;      /* NULL or "" for none */
        const char *decision; /* "allow", "deny", "ask", "error" */
        const char *rule;     /* "FILE:LINE", "auth:uid-0", ... or NULL */
} AuditRecord;

void audit_log(const AuditRecord *rec);

/* The end of a stream (broker/stream.c): one line with what it moved. */
typedef struct AuditStreamRecord {
        uint64_t stream_id;
        const char *source, *target, *service, *arg;
        const char *decision;   /* "allow" (it ran to its end) or "aborted" */
        uint64_t bytes_in;      /* payload from the source to the handler */
        uint64_t bytes_out;     /* payload from the handler to the source */
        uint64_t duration_usec; /* from the handler's start */
        int status;             /* the handler's exit status, -1: aborted or unknown */
        const char *message;    /* why it was aborted, or NULL */
} AuditStreamRecord;

void audit_log_stream(const AuditStreamRecord *rec);
