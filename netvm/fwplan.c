/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/fwplan.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

uint32_t fwplan_key_len(int family) {
        return family == AF_INET6 ? 24 : 12;
}

static bool rule_in_set(const FwRule *r) {
        if (r->dns || !r->has_dst)
                return false;
        return r->icmp_type < 0;
}

static FwBox rule_box(const FwRule *r) {
        FwBox b = {};
        size_t alen = netaddr_len(&r->dst);
        NetAddr lo = r->dst;

        netaddr_mask(&lo);
        memcpy(b.lo, lo.bytes, alen);
        memcpy(b.hi, lo.bytes, alen);
        for (size_t i = 0; i < alen; i++) {
                int bits = (int) r->dst.prefixlen - (int) i * 8;
                uint8_t host = bits >= 8 ? 0 : bits <= 0 ? 0xff : (uint8_t) (0xff >> bits);
                b.hi[i] |= host;
        }
        uint8_t proto_lo = 0, proto_hi = 255;
        switch (r->proto) {
        case FW_PROTO_TCP:    proto_lo = proto_hi = IPPROTO_TCP; break;
        case FW_PROTO_UDP:    proto_lo = proto_hi = IPPROTO_UDP; break;
        case FW_PROTO_ICMP:   proto_lo = proto_hi = IPPROTO_ICMP; break;
        case FW_PROTO_ICMPV6: proto_lo = proto_hi = IPPROTO_ICMPV6; break;
        case FW_PROTO_ANY:    break;
        }
        b.lo[alen] = proto_lo;
        b.hi[alen] = proto_hi;
        uint16_t plo = htons(r->port_min ? r->port_min : 0), phi = htons(r->port_min ? r->port_max : 65535);
        memcpy(b.lo + alen + 4, &plo, 2);
        memcpy(b.hi + alen + 4, &phi, 2);
        return b;
}

/* Boxes overlap when every field's intervals overlap (byte strings compare as numbers). */
static bool boxes_overlap(const FwBox *a, const FwBox *b, int family) {
        size_t alen = family == AF_INET6 ? 16 : 4;
        const size_t off[3] = { 0, alen, alen + 4 }, len[3] = { alen, 1, 2 };
        for (int f = 0; f < 3; f++)
                if (memcmp(a->hi + off[f], b->lo + off[f], len[f]) < 0 ||
                    memcmp(b->hi + off[f], a->lo + off[f], len[f]) < 0)
                        return false;
        return true;
}

static void set_plan_free(gpointer p) {
        FwSetPlan *s = p;
        g_array_unref(s->boxes);
        g_free(s);
}

static void fwplan_clear(gpointer p) {
        FwPlan *plan = p;
        g_array_unref(plan->items);
        g_ptr_array_unref(plan->sets);
}

FwPlan *fwplan_new(const Firewall *fw) {
        FwPlan *plan = g_rc_box_new0(FwPlan);
        plan->items = g_array_new(FALSE, FALSE, sizeof(FwPlanItem));
        plan->sets = g_ptr_array_new_with_free_func(set_plan_free);

        bool run_open = false;
        FwAction run_action = FW_ACTION_DROP;
        int run_set[2] = { -1, -1 };    /* per family: IPv4, IPv6 */

        for (guint i = 0; i < fw->rules->len; i++) {
                const FwRule *r = &g_array_index(fw->rules, FwRule, i);
                if (!rule_in_set(r)) {
                        run_open = false;
                        FwPlanItem it = { FWPLAN_RULE, i };
                        g_array_append_val(plan->items, it);
                        continue;
                }
                int fam = r->dst.family == AF_INET6 ? 1 : 0;
                FwBox box = rule_box(r);
                if (run_open && run_action != r->action)
                        run_open = false;
                if (run_open && run_set[fam] >= 0) {
                        FwSetPlan *s = plan->sets->pdata[run_set[fam]];
                        bool conflict = s->boxes->len >= FWPLAN_SET_MAX;
                        for (guint k = 0; !conflict && k < s->boxes->len; k++)
                                conflict = boxes_overlap(&g_array_index(s->boxes, FwBox, k), &box, r->dst.family);
                        if (conflict)
                                run_open = false;
                }
                if (!run_open) {
                        run_open = true;
                        run_action = r->action;
                        run_set[0] = run_set[1] = -1;
                }
                if (run_set[fam] < 0) {
                        FwSetPlan *s = g_new0(FwSetPlan, 1);
                        s->family = r->dst.family;
                        s->action = r->action;
                        s->boxes = g_array_new(FALSE, FALSE, sizeof(FwBox));
                        run_set[fam] = (int) plan->sets->len;
                        g_ptr_array_add(plan->sets, s);
                        FwPlanItem it = { FWPLAN_SET, (guint) run_set[fam] };
                        g_array_append_val(plan->items, it);
                }
                g_array_append_val(((FwSetPlan *) plan->sets->pdata[run_set[fam]])->boxes, box);
        }
        return plan;
}

FwPlan *fwplan_ref(FwPlan *p) {
        return g_rc_box_acquire(p);
}

void fwplan_unref(FwPlan *p) {
        if (p)
                g_rc_box_release_full(p, fwplan_clear);
}
