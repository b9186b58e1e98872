/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

size_t netaddr_len(const NetAddr *a) {
        return a->family == AF_INET6 ? 16 : 4;
}

void netaddr_mask(NetAddr *a) {
        size_t len = netaddr_len(a);
        for (size_t i = 0; i < len; i++) {
                int bits = (int) a->prefixlen - (int) i * 8;
                if (bits >= 8)
                        continue;
                a->bytes[i] &= bits <= 0 ? 0 : (uint8_t) (0xff << (8 - bits));
        }
}

int netaddr_parse(const char *untrusted, bool allow_prefix, bool require_network, NetAddr *ret) {
        char buf[INET6_ADDRSTRLEN + 8];
        NetAddr a = {};

        if (!untrusted || strlen(untrusted) >= sizeof buf || *untrusted == '\0')
                return -EINVAL;
        strcpy(buf, untrusted);

        char *slash = strchr(buf, '/');
        if (slash) {
                if (!allow_prefix)
                        return -EINVAL;
                *slash = '\0';
        }

        if (inet_pton(AF_INET, buf, a.bytes) == 1) {
                a.family = AF_INET;
                a.prefixlen = 32;
        } else if (inet_pton(AF_INET6, buf, a.bytes) == 1) {
                a.family = AF_INET6;
                a.prefixlen = 128;
        } else
                return -EINVAL;

        if (slash) {
                const char *p = slash + 1;
                char *end;
                if (*p < '0' || *p > '9' || strlen(p) > 3)
                        return -EINVAL;
                unsigned long v = strtoul(p, &end, 10);
                if (*end != '\0' || v > a.prefixlen)
                        return -EINVAL;
                a.prefixlen = (uint8_t) v;
        }

        if (require_network) {
                NetAddr m = a;
                netaddr_mask(&m);
                if (memcmp(m.bytes, a.bytes, 16) != 0)
                        return -EINVAL;
        }
        *ret = a;
        return 0;
}

const char *netaddr_format(const NetAddr *a, char buf[static NETADDR_STRLEN]) {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(a->family, a->bytes, ip, sizeof ip);
        if (a->prefixlen == netaddr_len(a) * 8)
                snprintf(buf, NETADDR_STRLEN, "%s", ip);
        else
                snprintf(buf, NETADDR_STRLEN, "%s/%u", ip, a->prefixlen);
        return buf;
}

const char *netaddr_format_cidr(const NetAddr *a, char buf[static NETADDR_STRLEN]) {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(a->family, a->bytes, ip, sizeof ip);
        snprintf(buf, NETADDR_STRLEN, "%s/%u", ip, a->prefixlen);
        return buf;
}

bool netaddr_equal(const NetAddr *a, const NetAddr *b) {
        return a->family == b->family && a->prefixlen == b->prefixlen &&
               memcmp(a->bytes, b->bytes, netaddr_len(a)) == 0;
}

bool netaddr_contains(const NetAddr *n, const NetAddr *h) {
        if (n->family != h->family || h->prefixlen < n->prefixlen)
                return false;
        NetAddr x = *h, y = *n;
        x.prefixlen = n->prefixlen;
        netaddr_mask(&x);
        netaddr_mask(&y);
        return memcmp(x.bytes, y.bytes, netaddr_len(n)) == 0;
}

int mac_parse(const char *untrusted, uint8_t ret[6]) {
        uint8_t m[6];

        if (!untrusted || strlen(untrusted) != 17)
                return -EINVAL;
        for (int i = 0; i < 6; i++) {
                const char *p = untrusted + i * 3;
                unsigned v = 0;
                for (int j = 0; j < 2; j++) {
                        char c = p[j];
                        v <<= 4;
                        if (c >= '0' && c <= '9')
                                v |= (unsigned) (c - '0');
                        else if (c >= 'a' && c <= 'f')
                                v |= (unsigned) (c - 'a' + 10);
                        else if (c >= 'A' && c <= 'F')
                                v |= (unsigned) (c - 'A' + 10);
                        else
                                return -EINVAL;
                }
                if (i < 5 && p[2] != ':')
                        return -EINVAL;
                m[i] = (uint8_t) v;
        }
        if (m[0] & 1)
                return -EINVAL; /* multicast/broadcast */
        if (!(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]))
                return -EINVAL;
        memcpy(ret, m, 6);
        return 0;
}

const char *mac_format(const uint8_t mac[6], char buf[static MAC_STRLEN]) {
        snprintf(buf, MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x",
                 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        return buf;
}
