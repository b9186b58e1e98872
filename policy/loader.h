/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading a policy directory: which files, in which order, !include and
 * !include-dir, in-memory overrides, include cycles.  Every file's text goes
 * to the parser; every problem becomes a diagnostic in the snapshot.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy/policy.h"

#define LOADER_MAX_DEPTH 16
#define LOADER_MAX_FILE_SIZE (16u * 1024u * 1024u)
/* Includes may read a file more than once (a diamond of includes): bound the total work. */
#define LOADER_MAX_LOADS 4096u
#define LOADER_MAX_TOTAL_BYTES (64ull * 1024u * 1024u)

typedef struct LoaderFrame {
        const char *path; /* relative to the policy directory */
        dev_t dev;        /* 0/0 for in-memory text */
        ino_t ino;
} LoaderFrame;

typedef struct Loader {
        PolicySnapshot *snapshot;
        const char *dir; /* NULL when loading one string: includes are refused */
        const PolicyOverride *overrides;
        size_t n_overrides;
        LoaderFrame stack[LOADER_MAX_DEPTH];
        size_t depth;
        size_t n_loads;
        unsigned long long total_bytes;
        bool over_budget; /* reported once */
} Loader;

/* A file's content in the legacy (!include-service) format is parsed for this service. */
typedef struct LegacyService {
        uint32_t service; /* interned, 0 for '*' */
        uint32_t arg;     /* interned or RULE_ARG_ANY */
} LegacyService;

/* Called by the parser on directives.  (file, line, column) is where the directive stands. */
void loader_include(Loader *l, const char *file, unsigned line, unsigned column, const char *untrusted_path,
                    size_t len, const LegacyService *legacy);
/*
 * Load one in-memory text that may contain NUL bytes (for the fuzzer and
 * tests); legacy != NULL parses it in the !include-service format.
 */
int loader_load_buffer(const char *name, const char *untrusted_data, size_t size, const LegacyService *legacy,
                       PolicySnapshot **ret);

void loader_include_dir(Loader *l, const char *file, unsigned line, unsigned column, const char *untrusted_path,
                        size_t len);
