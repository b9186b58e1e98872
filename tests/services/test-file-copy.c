/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * file_copy_send() | file_copy_receive() over a socketpair: a real tree
 * arrives byte-identical with its modes (setuid & co. stripped, the
 * umask applied) and times; name clashes never overwrite; the sender's
 * refusals; a receiver that refuses mid-stream is heard by the sender;
 * the named-partial fallback; the removal of a move's sources.  Hostile
 * streams are in test-file-copy-hostile.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "services/file-copy-wire.h"
#include "tests/services/file-copy-fixture.h"

#define BIG (64u << 20)
static const mode_t mask = 0755; /* umask 022, set in main() */

static char *path_in(const char *dir, const char *name) {
        return g_build_filename(dir, name, NULL);
}

static void mkdir_mode(const char *root, const char *name, mode_t mode) {
        g_autofree char *p = path_in(root, name);
        g_assert_cmpint(mkdir(p, 0700), ==, 0);
        g_assert_cmpint(chmod(p, mode), ==, 0);
}

static void write_in(const char *root, const char *name, const char *data, mode_t mode) {
        g_autofree char *p = path_in(root, name);
        tree_write(p, data, strlen(data), mode);
}

static void symlink_in(const char *root, const char *name, const char *target) {
        g_autofree char *p = path_in(root, name);
        g_assert_cmpint(symlink(target, p), ==, 0);
}

/* root/top: nested directories, an empty file, 64 MiB, modes, symlinks; root/single.txt. */
static void make_tree(const char *root, bool big) {
        const struct timespec t[2] = { { 1700000000, 5 }, { 1600000000, 123456789 } };
        g_autofree char *top = path_in(root, "top");
        g_autofree char *deep = path_in(top, "a/b/c/deep.txt");

        mkdir_mode(root, "top", 0755);
        mkdir_mode(top, "a", 0755);
        mkdir_mode(top, "a/b", 0750);
        mkdir_mode(top, "a/b/c", 0700);
        mkdir_mode(top, "emptydir", 0777);
        mkdir_mode(top, "ro", 0755);
        write_in(top, "a/b/c/deep.txt", "deep\n", 0644);
        g_assert_cmpint(utimensat(AT_FDCWD, deep, t, 0), ==, 0);
        write_in(top, "empty", "", 0644);
        write_in(top, "exec.sh", "#!/bin/sh\necho hi\n", 0755);
        write_in(top, "suid", "setuid\n", 04755);
        write_in(top, "sgid-sticky", "setgid and sticky\n", 03777);
        write_in(top, "private", "0600\n", 0600);
        write_in(top, "\xc3\xbc" "n\xc3\xaf" "code \xe2\x9c\x93.txt", "utf-8\n", 0644);
        write_in(top, "ro/inner", "in a read-only directory\n", 0444);
        g_autofree char *ro = path_in(top, "ro");
        g_assert_cmpint(chmod(ro, 0555), ==, 0);
        symlink_in(top, "link", "a/b");
        symlink_in(top, "a/b/uplink", "../../empty");
        symlink_in(top, "a/dot", "./b/c/deep.txt");
        if (big) {
                g_autofree char *p = path_in(top, "big.bin");
                tree_write_pattern(p, BIG, 7, 0644);
        }
        mkdir_mode(top, "many", 0755); /* more than one batch of pending files */
        for (int i = 0; i < 70; i++) {
                g_autofree char *n = g_strdup_printf("many/%03d", i), *d = g_strdup_printf("file %d\n", i);
                write_in(top, n, d, 0644);
        }
        write_in(root, "single.txt", "a single file\n", 0640);
}

static void assert_no_partial(const char *dest) {
        g_autofree char *all = tree_list_all(dest);
        g_assert_null(strstr(all, FILE_COPY_PARTIAL_PREFIX));
}

static void test_roundtrip(void) {
        g_autofree char *src = tree_tmpdir(), *dest = tree_tmpdir();
        g_autofree char *top = path_in(src, "top"), *single = path_in(src, "single.txt");
        char *paths[] = { top, single, NULL };
        CopyRun c;

        make_tree(src, true);
        copy_run(paths, dest, FILE_COPY_DEFAULT_MAX_BYTES, &c);
        g_assert_no_error(c.tx_error);
        g_assert_no_error(c.rx_error);
        g_autofree char *list = tree_list(dest);
        g_assert_cmpstr(list, ==, "single.txt top");
        g_autofree char *dtop = path_in(dest, "top"), *dsingle = path_in(dest, "single.txt");
        tree_assert_equal(top, dtop, mask);
        tree_assert_equal(single, dsingle, mask);
        /* the setuid and setgid bits are gone, the rest kept */
        struct stat st;
        g_autofree char *suid = path_in(dtop, "suid"), *sgid = path_in(dtop, "sgid-sticky");
        g_assert_cmpint(stat(suid, &st), ==, 0);
        g_assert_cmphex(st.st_mode & 07777, ==, 0755);
        g_assert_cmpint(stat(sgid, &st), ==, 0);
        g_assert_cmphex(st.st_mode & 07777, ==, 0755);
        assert_no_partial(dest);

        g_assert_cmpuint(c.tx.files, ==, 80);
        g_assert_cmpuint(c.tx.dirs, ==, 7);
        g_assert_cmpuint(c.tx.symlinks, ==, 3);
        g_assert_cmpuint(c.tx.bytes, >, BIG);
        g_assert_cmpuint(c.rx.files, ==, c.tx.files);
        g_assert_cmpuint(c.rx.dirs, ==, c.tx.dirs);
        g_assert_cmpuint(c.rx.symlinks, ==, c.tx.symlinks);
        g_assert_cmpuint(c.rx.bytes, ==, c.tx.bytes);
        copy_run_clear(&c);
        tree_rm(src);
        tree_rm(dest);
}

/* Names that exist get " (n)", before a file's extension; nothing is overwritten. */
static void test_clash(void) {
        g_autofree char *src = tree_tmpdir(), *dest = tree_tmpdir();
        g_autofree char *top = path_in(src, "top"), *single = path_in(src, "single.txt");
        char *paths[] = { top, single, NULL };
        CopyRun c;

        make_tree(src, false);
        write_in(dest, "single.txt", "already here\n", 0644);
        for (int i = 0; i < 3; i++) {
                copy_run(paths, dest, 1 << 20, &c);
                g_assert_no_error(c.tx_error);
                g_assert_no_error(c.rx_error);
                copy_run_clear(&c);
        }
        g_autofree char *list = tree_list(dest);
        g_assert_cmpstr(list, ==, "single (1).txt single (2).txt single (3).txt single.txt top top (1) top (2)");
        g_autofree char *old = path_in(dest, "single.txt"), *data = NULL;
        g_assert_true(g_file_get_contents(old, &data, NULL, NULL));
        g_assert_cmpstr(data, ==, "already here\n");
        g_autofree char *t2 = path_in(dest, "top (2)"), *s3 = path_in(dest, "single (3).txt");
        tree_assert_equal(top, t2, mask);
        tree_assert_equal(single, s3, mask);
        tree_rm(src);
        tree_rm(dest);
}

/* Where there is no O_TMPFILE: ".vmfed-partial.XXXXXX" files, renamed when complete, removed on failure. */
static void test_named_partial(void) {
        g_autofree char *src = tree_tmpdir(), *dest = tree_tmpdir();
        g_autofree char *top = path_in(src, "top");
        char *paths[] = { top, NULL };
        CopyRun c;

        file_copy_receive_set_tmpfile(false);
        make_tree(src, false);
        copy_run(paths, dest, 1 << 20, &c);
        g_assert_no_error(c.rx_error);
        copy_run(paths, dest, 1 << 20, &c);
        g_assert_no_error(c.rx_error);
        g_autofree char *dtop = path_in(dest, "top (1)");
        tree_assert_equal(top, dtop, mask);
        assert_no_partial(dest);

        /* cut off in the middle of a file, and a file over the limit */
        g_autoptr(GByteArray) s = stream_new();
        stream_entry(s, 'D', "cut", 0755, 0, NULL, 0);
        stream_entry(s, 'F', "cut/half", 0644, 1000, NULL, 500);
        g_assert_cmpint(copy_feed(s->data, s->len, dest, 1 << 20, NULL, NULL), ==, -EPIPE);
        g_autoptr(GByteArray) s2 = stream_new();
        stream_entry(s2, 'F', "over", 0644, 2 << 20, NULL, 1 << 20);
        g_assert_cmpint(copy_feed(s2->data, s2->len, dest, 1 << 20, NULL, NULL), ==, -EFBIG);
        g_autofree char *cut = path_in(dest, "cut"), *list = tree_list(cut), *all = tree_list(dest);
        g_assert_cmpstr(list, ==, "");
        g_assert_cmpstr(all, ==, "cut top top (1)");
        assert_no_partial(dest);
        file_copy_receive_set_tmpfile(true);
        copy_run_clear(&c);
        tree_rm(src);
        tree_rm(dest);
}

static void assert_send_refused(const char *src_entry, int expect, const char *why) {
        g_autofree char *dest = tree_tmpdir();
        char *paths[] = { (char *) src_entry, NULL };
        CopyRun c;

        copy_run(paths, dest, 1 << 20, &c);
        g_assert_cmpint(c.tx_r, ==, expect);
        g_assert_error(c.tx_error, FILE_COPY_ERROR, -expect);
        if (!strstr(c.tx_error->message, why))
                g_error("\"%s\" does not say \"%s\"", c.tx_error->message, why);
        g_assert_cmpint(c.rx_r, ==, -EPIPE); /* the stream ended without its end record */
        assert_no_partial(dest);
        copy_run_clear(&c);
        tree_rm(dest);
}

static void test_sender_refuses(void) {
        g_autofree char *src = tree_tmpdir();
        g_autofree char *d1 = path_in(src, "abs"), *d2 = path_in(src, "up"), *d3 = path_in(src, "fifo");
        g_autofree char *fifo = path_in(d3, "f");

        mkdir_mode(src, "abs", 0755);
        write_in(d1, "a-file", "some data\n", 0644);
        symlink_in(d1, "passwd", "/etc/passwd");
        assert_send_refused(d1, -EINVAL, "abs/passwd: a symlink with an absolute target");
        mkdir_mode(src, "up", 0755);
        symlink_in(d2, "out", "../outside");
        assert_send_refused(d2, -EINVAL, "a symlink pointing outside the copied directory");
        mkdir_mode(src, "fifo", 0755);
        g_assert_cmpint(mkfifo(fifo, 0644), ==, 0);
        assert_send_refused(d3, -EOPNOTSUPP, "fifo/f is a FIFO");
        assert_send_refused("/dev/null", -EOPNOTSUPP, "/dev/null is a device");
        tree_rm(src);
}

static void test_top_level_names(void) {
        g_autofree char *src = tree_tmpdir(), *dest = tree_tmpdir();
        g_autofree char *top = path_in(src, "top"), *dot = path_in(src, "top/."), *alias = path_in(src, "alias");
        g_autofree char *other = path_in(src, "other"), *twin = path_in(src, "other/top");
        CopyRun c;

        make_tree(src, false);
        symlink_in(src, "alias", "top"); /* a path given is followed */
        char *paths[] = { dot, alias, NULL };
        copy_run(paths, dest, 1 << 20, &c);
        g_assert_no_error(c.tx_error);
        g_autofree char *list = tree_list(dest), *da = path_in(dest, "alias");
        g_assert_cmpstr(list, ==, "alias top");
        tree_assert_equal(top, da, mask);
        copy_run_clear(&c);

        mkdir_mode(src, "other", 0755);
        mkdir_mode(src, "other/top", 0755);
        char *twins[] = { top, twin, NULL };
        copy_run(twins, dest, 1 << 20, &c);
        g_assert_cmpint(c.tx_r, ==, -EINVAL);
        g_assert_nonnull(strstr(c.tx_error->message, "same name \"top\""));
        copy_run_clear(&c);
        (void) other;
        tree_rm(src);
        tree_rm(dest);
}

/* The receiver refuses a 64 MiB file with a 1 MiB limit: the sender, in the middle of it, hears why. */
static void test_receiver_refuses(void) {
        g_autofree char *src = tree_tmpdir(), *dest = tree_tmpdir();
        g_autofree char *top = path_in(src, "top");
        char *paths[] = { top, NULL };
        CopyRun c;

        make_tree(src, true);
        copy_run(paths, dest, 1 << 20, &c);
        g_assert_cmpint(c.rx_r, ==, -EFBIG);
        g_assert_cmpint(c.tx_r, ==, -EREMOTEIO);
        g_assert_nonnull(strstr(c.tx_error->message, "The receiver refused the copy: \"top/big.bin\" (67108864 bytes) is over the limit"));
        g_autofree char *dtop = path_in(dest, "top"), *list = tree_list(dtop);
        g_assert_cmpstr(list, ==, "a"); /* what came before it in name order */
        assert_no_partial(dest);
        copy_run_clear(&c);
        tree_rm(src);
        tree_rm(dest);
}

static void test_remove_sources(void) {
        g_autofree char *src = tree_tmpdir(), *dest = tree_tmpdir();
        g_autofree char *top = path_in(src, "top"), *single = path_in(src, "single.txt");
        g_autofree char *alias = path_in(src, "alias"), *changed = path_in(top, "a/b/c/deep.txt");
        g_autoptr(GError) e = NULL;
        char *paths[] = { top, single, alias, NULL };
        CopyRun c;

        make_tree(src, false);
        write_in(src, "keepme.txt", "the target of a symlink given\n", 0644);
        symlink_in(src, "alias", "keepme.txt");
        g_autofree char *ro = path_in(top, "ro");
        g_assert_cmpint(chmod(ro, 0755), ==, 0); /* removable without root */
        g_usleep(50 * 1000); /* ctimes older than the copy's start, on a coarse clock */
        copy_run(paths, dest, 1 << 20, &c);
        g_assert_no_error(c.tx_error);
        tree_write(changed, "changed after it was sent\n", 26, 0644);
        g_assert_cmpint(file_copy_remove_sources(paths, &c.tx, &e), ==, -EBUSY);
        g_assert_error(e, FILE_COPY_ERROR, EBUSY);
        g_assert_nonnull(strstr(e->message, "1 entries changed"));
        g_autofree char *left = tree_list_all(src);
        g_assert_cmpstr(left, ==, "keepme.txt top top/a top/a/b top/a/b/c top/a/b/c/deep.txt");
        g_clear_error(&e);
        copy_run_clear(&c);

        /* again, with nothing changed: all gone; "dlink/" (a symlink to a directory) goes itself */
        mkdir_mode(src, "tgt", 0755);
        g_autofree char *tgt = path_in(src, "tgt");
        write_in(tgt, "kept", "the target of dlink/\n", 0644);
        symlink_in(src, "dlink", "tgt");
        g_autofree char *dlink = g_strconcat(src, "/dlink/", NULL);
        g_usleep(50 * 1000);
        char *again[] = { top, dlink, NULL };
        copy_run(again, dest, 1 << 20, &c);
        g_assert_no_error(c.tx_error);
        g_assert_cmpint(file_copy_remove_sources(again, &c.tx, &e), ==, 0);
        g_assert_no_error(e);
        g_autofree char *none = tree_list(src);
        g_assert_cmpstr(none, ==, "keepme.txt tgt");
        g_autofree char *dtgt = path_in(dest, "dlink"), *tgt_left = tree_list(tgt);
        g_assert_cmpstr(tgt_left, ==, "kept");
        tree_assert_equal(tgt, dtgt, mask);
        copy_run_clear(&c);
        tree_rm(src);
        tree_rm(dest);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        umask(022);
        g_test_add_func("/file-copy/roundtrip", test_roundtrip);
        g_test_add_func("/file-copy/clash", test_clash);
        g_test_add_func("/file-copy/named-partial", test_named_partial);
        g_test_add_func("/file-copy/sender-refuses", test_sender_refuses);
        g_test_add_func("/file-copy/top-level-names", test_top_level_names);
        g_test_add_func("/file-copy/receiver-refuses", test_receiver_refuses);
        g_test_add_func("/file-copy/remove-sources", test_remove_sources);
        return g_test_run();
}
