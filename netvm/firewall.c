/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/firewall.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct IcmpName {
        const char *name;
        int type;
} IcmpName;

static const IcmpName icmp4_names[] = {
        { "echo-reply", 0 },
        { "destination-unreachable", 3 },
        { "source-quench", 4 },
        { "redirect", 5 },
        { "echo-request", 8 },
        { "router-advertisement", 9 },
        { "router-solicitation", 10 },
        { "time-exceeded", 11 },
        { "parameter-problem", 12 },
        { "timestamp-request", 13 },
        { "timestamp-reply", 14 },
};

static const IcmpName icmp6_names[] = {
        { "destination-unreachable", 1 },
        { "packet-too-big", 2 },
        { "time-exceeded", 3 },
        { "parameter-problem", 4 },
        { "echo-request", 128 },
        { "echo-reply", 129 },
        { "nd-router-solicit", 133 },
        { "nd-router-advert", 134 },
        { "nd-neighbor-solicit", 135 },
        { "nd-neighbor-advert", 136 },
};

Firewall *firewall_new(void) {
        Firewall *fw = g_new0(Firewall, 1);
        fw->rules = g_array_new(FALSE, TRUE, sizeof(FwRule));
        fw->errors = g_string_new(NULL);
        return fw;
}

Firewall *firewall_free(Firewall *fw) {
        if (!fw)
                return NULL;
        g_array_unref(fw->rules);
        g_string_free(fw->errors, TRUE);
        g_free(fw);
        return NULL;
}

void firewall_add_error(Firewall *fw, const char *source, unsigned line, const char *fmt, ...) {
        va_list ap;
        if (line > 0)
                g_string_append_printf(fw->errors, "%s:%u: ", source, line);
        else
                g_string_append_printf(fw->errors, "%s: ", source);
        va_start(ap, fmt);
        g_string_append_vprintf(fw->errors, fmt, ap);
        va_end(ap);
        g_string_append_c(fw->errors, '\n');
        fw->n_errors++;
}

const char *fw_action_to_string(FwAction a) {
        return a == FW_ACTION_ACCEPT ? "accept" : a == FW_ACTION_REJECT ? "reject" : "drop";
}

static int parse_action(const char *s, FwAction *ret) {
        if (strcmp(s, "accept") == 0)
                *ret = FW_ACTION_ACCEPT;
        else if (strcmp(s, "drop") == 0)
                *ret = FW_ACTION_DROP;
        else if (strcmp(s, "reject") == 0)
                *ret = FW_ACTION_REJECT;
        else
                return -EINVAL;
        return 0;
}

static int parse_u16(const char *s, uint16_t *ret) {
        char *end;
        if (*s < '0' || *s > '9' || strlen(s) > 5)
                return -EINVAL;
        unsigned long v = strtoul(s, &end, 10);
        if (*end != '\0' || v == 0 || v > 65535)
                return -EINVAL;
        *ret = (uint16_t) v;
        return 0;
}

static int parse_icmp_type(const char *s, FwProto proto, int *ret) {
        const IcmpName *names = proto == FW_PROTO_ICMP ? icmp4_names : icmp6_names;
        size_t n = proto == FW_PROTO_ICMP ? G_N_ELEMENTS(icmp4_names) : G_N_ELEMENTS(icmp6_names);
        for (size_t i = 0; i < n; i++)
                if (strcmp(names[i].name, s) == 0) {
                        *ret = names[i].type;
                        return 0;
                }
        char *end;
        if (*s < '0' || *s > '9' || strlen(s) > 3)
                return -EINVAL;
        unsigned long v = strtoul(s, &end, 10);
        if (*end != '\0' || v > 255)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

#define FAIL(...) do { firewall_add_error(fw, source, line, __VA_ARGS__); return -EINVAL; } while (0)

/* "proto P [port N[-M] | type T]" from w[*ip] on (tokens w[0..n)); *ip moves past it. */
static int parse_proto(Firewall *fw, const char *source, unsigned line, const char *const *w, size_t n,
                       size_t *ip, FwRule *r) {
        size_t i = *ip;

        if (strcmp(w[i], "proto") != 0)
                FAIL("unexpected \"%s\" (expected proto)", w[i]);
        if (++i >= n)
                FAIL("\"proto\" needs tcp, udp, icmp or icmpv6");
        if (strcmp(w[i], "tcp") == 0)
                r->proto = FW_PROTO_TCP;
        else if (strcmp(w[i], "udp") == 0)
                r->proto = FW_PROTO_UDP;
        else if (strcmp(w[i], "icmp") == 0)
                r->proto = FW_PROTO_ICMP;
        else if (strcmp(w[i], "icmpv6") == 0)
                r->proto = FW_PROTO_ICMPV6;
        else
                FAIL("unknown protocol \"%s\" (expected tcp, udp, icmp or icmpv6)", w[i]);
        i++;

        if (r->proto == FW_PROTO_ICMP && r->has_dst && r->dst.family != AF_INET)
                FAIL("protocol icmp with an IPv6 destination (use icmpv6)");
        if (r->proto == FW_PROTO_ICMPV6 && r->has_dst && r->dst.family != AF_INET6)
                FAIL("protocol icmpv6 with an IPv4 destination (use icmp)");

        if (i < n && strcmp(w[i], "port") == 0) {
                if (r->proto != FW_PROTO_TCP && r->proto != FW_PROTO_UDP)
                        FAIL("\"port\" needs proto tcp or udp");
                if (++i >= n)
                        FAIL("\"port\" needs a port or a range");
                g_autofree char *p = g_strdup(w[i]);
                char *dash = strchr(p, '-');
                if (dash)
                        *dash = '\0';
                if (parse_u16(p, &r->port_min) < 0 ||
                    (dash && parse_u16(dash + 1, &r->port_max) < 0))
                        FAIL("invalid port \"%s\" (expected 1-65535 or LOW-HIGH)", w[i]);
                if (!dash)
                        r->port_max = r->port_min;
                if (r->port_min > r->port_max)
                        FAIL("port range \"%s\" is reversed", w[i]);
                i++;
        } else if (i < n && strcmp(w[i], "type") == 0) {
                if (r->proto != FW_PROTO_ICMP && r->proto != FW_PROTO_ICMPV6)
                        FAIL("\"type\" needs proto icmp or icmpv6");
                if (++i >= n)
                        FAIL("\"type\" needs an ICMP type name or number");
                if (parse_icmp_type(w[i], r->proto, &r->icmp_type) < 0)
                        FAIL("unknown ICMP type \"%s\"", w[i]);
                i++;
        }
        *ip = i;
        return 0;
}

int firewall_parse_line(Firewall *fw, const char *source, unsigned line, const char *untrusted_line) {
        g_autofree char *copy = g_strdup(untrusted_line);
        char *hash = strchr(copy, '#');
        if (hash)
                *hash = '\0';

        /*
         * Blanks around a rule (\v and \f too) are not part of it: the broker
         * strips them when it passes rules on as Rule= lines of the state
         * file, so the netvm must read them the same way from a rules file.
         */
        g_strstrip(copy);
        for (const char *p = copy; *p; p++)
                if ((unsigned char) *p < 0x20 && *p != '\t' && *p != '\r')
                        FAIL("control character in rule");

        g_auto(GStrv) tok = g_strsplit_set(copy, " \t\r", -1);
        /* Collapse empty tokens produced by repeated blanks. */
        g_autoptr(GPtrArray) t = g_ptr_array_new();
        for (char **p = tok; *p; p++)
                if (**p)
                        g_ptr_array_add(t, *p);
        size_t n = t->len;
        const char **w = (const char **) t->pdata;

        if (n == 0)
                return 0;

        if (strcmp(w[0], "default") == 0) {
                FwAction a;
                if (n != 2 || parse_action(w[1], &a) < 0)
                        FAIL("expected \"default accept\", \"default drop\" or \"default reject\"");
                if (fw->has_default)
                        FAIL("duplicate \"default\" line");
                fw->has_default = true;
                fw->default_action = a;
                return 0;
        }

        FwRule r = { .line = line, .icmp_type = -1 };
        if (parse_action(w[0], &r.action) < 0)
                FAIL("unknown action \"%s\" (expected accept, drop, reject or default)", w[0]);
        if (fw->rules->len >= FIREWALL_RULES_MAX)
                FAIL("too many rules (at most %d)", FIREWALL_RULES_MAX);

        size_t i = 1;
        if (i < n && strcmp(w[i], "dns") == 0) {
                if (n != 2)
                        FAIL("\"dns\" takes no further arguments");
                r.dns = true;
                g_array_append_val(fw->rules, r);
                return 0;
        }
        if (i < n && strcmp(w[i], "any") == 0)
                i++;
        else if (i < n && strcmp(w[i], "proto") != 0) {
                if (netaddr_parse(w[i], true, false, &r.dst) < 0)
                        FAIL("invalid destination \"%s\" (expected any, dns, an address or a CIDR)", w[i]);
                NetAddr m = r.dst;
                netaddr_mask(&m);
                if (memcmp(m.bytes, r.dst.bytes, 16) != 0)
                        FAIL("destination \"%s\" has host bits set beyond the prefix", w[i]);
                r.has_dst = true;
                i++;
        }

        if (i < n && parse_proto(fw, source, line, w, n, &i, &r) < 0)
                return -EINVAL;
        if (i < n)
                FAIL("unexpected \"%s\" at the end of the rule", w[i]);

        g_array_append_val(fw->rules, r);
        return 0;
}

int firewall_parse_text(Firewall *fw, const char *source, const char *untrusted_text) {
        g_auto(GStrv) lines = g_strsplit(untrusted_text ? untrusted_text : "", "\n", -1);
        int r = 0;
        unsigned no = 0;
        for (char **l = lines; *l; l++) {
                no++;
                if (!l[1] && **l == '\0')
                        break; /* trailing newline */
                if (firewall_parse_line(fw, source, no, *l) < 0)
                        r = -EINVAL;
        }
        return r;
}

static const char *icmp_type_name(FwProto proto, int type) {
        const IcmpName *names = proto == FW_PROTO_ICMP ? icmp4_names : icmp6_names;
        size_t n = proto == FW_PROTO_ICMP ? G_N_ELEMENTS(icmp4_names) : G_N_ELEMENTS(icmp6_names);
        for (size_t i = 0; i < n; i++)
                if (names[i].type == type)
                        return names[i].name;
        return NULL;
}

char *fwrule_format(const FwRule *r) {
        GString *s = g_string_new(fw_action_to_string(r->action));
        char buf[NETADDR_STRLEN];

        if (r->dns) {
                g_string_append(s, " dns");
                return g_string_free(s, FALSE);
        }
        g_string_append_printf(s, " %s", r->has_dst ? netaddr_format(&r->dst, buf) : "any");
        static const char *const protos[] = { NULL, "tcp", "udp", "icmp", "icmpv6" };
        if (r->proto != FW_PROTO_ANY)
                g_string_append_printf(s, " proto %s", protos[r->proto]);
        if (r->port_min) {
                if (r->port_min == r->port_max)
                        g_string_append_printf(s, " port %u", r->port_min);
                else
                        g_string_append_printf(s, " port %u-%u", r->port_min, r->port_max);
        }
        if (r->icmp_type >= 0) {
                const char *name = icmp_type_name(r->proto, r->icmp_type);
                if (name)
                        g_string_append_printf(s, " type %s", name);
                else
                        g_string_append_printf(s, " type %d", r->icmp_type);
        }
        return g_string_free(s, FALSE);
}
