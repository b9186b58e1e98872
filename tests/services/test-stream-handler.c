/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stream handlers (services/stream-handler.c, vmfed.services(5)): the
 * lookup (SERVICE+ARG before SERVICE, what is not an executable regular
 * file refused), the environment, the exit status, and a real start: two
 * pipes, no other fd, a session of its own, exactly the environment given.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "common/macro.h"
#include "services/stream-handler.h"

static char *dir;

static void put(const char *name, const char *text, mode_t mode) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        g_assert_true(g_file_set_contents(p, text, -1, NULL));
        g_assert_cmpint(chmod(p, mode), ==, 0);
}

static void expect_found(const char *service, const char *arg, const char *file) {
        g_autofree char *path = NULL, *why = NULL, *want = g_build_filename(dir, file, NULL);
        g_assert_cmpint(stream_handler_find(dir, service, arg, &path, &why), ==, 0);
        g_assert_cmpstr(path, ==, want);
        g_assert_null(why);
}

static void expect_refused(const char *service, const char *arg, int error, const char *needle) {
        g_autofree char *path = NULL, *why = NULL;
        g_assert_cmpint(stream_handler_find(dir, service, arg, &path, &why), ==, error);
        g_assert_null(path);
        g_assert_nonnull(strstr(why, needle));
}

static void test_find(void) {
        g_autofree char *sub = g_build_filename(dir, "t.Dir+y", NULL);
        g_autofree char *link = g_build_filename(dir, "t.Link", NULL);

        put("t.A", "#!/bin/sh\n", 0755);
        put("t.A+x", "#!/bin/sh\n", 0755);
        put("t.B", "#!/bin/sh\n", 0644);
        put("t.D", "#!/bin/sh\n", 0750);
        put("t.E+z", "#!/bin/sh\n", 0644);
        put("t.E", "#!/bin/sh\n", 0755);
        g_assert_cmpint(g_mkdir(sub, 0755), ==, 0);
        g_assert_cmpint(symlink("t.A", link), ==, 0);

        expect_found("t.A", "x", "t.A+x");  /* SERVICE+ARG first */
        expect_found("t.A", "", "t.A");     /* no argument: SERVICE */
        expect_found("t.A", NULL, "t.A");
        expect_found("t.A", "other", "t.A"); /* no SERVICE+ARG: SERVICE */
        expect_found("t.D", "q", "t.D");
        expect_found("t.Link", "", "t.Link"); /* a symlink to an executable file */
        expect_refused("t.B", "", -EACCES, "not an executable regular file");
        expect_refused("t.Dir", "y", -EACCES, "t.Dir+y is not an executable regular file");
        /* SERVICE+ARG there but not executable: refused, SERVICE is not tried instead. */
        expect_refused("t.E", "z", -EACCES, "t.E+z");
        expect_refused("t.None", "", -ENOENT, "No handler for t.None");
        expect_refused("t.None", "a1", -ENOENT, "t.None+a1");
}

static void test_env(void) {
        StreamUser u = { .name = (char *) "user", .home = (char *) "/home/user" };
        g_auto(GStrv) env = stream_handler_env(&u, "alice", "test.Env", "x1", 17);
        const char *want[] = {
                "VMFED_SOURCE=alice", "VMFED_SERVICE=test.Env", "VMFED_ARGUMENT=x1", "VMFED_STREAM=17",
                "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/user", "USER=user", "LOGNAME=user", NULL,
        };
        g_assert_cmpstrv(env, want);

        g_auto(GStrv) env2 = stream_handler_env(&u, "bob", "s", NULL, 1);
        g_assert_true(g_strv_contains((const char *const *) env2, "VMFED_ARGUMENT="));
}

static void test_status(void) {
        char *m = NULL;
        g_assert_cmpint(stream_handler_status(W_EXITCODE(0, 0), &m), ==, 0);
        g_assert_null(m);
        g_assert_cmpint(stream_handler_status(W_EXITCODE(3, 0), &m), ==, 3);
        g_assert_null(m);
        g_assert_cmpint(stream_handler_status(W_EXITCODE(255, 0), &m), ==, 255);
        g_assert_cmpint(stream_handler_status(W_EXITCODE(0, SIGKILL), &m), ==, 128 + SIGKILL);
        g_assert_cmpstr(m, ==, "killed by signal 9");
        g_clear_pointer(&m, g_free);
        g_assert_cmpint(stream_handler_status(W_STOPCODE(SIGSTOP), &m), ==, -1);
        g_assert_nonnull(m);
        g_free(m);
}

/* All of fd up to EOF. */
static char *slurp(int fd) {
        GString *s = g_string_new(NULL);
        char buf[4096];
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                g_assert_cmpint(poll(&p, 1, 10000), ==, 1);
                ssize_t k = read(fd, buf, sizeof buf);
                if (k < 0 && errno == EAGAIN)
                        continue;
                g_assert_cmpint(k, >=, 0);
                if (k == 0)
                        return g_string_free(s, FALSE);
                g_string_append_len(s, buf, k);
        }
}

static int reap(GPid pid) {
        int st;
        g_assert_cmpint(waitpid(pid, &st, 0), ==, pid);
        return st;
}

typedef struct Proc {
        GPid pid;
        int stdin_fd, stdout_fd; /* our ends */
} Proc;

/* The agent's way (services/stream-target.c): the pipes, then the handler on them. */
static int spawn(const char *path, char **env, const StreamUser *u, Proc *ret, char **why) {
        int ours[2], child[2];
        int r = stream_handler_pipes(ours, child);
        g_assert_cmpint(r, ==, 0);
        r = stream_handler_spawn_on(path, env, u, child, &ret->pid, why);
        close(child[0]);
        close(child[1]);
        if (r < 0) {
                close(ours[0]);
                close(ours[1]);
                return r;
        }
        ret->stdin_fd = ours[0];
        ret->stdout_fd = ours[1];
        return 0;
}

/* As root: the service user's uid, gid and groups in the child; HOME missing: it runs in /. */
static void test_spawn_as_user(void) {
        g_autofree char *path = g_build_filename(dir, "t.Id", NULL), *why = NULL;
        StreamUser u = {};
        Proc proc;

        if (geteuid() != 0 || !getpwnam("nobody")) {
                g_test_skip("needs root and the user nobody");
                return;
        }
        put("t.Id", "#!/bin/sh\necho \"$(id -u) $(id -g) $(pwd) $HOME $USER\"\n", 0755);
        g_assert_cmpint(stream_user_resolve("nobody", &u, &why), ==, 0);
        g_assert_true(u.change);
        g_auto(GStrv) env = stream_handler_env(&u, "alice", "t.Id", "", 4);
        g_assert_cmpint(spawn(path, env, &u, &proc, &why), ==, 0);
        close(proc.stdin_fd);
        g_autofree char *out = slurp(proc.stdout_fd);
        close(proc.stdout_fd);
        g_assert_cmpint(reap(proc.pid), ==, 0);
        struct passwd *pw = getpwnam("nobody");
        g_autofree char *cwd = g_file_test(pw->pw_dir, G_FILE_TEST_IS_DIR) ? g_strdup(pw->pw_dir) : g_strdup("/");
        g_autofree char *want = g_strdup_printf("%u %u %s %s nobody\n", (unsigned) pw->pw_uid, (unsigned) pw->pw_gid,
                                                cwd, pw->pw_dir);
        g_assert_cmpstr(out, ==, want);
        g_assert_cmpint(stream_user_resolve("no-such-user-here", &u, &why), <, 0);
        stream_user_done(&u);
}

static void test_spawn(void) {
        g_autofree char *path = g_build_filename(dir, "t.Spawn", NULL);
        g_autofree char *why = NULL;
        StreamUser u = {};
        Proc proc;
        int extra = open("/dev/null", O_RDONLY); /* not inherited: no fd but the pipes and stderr */

        put("t.Spawn", "#!/bin/sh\nread line\necho \"got:$line\"\nexec /bin/ls /proc/self/fd\n", 0755);
        g_assert_cmpint(stream_user_resolve(NULL, &u, &why), ==, 0);
        g_assert_false(u.change);
        g_auto(GStrv) env = stream_handler_env(&u, "alice", "t.Spawn", "", 3);
        g_assert_cmpint(spawn(path, env, &u, &proc, &why), ==, 0);

        /* Its own session and process group (an abort kills the group). */
        g_autofree char *statf = g_strdup_printf("/proc/%d/stat", (int) proc.pid), *stat = NULL;
        g_assert_true(g_file_get_contents(statf, &stat, NULL, NULL));
        int pgrp = -1, session = -1;
        g_assert_cmpint(sscanf(strrchr(stat, ')') + 2, "%*c %*d %d %d", &pgrp, &session), ==, 2);
        g_assert_cmpint(pgrp, ==, proc.pid);
        g_assert_cmpint(session, ==, proc.pid);

        g_assert_cmpint(write(proc.stdin_fd, "hi\n", 3), ==, 3);
        close(proc.stdin_fd);
        g_autofree char *out = slurp(proc.stdout_fd);
        g_assert_cmpstr(out, ==, "got:hi\n0\n1\n2\n3\n"); /* 3: the directory ls reads */
        close(proc.stdout_fd);
        g_assert_cmpint(reap(proc.pid), ==, 0);

        g_free(path);
        path = g_build_filename(dir, "t.Env", NULL); /* env itself: a shell would add PWD */
        g_assert_cmpint(symlink("/usr/bin/env", path), ==, 0);
        g_setenv("VMFED_TEST_SECRET", "must not pass", TRUE);
        g_assert_cmpint(spawn(path, env, &u, &proc, &why), ==, 0);
        close(proc.stdin_fd);
        g_autofree char *envs = slurp(proc.stdout_fd);
        close(proc.stdout_fd);
        g_assert_cmpint(reap(proc.pid), ==, 0);
        g_auto(GStrv) lines = g_strsplit(envs, "\n", -1);
        g_assert_cmpuint(g_strv_length(lines), ==, g_strv_length(env) + 1); /* the last line is empty */
        for (char **e = env; *e; e++)
                g_assert_true(g_strv_contains((const char *const *) lines, *e));

        g_clear_pointer(&why, g_free);
        put("t.NoExec", "#!/bin/sh\n", 0644);
        g_free(path);
        path = g_build_filename(dir, "t.NoExec", NULL);
        g_assert_cmpint(spawn(path, env, &u, &proc, &why), <, 0);
        g_assert_nonnull(strstr(why, "t.NoExec"));
        close(extra);
        stream_user_done(&u);
}

int main(int argc, char **argv) {
        int r;
        g_test_init(&argc, &argv, NULL);
        dir = g_dir_make_tmp("vmfed-test-handler-XXXXXX", NULL);
        g_assert_nonnull(dir);
        g_assert_cmpint(chmod(dir, 0755), ==, 0); /* the service user runs its handlers from here */
        g_test_add_func("/stream-handler/find", test_find);
        g_test_add_func("/stream-handler/env", test_env);
        g_test_add_func("/stream-handler/status", test_status);
        g_test_add_func("/stream-handler/spawn", test_spawn);
        g_test_add_func("/stream-handler/spawn-as-user", test_spawn_as_user);
        r = g_test_run();
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        if (system(cmd) != 0)
                r = 1;
        g_free(dir);
        return r;
}
