/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/launcher.h"

#include <errno.h>
#include <string.h>

#include "common/macro.h"

int launcher_app_argv(const char *apps_dir, const char *app_id, const char *const *args, char ***ret, char **why) {
        g_autofree char *file = g_strdup_printf("%s/%s.desktop", apps_dir, app_id);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;
        g_autofree char *exec = NULL;
        g_auto(GStrv) words = NULL;

        if (!g_key_file_load_from_file(kf, file, G_KEY_FILE_NONE, &e)) {
                *why = g_strdup_printf("No application %s in this VM (%s).", app_id, e->message);
                return -ENOENT;
        }
        exec = g_key_file_get_string(kf, "Desktop Entry", "Exec", NULL);
        if (!exec || !g_shell_parse_argv(exec, NULL, &words, NULL)) {
                *why = g_strdup_printf("%s has no usable Exec= line.", file);
                return -ENOENT;
        }
        GPtrArray *argv = g_ptr_array_new();
        for (char **w = words; *w; w++) {
                /* Field codes: %f %F %u %U %i %c %k are dropped, %% is a '%'. */
                if ((*w)[0] == '%' && (*w)[1] && !(*w)[2] && (*w)[1] != '%')
                        continue;
                g_ptr_array_add(argv, g_strdup(strcmp(*w, "%%") == 0 ? "%" : *w));
        }
        for (size_t i = 0; args && args[i]; i++)
                g_ptr_array_add(argv, g_strdup(args[i]));
        g_ptr_array_add(argv, NULL);
        if (!((char **) argv->pdata)[0]) {
                g_ptr_array_free(argv, TRUE);
                *why = g_strdup_printf("%s: Exec= is empty.", file);
                return -ENOENT;
        }
        *ret = (char **) g_ptr_array_free(argv, FALSE);
        return 0;
}

int launcher_spawn(char **argv, const char *last_arg, GPid *ret_pid, char **why) {
        g_autoptr(GPtrArray) full = g_ptr_array_new();
        g_autoptr(GError) e = NULL;
        GPid pid;

        for (char **p = argv; *p; p++)
                g_ptr_array_add(full, *p);
        if (last_arg)
                g_ptr_array_add(full, (char *) last_arg);
        g_ptr_array_add(full, NULL);

        GSpawnFlags flags = G_SPAWN_SEARCH_PATH | G_SPAWN_STDIN_FROM_DEV_NULL;
        if (ret_pid)
                flags |= G_SPAWN_DO_NOT_REAP_CHILD;
        if (!g_spawn_async(NULL, (char **) full->pdata, NULL, flags, NULL, NULL, &pid, &e)) {
                if (why)
                        *why = g_strdup(e->message);
                return e->code == G_SPAWN_ERROR_NOENT ? -ENOENT : -EIO;
        }
        if (ret_pid)
                *ret_pid = pid;
        return 0;
}
