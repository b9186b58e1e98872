/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for everything a guest can send to the broker: the
 * input is the raw byte stream of one VM's channel.  The real broker code
 * (broker/channel.c's GuestConnection, guest-services, guest-request,
 * guest-clipboard, guest-admin, ask, route) serves it as the server side of
 * the peer-to-peer D-Bus connection, exactly as for an accepted channel
 * connection (channel_adopt_connection()): the SASL handshake, then
 * whatever messages follow — calls to Guest methods, replies to the
 * broker's own Agent1 calls (the broker routes requests back to this VM
 * once it said Hello), garbage.
 *
 * Per input: a fresh Broker (a temp config with five VMs, a policy that
 * allows, asks and denies, services.conf; the state dir's channels/),
 * its guest services started on an internal bus connection whose peer
 * swallows the signals, the channel of VM "a" adopting one end of a
 * socketpair; the input is written to the other end while the main loop
 * runs until nothing is left to do; what the broker answers is read and
 * dropped.  Then everything is freed.  The sanitizers and libFuzzer's leak
 * check judge: no crash, no leak, no hang (the loop must go idle).
 *
 * Seeds: tests/broker/fuzz-corpus-guest-channel/, made by
 * fuzz-guest-seeds.c (real sd-bus marshalling, the agent's own handshake).
 * -Dfuzz=true builds the libFuzzer binary; every build replays the corpus
 * (tests/lib/fuzz-replay.c).
 *
 * Built with -DFUZZ_NETVM_LINK, this is fuzz-netvm-link: the same broker,
 * but the input is what the netvm's vmfed-netd sends on its port (the netvm
 * is a VM, so that is guest input too): broker/netvm-link.c serves it
 * (netvm_links_adopt_connection()) and sends it the whole state first, the
 * input answers (or not).  Seeds: tests/broker/fuzz-corpus-netvm-link/.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <systemd/sd-bus.h>

#include "broker/daemon.h"
#include "broker/channel.h"
#include "broker/errors.h"
#include "broker/guest-services.h"
#include "broker/netvm-links.h"
#include "broker/vm-object.h"
#include "common/bus-p2p.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/vm-model.h"
#include "federation/vmspec.h"
#include "broker/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Several hundred thousand rounds of the loop with nothing but a stuck peer would be a hang. */
#define LOOP_MAX 200000

static const struct {
        const char *path, *text;
} config_files[] = {
        /* @KERNEL@: a file in the config dir, so that the VMs load as vmfedd loads them (strictly). */
        { "kernel", "not a kernel: nothing boots here\n" },
        { "vms.d/a.vm", "[VM]\nRole=persona\nTags=work\nDefaultDispVM=dvm\nKernel=@KERNEL@\n" },
        { "vms.d/b.vm", "[VM]\nRole=app\nTags=web\nKernel=@KERNEL@\n" },
        { "vms.d/c.vm", "[VM]\nRole=persona\nKernel=@KERNEL@\n" },
        { "vms.d/dvm.vm", "[VM]\nRole=disposable-template\nKernel=@KERNEL@\n" },
        { "vms.d/net.vm", "[VM]\nRole=service\nDefaultNetVM=true\nKernel=@KERNEL@\n" },
        { "services.conf", "[Clipboard]\nMaxSize=64K\nClearAfterPaste=false\n"
                           "[Open]\nURLSchemes=http;https;mailto\n"
                           "[Apps]\nb=org.example.App;org.example.Other\ndvm=org.example.Viewer\na=org.example.Self\n" },
        { "policy.d/50-fuzz.policy",
          "vmfed.OpenURL          *                  a        b            allow\n"
          "vmfed.OpenURL          *                  a        @default     ask default_target=b\n"
          "vmfed.OpenURL          *                  a        @dispvm      allow\n"
          "vmfed.OpenURL          *                  a        c            allow\n"
          "vmfed.OpenURL          *                  a        a            allow\n"
          "vmfed.OpenFile         *                  a        @default     allow target=b\n"
          "vmfed.OpenFile         *                  a        a            allow\n"
          "vmfed.OpenFile         *                  a        @dispvm:dvm  allow\n"
          "vmfed.OpenFile         *                  a        b            ask\n"
          "vmfed.Launch           +org.example.App   a        b            allow\n"
          "vmfed.Launch           +org.example.Self  a        a            allow\n"
          "vmfed.Launch           +org.example.Viewer a       @dispvm      allow\n"
          "vmfed.Launch           *                  a        @anyvm       ask default_target=c\n"
          "vmfed.Ping             *                  a        @anyvm       allow\n"
          "vmfed.Clipboard.Paste  *                  @anyvm   a            allow\n"
          "vmfed.Clipboard.Paste  *                  b        @anyvm       ask\n"
          "vmfed.Admin.ListVMs    *                  a        @host        allow\n"
          "vmfed.Admin.StartVM    *                  a        b            allow\n"
          "vmfed.Admin.StopVM     *                  a        @anyvm       ask\n"
          "vmfed.Admin.SwitchPersona *               a        c            allow\n"
          "test.Echo              *                  a        @anyvm       allow\n"
          "test.Echo              *                  a        @dispvm      allow\n"
          "test.Ask               *                  a        @anyvm       ask default_target=b\n"
          "*                      *                  @anyvm   @anyvm       deny\n" },
};

static char *config_dir, *state_dir;
static bool debug; /* $VMFED_FUZZ_DEBUG: log what the broker does and says */
static PolicySnapshot *policy;
static VmModel *model; /* vms.d/, loaded once as vmfedd loads it; the netvm's spec for netvm_links_adopt_connection() */

static void write_config(void) {
        config_dir = g_dir_make_tmp("vmfed-fuzz-guest.XXXXXX", NULL);
        if (!config_dir)
                abort();
        state_dir = g_build_filename(config_dir, "state", NULL);
        g_autofree char *kernel = g_build_filename(config_dir, "kernel", NULL);
        for (size_t i = 0; i < G_N_ELEMENTS(config_files); i++) {
                g_autofree char *p = g_build_filename(config_dir, config_files[i].path, NULL);
                g_autofree char *d = g_path_get_dirname(p);
                g_auto(GStrv) parts = g_strsplit(config_files[i].text, "@KERNEL@", -1);
                g_autofree char *text = g_strjoinv(kernel, parts);
                if (g_mkdir_with_parents(d, 0700) < 0 || !g_file_set_contents(p, text, -1, NULL))
                        abort();
        }
        g_autofree char *channels = g_build_filename(state_dir, "channels", NULL);
        if (g_mkdir_with_parents(channels, 0700) < 0)
                abort();
}

static void __attribute__((destructor)) remove_config(void) {
        if (!config_dir)
                return;
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", config_dir);
        if (system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", config_dir);
}

static void init(void) {
        if (config_dir)
                return;
        signal(SIGPIPE, SIG_IGN);
        debug = getenv("VMFED_FUZZ_DEBUG") != NULL;
        log_set_max_level(debug ? LOG_DEBUG : LOG_CRIT);
        if (errors_register() < 0)
                abort();
        write_config();
        g_autofree char *policy_dir = g_build_filename(config_dir, "policy.d", NULL);
        if (policy_snapshot_load(policy_dir, NULL, 0, &policy) < 0 || !policy_snapshot_is_valid(policy)) {
                fprintf(stderr, "the fuzz target's policy does not load\n");
                abort();
        }
        GPtrArray *errors = NULL;
        if (vm_model_load(config_dir, NULL, 0, &model, &errors) < 0 || !vm_model_find(model, "net")) {
                fprintf(stderr, "the fuzz target's VMs do not load: %s\n",
                        errors && errors->len ? (char *) errors->pdata[0] : "?");
                abort();
        }
}

/* The broker's own bus connection (signals, the messages route.c builds) with a peer that swallows it all. */
static int internal_bus_new(sd_bus **ret_bus, sd_bus **ret_peer) {
        int fds[2];
        sd_bus *bus = NULL, *peer = NULL;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
                return -errno;
        if (bus_p2p_new(fds[0], false, false, "internal", &bus) < 0 ||
            bus_p2p_new(fds[1], true, false, "internal-peer", &peer) < 0 || sd_bus_start(bus) < 0 ||
            sd_bus_start(peer) < 0)
                abort();
        for (unsigned i = 0; i < 1000 && sd_bus_is_ready(bus) <= 0; i++) {
                while (sd_bus_process(peer, NULL) > 0)
                        ;
                while (sd_bus_process(bus, NULL) > 0)
                        ;
        }
        if (sd_bus_is_ready(bus) <= 0)
                abort();
        *ret_bus = bus;
        *ret_peer = peer;
        return 0;
}

static void pump_peer(sd_bus *peer) {
        for (unsigned i = 0; i < 100000; i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                if (sd_bus_process(peer, &m) <= 0)
                        break;
        }
}

/* a (this channel) and b run; c, the template and the netvm do not. */
static const char *initial_state(const char *vm, void *userdata) {
        return strcmp(vm, "a") == 0 || strcmp(vm, "b") == 0 ? "running" : "stopped";
}

static Daemon *broker_setup(sd_bus **ret_peer) {
        Daemon *d = NULL;
        sd_bus *bus = NULL;

        if (daemon_new(&(DaemonOptions) { .config_dir = config_dir, .state_dir = state_dir,
                                          .libvirt_uri = "test:///default" },
                       &d) < 0)
                abort();
        Broker *b = daemon_broker(d);
        if (broker_set_model(b, vm_model_ref(model), initial_state, NULL))
                abort();
        broker_set_active_persona(b, "a"); /* and the policy facts */
        if (!broker_facts(b))
                abort();
        broker_set_policy(b, policy);
        if (internal_bus_new(&bus, ret_peer) < 0)
                abort();
        broker_set_bus(b, bus); /* closed by daemon_free() */
        if (guest_services_start(b) < 0)
                abort();
        return d;
}

static bool drain(int fd) {
        char buf[16384];
        bool any = false;
        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n <= 0)
                        return any;
                if (debug) {
                        fprintf(stderr, "broker wrote %zd bytes: ", n);
                        for (ssize_t i = 0; i < n; i++)
                                fputc(buf[i] >= 32 && buf[i] < 127 ? buf[i] : '.', stderr);
                        fputc('\n', stderr);
                }
                any = true;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        sd_bus *peer = NULL;
        Channel *c = NULL;
        int fds[2];

        if (size > 1024 * 1024)
                return 0;
        init();
        Daemon *d = broker_setup(&peer);
        Broker *b = daemon_broker(d);
        if (channel_ensure(b, "a", &c) != 1)
                abort();

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
                abort();
#ifdef FUZZ_NETVM_LINK
        NetvmLinks *links = NULL;
        if (netvm_links_new(b, &links) < 0)
                abort();
        broker_set_netvm_links(b, links); /* freed by daemon_free() */
        if (netvm_links_adopt_connection(b, vm_model_find(model, "net"), fds[0]) < 0)
                abort();
#else
        channel_adopt_connection(c, fds[0]);
#endif

        /* Feed the input as fast as the broker takes it; run the loop until it has nothing left to do. */
        size_t off = 0;
        unsigned idle = 0, rounds = 0;
        for (; rounds < LOOP_MAX && idle < 3; rounds++) {
                bool progress = false;
                if (off < size) {
                        ssize_t n = write(fds[1], data + off, size - off);
                        if (n > 0) {
                                off += (size_t) n;
                                progress = true;
                        } else if (n < 0 && errno != EAGAIN)
                                off = size; /* the broker hung up */
                }
                progress = drain(fds[1]) || progress;
                pump_peer(peer);
                progress = g_main_context_iteration(NULL, FALSE) || progress;
                idle = progress || off < size ? 0 : idle + 1;
                if (debug) {
                        sd_bus *gb = channel_agent_bus(b, "a");
                        uint64_t nr = 0;
                        if (gb)
                                sd_bus_get_n_queued_read(gb, &nr);
                        fprintf(stderr, "round %u off %zu progress %d queued %d\n", rounds, off, progress, (int) nr);
                }
        }
        if (rounds >= LOOP_MAX) {
                fprintf(stderr, "the broker never went idle on this input\n");
                abort();
        }

        /* No stream of a's is left behind: whatever it sent, every port is free again once it is done. */
        StreamTable *st = guest_services_streams(b);
        if (st && stream_table_count(st, "a") != 0) {
                fprintf(stderr, "a stream of a's is still open or queued after the input\n");
                abort();
        }

        /* Shut down as vmfedd does; what it still says on its bus must not block its flush. */
        guest_services_stop(b);
        pump_peer(peer);
        drain(fds[1]);
        daemon_free(d);
        while (g_main_context_iteration(NULL, FALSE))
                ;
        sd_bus_flush_close_unref(peer);
        close(fds[1]);
        return 0;
}
