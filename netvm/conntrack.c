/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/conntrack.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <glib.h>

#include "common/log.h"

/*
 * libmnl rather than libnetfilter_conntrack: libmnl is already linked for
 * nftables, the two messages needed (a dump, a delete by tuple) are small,
 * and the netvm image needs no further library.
 */

struct Conntrack {
        struct mnl_socket *nl;
        uint32_t portid;
        uint32_t seq;
};

int conntrack_open(Conntrack **ret) {
        g_autofree Conntrack *ct = g_new0(Conntrack, 1);

        ct->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
        if (!ct->nl)
                return negative_errno();
        if (mnl_socket_bind(ct->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
                int r = negative_errno();
                mnl_socket_close(ct->nl);
                return r;
        }
        ct->portid = mnl_socket_get_portid(ct->nl);
        ct->seq = (uint32_t) time(NULL);
        *ret = g_steal_pointer(&ct);
        return 0;
}

Conntrack *conntrack_free(Conntrack *ct) {
        if (ct) {
                mnl_socket_close(ct->nl);
                g_free(ct);
        }
        return NULL;
}

static struct nlmsghdr *msg_start(Conntrack *ct, char *buf, uint16_t type, uint16_t flags, uint8_t family) {
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        nlh->nlmsg_seq = ++ct->seq;
        struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof *nfg);
        nfg->nfgen_family = family;
        nfg->version = NFNETLINK_V0;
        nfg->res_id = 0;
        return nlh;
}

/* Send nlh and read until its ACK / the dump's end, passing data messages to cb. */
static int ct_talk(Conntrack *ct, struct nlmsghdr *nlh, mnl_cb_t cb, void *data) {
        char buf[MNL_SOCKET_BUFFER_SIZE];
        uint32_t seq = nlh->nlmsg_seq;

        if (mnl_socket_sendto(ct->nl, nlh, nlh->nlmsg_len) < 0)
                return negative_errno();
        for (;;) {
                ssize_t n = mnl_socket_recvfrom(ct->nl, buf, sizeof buf);
                if (n < 0)
                        return negative_errno();
                int r = mnl_cb_run(buf, (size_t) n, seq, ct->portid, cb, data);
                if (r < 0)
                        return negative_errno();
                if (r == MNL_CB_STOP)
                        return 0;
        }
}

typedef struct Match {
        const NetAddr *addrs;
        size_t n_addrs;
        int family;             /* of the entry being looked at */
        GPtrArray *found;       /* GBytes: the entry's family (one byte), CTA_TUPLE_ORIG, CTA_ZONE if any */
} Match;

static bool addr_wanted(const Match *m, const void *bytes) {
        for (size_t i = 0; i < m->n_addrs; i++)
                if (m->addrs[i].family == m->family &&
                    memcmp(m->addrs[i].bytes, bytes, netaddr_len(&m->addrs[i])) == 0)
                        return true;
        return false;
}

/* Does a CTA_TUPLE_ORIG/REPLY attribute name a wanted address as source or destination? */
static bool tuple_matches(const Match *m, const struct nlattr *tuple) {
        const struct nlattr *a, *b;
        size_t len = m->family == AF_INET ? 4 : 16;
        uint16_t src = m->family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC;
        uint16_t dst = m->family == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST;

        mnl_attr_for_each_nested(a, tuple) {
                if (mnl_attr_get_type(a) != CTA_TUPLE_IP)
                        continue;
                mnl_attr_for_each_nested(b, a) {
                        uint16_t t = mnl_attr_get_type(b);
                        if ((t == src || t == dst) && mnl_attr_get_payload_len(b) == len &&
                            addr_wanted(m, mnl_attr_get_payload(b)))
                                return true;
                }
        }
        return false;
}

static int dump_cb(const struct nlmsghdr *nlh, void *data) {
        Match *m = data;
        const struct nlattr *a, *orig = NULL, *zone = NULL;
        bool hit = false;
        const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);

        m->family = nfg->nfgen_family;
        if (m->family != AF_INET && m->family != AF_INET6)
                return MNL_CB_OK;

        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                switch (mnl_attr_get_type(a)) {
                case CTA_TUPLE_ORIG:
                        orig = a;
                        hit = hit || tuple_matches(m, a);
                        break;
                case CTA_TUPLE_REPLY:
                        hit = hit || tuple_matches(m, a);
                        break;
                case CTA_ZONE:
                        zone = a;
                        break;
                }
        }
        if (hit && orig) {
                GByteArray *key = g_byte_array_new();
                guint8 family = (guint8) m->family;
                g_byte_array_append(key, &family, 1);
                g_byte_array_append(key, (const guint8 *) orig, MNL_ALIGN(orig->nla_len));
                if (zone)
                        g_byte_array_append(key, (const guint8 *) zone, MNL_ALIGN(zone->nla_len));
                g_ptr_array_add(m->found, g_byte_array_free_to_bytes(key));
        }
        return MNL_CB_OK;
}

static int delete_one(Conntrack *ct, GBytes *key) {
        char buf[MNL_SOCKET_BUFFER_SIZE];
        gsize len;
        const uint8_t *data = g_bytes_get_data(key, &len);
        int family = data[0];
        const void *attrs = data + 1;
        len--;

        struct nlmsghdr *nlh = msg_start(ct, buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, (uint8_t) family);
        if (len > sizeof buf - nlh->nlmsg_len)
                return -E2BIG;
        /* The attributes as the kernel sent them: the original tuple names the entry. */
        memcpy((char *) nlh + nlh->nlmsg_len, attrs, len);
        nlh->nlmsg_len += (uint32_t) len;
        int r = ct_talk(ct, nlh, NULL, NULL);
        return r == -ENOENT ? 0 : r;   /* gone meanwhile (timed out, or a reply deleted it) */
}

int conntrack_flush_addrs(Conntrack *ct, const NetAddr *addrs, size_t n_addrs, unsigned *n_deleted) {
        if (n_deleted)
                *n_deleted = 0;
        if (n_addrs == 0)
                return 0;
        /*
         * One dump of both families: the kernel walks its whole hash table
         * (nf_conntrack_buckets, shared by all namespaces) whatever is in it.
         */
        g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
        Match m = { addrs, n_addrs, AF_UNSPEC, found };
        char buf[MNL_SOCKET_BUFFER_SIZE];
        struct nlmsghdr *nlh = msg_start(ct, buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, AF_UNSPEC);
        int r = ct_talk(ct, nlh, dump_cb, &m);
        if (r < 0)
                return r;
        for (guint i = 0; i < found->len; i++) {
                r = delete_one(ct, found->pdata[i]);
                if (r < 0)
                        return r;
        }
        if (n_deleted)
                *n_deleted = found->len;
        return 0;
}
