/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/audit.h"
#include "broker/errors.h"
#include "common/log.h"
#include "common/macro.h"

/* The managing group's gid (only asked for when there is one). */
static gid_t manage_gid(const Broker *b) {
        gid_t gid = (gid_t) -1;
        (void) broker_manage_gid(b, &gid);
        return gid;
}

static const char *strna(const char *s) {
        return s ? s : "n/a";
}

typedef struct AuthPending {
        Broker *broker;
        sd_bus_message *message;
        AuthDoneFunc done;
        void *userdata;
        void (*free_userdata)(void *);
        char who[64];
        bool finished;
} AuthPending;

static void auth_pending_finish(AuthPending *p, bool allowed, const char *how) {
        if (p->finished)
                return;
        p->finished = true;
        p->done(p->broker, p->message, allowed, how, p->who, p->userdata);
}

static void auth_pending_free(void *userdata) {
        AuthPending *p = userdata;
        if (!p)
                return;
        /* The bus went away before polkit answered: refuse, never allow. */
        if (!p->finished && p->message)
                p->finished = true; /* nobody to reply to any more */
        if (p->free_userdata)
                p->free_userdata(p->userdata);
        sd_bus_message_unref(p->message);
        free(p);
}

static int polkit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        AuthPending *p = userdata;
        int authorized = 0, challenge = 0;
        char how[300];

        const sd_bus_error *e = sd_bus_message_get_error(reply);
        if (e) {
                snprintf(how, sizeof how, "polkit unavailable (%s)", e->name);
                auth_pending_finish(p, false, how);
                return 0;
        }
        int r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0) {
                auth_pending_finish(p, false, "polkit sent a malformed reply");
                return 0;
        }
        if (authorized)
                auth_pending_finish(p, true, "polkit");
        else
                auth_pending_finish(p, false, challenge ? "polkit: authentication required"
                                                        : "polkit: not authorized");
        return 0;
}

static int polkit_check(AuthPending *p) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        /* Our reference is dropped on return: once floating, the bus owns the slot. */
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        sd_bus *bus = sd_bus_message_get_bus(p->message);
        const char *sender = sd_bus_message_get_sender(p->message);
        int r;

        if (!sender)
                return -EBADMSG;

        r = sd_bus_message_new_method_call(bus, &call, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority",
                                           "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s", sender,
                                  AUTH_ACTION_MANAGE, 0,
                                  (uint32_t) (sd_bus_message_get_allow_interactive_authorization(p->message) > 0),
                                  "");
        if (r < 0)
                return r;
        /* Don't auto-start polkit from here: no polkit means "not authorized". */
        (void) sd_bus_message_set_auto_start(call, false);

        /* polkit may wait for an interactive agent: allow it a while. */
        r = sd_bus_call_async(bus, &slot, call, polkit_reply, p, 120 * 1000000ULL);
        if (r < 0)
                return r;
        (void) sd_bus_slot_set_destroy_callback(slot, auth_pending_free);
        (void) sd_bus_slot_set_floating(slot, 1);
        return 0;
}

static void auth_pending_polkit(AuthPending *p) {
        int r = polkit_check(p);
        if (r < 0) {
                log_debug_errno(r, "Cannot ask polkit: %m");
                auth_pending_finish(p, false, "polkit unavailable");
                auth_pending_free(p);
        }
        /* else: polkit_reply() finishes, the slot's destroy callback frees. */
}

/*
 * The bus daemon's view of the caller's groups (dbus-daemon >= 1.14 reports
 * UnixGroupIDs, taken at connect time from SO_PEERGROUPS), asked
 * asynchronously.  sd-bus does not parse that field, and supplementary gids
 * it would read from /proc are augmented, hence not trusted.
 */
static int groups_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        AuthPending *p = userdata;
        Broker *b = p->broker;
        bool member = false;
        int r;

        if (sd_bus_message_is_method_error(reply, NULL))
                goto next;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r > 0) {
                const char *key;
                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        break;
                if (strcmp(key, "UnixGroupIDs") == 0) {
                        const void *gids;
                        size_t size;
                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r < 0)
                                break;
                        r = sd_bus_message_read_array(reply, 'u', &gids, &size);
                        if (r < 0)
                                break;
                        for (size_t i = 0; i < size / sizeof(uint32_t); i++)
                                if (((const uint32_t *) gids)[i] == (uint32_t) manage_gid(b))
                                        member = true;
                        r = sd_bus_message_exit_container(reply);
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        break;
                r = sd_bus_message_exit_container(reply);
        }
next:
        if (member) {
                auth_pending_finish(p, true, "group-vmfed");
                return 0; /* the slot's destroy callback frees p */
        }
        /* Not a member (or the bus daemon cannot say): polkit decides, with p handed over. */
        AuthPending *q = calloc(1, sizeof *q);
        if (!q) {
                auth_pending_finish(p, false, "out of memory");
                return 0;
        }
        *q = *p;
        q->message = sd_bus_message_ref(p->message);
        p->free_userdata = NULL; /* q owns userdata now */
        p->finished = true;      /* p's destroy must not reply */
        auth_pending_polkit(q);
        return 0;
}

static int groups_check(AuthPending *p) {
        sd_bus *bus = sd_bus_message_get_bus(p->message);
        const char *sender = sd_bus_message_get_sender(p->message);
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL; /* see polkit_check() */
        int r;

        if (!sender)
                return -EBADMSG;
        r = sd_bus_call_method_async(bus, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "GetConnectionCredentials", groups_reply, p, "s",
                                     sender);
        if (r < 0)
                return r;
        (void) sd_bus_slot_set_destroy_callback(slot, auth_pending_free);
        (void) sd_bus_slot_set_floating(slot, 1);
        return 0;
}

static bool gid_in(gid_t gid, const gid_t *gids, int n) {
        for (int i = 0; i < n; i++)
                if (gids[i] == gid)
                        return true;
        return false;
}

void auth_check_manage(Broker *b, sd_bus_message *m, AuthDoneFunc done, void *userdata,
                       void (*free_userdata)(void *)) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        AuthPending *p;
        uid_t uid = (uid_t) -1;
        bool have_uid = false;
        int r;

        p = calloc(1, sizeof *p);
        if (!p) {
                done(b, m, false, "out of memory", "uid=?", userdata);
                if (free_userdata)
                        free_userdata(userdata);
                return;
        }
        p->broker = b;
        p->message = sd_bus_message_ref(m);
        p->done = done;
        p->userdata = userdata;
        p->free_userdata = free_userdata;
        snprintf(p->who, sizeof p->who, "uid=?");

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID | SD_BUS_CREDS_EGID |
                                                 SD_BUS_CREDS_SUPPLEMENTARY_GIDS,
                                      &creds);
        if (r < 0) {
                log_warning_errno(r, "Failed to query the caller's credentials: %m");
                auth_pending_finish(p, false, "credentials unavailable");
                auth_pending_free(p);
                return;
        }

        /* Only fields the bus daemon vouched for, never ones read from /proc. */
        uint64_t augmented = sd_bus_creds_get_augmented_mask(creds);
        log_debug("Caller %s: credentials 0x%" PRIx64 ", of which augmented 0x%" PRIx64 ".",
                  strna(sd_bus_message_get_sender(m)), sd_bus_creds_get_mask(creds), augmented);
        if (!(augmented & SD_BUS_CREDS_EUID) && sd_bus_creds_get_euid(creds, &uid) >= 0)
                have_uid = true;
        else if (!(augmented & SD_BUS_CREDS_UID) && sd_bus_creds_get_uid(creds, &uid) >= 0)
                have_uid = true; /* dbus-daemon's UnixUserID is SO_PEERCRED's (effective) uid */
        if (have_uid)
                snprintf(p->who, sizeof p->who, "uid=%" PRIu32, (uint32_t) uid);

        if (have_uid && uid == 0) {
                auth_pending_finish(p, true, "uid-0");
                auth_pending_free(p);
                return;
        }

        if (broker_manage_gid(b, NULL)) {
                gid_t egid;
                const gid_t *gids = NULL;
                int n;

                if (!(augmented & SD_BUS_CREDS_EGID) && sd_bus_creds_get_egid(creds, &egid) >= 0 &&
                    egid == manage_gid(b)) {
                        auth_pending_finish(p, true, "group-vmfed");
                        auth_pending_free(p);
                        return;
                }
                if (!(augmented & SD_BUS_CREDS_SUPPLEMENTARY_GIDS) &&
                    (n = sd_bus_creds_get_supplementary_gids(creds, &gids)) > 0 &&
                    gid_in(manage_gid(b), gids, n)) {
                        auth_pending_finish(p, true, "group-vmfed");
                        auth_pending_free(p);
                        return;
                }
                /* Direct connections have no bus daemon to ask. */
                if (sd_bus_message_get_sender(m) && groups_check(p) >= 0)
                        return; /* groups_reply() goes on */
        }

        auth_pending_polkit(p);
}

bool auth_audit_decision(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who,
                         const AuthAction *action) {
        audit_log(&(AuditRecord) {
                .request_id = broker_next_request_id(b),
                .source = "@host",
                .caller = who,
                .target = action->target ? action->target : "@host",
                .service = action->service,
                .arg = action->arg,
                .decision = allowed ? "allow" : "deny",
                .rule = how,
        });
        if (!allowed)
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_ACCESS_DENIED,
                                                  "%s needs uid 0, membership of group vmfed or polkit authorization "
                                                  "for org.vmfed.manage (caller %s: %s).",
                                                  action->activity, who, how);
        return allowed;
}
