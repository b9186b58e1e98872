/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * nftables over libmnl: one socket, transactions and dumps.
 *
 * An NftBatch collects libnftnl objects as netlink messages between
 * NFNL_MSG_BATCH_BEGIN and NFNL_MSG_BATCH_END.  nft_socket_commit() sends
 * it as one transaction (the kernel applies all of it or none of it) and
 * reads every acknowledgement: each message carries NLM_F_ACK and the
 * commit only succeeds when every message was acknowledged.
 *
 * All functions return negative errno; libmnl's -1/errno is translated here.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "common/macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_table *, nftnl_table_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_chain *, nftnl_chain_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_set *, nftnl_set_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_set_elem *, nftnl_set_elem_free)

typedef struct NftSocket NftSocket;
typedef struct NftBatch NftBatch;

int nft_socket_open(NftSocket **ret);
NftSocket *nft_socket_free(NftSocket *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(NftSocket *, nft_socket_free)

NftBatch *nft_batch_new(void);
NftBatch *nft_batch_free(NftBatch *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(NftBatch *, nft_batch_free)

/* Number of object messages (without BEGIN/END) queued. */
size_t nft_batch_size(const NftBatch *b);

/* Queue one message; msg_type is NFT_MSG_*; flags besides NLM_F_REQUEST|NLM_F_ACK. */
void nft_batch_add_table(NftBatch *b, uint16_t msg_type, uint16_t flags, const struct nftnl_table *t);
void nft_batch_add_chain(NftBatch *b, uint16_t msg_type, uint16_t flags, const struct nftnl_chain *c);
void nft_batch_add_rule(NftBatch *b, uint16_t msg_type, uint16_t flags, struct nftnl_rule *r);
void nft_batch_add_set(NftBatch *b, uint16_t msg_type, uint16_t flags, struct nftnl_set *s);
/* Elements attached to s (NFT_MSG_NEWSETELEM/DELSETELEM). */
void nft_batch_add_elems(NftBatch *b, uint16_t msg_type, uint16_t flags, struct nftnl_set *s);

/*
 * Send b as one transaction and read every ack.  On failure nothing was
 * applied; the error of the first failing message is returned and logged
 * with that message's description.
 */
int nft_socket_commit(NftSocket *s, NftBatch *b);

/*
 * Dump: send a GET request built by build (nlh, userdata) with NLM_F_DUMP
 * and call cb for every reply message.  cb returns MNL_CB_OK or MNL_CB_ERROR.
 */
typedef void (*nft_dump_build_t)(struct nlmsghdr *nlh, void *userdata);
int nft_socket_dump(NftSocket *s, uint16_t msg_type, uint16_t family,
                    nft_dump_build_t build, void *build_data,
                    mnl_cb_t cb, void *cb_data);
