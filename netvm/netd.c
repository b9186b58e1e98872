/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfed-netd: keeps the network VM's network in its desired state.
 *
 *   vmfed-netd --state FILE --check     check FILE (and its rules files), change nothing
 *   vmfed-netd --state FILE --once      apply FILE and exit
 *   vmfed-netd --state FILE --watch     apply FILE, re-apply whenever it changes
 *   vmfed-netd [--virtio-port NAME | --channel PATH]
 *                                       take the state from the broker over its
 *                                       channel (org.vmfed.NetVM1)
 *
 * At start it reads what the kernel has (table inet vmfed) and only ever
 * changes the difference, in one transaction, so a restart never drops an
 * established flow.  See docs/netvm.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/bus-source.h"
#include "netvm/conntrack.h"
#include "netvm/dhcp.h"
#include "netvm/handover.h"
#include "netvm/links.h"
#include "netvm/netvm-iface.h"
#include "netvm/nft-batch.h"
#include "netvm/ruleset.h"

/*
 * The netvm's own port (libvirt <target type='virtio' name='org.vmfed.netvm.0'/>,
 * beside the agent's org.vmfed.agent.0, see federation/domain-xml.h); a VM
 * without it offers vmfed-netd the agent port.
 */
#define VIRTIO_PORT_NAME "org.vmfed.netvm.0"
#define VIRTIO_PORT_FALLBACK "org.vmfed.agent.0"
#define PERSIST_NAME "netd.state"
#define NETD_RUN_DIR "/run/vmfed-netd"

typedef struct Netd {
        GMainLoop *loop;
        NftSocket *nft;
        Conntrack *ct;
        Dhcp *dhcp;
        char *dnsmasq, *run_dir;
        Links *links;
        Ruleset *applied;
        NetState *state;
        bool persist;
        char *state_dir;

        /* --state mode */
        char *state_file;
        GPtrArray *monitors;    /* GFileMonitor*, one per directory watched */
        GHashTable *watched;    /* paths whose change triggers a reload */
        guint reload_id;

        /* channel mode */
        char *channel;
        char *virtio_port;      /* NULL: VIRTIO_PORT_NAME, else VIRTIO_PORT_FALLBACK */
        sd_bus *bus;
        sd_bus_slot *slot;
        GSource *bus_source;
        guint reconnect_id;
        bool connect_failed_logged;
        NetvmIfaceOps iface_ops;        /* what org.vmfed.NetVM1 calls: netd_get_state(), netd_apply() */
} Netd;

/* The state being enforced (NULL until the first one was applied). */
static const NetState *netd_get_state(void *userdata) {
        Netd *d = userdata;
        return d->state;
}

/*
 * Delete the conntrack entries of addresses that left their client.  A
 * failure is logged, not returned: the state is in force by then, and the
 * forward chain still drops anything new towards the address.
 */
static void netd_flush_conntrack(Netd *d, GArray *released) {
        if (released->len == 0)
                return;
        unsigned n = 0;
        int r = d->ct ? 0 : conntrack_open(&d->ct);
        if (r >= 0)
                r = conntrack_flush_addrs(d->ct, (const NetAddr *) released->data, released->len, &n);
        if (r < 0)
                log_error_errno(r, "Cannot delete the conntrack entries of %u released address(es): %m",
                                released->len);
        else
                log_info("conntrack: %u entr%s of %u released address(es) deleted", n, n == 1 ? "y" : "ies",
                         released->len);
}

/*
 * Enforce new_state (taken over in every case): one nftables transaction,
 * then links, addresses and neighbours, then persist it.  If the nftables
 * transaction fails, nothing changed and the previous state stays in force.
 * If links fail after it (an interface is missing), the new firewall is in
 * force, the new state is kept so the next change diffs right, and the
 * error says what is missing.  *errorp says why in both cases.
 */
static int netd_apply(void *userdata, NetState *new_state, char **errorp) {
        Netd *d = userdata;
        g_autoptr(NetState) s = new_state;
        RulesetStats st = {};

        g_autofree char *fw_errors = netstate_firewall_errors(s);
        if (fw_errors) {
                /* Fail closed for those clients, keep everyone else going. */
                g_auto(GStrv) lines = g_strsplit(fw_errors, "\n", -1);
                for (char **l = lines; *l; l++)
                        if (**l)
                                log_error("%s (traffic of this client is dropped)", *l);
        }

        /*
         * The firewall first: forwarding is never on without it.  An address
         * that changes hands loses its owner in the kernel (the `between`
         * state) while its conntrack entries go, so that no late packet of
         * an old flow reaches its next holder.
         */
        _cleanup_(handover_done) Handover h = {};
        handover_plan(d->state, s, &h);
        int r = 0;
        if (h.between) {
                r = ruleset_apply(d->nft, &d->applied, h.between, &st);
                if (r >= 0)
                        netd_flush_conntrack(d, h.released);
        }
        if (r >= 0)
                r = ruleset_apply(d->nft, &d->applied, s, &st);
        if (r < 0) {
                if (errorp)
                        *errorp = g_strdup_printf("nftables transaction failed: %s", g_strerror(-r));
                return r;
        }
        if (!h.between)
                netd_flush_conntrack(d, h.released);
        log_info("nftables: %u message(s): %u chain(s) added, %u changed, %u removed, %u element(s) added, %u removed",
                 st.messages, st.chains_added, st.chains_changed, st.chains_removed, st.elems_added, st.elems_removed);

        r = links_apply(d->links, s);
        if (r < 0) {
                if (errorp)
                        *errorp = g_strdup_printf("links: %s", g_strerror(-r));
                /* The firewall is in force for the new state; keep it so the next try diffs right. */
                netstate_free(d->state);
                d->state = steal_pointer(&s);
                return r;
        }

        netstate_free(d->state);
        d->state = steal_pointer(&s);

        /* DHCP last: dnsmasq binds to the downstream address links_apply() made. */
        if (!d->dhcp && d->state->dhcp)
                d->dhcp = dhcp_new(d->dnsmasq, d->run_dir);
        if (d->dhcp) {
                r = dhcp_apply(d->dhcp, d->state);
                if (r < 0)
                        log_error_errno(r, "DHCP: %m");
        }

        if (d->persist) {
                g_autofree char *text = netstate_format(d->state);
                g_autofree char *path = g_build_filename(d->state_dir, PERSIST_NAME, NULL);
                r = mkdir_parents(d->state_dir, 0755);
                if (r >= 0)
                        r = write_file_atomic(path, text, strlen(text), 0600);
                if (r < 0)
                        log_warning_errno(r, "Cannot save the state to %s: %m", path);
        }
        return 0;
}

/* ---- --state FILE ----------------------------------------------------- */

static void netd_watch_paths(Netd *d, const NetState *s);

static int netd_load_and_apply(Netd *d, const char *path) {
        g_autofree char *errors = NULL;
        NetState *s = NULL;

        int r = netstate_load(path, &s, &errors);
        if (r >= 0 && d->watched)
                netd_watch_paths(d, s);
        if (r < 0) {
                g_auto(GStrv) lines = g_strsplit(errors ? errors : "", "\n", -1);
                for (char **l = lines; *l; l++)
                        if (**l)
                                log_error("%s", *l);
                return log_error_errno(r, "State %s refused; the state in force stays: %m", path);
        }
        g_autofree char *err = NULL;
        r = netd_apply(d, s, &err);
        if (r < 0)
                return log_error_errno(r, "Applying %s failed: %s", path, err ? err : "");
        log_info("Applied %s (%u client(s))", path, d->state->clients->len);
        return 0;
}

static gboolean reload_cb(gpointer userdata) {
        Netd *d = userdata;
        d->reload_id = 0;
        (void) netd_load_and_apply(d, d->state_file);
        return G_SOURCE_REMOVE;
}

static void schedule_reload(Netd *d) {
        /* Coalesce bursts (editors, atomic replaces) into one reload 100 ms later. */
        if (!d->reload_id)
                d->reload_id = g_timeout_add(100, reload_cb, d);
}

static void monitor_cb(GFileMonitor *m, GFile *file, GFile *other, GFileMonitorEvent ev, gpointer userdata) {
        Netd *d = userdata;
        switch (ev) {
        case G_FILE_MONITOR_EVENT_CHANGES_DONE_HINT:
        case G_FILE_MONITOR_EVENT_CREATED:
        case G_FILE_MONITOR_EVENT_DELETED:
        case G_FILE_MONITOR_EVENT_MOVED_IN:
        case G_FILE_MONITOR_EVENT_MOVED_OUT:
        case G_FILE_MONITOR_EVENT_RENAMED:
                break;
        default:
                return;
        }
        /* Only the state file and the rules files it names matter (a rename's target counts too). */
        g_autofree char *path = g_file_get_path(file);
        g_autofree char *other_path = other ? g_file_get_path(other) : NULL;
        if ((path && g_hash_table_contains(d->watched, path)) ||
            (other_path && g_hash_table_contains(d->watched, other_path)))
                schedule_reload(d);
}

static gboolean sighup_cb(gpointer userdata) {
        Netd *d = userdata;
        if (d->state_file)
                schedule_reload(d);
        return G_SOURCE_CONTINUE;
}

static void watch_dir_of(Netd *d, const char *path) {
        g_autofree char *dir = g_path_get_dirname(path);
        for (guint i = 0; i < d->monitors->len; i++)
                if (strcmp(g_object_get_data(d->monitors->pdata[i], "dir"), dir) == 0)
                        return;
        g_autoptr(GFile) f = g_file_new_for_path(dir);
        g_autoptr(GError) error = NULL;
        /* A directory monitor also sees atomic replaces (rename over the file). */
        GFileMonitor *m = g_file_monitor_directory(f, G_FILE_MONITOR_WATCH_MOVES, NULL, &error);
        if (!m) {
                log_warning("Cannot watch %s: %s", dir, error->message);
                return;
        }
        g_object_set_data_full(G_OBJECT(m), "dir", g_strdup(dir), g_free);
        g_signal_connect(m, "changed", G_CALLBACK(monitor_cb), d);
        g_ptr_array_add(d->monitors, m);
}

static void netd_watch_paths(Netd *d, const NetState *s) {
        g_hash_table_remove_all(d->watched);
        g_hash_table_add(d->watched, g_strdup(d->state_file));
        watch_dir_of(d, d->state_file);
        for (guint i = 0; s && i < s->rules_files->len; i++) {
                const char *p = s->rules_files->pdata[i];
                g_hash_table_add(d->watched, g_strdup(p));
                watch_dir_of(d, p);
        }
}

static int netd_watch(Netd *d) {
        g_autofree char *abs = g_canonicalize_filename(d->state_file, NULL);
        g_free(d->state_file);
        d->state_file = g_steal_pointer(&abs);
        d->monitors = g_ptr_array_new_with_free_func(g_object_unref);
        d->watched = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        netd_watch_paths(d, NULL);
        return 0;
}

/* ---- the agent channel ------------------------------------------------ */

static int channel_find_virtio(const char *want, char **ret) {
        g_autoptr(GDir) dir = g_dir_open("/sys/class/virtio-ports", 0, NULL);
        const char *e;
        if (!dir)
                return -ENOENT;
        while ((e = g_dir_read_name(dir))) {
                g_autofree char *namefile = g_build_filename("/sys/class/virtio-ports", e, "name", NULL);
                _cleanup_free_ char *name = NULL;
                /* sysfs attributes stat as 4096 bytes whatever they hold. */
                if (read_full_file(namefile, 4096, &name, NULL) < 0)
                        continue;
                g_strstrip(name);
                if (strcmp(name, want) == 0) {
                        *ret = g_build_filename("/dev", e, NULL);
                        return 0;
                }
        }
        return -ENOENT;
}

static int channel_open(Netd *d) {
        if (d->channel) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                if (strlen(d->channel) >= sizeof sa.sun_path)
                        return -ENAMETOOLONG;
                strcpy(sa.sun_path, d->channel);
                _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0)
                        return negative_errno();
                if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0 && errno != EINPROGRESS)
                        return negative_errno();
                return steal_fd(&fd);
        }
        g_autofree char *dev = NULL;
        int r = channel_find_virtio(d->virtio_port ? d->virtio_port : VIRTIO_PORT_NAME, &dev);
        if (r == -ENOENT && !d->virtio_port)
                r = channel_find_virtio(VIRTIO_PORT_FALLBACK, &dev);
        if (r < 0)
                return r;
        int fd = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        return fd < 0 ? negative_errno() : fd;
}

static void netd_schedule_reconnect(Netd *d);

static const char *dev_name_for_log(Netd *d) {
        return d->virtio_port ? d->virtio_port : "virtio port " VIRTIO_PORT_NAME " (or " VIRTIO_PORT_FALLBACK ")";
}

static void bus_closed_cb(void *userdata, int error) {
        Netd *d = userdata;
        log_warning_errno(error, "Agent channel closed (%m); the network stays as it is, reconnecting");
        d->bus_source = bus_source_free(d->bus_source);
        d->slot = sd_bus_slot_unref(d->slot);
        d->bus = sd_bus_flush_close_unref(d->bus);
        netd_schedule_reconnect(d);
}

static int netd_connect(Netd *d) {
        _cleanup_close_ int fd = channel_open(d);
        if (fd < 0)
                return fd;

        sd_bus *bus = NULL;
        int r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        d->bus = bus;
        /* Peer to peer: the broker is the server; no fds cross a VM boundary. */
        r = sd_bus_set_fd(bus, fd, fd);
        if (r < 0)
                goto fail;
        fd = -EBADF; /* owned by the bus now */
        if ((r = sd_bus_set_anonymous(bus, true)) < 0 ||
            (r = sd_bus_negotiate_fds(bus, false)) < 0 ||
            (r = sd_bus_set_description(bus, "broker")) < 0)
                goto fail;
        r = sd_bus_start(bus);
        if (r < 0)
                goto fail;
        d->iface_ops = (NetvmIfaceOps) { .get_state = netd_get_state, .apply = netd_apply, .userdata = d };
        r = netvm_iface_add(bus, &d->iface_ops, &d->slot);
        if (r < 0)
                goto fail;
        r = bus_source_attach(bus, bus_closed_cb, d, &d->bus_source);
        if (r < 0)
                goto fail;
        log_info("Broker channel %s connected", d->channel ? d->channel : dev_name_for_log(d));
        d->connect_failed_logged = false;
        return 0;
fail:
        d->slot = sd_bus_slot_unref(d->slot);
        d->bus = sd_bus_close_unref(d->bus);
        return r;
}

static gboolean reconnect_cb(gpointer userdata) {
        Netd *d = userdata;
        d->reconnect_id = 0;
        int r = netd_connect(d);
        if (r < 0) {
                if (!d->connect_failed_logged)
                        log_warning_errno(r, "Cannot connect the agent channel (%m); retrying every second");
                d->connect_failed_logged = true;
                netd_schedule_reconnect(d);
        }
        return G_SOURCE_REMOVE;
}

static void netd_schedule_reconnect(Netd *d) {
        if (!d->reconnect_id)
                d->reconnect_id = g_timeout_add_seconds(1, reconnect_cb, d);
}

/* ---- main ------------------------------------------------------------- */

static gboolean quit_cb(gpointer userdata) {
        Netd *d = userdata;
        g_main_loop_quit(d->loop);
        return G_SOURCE_CONTINUE;
}

static void netd_done(Netd *d) {
        if (d->reload_id)
                g_source_remove(d->reload_id);
        if (d->reconnect_id)
                g_source_remove(d->reconnect_id);
        d->bus_source = bus_source_free(d->bus_source);
        sd_bus_slot_unref(d->slot);
        sd_bus_flush_close_unref(d->bus);
        if (d->monitors)
                g_ptr_array_unref(d->monitors);
        if (d->watched)
                g_hash_table_unref(d->watched);
        ruleset_free(d->applied);
        netstate_free(d->state);
        nft_socket_free(d->nft);
        conntrack_free(d->ct);
        dhcp_free(d->dhcp);
        g_free(d->dnsmasq);
        g_free(d->run_dir);
        links_free(d->links);
        if (d->loop)
                g_main_loop_unref(d->loop);
        g_free(d->state_file);
        g_free(d->state_dir);
        g_free(d->channel);
        g_free(d->virtio_port);
}

/* --check: every error, state and firewall, as FILE:LINE: message; exit 1 if any. */
static int netd_check(const char *state_file) {
        g_autofree char *errors = NULL;
        g_autoptr(NetState) s = NULL;
        if (netstate_load(state_file, &s, &errors) < 0) {
                fputs(errors ? errors : "", stderr);
                return 1;
        }
        g_autofree char *fw = netstate_firewall_errors(s);
        if (fw) {
                fputs(fw, stderr);
                return 1;
        }
        printf("%s: OK (%u client(s))\n", state_file, s->clients->len);
        return 0;
}

/* Open the sockets, take the kernel's table, then the first state; run until SIGTERM/SIGINT. */
static int netd_run(Netd *d, bool once, bool watch) {
        int r;

        r = nft_socket_open(&d->nft);
        if (r < 0) {
                log_error_errno(r, "Cannot open the nftables netlink socket: %m");
                return r;
        }
        r = links_open(&d->links);
        if (r < 0) {
                log_error_errno(r, "Cannot open the rtnetlink socket: %m");
                return r;
        }
        /* Restart safety: start from what the kernel has, never from scratch. */
        r = ruleset_read(d->nft, &d->applied);
        if (r < 0)
                return r;

        if (d->state_file) {
                /* Watch before the first load, so that no change is missed. */
                if (watch && (r = netd_watch(d)) < 0)
                        return r;
                r = netd_load_and_apply(d, d->state_file);
                if (once)
                        return r;
        } else {
                /* Re-assert the broker's last state at once, before the broker is back. */
                g_autofree char *path = g_build_filename(d->state_dir, PERSIST_NAME, NULL);
                if (access(path, F_OK) == 0)
                        (void) netd_load_and_apply(d, path);
                d->persist = true;
        }
        if (d->channel || d->virtio_port || !d->state_file) {
                r = netd_connect(d);
                if (r < 0) {
                        log_warning_errno(r, "Cannot connect the agent channel (%m); retrying every second");
                        d->connect_failed_logged = true;
                        netd_schedule_reconnect(d);
                }
        }

        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", d->state ? "Enforcing the desired state" : "Waiting for a state");
        d->loop = g_main_loop_new(NULL, FALSE);
        g_unix_signal_add(SIGTERM, quit_cb, d);
        g_unix_signal_add(SIGINT, quit_cb, d);
        g_unix_signal_add(SIGHUP, sighup_cb, d);
        signal(SIGPIPE, SIG_IGN);
        log_info("Running");
        g_main_loop_run(d->loop);
        (void) sd_notify(false, "STOPPING=1");
        return 0;
}

int main(int argc, char **argv) {
        gboolean once = FALSE, watch = FALSE, check = FALSE, debug = FALSE, version = FALSE;
        g_autofree char *state_file = NULL, *state_dir = NULL, *channel = NULL, *virtio_port = NULL;
        g_autofree char *dnsmasq = NULL, *run_dir = NULL;
        GOptionEntry entries[] = {
                { "state", 0, 0, G_OPTION_ARG_FILENAME, &state_file, "Take the desired state from FILE", "FILE" },
                { "once", 0, 0, G_OPTION_ARG_NONE, &once, "Apply --state FILE and exit", NULL },
                { "check", 0, 0, G_OPTION_ARG_NONE, &check, "Check --state FILE and its rules files; change nothing", NULL },
                { "watch", 0, 0, G_OPTION_ARG_NONE, &watch, "Re-apply --state FILE whenever it changes", NULL },
                { "channel", 0, 0, G_OPTION_ARG_FILENAME, &channel, "Broker channel: connect to this unix socket "
                  "instead of a virtio port", "PATH" },
                { "virtio-port", 0, 0, G_OPTION_ARG_STRING, &virtio_port, "Broker channel: the virtio port of this name "
                  "(default " VIRTIO_PORT_NAME ", else " VIRTIO_PORT_FALLBACK ")", "NAME" },
                { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir, "Where the last state from the broker is kept "
                  "(default " VMFED_STATE_DIR ")", "DIR" },
                { "run-dir", 0, 0, G_OPTION_ARG_FILENAME, &run_dir, "Where dnsmasq's configuration is written "
                  "(default " NETD_RUN_DIR ")", "DIR" },
                { "dnsmasq", 0, 0, G_OPTION_ARG_FILENAME, &dnsmasq, "The DHCP server program (default dnsmasq, "
                  "in PATH)", "PATH" },
                { "debug", 0, 0, G_OPTION_ARG_NONE, &debug, "Log debug messages", NULL },
                { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version", NULL },
                {}
        };
        g_autoptr(GOptionContext) ctx = g_option_context_new("- keep the network VM's network in its desired state");
        g_autoptr(GError) error = NULL;
        Netd d = {};
        int r;

        log_set_ident("vmfed-netd");
        g_option_context_add_main_entries(ctx, entries, NULL);
        if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
                log_error("%s", error->message);
                return 2;
        }
        if (version) {
                puts("vmfed-netd " VMFED_VERSION);
                return 0;
        }
        if (debug)
                log_set_max_level(LOG_DEBUG);
        if ((once || watch || check) && !state_file) {
                log_error("--once, --watch and --check need --state FILE");
                return 2;
        }
        if (once + watch + check > 1) {
                log_error("--once, --watch and --check exclude each other");
                return 2;
        }
        if (check)
                return netd_check(state_file);
        if (argc > 1) {
                log_error("Unexpected argument \"%s\"", argv[1]);
                return 2;
        }

        d.state_file = g_steal_pointer(&state_file);
        d.state_dir = state_dir ? g_steal_pointer(&state_dir) : g_strdup(VMFED_STATE_DIR);
        d.channel = g_steal_pointer(&channel);
        d.dnsmasq = dnsmasq ? g_steal_pointer(&dnsmasq) : g_strdup("dnsmasq");
        d.run_dir = run_dir ? g_steal_pointer(&run_dir) : g_strdup(NETD_RUN_DIR);
        d.virtio_port = g_steal_pointer(&virtio_port);

        r = netd_run(&d, once, watch);
        netd_done(&d);
        return r < 0 ? 1 : 0;
}
