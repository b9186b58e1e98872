/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/policy-file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/macro.h"

static const char suffix[] = ".policy";

bool policy_file_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n <= strlen(suffix) || n > POLICY_FILE_NAME_MAX)
                return false;
        if (name[0] == '.' || strcmp(name + n - strlen(suffix), suffix) != 0)
                return false;
        if (strstr(name, ".."))
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || *p == '_' || *p == '.' ||
                      *p == '-'))
                        return false;
        return true;
}

char *policy_file_etag(const char *content, size_t size) {
        return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *) content, size);
}

int policy_file_read(const char *dir, const char *name, char **ret_content, char **ret_etag) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        _cleanup_free_ char *content = NULL;
        size_t size;
        int r;

        r = read_full_file(path, POLICY_FILE_MAX, &content, &size);
        if (r < 0)
                return r;
        if (ret_etag)
                *ret_etag = policy_file_etag(content, size);
        if (ret_content)
                *ret_content = steal_pointer(&content);
        return 0;
}

static int cmp_names(gconstpointer a, gconstpointer b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int policy_file_list(const char *dir, GPtrArray **ret_names) {
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d) {
                if (errno != ENOENT)
                        return negative_errno();
                *ret_names = steal_pointer(&names);
                return 0;
        }
        while ((de = readdir(d))) {
                struct stat st;
                if (!policy_file_name_is_valid(de->d_name))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
                        continue;
                g_ptr_array_add(names, g_strdup(de->d_name));
        }
        closedir(d);
        g_ptr_array_sort(names, cmp_names);
        *ret_names = steal_pointer(&names);
        return 0;
}

int policy_file_write(const char *dir, const char *name, const char *content, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!policy_file_name_is_valid(name))
                return -EINVAL;
        r = mkdir_parents(dir, 0755);
        if (r < 0 && r != -EEXIST)
                return r;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return write_file_atomic_at(fd, name, content, size, 0644);
}

int policy_file_remove(const char *dir, const char *name) {
        _cleanup_close_ int fd = -EBADF;

        if (!policy_file_name_is_valid(name))
                return -EINVAL;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return unlink_durable_at(fd, name);
}
