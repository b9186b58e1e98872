/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VirtioPort: finding a named virtio-serial port of this VM, the way udev
 * names /dev/virtio-ports/NAME, without depending on udev: the name is in
 * SYSFS/class/virtio-ports/vportNpM/name, the device is /dev/vportNpM.
 */
#pragma once

/* "/dev/vportNpM" of the port called name (g_free), or NULL when there is none. */
char *virtio_port_find(const char *sysfs_root, const char *name);
