/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl verbs that run the federation through vmfedd: start, stop,
 * switch (with the broker's progress lines while they work), vm add/remove,
 * generations, rollback.
 *
 * Progress: before calling, we subscribe to Manager.Progress; the id of our
 * operation is "OUR-UNIQUE-NAME/COOKIE-OF-OUR-CALL" (docs/dbus-api.md), so
 * we print exactly the lines of our own call while waiting for its reply.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>
#include <systemd/sd-bus.h>

#include "common/log.h"
#include "common/macro.h"
#include "ctl/ctl.h"

/* A stop waits StopTimeout= (at most an hour) before destroying; a switch stops and starts. */
#define CTL_LONG_CALL_USEC (2ULL * 3600 * 1000000)
#define CTL_VM_CONFIG_MAX (64 * 1024)

typedef struct CtlLongCall {
        char *operation; /* "UNIQUE/COOKIE" */
        bool json;
        bool done;
        int r;
        sd_bus_error error;
} CtlLongCall;

static int on_progress(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        CtlLongCall *c = userdata;
        const char *operation, *line;

        if (sd_bus_message_read(m, "ss", &operation, &line) < 0)
                return 0;
        if (!c->operation || strcmp(operation, c->operation) != 0)
                return 0;
        /* With --json, stdout is for the one JSON document. */
        fprintf(c->json ? stderr : stdout, "%s\n", line);
        fflush(c->json ? stderr : stdout);
        return 0;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        CtlLongCall *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        c->done = true;
        if (e) {
                c->r = -sd_bus_error_get_errno(e) ?: -EIO;
                (void) sd_bus_error_copy(&c->error, e);
        }
        return 0;
}

/*
 * Call Manager.METHOD with arguments appended by the caller (m is ready to
 * send), print our Progress lines, wait for the reply.  CTL_EXIT_*.
 */
static int ctl_long_call(sd_bus *bus, sd_bus_message *m, const char *what, bool json) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *match = NULL, *call = NULL;
        CtlLongCall c = { .json = json, .error = SD_BUS_ERROR_NULL };
        const char *unique = NULL;
        uint64_t cookie = 0;
        int r;

        r = sd_bus_get_unique_name(bus, &unique);
        if (r < 0)
                return ctl_bus_error(what, NULL, r);
        /* Subscribe first (synchronously: the match is installed when this returns), then call. */
        r = sd_bus_match_signal(bus, &match, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_MANAGER_IFACE, "Progress", on_progress,
                                &c);
        if (r < 0)
                return ctl_bus_error("cannot subscribe to progress signals", NULL, r);
        r = sd_bus_call_async(bus, &call, m, on_reply, &c, CTL_LONG_CALL_USEC);
        if (r < 0)
                return ctl_bus_error(what, NULL, r);
        r = sd_bus_message_get_cookie(m, &cookie);
        if (r < 0)
                return ctl_bus_error(what, NULL, r);
        c.operation = g_strdup_printf("%s/%" PRIu64, unique, cookie);

        while (!c.done) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0)
                        break;
        }
        g_free(c.operation);
        if (r < 0 && !c.done)
                return ctl_bus_error(what, NULL, r);
        if (c.r < 0) {
                r = ctl_bus_error(what, &c.error, c.r);
                sd_bus_error_free(&c.error);
                return r;
        }
        return CTL_EXIT_OK;
}

static int lifecycle_verb(int argc, char **argv, const char *usage, const char *method, bool allow_force,
                          const char *done) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        g_autofree char *what = NULL;
        CtlBusOptions o;
        int r;

        r = ctl_bus_start(argc, argv, usage, CTL_OPT_LIFECYCLE | (allow_force ? CTL_OPT_FORCE : 0), 1, &o, &bus);
        if (r != CTL_CONTINUE)
                return r;

        r = sd_bus_message_new_method_call(bus, &m, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_MANAGER_IFACE, method);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", o.args[0]);
        if (r >= 0 && allow_force)
                r = sd_bus_message_append(m, "b", o.force);
        if (r < 0)
                return ctl_bus_error("cannot build the call", NULL, r);
        what = g_strdup_printf("%s %s", argv[0], o.args[0]);
        r = ctl_long_call(bus, m, what, o.json);
        if (r != CTL_EXIT_OK)
                return r;
        if (o.json) {
                ctl_json_object(stdout, "vm", o.args[0], "result", "done", NULL);
                putchar('\n');
        } else
                printf("done: %s %s\n", done, o.args[0]);
        return CTL_EXIT_OK;
}

int ctl_start(int argc, char **argv) {
        return lifecycle_verb(argc, argv, "start [--address ADDR] [--json] NAME", "StartVM", false, "started");
}

int ctl_stop(int argc, char **argv) {
        return lifecycle_verb(argc, argv, "stop [--address ADDR] [--json] [--force] NAME", "StopVM", true, "stopped");
}

int ctl_switch(int argc, char **argv) {
        return lifecycle_verb(argc, argv, "switch [--address ADDR] [--json] PERSONA", "SwitchPersona", false,
                              "switched to");
}

int ctl_vm_add(int argc, char **argv) {
        static const char usage[] = "vm add [--address ADDR] NAME FILE   (FILE '-' reads stdin)";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        g_autofree char *text = NULL;
        g_autoptr(GError) gerror = NULL;
        CtlBusOptions o;
        int r;

        r = ctl_bus_parse_common(argc, argv, usage, CTL_OPT_LIFECYCLE, 2, &o);
        if (r != CTL_CONTINUE)
                return r;
        if (strcmp(o.args[1], "-") == 0) {
                g_autoptr(GString) s = g_string_new(NULL);
                char buf[4096];
                size_t n;
                while ((n = fread(buf, 1, sizeof buf, stdin)) > 0 && s->len <= CTL_VM_CONFIG_MAX)
                        g_string_append_len(s, buf, n);
                text = g_string_free(steal_pointer(&s), false);
        } else if (!g_file_get_contents(o.args[1], &text, NULL, &gerror))
                return fprintf(stderr, "vmfedctl: %s\n", gerror->message), CTL_EXIT_FAILURE;
        if (ctl_bus_open(o.address, &bus) < 0)
                return CTL_EXIT_FAILURE;
        if (ctl_bus_call(bus, CTL_MANAGER_IFACE, "AddVM", "cannot add the VM", NULL, "ss", o.args[0], text) < 0)
                return CTL_EXIT_FAILURE;
        return CTL_EXIT_OK;
}

int ctl_vm_remove(int argc, char **argv) {
        static const char usage[] = "vm remove [--address ADDR] NAME";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        CtlBusOptions o;
        int r;

        r = ctl_bus_start(argc, argv, usage, CTL_OPT_LIFECYCLE, 1, &o, &bus);
        if (r != CTL_CONTINUE)
                return r;
        if (ctl_bus_call(bus, CTL_MANAGER_IFACE, "RemoveVM", "cannot remove the VM", NULL, "s", o.args[0]) < 0)
                return CTL_EXIT_FAILURE;
        return CTL_EXIT_OK;
}

int ctl_generations(int argc, char **argv) {
        static const char usage[] = "generations [--address ADDR] [--json]";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(g_free);
        g_autofree const char **cells = NULL;
        const char *description;
        uint32_t number;
        uint64_t usec;
        int current;
        size_t n = 0;
        CtlBusOptions o;
        int r;

        r = ctl_bus_start(argc, argv, usage, CTL_OPT_LIFECYCLE, 0, &o, &bus);
        if (r != CTL_CONTINUE)
                return r;
        if (ctl_bus_call(bus, CTL_MANAGER_IFACE, "ListGenerations", "cannot list generations", &reply, NULL) < 0)
                return CTL_EXIT_FAILURE;
        r = sd_bus_message_enter_container(reply, 'a', "(utsb)");
        if (r < 0)
                return ctl_bus_error("bad reply", NULL, r);
        if (o.json)
                printf("[");
        while ((r = sd_bus_message_read(reply, "(utsb)", &number, &usec, &description, &current)) > 0) {
                if (o.json) {
                        printf("%s{\"generation\":%" PRIu32 ",\"time_usec\":%" PRIu64 ",\"description\":",
                               n > 0 ? "," : "", number, usec);
                        ctl_json_string(stdout, description);
                        printf(",\"current\":%s}", current ? "true" : "false");
                } else {
                        time_t t = (time_t) (usec / 1000000);
                        struct tm tm;
                        char when[64] = "?";
                        if (gmtime_r(&t, &tm))
                                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
                        char *num = g_strdup_printf("%" PRIu32, number), *w = g_strdup(when);
                        g_ptr_array_add(owned, num);
                        g_ptr_array_add(owned, w);
                        /* description points into reply, which lives until we return */
                        cells = g_renew(const char *, cells, (n + 1) * 4);
                        cells[n * 4 + 0] = num;
                        cells[n * 4 + 1] = w;
                        cells[n * 4 + 2] = current ? "*" : "";
                        cells[n * 4 + 3] = description;
                }
                n++;
        }
        if (r < 0)
                return ctl_bus_error("bad reply", NULL, r);
        if (o.json)
                printf("]\n");
        else {
                static const char *const header[] = { "GEN", "TIME", "CURRENT", "DESCRIPTION" };
                ctl_table_print(stdout, 4, header, cells, n);
        }
        return CTL_EXIT_OK;
}

int ctl_rollback(int argc, char **argv) {
        static const char usage[] = "rollback [--address ADDR] GENERATION";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        CtlBusOptions o;
        uint32_t new_n = 0;
        unsigned long n;
        char *end;
        int r;

        r = ctl_bus_parse_common(argc, argv, usage, CTL_OPT_LIFECYCLE, 1, &o);
        if (r != CTL_CONTINUE)
                return r;
        errno = 0;
        n = strtoul(o.args[0], &end, 10);
        if (errno != 0 || *end || end == o.args[0] || n > UINT32_MAX)
                return fprintf(stderr, "vmfedctl rollback: '%s' is not a generation number\n", o.args[0]),
                       CTL_EXIT_USAGE;
        if (ctl_bus_open(o.address, &bus) < 0)
                return CTL_EXIT_FAILURE;
        if (ctl_bus_call(bus, CTL_MANAGER_IFACE, "Rollback", "cannot roll back", &reply, "u", (uint32_t) n) < 0)
                return CTL_EXIT_FAILURE;
        r = sd_bus_message_read(reply, "u", &new_n);
        if (r < 0)
                return ctl_bus_error("cannot roll back", NULL, r);
        if (o.json)
                printf("{\"rolled_back_to\":%lu,\"generation\":%" PRIu32 "}\n", n, new_n);
        else
                printf("Rolled back to generation %lu (recorded as generation %" PRIu32 ").\n", n, new_n);
        return CTL_EXIT_OK;
}
