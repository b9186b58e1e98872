/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The federation on a real libvirtd (qemu:///system) with tiny TCG guests
 * (tests/guest/build-guest.sh).  Run by test-federation-real.sh, which
 * starts libvirtd if needed, creates the bridge and removes every domain of
 * the run afterwards, also on failure.
 *
 * Environment: VMFED_GUEST_DIR (vmlinuz, initrd-base.img), VMFED_TEST_PREFIX
 * (domain prefix of this run), VMFED_TEST_BRIDGE, VMFED_TEST_WORKDIR (a
 * directory QEMU can read).
 *
 * Checked: persona switches between two personas sharing a (fake) PCI
 * device — never both up, checked at every state change — with graceful
 * ACPI shutdowns; the netvm's QEMU pid unchanged across switches and across
 * a re-created federation object (adoption); crash detection within a
 * second after kill -9 of a persona's QEMU; rollback when QEMU refuses to
 * start the target; managed save and restore of a persona without devices;
 * disposable overlays removed after a stop and after a crash while the
 * broker was down.
 */
#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <libvirt/libvirt.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "fed-test-util.h"

static const char *guest_dir, *prefix, *bridge, *workdir;
static char *config, *state;
static virConnectPtr conn;
static Federation *fed;
static StateLog slog;

/* ---- the broker's side of the agent channels (QEMU connects to us) ---- */

typedef struct Listener {
        GSocketService *service;
        GString *received; /* everything any connection sent */
} Listener;

static GHashTable *listeners; /* vm → Listener */

typedef struct ReadCtx {
        Listener *l;
        GSocketConnection *conn;
        char buf[256];
} ReadCtx;

static void read_more(ReadCtx *rc);

static void read_done(GObject *source, GAsyncResult *res, gpointer userdata) {
        ReadCtx *rc = userdata;
        gssize n = g_input_stream_read_finish(G_INPUT_STREAM(source), res, NULL);
        if (n <= 0) {
                g_object_unref(rc->conn);
                g_free(rc);
                return;
        }
        g_string_append_len(rc->l->received, rc->buf, n);
        read_more(rc);
}

static void read_more(ReadCtx *rc) {
        g_input_stream_read_async(g_io_stream_get_input_stream(G_IO_STREAM(rc->conn)), rc->buf, sizeof rc->buf,
                                  G_PRIORITY_DEFAULT, NULL, read_done, rc);
}

static gboolean on_incoming(GSocketService *service, GSocketConnection *c, GObject *source, gpointer userdata) {
        ReadCtx *rc = g_new0(ReadCtx, 1);
        rc->l = userdata;
        rc->conn = g_object_ref(c);
        read_more(rc);
        return true;
}

static int prepare_channel(const char *vm, const char *path, void *userdata) {
        g_autoptr(GSocketAddress) addr = NULL;
        g_autoptr(GError) e = NULL;
        Listener *l;

        if (g_hash_table_contains(listeners, vm))
                return 0;
        (void) unlink(path);
        addr = g_unix_socket_address_new(path);
        l = g_new0(Listener, 1);
        l->received = g_string_new(NULL);
        l->service = g_socket_service_new();
        if (!g_socket_listener_add_address(G_SOCKET_LISTENER(l->service), addr, G_SOCKET_TYPE_STREAM,
                                           G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, &e)) {
                g_printerr("cannot listen on %s: %s\n", path, e->message);
                g_object_unref(l->service);
                g_string_free(l->received, true);
                g_free(l);
                return -EADDRINUSE;
        }
        g_signal_connect(l->service, "incoming", G_CALLBACK(on_incoming), l);
        g_socket_service_start(l->service);
        g_hash_table_insert(listeners, g_strdup(vm), l);
        return 0;
}

static void listener_free(gpointer p) {
        Listener *l = p;
        g_socket_service_stop(l->service);
        g_socket_listener_close(G_SOCKET_LISTENER(l->service));
        g_object_unref(l->service);
        g_string_free(l->received, true);
        g_free(l);
}

/* Wait until the guest's agent port delivered its ready line to our socket. */
static void wait_channel_ready(const char *vm, unsigned n) {
        g_autofree char *needle = g_strdup_printf("vmfed-guest-ready %s ", vm);
        gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

        while (g_get_monotonic_time() < end) {
                Listener *l = g_hash_table_lookup(listeners, vm);
                unsigned count = 0;
                for (const char *p = l ? l->received->str : ""; (p = strstr(p, needle)); p += strlen(needle))
                        count++;
                if (count >= n)
                        return;
                run_for(0.05);
        }
        g_error("no ready line %u from %s over its agent channel within 30 s", n, vm);
}

static Federation *federation_open(void) {
        g_autoptr(GPtrArray) errors = NULL;
        FederationOptions o = {
                .config_dir = config,
                .state_dir = state,
                .domain_prefix = prefix,
                .bridge = bridge,
                /* As vmfedd does: we listen, QEMU connects (and reconnects). */
                .channel_mode = DOMAIN_CHANNEL_CONNECT,
                .prepare_channel = prepare_channel,
                .force_tcg = true,
                .fake_passthrough = true,
        };
        Federation *f = NULL;
        int r = federation_new(conn, &o, &f, &errors);
        for (guint i = 0; errors && i < errors->len; i++)
                g_printerr("%s\n", (char *) errors->pdata[i]);
        g_assert_cmpint(r, ==, 0);
        state_log_attach(&slog, f);
        return f;
}

static void write_guest(const char *name, const char *role, const char *kernel, const char *extra) {
        g_autofree char *text = g_strdup_printf(
                "[VM]\nRole=%s\nMemory=256M\nVCPUs=1\nKernel=%s\nInitrd=%s/initrd-base.img\n"
                "Cmdline=console=ttyS0 quiet panic=-1 vmfed.name=%s vmfed.selftest=1\nStopTimeout=20\n%s",
                role, kernel, guest_dir, name, extra ? extra : "");
        write_vm(config, name, text);
}

static pid_t qemu_pid(const char *vm) {
        g_autofree char *path = g_strdup_printf("/run/libvirt/qemu/%s%s.pid", prefix, vm);
        g_autofree char *text = NULL;
        if (read_full_file(path, 64, &text, NULL) < 0)
                return 0;
        return (pid_t) atoi(text);
}

static unsigned count_up(const char *vm) {
        g_autofree char *path = g_strdup_printf("%s/consoles/%s.log", state, vm);
        g_autofree char *needle = g_strdup_printf("vmfed-init: %s up", vm);
        g_autofree char *text = NULL;
        unsigned n = 0;

        if (read_full_file(path, 4 << 20, &text, NULL) < 0)
                return 0;
        for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* Wait until the guest's init printed its n-th "up" line on the serial console (acpid runs then). */
static void wait_guest_up(const char *vm, unsigned n) {
        gint64 end = g_get_monotonic_time() + 90 * G_USEC_PER_SEC;

        while (g_get_monotonic_time() < end) {
                if (count_up(vm) >= n)
                        return;
                run_for(0.1);
        }
        g_error("%s did not come up (boot %u) within 90 s", vm, n);
}

/* Start counting boots of vm now: the next wait_guest_up(vm, next_boot(vm)) waits for a new boot. */
static unsigned next_boot(const char *vm) {
        return count_up(vm) + 1;
}

/* libvirt has torn the domain down (after QEMU died, the devices are back). */
static void wait_released(const char *vm) {
        g_autofree char *name = g_strconcat(prefix, vm, NULL);
        gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

        while (g_get_monotonic_time() < end) {
                virDomainPtr dom = virDomainLookupByName(conn, name);
                int active = dom ? virDomainIsActive(dom) : 0;
                if (dom)
                        virDomainFree(dom);
                if (active == 0)
                        return;
                run_for(0.05);
        }
        g_error("libvirt did not release %s within 30 s", vm);
}

/*
 * How long an operation may take before the test calls it hung.  Not a speed
 * check: every libvirt call now runs in the federation's worker, so a
 * libvirtd that is slow to answer (its first virDomainDefineXML probes QEMU;
 * 3 minutes were seen on a loaded machine) is time inside the operation,
 * where before it blocked the caller before the wait began.
 */
#define HANG_GUARD_S 600

static int do_switch(const char *vm, Result *res) {
        FederationCallbacks cb = result_callbacks(res);
        g_autofree char *err = NULL;
        gint64 t0 = g_get_monotonic_time();
        int r = federation_switch_persona(fed, vm, &cb, &err);
        if (r < 0) {
                g_printerr("switch to %s refused: %s\n", vm, err);
                return r;
        }
        g_assert_true(run_until(&res->done, HANG_GUARD_S));
        g_printerr("switch to %s: r=%d in %.2f s (broker side %.2f ms)%s%s\n", vm, res->r,
                   (g_get_monotonic_time() - t0) / 1e6, federation_last_switch_overhead_ns(fed) / 1e6,
                   res->message ? ": " : "", res->message ? res->message : "");
        return res->r;
}

static int do_stop(const char *vm, bool force, Result *res) {
        FederationCallbacks cb = result_callbacks(res);
        g_assert_cmpint(federation_stop_vm(fed, vm, force, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res->done, HANG_GUARD_S));
        return res->r;
}

static char *do_disposable(Result *res) {
        FederationCallbacks cb = result_callbacks(res);
        g_autofree char *err = NULL;
        int r = federation_start_disposable(fed, "@dispvm:dvm", NULL, &cb, &err);
        if (r < 0)
                g_error("disposable refused: %s", err);
        g_assert_true(run_until(&res->done, HANG_GUARD_S));
        g_assert_cmpint(res->r, ==, 0);
        return g_strdup(res->message);
}

static bool overlay_exists(const char *vm) {
        g_autofree char *p = g_strdup_printf("%s/disposables/%s.qcow2", state, vm);
        return g_file_test(p, G_FILE_TEST_EXISTS);
}

/* The VM files of the scenario: a netvm, three personas sharing a device (persona-c's kernel is
 * not one), persona-s without devices, a guest ignoring ACPI, a disposable template on a disk. */
static void write_guests(void) {
        g_autofree char *kernel = g_strdup_printf("%s/vmlinuz", guest_dir);
        g_autofree char *bad_kernel = g_build_filename(workdir, "not-a-kernel", NULL);
        g_autofree char *base = g_build_filename(workdir, "dvm-base.qcow2", NULL);
        g_autofree char *cmd = NULL, *dvm = NULL;

        write_text(bad_kernel, "this is not a Linux kernel image\n");
        cmd = g_strdup_printf("qemu-img create -q -f qcow2 '%s' 64M", base);
        g_assert_cmpint(system(cmd), ==, 0);
        write_guest("netvm", "service", kernel, "DefaultNetVM=true\n");
        write_guest("persona-a", "persona", kernel, "[Passthrough]\nDevices=0000:0f:00.0\n");
        write_guest("persona-b", "persona", kernel, "[Passthrough]\nDevices=0000:0f:00.0\n");
        write_guest("persona-c", "persona", bad_kernel, "[Passthrough]\nDevices=0000:0f:00.0\n");
        write_guest("persona-s", "persona", kernel, NULL);
        /* A guest that ignores the power button: a shell as PID 1, no acpid. */
        {
                g_autofree char *text = g_strdup_printf(
                        "[VM]\nRole=app\nMemory=256M\nKernel=%s\nInitrd=%s/initrd-base.img\n"
                        "Cmdline=console=ttyS0 quiet rdinit=/bin/sh\nStopTimeout=3\nNetVM=\n",
                        kernel, guest_dir);
                write_vm(config, "stubborn", text);
        }
        dvm = g_strdup_printf("Disk=%s\n", base);
        write_guest("dvm", "disposable-template", kernel, dvm);
}

/* Crash: kill -9 the persona's QEMU; stopped reported within a second. */
static void crash_persona(Result *res) {
        pid_t pid;
        gint64 t_kill;

        pid = qemu_pid("persona-a");
        g_assert_cmpint(pid, >, 0);
        slog.last_stopped_usec = 0;
        t_kill = g_get_monotonic_time();
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        while (federation_vm_state(fed, "persona-a") != FEDERATION_VM_STOPPED &&
               g_get_monotonic_time() - t_kill < 5 * G_USEC_PER_SEC)
                run_for(0.005);
        g_assert_cmpint(federation_vm_state(fed, "persona-a"), ==, FEDERATION_VM_STOPPED);
        g_printerr("crash of persona-a reported after %.0f ms\n", (slog.last_stopped_usec - t_kill) / 1e3);
        g_assert_cmpint(slog.last_stopped_usec - t_kill, <, G_USEC_PER_SEC);
        g_assert_null(federation_active_persona(fed));
        /* Until libvirt has torn it down, its device and the persona slot stay taken. */
        {
                FederationCallbacks cb = result_callbacks(res);
                g_autofree char *err = NULL;
                int r = federation_switch_persona(fed, "persona-b", &cb, &err);
                if (r == 0)
                        g_assert_true(run_until(&res->done, HANG_GUARD_S)); /* libvirt was quicker than us */
                else {
                        g_assert_cmpint(r, ==, -EBUSY);
                        g_assert_nonnull(strstr(err, "being torn down"));
                }
        }
        wait_released("persona-a");
}

/* A graceful stop of a guest that ignores ACPI: destroyed after StopTimeout=3. */
static void stop_stubborn(Result *res) {
        FederationCallbacks cb = result_callbacks(res);
        gint64 t0;
        double took;

        g_assert_cmpint(federation_start_vm(fed, "stubborn", &cb, NULL), ==, 0);
        g_assert_true(run_until(&res->done, HANG_GUARD_S));
        g_assert_cmpint(res->r, ==, 0);
        run_for(2); /* let it boot to its shell */
        t0 = g_get_monotonic_time();
        g_assert_cmpint(do_stop("stubborn", false, res), ==, 0);
        took = (g_get_monotonic_time() - t0) / 1e6;
        g_printerr("stubborn guest destroyed after %.1f s\n", took);
        g_assert_cmpfloat(took, >=, 2.9);
        g_assert_cmpfloat(took, <, 15);
        g_assert_cmpint(state_log_find(&slog, "stubborn stopped destroyed"), >=, 0);
}

static void test_real(void) {
        Result res = {};
        g_autofree char *disp = NULL, *disp2 = NULL;
        pid_t net_pid, a_pid, pid;
        unsigned n;

        write_guests();
        fed = federation_open();

        /* Boot: the netvm first, then persona-a. */
        n = next_boot("persona-a");
        g_assert_cmpint(do_switch("persona-a", &res), ==, 0);
        g_assert_cmpint(federation_vm_state(fed, "netvm"), ==, FEDERATION_VM_RUNNING);
        net_pid = qemu_pid("netvm");
        g_assert_cmpint(net_pid, >, 0);
        wait_guest_up("persona-a", n);
        /* The agent channel reaches the broker's socket (QEMU connected to us). */
        wait_channel_ready("persona-a", 1);
        wait_channel_ready("netvm", 1);

        /* a → b → a: graceful ACPI shutdowns, never both up (checked at every event). */
        n = next_boot("persona-b");
        g_assert_cmpint(do_switch("persona-b", &res), ==, 0);
        g_assert_cmpint(state_log_find(&slog, "persona-a stopped shutdown"), >=, 0);
        g_assert_cmpstr(federation_active_persona(fed), ==, "persona-b");
        wait_guest_up("persona-b", n);
        n = next_boot("persona-a");
        g_assert_cmpint(do_switch("persona-a", &res), ==, 0);
        g_assert_cmpint(state_log_find(&slog, "persona-b stopped shutdown"), >=, 0);
        g_assert_cmpint(qemu_pid("netvm"), ==, net_pid);
        wait_guest_up("persona-a", n);
        wait_channel_ready("persona-a", 2); /* a new boot, a new connection */
        a_pid = qemu_pid("persona-a");
        g_assert_cmpint(a_pid, >, 0);

        /* The broker restarts: everything adopted as it is. */
        g_clear_pointer(&fed, federation_free);
        fed = federation_open();
        g_assert_cmpint(federation_vm_state(fed, "netvm"), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpint(federation_vm_state(fed, "persona-a"), ==, FEDERATION_VM_RUNNING);
        {
                FederationCallbacks cb = result_callbacks(&res);
                g_assert_cmpint(federation_resume(fed, &cb, NULL), ==, 0);
                g_assert_true(run_until(&res.done, HANG_GUARD_S));
        }
        g_assert_cmpint(qemu_pid("netvm"), ==, net_pid);
        g_assert_cmpint(qemu_pid("persona-a"), ==, a_pid);

        /* QEMU failing to start the target: rolled back to persona-a. */
        g_assert_cmpint(do_switch("persona-c", &res), <, 0);
        g_assert_nonnull(strstr(res.message, "cannot start persona-c"));
        g_assert_nonnull(strstr(res.message, "rolled back to persona-a"));
        g_assert_cmpstr(federation_active_persona(fed), ==, "persona-a");
        g_assert_cmpint(qemu_pid("netvm"), ==, net_pid);

        crash_persona(&res);

        /* Managed save of a persona without devices, then restore. */
        n = next_boot("persona-s");
        g_assert_cmpint(do_switch("persona-s", &res), ==, 0);
        wait_guest_up("persona-s", n);
        n = next_boot("persona-b");
        g_assert_cmpint(do_switch("persona-b", &res), ==, 0);
        g_assert_cmpint(federation_vm_state(fed, "persona-s"), ==, FEDERATION_VM_SAVED);
        g_assert_true(result_has_progress(&res, "saving persona-s"));
        wait_guest_up("persona-b", n);
        g_assert_cmpint(do_switch("persona-s", &res), ==, 0);
        g_assert_true(result_has_progress(&res, "restoring persona-s from its saved state"));
        g_assert_cmpint(state_log_find(&slog, "persona-s running restored"), >=, 0);
        g_assert_cmpint(qemu_pid("netvm"), ==, net_pid);

        stop_stubborn(&res);

        /* Disposables: overlay while running, gone after a stop. */
        disp = do_disposable(&res);
        g_assert_true(overlay_exists(disp));
        g_assert_cmpint(do_stop(disp, true, &res), ==, 0);
        g_assert_false(overlay_exists(disp));
        g_assert_cmpint(federation_vm_state(fed, disp), ==, -ENOENT);
        /* ... and after it dies while the broker is down. */
        disp2 = do_disposable(&res);
        g_assert_true(overlay_exists(disp2));
        pid = qemu_pid(disp2);
        g_clear_pointer(&fed, federation_free);
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
                g_usleep(50000);
        g_usleep(500000); /* libvirtd reaps the domain */
        fed = federation_open();
        g_assert_false(overlay_exists(disp2));
        g_assert_cmpint(qemu_pid("netvm"), ==, net_pid);

        g_assert_cmpuint(slog.violations, ==, 0);
        g_clear_pointer(&fed, federation_free);
        g_ptr_array_unref(res.progress);
        g_free(res.message);
}

int main(int argc, char *argv[]) {
        int r;

        g_test_init(&argc, &argv, NULL);
        if (getenv("VMFED_TEST_DEBUG"))
                log_set_max_level(LOG_DEBUG);
        guest_dir = g_getenv("VMFED_GUEST_DIR");
        prefix = g_getenv("VMFED_TEST_PREFIX");
        bridge = g_getenv("VMFED_TEST_BRIDGE");
        workdir = g_getenv("VMFED_TEST_WORKDIR");
        if (!guest_dir || !prefix || !bridge || !workdir) {
                g_printerr("run me from test-federation-real.sh\n");
                return 1;
        }
        config = g_build_filename(workdir, "etc", NULL);
        state = g_build_filename(workdir, "state", NULL);
        g_assert_cmpint(virInitialize(), ==, 0);
        g_assert_cmpint(virEventRegisterDefaultImpl(), ==, 0);
        conn = virConnectOpen("qemu:///system");
        g_assert_nonnull(conn);
        listeners = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, listener_free);
        g_test_add_func("/federation-real/switch-adopt-crash-disposables", test_real);
        r = g_test_run();
        g_hash_table_unref(listeners);
        virConnectClose(conn);
        state_log_clear(&slog);
        return r;
}
