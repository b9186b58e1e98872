/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/channel-access.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

static void share_one(const char *path, gid_t gid) {
        struct stat st;

        if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_gid == gid)
                return;
        if (lchown(path, (uid_t) -1, gid) < 0)
                log_warning_errno(-errno, "Cannot give %s the group of its directory: %m", path);
}

void channel_access_share(Broker *b, const char *vm) {
        g_autoptr(GDir) d = NULL;
        struct stat st;
        const char *e;

        if (!broker_channel_dir(b) || stat(broker_channel_dir(b), &st) < 0 || st.st_gid == 0)
                return;
        if (vm) {
                g_autofree char *agent = g_strdup_printf("%s/%s.sock", broker_channel_dir(b), vm);
                share_one(agent, st.st_gid);
                return;
        }
        d = g_dir_open(broker_channel_dir(b), 0, NULL);
        while (d && (e = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(broker_channel_dir(b), e, NULL);
                share_one(p, st.st_gid);
        }
}
