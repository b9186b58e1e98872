/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "common/bulk-memory.h"

#include <errno.h>
#include <malloc.h>

int bulk_memory_tune(void) {
        int ok = mallopt(M_MMAP_MAX, 0);
        ok &= mallopt(M_TRIM_THRESHOLD, (int) BULK_MEMORY_KEEP);
        return ok ? 0 : -EINVAL;
}

static gboolean trim_tick(gpointer userdata) {
        struct mallinfo2 mi = mallinfo2();
        /* What is free in the heap beyond what a burst of transfers reuses goes back. */
        if (mi.fordblks > BULK_MEMORY_KEEP / 4)
                (void) malloc_trim(0);
        return G_SOURCE_CONTINUE;
}

guint bulk_memory_trim_when_idle(void) {
        return g_timeout_add_seconds(BULK_MEMORY_TRIM_SECONDS, trim_tick, NULL);
}
