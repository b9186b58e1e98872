/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Guest services (guest-services.c: configuration and shared helpers;
 * guest-clipboard.c, guest-request.c, guest-admin.c: the requests): what a VM asks for on its channel
 * (org.vmfed.Federation1.Guest): clipboard copy/paste, open a URL or a file
 * and launch an app in another VM, a routed ping, and management requests
 * (switch persona, start/stop a VM, list VMs).
 *
 * Every request: parse → validate (service-args.h) → policy (source = the
 * channel's VM, never the message) → allow: deliver / deny: AccessDenied /
 * ask: broker/ask.c, then deliver the chosen target after re-checking it.
 * Delivering may start the target (autostart, broker_vm_ensure_running), a
 * disposable (broker_dispvm_start, released when the job is done) or — for
 * a persona that needs a switch — ask first (never switch silently).  One
 * audit line per decision.
 *
 * Configuration: CONFIG/services.conf (GKeyFile), all optional:
 *
 *   [Clipboard]  MaxSize=16M  ClearAfterPaste=true
 *   [Open]       URLSchemes=http;https;ftp
 *   [Ask]        Timeout=60               (seconds; then denied)
 *   [Agents]     ConnectTimeout=60        (seconds to wait for a started VM's agent)
 *   [Apps]       rivendale=org.mozilla.firefox;org.gnome.TextEditor
 *
 * [Apps] declares the application ids each VM offers (vmfed.Launch checks
 * them; for a disposable, the template's list counts).
 *
 * Backpressure, so one guest cannot make the broker hold unbounded state
 * nor fail for sending fast: when a VM has GUEST_SERVICES_MAX_IN_FLIGHT
 * routed requests pending (or their OpenFile data reach
 * GUEST_SERVICES_MAX_IN_FLIGHT_BYTES), its channel is not read any more —
 * its next requests wait in its socket, none fails — until the count is
 * down to GUEST_SERVICES_IN_FLIGHT_LOW (and the bytes to half).  The one
 * exception: while the broker waits for an answer of that VM's own agent
 * (which comes in the same stream), reading cannot stop, and requests past
 * the mark plus GUEST_SERVICES_IN_FLIGHT_SLACK get Busy.
 */
#define GUEST_SERVICES_MAX_IN_FLIGHT 4096
#define GUEST_SERVICES_IN_FLIGHT_LOW 3840 /* close: replies wait while a channel is not read */
#define GUEST_SERVICES_IN_FLIGHT_SLACK 64
#define GUEST_SERVICES_MAX_IN_FLIGHT_BYTES (64ULL << 20)
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-bus.h>

#include "broker/broker.h"

typedef struct Clipboard Clipboard;
typedef struct RouteTable RouteTable;
typedef struct AskQueue AskQueue;
typedef struct StreamTable StreamTable;

/* The guest side's configuration and tables (guest-services.c), one per broker: opaque. */

/* Load services.conf, create the clipboard, routes and asks, export Clipboard and Ask on broker_bus(b). */
int guest_services_start(Broker *b);
/* Fail every pending ask and routed call ("shutting down"); before the lifecycle goes. */
void guest_services_stop(Broker *b);
void guest_services_free(Broker *b);

/* What services.conf said and the tables of the guest side; NULL / the defaults before guest_services_start(). */
Clipboard *guest_services_clipboard(Broker *b);
RouteTable *guest_services_routes(Broker *b);
AskQueue *guest_services_asks(Broker *b);
StreamTable *guest_services_streams(Broker *b); /* NULL after guest_services_stop() */
GHashTable *guest_services_copying(Broker *b);  /* set of VM names: a clipboard copy stream of theirs runs */
/* What one message (Copy, Paste, OpenFile) may carry: [Clipboard] MaxSize=, at most CLIPBOARD_MESSAGE_MAX. */
uint64_t guest_services_message_max(Broker *b);
const char *const *guest_services_url_schemes(Broker *b); /* [Open] URLSchemes= */
/* [Apps] of vm: the application ids it offers, NULL: none declared. */
const char *const *guest_services_apps(Broker *b, const char *vm);
/* guest-request.c's backpressure counts (source VM → its InFlight), kept here for the broker's lifetime. */
GHashTable *guest_services_in_flight(Broker *b);

/* ---- shared by the guest-*.c files --------------------------------------------------- */

/*
 * One audit line for a guest's request (caller "channel"); notify (the
 * deciding rule's notify=, PolicyDecision.notify): also the signal
 * Policy.RequestNotified, unless the decision is "ask" (its answer is).
 */
void guest_services_audit(Broker *b, const char *source, const char *target, const char *service, const char *arg,
                          const char *decision, const char *rule, bool notify);
/* policy_evaluate() on the current snapshot; rule gets "FILE:LINE" or why it was denied. */
int guest_services_evaluate(Broker *b, const char *service, const char *arg, const char *source, const char *target,
                            PolicyDecision *d, char *rule, size_t rule_size);
/* A VM name, @default, @dispvm or @dispvm:NAME (form only). */
bool guest_services_target_is_valid(const char *t);
/* Targets an ask may offer: every VM but source (and @dispvm) the policy does not deny, plus default_target. */
char **guest_services_ask_candidates(Broker *b, const char *service, const char *arg, const char *source,
                                     const char *default_target);
/* VM.State of a VM of vms.d/, NULL for an unknown name. */
const char *guest_services_vm_state(Broker *b, const char *name);

/* guest-admin.c: the federation operations of Manager.StartVM/StopVM/SwitchPersona, for guests. */
typedef enum GuestAdminKind { GUEST_ADMIN_START, GUEST_ADMIN_STOP, GUEST_ADMIN_SWITCH } GuestAdminKind;
int guest_admin_operation(Broker *b, GuestAdminKind kind, const char *name, BrokerVmReadyFn cb, void *userdata,
                          char **ret_error);

typedef struct GuestConnection GuestConnection; /* broker/channel.h */

/* Handlers of org.vmfed.Federation1.Guest (userdata: the channel's GuestConnection). */
int guest_clipboard_copy(sd_bus_message *m, void *userdata, sd_bus_error *error);   /* guest-clipboard.c */
int guest_clipboard_paste(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* guest-clipboard-stream.c: OpenStream with target "@host" (untrusted_service/arg checked as names). */
int guest_clipboard_open_stream(sd_bus_message *m, GuestConnection *g, const char *untrusted_service,
                                const char *untrusted_arg, sd_bus_error *error);
/* guest-clipboard.c: a paste through a stream (OpenStream "@host" vmfed.Clipboard.Paste), decided as Paste. */
int guest_clipboard_paste_stream(sd_bus_message *m, GuestConnection *g, sd_bus_error *error);
/* guest-clipboard-stream.c: the paste was allowed: open its stream, answering m. */
int guest_clipboard_stream_paste(Broker *b, sd_bus_message *m, const char *target);
int guest_request_open_url(sd_bus_message *m, void *userdata, sd_bus_error *error); /* guest-request.c */
int guest_request_open_file(sd_bus_message *m, void *userdata, sd_bus_error *error);
int guest_request_launch(sd_bus_message *m, void *userdata, sd_bus_error *error);
int guest_request_ping_vm(sd_bus_message *m, void *userdata, sd_bus_error *error);
int guest_request_open_stream(sd_bus_message *m, void *userdata, sd_bus_error *error);
int guest_request_stream_exited(sd_bus_message *m, void *userdata, sd_bus_error *error);
int guest_request_close_stream(sd_bus_message *m, void *userdata, sd_bus_error *error);
int guest_admin_request(sd_bus_message *m, void *userdata, sd_bus_error *error);    /* guest-admin.c */
int guest_admin_list_vms(sd_bus_message *m, void *userdata, sd_bus_error *error);

#define GUEST_SERVICES_VTABLE_METHODS                                                                               \
        SD_BUS_METHOD_WITH_ARGS("Copy", SD_BUS_ARGS("s", mime, "ay", data), SD_BUS_NO_RESULT, guest_clipboard_copy,  \
                                SD_BUS_VTABLE_UNPRIVILEGED),                                                        \
        SD_BUS_METHOD_WITH_ARGS("Paste", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", source, "s", mime, "ay", data),         \
                                guest_clipboard_paste, SD_BUS_VTABLE_UNPRIVILEGED),                                  \
        SD_BUS_METHOD_WITH_ARGS("OpenURL", SD_BUS_ARGS("s", url, "s", target), SD_BUS_RESULT("s", vm),              \
                                guest_request_open_url, SD_BUS_VTABLE_UNPRIVILEGED),                               \
        SD_BUS_METHOD_WITH_ARGS("OpenFile", SD_BUS_ARGS("s", name, "ay", data, "s", target),                        \
                                SD_BUS_RESULT("s", vm, "b", changed, "ay", data), guest_request_open_file,          \
                                SD_BUS_VTABLE_UNPRIVILEGED),                                                        \
        SD_BUS_METHOD_WITH_ARGS("Launch", SD_BUS_ARGS("s", app_id, "as", args, "s", target),                        \
                                SD_BUS_RESULT("s", vm), guest_request_launch, SD_BUS_VTABLE_UNPRIVILEGED),         \
        SD_BUS_METHOD_WITH_ARGS("PingVM", SD_BUS_ARGS("s", target), SD_BUS_RESULT("s", vm),                         \
                                guest_request_ping_vm, SD_BUS_VTABLE_UNPRIVILEGED),                                \
        SD_BUS_METHOD_WITH_ARGS("OpenStream", SD_BUS_ARGS("s", target, "s", service, "s", argument),               \
                                SD_BUS_RESULT("s", vm, "u", port, "u", tag, "t", stream),                          \
                                guest_request_open_stream, SD_BUS_VTABLE_UNPRIVILEGED),                            \
        SD_BUS_METHOD_WITH_ARGS("StreamExited", SD_BUS_ARGS("t", stream, "i", status, "s", message),              \
                                SD_BUS_NO_RESULT, guest_request_stream_exited, SD_BUS_VTABLE_UNPRIVILEGED),        \
        SD_BUS_METHOD_WITH_ARGS("CloseStream", SD_BUS_ARGS("t", stream), SD_BUS_NO_RESULT,                         \
                                guest_request_close_stream, SD_BUS_VTABLE_UNPRIVILEGED),                           \
        SD_BUS_METHOD_WITH_ARGS("SwitchPersona", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, guest_admin_request,      \
                                SD_BUS_VTABLE_UNPRIVILEGED),                                                        \
        SD_BUS_METHOD_WITH_ARGS("StartVM", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, guest_admin_request,            \
                                SD_BUS_VTABLE_UNPRIVILEGED),                                                        \
        SD_BUS_METHOD_WITH_ARGS("StopVM", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, guest_admin_request,             \
                                SD_BUS_VTABLE_UNPRIVILEGED),                                                        \
        SD_BUS_METHOD_WITH_ARGS("ListVMs", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ss)", vms), guest_admin_list_vms,    \
                                SD_BUS_VTABLE_UNPRIVILEGED)
