/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/clipboard.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/auth.h"
#include "common/log.h"
#include "common/macro.h"

struct Clipboard {
        uint64_t max_size;
        bool clear_after_paste;
        uint64_t generation;

        char *owner; /* NULL: empty */
        char *mime;
        int memfd;
        void *map;   /* read-only mapping of memfd, NULL for size 0 */
        size_t size;
};

Clipboard *clipboard_new(uint64_t max_size, bool clear_after_paste) {
        Clipboard *c = g_new0(Clipboard, 1);
        c->max_size = max_size;
        c->clear_after_paste = clear_after_paste;
        c->memfd = -EBADF;
        return c;
}

static void clipboard_drop(Clipboard *c) {
        if (c->map)
                munmap(c->map, c->size);
        c->map = NULL;
        c->memfd = safe_close(c->memfd);
        c->size = 0;
        g_clear_pointer(&c->owner, g_free);
        g_clear_pointer(&c->mime, g_free);
        c->generation++;
}

Clipboard *clipboard_free(Clipboard *c) {
        if (!c)
                return NULL;
        clipboard_drop(c);
        g_free(c);
        return NULL;
}

uint64_t clipboard_max_size(Clipboard *c) {
        return c->max_size;
}

bool clipboard_clear_after_paste(Clipboard *c) {
        return c->clear_after_paste;
}

uint64_t clipboard_generation(Clipboard *c) {
        return c->generation;
}

static void clipboard_emit(Broker *b) {
        if (broker_bus(b))
                (void) sd_bus_emit_properties_changed(broker_bus(b), BROKER_ROOT_PATH, CLIPBOARD_INTERFACE, "Owner",
                                                      "Mime", "Size", NULL);
}

/* Seal memfd (no writable mapping of it may be left) and map it read-only. */
static int memfd_seal_map(int fd, size_t size, void **ret_map) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if ((uint64_t) st.st_size != size)
                return -EINVAL;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return negative_errno();
        void *map = NULL;
        if (size > 0) {
                map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
                if (map == MAP_FAILED)
                        return negative_errno();
        }
        *ret_map = map;
        return 0;
}

/* A sealed memfd holding data, mapped read-only. */
static int sealed_memfd(const void *data, size_t size, int *ret_fd, void **ret_map) {
        _cleanup_close_ int fd = clipboard_memfd_new(size);
        if (fd < 0)
                return fd;
        /* One copy, by pwrite(2): faster here than a memcpy into a fresh shared mapping, whose pages
         * fault in one by one (broker/guest-clipboard-stream.c has the figures). */
        for (size_t off = 0; off < size;) {
                ssize_t k = pwrite(fd, (const char *) data + off, size - off, (off_t) off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? negative_errno() : -EIO;
                off += (size_t) k;
        }
        int r = memfd_seal_map(fd, size, ret_map);
        if (r < 0)
                return r;
        *ret_fd = steal_fd(&fd);
        return 0;
}

int clipboard_memfd_new(uint64_t size) {
        _cleanup_close_ int fd = memfd_create("vmfed-clipboard", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negative_errno();
        if (size > 0 && ftruncate(fd, (off_t) size) < 0)
                return negative_errno();
        return steal_fd(&fd);
}

static int clipboard_check(Clipboard *c, const char *mime, const void *data, size_t size, char **why) {
        if (size > c->max_size) {
                *why = g_strdup_printf("The clipboard takes at most %" G_GUINT64_FORMAT " bytes; %zu bytes were "
                                       "not copied (nothing was truncated).",
                                       c->max_size, size);
                return -EFBIG;
        }
        if (g_str_has_prefix(mime, "text/") && !g_utf8_validate_len(data, size, NULL)) {
                *why = g_strdup_printf("%s must be UTF-8 (without NUL bytes); nothing was copied.", mime);
                return -EILSEQ;
        }
        return 0;
}

static void clipboard_take(Broker *b, Clipboard *c, const char *owner, const char *mime, int fd, void *map,
                           size_t size) {
        clipboard_drop(c);
        c->memfd = fd;
        c->map = map;
        c->size = size;
        c->owner = g_strdup(owner);
        c->mime = g_strdup(mime);
        clipboard_emit(b);
}

int clipboard_copy_memfd(Broker *b, Clipboard *c, const char *owner, const char *mime, int memfd, size_t size,
                         char **why) {
        _cleanup_close_ int fd = memfd;
        void *map = NULL;
        int r;

        if (size > c->max_size)
                return clipboard_check(c, mime, NULL, size, why);
        r = memfd_seal_map(fd, size, &map);
        if (r < 0) {
                *why = g_strdup_printf("Cannot store the clipboard: %s", strerror(-r));
                return r;
        }
        r = clipboard_check(c, mime, map ? map : "", size, why);
        if (r < 0) {
                if (map)
                        munmap(map, size);
                return r;
        }
        clipboard_take(b, c, owner, mime, steal_fd(&fd), map, size);
        return 0;
}

int clipboard_dup_memfd(Clipboard *c) {
        if (!c->owner)
                return -ENOENT;
        int fd = fcntl(c->memfd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? negative_errno() : fd;
}

int clipboard_copy(Broker *b, Clipboard *c, const char *owner, const char *mime, const void *data, size_t size,
                   char **why) {
        int fd;
        void *map;
        int r;

        r = clipboard_check(c, mime, data, size, why);
        if (r < 0)
                return r;
        r = sealed_memfd(data, size, &fd, &map);
        if (r < 0) {
                *why = g_strdup_printf("Cannot store the clipboard: %s", strerror(-r));
                return r;
        }
        clipboard_take(b, c, owner, mime, fd, map, size);
        return 0;
}

int clipboard_peek(Clipboard *c, const char **ret_owner, const char **ret_mime, const void **ret_data,
                   size_t *ret_size) {
        if (!c->owner)
                return -ENOENT;
        *ret_owner = c->owner;
        *ret_mime = c->mime;
        *ret_data = c->map ? c->map : "";
        *ret_size = c->size;
        return 0;
}

void clipboard_clear(Broker *b, Clipboard *c, const char *why) {
        if (!c->owner)
                return;
        log_debug("Clipboard cleared (%s).", why);
        clipboard_drop(c);
        clipboard_emit(b);
}

/* ---- org.vmfed.Federation1.Clipboard ----------------------------------- */

static Clipboard *clipboard_of(Broker *b);

static void clear_done(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who, void *userdata) {
        if (!auth_audit_decision(b, m, allowed, how, who, &(AuthAction) {
                        .service = "vmfed.Admin.ClearClipboard",
                        .activity = "Clearing the clipboard",
                }))
                return;
        clipboard_clear(b, clipboard_of(b), "cleared by the admin");
        (void) sd_bus_reply_method_return(m, NULL);
}

static int method_clear(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Broker *b = userdata;

        /* No-op short-circuit: an empty clipboard needs no authorization to stay empty. */
        if (!clipboard_of(b)->owner)
                return sd_bus_reply_method_return(m, NULL);
        auth_check_manage(b, m, clear_done, NULL, NULL);
        return 1;
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Clipboard *c = clipboard_of(userdata);

        if (strcmp(property, "Owner") == 0)
                return sd_bus_message_append(reply, "s", c->owner ? c->owner : "");
        if (strcmp(property, "Mime") == 0)
                return sd_bus_message_append(reply, "s", c->mime ? c->mime : "");
        if (strcmp(property, "MaxSize") == 0)
                return sd_bus_message_append(reply, "t", c->max_size);
        return sd_bus_message_append(reply, "t", (uint64_t) c->size);
}

static const sd_bus_vtable clipboard_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Owner", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Mime", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Size", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxSize", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Clear", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_clear, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

#include "broker/guest-services.h"

static Clipboard *clipboard_of(Broker *b) {
        return guest_services_clipboard(b);
}

int clipboard_register(Broker *b, Clipboard *c) {
        return sd_bus_add_object_vtable(broker_bus(b), NULL, BROKER_ROOT_PATH, CLIPBOARD_INTERFACE, clipboard_vtable,
                                        b);
}
