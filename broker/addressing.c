/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/addressing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "common/fileio.h"
#include "common/log.h"
#include "federation/generation.h"

#define ADDRESSES_FILE "addresses"
#define ADDRESSES_MAX_SIZE (64 * 1024)

struct Addressing {
        char *path;          /* STATE/addresses */
        char *config_dir, *state_dir;
        uint32_t base;       /* host order, .0 of the /24 */
        char gateway[INET_ADDRSTRLEN];
        char subnet4[INET_ADDRSTRLEN + 3];
        bool have6;
        struct in6_addr prefix6; /* the /64, interface ID zero */
        char gateway6[INET6_ADDRSTRLEN];
        GHashTable *index;   /* name → GUINT index+1 (persistent and transient) */
        GHashTable *persistent; /* names whose index is on disk */
        GHashTable *in_use;  /* names looked up and not released since: running clients */
};

static int addressing_save(Addressing *a) {
        g_autoptr(GString) s = g_string_new("# vmfedd: client VM -> address index (10 + index in the subnet)\n");
        g_autoptr(GList) keys = g_hash_table_get_keys(a->persistent);

        keys = g_list_sort(keys, (GCompareFunc) strcmp);
        for (GList *l = keys; l; l = l->next)
                g_string_append_printf(s, "%s %u\n", (char *) l->data,
                                       GPOINTER_TO_UINT(g_hash_table_lookup(a->index, l->data)) - 1);
        return write_file_atomic(a->path, s->str, s->len, 0644);
}

/*
 * A line is "NAME INDEX".  Anything else, an index out of range, a name or an
 * index seen before is skipped with a warning naming the line: a hand-edited
 * or damaged file never gives two VMs one address (the VM skipped gets a free
 * index, written back at its next lookup).
 */
static void addressing_load(Addressing *a) {
        _cleanup_free_ char *text = NULL;
        g_auto(GStrv) lines = NULL;
        g_autofree bool *used = g_new0(bool, ADDRESSING_MAX_CLIENTS);
        int r;

        r = read_full_file(a->path, ADDRESSES_MAX_SIZE, &text, NULL);
        if (r < 0) {
                if (r != -ENOENT)
                        log_warning_errno(r, "Cannot read %s: %m; client VMs get new addresses.", a->path);
                return;
        }
        lines = g_strsplit(text, "\n", -1);
        for (size_t i = 0; lines[i]; i++) {
                const char *l = lines[i];
                char name[64], idx_text[8], end;
                unsigned idx;

                if (!*l || *l == '#')
                        continue;
                if (sscanf(l, "%63s %7[0-9] %c", name, idx_text, &end) != 2 ||
                    (idx = (unsigned) strtoul(idx_text, NULL, 10)) >= ADDRESSING_MAX_CLIENTS) {
                        log_warning("%s:%zu: not \"NAME INDEX\" with an index below %u; line ignored.", a->path,
                                    i + 1, ADDRESSING_MAX_CLIENTS);
                        continue;
                }
                bool name_seen = g_hash_table_contains(a->index, name);
                if (name_seen || used[idx]) {
                        log_warning("%s:%zu: %s %s already given; line ignored.", a->path, i + 1,
                                    name_seen ? "name" : "index", name_seen ? name : idx_text);
                        continue;
                }
                used[idx] = true;
                g_hash_table_insert(a->index, g_strdup(name), GUINT_TO_POINTER(idx + 1));
                g_hash_table_add(a->persistent, g_strdup(name));
        }
}

int addressing_new(const char *config_dir, const char *state_dir, const char *subnet, Addressing **ret) {
        g_autofree char *net = NULL;
        struct in_addr in;
        const char *slash;

        subnet = subnet ? subnet : "10.137.0.0/24";
        slash = strchr(subnet, '/');
        if (!slash || strcmp(slash, "/24") != 0)
                return -EINVAL;
        net = g_strndup(subnet, slash - subnet);
        if (inet_pton(AF_INET, net, &in) != 1 || (ntohl(in.s_addr) & 0xff) != 0)
                return -EINVAL;

        Addressing *a = g_new0(Addressing, 1);
        a->path = g_build_filename(state_dir, ADDRESSES_FILE, NULL);
        a->config_dir = g_strdup(config_dir);
        a->state_dir = g_strdup(state_dir);
        a->base = ntohl(in.s_addr);
        in.s_addr = htonl(a->base + 1);
        inet_ntop(AF_INET, &in, a->gateway, sizeof a->gateway);
        g_strlcpy(a->subnet4, subnet, sizeof a->subnet4);
        a->index = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        a->persistent = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        a->in_use = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        addressing_load(a);
        (void) addressing_set_subnet6(a, NULL);
        *ret = a;
        return 0;
}

Addressing *addressing_free(Addressing *a) {
        if (!a)
                return NULL;
        g_hash_table_unref(a->index);
        g_hash_table_unref(a->persistent);
        g_hash_table_unref(a->in_use);
        g_free(a->path);
        g_free(a->config_dir);
        g_free(a->state_dir);
        g_free(a);
        return NULL;
}

static int addressing_free_index(Addressing *a, unsigned *ret) {
        g_autofree bool *used = g_new0(bool, ADDRESSING_MAX_CLIENTS);
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, a->index);
        while (g_hash_table_iter_next(&it, NULL, &v))
                used[GPOINTER_TO_UINT(v) - 1] = true;
        for (unsigned i = 0; i < ADDRESSING_MAX_CLIENTS; i++)
                if (!used[i]) {
                        *ret = i;
                        return 0;
                }
        return -ENOSPC;
}

/* The VMs whose index must stay: those of vms.d/ and of every generation a rollback can bring back. */
static int addressing_wanted(Addressing *a, GHashTable **ret) {
        g_autofree char *vms = g_build_filename(a->config_dir, "vms.d", NULL);
        g_autoptr(GHashTable) names = NULL;
        g_autoptr(GError) e = NULL;
        g_autoptr(GDir) d = NULL;
        const char *n;
        int r;

        r = generation_vm_names(a->state_dir, &names);
        if (r < 0)
                return r;
        d = g_dir_open(vms, 0, &e);
        if (!d && !g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                return -EIO;
        while (d && (n = g_dir_read_name(d)))
                if (n[0] != '.' && g_str_has_suffix(n, ".vm"))
                        g_hash_table_add(names, g_strndup(n, strlen(n) - 3));
        *ret = steal_pointer(&names);
        return 0;
}

/*
 * The subnet is full: release the index of every VM of STATE/addresses that
 * is neither in vms.d/, nor in a retained generation, nor running (looked up
 * and not released).  When in doubt (a directory cannot be read) nothing is
 * released.  Only when needed, so an address is reused as late as possible.
 */
static unsigned addressing_reclaim(Addressing *a) {
        g_autoptr(GHashTable) wanted = NULL;
        GHashTableIter it;
        gpointer key;
        unsigned released = 0;
        int r;

        r = addressing_wanted(a, &wanted);
        if (r < 0) {
                log_warning_errno(r, "Cannot list the VMs of vms.d/ and of the generations: %m; no address released.");
                return 0;
        }
        g_hash_table_iter_init(&it, a->persistent);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                if (g_hash_table_contains(wanted, key) || g_hash_table_contains(a->in_use, key))
                        continue;
                log_info("Address index %u of %s released: no such VM in vms.d/ nor in a kept generation.",
                         GPOINTER_TO_UINT(g_hash_table_lookup(a->index, key)) - 1, (char *) key);
                g_hash_table_remove(a->index, key);
                g_hash_table_iter_remove(&it);
                released++;
        }
        return released;
}

int addressing_lookup(Addressing *a, const char *vm, bool persistent, char **ret_address) {
        gpointer v = g_hash_table_lookup(a->index, vm);
        char buf[INET_ADDRSTRLEN];
        struct in_addr in;
        unsigned idx;
        int r;

        if (v)
                idx = GPOINTER_TO_UINT(v) - 1;
        else {
                unsigned released = 0;
                r = addressing_free_index(a, &idx);
                if (r == -ENOSPC && (released = addressing_reclaim(a)) > 0)
                        r = addressing_free_index(a, &idx);
                if (r < 0)
                        return log_error_errno(r, "No free client address left for %s in the /24.", vm);
                g_hash_table_insert(a->index, g_strdup(vm), GUINT_TO_POINTER(idx + 1));
                if (persistent)
                        g_hash_table_add(a->persistent, g_strdup(vm));
                if (persistent || released > 0) {
                        r = addressing_save(a);
                        if (r < 0)
                                log_warning_errno(r, "Cannot record the address of %s in %s: %m", vm, a->path);
                }
        }
        g_hash_table_add(a->in_use, g_strdup(vm));
        in.s_addr = htonl(a->base + ADDRESSING_FIRST_HOST + idx);
        inet_ntop(AF_INET, &in, buf, sizeof buf);
        *ret_address = g_strdup(buf);
        return 0;
}

void addressing_release(Addressing *a, const char *vm) {
        g_hash_table_remove(a->in_use, vm);
        if (!g_hash_table_contains(a->persistent, vm))
                g_hash_table_remove(a->index, vm);
}

const char *addressing_gateway(Addressing *a) {
        return a->gateway;
}

unsigned addressing_prefixlen(Addressing *a) {
        return 24;
}

/* The IPv4 host number n (1 … 254) as the interface ID whose hex digits are n's decimal digits: 10 → ::10. */
static void addressing_host6(const Addressing *a, unsigned n, char buf[static INET6_ADDRSTRLEN]) {
        struct in6_addr in6 = a->prefix6;
        unsigned id = (n / 100) << 8 | (n / 10 % 10) << 4 | n % 10;

        in6.s6_addr[14] = (uint8_t) (id >> 8);
        in6.s6_addr[15] = (uint8_t) id;
        inet_ntop(AF_INET6, &in6, buf, INET6_ADDRSTRLEN);
}

int addressing_set_subnet6(Addressing *a, const char *subnet6) {
        struct in6_addr in6 = {};

        if (subnet6 && strcmp(subnet6, "none") == 0) {
                a->have6 = false;
                a->gateway6[0] = 0;
                return 0;
        }
        if (subnet6) {
                g_autofree char *net = NULL;
                const char *slash = strchr(subnet6, '/');

                if (!slash || strcmp(slash, "/64") != 0)
                        return -EINVAL;
                net = g_strndup(subnet6, slash - subnet6);
                if (inet_pton(AF_INET6, net, &in6) != 1)
                        return -EINVAL;
                for (unsigned i = 8; i < 16; i++)
                        if (in6.s6_addr[i] != 0)
                                return -EINVAL;
        } else {
                g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
                uint8_t digest[32];
                gsize len = sizeof digest;

                g_checksum_update(sum, (const guchar *) "vmfed-ula:", strlen("vmfed-ula:"));
                g_checksum_update(sum, (const guchar *) a->subnet4, strlen(a->subnet4));
                g_checksum_get_digest(sum, digest, &len);
                in6.s6_addr[0] = 0xfd; /* RFC 4193: fd + 40-bit global ID + 16-bit subnet ID 0 */
                memcpy(&in6.s6_addr[1], digest, 5);
        }
        a->prefix6 = in6;
        a->have6 = true;
        addressing_host6(a, 1, a->gateway6);
        return 0;
}

const char *addressing_gateway6(Addressing *a) {
        return a->have6 ? a->gateway6 : NULL;
}

char *addressing_address6(Addressing *a, const char *v4) {
        char buf[INET6_ADDRSTRLEN];
        struct in_addr in;
        uint32_t host;

        if (!a->have6 || inet_pton(AF_INET, v4, &in) != 1)
                return NULL;
        host = ntohl(in.s_addr);
        if ((host & ~0xffu) != a->base || (host & 0xff) == 0 || (host & 0xff) == 0xff)
                return NULL;
        addressing_host6(a, host & 0xff, buf);
        return g_strdup(buf);
}
