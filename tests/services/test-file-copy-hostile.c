/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * file_copy_receive() fed streams made by hand, as a hostile VM would
 * send them: each one must be refused with its reason (to the caller and
 * in the status line), leave nothing outside the destination, no partial
 * file, and exactly the entries that came complete before the refusal.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "services/file-copy-wire.h"
#include "tests/services/file-copy-fixture.h"

#define LIMIT (1u << 20)

typedef struct Case {
        const char *name;
        void (*build)(GByteArray *s);
        int expect;
        const char *why;        /* in the message */
        const char *left;       /* every path left in the destination, sorted */
} Case;

static void dotdot_top(GByteArray *s) { stream_entry(s, 'F', "../evil", 0644, 1, NULL, 1); }
static void dotdot_inner(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'F', "top/../evil", 0644, 1, NULL, 1);
}
static void dot(GByteArray *s) { stream_entry(s, 'F', "./x", 0644, 1, NULL, 1); }
static void absolute(GByteArray *s) { stream_entry(s, 'F', "/tmp/vmfed-evil", 0644, 1, NULL, 1); }
static void slash_top(GByteArray *s) { stream_entry(s, 'D', "/top", 0755, 0, NULL, 0); }
static void slash_end(GByteArray *s) { stream_entry(s, 'D', "top/", 0755, 0, NULL, 0); }
static void slash_run(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'F', "top//x", 0644, 1, NULL, 1);
}
static void device(GByteArray *s) { stream_entry(s, 'C', "null", 0666, 0, NULL, 0); }
static void block_device(GByteArray *s) { stream_entry(s, 'B', "sda", 0660, 0, NULL, 0); }
static void fifo(GByteArray *s) { stream_entry(s, 'P', "fifo", 0644, 0, NULL, 0); }
static void device_mode(GByteArray *s) { stream_entry(s, 'F', "null", 020666, 0, NULL, 0); }
static void setuid_mode(GByteArray *s) { stream_entry(s, 'F', "suid", 04755, 1, NULL, 1); }
static void oversized(GByteArray *s) { stream_entry(s, 'F', "huge", 0644, 2 * LIMIT, NULL, LIMIT); }
static void over_total(GByteArray *s) {
        stream_entry(s, 'F', "a", 0644, 600 << 10, NULL, 600 << 10);
        stream_entry(s, 'F', "b", 0644, 600 << 10, NULL, 600 << 10);
}
static void cut_in_file(GByteArray *s) {
        stream_entry(s, 'D', "t", 0755, 0, NULL, 0);
        stream_entry(s, 'F', "t/f", 0644, LIMIT, NULL, 100 << 10);
}
static void cut_in_top_file(GByteArray *s) { stream_entry(s, 'F', "f", 0644, LIMIT, NULL, 100 << 10); }
static void cut_in_header(GByteArray *s) {
        stream_entry(s, 'D', "t", 0755, 0, NULL, 0);
        g_byte_array_append(s, (const guint8 *) "F\0\0\0\0\0", 6);
}
static void no_end(GByteArray *s) { stream_entry(s, 'D', "t", 0755, 0, NULL, 0); }
static void empty_stream(GByteArray *s) { g_byte_array_set_size(s, 0); }
static void bad_magic(GByteArray *s) { s->data[7] = '2'; }
static void link_escapes(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'L', "top/l", 0777, 9, "../../etc", 9);
}
static void link_leaves_top(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'L', "top/l", 0777, 6, "../top", 6);
}
static void link_absolute(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'L', "top/l", 0777, 11, "/etc/passwd", 11);
}
static void link_top_level(GByteArray *s) { stream_entry(s, 'L', "l", 0777, 1, "x", 1); }
static void link_dotdot_late(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'D', "top/a", 0755, 0, NULL, 0);
        stream_entry(s, 'L', "top/a/l", 0777, 7, "b/../..", 7);
}
static void through_link(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'D', "top/sub", 0755, 0, NULL, 0);
        stream_entry(s, 'L', "top/l", 0777, 3, "sub", 3);
        stream_entry(s, 'F', "top/l/x", 0644, 1, NULL, 1);
}
static void before_dir(GByteArray *s) { stream_entry(s, 'F', "nodir/x", 0644, 1, NULL, 1); }
static void inside_file(GByteArray *s) {
        stream_entry(s, 'F', "top", 0644, 1, NULL, 1);
        stream_entry(s, 'F', "top/x", 0644, 1, NULL, 1);
}
static void twice(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'F', "top/f", 0644, 5, "first", 5);
        stream_entry(s, 'F', "top/f", 0644, 6, "second", 6);
}
static void twice_top(GByteArray *s) {
        stream_entry(s, 'F', "x", 0644, 5, "first", 5);
        stream_entry(s, 'F', "x", 0644, 6, "second", 6);
}
static void dir_twice(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'D', "top/d", 0755, 0, NULL, 0);
        stream_entry(s, 'D', "top/d", 0755, 0, NULL, 0);
}
static void file_then_dir(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'F', "top/f", 0644, 5, "first", 5);
        stream_entry(s, 'D', "top/f", 0755, 0, NULL, 0);
}
static void file_then_link(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'F', "top/f", 0644, 5, "first", 5);
        stream_entry(s, 'L', "top/f", 0777, 1, "x", 1);
}
static void in_pending_file(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'F', "top/f", 0644, 5, "first", 5);
        stream_entry(s, 'F', "top/f/x", 0644, 1, NULL, 1);
}
static void reserved_name(GByteArray *s) { stream_entry(s, 'F', ".vmfed-partial.abcdef", 0644, 1, NULL, 1); }
static void newline(GByteArray *s) { stream_entry(s, 'F', "a\nb", 0644, 1, NULL, 1); }
static void escape(GByteArray *s) { stream_entry(s, 'F', "a\x1b[31m", 0644, 1, NULL, 1); }
static void c1_control(GByteArray *s) { stream_entry(s, 'F', "a\xc2\x9b" "b", 0644, 1, NULL, 1); }
static void not_utf8(GByteArray *s) { stream_entry(s, 'F', "caf\xe9", 0644, 1, NULL, 1); }
static void nul_in_name(GByteArray *s) {
        uint8_t raw[32];
        file_copy_header_encode(&(FileCopyHeader) { .type = 'F', .name_len = 3, .mode = 0644 }, raw);
        stream_raw_header(s, raw);
        g_byte_array_append(s, (const guint8 *) "a\0b", 3);
}
static void long_component(GByteArray *s) {
        char name[300];
        memset(name, 'a', 256);
        name[256] = 0;
        stream_entry(s, 'F', name, 0644, 1, NULL, 1);
}
static void long_name(GByteArray *s) {
        uint8_t raw[32];
        file_copy_header_encode(&(FileCopyHeader) { .type = 'F', .name_len = 4096, .mode = 0644 }, raw);
        stream_raw_header(s, raw);
}
static void too_deep(GByteArray *s) {
        g_autoptr(GString) n = g_string_new("a");
        for (int i = 0; i < 128; i++)
                g_string_append(n, "/a");
        stream_entry(s, 'F', n->str, 0644, 1, NULL, 1);
}
static void reserved_bytes(GByteArray *s) {
        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        s->data[FILE_COPY_MAGIC_LEN + 30] = 1;
}
static void bad_nsec(GByteArray *s) {
        uint8_t raw[32];
        file_copy_header_encode(&(FileCopyHeader) { .type = 'D', .name_len = 1, .mode = 0755, .mtime_nsec = 1000000000 }, raw);
        stream_raw_header(s, raw);
        g_byte_array_append(s, (const guint8 *) "d", 1);
}
static void dir_size(GByteArray *s) { stream_entry(s, 'D', "top", 0755, 1, NULL, 0); }
static void empty_link(GByteArray *s) { stream_entry(s, 'L', "top/l", 0777, 0, NULL, 0); }
static void end_mismatch(GByteArray *s) {
        stream_entry(s, 'F', "a", 0644, 3, "abc", 3);
        stream_end(s, 1, 4);
}
static void end_fields(GByteArray *s) {
        uint8_t raw[32];
        file_copy_header_encode(&(FileCopyHeader) { .type = 'E', .mode = 0644 }, raw);
        stream_raw_header(s, raw);
}

static const Case cases[] = {
        { "dotdot-top", dotdot_top, -EINVAL, "a '.' or '..' component", "" },
        { "dotdot-inner", dotdot_inner, -EINVAL, "a '.' or '..' component", "top" },
        { "dot", dot, -EINVAL, "a '.' or '..' component", "" },
        { "absolute", absolute, -EINVAL, "an absolute name", "" },
        { "slash-top", slash_top, -EINVAL, "an absolute name", "" },
        { "slash-end", slash_end, -EINVAL, "an empty component", "" },
        { "slash-run", slash_run, -EINVAL, "an empty component", "top" },
        { "device", device, -EBADMSG, "unknown type", "" },
        { "block-device", block_device, -EBADMSG, "unknown type", "" },
        { "fifo", fifo, -EBADMSG, "unknown type", "" },
        { "device-mode", device_mode, -EBADMSG, "mode bits other than the permissions", "" },
        { "setuid-mode", setuid_mode, -EBADMSG, "mode bits other than the permissions", "" },
        { "oversized", oversized, -EFBIG, "\"huge\" (2097152 bytes) is over the limit", "" },
        { "over-total", over_total, -EFBIG, "\"b\" (614400 bytes) is over the limit: 434176 of 1048576", "a" },
        { "cut-in-file", cut_in_file, -EPIPE, "ended in the middle of \"t/f\"", "t" },
        { "cut-in-top-file", cut_in_top_file, -EPIPE, "ended in the middle of \"f\"", "" },
        { "cut-in-header", cut_in_header, -EPIPE, "ended in the middle of an entry's header", "t" },
        { "no-end", no_end, -EPIPE, "ended in the middle of an entry's header", "t" },
        { "empty-stream", empty_stream, -EPIPE, "ended in the middle of its start", "" },
        { "bad-magic", bad_magic, -EBADMSG, "does not speak the file-copy protocol", "" },
        { "link-escapes", link_escapes, -EINVAL, "pointing outside the copied directory", "top" },
        { "link-leaves-top", link_leaves_top, -EINVAL, "pointing outside the copied directory", "top" },
        { "link-absolute", link_absolute, -EINVAL, "an absolute target", "top" },
        { "link-top-level", link_top_level, -EINVAL, "at the top level", "" },
        { "link-dotdot-late", link_dotdot_late, -EINVAL, "'..' after a name", "top top/a" },
        { "through-link", through_link, -ENOTDIR, "inside something that is not a directory", "top top/l top/sub" },
        { "before-dir", before_dir, -ENOENT, "sent \"nodir/x\" before its directory", "" },
        { "inside-file", inside_file, -ENOTDIR, "inside something that is not a directory", "top" },
        { "twice", twice, -EEXIST, "sent \"top/f\" twice", "top top/f" },
        { "twice-top", twice_top, -EEXIST, "sent \"x\" twice", "x" },
        { "dir-twice", dir_twice, -EEXIST, "sent \"top/d\" twice", "top top/d" },
        { "file-then-dir", file_then_dir, -EEXIST, "sent \"top/f\" twice", "top top/f" },
        { "file-then-link", file_then_link, -EEXIST, "sent \"top/f\" twice", "top top/f" },
        { "in-pending-file", in_pending_file, -ENOTDIR, "inside something that is not a directory", "top top/f" },
        { "reserved-name", reserved_name, -EINVAL, "reserved for files being received", "" },
        { "newline", newline, -EINVAL, "control characters", "" },
        { "escape", escape, -EINVAL, "control characters", "" },
        { "c1-control", c1_control, -EINVAL, "control characters", "" },
        { "not-utf8", not_utf8, -EINVAL, "not valid UTF-8", "" },
        { "nul-in-name", nul_in_name, -EINVAL, "control characters", "" },
        { "long-component", long_component, -EINVAL, "a component longer than 255 bytes", "" },
        { "long-name", long_name, -EBADMSG, "longer than 4095 bytes", "" },
        { "too-deep", too_deep, -EINVAL, "more than 128 components", "" },
        { "reserved-bytes", reserved_bytes, -EBADMSG, "reserved bytes", "" },
        { "bad-nsec", bad_nsec, -EBADMSG, "1000000000 ns or more", "" },
        { "dir-size", dir_size, -EBADMSG, "a directory with a size", "" },
        { "empty-link", empty_link, -EBADMSG, "a symlink whose target is empty", "" },
        { "end-mismatch", end_mismatch, -EBADMSG, "end record says 1 entries and 4 bytes, it sent 1 and 3", "a" },
        { "end-fields", end_fields, -EBADMSG, "an end record with fields that must be zero", "" },
};

static void run_case(const void *data) {
        const Case *c = data;
        g_autofree char *parent = tree_tmpdir();
        g_autofree char *dest = g_build_filename(parent, "dest", NULL);
        g_autoptr(GByteArray) s = stream_new();
        g_autofree char *status = NULL, *why = NULL;

        g_assert_cmpint(mkdir(dest, 0700), ==, 0);
        c->build(s);
        int r = copy_feed(s->data, s->len, dest, LIMIT, &status, &why);
        g_assert_cmpint(r, ==, c->expect);
        if (!strstr(why, c->why))
                g_error("%s: \"%s\" does not say \"%s\"", c->name, why, c->why);
        g_assert_nonnull(strstr(status, c->why)); /* the sender is told the same */
        g_autofree char *left = tree_list_all(dest), *outside = tree_list(parent);
        g_assert_cmpstr(left, ==, c->left);
        g_assert_cmpstr(outside, ==, "dest");
        g_assert_false(g_file_test("/tmp/vmfed-evil", G_FILE_TEST_EXISTS));
        tree_rm(parent);
}

/* What a refused stream did create is whole: the first of two files, the first of a duplicate. */
static void test_left_is_complete(void) {
        g_autofree char *dest = tree_tmpdir(), *a = g_build_filename(dest, "a", NULL);
        g_autofree char *f = g_build_filename(dest, "top/f", NULL), *data = NULL;
        g_autoptr(GByteArray) s = stream_new(), s2 = stream_new();
        struct stat st;
        gsize len;

        over_total(s);
        g_assert_cmpint(copy_feed(s->data, s->len, dest, LIMIT, NULL, NULL), ==, -EFBIG);
        g_assert_cmpint(stat(a, &st), ==, 0);
        g_assert_cmpint(st.st_size, ==, 600 << 10);
        twice(s2);
        g_assert_cmpint(copy_feed(s2->data, s2->len, dest, LIMIT, NULL, NULL), ==, -EEXIST);
        g_assert_true(g_file_get_contents(f, &data, &len, NULL));
        g_assert_cmpstr(data, ==, "first");
        tree_rm(dest);
}

/* The builder makes streams the receiver takes: the refusals above are the hostile bytes, not the builder. */
static void test_valid(void) {
        g_autofree char *dest = tree_tmpdir(), *f = g_build_filename(dest, "top/f", NULL), *l = g_build_filename(dest, "top/l", NULL);
        g_autoptr(GByteArray) s = stream_new();
        g_autofree char *data = NULL, *target = NULL;

        stream_entry(s, 'D', "top", 0755, 0, NULL, 0);
        stream_entry(s, 'F', "top/f", 0644, 3, "abc", 3);
        stream_entry(s, 'L', "top/l", 0777, 1, "f", 1);
        stream_end(s, 3, 3);
        g_assert_cmpint(copy_feed(s->data, s->len, dest, LIMIT, NULL, NULL), ==, 0);
        g_assert_true(g_file_get_contents(f, &data, NULL, NULL));
        g_assert_cmpstr(data, ==, "abc");
        target = g_file_read_link(l, NULL);
        g_assert_cmpstr(target, ==, "f");
        tree_rm(dest);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        umask(022);
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *path = g_strdup_printf("/file-copy-hostile/%s", cases[i].name);
                g_test_add_data_func(path, &cases[i], run_case);
        }
        g_test_add_func("/file-copy-hostile/left-is-complete", test_left_is_complete);
        g_test_add_func("/file-copy-hostile/valid", test_valid);
        return g_test_run();
}
