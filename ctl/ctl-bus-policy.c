/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl policy files|get|replace|remove|evaluate: the policy of a running
 * vmfedd, through org.vmfed.Federation1.Policy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "ctl/ctl.h"

/* Generous: the broker enforces the real limit and says so (TooLarge). */
#define CTL_POLICY_FILE_MAX (16 * 1024 * 1024)

int ctl_policy_files(int argc, char **argv) {
        static const char *const header[] = { "NAME", "ETAG" };
        static const char *const keys[] = { "name", "etag" };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        CtlBusOptions o;
        int r;

        r = ctl_bus_start(argc, argv, "policy files [--address ADDR] [--json]", CTL_OPT_ETAG, CTL_ARGS_NONE, &o,
                          &bus);
        if (r != CTL_CONTINUE)
                return r;
        if (ctl_bus_call(bus, CTL_POLICY_IFACE, "ListFiles", "cannot list policy files", &reply, NULL) < 0)
                return CTL_EXIT_FAILURE;
        return ctl_print_records(reply, "ss", header, keys, o.json);
}

int ctl_policy_get(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *content, *etag;
        CtlBusOptions o;
        int r;

        r = ctl_bus_start(argc, argv, "policy get [--address ADDR] [--json] NAME", CTL_OPT_ETAG, 1, &o, &bus);
        if (r != CTL_CONTINUE)
                return r;
        if (ctl_bus_call(bus, CTL_POLICY_IFACE, "GetFile", o.args[0], &reply, "s", o.args[0]) < 0)
                return CTL_EXIT_FAILURE;
        r = sd_bus_message_read(reply, "ss", &content, &etag);
        if (r < 0)
                return ctl_bus_error("bad reply", NULL, r);
        if (o.json) {
                ctl_json_object(stdout, "name", o.args[0], "etag", etag, "content", content, NULL);
                putchar('\n');
        } else {
                fputs(content, stdout);
                fprintf(stderr, "etag: %s\n", etag);
        }
        return CTL_EXIT_OK;
}

/* The current etag of name, "" when it does not exist. */
static int current_etag(sd_bus *bus, const char *name, char **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *content, *etag;
        int r;

        r = sd_bus_call_method(bus, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_POLICY_IFACE, "GetFile", error, &reply, "s",
                               name);
        if (r < 0 && sd_bus_error_has_name(error, "org.vmfed.Federation1.Error.NotFound")) {
                sd_bus_error_free(error);
                *ret = strdup("");
                return *ret ? 0 : -ENOMEM;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "ss", &content, &etag);
        if (r < 0)
                return r;
        *ret = strdup(etag);
        return *ret ? 0 : -ENOMEM;
}

/* The etag to send for o->args[0]: --etag, or without it the current one (last writer wins). */
static int expected_etag(sd_bus *bus, const CtlBusOptions *o, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (o->etag)
                *ret = strdup(o->etag);
        else {
                r = current_etag(bus, o->args[0], ret, &error);
                if (r < 0)
                        return ctl_bus_error(o->args[0], &error, r);
        }
        if (!*ret)
                return log_oom(), CTL_EXIT_FAILURE;
        return CTL_CONTINUE;
}

int ctl_policy_replace(int argc, char **argv) {
        static const char usage[] = "policy replace [--address ADDR] [--json] [--etag ETAG] NAME FILE|-";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *content = NULL, *etag = NULL;
        const char *new_etag;
        CtlBusOptions o;
        int r;

        r = ctl_bus_parse_common(argc, argv, usage, CTL_OPT_ETAG, 2, &o);
        if (r != CTL_CONTINUE)
                return r;

        r = read_full_file(strcmp(o.args[1], "-") == 0 ? "/dev/stdin" : o.args[1], CTL_POLICY_FILE_MAX, &content,
                           NULL);
        if (r == -EBADFD && strcmp(o.args[1], "-") == 0) {
                /* stdin is a pipe: read it by hand. */
                size_t size = 0, alloc = 0;
                for (;;) {
                        if (size + 4096 + 1 > alloc) {
                                alloc = alloc ? alloc * 2 : 8192;
                                if (alloc > CTL_POLICY_FILE_MAX + 8192)
                                        return fprintf(stderr, "vmfedctl: input too large\n"), CTL_EXIT_FAILURE;
                                char *p = realloc(content, alloc);
                                if (!p)
                                        return log_oom(), CTL_EXIT_FAILURE;
                                content = p;
                        }
                        size_t k = fread(content + size, 1, 4096, stdin);
                        size += k;
                        if (k == 0)
                                break;
                }
                content[size] = 0;
                r = 0;
        }
        if (r < 0)
                return fprintf(stderr, "vmfedctl: cannot read %s: %s\n", o.args[1], strerror(-r)), CTL_EXIT_FAILURE;

        if (ctl_bus_open(o.address, &bus) < 0)
                return CTL_EXIT_FAILURE;
        r = expected_etag(bus, &o, &etag);
        if (r != CTL_CONTINUE)
                return r;

        if (ctl_bus_call(bus, CTL_POLICY_IFACE, "ReplaceFile", o.args[0], &reply, "sss", o.args[0], content,
                         etag) < 0)
                return CTL_EXIT_FAILURE;
        r = sd_bus_message_read(reply, "s", &new_etag);
        if (r < 0)
                return ctl_bus_error("bad reply", NULL, r);
        if (o.json) {
                ctl_json_object(stdout, "name", o.args[0], "etag", new_etag, NULL);
                putchar('\n');
        } else
                printf("%s\n", new_etag);
        return CTL_EXIT_OK;
}

int ctl_policy_remove(int argc, char **argv) {
        static const char usage[] = "policy remove [--address ADDR] [--etag ETAG] NAME";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *etag = NULL;
        CtlBusOptions o;
        int r;

        r = ctl_bus_start(argc, argv, usage, CTL_OPT_ETAG, 1, &o, &bus);
        if (r != CTL_CONTINUE)
                return r;
        r = expected_etag(bus, &o, &etag);
        if (r != CTL_CONTINUE)
                return r;
        if (ctl_bus_call(bus, CTL_POLICY_IFACE, "RemoveFile", o.args[0], NULL, "ss", o.args[0], etag) < 0)
                return CTL_EXIT_FAILURE;
        return CTL_EXIT_OK;
}

int ctl_policy_evaluate(int argc, char **argv) {
        static const char usage[] = "policy evaluate [--address ADDR] [--json] SOURCE TARGET SERVICE[+ARG]";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *action, *target, *default_target, *rule;
        CtlBusOptions o;
        int r;

        r = ctl_bus_start(argc, argv, usage, CTL_OPT_ETAG, 3, &o, &bus);
        if (r != CTL_CONTINUE)
                return r;
        if (ctl_bus_call(bus, CTL_POLICY_IFACE, "Evaluate", "cannot evaluate", &reply, "sss", o.args[0], o.args[1],
                         o.args[2]) < 0)
                return CTL_EXIT_FAILURE;
        r = sd_bus_message_read(reply, "ssss", &action, &target, &default_target, &rule);
        if (r < 0)
                return ctl_bus_error("bad reply", NULL, r);
        if (o.json) {
                ctl_json_object(stdout, "action", action, "target", target, "default_target", default_target, "rule",
                                rule, NULL);
                putchar('\n');
        } else {
                static const char *const header[] = { "ACTION", "TARGET", "DEFAULT-TARGET", "RULE" };
                const char *cells[] = { action, *target ? target : "-", *default_target ? default_target : "-",
                                        *rule ? rule : "(default deny)" };
                ctl_table_print(stdout, 4, header, cells, 1);
        }
        return CTL_EXIT_OK;
}
