/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Drive the netvm/host/hostnet.h API from a test script:
 *   hostnet-tool ensure BRIDGE | remove BRIDGE
 *   hostnet-tool attach BRIDGE TAP MAC ADDR... | netvm BRIDGE TAP | detach TAP
 * Exit status 0, or 1 with the negative errno printed.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "netvm/host/hostnet.h"

int main(int argc, char **argv) {
        _cleanup_(hostnet_freep) HostNet *h = NULL;
        int r;

        if (argc < 3) {
                fprintf(stderr, "usage: %s ensure|remove|attach|netvm|detach ...\n", argv[0]);
                return 2;
        }
        r = hostnet_open(&h);
        if (r < 0) {
                fprintf(stderr, "hostnet_open: %d\n", r);
                return 1;
        }
        const char *cmd = argv[1];
        if (strcmp(cmd, "ensure") == 0 && argc == 3)
                r = hostnet_bridge_ensure(h, argv[2]);
        else if (strcmp(cmd, "remove") == 0 && argc == 3)
                r = hostnet_bridge_remove(h, argv[2]);
        else if (strcmp(cmd, "attach") == 0 && argc >= 6)
                r = hostnet_port_attach(h, argv[2], argv[3], argv[4], (const char *const *) argv + 5);
        else if (strcmp(cmd, "netvm") == 0 && argc == 4)
                r = hostnet_netvm_attach(h, argv[2], argv[3]);
        else if (strcmp(cmd, "detach") == 0 && argc == 3)
                r = hostnet_port_detach(h, argv[2]);
        else {
                fprintf(stderr, "bad arguments\n");
                return 2;
        }
        if (r < 0) {
                fprintf(stderr, "%s: %d\n", cmd, r);
                return 1;
        }
        return 0;
}
