/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl vm xml NAME: the libvirt domain XML vmfed would define for a VM,
 * offline (configuration directory in, XML out, no broker, no libvirt), so
 * an admin can see what a key of vmfed.vm(5) does.  The same code vmfedd
 * runs: federation_domain_xml() builds it as a start would.  vms.d/ is
 * loaded with VM_SPEC_NO_FILE_CHECKS, as by `vmfedctl policy lint`: the
 * configuration may come from another machine (a disk that is not here is
 * shown as raw).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "ctl/ctl.h"
#include "federation/federation.h"

static void help(FILE *f) {
        fprintf(f,
                "Usage: vmfedctl vm xml [OPTIONS] NAME\n"
                "\n"
                "Print the libvirt domain XML vmfed would define for the VM NAME of\n"
                "vms.d/, without a broker or libvirt.\n"
                "\n"
                "  --config-dir DIR      federation configuration with vms.d/ [%s]\n"
                "  --state-dir DIR       vmfedd's state directory (channel, console,\n"
                "                        NVRAM paths) [%s]\n"
                "  --bridge NAME         the host bridge vmfedd was given [none: no NICs]\n"
                "  --domain-prefix P     libvirt domain names are P + VM name [vmfed-]\n"
                "  -h, --help            this help\n"
                "\n"
                "Exit status: 0 printed, 1 no such VM or no domain for it, 3 usage or\n"
                "configuration error.\n",
                VMFED_CONFIG_DIR, VMFED_STATE_DIR);
}

int ctl_vm_xml(int argc, char **argv) {
        enum { ARG_CONFIG_DIR = 0x100, ARG_STATE_DIR, ARG_BRIDGE, ARG_DOMAIN_PREFIX };
        static const struct option options[] = {
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "bridge", required_argument, NULL, ARG_BRIDGE },
                { "domain-prefix", required_argument, NULL, ARG_DOMAIN_PREFIX },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        FederationOptions o = { .config_dir = VMFED_CONFIG_DIR, .state_dir = VMFED_STATE_DIR };
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        g_autofree char *xml = NULL, *err = NULL;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case ARG_CONFIG_DIR:
                        o.config_dir = optarg;
                        break;
                case ARG_STATE_DIR:
                        o.state_dir = optarg;
                        break;
                case ARG_BRIDGE:
                        o.bridge = optarg;
                        break;
                case ARG_DOMAIN_PREFIX:
                        o.domain_prefix = optarg;
                        break;
                case 'h':
                        help(stdout);
                        return CTL_EXIT_OK;
                default:
                        help(stderr);
                        return CTL_EXIT_USAGE;
                }
        if (argc - optind != 1) {
                fprintf(stderr, "vmfedctl vm xml: expected one VM name\n");
                help(stderr);
                return CTL_EXIT_USAGE;
        }
        if (o.domain_prefix && !g_str_has_prefix(o.domain_prefix, "vmfed-")) {
                fprintf(stderr, "vmfedctl vm xml: --domain-prefix must start with vmfed-\n");
                return CTL_EXIT_USAGE;
        }
        r = vm_spec_load_dir_full(o.config_dir, NULL, VM_SPEC_NO_FILE_CHECKS, &specs, &errors);
        if (r < 0) {
                for (guint i = 0; errors && i < errors->len; i++)
                        fprintf(stderr, "%s/%s\n", o.config_dir, (const char *) errors->pdata[i]);
                if (!errors || errors->len == 0)
                        fprintf(stderr, "vmfedctl vm xml: cannot load %s/vms.d: %s\n", o.config_dir, g_strerror(-r));
                return CTL_EXIT_USAGE;
        }
        r = federation_domain_xml(specs, &o, argv[optind], &xml, &err);
        if (r < 0) {
                fprintf(stderr, "vmfedctl vm xml: %s\n", err ? err : g_strerror(-r));
                return CTL_EXIT_FAILURE;
        }
        fputs(xml, stdout);
        return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
}
