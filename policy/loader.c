/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <glib.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "policy/loader.h"
#include "policy/parser.h"
#include "policy/snapshot.h"

#define POLICY_SUFFIX ".policy"

/* Qubes' rule: a file name of [0-9a-z_.-], not starting with a dot. */
static bool file_name_chars_ok(const char *name) {
        for (const char *c = name; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || *c == '_' || *c == '.' || *c == '-'))
                        return false;
        return true;
}

static bool has_policy_suffix(const char *name) {
        size_t n = strlen(name), k = strlen(POLICY_SUFFIX);
        return n > k && strcmp(name + n - k, POLICY_SUFFIX) == 0;
}

static const PolicyOverride *find_override(const Loader *l, const char *path) {
        /* Later overrides of the same name win. */
        for (size_t i = l->n_overrides; i > 0; i--)
                if (l->overrides[i - 1].name && strcmp(l->overrides[i - 1].name, path) == 0)
                        return &l->overrides[i - 1];
        return NULL;
}

/*
 * Check and normalise an include path: relative to the policy directory,
 * no "..", no empty result.  Returns a new string or NULL after a diagnostic.
 */
static char *include_path_normalize(Loader *l, const char *file, unsigned line, unsigned column,
                                    const char *untrusted_path, size_t len) {
        PolicySnapshot *s = l->snapshot;
        if (len > 0 && untrusted_path[0] == '/') {
                snapshot_add_diagnostic(s, file, line, column,
                                        "include path '%.*s' is absolute; paths are relative to the policy directory",
                                        (int) len, untrusted_path);
                return NULL;
        }
        GString *out = g_string_new(NULL);
        size_t i = 0;
        while (i < len) {
                size_t b = i;
                while (i < len && untrusted_path[i] != '/')
                        i++;
                size_t clen = i - b;
                const char *c = untrusted_path + b;
                if (clen == 2 && c[0] == '.' && c[1] == '.') {
                        snapshot_add_diagnostic(s, file, line, column + (unsigned) b,
                                                "include path '%.*s' contains '..'; includes must stay inside the "
                                                "policy directory",
                                                (int) len, untrusted_path);
                        g_string_free(out, TRUE);
                        return NULL;
                }
                if (clen > 0 && !(clen == 1 && c[0] == '.')) {
                        if (out->len > 0)
                                g_string_append_c(out, '/');
                        g_string_append_len(out, c, (gssize) clen);
                }
                while (i < len && untrusted_path[i] == '/')
                        i++;
        }
        return g_string_free(out, FALSE);
}

static void load_text(Loader *l, const char *path, dev_t dev, ino_t ino, const char *text, size_t size,
                      const LegacyService *legacy) {
        const char *ipath = snapshot_intern(l->snapshot, path, strlen(path));
        l->stack[l->depth++] = (LoaderFrame) { ipath, dev, ino };
        l->snapshot->n_files++;
        parser_parse(l, ipath, text, size, legacy);
        l->depth--;
}

static bool check_budget(Loader *l, size_t size, const char *file, unsigned line, unsigned column) {
        if (l->n_loads + 1 > LOADER_MAX_LOADS || l->total_bytes + size > LOADER_MAX_TOTAL_BYTES) {
                if (!l->over_budget)
                        snapshot_add_diagnostic(l->snapshot, file ? file : ".", line, column,
                                                "the policy reads more than %u files or %llu MiB in all (includes "
                                                "repeated too often?); not reading any more",
                                                LOADER_MAX_LOADS, LOADER_MAX_TOTAL_BYTES >> 20);
                l->over_budget = true;
                return false;
        }
        l->n_loads++;
        l->total_bytes += size;
        return true;
}

static bool check_nesting(Loader *l, const char *path, dev_t dev, ino_t ino, const char *file, unsigned line,
                          unsigned column) {
        for (size_t i = 0; i < l->depth; i++)
                if (strcmp(l->stack[i].path, path) == 0 ||
                    (ino != 0 && l->stack[i].ino == ino && l->stack[i].dev == dev)) {
                        g_autoptr(GString) chain = g_string_new(NULL);
                        for (size_t k = i; k < l->depth; k++)
                                g_string_append_printf(chain, "%s -> ", l->stack[k].path);
                        g_string_append(chain, path);
                        snapshot_add_diagnostic(l->snapshot, file, line, column, "include cycle: %s%s%s%s", chain->str,
                                                strcmp(l->stack[i].path, path) != 0 ? " (which is " : "",
                                                strcmp(l->stack[i].path, path) != 0 ? l->stack[i].path : "",
                                                strcmp(l->stack[i].path, path) != 0 ? ")" : "");
                        return false;
                }
        if (l->depth >= LOADER_MAX_DEPTH) {
                snapshot_add_diagnostic(l->snapshot, file, line, column, "includes nested deeper than %d levels",
                                        LOADER_MAX_DEPTH);
                return false;
        }
        return true;
}

/* Read one file (override or disk) and parse it; file/line/column say where it was asked for. */
static void load_file(Loader *l, const char *path, const char *file, unsigned line, unsigned column,
                      const LegacyService *legacy) {
        PolicySnapshot *s = l->snapshot;
        const PolicyOverride *o = find_override(l, path);

        if (o) {
                if (!o->content) {
                        snapshot_add_diagnostic(s, file, line, column, "included file '%s' does not exist", path);
                        return;
                }
                size_t size = strlen(o->content);
                if (check_nesting(l, path, 0, 0, file, line, column) && check_budget(l, size, file, line, column))
                        load_text(l, path, 0, 0, o->content, size, legacy);
                return;
        }

        g_autofree char *full = g_build_filename(l->dir, path, NULL);
        struct stat st;
        if (stat(full, &st) < 0) {
                if (errno == ENOENT)
                        snapshot_add_diagnostic(s, file, line, column, "included file '%s' does not exist", path);
                else
                        snapshot_add_diagnostic(s, file, line, column, "cannot read '%s': %s", path, g_strerror(errno));
                return;
        }
        if (S_ISDIR(st.st_mode)) {
                snapshot_add_diagnostic(s, file, line, column, "'%s' is a directory; use !include-dir for directories",
                                        path);
                return;
        }
        if (!S_ISREG(st.st_mode)) {
                snapshot_add_diagnostic(s, file, line, column, "'%s' is not a regular file", path);
                return;
        }
        if (!check_nesting(l, path, st.st_dev, st.st_ino, file, line, column))
                return;

        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r = read_full_file(full, LOADER_MAX_FILE_SIZE, &text, &size);
        if (r == -EFBIG) {
                snapshot_add_diagnostic(s, path, 0, 0, "file is larger than %u bytes", LOADER_MAX_FILE_SIZE);
                return;
        }
        if (r < 0) {
                snapshot_add_diagnostic(s, path, 0, 0, "cannot read file: %s", g_strerror(-r));
                return;
        }
        if (check_budget(l, size, file, line, column))
                load_text(l, path, st.st_dev, st.st_ino, text, size, legacy);
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Load every policy file of a directory, in C-locale order.  reldir is ""
 * for the policy directory itself (then overrides take part).
 */
static void load_dir(Loader *l, const char *reldir, const char *file, unsigned line, unsigned column) {
        PolicySnapshot *s = l->snapshot;
        bool top = reldir[0] == '\0';
        g_autofree char *full = top ? g_strdup(l->dir) : g_build_filename(l->dir, reldir, NULL);
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);

        DIR *d = opendir(full);
        if (!d) {
                int e = errno;
                if (top)
                        snapshot_add_diagnostic(s, ".", 0, 0, "cannot read policy directory %s: %s", l->dir,
                                                g_strerror(e));
                else if (e == ENOENT)
                        snapshot_add_diagnostic(s, file, line, column, "included directory '%s' does not exist",
                                                reldir);
                else if (e == ENOTDIR)
                        snapshot_add_diagnostic(s, file, line, column, "'%s' is not a directory; use !include for files",
                                                reldir);
                else
                        snapshot_add_diagnostic(s, file, line, column, "cannot read directory '%s': %s", reldir,
                                                g_strerror(e));
                return;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                const char *name = de->d_name;
                if (name[0] == '.' || !has_policy_suffix(name))
                        continue; /* dotfiles, editor backups, READMEs: ignored */
                if (top && find_override(l, name))
                        continue; /* added below */
                g_autofree char *p = g_build_filename(full, name, NULL);
                struct stat st;
                if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
                        continue; /* like Qubes: only regular files (or links to them) */
                g_ptr_array_add(names, g_strdup(name));
        }
        closedir(d);
        if (top)
                for (size_t i = 0; i < l->n_overrides; i++) {
                        const PolicyOverride *o = &l->overrides[i];
                        if (!o->name || o->name[0] == '.' || strchr(o->name, '/') || !file_name_chars_ok(o->name)) {
                                snapshot_add_diagnostic(s, o->name ? o->name : "(null)", 0, 0,
                                                        "invalid policy file name: expected a plain name of 0-9, "
                                                        "a-z, '_', '.' and '-' ending in " POLICY_SUFFIX);
                                continue;
                        }
                        if (find_override(l, o->name) != o || !o->content || !has_policy_suffix(o->name))
                                continue;
                        g_ptr_array_add(names, g_strdup(o->name));
                }

        if (names->len > 1)
                qsort(names->pdata, names->len, sizeof(char *), compare_strings);
        /* Qubes: one bad name fails the whole directory (all or nothing). */
        bool bad = false;
        for (size_t i = 0; i < names->len; i++) {
                const char *name = names->pdata[i];
                if (!file_name_chars_ok(name)) {
                        g_autofree char *rel = top ? g_strdup(name) : g_build_filename(reldir, name, NULL);
                        snapshot_add_diagnostic(s, rel, 0, 0,
                                                "invalid policy file name: only 0-9, a-z, '_', '.' and '-' are allowed");
                        bad = true;
                }
        }
        if (bad)
                return;
        for (size_t i = 0; i < names->len; i++) {
                const char *name = names->pdata[i];
                g_autofree char *rel = top ? g_strdup(name) : g_build_filename(reldir, name, NULL);
                load_file(l, rel, top ? rel : file, top ? 0 : line, top ? 0 : column, NULL);
        }
}

void loader_include(Loader *l, const char *file, unsigned line, unsigned column, const char *untrusted_path,
                    size_t len, const LegacyService *legacy) {
        if (!l->dir) {
                snapshot_add_diagnostic(l->snapshot, file, line, column,
                                        "includes are not available in a policy given as one text");
                return;
        }
        g_autofree char *path = include_path_normalize(l, file, line, column, untrusted_path, len);
        if (!path)
                return;
        if (path[0] == '\0') {
                snapshot_add_diagnostic(l->snapshot, file, line, column, "'%.*s' names the policy directory; use "
                                        "!include-dir for directories", (int) len, untrusted_path);
                return;
        }
        load_file(l, path, file, line, column, legacy);
}

void loader_include_dir(Loader *l, const char *file, unsigned line, unsigned column, const char *untrusted_path,
                        size_t len) {
        if (!l->dir) {
                snapshot_add_diagnostic(l->snapshot, file, line, column,
                                        "includes are not available in a policy given as one text");
                return;
        }
        g_autofree char *path = include_path_normalize(l, file, line, column, untrusted_path, len);
        if (!path)
                return;
        if (path[0] == '\0') {
                snapshot_add_diagnostic(l->snapshot, file, line, column,
                                        "!include-dir of the policy directory itself would read every file twice");
                return;
        }
        load_dir(l, path, file, line, column);
}

int policy_snapshot_load(const char *policy_dir, const PolicyOverride *overrides, size_t n_overrides,
                         PolicySnapshot **ret) {
        if (!policy_dir || !ret || (n_overrides > 0 && !overrides))
                return -EINVAL;
        PolicySnapshot *s = snapshot_new();
        Loader l = { .snapshot = s, .dir = policy_dir, .overrides = overrides, .n_overrides = n_overrides };
        load_dir(&l, "", NULL, 0, 0);
        snapshot_compile(s);
        *ret = s;
        return 0;
}

int loader_load_buffer(const char *name, const char *untrusted_data, size_t size, const LegacyService *legacy,
                       PolicySnapshot **ret) {
        if (!name || (!untrusted_data && size > 0) || !ret)
                return -EINVAL;
        PolicySnapshot *s = snapshot_new();
        Loader l = { .snapshot = s };
        load_text(&l, name, 0, 0, untrusted_data ? untrusted_data : "", size, legacy);
        snapshot_compile(s);
        *ret = s;
        return 0;
}

int policy_snapshot_load_string(const char *name, const char *text, PolicySnapshot **ret) {
        if (!text)
                return -EINVAL;
        return loader_load_buffer(name, text, strlen(text), NULL, ret);
}
