/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/stream-handler.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"

int stream_handler_find(const char *dir, const char *service, const char *arg, char **ret_path, char **ret_why) {
        g_autofree char *with_arg = arg && *arg ? g_strdup_printf("%s/%s+%s", dir, service, arg) : NULL;
        g_autofree char *plain = g_strdup_printf("%s/%s", dir, service);
        const char *candidates[] = { with_arg, plain };

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                struct stat st;
                if (!candidates[i])
                        continue;
                if (stat(candidates[i], &st) < 0) {
                        if (errno == ENOENT || errno == ENOTDIR)
                                continue;
                        int r = -errno;
                        *ret_why = g_strdup_printf("Cannot look at the handler %s: %s", candidates[i], strerror(-r));
                        return r;
                }
                if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
                        *ret_why = g_strdup_printf("The handler %s is not an executable regular file; it is not run.",
                                                   candidates[i]);
                        return -EACCES;
                }
                *ret_path = g_strdup(candidates[i]);
                return 0;
        }
        if (with_arg)
                *ret_why = g_strdup_printf("No handler for %s+%s in this VM (neither %s+%s nor %s in %s).", service, arg,
                                           service, arg, service, dir);
        else
                *ret_why = g_strdup_printf("No handler for %s in this VM (no %s in %s).", service, service, dir);
        return -ENOENT;
}

static int user_groups(StreamUser *u) {
        int n = 32;
        for (int tries = 0; tries < 4; tries++) {
                g_free(u->groups);
                u->groups = g_new(gid_t, n);
                int have = n;
                if (getgrouplist(u->name, u->gid, u->groups, &have) >= 0) {
                        u->n_groups = have;
                        return 0;
                }
                n = have > n ? have : n * 2;
        }
        return -E2BIG;
}

int stream_user_resolve(const char *name, StreamUser *ret, char **ret_why) {
        StreamUser u = {};
        bool root = geteuid() == 0;
        struct passwd *pw;

        errno = 0;
        pw = root && name ? getpwnam(name) : getpwuid(geteuid());
        if (!pw && root && name) {
                *ret_why = g_strdup_printf("The service user %s does not exist in this VM.", name);
                return errno > 0 ? -errno : -ESRCH;
        }
        u.uid = pw ? pw->pw_uid : geteuid();
        u.gid = pw ? pw->pw_gid : getegid();
        u.name = pw ? g_strdup(pw->pw_name) : g_strdup_printf("%u", (unsigned) u.uid);
        u.home = g_strdup(pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
        u.change = root && name;
        if (u.change && user_groups(&u) < 0) {
                *ret_why = g_strdup_printf("Cannot list the groups of the service user %s.", u.name);
                stream_user_done(&u);
                return -E2BIG;
        }
        *ret = u;
        return 0;
}

void stream_user_done(StreamUser *u) {
        g_free(u->name);
        g_free(u->home);
        g_free(u->groups);
        *u = (StreamUser) {};
}

char **stream_handler_env(const StreamUser *u, const char *source, const char *service, const char *arg,
                          uint64_t stream) {
        GPtrArray *e = g_ptr_array_new();
        g_ptr_array_add(e, g_strdup_printf("VMFED_SOURCE=%s", source));
        g_ptr_array_add(e, g_strdup_printf("VMFED_SERVICE=%s", service));
        g_ptr_array_add(e, g_strdup_printf("VMFED_ARGUMENT=%s", arg ? arg : ""));
        g_ptr_array_add(e, g_strdup_printf("VMFED_STREAM=%" PRIu64, stream));
        g_ptr_array_add(e, g_strdup("PATH=" STREAM_HANDLER_PATH));
        g_ptr_array_add(e, g_strdup_printf("HOME=%s", u->home));
        g_ptr_array_add(e, g_strdup_printf("USER=%s", u->name));
        g_ptr_array_add(e, g_strdup_printf("LOGNAME=%s", u->name));
        g_ptr_array_add(e, NULL);
        return (char **) g_ptr_array_free(e, FALSE);
}

int stream_handler_status(int wait_status, char **ret_message) {
        if (WIFEXITED(wait_status)) {
                *ret_message = NULL;
                return WEXITSTATUS(wait_status);
        }
        if (WIFSIGNALED(wait_status)) {
                *ret_message = g_strdup_printf("killed by signal %d", WTERMSIG(wait_status));
                return 128 + WTERMSIG(wait_status);
        }
        *ret_message = g_strdup("ended in an unknown way");
        return -1;
}

typedef struct ChildSetup {
        const StreamUser *user;
        int report_fd; /* errno of a failed step goes here; close-on-exec */
        pid_t agent;
} ChildSetup;

/* In the child, after fork: async-signal-safe calls only (the groups were looked up before). */
static void child_setup(gpointer userdata) {
        ChildSetup *c = userdata;
        int e = 0;

        if (setsid() < 0)
                e = errno;
        else if (c->user->change &&
                 (setgroups((size_t) c->user->n_groups, c->user->groups) < 0 || setgid(c->user->gid) < 0 ||
                  setuid(c->user->uid) < 0))
                e = errno;
        /* The agent killed (not exiting: then it kills the group itself) takes the handler along. */
        else if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                e = errno;
        else if (getppid() != c->agent)
                _exit(127); /* it died before that */
        if (e != 0) {
                ssize_t k = write(c->report_fd, &e, sizeof e);
                (void) k;
                _exit(127);
        }
}

static void reap_quietly(GPid pid, gint status, gpointer userdata) {
        g_spawn_close_pid(pid);
}

int stream_handler_pipes(int ours[2], int child[2]) {
        int in[2], out[2];

        if (pipe2(in, O_CLOEXEC) < 0)
                return negative_errno();
        if (pipe2(out, O_CLOEXEC) < 0) {
                int r = negative_errno();
                close(in[0]);
                close(in[1]);
                return r;
        }
        (void) fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
        (void) fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
        ours[0] = in[1];
        ours[1] = out[0];
        child[0] = in[0];
        child[1] = out[1];
        return 0;
}

int stream_handler_spawn_on(const char *path, char **envp, const StreamUser *u, const int child_fds[2],
                            GPid *ret_pid, char **ret_why) {
        const char *argv[] = { path, NULL };
        _cleanup_close_ int report_r = -EBADF, report_w = -EBADF;
        g_autoptr(GError) e = NULL;
        int fds[2], failed = 0;
        struct stat st;
        GPid pid;

        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
                return negative_errno();
        report_r = fds[0];
        report_w = fds[1];
        const char *cwd = stat(u->home, &st) == 0 && S_ISDIR(st.st_mode) ? u->home : "/";
        ChildSetup cs = { .user = u, .report_fd = report_w, .agent = getpid() };
        if (!g_spawn_async_with_pipes_and_fds(cwd, argv, (const char *const *) envp, G_SPAWN_DO_NOT_REAP_CHILD,
                                              child_setup, &cs, child_fds[0], child_fds[1], -1, NULL, NULL, 0, &pid,
                                              NULL, NULL, NULL, &e)) {
                *ret_why = g_strdup_printf("Cannot run %s: %s", path, e->message);
                return e->code == G_SPAWN_ERROR_NOENT ? -ENOENT : e->code == G_SPAWN_ERROR_ACCES ? -EACCES : -EIO;
        }
        report_w = safe_close(report_w);
        /* The child has exec'd or exited by now (GLib waited for that): its report, if any, is there. */
        if (read(report_r, &failed, sizeof failed) == (ssize_t) sizeof failed && failed > 0) {
                *ret_why = g_strdup_printf("Cannot run %s as %s: %s", path, u->name, strerror(failed));
                g_child_watch_add(pid, reap_quietly, NULL);
                return -failed;
        }
        *ret_pid = pid;
        return 0;
}
