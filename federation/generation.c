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
#define GENERATION_CONF "vmfed.conf"

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

static int fsync_path(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return negative_errno();
        return 0;
}

/* A new file of a generation being built (its directory is fsync'd once, later). */
static int file_create_durable(const char *path, const char *data, size_t size, mode_t mode) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        while (size > 0) {
                ssize_t k = write(fd, data, size);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                data += k;
                size -= (size_t) k;
        }
        if (fchmod(fd, mode) < 0 || fsync(fd) < 0)
                return negative_errno();
        return 0;
}

/* Is prev a regular file with exactly this mode and content? */
static bool file_same(const char *prev, const char *data, size_t size, mode_t mode) {
        g_autofree char *old = NULL;
        size_t old_size;
        struct stat st;

        if (!prev || lstat(prev, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 07777) != mode ||
            (size_t) st.st_size != size)
                return false;
        return read_full_file(prev, GENERATION_FILE_MAX, &old, &old_size) >= 0 && old_size == size &&
               memcmp(old, data, size) == 0;
}

/*
 * Snapshot the live tree src into dst (a new directory of a generation being
 * built).  A file equal in content and mode to the same path in prev (the
 * latest generation's tree, or NULL) becomes a hard link to it; any other is
 * written anew.  Generation files are never opened for writing after this,
 * by anyone (rollback copies them out, prune only unlinks), so a link shared
 * by several generations can never be written through.  Links are made only
 * between generations, never to a live file of CONFIG, which editors may
 * rewrite in place.  Every directory is fsync'd once, after it is filled.
 */
static int tree_snapshot(const char *src, const char *prev, const char *dst) {
        g_autoptr(GDir) d = NULL;
        const char *n;

        if (mkdir(dst, 0755) < 0)
                return negative_errno();
        d = g_dir_open(src, 0, NULL);
        while (d && (n = g_dir_read_name(d))) {
                g_autofree char *s = g_build_filename(src, n, NULL), *t = g_build_filename(dst, n, NULL);
                g_autofree char *p = prev ? g_build_filename(prev, n, NULL) : NULL;
                g_autofree char *data = NULL;
                size_t size;
                struct stat st;
                int r;

                if (stat(s, &st) < 0 || file_is_atomic_temp(n, NULL)) /* never a half-written file */
                        continue;
                if (S_ISDIR(st.st_mode))
                        r = tree_snapshot(s, p, t);
                else if (!S_ISREG(st.st_mode))
                        r = 0;
                else if ((r = read_full_file(s, GENERATION_FILE_MAX, &data, &size)) < 0)
                        ;
                else if (file_same(p, data, size, st.st_mode & 07777) && link(p, t) >= 0)
                        r = 0;
                else /* changed, new, or not linkable (EMLINK, a file system without links): a copy */
                        r = file_create_durable(t, data, size, st.st_mode & 07777);
                if (r < 0)
                        return r;
        }
        return fsync_path(dst);
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

/* Replace the index with these generations (write_file_atomic: the commit point of a record or prune). */
static int index_write(const char *state_dir, GPtrArray *list) {
        g_autofree char *dir = generations_dir(state_dir), *index = g_build_filename(dir, "index", NULL);
        g_autoptr(GString) s = g_string_new(NULL);

        for (guint i = 0; i < list->len; i++) {
                Generation *g = list->pdata[i];
                g_autofree char *clean = g_strdup(g->description ? g->description : "");
                g_strdelimit(clean, "\t\n\r", ' ');
                g_string_append_printf(s, "%" PRIu64 "\t%" G_GINT64_FORMAT "\t%s\n", g->number, g->time_usec, clean);
        }
        return write_file_atomic(index, s->str, s->len, 0644);
}

/*
 * The index is the commit point of a generation: generation_record() builds
 * .tmp-N, renames it to N, then rewrites the index with N added and the
 * pruned ones dropped, then renames each pruned M to .tmp-pruned-M and
 * removes it.  A crash before the index write leaves N (or .tmp-N) that no
 * one recorded, one after it pruned directories still there (M or
 * .tmp-pruned-M); remove them, so the directories are exactly the indexed
 * generations: the old set or the new one.
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

/* Remove generation directories no longer indexed: renamed out of the numbered names first, then removed. */
static void remove_pruned(const char *state_dir, GPtrArray *pruned) {
        g_autofree char *dir = generations_dir(state_dir);

        for (guint i = 0; i < pruned->len; i++) {
                uint64_t n = ((Generation *) pruned->pdata[i])->number;
                g_autofree char *path = g_strdup_printf("%s/%" PRIu64, dir, n);
                g_autofree char *gone = g_strdup_printf("%s/.tmp-pruned-%" PRIu64, dir, n);
                int r = rename(path, gone) < 0 ? negative_errno() : tree_remove(gone);
                if (r < 0 && r != -ENOENT) /* the next record or start sweeps it */
                        log_warning_errno(r, "generations: cannot remove pruned generation %" PRIu64 ": %m", n);
        }
}

/* Move the oldest entries of list beyond keep into a new array (returned). */
static GPtrArray *list_split_oldest(GPtrArray *list, unsigned keep) {
        GPtrArray *pruned = g_ptr_array_new_with_free_func(generation_destroy);
        guint drop = list->len > keep ? list->len - keep : 0;

        for (guint i = 0; i < drop; i++)
                g_ptr_array_add(pruned, g_ptr_array_steal_index(list, 0));
        return pruned;
}

int generation_prune(const char *state_dir, unsigned keep) {
        g_autoptr(GPtrArray) list = NULL, pruned = NULL;
        int r;

        keep = MAX(keep, 1u);
        r = sweep_unindexed(state_dir); /* no .tmp-pruned-M of an earlier crash in the way */
        if (r < 0)
                return r;
        r = generation_list(state_dir, &list);
        if (r < 0)
                return r;
        if (list->len <= keep)
                return 0;
        pruned = list_split_oldest(list, keep);
        r = index_write(state_dir, list);
        if (r < 0)
                return r;
        remove_pruned(state_dir, pruned);
        log_info("generations: pruned %u, keeping the latest %u (KeepGenerations=).", pruned->len, keep);
        return (int) pruned->len;
}

unsigned generation_keep(const char *config_dir) {
        g_autofree char *path = g_build_filename(config_dir, GENERATION_CONF, NULL);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;
        g_autofree char *v = NULL;
        char *end = NULL;
        guint64 keep;

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &e)) {
                if (!g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                        log_error("%s: %s; KeepGenerations=%u.", path, e->message, GENERATION_KEEP_DEFAULT);
                return GENERATION_KEEP_DEFAULT;
        }
        v = g_key_file_get_string(kf, "Generations", "KeepGenerations", NULL);
        if (!v)
                return GENERATION_KEEP_DEFAULT;
        g_strstrip(v);
        keep = g_ascii_strtoull(v, &end, 10);
        if (!g_ascii_isdigit(v[0]) || *end || keep < 1 || keep > GENERATION_KEEP_MAX) {
                log_error("%s: [Generations] KeepGenerations=%s: expected 1 to %u; keeping %u.", path, v,
                          GENERATION_KEEP_MAX, GENERATION_KEEP_DEFAULT);
                return GENERATION_KEEP_DEFAULT;
        }
        return (unsigned) keep;
}

/* Build .tmp-N from the live trees (linked to the latest generation ld where unchanged), rename it to N. */
static int generation_build(const char *config_dir, const char *state_dir, const char *ld, uint64_t n) {
        g_autofree char *dir = generations_dir(state_dir);
        g_autofree char *tmp = g_strdup_printf("%s/.tmp-%" PRIu64, dir, n);
        g_autofree char *final = g_strdup_printf("%s/%" PRIu64, dir, n);
        int r;

        r = tree_remove(tmp);
        if (r < 0)
                return r;
        if (mkdir(tmp, 0755) < 0)
                return negative_errno();
        for (size_t i = 0; i < ELEMENTSOF(tracked); i++) {
                g_autofree char *s = g_build_filename(config_dir, tracked[i], NULL);
                g_autofree char *t = g_build_filename(tmp, tracked[i], NULL);
                g_autofree char *p = ld ? g_build_filename(ld, tracked[i], NULL) : NULL;
                r = tree_snapshot(s, p, t);
                if (r < 0)
                        return r;
        }
        r = fsync_path(tmp);
        if (r < 0)
                return r;
        if (rename(tmp, final) < 0)
                return negative_errno();
        /* N is durable before the index names it. */
        return fsync_path(dir);
}

/*
 * Cost on the main loop: reading both trees (to compare, then to snapshot),
 * one write + fsync per changed file, a link per unchanged one, one fsync
 * per directory of the new tree, one of generations/, and the index
 * (write_file_atomic), which also drops the generations pruned.
 */
int generation_record(const char *config_dir, const char *state_dir, const char *description, uint64_t *ret_number) {
        g_autofree char *dir = generations_dir(state_dir), *ld = NULL;
        g_autoptr(GPtrArray) list = NULL, pruned = NULL;
        uint64_t latest = generation_latest(state_dir), n;
        Generation *g;
        int r;

        if (latest > 0) {
                ld = g_strdup_printf("%s/%" PRIu64, dir, latest);
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
        r = generation_build(config_dir, state_dir, ld, n);
        if (r < 0)
                return r;

        r = generation_list(state_dir, &list);
        if (r < 0)
                return r;
        g = g_new0(Generation, 1);
        g->number = n;
        g->time_usec = g_get_real_time();
        g->description = g_strdup(description);
        g_ptr_array_add(list, g);
        pruned = list_split_oldest(list, generation_keep(config_dir));
        r = index_write(state_dir, list);
        if (r < 0)
                return r;
        remove_pruned(state_dir, pruned);
        if (pruned->len > 0)
                log_info("generations: recorded %" PRIu64 ", pruned %u (KeepGenerations=%u).", n, pruned->len,
                         list->len);
        if (ret_number)
                *ret_number = n;
        return GENERATION_RECORDED;
}

int generation_status(const char *state_dir, uint64_t n) {
        g_autoptr(GPtrArray) list = NULL;
        int r = generation_list(state_dir, &list);

        if (r < 0)
                return r;
        for (guint i = 0; i < list->len; i++)
                if (((Generation *) list->pdata[i])->number == n)
                        return GENERATION_RETAINED;
        /* Numbers are never reused and the oldest go first: below the oldest kept is pruned. */
        if (n >= 1 && list->len > 0 && n < ((Generation *) list->pdata[0])->number)
                return GENERATION_PRUNED;
        return GENERATION_UNKNOWN;
}

int generation_vm_names(const char *state_dir, GHashTable **ret) {
        g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autoptr(GPtrArray) list = NULL;
        int r;

        r = generation_list(state_dir, &list);
        if (r < 0)
                return r;
        for (guint i = 0; i < list->len; i++) {
                g_autofree char *vms = g_strdup_printf("%s/generations/%" PRIu64 "/vms.d", state_dir,
                                                       ((Generation *) list->pdata[i])->number);
                g_autoptr(GError) e = NULL;
                g_autoptr(GDir) d = g_dir_open(vms, 0, &e);
                const char *n;

                if (!d) {
                        if (g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                                continue; /* a generation without vms.d/ (none then) */
                        return -EIO;
                }
                while ((n = g_dir_read_name(d)))
                        if (n[0] != '.' && g_str_has_suffix(n, ".vm"))
                                g_hash_table_add(names, g_strndup(n, strlen(n) - 3));
        }
        *ret = steal_pointer(&names);
        return 0;
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
        /* The journal names no generation: nothing was swapped, or the rollback's own record pruned its target
         * (so it was complete; only the journal's removal was missed). */
        if (r == -ENOENT)
                return unlink_durable_at(AT_FDCWD, journal);
        return r < 0 ? r : 1;
}
