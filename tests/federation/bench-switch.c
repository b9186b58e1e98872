/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: the broker-side time of a persona switch — wall time minus
 * time inside libvirt calls minus waiting (for events, worker threads, the
 * guest) — as measured by federation_last_switch_overhead_ns().  Runs on
 * test:///default (libvirt's own work is then tiny but excluded anyway),
 * both switch paths: shutdown (passthrough personas) and managed save.
 * Prints one JSON line; fails when the median is over the 50 ms target.
 */
#include <errno.h>
#include <libvirt/libvirt.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "fed-test-util.h"

#define N_SWITCHES 40
#define TARGET_MS 50.0

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char *argv[]) {
        g_autofree char *tmp = g_dir_make_tmp("vmfed-bench-XXXXXX", NULL);
        g_autofree char *config = g_build_filename(tmp, "etc", NULL), *state = g_build_filename(tmp, "state", NULL);
        g_autofree char *kernel = g_build_filename(tmp, "vmlinuz", NULL), *cmd = NULL;
        g_autofree char *prefix = g_strdup_printf("vmfed-bench%d-", (int) getpid());
        const char *personas[] = { "rivendale", "gondor", "shire", "bree" };
        double overhead[N_SWITCHES], wall[N_SWITCHES];
        g_autoptr(GPtrArray) errors = NULL;
        virConnectPtr conn;
        Federation *f = NULL;
        Result res = {};
        virDomainPtr *doms = NULL;
        int n;

        g_assert_cmpint(virInitialize(), ==, 0);
        g_assert_cmpint(virEventRegisterDefaultImpl(), ==, 0);
        conn = virConnectOpen("test:///default");
        g_assert_nonnull(conn);
        write_text(kernel, "kernel\n");
        for (size_t i = 0; i < G_N_ELEMENTS(personas); i++) {
                g_autofree char *t = g_strdup_printf(
                        "[VM]\nRole=persona\nMemory=256M\nKernel=%s\n%s", kernel,
                        i < 2 ? "[Passthrough]\nDevices=0000:01:00.0;0000:01:00.1\n" : "");
                write_vm(config, personas[i], t);
        }
        {
                g_autofree char *t = g_strdup_printf("[VM]\nRole=service\nMemory=256M\nKernel=%s\nDefaultNetVM=true\n", kernel);
                write_vm(config, "netvm", t);
        }
        {
                FederationOptions o = { .config_dir = config, .state_dir = state, .domain_prefix = prefix,
                                        .bridge = "vmfedbench0", .force_tcg = true, .fake_passthrough = true };
                g_assert_cmpint(federation_new(conn, &o, &f, &errors), ==, 0);
        }
        log_set_max_level(LOG_WARNING);

        for (int i = -1; i < N_SWITCHES; i++) {
                /* rivendale ⇄ gondor (shutdown), then shire ⇄ bree (managed save), alternating. */
                const char *to = personas[i < 0 ? 0 : (i / 2) % 2 == 0 ? (i % 2 ? 0 : 1) : (i % 2 ? 2 : 3)];
                FederationCallbacks cb = result_callbacks(&res);
                gint64 t0 = g_get_monotonic_time();
                g_assert_cmpint(federation_switch_persona(f, to, &cb, NULL), ==, 0);
                g_assert_true(run_until(&res.done, 10));
                g_assert_cmpint(res.r, ==, 0);
                if (i < 0)
                        continue; /* warm-up: boots the netvm */
                wall[i] = (g_get_monotonic_time() - t0) / 1e3;
                overhead[i] = federation_last_switch_overhead_ns(f) / 1e6;
        }
        qsort(overhead, N_SWITCHES, sizeof(double), cmp_double);
        qsort(wall, N_SWITCHES, sizeof(double), cmp_double);
        printf("{\"benchmark\":\"federation-switch-broker-overhead\",\"driver\":\"test:///default\","
               "\"switches\":%d,\"median_ms\":%.3f,\"p95_ms\":%.3f,\"max_ms\":%.3f,\"wall_median_ms\":%.3f,"
               "\"target_ms\":%.0f,\"pass\":%s}\n",
               N_SWITCHES, overhead[N_SWITCHES / 2], overhead[N_SWITCHES * 95 / 100], overhead[N_SWITCHES - 1],
               wall[N_SWITCHES / 2], TARGET_MS, overhead[N_SWITCHES / 2] < TARGET_MS ? "true" : "false");

        federation_free(f);
        n = virConnectListAllDomains(conn, &doms, 0);
        for (int i = 0; i < n; i++) {
                if (g_str_has_prefix(virDomainGetName(doms[i]), prefix)) {
                        if (virDomainIsActive(doms[i]) == 1)
                                (void) virDomainDestroy(doms[i]);
                        (void) virDomainUndefineFlags(doms[i], VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        virConnectClose(conn);
        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        if (system(cmd) != 0)
                return 1;
        g_ptr_array_unref(res.progress);
        g_free(res.message);
        return overhead[N_SWITCHES / 2] < TARGET_MS ? 0 : 1;
}
