/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Channel access: QEMU connects to the broker's sockets in STATE/channels
 * (the agents' NAME.sock).  libvirt runs QEMU
 * as its own user (libvirt-qemu on Debian) and hands it a socket it has
 * chowned when the domain starts; a broker that restarts re-creates its
 * sockets (root, 0660), and QEMU's reconnection would be refused.  So: the
 * group of STATE/channels is the group QEMU may connect with (the admin or
 * the package sets it, e.g. `chgrp libvirt-qemu /var/lib/vmfed/channels`);
 * the broker gives its sockets that group.  A root-owned directory (group
 * 0) changes nothing: root-only, as before.
 */
#pragma once

#include "broker/broker.h"

/* Give the sockets of vm (NULL: every socket in STATE/channels) the directory's group. */
void channel_access_share(Broker *b, const char *vm);
