/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl verbs that talk to a running vmfedd over D-Bus: status, vms, and
 * the shared helpers (connecting, errors, tables, JSON) that
 * ctl-bus-policy.c uses too.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "common/log.h"
#include "common/macro.h"
#include "ctl/ctl.h"

int ctl_bus_open(const char *address, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

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

int ctl_bus_parse_common(int argc, char **argv, const char *usage, CtlBusOptions *o) {
        static const struct option options[] = {
                { "address", required_argument, NULL, 'A' },
                { "json", no_argument, NULL, 'j' },
                { "etag", required_argument, NULL, 'e' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

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
                case 'h':
                        printf("Usage: vmfedctl %s\n\n"
                               "  --address ADDR  D-Bus address of the bus vmfedd is on [system bus]\n"
                               "  --json          one JSON document on stdout, for scripts\n",
                               usage);
                        return 0;
                default:
                        fprintf(stderr, "Usage: vmfedctl %s\n", usage);
                        return -EINVAL;
                }
        }
        o->args = argv + optind;
        o->n_args = argc - optind;
        return 1;
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

        r = ctl_bus_parse_common(argc, argv, "status [--address ADDR] [--json]", &o);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        if (o.n_args != 0)
                return fprintf(stderr, "vmfedctl status: no arguments expected\n"), CTL_EXIT_USAGE;
        if (ctl_bus_open(o.address, &bus) < 0)
                return CTL_EXIT_FAILURE;

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
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name, *role, *state, *path;
        const char **cells = NULL;
        size_t n = 0;
        CtlBusOptions o;
        int r;

        r = ctl_bus_parse_common(argc, argv, "vms [--address ADDR] [--json]", &o);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        if (o.n_args != 0)
                return fprintf(stderr, "vmfedctl vms: no arguments expected\n"), CTL_EXIT_USAGE;
        if (ctl_bus_open(o.address, &bus) < 0)
                return CTL_EXIT_FAILURE;

        r = sd_bus_call_method(bus, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_MANAGER_IFACE, "ListVMs", &error, &reply,
                               NULL);
        if (r < 0)
                return ctl_bus_error("cannot list VMs", &error, r);

        r = sd_bus_message_enter_container(reply, 'a', "(ssso)");
        if (r < 0)
                return ctl_bus_error("bad reply", NULL, r);
        if (o.json)
                printf("[");
        while ((r = sd_bus_message_read(reply, "(ssso)", &name, &role, &state, &path)) > 0) {
                if (o.json) {
                        printf("%s{\"name\":", n > 0 ? "," : "");
                        ctl_json_string(stdout, name);
                        printf(",\"role\":");
                        ctl_json_string(stdout, role);
                        printf(",\"state\":");
                        ctl_json_string(stdout, state);
                        printf(",\"path\":");
                        ctl_json_string(stdout, path);
                        printf("}");
                } else {
                        cells = realloc(cells, (n + 1) * 4 * sizeof(char *));
                        if (!cells)
                                return log_oom(), CTL_EXIT_FAILURE;
                        cells[n * 4 + 0] = name;
                        cells[n * 4 + 1] = role;
                        cells[n * 4 + 2] = state;
                        cells[n * 4 + 3] = path;
                }
                n++;
        }
        if (r < 0)
                return ctl_bus_error("bad reply", NULL, r);
        if (o.json)
                printf("]\n");
        else {
                static const char *const header[] = { "NAME", "ROLE", "STATE", "OBJECT" };
                ctl_table_print(stdout, 4, header, cells, n);
                free(cells);
        }
        return CTL_EXIT_OK;
}
