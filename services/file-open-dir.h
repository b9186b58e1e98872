/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FileOpenDir: the directory a vmfed.OpenFile handler keeps its file in
 * while the viewer has it (docs/file-open.md).  BASE/open-XXXXXX, 0700,
 * locked (flock) for as long as its handler lives, removed with all in it
 * (a viewer's backup files too) when the handler is done.  A handler that
 * was killed (an aborted stream kills its process group) leaves its
 * directory unlocked: the next handler's file_open_dir_new() removes it.
 */
#pragma once

typedef struct FileOpenDir {
        int fd;        /* the directory, locked */
        char *path;
} FileOpenDir;

/* Sweep BASE's stale open-* directories, make and lock a new one (BASE made 0700 if missing). */
int file_open_dir_new(const char *base, FileOpenDir **ret);
/* Remove the directory and everything in it; NULL. */
FileOpenDir *file_open_dir_free(FileOpenDir *d);
