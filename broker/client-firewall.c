/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/client-firewall.h"

#include <errno.h>
#include <string.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"

#define RULES_MAX_SIZE (1024 * 1024)

char *client_firewall_rules(const char *config_dir, const VmSpec *s, const char *name) {
        g_autofree char *path = g_strdup_printf("%s/firewall.d/%s.rules", config_dir, name);
        _cleanup_free_ char *text = NULL;
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_auto(GStrv) keys = NULL;
        g_auto(GStrv) rules = NULL;
        int r;

        r = read_full_file(path, RULES_MAX_SIZE, &text, NULL);
        if (r >= 0)
                return g_strdup(text);
        if (r != -ENOENT) {
                log_error_errno(r, "Cannot read %s: %m; %s's traffic is dropped.", path, name);
                return g_strdup("default drop\n");
        }
        if (!s->source_text || !g_key_file_load_from_data(kf, s->source_text, (gsize) -1, G_KEY_FILE_NONE, NULL) ||
            !g_key_file_has_group(kf, "Firewall"))
                return NULL;
        keys = g_key_file_get_keys(kf, "Firewall", NULL, NULL);
        for (char **k = keys; k && *k; k++)
                if (strcmp(*k, "Rules") != 0) {
                        log_error("vms.d/%s.vm: [Firewall] key %s is unknown (expected Rules=); %s's traffic is "
                                  "dropped.", s->name, *k, name);
                        return g_strdup("default drop\n");
                }
        rules = g_key_file_get_string_list(kf, "Firewall", "Rules", NULL, NULL);
        if (!rules || !rules[0])
                return g_strdup("default drop\n");
        return g_strjoinv("\n", rules);
}

void client_firewall_append_state(GString *s, const char *rules) {
        g_auto(GStrv) lines = g_strsplit(rules, "\n", -1);
        bool any = false;

        for (char **l = lines; *l; l++) {
                char *hash = strchr(*l, '#');
                if (hash)
                        *hash = '\0';
                g_strstrip(*l);
                if (!**l)
                        continue;
                g_string_append_printf(s, "Rule=%s\n", *l);
                any = true;
        }
        if (!any)
                g_string_append(s, "Rule=\n");
}
