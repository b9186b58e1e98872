/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Time of generation_record() for a federation of 20 VM files and 20 policy
 * files, one file changed per record (what AddVM or Policy.ReplaceFile
 * costs the main loop), on the file system of TMPDIR (fsyncs included).
 * Also the bytes all kept generations hold (hard links counted once).  One
 * JSON line.
 */
#include <stdlib.h>
#include <sys/stat.h>

#include "common/log.h"
#include "fed-test-util.h"
#include "federation/generation.h"

#define N_VMS 20
#define N_POLICIES 20
#define N_RECORDS 60
#define TARGET_MS 10.0 /* full copies took 18-22 ms here; hard links 3.3-3.5 ms */

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* Bytes of distinct inodes under dir (hard links counted once). */
static uint64_t tree_bytes(const char *dir, GHashTable *seen) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *n;
        uint64_t sum = 0;

        while (d && (n = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(dir, n, NULL);
                struct stat st;
                if (lstat(p, &st) < 0)
                        continue;
                if (S_ISDIR(st.st_mode))
                        sum += tree_bytes(p, seen);
                else if (S_ISREG(st.st_mode) && !g_hash_table_contains(seen, GUINT_TO_POINTER(st.st_ino))) {
                        g_hash_table_add(seen, GUINT_TO_POINTER(st.st_ino));
                        sum += st.st_size;
                }
        }
        return sum;
}

static void write_policy(const char *config, int i, int version) {
        g_autofree char *p = g_strdup_printf("%s/policy.d/%02d-bench.policy", config, i);
        g_autoptr(GString) s = g_string_new(NULL);
        g_string_append_printf(s, "# version %d\n", version);
        for (int l = 0; l < 40; l++)
                g_string_append_printf(s, "vmfed.OpenURL+x%d vm%02d @dispvm allow\n", l, i);
        write_text(p, s->str);
}

int main(void) {
        g_autofree char *tmp = g_dir_make_tmp("vmfed-bench-gen-XXXXXX", NULL);
        g_autofree char *config = g_build_filename(tmp, "etc", NULL), *state = g_build_filename(tmp, "state", NULL);
        g_autofree char *gens = g_build_filename(state, "generations", NULL), *cmd = NULL;
        g_autoptr(GPtrArray) list = NULL;
        g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
        double ms[N_RECORDS], unchanged_ms;
        uint64_t n = 0, bytes;
        gint64 t0;

        log_set_max_level(LOG_WARNING);
        for (int i = 0; i < N_VMS; i++) {
                g_autofree char *name = g_strdup_printf("vm%02d", i);
                g_autofree char *text = g_strdup_printf("[VM]\nRole=app\nMemory=512M\nNetVM=netvm\n"
                                                        "# padding %0800d\n", i);
                write_vm(config, name, text);
        }
        for (int i = 0; i < N_POLICIES; i++)
                write_policy(config, i, 0);
        g_assert_cmpint(generation_record(config, state, "baseline", &n), ==, GENERATION_RECORDED);

        for (int k = 0; k < N_RECORDS; k++) {
                write_policy(config, k % N_POLICIES, k + 1); /* one file changed */
                t0 = g_get_monotonic_time();
                g_assert_cmpint(generation_record(config, state, "bench", &n), ==, GENERATION_RECORDED);
                ms[k] = (g_get_monotonic_time() - t0) / 1e3;
        }
        t0 = g_get_monotonic_time();
        g_assert_cmpint(generation_record(config, state, "unchanged", &n), ==, GENERATION_UNCHANGED);
        unchanged_ms = (g_get_monotonic_time() - t0) / 1e3;
        bytes = tree_bytes(gens, seen);
        g_assert_cmpint(generation_list(state, &list), ==, 0);

        qsort(ms, N_RECORDS, sizeof(double), cmp_double);
        printf("{\"benchmark\":\"federation-generation-record\",\"vm_files\":%d,\"policy_files\":%d,"
               "\"records\":%d,\"median_ms\":%.3f,\"p95_ms\":%.3f,\"max_ms\":%.3f,\"unchanged_ms\":%.3f,"
               "\"generations_kept\":%" G_GUINT64_FORMAT ",\"store_bytes\":%" G_GUINT64_FORMAT
               ",\"target_ms\":%.0f,\"pass\":%s}\n",
               N_VMS, N_POLICIES, N_RECORDS, ms[N_RECORDS / 2], ms[N_RECORDS * 95 / 100], ms[N_RECORDS - 1],
               unchanged_ms, (uint64_t) list->len, bytes, TARGET_MS, ms[N_RECORDS / 2] < TARGET_MS ? "true" : "false");

        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        if (system(cmd) != 0)
                return 1;
        return ms[N_RECORDS / 2] < TARGET_MS ? 0 : 1;
}
