/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "policy/intern.h"
#include "policy/parser.h"
#include "policy/rule.h"
#include "policy/snapshot.h"

#define MAX_FIELDS 16
#define MAX_LINE_LENGTH 4096

typedef struct Field {
        const char *p;
        size_t len;
        unsigned column; /* 1-based */
} Field;

typedef struct Parser {
        Loader *loader;
        PolicySnapshot *s;
        const char *file;
        unsigned line;
        const LegacyService *legacy;
} Parser;

#define parser_error(p, column, ...) snapshot_add_diagnostic((p)->s, (p)->file, (p)->line, (column), __VA_ARGS__)

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool field_is(const Field *f, const char *word) {
        return strlen(word) == f->len && memcmp(f->p, word, f->len) == 0;
}

static void token_error(Parser *p, const Field *f, size_t offset, char *message) {
        parser_error(p, f->column + (unsigned) offset, "%s", message);
        g_free(message);
}

static bool parse_token(Parser *p, const Field *f, TokenPlace place, PolicyToken *ret) {
        char *message = NULL;
        size_t offset = 0;
        if (policy_token_parse(f->p, f->len, place, &p->s->strings, ret, &message, &offset) < 0) {
                token_error(p, f, offset, message);
                return false;
        }
        return true;
}

/* service / argument columns, shared with !include-service */
static bool parse_service(Parser *p, const Field *f, uint32_t *ret) {
        if (field_is(f, "*")) {
                *ret = 0;
                return true;
        }
        long bad = policy_service_invalid_at(f->p, f->len);
        if (bad >= 0) {
                if ((size_t) bad >= POLICY_SERVICE_MAX)
                        parser_error(p, f->column + (unsigned) bad, "service name is longer than %d characters",
                                     POLICY_SERVICE_MAX);
                else if (f->p[bad] == '+')
                        parser_error(p, f->column + (unsigned) bad,
                                     "service name '%.*s' contains '+'; write the argument in its own column, "
                                     "e.g. '%.*s +%.*s'",
                                     (int) f->len, f->p, (int) bad, f->p, (int) (f->len - (size_t) bad - 1),
                                     f->p + bad + 1);
                else
                        parser_error(p, f->column + (unsigned) bad,
                                     "invalid character '%c' in service name '%.*s'; expected '*' or a name of "
                                     "letters, digits, '_', '.' and '-'",
                                     f->p[bad], (int) f->len, f->p);
                return false;
        }
        *ret = intern_add(&p->s->strings, f->p, f->len);
        return true;
}

static bool parse_argument(Parser *p, const Field *f, uint32_t service, uint32_t *ret) {
        if (field_is(f, "*")) {
                *ret = RULE_ARG_ANY;
                return true;
        }
        if (f->p[0] != '+') {
                parser_error(p, f->column, "expected an argument '*', '+' (no argument) or '+ARGUMENT', got '%.*s'",
                             (int) f->len, f->p);
                return false;
        }
        long bad = policy_arg_invalid_at(f->p + 1, f->len - 1);
        if (bad >= 0) {
                if ((size_t) bad >= POLICY_ARG_MAX)
                        parser_error(p, f->column + 1 + (unsigned) bad, "argument is longer than %d characters",
                                     POLICY_ARG_MAX);
                else
                        parser_error(p, f->column + 1 + (unsigned) bad,
                                     "invalid character '%c' in argument '%.*s'; expected letters, digits, '_', "
                                     "'.', '-' and '+'",
                                     f->p[1 + bad], (int) f->len, f->p);
                return false;
        }
        if (service == 0) {
                parser_error(p, f->column, "service '*' only takes the argument '*', got '%.*s'", (int) f->len, f->p);
                return false;
        }
        *ret = intern_add(&p->s->strings, f->p + 1, f->len - 1);
        return true;
}

static bool parse_bool_param(Parser *p, const Field *f, size_t vstart, bool *ret) {
        const char *v = f->p + vstart;
        size_t n = f->len - vstart;
        if ((n == 3 && memcmp(v, "yes", 3) == 0) || (n == 4 && memcmp(v, "true", 4) == 0)) {
                *ret = true;
                return true;
        }
        if ((n == 2 && memcmp(v, "no", 2) == 0) || (n == 5 && memcmp(v, "false", 5) == 0)) {
                *ret = false;
                return true;
        }
        parser_error(p, f->column + (unsigned) vstart, "invalid value '%.*s' for %.*s; expected yes or no", (int) n, v,
                     (int) vstart, f->p);
        return false;
}

/* PARAM=VALUE fields f[5..end) of a rule whose action is known: false after reporting what is wrong. */
static bool parse_params(Parser *p, const Field *f, size_t end, PolicyRule *rule) {
        bool ok = true;
        bool seen_target = false, seen_default = false, seen_autostart = false, seen_notify = false;
        for (size_t i = 5; i < end; i++) {
                const Field *prm = &f[i];
                const char *eq = memchr(prm->p, '=', prm->len);
                if (!eq) {
                        parser_error(p, prm->column, "expected a parameter KEY=VALUE, got '%.*s'", (int) prm->len,
                                     prm->p);
                        ok = false;
                        continue;
                }
                size_t klen = (size_t) (eq - prm->p), vstart = klen + 1;
                Field value = { prm->p + vstart, prm->len - vstart, prm->column + (unsigned) vstart };
                bool *seen;
                const char *only_for = NULL;
                if (klen == 6 && memcmp(prm->p, "target", 6) == 0) {
                        seen = &seen_target;
                        if (rule->action == POLICY_ACTION_DENY)
                                only_for = "allow and ask";
                } else if (klen == 14 && memcmp(prm->p, "default_target", 14) == 0) {
                        seen = &seen_default;
                        if (rule->action != POLICY_ACTION_ASK)
                                only_for = "ask";
                } else if (klen == 9 && memcmp(prm->p, "autostart", 9) == 0) {
                        seen = &seen_autostart;
                        if (rule->action == POLICY_ACTION_DENY)
                                only_for = "allow and ask";
                } else if (klen == 6 && memcmp(prm->p, "notify", 6) == 0)
                        seen = &seen_notify;
                else if (klen == 4 && memcmp(prm->p, "user", 4) == 0) {
                        parser_error(p, prm->column,
                                     "parameter 'user=' is not supported: vmfed services do not run as a chosen user");
                        ok = false;
                        continue;
                } else {
                        parser_error(p, prm->column,
                                     "unknown parameter '%.*s'; expected target=, default_target=, autostart= or "
                                     "notify=",
                                     (int) klen, prm->p);
                        ok = false;
                        continue;
                }
                if (*seen) {
                        parser_error(p, prm->column, "parameter '%.*s=' given twice", (int) klen, prm->p);
                        ok = false;
                        continue;
                }
                *seen = true;
                if (only_for) {
                        parser_error(p, prm->column, "parameter '%.*s=' is only valid for %s, not for %s", (int) klen,
                                     prm->p, only_for, policy_action_to_string(rule->action));
                        ok = false;
                        continue;
                }
                if (value.len == 0) {
                        parser_error(p, value.column, "parameter '%.*s=' needs a value", (int) klen, prm->p);
                        ok = false;
                        continue;
                }
                if (seen == &seen_target) {
                        ok = parse_token(p, &value, TOKEN_PLACE_REDIRECT, &rule->redirect) && ok;
                        rule->columns[2] = (uint16_t) value.column;
                } else if (seen == &seen_default) {
                        ok = parse_token(p, &value, TOKEN_PLACE_REDIRECT, &rule->default_target) && ok;
                        rule->columns[3] = (uint16_t) value.column;
                }
                else if (seen == &seen_autostart)
                        ok = parse_bool_param(p, prm, vstart, &rule->autostart) && ok;
                else
                        ok = parse_bool_param(p, prm, vstart, &rule->notify) && ok;
        }

        return ok;
}

static void parse_rule(Parser *p, const Field *fields, size_t n) {
        static const char *const names[] = { "SERVICE", "ARGUMENT", "SOURCE", "TARGET", "ACTION" };
        PolicyRule rule = { .autostart = true, .notify = true, .file = p->file, .line = p->line };
        size_t first = 0, need = 5;
        bool ok = true;

        if (p->legacy) {
                /* R4.0 format: SOURCE TARGET ACTION[,PARAM=VALUE...] for a fixed service */
                rule.service = p->legacy->service;
                rule.arg = p->legacy->arg;
                first = 2;
                need = 3;
        }
        if (n < need) {
                const Field *last = &fields[n - 1];
                parser_error(p, last->column + (unsigned) last->len,
                             "expected %s after '%.*s'; a rule is %s", names[first + n], (int) last->len, last->p,
                             p->legacy ? "SOURCE TARGET ACTION[,PARAM=VALUE...]"
                                       : "SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE...]");
                return;
        }
        if (n > MAX_FIELDS) {
                parser_error(p, fields[MAX_FIELDS].column, "too many parameters");
                return;
        }
        /* Columns by meaning: f[2] is SOURCE in both formats. */
        Field f[MAX_FIELDS + 2];
        memcpy(f + first, fields, n * sizeof(Field));

        if (!p->legacy) {
                ok = parse_service(p, &f[0], &rule.service);
                if (ok)
                        ok = parse_argument(p, &f[1], rule.service, &rule.arg);
        }
        ok = parse_token(p, &f[2], TOKEN_PLACE_SOURCE, &rule.source) && ok;
        ok = parse_token(p, &f[3], TOKEN_PLACE_TARGET, &rule.target) && ok;
        rule.columns[0] = (uint16_t) f[2].column;
        rule.columns[1] = (uint16_t) f[3].column;

        const Field *action = &f[4];
        if (field_is(action, "allow"))
                rule.action = POLICY_ACTION_ALLOW;
        else if (field_is(action, "deny"))
                rule.action = POLICY_ACTION_DENY;
        else if (field_is(action, "ask"))
                rule.action = POLICY_ACTION_ASK;
        else {
                parser_error(p, action->column, "unknown action '%.*s'; expected allow, deny or ask",
                             (int) action->len, action->p);
                return; /* parameters depend on the action */
        }

        ok = parse_params(p, f, n + first, &rule) && ok;

        if (ok && rule.action == POLICY_ACTION_ALLOW && rule.target.kind == TOKEN_DEFAULT &&
            rule.redirect.kind == TOKEN_NONE) {
                parser_error(p, action->column,
                             "'allow' for target @default needs target=: the caller named no target, so the rule "
                             "must say where the call goes");
                ok = false;
        }
        if (ok)
                snapshot_add_rule(p->s, &rule);
}

static void parse_directive(Parser *p, const Field *f, size_t n) {
        if (p->legacy) {
                if (field_is(&f[0], "!include") && n == 2)
                        loader_include(p->loader, p->file, p->line, f[1].column, f[1].p, f[1].len, p->legacy);
                else if (field_is(&f[0], "!include"))
                        parser_error(p, f[0].column, "$include: takes exactly one path");
                else
                        parser_error(p, f[0].column, "a file included with !include-service may only contain "
                                                     "rules and $include: lines");
                return;
        }

        if (field_is(&f[0], "!include") || field_is(&f[0], "!include-dir")) {
                if (n != 2) {
                        parser_error(p, f[0].column, "%.*s takes exactly one path, got %zu arguments", (int) f[0].len,
                                     f[0].p, n - 1);
                        return;
                }
                if (f[0].len == strlen("!include"))
                        loader_include(p->loader, p->file, p->line, f[1].column, f[1].p, f[1].len, NULL);
                else
                        loader_include_dir(p->loader, p->file, p->line, f[1].column, f[1].p, f[1].len);
                return;
        }
        if (field_is(&f[0], "!include-service")) {
                if (n != 4) {
                        parser_error(p, f[0].column,
                                     "!include-service takes SERVICE ARGUMENT PATH, got %zu arguments", n - 1);
                        return;
                }
                LegacyService legacy;
                if (!parse_service(p, &f[1], &legacy.service) || !parse_argument(p, &f[2], legacy.service, &legacy.arg))
                        return;
                loader_include(p->loader, p->file, p->line, f[3].column, f[3].p, f[3].len, &legacy);
                return;
        }
        if (field_is(&f[0], "!compat-4.0")) {
                parser_error(p, f[0].column, "!compat-4.0 is not supported: vmfed has no R4.0 policy directory; use "
                                             "!include-service for old-format files");
                return;
        }
        parser_error(p, f[0].column, "unknown directive '%.*s'; expected !include, !include-dir or !include-service",
                     (int) f[0].len, f[0].p);
}

/* Legacy lines: "$include:PATH" -> "!include PATH", '$' -> '@', ',' -> ' '.  Lengths are kept, so columns stay right. */
static void legacy_rewrite(char *line, size_t len) {
        if (len >= 9 && memcmp(line, "$include:", 9) == 0)
                memcpy(line, "!include ", 9);
        for (size_t i = 0; i < len; i++)
                if (line[i] == '$')
                        line[i] = '@';
                else if (line[i] == ',')
                        line[i] = ' ';
}

void parser_parse(Loader *l, const char *file, const char *data, size_t size, const LegacyService *legacy) {
        Parser p = { .loader = l, .s = l->snapshot, .file = file, .legacy = legacy };
        char legacy_buf[MAX_LINE_LENGTH];
        size_t pos = 0;

        while (pos < size) {
                const char *start = data + pos;
                const char *nl = memchr(start, '\n', size - pos);
                size_t len = nl ? (size_t) (nl - start) : size - pos;
                pos += len + (nl ? 1 : 0);
                p.line++;

                size_t i = 0;
                while (i < len && is_space(start[i]))
                        i++;
                if (i == len || start[i] == '#') {
                        /* Blank line or comment: anything but NUL goes. */
                        const char *nul = memchr(start, '\0', len);
                        if (nul)
                                parser_error(&p, (unsigned) (nul - start) + 1, "NUL byte in policy text");
                        continue;
                }
                if (len > MAX_LINE_LENGTH - 1) {
                        parser_error(&p, MAX_LINE_LENGTH, "line is longer than %d characters", MAX_LINE_LENGTH - 1);
                        continue;
                }

                /* Rules and directives are plain ASCII. */
                bool bad = false;
                for (size_t k = i; k < len; k++) {
                        unsigned char c = (unsigned char) start[k];
                        if ((c < 0x20 && !is_space((char) c)) || c >= 0x7f) {
                                parser_error(&p, (unsigned) k + 1,
                                             c == 0 ? "NUL byte in policy text"
                                                    : "invalid byte 0x%02x; rules and directives are printable ASCII",
                                             c);
                                bad = true;
                                break;
                        }
                }
                if (bad)
                        continue;

                const char *text = start;
                if (legacy) {
                        memcpy(legacy_buf, start, len);
                        legacy_rewrite(legacy_buf + i, len - i);
                        text = legacy_buf;
                }

                Field fields[MAX_FIELDS + 1];
                size_t n = 0;
                for (size_t k = i; k < len;) {
                        while (k < len && is_space(text[k]))
                                k++;
                        if (k == len)
                                break;
                        size_t b = k;
                        while (k < len && !is_space(text[k]))
                                k++;
                        if (n <= MAX_FIELDS)
                                fields[n] = (Field) { text + b, k - b, (unsigned) b + 1 };
                        n++;
                }
                if (n == 0)
                        continue; /* a legacy line of only commas */
                if (text[i] == '!') {
                        if (n > MAX_FIELDS)
                                parser_error(&p, fields[MAX_FIELDS].column, "too many arguments");
                        else
                                parse_directive(&p, fields, n);
                } else
                        parse_rule(&p, fields, n > MAX_FIELDS ? MAX_FIELDS + 1 : n);
        }
}
