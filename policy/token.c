/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "policy/intern.h"
#include "policy/rule.h"

/* Which kinds each place accepts (bit per TokenKind). */
#define K(k) (1u << (k))
static const unsigned place_kinds[] = {
        [TOKEN_PLACE_SOURCE] = K(TOKEN_NAME) | K(TOKEN_ANYVM) | K(TOKEN_TAG) | K(TOKEN_ROLE) | K(TOKEN_HOST) |
                               K(TOKEN_DISPVM) | K(TOKEN_DISPVM_NAME) | K(TOKEN_DISPVM_TAG) | K(TOKEN_ACTIVE),
        [TOKEN_PLACE_TARGET] = K(TOKEN_NAME) | K(TOKEN_ANYVM) | K(TOKEN_TAG) | K(TOKEN_ROLE) | K(TOKEN_HOST) |
                               K(TOKEN_DEFAULT) | K(TOKEN_DISPVM) | K(TOKEN_DISPVM_NAME) | K(TOKEN_DISPVM_TAG) |
                               K(TOKEN_ACTIVE),
        [TOKEN_PLACE_REDIRECT] = K(TOKEN_NAME) | K(TOKEN_HOST) | K(TOKEN_DISPVM) | K(TOKEN_DISPVM_NAME) |
                                 K(TOKEN_ACTIVE),
};

static const char *const place_allowed_text[] = {
        [TOKEN_PLACE_SOURCE] = "a VM name, @anyvm, @tag:TAG, @role:ROLE, @host, @dispvm, @dispvm:NAME, "
                               "@dispvm:@tag:TAG or @active",
        [TOKEN_PLACE_TARGET] = "a VM name, @anyvm, @tag:TAG, @role:ROLE, @host, @default, @dispvm, "
                               "@dispvm:NAME, @dispvm:@tag:TAG or @active",
        [TOKEN_PLACE_REDIRECT] = "a VM name, @host, @dispvm, @dispvm:NAME or @active",
};

const char *token_place_to_string(TokenPlace p) {
        switch (p) {
        case TOKEN_PLACE_SOURCE:
                return "source";
        case TOKEN_PLACE_TARGET:
                return "target";
        case TOKEN_PLACE_REDIRECT:
                return "redirect target";
        }
        return "token";
}

static bool has_prefix(const char *s, size_t len, const char *prefix) {
        size_t n = strlen(prefix);
        return len >= n && memcmp(s, prefix, n) == 0;
}

static bool equals(const char *s, size_t len, const char *word) {
        return strlen(word) == len && memcmp(s, word, len) == 0;
}

static int fail(char **ret_message, size_t *ret_offset, size_t offset, char *message) {
        *ret_message = message;
        *ret_offset = offset;
        return -EINVAL;
}

static char *describe_char(char c) {
        if ((unsigned char) c > 0x20 && (unsigned char) c < 0x7f)
                return g_strdup_printf("'%c'", c);
        return g_strdup_printf("byte 0x%02x", (unsigned char) c);
}

static int check_vm_name(const char *s, size_t len, size_t base, const char *what, char **ret_message,
                         size_t *ret_offset) {
        long bad = policy_vm_name_invalid_at(s, len);
        if (bad < 0)
                return 0;
        if (len == 0)
                return fail(ret_message, ret_offset, base, g_strdup_printf("empty %s", what));
        if ((size_t) bad >= POLICY_NAME_MAX)
                return fail(ret_message, ret_offset, base + (size_t) bad,
                            g_strdup_printf("%s '%.*s' is longer than %d characters", what, (int) len, s,
                                            POLICY_NAME_MAX));
        if (bad == 0 && !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
                g_autofree char *c = describe_char(s[0]);
                return fail(ret_message, ret_offset, base,
                            g_strdup_printf("%s '%.*s' must start with a letter, not %s", what, (int) len, s, c));
        }
        g_autofree char *c = describe_char(s[bad]);
        return fail(ret_message, ret_offset, base + (size_t) bad,
                    g_strdup_printf("invalid character %s in %s '%.*s'; expected letters, digits, '_', '.' or '-'",
                                    c, what, (int) len, s));
}

static int check_tag(const char *s, size_t len, size_t base, char **ret_message, size_t *ret_offset) {
        long bad = policy_tag_invalid_at(s, len);
        if (bad < 0)
                return 0;
        if ((size_t) bad >= POLICY_TAG_MAX)
                return fail(ret_message, ret_offset, base + (size_t) bad,
                            g_strdup_printf("tag '%.*s' is longer than %d characters", (int) len, s, POLICY_TAG_MAX));
        g_autofree char *c = describe_char(s[bad]);
        return fail(ret_message, ret_offset, base + (size_t) bad,
                    g_strdup_printf("invalid character %s in tag '%.*s'; expected letters, digits, '_', '.' or '-'",
                                    c, (int) len, s));
}

int policy_token_parse(const char *s, size_t len, TokenPlace place, Intern *names, PolicyToken *ret,
                       char **ret_message, size_t *ret_offset) {
        PolicyToken t = { .role = -1 };
        const char *text = NULL; /* canonical text when different from s */
        size_t vstart = 0, vlen = 0;
        int r;

        if (len == 0)
                return fail(ret_message, ret_offset, 0, g_strdup("empty token"));

        if (s[0] != '@') {
                if (equals(s, len, "dom0"))
                        return fail(ret_message, ret_offset, 0,
                                    g_strdup("'dom0' is Qubes' name for the administrative domain; vmfed calls "
                                             "the admin side @host"));
                r = check_vm_name(s, len, 0, "VM name", ret_message, ret_offset);
                if (r < 0)
                        return r;
                t.kind = TOKEN_NAME;
                vstart = 0;
                vlen = len;
        } else if (equals(s, len, "@anyvm"))
                t.kind = TOKEN_ANYVM;
        else if (equals(s, len, "@host"))
                t.kind = TOKEN_HOST;
        else if (equals(s, len, "@adminvm")) {
                t.kind = TOKEN_HOST;
                text = "@host";
        } else if (equals(s, len, "@default"))
                t.kind = TOKEN_DEFAULT;
        else if (equals(s, len, "@dispvm"))
                t.kind = TOKEN_DISPVM;
        else if (equals(s, len, "@active"))
                t.kind = TOKEN_ACTIVE;
        else if (has_prefix(s, len, "@dispvm:@tag:")) {
                t.kind = TOKEN_DISPVM_TAG;
                vstart = strlen("@dispvm:@tag:");
        } else if (has_prefix(s, len, "@dispvm:")) {
                t.kind = TOKEN_DISPVM_NAME;
                vstart = strlen("@dispvm:");
        } else if (has_prefix(s, len, "@tag:")) {
                t.kind = TOKEN_TAG;
                vstart = strlen("@tag:");
        } else if (has_prefix(s, len, "@role:")) {
                t.kind = TOKEN_ROLE;
                vstart = strlen("@role:");
        } else if (has_prefix(s, len, "@type:"))
                return fail(ret_message, ret_offset, 0,
                            g_strdup_printf("'%.*s': Qubes' @type: is not supported; use @role:ROLE (persona, "
                                            "service, disposable-template, app, disposable)",
                                            (int) len, s));
        else
                return fail(ret_message, ret_offset, 0,
                            g_strdup_printf("unknown token '%.*s'; expected %s", (int) len, s,
                                            place_allowed_text[place]));

        if (vstart > 0) {
                vlen = len - vstart;
                if (vlen == 0)
                        return fail(ret_message, ret_offset, len,
                                    g_strdup_printf("'%.*s' needs a value after the ':'", (int) len, s));
                const char *v = s + vstart;
                switch (t.kind) {
                case TOKEN_DISPVM_NAME:
                        if (v[0] == '@')
                                return fail(ret_message, ret_offset, vstart,
                                            g_strdup_printf("unknown token '%.*s'; after @dispvm: expected a "
                                                            "template name or @tag:TAG",
                                                            (int) len, s));
                        r = check_vm_name(v, vlen, vstart, "template name", ret_message, ret_offset);
                        break;
                case TOKEN_TAG:
                case TOKEN_DISPVM_TAG:
                        r = check_tag(v, vlen, vstart, ret_message, ret_offset);
                        break;
                case TOKEN_ROLE:
                        t.role = (int8_t) policy_role_from_string(v, vlen);
                        if (t.role < 0)
                                return fail(ret_message, ret_offset, vstart,
                                            g_strdup_printf("unknown role '%.*s'; expected persona, service, "
                                                            "disposable-template, app or disposable",
                                                            (int) vlen, v));
                        r = 0;
                        break;
                default:
                        g_assert_not_reached();
                }
                if (r < 0)
                        return r;
        }

        if (!(place_kinds[place] & K(t.kind)))
                return fail(ret_message, ret_offset, 0,
                            g_strdup_printf("'%.*s' cannot be used as %s; expected %s", (int) len, s,
                                            place == TOKEN_PLACE_REDIRECT ? "a redirect target"
                                            : place == TOKEN_PLACE_SOURCE ? "a source"
                                                                          : "a target",
                                            place_allowed_text[place]));

        if (vlen > 0 && t.kind != TOKEN_ROLE)
                t.id = intern_add(names, s + vstart, vlen);
        if (text)
                t.text = intern_string(names, intern_add(names, text, strlen(text)));
        else
                t.text = intern_string(names, intern_add(names, s, len));
        *ret = t;
        return 0;
}
