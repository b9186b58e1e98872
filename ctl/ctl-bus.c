/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl verbs that talk to a running vmfedd over D-Bus: status, vms, and
 * the helpers every ctl-bus-*.c verb shares (options, connecting, calling,
 * errors, tables, JSON), so that a verb reads: parse, call, print.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "common/log.h"
#include "common/macro.h"
#include "ctl/ctl.h"

static const char *ctl_host;

void ctl_bus_set_host(const char *host) {
        ctl_host = host;
}

int ctl_bus_open(const char *address, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (address && ctl_host) {
                fprintf(stderr, "vmfedctl: --host and --address exclude each other\n");
                return -EINVAL;
        }
        if (ctl_host) {
                /* ssh -xT [USER@]HOST systemd-stdio-bridge: the remote system
                 * bus, as the ssh user (its credentials are what vmfedd and
                 * the bus policy see; no polkit agent on that side). */
                r = sd_bus_open_system_remote(&bus, ctl_host);
                if (r < 0) {
                        fprintf(stderr, "vmfedctl: cannot connect to the system bus of %s: %s\n", ctl_host,
                                strerror(-r));
                        return r;
                }
                *ret = steal_pointer(&bus);
                return 0;
        }
        if (!address) {
                r = sd_bus_open_system(&bus);
                if (r < 0) {
                        fprintf(stderr, "vmfedctl: cannot connect to the system bus: %s\n", strerror(-r));
                        return r;
                }
        } else {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, 1);
                if (r >= 0)
                        r = sd_bus_start(bus);
                if (r < 0) {
                        fprintf(stderr, "vmfedctl: cannot connect to the bus at %s: %s\n", address, strerror(-r));
                        return r;
                }
        }
        /* Let polkit ask for a password when a human runs us. */
        (void) sd_bus_set_allow_interactive_authorization(bus, 1);
        *ret = steal_pointer(&bus);
        return 0;
}

int ctl_bus_error(const char *what, const sd_bus_error *error, int r) {
        if (error && sd_bus_error_is_set(error))
                fprintf(stderr, "vmfedctl: %s: %s (%s)\n", what, error->message ? error->message : "", error->name);
        else
                fprintf(stderr, "vmfedctl: %s: %s\n", what, strerror(r < 0 ? -r : EIO));
        return CTL_EXIT_FAILURE;
}

void ctl_json_string(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                default:
                        if (*p < 0x20)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}

void ctl_table_print(FILE *f, size_t n_columns, const char *const *header, const char *const *cells,
                     size_t n_rows) {
        size_t width[16] = {};

        if (n_columns > ELEMENTSOF(width))
                n_columns = ELEMENTSOF(width);
        for (size_t c = 0; c < n_columns; c++) {
                width[c] = strlen(header[c]);
                for (size_t r = 0; r < n_rows; r++) {
                        size_t w = strlen(cells[r * n_columns + c]);
                        if (w > width[c])
                                width[c] = w;
                }
        }
        for (size_t r = 0; r <= n_rows; r++) {
                const char *const *row = r == 0 ? header : cells + (r - 1) * n_columns;
                for (size_t c = 0; c < n_columns; c++) {
                        if (c + 1 == n_columns)
                                fprintf(f, "%s\n", row[c]);
                        else
                                fprintf(f, "%-*s  ", (int) width[c], row[c]);
                }
        }
}

int ctl_bus_parse_common(int argc, char **argv, const char *usage, unsigned flags, int n_args, CtlBusOptions *o) {
        struct option options[6] = {
                { "address", required_argument, NULL, 'A' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
        };
        size_t n_options = 3;
        bool lifecycle = flags & CTL_OPT_LIFECYCLE, allow_force = lifecycle && (flags & CTL_OPT_FORCE);
        int c;

        if (flags & CTL_OPT_ETAG)
                options[n_options++] = (struct option) { "etag", required_argument, NULL, 'e' };
        if (lifecycle)
                options[n_options++] = (struct option) { "force", no_argument, NULL, 'f' };

        *o = (CtlBusOptions) {};
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'A':
                        o->address = optarg;
                        break;
                case 'j':
                        o->json = true;
                        break;
                case 'e':
                        o->etag = optarg;
                        break;
                case 'f':
                        if (!allow_force)
                                goto usage;
                        o->force = true;
                        break;
                case 'h':
                        printf("Usage: vmfedctl %s\n\n"
                               "  --address ADDR  D-Bus address of the bus vmfedd is on [system bus]\n"
                               "  --json          one JSON document on stdout%s\n%s",
                               usage, lifecycle ? " (progress lines go to stderr)" : ", for scripts",
                               allow_force ? "  --force         destroy at once instead of a graceful stop\n" : "");
                        return CTL_EXIT_OK;
                default:
                        goto usage;
                }
        }
        o->args = argv + optind;
        o->n_args = argc - optind;
        if (n_args == CTL_ARGS_NONE && o->n_args != 0) {
                /* The verb is what the usage says before its options: "policy files [--address ADDR]". */
                const char *options_start = strstr(usage, " [");
                int verb_len = options_start ? (int) (options_start - usage) : (int) strlen(usage);
                fprintf(stderr, "vmfedctl %.*s: no arguments expected\n", verb_len, usage);
                return CTL_EXIT_USAGE;
        }
        if (n_args >= 0 && o->n_args != n_args)
                goto usage;
        return CTL_CONTINUE;
usage:
        fprintf(stderr, "Usage: vmfedctl %s\n", usage);
        return CTL_EXIT_USAGE;
}

int ctl_bus_start(int argc, char **argv, const char *usage, unsigned flags, int n_args, CtlBusOptions *o,
                  sd_bus **ret_bus) {
        int r = ctl_bus_parse_common(argc, argv, usage, flags, n_args, o);
        if (r != CTL_CONTINUE)
                return r;
        return ctl_bus_open(o->address, ret_bus) < 0 ? CTL_EXIT_FAILURE : CTL_CONTINUE;
}

int ctl_bus_call(sd_bus *bus, const char *iface, const char *method, const char *what, sd_bus_message **reply,
                 const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        va_start(ap, types);
        r = sd_bus_call_methodv(bus, CTL_BUS_NAME, CTL_ROOT_PATH, iface, method, &error, reply, types, ap);
        va_end(ap);
        if (r < 0)
                (void) ctl_bus_error(what, &error, r);
        return r;
}

void ctl_json_object(FILE *f, ...) {
        const char *key;
        va_list ap;

        fputc('{', f);
        va_start(ap, f);
        for (size_t i = 0; (key = va_arg(ap, const char *)); i++) {
                fprintf(f, "%s\"%s\":", i > 0 ? "," : "", key);
                ctl_json_string(f, va_arg(ap, const char *));
        }
        va_end(ap);
        fputc('}', f);
}

static int read_record(sd_bus_message *reply, const char *fields, const char **row) {
        int r = sd_bus_message_enter_container(reply, 'r', fields);
        if (r <= 0)
                return r;
        for (size_t c = 0; fields[c]; c++) {
                r = sd_bus_message_read_basic(reply, fields[c], &row[c]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(reply);
        return r < 0 ? r : 1;
}

int ctl_print_records(sd_bus_message *reply, const char *fields, const char *const *header,
                      const char *const *keys, bool json) {
        _cleanup_free_ const char **cells = NULL;
        size_t n_columns = strlen(fields), n = 0;
        char array[16 + 3];
        int r;

        if (n_columns > 16)
                return ctl_bus_error("bad reply", NULL, -EINVAL);
        snprintf(array, sizeof array, "(%s)", fields);
        r = sd_bus_message_enter_container(reply, 'a', array);
        if (r < 0)
                return ctl_bus_error("bad reply", NULL, r);
        if (json)
                printf("[");
        for (;;) {
                const char **p = realloc(cells, (n + 1) * n_columns * sizeof(char *));
                if (!p)
                        return log_oom(), CTL_EXIT_FAILURE;
                cells = p;
                const char **row = cells + n * n_columns;
                r = read_record(reply, fields, row);
                if (r <= 0)
                        break;
                if (json) {
                        printf("%s{", n > 0 ? "," : "");
                        for (size_t c = 0; c < n_columns; c++) {
                                printf("%s\"%s\":", c > 0 ? "," : "", keys[c]);
                                ctl_json_string(stdout, row[c]);
                        }
                        printf("}");
                }
                n++;
        }
        if (r < 0)
                return ctl_bus_error("bad reply", NULL, r);
        if (json)
                printf("]\n");
        else
                ctl_table_print(stdout, n_columns, header, cells, n);
        return CTL_EXIT_OK;
}

static int get_string_property(sd_bus *bus, const char *iface, const char *name, char **ret,
                               sd_bus_error *error) {
        return sd_bus_get_property_string(bus, CTL_BUS_NAME, CTL_ROOT_PATH, iface, name, error, ret);
}

int ctl_status(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *vms = NULL;
        _cleanup_free_ char *version = NULL, *persona = NULL;
        char **diagnostics = NULL;
        uint64_t revision = 0;
        int valid = 0, n_vms = 0;
        CtlBusOptions o;
        int r;

        r = ctl_bus_start(argc, argv, "status [--address ADDR] [--json]", CTL_OPT_ETAG, CTL_ARGS_NONE, &o, &bus);
        if (r != CTL_CONTINUE)
                return r;

        r = get_string_property(bus, CTL_MANAGER_IFACE, "Version", &version, &error);
        if (r >= 0)
                r = get_string_property(bus, CTL_MANAGER_IFACE, "ActivePersona", &persona, &error);
        if (r >= 0)
                r = sd_bus_get_property_trivial(bus, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_POLICY_IFACE, "Revision",
                                                &error, 't', &revision);
        if (r >= 0)
                r = sd_bus_get_property_trivial(bus, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_POLICY_IFACE, "Valid",
                                                &error, 'b', &valid);
        if (r >= 0)
                r = sd_bus_get_property_strv(bus, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_POLICY_IFACE, "Diagnostics",
                                             &error, &diagnostics);
        if (r >= 0)
                r = sd_bus_call_method(bus, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_MANAGER_IFACE, "ListVMs", &error,
                                       &vms, NULL);
        if (r < 0)
                return ctl_bus_error("cannot read the broker's status", &error, r);

        r = sd_bus_message_enter_container(vms, 'a', "(ssso)");
        while (r >= 0 && (r = sd_bus_message_skip(vms, "(ssso)")) > 0)
                n_vms++;

        if (o.json) {
                printf("{\"version\":");
                ctl_json_string(stdout, version);
                printf(",\"active_persona\":");
                ctl_json_string(stdout, persona);
                printf(",\"vms\":%d,\"policy_revision\":%" PRIu64 ",\"policy_valid\":%s,\"policy_diagnostics\":[",
                       n_vms, revision, valid ? "true" : "false");
                for (size_t i = 0; diagnostics && diagnostics[i]; i++) {
                        if (i > 0)
                                putchar(',');
                        ctl_json_string(stdout, diagnostics[i]);
                }
                printf("]}\n");
        } else {
                printf("Broker:          vmfedd %s\n", version);
                printf("Active persona:  %s\n", persona && *persona ? persona : "(none)");
                printf("VMs:             %d\n", n_vms);
                printf("Policy revision: %" PRIu64 "\n", revision);
                printf("Policy:          %s\n", valid ? "valid" : "BROKEN: every request is denied");
                for (size_t i = 0; diagnostics && diagnostics[i]; i++)
                        printf("  %s\n", diagnostics[i]);
        }
        for (size_t i = 0; diagnostics && diagnostics[i]; i++)
                free(diagnostics[i]);
        free(diagnostics);
        return CTL_EXIT_OK;
}

int ctl_vms(int argc, char **argv) {
        static const char *const header[] = { "NAME", "ROLE", "STATE", "OBJECT" };
        static const char *const keys[] = { "name", "role", "state", "path" };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        CtlBusOptions o;
        int r;

        r = ctl_bus_start(argc, argv, "vms [--address ADDR] [--json]", CTL_OPT_ETAG, CTL_ARGS_NONE, &o, &bus);
        if (r != CTL_CONTINUE)
                return r;
        if (ctl_bus_call(bus, CTL_MANAGER_IFACE, "ListVMs", "cannot list VMs", &reply, NULL) < 0)
                return CTL_EXIT_FAILURE;
        return ctl_print_records(reply, "ssso", header, keys, o.json);
}
