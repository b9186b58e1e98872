/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/generation.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"

#define GENERATION_FILE_MAX (4 * 1024 * 1024)
#define ASIDE_DIR ".vmfed-rollback"

static const char *const tracked[] = { "vms.d", "policy.d" };

Generation *generation_free(Generation *g) {
        if (!g)
                return NULL;
        g_free(g->description);
        g_free(g);
        return NULL;
}

static void generation_destroy(gpointer p) {
        generation_free(p);
}

/* ---- trees ------------------------------------------------------------- */

static int tree_remove(const char *path) {
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (S_ISDIR(st.st_mode)) {
                g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
                const char *n;
                while (d && (n = g_dir_read_name(d))) {
                        g_autofree char *c = g_build_filename(path, n, NULL);
                        int r = tree_remove(c);
                        if (r < 0)
                                return r;
                }
                return rmdir(path) < 0 ? negative_errno() : 0;
        }
        return unlink(path) < 0 ? negative_errno() : 0;
}

/* Copy regular files and directories of src into dst (created); a missing src gives an empty dst. */
static int tree_copy(const char *src, const char *dst) {
        g_autoptr(GDir) d = NULL;
        const char *n;

        if (mkdir(dst, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        d = g_dir_open(src, 0, NULL);
        while (d && (n = g_dir_read_name(d))) {
                g_autofree char *s = g_build_filename(src, n, NULL), *t = g_build_filename(dst, n, NULL);
                struct stat st;
                int r;

                if (stat(s, &st) < 0 || file_is_atomic_temp(n, NULL)) /* never a half-written file */
                        continue;
                if (S_ISDIR(st.st_mode))
                        r = tree_copy(s, t);
                else if (S_ISREG(st.st_mode)) {
                        g_autofree char *data = NULL;
                        size_t size;
                        r = read_full_file(s, GENERATION_FILE_MAX, &data, &size);
                        if (r >= 0)
                                r = write_file_atomic(t, data, size, st.st_mode & 07777);
                } else
                        r = 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Same names, same file contents, recursively (a missing dir equals an empty one). */
static bool tree_equal(const char *a, const char *b) {
        g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        const char *dirs[2] = { a, b };
        GHashTableIter it;
        gpointer key;

        for (int i = 0; i < 2; i++) {
                g_autoptr(GDir) d = g_dir_open(dirs[i], 0, NULL);
                const char *n;
                while (d && (n = g_dir_read_name(d)))
                        g_hash_table_add(names, g_strdup(n));
        }
        g_hash_table_iter_init(&it, names);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                g_autofree char *x = g_build_filename(a, key, NULL), *y = g_build_filename(b, key, NULL);
                g_autofree char *dx = NULL, *dy = NULL;
                size_t sx, sy;
                struct stat stx, sty;

                if (stat(x, &stx) < 0 || stat(y, &sty) < 0)
                        return false;
                if (S_ISDIR(stx.st_mode) != S_ISDIR(sty.st_mode))
                        return false;
                if (S_ISDIR(stx.st_mode)) {
                        if (!tree_equal(x, y))
                                return false;
                        continue;
                }
                if (read_full_file(x, GENERATION_FILE_MAX, &dx, &sx) < 0 ||
                    read_full_file(y, GENERATION_FILE_MAX, &dy, &sy) < 0 || sx != sy || memcmp(dx, dy, sx) != 0)
                        return false;
        }
        return true;
}

/* ---- index ------------------------------------------------------------- */

static char *generations_dir(const char *state_dir) {
        return g_build_filename(state_dir, "generations", NULL);
}

int generation_list(const char *state_dir, GPtrArray **ret) {
        g_autofree char *dir = generations_dir(state_dir), *index = g_build_filename(dir, "index", NULL);
        g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(generation_destroy);
        g_autofree char *text = NULL;
        g_auto(GStrv) lines = NULL;
        int r;

        r = read_full_file(index, GENERATION_FILE_MAX, &text, NULL);
        if (r == -ENOENT) {
                *ret = steal_pointer(&out);
                return 0;
        }
        if (r < 0)
                return r;
        lines = g_strsplit(text, "\n", -1);
        for (size_t i = 0; lines[i]; i++) {
                g_auto(GStrv) f = g_strsplit(lines[i], "\t", 3);
                Generation *g;
                if (g_strv_length(f) != 3)
                        continue;
                g = g_new0(Generation, 1);
                g->number = g_ascii_strtoull(f[0], NULL, 10);
                g->time_usec = g_ascii_strtoll(f[1], NULL, 10);
                g->description = g_strdup(f[2]);
                g_ptr_array_add(out, g);
        }
        *ret = steal_pointer(&out);
        return 0;
}

uint64_t generation_latest(const char *state_dir) {
        g_autoptr(GPtrArray) l = NULL;
        if (generation_list(state_dir, &l) < 0 || l->len == 0)
                return 0;
        return ((Generation *) l->pdata[l->len - 1])->number;
}

static int index_append(const char *state_dir, uint64_t n, const char *description) {
        g_autofree char *dir = generations_dir(state_dir), *index = g_build_filename(dir, "index", NULL);
        g_autofree char *text = NULL, *clean = g_strdup(description ? description : "");
        g_autoptr(GString) s = g_string_new(NULL);
        int r;

        r = read_full_file(index, GENERATION_FILE_MAX, &text, NULL);
        if (r < 0 && r != -ENOENT)
                return r;
        if (text)
                g_string_append(s, text);
        g_strdelimit(clean, "\t\n\r", ' ');
        g_string_append_printf(s, "%" PRIu64 "\t%" G_GINT64_FORMAT "\t%s\n", n, g_get_real_time(), clean);
        return write_file_atomic(index, s->str, s->len, 0644);
}

/*
 * The index is the commit point of a generation: generation_record() copies
 * into .tmp-N, renames it to N, then appends N to the index.  A crash before
 * the append leaves N (or .tmp-N) that no one recorded; remove them, so the
 * directories are exactly the indexed generations.
 */
static int sweep_unindexed(const char *state_dir) {
        g_autofree char *dir = generations_dir(state_dir);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        g_autoptr(GPtrArray) l = NULL;
        g_autoptr(GHashTable) indexed = g_hash_table_new(g_int64_hash, g_int64_equal);
        const char *name;
        int r;

        if (!d)
                return 0;
        r = generation_list(state_dir, &l);
        if (r < 0)
                return r;
        for (guint i = 0; i < l->len; i++)
                g_hash_table_add(indexed, &((Generation *) l->pdata[i])->number);
        while ((name = g_dir_read_name(d))) {
                bool tmp = g_str_has_prefix(name, ".tmp-");
                if (!tmp && !g_ascii_isdigit(name[0]))
                        continue;
                if (!tmp) {
                        char *end = NULL;
                        guint64 n = g_ascii_strtoull(name, &end, 10);
                        if (*end || g_hash_table_contains(indexed, &n))
                                continue;
                }
                g_autofree char *path = g_build_filename(dir, name, NULL);
                r = tree_remove(path);
                if (r < 0)
                        return r;
                log_warning("generations: removed %s, which a crash left unrecorded.", path);
        }
        return 0;
}

/* One past the highest numbered directory or index entry (a crash may leave a directory unindexed). */
static uint64_t next_number(const char *state_dir) {
        g_autofree char *dir = generations_dir(state_dir);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        uint64_t max = generation_latest(state_dir);
        const char *n;

        while (d && (n = g_dir_read_name(d)))
                if (g_ascii_isdigit(n[0]))
                        max = MAX(max, g_ascii_strtoull(n, NULL, 10));
        return max + 1;
}

static bool config_equals_generation(const char *config_dir, const char *gen_dir) {
        for (size_t i = 0; i < ELEMENTSOF(tracked); i++) {
                g_autofree char *a = g_build_filename(config_dir, tracked[i], NULL);
                g_autofree char *b = g_build_filename(gen_dir, tracked[i], NULL);
                if (!tree_equal(a, b))
                        return false;
        }
        return true;
}

int generation_record(const char *config_dir, const char *state_dir, const char *description, uint64_t *ret_number) {
        g_autofree char *dir = generations_dir(state_dir), *tmp = NULL, *final = NULL;
        uint64_t latest = generation_latest(state_dir), n;
        int r;

        if (latest > 0) {
                g_autofree char *ld = g_strdup_printf("%s/%" PRIu64, dir, latest);
                if (config_equals_generation(config_dir, ld)) {
                        if (ret_number)
                                *ret_number = latest;
                        return GENERATION_UNCHANGED;
                }
        }
        r = mkdir_parents(dir, 0755);
        if (r < 0)
                return r;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        r = sweep_unindexed(state_dir);
        if (r < 0)
                return r;
        n = next_number(state_dir);
        tmp = g_strdup_printf("%s/.tmp-%" PRIu64, dir, n);
        final = g_strdup_printf("%s/%" PRIu64, dir, n);
        r = tree_remove(tmp);
        if (r < 0)
                return r;
        if (mkdir(tmp, 0755) < 0)
                return negative_errno();
        for (size_t i = 0; i < ELEMENTSOF(tracked); i++) {
                g_autofree char *s = g_build_filename(config_dir, tracked[i], NULL);
                g_autofree char *t = g_build_filename(tmp, tracked[i], NULL);
                r = tree_copy(s, t);
                if (r < 0)
                        return r;
        }
        if (rename(tmp, final) < 0)
                return negative_errno();
        r = index_append(state_dir, n, description);
        if (r < 0)
                return r;
        if (ret_number)
                *ret_number = n;
        return GENERATION_RECORDED;
}

static char *journal_path(const char *state_dir) {
        return g_build_filename(state_dir, "generations", "rollback.journal", NULL);
}

static int swap_in(const char *config_dir, const char *name) {
        g_autofree char *aside = g_build_filename(config_dir, ASIDE_DIR, name, NULL);
        g_autofree char *live = g_build_filename(config_dir, name, NULL);

        if (renameat2(AT_FDCWD, aside, AT_FDCWD, live, RENAME_EXCHANGE) >= 0)
                return 0;
        if (errno != ENOENT)
                return negative_errno();
        /* No live directory yet: a plain rename is atomic too. */
        return rename(aside, live) < 0 ? negative_errno() : 0;
}

static int rollback_apply(const char *config_dir, const char *state_dir, uint64_t n) {
        g_autofree char *gen = g_strdup_printf("%s/generations/%" PRIu64, state_dir, n);
        g_autofree char *aside = g_build_filename(config_dir, ASIDE_DIR, NULL);
        int r;

        r = tree_remove(aside);
        if (r < 0)
                return r;
        if (mkdir(aside, 0755) < 0)
                return negative_errno();
        /* Build both target trees completely before touching the live ones. */
        for (size_t i = 0; i < ELEMENTSOF(tracked); i++) {
                g_autofree char *s = g_build_filename(gen, tracked[i], NULL);
                g_autofree char *t = g_build_filename(aside, tracked[i], NULL);
                r = tree_copy(s, t);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(tracked); i++) {
                r = swap_in(config_dir, tracked[i]);
                if (r < 0)
                        return r;
        }
        return tree_remove(aside);
}

int generation_rollback(const char *config_dir, const char *state_dir, uint64_t n, uint64_t *ret_new) {
        g_autoptr(GPtrArray) list = NULL;
        g_autofree char *journal = journal_path(state_dir), *desc = NULL, *line = NULL;
        bool known = false;
        int r;

        r = generation_list(state_dir, &list);
        if (r < 0)
                return r;
        for (guint i = 0; i < list->len; i++)
                known = known || ((Generation *) list->pdata[i])->number == n;
        if (!known)
                return -ENOENT;

        line = g_strdup_printf("%" PRIu64 "\n", n);
        r = write_file_atomic(journal, line, strlen(line), 0644);
        if (r < 0)
                return r;
        r = rollback_apply(config_dir, state_dir, n);
        if (r < 0)
                return r;
        desc = g_strdup_printf("rollback to %" PRIu64, n);
        r = generation_record(config_dir, state_dir, desc, ret_new);
        if (r < 0)
                return r;
        return unlink_durable_at(AT_FDCWD, journal);
}

int generation_recover(const char *config_dir, const char *state_dir) {
        g_autofree char *journal = journal_path(state_dir), *text = NULL;
        uint64_t n;
        int r;

        r = sweep_unindexed(state_dir);
        if (r < 0)
                return r;
        r = read_full_file(journal, 64, &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        n = g_ascii_strtoull(text, NULL, 10);
        r = generation_rollback(config_dir, state_dir, n, NULL);
        if (r == -ENOENT) /* the journal names no generation: nothing was swapped */
                return unlink_durable_at(AT_FDCWD, journal);
        return r < 0 ? r : 1;
}
