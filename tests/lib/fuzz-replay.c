/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The main() of a fuzz target's replay build (every build without
 * -Dfuzz=true, and the 'fuzz-*' unit tests of every build): run
 * LLVMFuzzerTestOneInput() once on each file named on the command line, or
 * on each regular file of a directory named there.  A crash, an abort or a
 * sanitizer report fails the test; so does an unreadable or empty corpus.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
        char *text = NULL;
        gsize len = 0;
        GError *e = NULL;

        if (!g_file_get_contents(path, &text, &len, &e)) {
                fprintf(stderr, "cannot read %s: %s\n", path, e->message);
                g_error_free(e);
                return -1;
        }
        /* An exact-size copy, so that ASan sees a read past the end. */
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, text, len);
        g_free(text);
        LLVMFuzzerTestOneInput(copy, len);
        free(copy);
        return 0;
}

static int compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char **argv) {
        unsigned n = 0;

        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "cannot stat %s\n", argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        n++;
                        continue;
                }
                GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
                DIR *d = opendir(argv[i]);
                if (!d) {
                        fprintf(stderr, "cannot open %s\n", argv[i]);
                        return 1;
                }
                for (struct dirent *de; (de = readdir(d));)
                        if (de->d_name[0] != '.')
                                g_ptr_array_add(names, g_build_filename(argv[i], de->d_name, NULL));
                closedir(d);
                qsort(names->pdata, names->len, sizeof(char *), compare);
                for (guint j = 0; j < names->len; j++) {
                        const char *p = g_ptr_array_index(names, j);
                        if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
                                continue;
                        fprintf(stderr, "%s\n", p);
                        if (run_file(p) < 0)
                                return 1;
                        n++;
                }
                g_ptr_array_unref(names);
        }
        printf("%u inputs ran\n", n);
        if (n == 0) {
                fprintf(stderr, "no inputs: the corpus is missing\n");
                return 1;
        }
        return 0;
}
