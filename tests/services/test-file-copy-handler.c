/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfed-file-copy-receive as the agent runs it: the stream on its stdin
 * and stdout (one socket), VMFED_SOURCE in its environment, HOME a fresh
 * directory.  file_copy_send() on the other end.  argv[1]: the handler.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "tests/services/file-copy-fixture.h"

static const char *handler;

typedef struct Handled {
        int tx_r;
        int exit_status;
        GError *tx_error;
        FileCopyStats tx;
} Handled;

/* Send paths to the handler run with env (NULL-terminated KEY=VALUE) and extra arguments. */
static void run_handler(char **paths, const char *home, const char *source, const char *extra_env, const char *arg,
                        Handled *ret) {
        g_auto(GStrv) env = g_environ_setenv(g_get_environ(), "HOME", home, TRUE);
        g_autoptr(GError) e = NULL;
        const char *argv[] = { handler, arg, NULL };
        GPid pid;
        int sv[2], status;

        env = source ? g_environ_setenv(env, "VMFED_SOURCE", source, TRUE) : g_environ_unsetenv(env, "VMFED_SOURCE");
        if (extra_env) {
                g_auto(GStrv) kv = g_strsplit(extra_env, "=", 2);
                env = g_environ_setenv(env, kv[0], kv[1], TRUE);
        }
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
        g_assert_true(g_spawn_async_with_fds(NULL, (char **) argv, env, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
                                             sv[1], sv[1], -1, &e));
        g_assert_no_error(e);
        close(sv[1]);
        *ret = (Handled) {};
        ret->tx_r = file_copy_send(sv[0], paths, &ret->tx, &ret->tx_error);
        close(sv[0]);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status));
        ret->exit_status = WEXITSTATUS(status);
}

static void make_src(const char *src) {
        g_autofree char *dir = g_build_filename(src, "docs", NULL), *f = g_build_filename(dir, "a.txt", NULL);
        g_autofree char *big = g_build_filename(dir, "big", NULL);

        g_assert_cmpint(mkdir(dir, 0755), ==, 0);
        tree_write(f, "hello\n", 6, 0644);
        tree_write_pattern(big, 4096, 3, 0600);
}

static void test_receive(void) {
        g_autofree char *src = tree_tmpdir(), *home = tree_tmpdir();
        g_autofree char *docs = g_build_filename(src, "docs", NULL);
        g_autofree char *incoming = g_build_filename(home, "Incoming", NULL);
        g_autofree char *got = g_build_filename(incoming, "alice", "docs", NULL);
        char *paths[] = { docs, NULL };
        struct stat st;
        Handled h;

        make_src(src);
        run_handler(paths, home, "alice", NULL, NULL, &h);
        g_assert_no_error(h.tx_error);
        g_assert_cmpint(h.exit_status, ==, 0);
        tree_assert_equal(docs, got, 0755);
        g_assert_cmpint(stat(incoming, &st), ==, 0);
        g_assert_cmphex(st.st_mode & 07777, ==, 0700);
        g_autofree char *alice = g_build_filename(incoming, "alice", NULL);
        g_assert_cmpint(stat(alice, &st), ==, 0);
        g_assert_cmphex(st.st_mode & 07777, ==, 0700);

        /* again: "docs (1)", the first copy untouched */
        run_handler(paths, home, "alice", NULL, NULL, &h);
        g_assert_cmpint(h.exit_status, ==, 0);
        g_autofree char *list = tree_list(alice);
        g_assert_cmpstr(list, ==, "docs docs (1)");
        tree_rm(src);
        tree_rm(home);
}

static void assert_refused(Handled *h, const char *why) {
        g_assert_cmpint(h->exit_status, ==, 1);
        g_assert_cmpint(h->tx_r, ==, -EREMOTEIO);
        if (!strstr(h->tx_error->message, why))
                g_error("\"%s\" does not say \"%s\"", h->tx_error->message, why);
        g_clear_error(&h->tx_error);
}

static void test_refusals(void) {
        g_autofree char *src = tree_tmpdir(), *home = tree_tmpdir();
        g_autofree char *docs = g_build_filename(src, "docs", NULL);
        g_autofree char *incoming = g_build_filename(home, "Incoming", NULL);
        char *paths[] = { docs, NULL };
        Handled h;

        make_src(src);
        run_handler(paths, home, "../etc", NULL, NULL, &h);
        assert_refused(&h, "VMFED_SOURCE is invalid");
        run_handler(paths, home, NULL, NULL, NULL, &h);
        assert_refused(&h, "VMFED_SOURCE is not set");
        run_handler(paths, home, "@host", NULL, NULL, &h);
        assert_refused(&h, "VMFED_SOURCE is invalid");
        g_assert_false(g_file_test(incoming, G_FILE_TEST_EXISTS));

        run_handler(paths, home, "bob", NULL, "--max-bytes=1K", &h);
        assert_refused(&h, "\"docs/big\" (4096 bytes) is over the limit: 1018 of 1024 bytes were left");
        run_handler(paths, home, "bob", "VMFED_FILE_COPY_MAX_BYTES=4100", NULL, &h);
        assert_refused(&h, "of 4100 bytes were left");
        run_handler(paths, home, "bob", "VMFED_FILE_COPY_MAX_BYTES=4102", NULL, &h);
        g_assert_no_error(h.tx_error);
        g_assert_cmpint(h.exit_status, ==, 0);

        /* Incoming/SOURCE must be a directory of its own, not a symlink */
        g_autofree char *carol = g_build_filename(incoming, "carol", NULL);
        g_assert_cmpint(symlink("/tmp", carol), ==, 0);
        run_handler(paths, home, "carol", NULL, NULL, &h);
        assert_refused(&h, "carol (it must be a directory, not a symlink)");
        tree_rm(src);
        tree_rm(home);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_assert_cmpint(argc, ==, 2);
        handler = argv[1];
        umask(022);
        g_test_add_func("/file-copy-handler/receive", test_receive);
        g_test_add_func("/file-copy-handler/refusals", test_refusals);
        return g_test_run();
}
