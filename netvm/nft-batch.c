/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/nft-batch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libnftnl/common.h>

#include <glib.h>

#include "common/log.h"

/*
 * Room reserved before building one message: libnftnl does not bound-check.
 * The largest message vmfed builds (256 set elements with key and key end)
 * stays well under it; batch_done() asserts that.
 */
#define MSG_ROOM (64u * 1024)
/* BATCH_BEGIN goes in front of the messages, BATCH_END after them. */
#define BATCH_HDR NLMSG_ALIGN(sizeof(struct nlmsghdr) + sizeof(struct nfgenmsg))

struct NftSocket {
        struct mnl_socket *nl;
        uint32_t portid;
        uint32_t seq;
        int sndbuf;
        int rcvbuf;
};

struct NftBatch {
        char *buf;
        size_t used, alloc;
        GArray *types;          /* uint16_t msg type of each object message */
};

int nft_socket_open(NftSocket **ret) {
        g_autofree NftSocket *s = g_new0(NftSocket, 1);

        s->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
        if (!s->nl)
                return negative_errno();
        if (mnl_socket_bind(s->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
                int r = negative_errno();
                mnl_socket_close(s->nl);
                return r;
        }
        /* Extended acks carry the kernel's reason for a refusal; best effort. */
        int one = 1;
        (void) mnl_socket_setsockopt(s->nl, NETLINK_EXT_ACK, &one, sizeof one);
        (void) mnl_socket_setsockopt(s->nl, NETLINK_CAP_ACK, &one, sizeof one);
        s->portid = mnl_socket_get_portid(s->nl);
        s->seq = (uint32_t) time(NULL);
        *ret = g_steal_pointer(&s);
        return 0;
}

NftSocket *nft_socket_free(NftSocket *s) {
        if (!s)
                return NULL;
        mnl_socket_close(s->nl);
        g_free(s);
        return NULL;
}

NftBatch *nft_batch_new(void) {
        NftBatch *b = g_new0(NftBatch, 1);
        b->types = g_array_new(FALSE, FALSE, sizeof(uint16_t));
        return b;
}

NftBatch *nft_batch_free(NftBatch *b) {
        if (!b)
                return NULL;
        g_free(b->buf);
        g_array_unref(b->types);
        g_free(b);
        return NULL;
}

size_t nft_batch_size(const NftBatch *b) {
        return b->types->len;
}

static char *batch_reserve(NftBatch *b) {
        if (!b->buf)
                b->used = BATCH_HDR;
        if (b->alloc < b->used + MSG_ROOM + BATCH_HDR) {
                size_t n = MAX(b->alloc * 2, b->used + MSG_ROOM + BATCH_HDR);
                b->buf = g_realloc(b->buf, n);
                b->alloc = n;
        }
        return b->buf + b->used;
}

static struct nlmsghdr *batch_hdr(NftBatch *b, uint16_t msg_type, uint16_t family, uint16_t flags) {
        char *p = batch_reserve(b);
        /* The sequence number is set at commit time. */
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(p, msg_type, family, flags | NLM_F_ACK, 0);
        g_array_append_val(b->types, msg_type);
        return nlh;
}

/*
 * The buffer is not cleared (batch_reserve), and libmnl 1.0.4 (Debian 12)
 * leaves the padding after an attribute's payload unwritten (mnl_attr_put):
 * zero it, so that no stale heap bytes go to the kernel.  Nests carry
 * NLA_F_NESTED (libmnl's mnl_attr_nest_start sets it) and are walked; only
 * bytes past an attribute's nla_len and before the next one are written.
 */
static void attrs_zero_padding(char *p, size_t len) {
        while (len >= NLA_HDRLEN) {
                const struct nlattr *a = (const struct nlattr *) p;
                size_t alen = a->nla_len;
                if (alen < NLA_HDRLEN || alen > len)
                        return;
                size_t aligned = MIN((size_t) NLA_ALIGN(alen), len);
                if (a->nla_type & NLA_F_NESTED)
                        attrs_zero_padding(p + NLA_HDRLEN, alen - NLA_HDRLEN);
                memset(p + alen, 0, aligned - alen);
                p += aligned;
                len -= aligned;
        }
}

/* The padding of a whole nftables message (nlmsghdr, nfgenmsg, attributes). */
static void msg_zero_padding(struct nlmsghdr *nlh) {
        size_t head = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
        if (nlh->nlmsg_len > head)
                attrs_zero_padding((char *) nlh + head, nlh->nlmsg_len - head);
        memset((char *) nlh + nlh->nlmsg_len, 0, NLMSG_ALIGN(nlh->nlmsg_len) - nlh->nlmsg_len);
}

static void batch_done(NftBatch *b, struct nlmsghdr *nlh) {
        g_assert(nlh->nlmsg_len <= MSG_ROOM);
        msg_zero_padding(nlh);
        b->used += NLMSG_ALIGN(nlh->nlmsg_len);
}

void nft_batch_add_table(NftBatch *b, uint16_t msg_type, uint16_t flags, const struct nftnl_table *t) {
        struct nlmsghdr *nlh = batch_hdr(b, msg_type, (uint16_t) nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY), flags);
        nftnl_table_nlmsg_build_payload(nlh, t);
        batch_done(b, nlh);
}

void nft_batch_add_chain(NftBatch *b, uint16_t msg_type, uint16_t flags, const struct nftnl_chain *c) {
        struct nlmsghdr *nlh = batch_hdr(b, msg_type, (uint16_t) nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY), flags);
        nftnl_chain_nlmsg_build_payload(nlh, c);
        batch_done(b, nlh);
}

void nft_batch_add_rule(NftBatch *b, uint16_t msg_type, uint16_t flags, struct nftnl_rule *r) {
        struct nlmsghdr *nlh = batch_hdr(b, msg_type, (uint16_t) nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY), flags);
        nftnl_rule_nlmsg_build_payload(nlh, r);
        batch_done(b, nlh);
}

void nft_batch_add_set(NftBatch *b, uint16_t msg_type, uint16_t flags, struct nftnl_set *s) {
        struct nlmsghdr *nlh = batch_hdr(b, msg_type, (uint16_t) nftnl_set_get_u32(s, NFTNL_SET_FAMILY), flags);
        nftnl_set_nlmsg_build_payload(nlh, s);
        batch_done(b, nlh);
}

void nft_batch_add_elems(NftBatch *b, uint16_t msg_type, uint16_t flags, struct nftnl_set *s) {
        struct nlmsghdr *nlh = batch_hdr(b, msg_type, (uint16_t) nftnl_set_get_u32(s, NFTNL_SET_FAMILY), flags);
        nftnl_set_elems_nlmsg_build_payload(nlh, s);
        batch_done(b, nlh);
}

static const char *msg_type_name(uint16_t t) {
        switch (t) {
        case NFT_MSG_NEWTABLE:   return "add table";
        case NFT_MSG_DELTABLE:   return "delete table";
        case NFT_MSG_NEWCHAIN:   return "add chain";
        case NFT_MSG_DELCHAIN:   return "delete chain";
        case NFT_MSG_NEWRULE:    return "add rule";
        case NFT_MSG_DELRULE:    return "delete rule";
        case NFT_MSG_NEWSET:     return "add set";
        case NFT_MSG_DELSET:     return "delete set";
        case NFT_MSG_NEWSETELEM: return "add element";
        case NFT_MSG_DELSETELEM: return "delete element";
        default:                 return "message";
        }
}

static int ensure_bufsize(NftSocket *s, int opt, int *cur, size_t want) {
        if (want <= (size_t) *cur)
                return 0;
        int v = (int) MIN(want, (size_t) INT_MAX / 2);
        /* SO_*BUFFORCE needs CAP_NET_ADMIN, which changing nftables needs anyway. */
        if (setsockopt(mnl_socket_get_fd(s->nl), SOL_SOCKET, opt, &v, sizeof v) < 0)
                return negative_errno();
        *cur = v;
        return 0;
}

int nft_socket_commit(NftSocket *s, NftBatch *b) {
        size_t n = b->types->len;
        if (n == 0)
                return 0;

        char *buf = b->buf;
        uint32_t first = s->seq;
        s->seq += (uint32_t) n + 2;

        /* The buffer has room for BEGIN in front (batch_reserve) and END behind. */
        struct nlmsghdr *nlh = nftnl_batch_begin(buf, first);
        g_assert(NLMSG_ALIGN(nlh->nlmsg_len) == BATCH_HDR);
        /* Number the object messages first+1 .. first+n. */
        size_t p = BATCH_HDR;
        for (uint32_t i = 0; p < b->used; i++) {
                struct nlmsghdr *m = (struct nlmsghdr *) (buf + p);
                m->nlmsg_seq = first + 1 + i;
                p += NLMSG_ALIGN(m->nlmsg_len);
        }
        nlh = nftnl_batch_end(buf + b->used, first + (uint32_t) n + 1);
        size_t off = b->used + NLMSG_ALIGN(nlh->nlmsg_len);

        int r = ensure_bufsize(s, SO_SNDBUFFORCE, &s->sndbuf, off + 4096);
        if (r < 0)
                return log_error_errno(r, "nftables: cannot size the send buffer: %m");
        /* Each ack costs about one page of receive buffer accounting. */
        r = ensure_bufsize(s, SO_RCVBUFFORCE, &s->rcvbuf, MAX((n + 16) * 1280, (size_t) 262144));
        if (r < 0)
                return log_error_errno(r, "nftables: cannot size the receive buffer: %m");

        if (mnl_socket_sendto(s->nl, buf, off) < 0)
                return log_error_errno(negative_errno(), "nftables: sending the transaction failed: %m");

        /*
         * The kernel processes the whole batch inside sendmsg(), so every
         * ack is queued by now; read until the queue is empty.
         */
        size_t acked = 0;
        int first_error = 0;
        char rbuf[MNL_SOCKET_BUFFER_SIZE * 4];
        for (;;) {
                ssize_t k = recv(mnl_socket_get_fd(s->nl), rbuf, sizeof rbuf, MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return log_error_errno(negative_errno(), "nftables: reading acks failed: %m");
                }
                int len = (int) k;
                for (struct nlmsghdr *m = (struct nlmsghdr *) rbuf; mnl_nlmsg_ok(m, len);
                     m = mnl_nlmsg_next(m, &len)) {
                        if (m->nlmsg_type != NLMSG_ERROR)
                                continue;
                        const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);
                        uint32_t seq = e->msg.nlmsg_seq;
                        if (seq <= first || seq > first + n)
                                continue; /* not ours (an earlier transaction) */
                        acked++;
                        if (e->error != 0 && first_error == 0) {
                                first_error = e->error;
                                uint16_t t = g_array_index(b->types, uint16_t, seq - first - 1);
                                log_error_errno(e->error, "nftables: transaction refused at message %u of %zu (%s): %m",
                                                seq - first, n, msg_type_name(t));
                        }
                }
        }
        if (first_error != 0)
                return first_error;
        if (acked != n)
                return log_error_errno(-EPROTO, "nftables: %zu of %zu messages acknowledged", acked, n);
        return 0;
}

int nft_socket_dump(NftSocket *s, uint16_t msg_type, uint16_t family,
                    nft_dump_build_t build, void *build_data,
                    mnl_cb_t cb, void *cb_data) {
        char buf[MNL_SOCKET_BUFFER_SIZE * 4];
        uint32_t seq = s->seq++;

        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, msg_type, family, NLM_F_DUMP, seq);
        if (build)
                build(nlh, build_data);
        msg_zero_padding(nlh);
        if (mnl_socket_sendto(s->nl, nlh, nlh->nlmsg_len) < 0)
                return negative_errno();

        for (;;) {
                ssize_t k = mnl_socket_recvfrom(s->nl, buf, sizeof buf);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                int r = mnl_cb_run(buf, (size_t) k, seq, s->portid, cb, cb_data);
                if (r < 0)
                        return negative_errno();
                if (r == MNL_CB_STOP)
                        return 0;
        }
}
