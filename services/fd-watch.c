/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/fd-watch.h"

typedef struct WatchSource {
        GSource source;
        FdWatch *watch; /* NULL once freed (the source may outlive it inside a dispatch) */
} WatchSource;

struct FdWatch {
        WatchSource *source;
        int fd;
        gpointer tag; /* NULL: not polled */
        GIOCondition events;
        FdWatchFn fn;
        void *userdata;
};

static gboolean watch_dispatch(GSource *source, GSourceFunc callback, gpointer data) {
        WatchSource *ws = (WatchSource *) source;
        FdWatch *w = ws->watch;

        if (!w || !w->tag)
                return G_SOURCE_CONTINUE;
        GIOCondition rev = g_source_query_unix_fd(source, w->tag);
        if (rev)
                w->fn(w->userdata, rev); /* may free w: nothing of it is touched after this */
        return G_SOURCE_CONTINUE;
}

static GSourceFuncs watch_funcs = {
        .dispatch = watch_dispatch,
};

FdWatch *fd_watch_new(int fd, FdWatchFn fn, void *userdata) {
        FdWatch *w = g_new0(FdWatch, 1);
        w->fd = fd;
        w->fn = fn;
        w->userdata = userdata;
        w->source = (WatchSource *) g_source_new(&watch_funcs, sizeof(WatchSource));
        w->source->watch = w;
        g_source_set_name(&w->source->source, "vmfed fd watch");
        g_source_attach(&w->source->source, NULL);
        return w;
}

void fd_watch_set(FdWatch *w, GIOCondition events) {
        if (!w || events == w->events)
                return;
        if (events == 0) {
                g_source_remove_unix_fd(&w->source->source, w->tag);
                w->tag = NULL;
        } else if (!w->tag)
                w->tag = g_source_add_unix_fd(&w->source->source, w->fd, events);
        else
                g_source_modify_unix_fd(&w->source->source, w->tag, events);
        w->events = events;
}

GIOCondition fd_watch_get(const FdWatch *w) {
        return w ? w->events : 0;
}

FdWatch *fd_watch_free(FdWatch *w) {
        if (!w)
                return NULL;
        w->source->watch = NULL;
        g_source_destroy(&w->source->source);
        g_source_unref(&w->source->source);
        g_free(w);
        return NULL;
}
