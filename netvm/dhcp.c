/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/dhcp.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <glib.h>

#include "common/fileio.h"
#include "common/log.h"
#include "netvm/chains.h"

struct Dhcp {
        char *dnsmasq;
        char *run_dir;
        char *conf_path, *hosts_path, *pid_path;
        char *conf_text;        /* what the running dnsmasq was started with, or NULL */
        char *hosts_text;
        GHashTable *served;     /* address -> MAC, every pair in a hosts file since dnsmasq started */
        GPid pid;               /* 0: not running */
        guint child_id, restart_id;
        bool want;              /* should run (the last state had DHCP=yes) */
};

static void netaddr_host_of(const NetAddr *net, NetAddr *ret) {
        *ret = *net;
        ret->prefixlen = (uint8_t) (netaddr_len(net) * 8);
}

/* dnsmasq's configuration for s: one range per downstream IPv4 subnet, static leases only. */
char *dhcp_config_text(const NetState *s, const char *hosts_path) {
        GString *t = g_string_new("# Written by vmfed-netd from its desired state; do not edit.\n");
        char buf[NETADDR_STRLEN], mask[NETADDR_STRLEN];

        /* DNS stays the kernel's DNS path (chain dns-path, each client's "dns" rule). */
        g_string_append(t, "port=0\n");
        g_string_append_printf(t, "interface=%s\nbind-interfaces\n", s->downstream);
        g_string_append(t, "no-resolv\nno-hosts\nleasefile-ro\ndhcp-authoritative\n");
        /* Only the clients of the state: an unknown MAC gets nothing. */
        g_string_append(t, "dhcp-ignore=tag:!known\n");
        g_string_append_printf(t, "dhcp-hostsfile=%s\n", hosts_path);
        for (guint i = 0; i < s->downstream_addrs->len; i++) {
                const NetAddr *a = &g_array_index(s->downstream_addrs, NetAddr, i);
                if (a->family != AF_INET)
                        continue;
                NetAddr net = *a, gw, m = { .family = AF_INET, .prefixlen = 32 };
                netaddr_mask(&net);
                netaddr_host_of(a, &gw);
                for (unsigned b = 0; b < a->prefixlen; b++)
                        m.bytes[b / 8] |= (uint8_t) (0x80 >> (b % 8));
                netaddr_format(&m, mask);
                net.prefixlen = 32;
                g_string_append_printf(t, "dhcp-range=%s,static,%s,1h\n", netaddr_format(&net, buf), mask);
                /*
                 * The client is on-link as /32 with an on-link route to the
                 * gateway (RFC 3442), as with the agent: every packet goes
                 * through the netvm.
                 */
                netaddr_format(&gw, buf);
                g_string_append(t, "dhcp-option=option:netmask,255.255.255.255\n");
                g_string_append_printf(t, "dhcp-option=option:router,%s\n", buf);
                g_string_append_printf(t, "dhcp-option=option:classless-static-route,%s/32,0.0.0.0,0.0.0.0/0,%s\n",
                                       buf, buf);
                if (chains_has_dns(s, AF_INET))
                        g_string_append_printf(t, "dhcp-option=option:dns-server,%s\n", buf);
                break;  /* one IPv4 subnet downstream */
        }
        for (guint i = 0; i < s->downstream_addrs->len; i++) {
                const NetAddr *a = &g_array_index(s->downstream_addrs, NetAddr, i);
                if (a->family != AF_INET6)
                        continue;
                /*
                 * Router advertisements with M (addresses by DHCPv6) and
                 * the prefix without the A bit (no SLAAC address beside the
                 * fixed one) and without the L bit (off-link: a client sends
                 * everything, also to another client, through the netvm).
                 */
                NetAddr net = *a, gw;
                netaddr_mask(&net);
                netaddr_host_of(a, &gw);
                net.prefixlen = 128;
                g_string_append(t, "enable-ra\n");
                g_string_append_printf(t, "dhcp-range=%s,static,off-link,%u,1h\n", netaddr_format(&net, buf),
                                       a->prefixlen);
                if (chains_has_dns(s, AF_INET6))
                        g_string_append_printf(t, "dhcp-option=option6:dns-server,[%s]\n", netaddr_format(&gw, buf));
                break;  /* one IPv6 subnet downstream */
        }
        return g_string_free(t, FALSE);
}

/* One line per client: MAC[,IPv4][,[IPv6]], its first address of each family. */
char *dhcp_hosts_text(const NetState *s) {
        GString *t = g_string_new(NULL);
        char mac[MAC_STRLEN], buf[NETADDR_STRLEN];
        for (guint i = 0; i < s->clients->len; i++) {
                const NetClient *c = s->clients->pdata[i];
                const NetAddr *v4 = NULL, *v6 = NULL;
                for (guint j = 0; j < c->addrs->len; j++) {
                        const NetAddr *a = &g_array_index(c->addrs, NetAddr, j);
                        if (a->family == AF_INET && !v4)
                                v4 = a;
                        else if (a->family == AF_INET6 && !v6)
                                v6 = a;
                }
                if (!v4 && !v6)
                        continue;       /* its only address was broken: it fails closed */
                g_string_append(t, mac_format(c->mac, mac));
                if (v4)
                        g_string_append_printf(t, ",%s", netaddr_format(v4, buf));
                if (v6)
                        g_string_append_printf(t, ",[%s]", netaddr_format(v6, buf));
                g_string_append_c(t, '\n');
        }
        return g_string_free(t, FALSE);
}

Dhcp *dhcp_new(const char *dnsmasq, const char *run_dir) {
        Dhcp *d = g_new0(Dhcp, 1);
        d->dnsmasq = g_strdup(dnsmasq ? dnsmasq : "dnsmasq");
        d->run_dir = g_strdup(run_dir);
        d->conf_path = g_build_filename(run_dir, "dnsmasq.conf", NULL);
        d->hosts_path = g_build_filename(run_dir, "dhcp-hosts", NULL);
        d->pid_path = g_build_filename(run_dir, "dnsmasq.pid", NULL);
        d->served = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        return d;
}

static void dhcp_stop(Dhcp *d) {
        if (d->child_id)
                g_source_remove(d->child_id);
        d->child_id = 0;
        if (d->pid > 0) {
                kill(d->pid, SIGTERM);
                /*
                 * dnsmasq exits at once on SIGTERM; reap it so the next one
                 * can bind.  Bounded: after 0.5 s it is killed.
                 */
                int i = 0;
                while (waitpid(d->pid, NULL, WNOHANG) == 0) {
                        if (++i == 50) {
                                log_warning("dnsmasq (pid %d) did not stop; killing it", (int) d->pid);
                                kill(d->pid, SIGKILL);
                                (void) waitpid(d->pid, NULL, 0);
                                break;
                        }
                        g_usleep(10000);
                }
                g_spawn_close_pid(d->pid);
        }
        d->pid = 0;
        g_clear_pointer(&d->conf_text, g_free);
}

Dhcp *dhcp_free(Dhcp *d) {
        if (!d)
                return NULL;
        dhcp_stop(d);
        if (d->restart_id)
                g_source_remove(d->restart_id);
        g_free(d->dnsmasq);
        g_free(d->run_dir);
        g_free(d->conf_path);
        g_free(d->hosts_path);
        g_free(d->pid_path);
        g_free(d->hosts_text);
        g_hash_table_unref(d->served);
        g_free(d);
        return NULL;
}

static int dhcp_start(Dhcp *d);

/*
 * Replace path by text atomically (rename), without fsync: the run
 * directory is volatile (/run) and rewritten from the state at every start;
 * dnsmasq only must never read half a file.
 */
static int write_volatile(const char *path, const char *text) {
        g_autofree char *tmp = g_strconcat(path, ".new", NULL);
        g_autoptr(GError) error = NULL;
        if (!g_file_set_contents_full(tmp, text, -1, G_FILE_SET_CONTENTS_NONE, 0644, &error))
                return -EIO;
        if (rename(tmp, path) < 0)
                return -errno;
        return 0;
}

static gboolean restart_cb(gpointer userdata) {
        Dhcp *d = userdata;
        d->restart_id = 0;
        if (d->want && d->pid == 0)
                (void) dhcp_start(d);
        return G_SOURCE_REMOVE;
}

static void child_cb(GPid pid, gint status, gpointer userdata) {
        Dhcp *d = userdata;
        g_spawn_close_pid(pid);
        d->child_id = 0;
        d->pid = 0;
        log_warning("dnsmasq (pid %d) exited (status %d); DHCP restarts in 1 s", (int) pid, status);
        if (d->want && !d->restart_id)
                d->restart_id = g_timeout_add_seconds(1, restart_cb, d);
}

static int dhcp_start(Dhcp *d) {
        g_autofree char *conf_arg = g_strconcat("--conf-file=", d->conf_path, NULL);
        g_autofree char *pid_arg = g_strconcat("--pid-file=", d->pid_path, NULL);
        char *argv[] = { d->dnsmasq, "--keep-in-foreground", "--log-facility=-", conf_arg, pid_arg, NULL };
        g_autoptr(GError) error = NULL;
        GPid pid;

        if (!g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH, NULL, NULL,
                           &pid, &error)) {
                log_error("Cannot start %s: %s; no DHCP for the clients (retrying in 1 s)", d->dnsmasq,
                          error->message);
                if (!d->restart_id)
                        d->restart_id = g_timeout_add_seconds(1, restart_cb, d);
                return -ENOENT;
        }
        d->pid = pid;
        d->child_id = g_child_watch_add(pid, child_cb, d);
        log_info("dnsmasq started (pid %d) for DHCP on the downstream side", (int) pid);
        return 0;
}

/*
 * Record s's address -> MAC pairs in d->served; true if an address was
 * served to another MAC before.  dnsmasq keeps a lease in memory until it
 * expires and gives its address to no other MAC meanwhile, also when the
 * hosts file now says so ("not using configured address ... because it is
 * leased to ..."): such a handover (a persona switch, a disposable on a
 * recycled address) needs a restart of dnsmasq.
 */
static bool served_update(Dhcp *d, const NetState *s) {
        bool moved = false;
        char buf[NETADDR_STRLEN], mac[MAC_STRLEN];
        for (guint i = 0; i < s->clients->len; i++) {
                const NetClient *c = s->clients->pdata[i];
                mac_format(c->mac, mac);
                for (guint j = 0; j < c->addrs->len; j++) {
                        netaddr_format(&g_array_index(c->addrs, NetAddr, j), buf);
                        const char *old = g_hash_table_lookup(d->served, buf);
                        if (old && strcmp(old, mac) != 0)
                                moved = true;
                        g_hash_table_replace(d->served, g_strdup(buf), g_strdup(mac));
                }
        }
        return moved;
}

int dhcp_apply(Dhcp *d, const NetState *s) {
        d->want = s->dhcp;
        if (!s->dhcp) {
                if (d->pid > 0)
                        log_info("DHCP off: dnsmasq stopped");
                dhcp_stop(d);
                return 0;
        }
        int r = mkdir_parents(d->run_dir, 0755);
        if (r < 0)
                return r;
        if (served_update(d, s) && d->pid > 0) {
                log_info("DHCP: an address moved to another MAC; restarting dnsmasq to drop its old lease");
                dhcp_stop(d);
        }
        g_autofree char *hosts = dhcp_hosts_text(s);
        if (!d->hosts_text || strcmp(hosts, d->hosts_text) != 0) {
                r = write_volatile(d->hosts_path, hosts);
                if (r < 0)
                        return r;
                g_free(d->hosts_text);
                d->hosts_text = g_steal_pointer(&hosts);
                /* dnsmasq re-reads dhcp-hostsfile on SIGHUP; nothing else of it restarts. */
                if (d->pid > 0 && d->conf_text)
                        kill(d->pid, SIGHUP);
        }
        g_autofree char *conf = dhcp_config_text(s, d->hosts_path);
        if (d->pid > 0 && d->conf_text && strcmp(conf, d->conf_text) == 0)
                return 0;
        dhcp_stop(d);
        r = write_volatile(d->conf_path, conf);
        if (r < 0)
                return r;
        d->conf_text = g_steal_pointer(&conf);
        /* A new dnsmasq holds no lease: only the current clients' addresses are served. */
        g_hash_table_remove_all(d->served);
        (void) served_update(d, s);
        return dhcp_start(d);
}
