/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedd: the vmfed broker.  See broker/README.md and docs/dbus-api.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib-unix.h>

#include "broker/daemon.h"
#include "common/bulk-memory.h"
#include "common/log.h"
#include "common/macro.h"

static void help(FILE *f) {
        fprintf(f,
                "Usage: vmfedd [OPTIONS]\n\n"
                "The vmfed broker: owns org.vmfed.Federation1 on the system bus.\n\n"
                "  --config-dir DIR     configuration (vms.d/, policy.d/) [%s]\n"
                "  --state-dir DIR      state (channels/) [%s]\n"
                "  --libvirt-uri URI    hypervisor connection [qemu:///system]\n"
                "  --bus-address ADDR   use this D-Bus address instead of the system bus\n"
                "  --manage-group NAME  members may change the federation [vmfed]\n"
                "  --domain-prefix P    libvirt domain names are P + VM name [vmfed-] (tests)\n"
                "  --bridge NAME        host bridge of the default netvm [none: no NICs]\n"
                "  --debug              log debug messages\n"
                "  --help, --version\n\n"
                "Signals: SIGTERM/SIGINT stop, SIGHUP reloads configuration and policy.\n",
                VMFED_CONFIG_DIR, VMFED_STATE_DIR);
}

static gboolean on_quit_signal(gpointer userdata) {
        log_info("Shutting down.");
        daemon_quit(userdata);
        return G_SOURCE_CONTINUE;
}

static gboolean on_reload_signal(gpointer userdata) {
        log_info("SIGHUP: reloading configuration and policy.");
        (void) broker_reload(daemon_broker(userdata), NULL);
        return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv) {
        enum { ARG_CONFIG = 0x100, ARG_STATE, ARG_URI, ARG_BUS, ARG_GROUP, ARG_DEBUG, ARG_VERSION, ARG_PREFIX, ARG_BRIDGE };
        static const struct option options[] = {
                { "config-dir", required_argument, NULL, ARG_CONFIG },
                { "state-dir", required_argument, NULL, ARG_STATE },
                { "libvirt-uri", required_argument, NULL, ARG_URI },
                { "bus-address", required_argument, NULL, ARG_BUS },
                { "manage-group", required_argument, NULL, ARG_GROUP },
                { "debug", no_argument, NULL, ARG_DEBUG },
                { "domain-prefix", required_argument, NULL, ARG_PREFIX },
                { "bridge", required_argument, NULL, ARG_BRIDGE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        const char *config_dir = VMFED_CONFIG_DIR, *state_dir = VMFED_STATE_DIR;
        const char *uri = "qemu:///system", *bus_address = NULL, *manage_group = "vmfed";
        const char *domain_prefix = NULL, *bridge = NULL;
        g_autoptr(Daemon) d = NULL;
        int c, r;

        log_set_ident("vmfedd");
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_CONFIG:
                        config_dir = optarg;
                        break;
                case ARG_STATE:
                        state_dir = optarg;
                        break;
                case ARG_URI:
                        uri = optarg;
                        break;
                case ARG_BUS:
                        bus_address = optarg;
                        break;
                case ARG_GROUP:
                        manage_group = optarg;
                        break;
                case ARG_PREFIX:
                        if (!g_str_has_prefix(optarg, "vmfed-")) {
                                fprintf(stderr, "vmfedd: --domain-prefix must start with 'vmfed-'\n");
                                return 2;
                        }
                        domain_prefix = optarg;
                        break;
                case ARG_BRIDGE:
                        bridge = optarg;
                        break;
                case ARG_DEBUG:
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help(stdout);
                        return 0;
                case ARG_VERSION:
                        printf("vmfedd %s\n", VMFED_VERSION);
                        return 0;
                default:
                        help(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "vmfedd: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }

        /* sd-bus writes with MSG_NOSIGNAL, but be sure a vanished peer never kills us. */
        signal(SIGPIPE, SIG_IGN);
        /* Clipboard payloads of up to 64 MiB without a page fault per 4 KiB each time (common/bulk-memory.h). */
        if (bulk_memory_tune() < 0)
                log_debug("The C library refused the bulk-transfer memory settings; going on with its own.");

        r = daemon_new(&(DaemonOptions) { .config_dir = config_dir, .state_dir = state_dir, .libvirt_uri = uri,
                                          .bus_address = bus_address, .manage_group = manage_group,
                                          .domain_prefix = domain_prefix, .bridge = bridge },
                       &d);
        if (r < 0)
                return log_error_errno(r, "Out of memory."), 1;

        g_unix_signal_add(SIGTERM, on_quit_signal, d);
        g_unix_signal_add(SIGINT, on_quit_signal, d);
        g_unix_signal_add(SIGHUP, on_reload_signal, d);
        bulk_memory_trim_when_idle();

        r = daemon_start(d);
        if (r < 0)
                return 1;
        return daemon_run(d);
}
