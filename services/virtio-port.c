/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/virtio-port.h"

#include <string.h>

#include <glib.h>

char *virtio_port_find(const char *sysfs_root, const char *name) {
        g_autofree char *dir = g_build_filename(sysfs_root, "class", "virtio-ports", NULL);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *e;

        if (!d)
                return NULL;
        while ((e = g_dir_read_name(d))) {
                g_autofree char *name_file = g_build_filename(dir, e, "name", NULL);
                g_autofree char *found = NULL;
                if (!g_file_get_contents(name_file, &found, NULL, NULL))
                        continue;
                g_strchomp(found);
                if (strcmp(found, name) == 0)
                        return g_build_filename("/dev", e, NULL);
        }
        return NULL;
}
