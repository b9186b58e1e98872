/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "ctl/ctl.h"

static const CtlVerb verbs[] = {
        { "policy", "eval", ctl_policy_eval, "evaluate a request against policy files (offline)", true },
        { "policy", "lint", ctl_policy_lint, "report every error in policy files (offline)", true },
        { NULL, "status", ctl_status, "show the running broker's state" },
        { NULL, "vms", ctl_vms, "list the federation's VMs" },
        { "policy", "files", ctl_policy_files, "list the broker's policy files and their etags" },
        { "policy", "get", ctl_policy_get, "print a policy file (etag on stderr)" },
        { "policy", "replace", ctl_policy_replace, "validate and replace a policy file through the broker" },
        { "policy", "remove", ctl_policy_remove, "remove a policy file through the broker" },
        { "policy", "evaluate", ctl_policy_evaluate, "evaluate a request against the broker's policy" },
        { NULL, "start", ctl_start, "start a VM (waits, printing progress)" },
        { NULL, "stop", ctl_stop, "stop a VM gracefully, or with --force at once" },
        { NULL, "switch", ctl_switch, "switch the active persona (waits, printing progress)" },
        { "vm", "add", ctl_vm_add, "add or replace a VM definition through the broker" },
        { "vm", "remove", ctl_vm_remove, "remove a VM definition through the broker" },
        { "vm", "xml", ctl_vm_xml, "print the domain XML vmfed would define for a VM (offline)", true },
        { NULL, "generations", ctl_generations, "list configuration generations" },
        { NULL, "rollback", ctl_rollback, "restore vms.d/ and policy.d/ of a generation" },
        { NULL, "run", ctl_run, "run a service in a VM with stdin/stdout connected to it (a stream)" },
        { NULL, "ask", ctl_ask, "list/answer/deny questions of the policy (ask --watch: at the terminal)" },
};

static void help(FILE *f) {
        fprintf(f, "Usage: vmfedctl [--help] [--version] [--host [USER@]HOST[:PORT]] COMMAND ...\n\n"
                   "  -H, --host [USER@]HOST[:PORT]  talk to vmfedd on HOST's system bus over ssh\n"
                   "                                 (systemd-stdio-bridge there; not for offline verbs)\n"
                   "\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                char name[64];
                snprintf(name, sizeof name, "%s%s%s", verbs[i].group ? verbs[i].group : "",
                         verbs[i].group ? " " : "", verbs[i].name);
                fprintf(f, "  %-22s %s\n", name, verbs[i].summary);
        }
        fprintf(f, "\nRun 'vmfedctl COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv) {
        log_set_ident("vmfedctl");

        if (argc < 2) {
                help(stderr);
                return CTL_EXIT_USAGE;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                help(stdout);
                return CTL_EXIT_OK;
        }
        if (strcmp(argv[1], "--version") == 0) {
                printf("vmfedctl %s\n", VMFED_VERSION);
                return CTL_EXIT_OK;
        }

        /* vmfedctl --host HOST VERB ...: as systemctl -H.  The verb then
         * sees argv[0] "vmfedctl" and its own arguments, as without it. */
        bool remote = false;
        const char *host = NULL;
        int shift = 0;
        if (strncmp(argv[1], "--host=", 7) == 0)
                host = argv[1] + 7, shift = 1;
        else if (strcmp(argv[1], "--host") == 0 || strcmp(argv[1], "-H") == 0)
                host = argc > 2 ? argv[2] : NULL, shift = 2;
        if (shift > 0) {
                if (!host || !*host || argc < shift + 2) {
                        fprintf(stderr, "Usage: vmfedctl --host [USER@]HOST[:PORT] COMMAND ...\n");
                        return CTL_EXIT_USAGE;
                }
                ctl_bus_set_host(host);
                remote = true;
                argv[shift] = argv[0];
                argc -= shift;
                argv += shift;
        }

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                const CtlVerb *v = &verbs[i];
                if (v->group) {
                        if (strcmp(argv[1], v->group) != 0 || argc < 3 || strcmp(argv[2], v->name) != 0)
                                continue;
                        if (remote && v->offline) {
                                fprintf(stderr, "vmfedctl %s %s: reads local files, --host does not apply\n",
                                        v->group, v->name);
                                return CTL_EXIT_USAGE;
                        }
                        return v->func(argc - 2, argv + 2);
                }
                if (strcmp(argv[1], v->name) == 0)
                        return v->func(argc - 1, argv + 1);
        }

        fprintf(stderr, "vmfedctl: unknown command '%s%s%s'\n", argv[1], argc > 2 ? " " : "",
                argc > 2 ? argv[2] : "");
        help(stderr);
        return CTL_EXIT_USAGE;
}
