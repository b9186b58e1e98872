/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common/bulk-memory: after bulk_memory_tune() a big buffer freed and taken
 * again reuses the same pages (no page fault per 4 KiB, as a fresh mapping
 * has).  Not in build-san/ (tests/common/meson.build): ASan's allocator
 * ignores mallopt().
 */
#include <glib.h>
#include <malloc.h>
#include <string.h>
#include <sys/resource.h>

#include "common/bulk-memory.h"

#define SIZE (24u << 20)

static long minor_faults(void) {
        struct rusage ru;
        g_assert_cmpint(getrusage(RUSAGE_SELF, &ru), ==, 0);
        return ru.ru_minflt;
}

/* Faults of touching a fresh SIZE buffer after one of the same size was freed. */
static long faults_of_second_buffer(void) {
        char *a = g_malloc(SIZE);
        memset(a, 1, SIZE);
        g_free(a);
        long before = minor_faults();
        char *b = g_malloc(SIZE);
        memset(b, 2, SIZE);
        long faults = minor_faults() - before;
        g_free(b);
        return faults;
}

static void test_reuse(void) {
        long pages = SIZE / 4096;
        long untuned = faults_of_second_buffer();
        g_assert_cmpint(bulk_memory_tune(), ==, 0);
        long tuned = faults_of_second_buffer();
        g_test_message("second %u MiB buffer: %ld page faults untuned, %ld tuned (%ld pages)", SIZE >> 20, untuned,
                       tuned, pages);
        g_assert_cmpint(untuned, >, pages / 2); /* glibc's default: a fresh mapping each time */
        g_assert_cmpint(tuned, <, pages / 20);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/bulk-memory/reuse", test_reuse);
        return g_test_run();
}
