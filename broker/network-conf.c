/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/network-conf.h"

#include <string.h>

#include "common/log.h"
#include "common/macro.h"

struct NetworkConf {
        char *path;
        GKeyFile *kf; /* NULL: none, or it did not parse */
};

static char **conf_list(GKeyFile *kf, const char *group, const char *key) {
        char **v = kf ? g_key_file_get_string_list(kf, group, key, NULL, NULL) : NULL;
        if (!v)
                v = g_new0(char *, 1);
        for (char **p = v; *p; p++)
                g_strstrip(*p);
        return v;
}

static char *conf_string(GKeyFile *kf, const char *group, const char *key, const char *def) {
        char *v = kf ? g_key_file_get_string(kf, group, key, NULL) : NULL;
        if (v)
                g_strstrip(v);
        if (!v || !*v) {
                g_free(v);
                return g_strdup(def);
        }
        return v;
}

NetworkConf *network_conf_load(const char *config_dir) {
        NetworkConf *c = g_new0(NetworkConf, 1);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;

        c->path = g_build_filename(config_dir, "network.conf", NULL);
        if (!g_key_file_load_from_file(kf, c->path, G_KEY_FILE_NONE, &e)) {
                if (!g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                        log_error("%s: %s; using defaults.", c->path, e->message);
                g_clear_pointer(&kf, g_key_file_free);
        }
        c->kf = steal_pointer(&kf);
        return c;
}

NetworkConf *network_conf_free(NetworkConf *c) {
        if (!c)
                return NULL;
        if (c->kf)
                g_key_file_free(c->kf);
        g_free(c->path);
        g_free(c);
        return NULL;
}

const char *network_conf_path(NetworkConf *c) {
        return c->path;
}

char *network_conf_subnet(NetworkConf *c) {
        return conf_string(c->kf, "Network", "Subnet", NULL);
}

char *network_conf_subnet6(NetworkConf *c) {
        return conf_string(c->kf, "Network", "Subnet6", NULL);
}

/* A boolean key: yes/no/true/false/1/0 (GKeyFile's true/false too); anything else is logged and gives def. */
static bool conf_bool(NetworkConf *c, const char *group, const char *key, bool def) {
        g_autofree char *v = conf_string(c->kf, group, key, NULL);

        if (!v)
                return def;
        if (g_ascii_strcasecmp(v, "yes") == 0 || g_ascii_strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
                return true;
        if (g_ascii_strcasecmp(v, "no") == 0 || g_ascii_strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
                return false;
        log_error("%s: [%s] %s=%s is not yes or no; using %s.", c->path, group, key, v, def ? "yes" : "no");
        return def;
}

void network_conf_uplink(NetworkConf *c, const char *netvm, NetvmUplink *ret) {
        g_autofree char *group = g_strdup_printf("NetVM %s", netvm);

        *ret = (NetvmUplink) {
                .interface = conf_string(c->kf, group, "Uplink", "eth1"),
                .addresses = conf_list(c->kf, group, "UplinkAddress"),
                .gateways = conf_list(c->kf, group, "UplinkGateway"),
                .dns = conf_list(c->kf, group, "DNS"),
                .downstream = conf_string(c->kf, group, "Downstream", "eth0"),
                .dhcp = conf_bool(c, group, "DHCP", true),
        };
}

void netvm_uplink_done(NetvmUplink *u) {
        g_free(u->interface);
        g_strfreev(u->addresses);
        g_strfreev(u->gateways);
        g_strfreev(u->dns);
        g_free(u->downstream);
        *u = (NetvmUplink) {};
}
