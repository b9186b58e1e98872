/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The handler's end of a vmfed.OpenFile stream (services/file-open.h): the
 * file in a private directory, the viewer, the answer.  Everything from
 * in_fd is hostile: the name is checked as a plain file name and used only
 * inside the directory made for it, the size against the limit before a
 * byte is stored, the data must end exactly where the header said.
 */
#include "services/file-open.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "services/file-copy-partial.h"
#include "services/file-copy-wire.h"
#include "services/file-copy.h"
#include "services/file-open-dir.h"
#include "services/file-open-wire.h"

typedef struct Served {
        int out_fd;
        FileOpenDir *dir;      /* DIR/open-XXXXXX, locked */
        char *path;            /* .../NAME */
        uint64_t size;         /* as received */
        uint8_t digest[32];
} Served;

static void served_clear(Served *s) {
        s->dir = file_open_dir_free(s->dir); /* the file and whatever the viewer left beside it */
        g_free(s->path);
}

/* Fail with err and message: answered on the stream (best effort), and in *error. */
static int serve_fail(Served *s, GError **error, int err, const char *format, ...) G_GNUC_PRINTF(4, 5);
static int serve_fail(Served *s, GError **error, int err, const char *format, ...) {
        char line[FILE_OPEN_LINE_MAX + 2];
        va_list ap;

        va_start(ap, format);
        g_autofree char *message = g_strdup_vprintf(format, ap);
        va_end(ap);
        file_open_error_format(line, message);
        (void) file_copy_write_all(s->out_fd, line, strlen(line));
        g_set_error_literal(error, FILE_COPY_ERROR, -err, message);
        return err;
}

static int digest_fd(int fd, uint8_t out[32]) {
        g_autoptr(GChecksum) c = g_checksum_new(G_CHECKSUM_SHA256);
        _cleanup_free_ uint8_t *buf = malloc(256 * 1024);
        off_t off = 0;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = pread(fd, buf, 256 * 1024, off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                g_checksum_update(c, buf, (gssize) k);
                off += k;
        }
        gsize len = 32;
        g_checksum_get_digest(c, out, &len);
        return 0;
}

/* Header, directory, data: the file stored as received, under its name only once it is complete. */
static int serve_receive(Served *s, int in_fd, const char *dir, uint64_t max_bytes, GError **error) {
        char line[FILE_OPEN_LINE_MAX + 1], name[FILE_OPEN_NAME_MAX + 1];
        _cleanup_(file_copy_partial_abort) FileCopyPartial p = FILE_COPY_PARTIAL_INIT;
        const char *why = NULL;
        uint64_t untrusted_size, got = 0;
        bool use_tmpfile = true;
        size_t len;

        int r = file_open_read_line(in_fd, line, &len);
        if (r == -EPIPE && len == 0)
                return serve_fail(s, error, -EPIPE, "The stream ended before its header: nothing to open.");
        if (r == -EPIPE || r == -EBADMSG)
                return serve_fail(s, error, -EBADMSG, "The stream's header is not a line of at most %d bytes.",
                                  FILE_OPEN_LINE_MAX);
        if (r < 0)
                return serve_fail(s, error, r, "Cannot read the stream: %s", g_strerror(-r));
        r = file_open_header_parse(line, len, &untrusted_size, name, &why);
        if (r < 0)
                return serve_fail(s, error, r, "Bad vmfed.OpenFile header: %s.", why);
        if (untrusted_size > max_bytes)
                return serve_fail(s, error, -EFBIG,
                                  "The file is %" PRIu64 " bytes, over this VM's limit of %" PRIu64 " bytes.",
                                  untrusted_size, max_bytes);
        uint64_t size = untrusted_size;
        r = file_open_dir_new(dir, &s->dir);
        if (r < 0)
                return serve_fail(s, error, r, "Cannot make a directory in %s: %s", dir, g_strerror(-r));
        r = file_copy_partial_open(&p, s->dir->fd, 0600, &use_tmpfile);
        if (r < 0)
                return serve_fail(s, error, r, "Cannot create the file: %s", g_strerror(-r));
        r = file_open_copy(in_fd, p.fd, size, &got);
        if (r == -ENODATA)
                return serve_fail(s, error, r, "The stream ended after %" PRIu64 " of the file's %" PRIu64 " bytes.",
                                  got, size);
        if (r < 0)
                return serve_fail(s, error, r, "Cannot store the file (%" PRIu64 " of %" PRIu64 " bytes): %s", got,
                                  size, g_strerror(-r));
        r = file_open_expect_eof(in_fd);
        if (r < 0)
                return serve_fail(s, error, r == -EBADMSG ? r : -EIO, "%s",
                                  r == -EBADMSG ? "More data followed the file's size: not a vmfed.OpenFile stream."
                                                : "Cannot read the stream's end.");
        if (fsync(p.fd) < 0)
                return serve_fail(s, error, -errno, "Cannot store the file: %s", g_strerror(errno));
        r = file_copy_partial_link(&p, s->dir->fd, name);
        if (r < 0)
                return serve_fail(s, error, r, "Cannot name the file: %s", g_strerror(-r));
        s->path = g_build_filename(s->dir->path, name, NULL);
        _cleanup_close_ int fd = open(s->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || (r = digest_fd(fd, s->digest)) < 0)
                return serve_fail(s, error, fd < 0 ? -errno : r, "Cannot read the file back: %s",
                                  g_strerror(fd < 0 ? errno : -r));
        s->size = size;
        return 0;
}

static int serve_view(Served *s, char **viewer, GError **error) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_autoptr(GError) e = NULL;
        GPid pid;
        int status;

        for (char **a = viewer; *a; a++)
                g_ptr_array_add(argv, *a);
        g_ptr_array_add(argv, s->path);
        g_ptr_array_add(argv, NULL);
        if (!g_spawn_async_with_fds(NULL, (char **) argv->pdata, NULL,
                                    G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL, NULL,
                                    NULL, &pid, -1, STDERR_FILENO, STDERR_FILENO, &e))
                return serve_fail(s, error, -ENOEXEC, "Cannot run the viewer %s: %s", viewer[0], e->message);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return serve_fail(s, error, -errno, "Cannot wait for the viewer: %s", g_strerror(errno));
        g_spawn_close_pid(pid);
        if (WIFEXITED(status))
                log_info("The viewer %s exited with status %d.", viewer[0], WEXITSTATUS(status));
        else
                log_info("The viewer %s was killed by signal %d.", viewer[0], WTERMSIG(status));
        return 0;
}

/* After the viewer: the file as it is now, back when its bytes differ. */
static int serve_answer(Served *s, uint64_t max_bytes, bool *ret_changed, GError **error) {
        char line[FILE_OPEN_LINE_MAX + 2];
        uint8_t digest[32];
        struct stat st = {};
        bool changed = false;
        int r;

        _cleanup_close_ int fd = open(s->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
                log_info("The viewer removed the file: it comes back unchanged.");
        else if (fd < 0 || fstat(fd, &st) < 0)
                return serve_fail(s, error, -errno, "Cannot read the file after the viewer: %s", g_strerror(errno));
        else if (!S_ISREG(st.st_mode))
                return serve_fail(s, error, -EINVAL, "After the viewer the file is no longer a regular file.");
        else if ((uint64_t) st.st_size > max_bytes)
                return serve_fail(s, error, -EFBIG, "After the viewer the file is %" PRIu64 " bytes, over this VM's "
                                  "limit of %" PRIu64 " bytes.", (uint64_t) st.st_size, max_bytes);
        else {
                /* Always by content: an edit within a coarse timestamp tick keeps mtime, size and inode. */
                r = digest_fd(fd, digest);
                if (r < 0)
                        return serve_fail(s, error, r, "Cannot read the file after the viewer: %s", g_strerror(-r));
                changed = (uint64_t) st.st_size != s->size || memcmp(digest, s->digest, 32) != 0;
        }
        file_open_answer_format(line, changed, changed ? (uint64_t) st.st_size : 0);
        r = file_copy_write_all(s->out_fd, line, strlen(line));
        if (r >= 0 && changed) {
                uint64_t sent = 0;
                r = file_open_copy(fd, s->out_fd, (uint64_t) st.st_size, &sent);
                if (r == -ENODATA) /* the caller gets less than announced: it keeps its file */
                        return g_set_error(error, FILE_COPY_ERROR, EIO, "The file shrank while it was sent back "
                                           "(%" PRIu64 " of %" PRIu64 " bytes).", sent, (uint64_t) st.st_size),
                               -EIO;
        }
        if (r < 0) {
                g_set_error(error, FILE_COPY_ERROR, -r, "Cannot answer the caller: %s", g_strerror(-r));
                return r;
        }
        if (ret_changed)
                *ret_changed = changed;
        return 0;
}

int file_open_serve(int in_fd, int out_fd, const char *dir, uint64_t max_bytes, char **viewer, bool *ret_changed,
                    GError **error) {
        Served s = { .out_fd = out_fd };

        int r = serve_receive(&s, in_fd, dir, max_bytes, error);
        if (r >= 0)
                r = serve_view(&s, viewer, error);
        if (r >= 0)
                r = serve_answer(&s, max_bytes, ret_changed, error);
        served_clear(&s);
        return r;
}
