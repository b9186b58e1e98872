/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory for bulk transfers.  A clipboard payload or a file for OpenFile
 * crosses each process as one D-Bus message of up to 64 MiB, and sd-bus
 * grows its buffers by doubling: with glibc's defaults every such buffer
 * above the mmap threshold is a fresh mapping whose pages fault one by one
 * and are unmapped when freed.  Page faults are expensive in the nested VMs
 * vmfed runs in: a 16 MiB paste took ~150 ms of which the copies were a few.
 * So the processes that carry payloads take all memory from the heap
 * (M_MMAP_MAX 0) and keep up to BULK_MEMORY_KEEP of freed memory there
 * (M_TRIM_THRESHOLD), and give what stays free back when idle: every
 * BULK_MEMORY_TRIM_SECONDS a timer calls malloc_trim() when more than a
 * quarter of BULK_MEMORY_KEEP is free.  Measured: the paste
 * benchmark, services-paste-16m (tests/services/bench-services.c).
 */
#pragma once

#include <glib.h>

#define BULK_MEMORY_KEEP (64u << 20)
#define BULK_MEMORY_TRIM_SECONDS 20

/* Before the first big allocation.  0, or -EINVAL when glibc refused a setting. */
int bulk_memory_tune(void);

/* The idle trimmer on the thread-default main context; returns its source id. */
guint bulk_memory_trim_when_idle(void);
