/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FdWatch: one file descriptor on the default GLib main context, with the
 * conditions polled for changed as often as needed (the stream engine
 * switches between "wants to read" and "wants to write" per frame).
 *
 * Events 0 takes the fd out of the poll set altogether (nothing, not even
 * a hang-up, wakes the loop for it).  The callback may free the watch.
 * The watch never closes the fd.
 */
#pragma once

#include <glib.h>

typedef struct FdWatch FdWatch;
typedef void (*FdWatchFn)(void *userdata, GIOCondition revents);

FdWatch *fd_watch_new(int fd, FdWatchFn fn, void *userdata);
void fd_watch_set(FdWatch *w, GIOCondition events);
GIOCondition fd_watch_get(const FdWatch *w);
FdWatch *fd_watch_free(FdWatch *w);
