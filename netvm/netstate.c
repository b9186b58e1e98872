/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/netstate.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/fileio.h"
#include "common/macro.h"

#define STATE_FILE_MAX (16u * 1024 * 1024)
#define RULES_FILE_MAX (4u * 1024 * 1024)

static void netclient_destroy(gpointer p) {
        netclient_unref(p);
}

NetState *netstate_new(void) {
        NetState *s = g_new0(NetState, 1);
        s->uplink_addrs = g_array_new(FALSE, TRUE, sizeof(NetAddr));
        s->gateways = g_array_new(FALSE, TRUE, sizeof(NetAddr));
        s->dns = g_array_new(FALSE, TRUE, sizeof(NetAddr));
        s->downstream_addrs = g_array_new(FALSE, TRUE, sizeof(NetAddr));
        s->clients = g_ptr_array_new_with_free_func(netclient_destroy);
        s->rules_files = g_ptr_array_new_with_free_func(g_free);
        return s;
}

NetState *netstate_free(NetState *s) {
        if (!s)
                return NULL;
        g_free(s->uplink);
        g_free(s->downstream);
        g_array_unref(s->uplink_addrs);
        g_array_unref(s->gateways);
        g_array_unref(s->dns);
        g_array_unref(s->downstream_addrs);
        g_ptr_array_unref(s->clients);
        g_ptr_array_unref(s->rules_files);
        g_free(s);
        return NULL;
}

static NetClient *netclient_alloc(void) {
        NetClient *c = g_new0(NetClient, 1);
        c->n_ref = 1;
        c->addrs = g_array_new(FALSE, TRUE, sizeof(NetAddr));
        c->rule_lines = g_ptr_array_new_with_free_func(g_free);
        c->firewall = firewall_new();
        return c;
}

NetClient *netclient_ref(NetClient *c) {
        c->n_ref++;
        return c;
}

NetClient *netclient_unref(NetClient *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        g_free(c->name);
        g_free(c->digest);
        fwplan_unref(c->plan);
        if (c->model)
                c->model_free(c->model);
        g_array_unref(c->addrs);
        g_ptr_array_unref(c->rule_lines);
        firewall_free(c->firewall);
        g_free(c);
        return NULL;
}

bool netstate_name_is_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > NETSTATE_NAME_MAX || name[0] == '.' || name[0] == '-')
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '.' || *p == '-'))
                        return false;
        return true;
}

/* ---- parsing ---------------------------------------------------------- */

typedef enum Section {
        SECTION_NONE,
        SECTION_UPLINK,
        SECTION_DOWNSTREAM,
        SECTION_CLIENT,
} Section;

typedef struct Parser {
        const char *source;
        const char *rules_dir;
        GString *errors;
        NetState *state;
        NetClient *client;      /* current [Client] section */
        unsigned client_line;
        unsigned uplink_line, downstream_line;
        GHashTable *seen_sections;
} Parser;

static void perr(Parser *p, unsigned line, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void perr(Parser *p, unsigned line, const char *fmt, ...) {
        va_list ap;
        g_string_append_printf(p->errors, "%s:%u: ", p->source, line);
        va_start(ap, fmt);
        g_string_append_vprintf(p->errors, fmt, ap);
        va_end(ap);
        g_string_append_c(p->errors, '\n');
}

/* Split a value on ';' and blanks; append each address to arr. */
static void parse_addr_list(Parser *p, unsigned line, const char *key, const char *value,
                            bool with_prefix, GArray *arr) {
        g_auto(GStrv) parts = g_strsplit_set(value, "; \t", -1);
        for (char **q = parts; *q; q++) {
                if (**q == '\0')
                        continue;
                NetAddr a;
                if (netaddr_parse(*q, with_prefix, false, &a) < 0) {
                        perr(p, line, "%s=: invalid %s \"%s\"", key,
                             with_prefix ? "address" : "address (no prefix allowed)", *q);
                        continue;
                }
                if (with_prefix && !strchr(*q, '/')) {
                        perr(p, line, "%s=: \"%s\" needs a prefix length (e.g. /24)", key, *q);
                        continue;
                }
                if (arr->len >= NETSTATE_ADDRS_MAX) {
                        perr(p, line, "%s=: too many addresses (at most %d)", key, NETSTATE_ADDRS_MAX);
                        return;
                }
                g_array_append_val(arr, a);
        }
}

static int put_client_at(NetState *s, NetClient *c, const char *source, unsigned line, char **errorp);

static void finish_client(Parser *p) {
        NetClient *c = steal_pointer(&p->client);
        if (!c)
                return;
        bool ok = true;
        uint8_t zero[6] = {};
        if (memcmp(c->mac, zero, 6) == 0) {
                perr(p, p->client_line, "[Client %s]: MAC= missing", c->name);
                ok = false;
        }
        if (c->addrs->len == 0) {
                perr(p, p->client_line, "[Client %s]: Address= missing", c->name);
                ok = false;
        }
        if (!ok) {
                netclient_unref(c);
                return;
        }
        g_autofree char *e = NULL;
        if (put_client_at(p->state, c, p->source, p->client_line, &e) < 0) {
                perr(p, p->client_line, "[Client %s]: %s", c->name, e);
                netclient_unref(c);
        }
}

static void client_add_rules_file(Parser *p, unsigned line, NetClient *c, const char *value) {
        if (!p->rules_dir) {
                perr(p, line, "RulesFile= is not allowed here (send the rules inline as Rule= lines)");
                return;
        }
        g_autofree char *path = g_path_is_absolute(value) ? g_strdup(value)
                                                           : g_build_filename(p->rules_dir, value, NULL);
        _cleanup_free_ char *text = NULL;
        c->has_rules = true;
        g_ptr_array_add(p->state->rules_files, g_strdup(path));
        int r = read_full_file(path, RULES_FILE_MAX, &text, NULL);
        if (r < 0) {
                /* A rules file that cannot be read is a broken firewall: fail closed. */
                firewall_add_error(c->firewall, path, 0, "cannot read rules file: %s", g_strerror(-r));
                g_ptr_array_add(c->rule_lines, g_strdup("drop any  # rules file unreadable"));
                return;
        }
        (void) firewall_parse_text(c->firewall, path, text);
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l; l++)
                if (l[1] || **l)
                        g_ptr_array_add(c->rule_lines, g_strdup(*l));
}

static void parse_key(Parser *p, Section sec, unsigned line, const char *key, const char *value) {
        NetState *s = p->state;
        switch (sec) {
        case SECTION_NONE:
                perr(p, line, "key \"%s\" outside of a section", key);
                return;
        case SECTION_UPLINK:
        case SECTION_DOWNSTREAM: {
                bool up = sec == SECTION_UPLINK;
                if (strcmp(key, "Interface") == 0) {
                        char **dst = up ? &s->uplink : &s->downstream;
                        if (!ifname_is_valid(value))
                                perr(p, line, "Interface=: invalid interface name \"%s\"", value);
                        else if (*dst)
                                perr(p, line, "Interface= given twice");
                        else
                                *dst = g_strdup(value);
                } else if (strcmp(key, "Address") == 0)
                        parse_addr_list(p, line, key, value, true, up ? s->uplink_addrs : s->downstream_addrs);
                else if (!up && strcmp(key, "DHCP") == 0) {
                        if (strcmp(value, "yes") == 0)
                                s->dhcp = true;
                        else if (strcmp(value, "no") == 0)
                                s->dhcp = false;
                        else
                                perr(p, line, "DHCP=: expected yes or no, not \"%s\"", value);
                }
                else if (up && strcmp(key, "Gateway") == 0) {
                        guint before = s->gateways->len;
                        parse_addr_list(p, line, key, value, false, s->gateways);
                        for (guint i = before; i < s->gateways->len; i++)
                                for (guint j = 0; j < i; j++)
                                        if (g_array_index(s->gateways, NetAddr, i).family ==
                                            g_array_index(s->gateways, NetAddr, j).family)
                                                perr(p, line, "Gateway=: more than one gateway for one address family");
                } else if (up && strcmp(key, "DNS") == 0)
                        parse_addr_list(p, line, key, value, false, s->dns);
                else
                        perr(p, line, "unknown key \"%s\" in [%s]", key, up ? "Uplink" : "Downstream");
                return;
        }
        case SECTION_CLIENT: {
                NetClient *c = p->client;
                if (!c)
                        return; /* section header was bad, already reported */
                if (strcmp(key, "MAC") == 0) {
                        if (mac_parse(value, c->mac) < 0)
                                perr(p, line, "MAC=: invalid unicast MAC address \"%s\"", value);
                } else if (strcmp(key, "Address") == 0)
                        parse_addr_list(p, line, key, value, false, c->addrs);
                else if (strcmp(key, "Rule") == 0) {
                        c->has_rules = true;
                        (void) firewall_parse_line(c->firewall, p->source, line, value);
                        g_ptr_array_add(c->rule_lines, g_strdup(value));
                } else if (strcmp(key, "RulesFile") == 0)
                        client_add_rules_file(p, line, c, value);
                else
                        perr(p, line, "unknown key \"%s\" in [Client %s]", key, c->name);
                return;
        }
        }
}

int netstate_parse(const char *source, const char *untrusted_text, const char *rules_dir,
                   NetState **ret, char **errorsp) {
        g_autoptr(NetState) s = netstate_new();
        g_autoptr(GString) errors = g_string_new(NULL);
        g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        Parser p = { .source = source, .rules_dir = rules_dir, .errors = errors, .state = s };
        Section sec = SECTION_NONE;

        g_auto(GStrv) lines = g_strsplit(untrusted_text ? untrusted_text : "", "\n", -1);
        unsigned no = 0;
        for (char **l = lines; *l; l++) {
                no++;
                if (!g_utf8_validate(*l, -1, NULL)) {
                        perr(&p, no, "invalid UTF-8");
                        continue;
                }
                g_autofree char *line = g_strstrip(g_strdup(*l));
                if (line[0] == '\0' || line[0] == '#' || line[0] == ';')
                        continue;

                if (line[0] == '[') {
                        size_t len = strlen(line);
                        finish_client(&p);
                        sec = SECTION_NONE;
                        if (line[len - 1] != ']') {
                                perr(&p, no, "section header without \"]\"");
                                continue;
                        }
                        line[len - 1] = '\0';
                        const char *name = line + 1;
                        if (g_hash_table_contains(seen, name)) {
                                perr(&p, no, "section [%s] appears twice", name);
                                continue;
                        }
                        g_hash_table_add(seen, g_strdup(name));
                        if (strcmp(name, "Uplink") == 0) {
                                sec = SECTION_UPLINK;
                                p.uplink_line = no;
                        } else if (strcmp(name, "Downstream") == 0) {
                                sec = SECTION_DOWNSTREAM;
                                p.downstream_line = no;
                        } else if (g_str_has_prefix(name, "Client ")) {
                                const char *cname = name + strlen("Client ");
                                sec = SECTION_CLIENT;
                                if (!netstate_name_is_valid(cname)) {
                                        perr(&p, no, "invalid client name \"%s\" (1-%d of [a-z0-9_.-])",
                                             cname, NETSTATE_NAME_MAX);
                                        continue;
                                }
                                p.client = netclient_alloc();
                                p.client->name = g_strdup(cname);
                                p.client_line = no;
                        } else
                                perr(&p, no, "unknown section [%s]", name);
                        continue;
                }

                char *eq = strchr(line, '=');
                if (!eq) {
                        perr(&p, no, "expected KEY=VALUE or [Section]");
                        continue;
                }
                *eq = '\0';
                g_strstrip(line);
                parse_key(&p, sec, no, line, g_strstrip(eq + 1));
        }
        finish_client(&p);

        if (!s->uplink)
                perr(&p, p.uplink_line ? p.uplink_line : 1, "[Uplink]: Interface= missing");
        if (!s->downstream)
                perr(&p, p.downstream_line ? p.downstream_line : 1, "[Downstream]: Interface= missing");
        else if (s->downstream_addrs->len == 0)
                perr(&p, p.downstream_line, "[Downstream]: Address= missing (the clients' gateway)");
        if (s->uplink && s->downstream && strcmp(s->uplink, s->downstream) == 0)
                perr(&p, p.downstream_line, "[Downstream]: Interface= is the uplink");

        if (errors->len > 0) {
                if (errorsp)
                        *errorsp = g_strdup(errors->str);
                return -EINVAL;
        }
        *ret = steal_pointer(&s);
        return 0;
}

int netstate_load(const char *path, NetState **ret, char **errorsp) {
        _cleanup_free_ char *text = NULL;
        int r = read_full_file(path, STATE_FILE_MAX, &text, NULL);
        if (r < 0) {
                if (errorsp)
                        *errorsp = g_strdup_printf("%s: cannot read: %s", path, g_strerror(-r));
                return r;
        }
        g_autofree char *dir = g_path_get_dirname(path);
        return netstate_parse(path, text, dir, ret, errorsp);
}

/* ---- clients ---------------------------------------------------------- */

NetClient *netstate_find_client(const NetState *s, const char *name) {
        for (guint i = 0; i < s->clients->len; i++) {
                NetClient *c = s->clients->pdata[i];
                if (strcmp(c->name, name) == 0)
                        return c;
        }
        return NULL;
}

static gint client_cmp(gconstpointer a, gconstpointer b) {
        const NetClient *x = *(NetClient *const *) a, *y = *(NetClient *const *) b;
        return strcmp(x->name, y->name);
}

/*
 * A broken IPv6 address of a client (outside every IPv6 [Downstream]
 * subnet, or the gateway's) fails that client closed instead of refusing
 * the state: the error goes to its firewall, so its chain drops everything
 * (see netstate_firewall_errors()); the address stays in the client, so the
 * canonical text (and the persisted state) fails it closed again.
 */
static void fail_closed_v6(NetClient *c, const NetAddr *a, bool gateway, const char *source, unsigned line) {
        char buf[NETADDR_STRLEN];
        firewall_add_error(c->firewall, source, line, "[Client %s]: IPv6 address %s is %s; "
                           "this client's traffic is dropped", c->name, netaddr_format(a, buf),
                           gateway ? "the gateway's" : "outside every IPv6 [Downstream] subnet");
}

int netstate_put_client(NetState *s, NetClient *c, char **errorp) {
        return put_client_at(s, c, c->name, 0, errorp);
}

static int put_client_at(NetState *s, NetClient *c, const char *source, unsigned line, char **errorp) {
        char buf[NETADDR_STRLEN];

        for (guint i = 0; i < c->addrs->len; i++) {
                NetAddr *a = &g_array_index(c->addrs, NetAddr, i);
                bool inside = false;
                for (guint j = 0; j < s->downstream_addrs->len; j++) {
                        NetAddr *gw = &g_array_index(s->downstream_addrs, NetAddr, j);
                        NetAddr gw_host = *gw;
                        gw_host.prefixlen = (uint8_t) (netaddr_len(gw) * 8);
                        if (netaddr_equal(&gw_host, a)) {
                                if (a->family == AF_INET6) {
                                        fail_closed_v6(c, a, true, source, line);
                                        inside = true;
                                        break;
                                }
                                *errorp = g_strdup_printf("address %s is the gateway's", netaddr_format(a, buf));
                                return -EINVAL;
                        }
                        if (netaddr_contains(gw, a))
                                inside = true;
                }
                if (!inside && a->family == AF_INET6)
                        fail_closed_v6(c, a, false, source, line);
                else if (!inside) {
                        *errorp = g_strdup_printf("address %s is outside every [Downstream] subnet",
                                                  netaddr_format(a, buf));
                        return -EINVAL;
                }
                for (guint j = 0; j < i; j++)
                        if (netaddr_equal(a, &g_array_index(c->addrs, NetAddr, j))) {
                                *errorp = g_strdup_printf("address %s given twice", netaddr_format(a, buf));
                                return -EINVAL;
                        }
        }

        guint replace = G_MAXUINT;
        for (guint i = 0; i < s->clients->len; i++) {
                NetClient *o = s->clients->pdata[i];
                if (strcmp(o->name, c->name) == 0) {
                        replace = i;
                        continue;
                }
                if (memcmp(o->mac, c->mac, 6) == 0) {
                        char m[MAC_STRLEN];
                        *errorp = g_strdup_printf("MAC %s is already client %s's", mac_format(c->mac, m), o->name);
                        return -EEXIST;
                }
                for (guint j = 0; j < c->addrs->len; j++)
                        for (guint k = 0; k < o->addrs->len; k++)
                                if (netaddr_equal(&g_array_index(c->addrs, NetAddr, j),
                                                  &g_array_index(o->addrs, NetAddr, k))) {
                                        *errorp = g_strdup_printf("address %s is already client %s's",
                                                                  netaddr_format(&g_array_index(c->addrs, NetAddr, j), buf),
                                                                  o->name);
                                        return -EEXIST;
                                }
        }
        if (replace == G_MAXUINT && s->clients->len >= NETSTATE_CLIENTS_MAX) {
                *errorp = g_strdup_printf("too many clients (at most %d)", NETSTATE_CLIENTS_MAX);
                return -E2BIG;
        }
        if (replace != G_MAXUINT)
                g_ptr_array_remove_index(s->clients, replace);
        g_ptr_array_add(s->clients, c);
        g_ptr_array_sort(s->clients, client_cmp);
        return 0;
}

int netstate_remove_client(NetState *s, const char *name) {
        for (guint i = 0; i < s->clients->len; i++)
                if (strcmp(((NetClient *) s->clients->pdata[i])->name, name) == 0) {
                        g_ptr_array_remove_index(s->clients, i);
                        return 0;
                }
        return -ENOENT;
}

int netclient_new(const char *untrusted_name, const char *untrusted_mac,
                  const char *const *untrusted_addrs, const char *untrusted_rules,
                  NetClient **ret, char **errorp) {
        if (!netstate_name_is_valid(untrusted_name)) {
                *errorp = g_strdup_printf("invalid client name (1-%d of [a-z0-9_.-])", NETSTATE_NAME_MAX);
                return -EINVAL;
        }
        g_autoptr(NetClient) c = netclient_alloc();
        c->name = g_strdup(untrusted_name);
        if (mac_parse(untrusted_mac, c->mac) < 0) {
                *errorp = g_strdup_printf("invalid unicast MAC address \"%s\"", untrusted_mac);
                return -EINVAL;
        }
        for (const char *const *a = untrusted_addrs; a && *a; a++) {
                NetAddr addr;
                if (netaddr_parse(*a, false, false, &addr) < 0 || c->addrs->len >= NETSTATE_ADDRS_MAX) {
                        *errorp = g_strdup_printf("invalid or too many addresses at \"%s\"", *a);
                        return -EINVAL;
                }
                g_array_append_val(c->addrs, addr);
        }
        if (c->addrs->len == 0) {
                *errorp = g_strdup("a client needs at least one address");
                return -EINVAL;
        }
        if (untrusted_rules) {
                g_autofree char *source = g_strdup_printf("%s.rules", c->name);
                c->has_rules = true;
                (void) firewall_parse_text(c->firewall, source, untrusted_rules);
                g_auto(GStrv) lines = g_strsplit(untrusted_rules, "\n", -1);
                for (char **l = lines; *l; l++)
                        if (l[1] || **l)
                                g_ptr_array_add(c->rule_lines, g_strdup(*l));
        }
        *ret = steal_pointer(&c);
        return 0;
}

char *netstate_firewall_errors(const NetState *s) {
        GString *e = g_string_new(NULL);
        for (guint i = 0; i < s->clients->len; i++) {
                NetClient *c = s->clients->pdata[i];
                if (firewall_is_broken(c->firewall))
                        g_string_append(e, c->firewall->errors->str);
        }
        if (e->len == 0) {
                g_string_free(e, TRUE);
                return NULL;
        }
        return g_string_free(e, FALSE);
}

/* ---- formatting ------------------------------------------------------- */

static void format_addrs(GString *out, const char *key, GArray *arr, bool cidr) {
        char buf[NETADDR_STRLEN];
        for (guint i = 0; i < arr->len; i++) {
                NetAddr *a = &g_array_index(arr, NetAddr, i);
                g_string_append_printf(out, "%s=%s\n", key,
                                       cidr ? netaddr_format_cidr(a, buf) : netaddr_format(a, buf));
        }
}

char *netstate_format(const NetState *s) {
        GString *out = g_string_new("[Uplink]\n");
        char m[MAC_STRLEN];

        g_string_append_printf(out, "Interface=%s\n", s->uplink);
        format_addrs(out, "Address", s->uplink_addrs, true);
        format_addrs(out, "Gateway", s->gateways, false);
        format_addrs(out, "DNS", s->dns, false);
        g_string_append_printf(out, "\n[Downstream]\nInterface=%s\n", s->downstream);
        format_addrs(out, "Address", s->downstream_addrs, true);
        if (s->dhcp)
                g_string_append(out, "DHCP=yes\n");
        for (guint i = 0; i < s->clients->len; i++) {
                NetClient *c = s->clients->pdata[i];
                g_string_append_printf(out, "\n[Client %s]\nMAC=%s\n", c->name, mac_format(c->mac, m));
                format_addrs(out, "Address", c->addrs, false);
                if (c->has_rules && c->rule_lines->len == 0)
                        g_string_append(out, "Rule=\n");
                for (guint j = 0; j < c->rule_lines->len; j++) {
                        /* A line break cannot be in a line; rules never hold one. */
                        g_string_append_printf(out, "Rule=%s\n", (char *) c->rule_lines->pdata[j]);
                }
        }
        return g_string_free(out, FALSE);
}

static GArray *addr_array_copy(GArray *a) {
        GArray *n = g_array_sized_new(FALSE, TRUE, sizeof(NetAddr), a->len);
        g_array_append_vals(n, a->data, a->len);
        return n;
}

NetState *netstate_copy(const NetState *s) {
        NetState *n = netstate_new();
        n->uplink = g_strdup(s->uplink);
        n->downstream = g_strdup(s->downstream);
        g_array_unref(n->uplink_addrs);
        n->uplink_addrs = addr_array_copy(s->uplink_addrs);
        g_array_unref(n->gateways);
        n->gateways = addr_array_copy(s->gateways);
        g_array_unref(n->dns);
        n->dns = addr_array_copy(s->dns);
        g_array_unref(n->downstream_addrs);
        n->downstream_addrs = addr_array_copy(s->downstream_addrs);
        n->dhcp = s->dhcp;
        for (guint i = 0; i < s->clients->len; i++)
                g_ptr_array_add(n->clients, netclient_ref(s->clients->pdata[i]));
        for (guint i = 0; i < s->rules_files->len; i++)
                g_ptr_array_add(n->rules_files, g_strdup(s->rules_files->pdata[i]));
        return n;
}

static bool addrs_equal(GArray *a, GArray *b) {
        if (a->len != b->len)
                return false;
        for (guint i = 0; i < a->len; i++)
                if (!netaddr_equal(&g_array_index(a, NetAddr, i), &g_array_index(b, NetAddr, i)))
                        return false;
        return true;
}

static bool client_equal(const NetClient *a, const NetClient *b) {
        if (a == b)
                return true;
        if (strcmp(a->name, b->name) != 0 || memcmp(a->mac, b->mac, 6) != 0 ||
            !addrs_equal(a->addrs, b->addrs) || a->has_rules != b->has_rules ||
            a->rule_lines->len != b->rule_lines->len)
                return false;
        for (guint i = 0; i < a->rule_lines->len; i++)
                if (strcmp(a->rule_lines->pdata[i], b->rule_lines->pdata[i]) != 0)
                        return false;
        /* Same text but a rules file that could not be read once and now can: not equal. */
        return a->firewall->n_errors == b->firewall->n_errors;
}

bool netstate_equal(const NetState *a, const NetState *b) {
        if (!a || !b)
                return a == b;
        if (g_strcmp0(a->uplink, b->uplink) != 0 || g_strcmp0(a->downstream, b->downstream) != 0 ||
            !addrs_equal(a->uplink_addrs, b->uplink_addrs) || !addrs_equal(a->gateways, b->gateways) ||
            !addrs_equal(a->dns, b->dns) || !addrs_equal(a->downstream_addrs, b->downstream_addrs) ||
            a->dhcp != b->dhcp || a->clients->len != b->clients->len)
                return false;
        for (guint i = 0; i < a->clients->len; i++)
                if (!client_equal(a->clients->pdata[i], b->clients->pdata[i]))
                        return false;
        return true;
}
