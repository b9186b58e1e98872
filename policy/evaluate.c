/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy_evaluate(): a pure function of (snapshot, facts, request).  It
 * reads the frozen snapshot and facts, writes only *ret and its own stack,
 * and never allocates, so a broker may call it from any thread for as long
 * as it holds references to both.
 */
#include <errno.h>
#include <string.h>

#include "common/macro.h"
#include "policy/facts.h"
#include "policy/snapshot.h"

#define ARG_NOT_IN_POLICY (UINT32_MAX - 1)
#define PARTY_MAX_TAGS 32

/* A VM taking part in the request (source, target, or a @dispvm template). */
typedef struct Party {
        const FactsVm *vm; /* NULL: the host, or absent */
        uint32_t id;       /* the name in the snapshot's table, 0 when no rule names it */
        int n_tag_ids;     /* -1 until resolved */
        uint32_t tag_ids[PARTY_MAX_TAGS];
} Party;

typedef enum TargetKind {
        TARGET_DEFAULT,
        TARGET_HOST,
        TARGET_VM,
        TARGET_DISPVM,      /* "@dispvm", template resolved from the source (tmpl.vm may be NULL) */
        TARGET_DISPVM_NAME, /* "@dispvm:NAME" */
} TargetKind;

typedef struct Target {
        TargetKind kind;
        Party vm;   /* TARGET_VM */
        Party tmpl; /* TARGET_DISPVM, TARGET_DISPVM_NAME */
} Target;

typedef struct Context {
        const PolicySnapshot *s;
        const PolicyFacts *f;
        bool source_is_host;
        Party source;
        uint32_t arg;
        const uint32_t *generic;
        uint32_t n_generic;
        const uint32_t *exact;
        uint32_t n_exact;
} Context;

static void party_init(const PolicySnapshot *s, Party *p, const FactsVm *vm) {
        p->vm = vm;
        p->id = vm ? intern_lookup(&s->strings, vm->name) : 0;
        p->n_tag_ids = -1;
}

static bool party_has_tag(const PolicySnapshot *s, Party *p, uint32_t tag) {
        const FactsVm *vm = p->vm;
        if (!vm)
                return false;
        if (p->n_tag_ids < 0) {
                if (vm->n_tags > PARTY_MAX_TAGS) {
                        /* Rare: compare strings. */
                        const char *want = intern_string(&s->strings, tag);
                        for (size_t i = 0; i < vm->n_tags; i++)
                                if (strcmp(vm->tags[i], want) == 0)
                                        return true;
                        return false;
                }
                int n = 0;
                for (size_t i = 0; i < vm->n_tags; i++) {
                        uint32_t id = intern_lookup(&s->strings, vm->tags[i]);
                        if (id)
                                p->tag_ids[n++] = id;
                }
                p->n_tag_ids = n;
        }
        for (int i = 0; i < p->n_tag_ids; i++)
                if (p->tag_ids[i] == tag)
                        return true;
        return false;
}

/* The template a disposable was made from, for @dispvm:NAME / @dispvm:@tag:T as a source. */
static bool disposable_template_matches(const Context *c, const PolicyToken *t) {
        const FactsVm *vm = c->source.vm;
        if (vm->role != POLICY_ROLE_DISPOSABLE || !vm->default_dispvm)
                return false;
        if (t->kind == TOKEN_DISPVM_NAME)
                return strcmp(vm->default_dispvm, intern_string(&c->s->strings, t->id)) == 0;
        const FactsVm *tmpl = facts_find_vm(c->f, vm->default_dispvm);
        if (!tmpl || tmpl->role != POLICY_ROLE_DISPOSABLE_TEMPLATE)
                return false;
        Party p;
        party_init(c->s, &p, tmpl);
        return party_has_tag(c->s, &p, t->id);
}

static bool source_matches(Context *c, const PolicyToken *t) {
        if (c->source_is_host)
                return t->kind == TOKEN_HOST;
        switch ((TokenKind) t->kind) {
        case TOKEN_NAME:
                return c->source.id == t->id;
        case TOKEN_ANYVM:
                return true;
        case TOKEN_TAG:
                return party_has_tag(c->s, &c->source, t->id);
        case TOKEN_ROLE:
                return c->source.vm->role == t->role;
        case TOKEN_ACTIVE:
                return facts_vm_is_active(c->f, c->source.vm);
        case TOKEN_DISPVM:
                return c->source.vm->role == POLICY_ROLE_DISPOSABLE;
        case TOKEN_DISPVM_NAME:
        case TOKEN_DISPVM_TAG:
                return disposable_template_matches(c, t);
        default:
                return false;
        }
}

static bool target_matches(Context *c, const PolicyToken *t, Target *tg) {
        switch ((TokenKind) t->kind) {
        case TOKEN_NAME:
                return tg->kind == TARGET_VM && tg->vm.id == t->id;
        case TOKEN_ANYVM:
                return tg->kind != TARGET_HOST;
        case TOKEN_TAG:
                return tg->kind == TARGET_VM && party_has_tag(c->s, &tg->vm, t->id);
        case TOKEN_ROLE:
                return tg->kind == TARGET_VM && tg->vm.vm->role == t->role;
        case TOKEN_ACTIVE:
                return tg->kind == TARGET_VM && facts_vm_is_active(c->f, tg->vm.vm);
        case TOKEN_HOST:
                return tg->kind == TARGET_HOST;
        case TOKEN_DEFAULT:
                return tg->kind == TARGET_DEFAULT;
        case TOKEN_DISPVM:
                return tg->kind == TARGET_DISPVM;
        case TOKEN_DISPVM_NAME:
                return (tg->kind == TARGET_DISPVM || tg->kind == TARGET_DISPVM_NAME) && tg->tmpl.vm &&
                       tg->tmpl.id == t->id;
        case TOKEN_DISPVM_TAG:
                return (tg->kind == TARGET_DISPVM || tg->kind == TARGET_DISPVM_NAME) && tg->tmpl.vm &&
                       tg->tmpl.vm->role == POLICY_ROLE_DISPOSABLE_TEMPLATE && party_has_tag(c->s, &tg->tmpl, t->id);
        default:
                return false;
        }
}

static bool rule_matches(Context *c, const PolicyRule *r, Target *tg, bool source_known) {
        if (r->arg != RULE_ARG_ANY && r->arg != c->arg)
                return false;
        if (!source_known && !source_matches(c, &r->source))
                return false;
        return target_matches(c, &r->target, tg);
}

/* First matching rule in rule order: merge-walk the exact-source list and the generic list. */
static const PolicyRule *find_first(Context *c, Target *tg) {
        const PolicyRule *rules = c->s->rules;
        uint32_t i = 0, j = 0;
        while (i < c->n_exact || j < c->n_generic) {
                bool take_exact = j == c->n_generic || (i < c->n_exact && c->exact[i] < c->generic[j]);
                const PolicyRule *r = take_exact ? &rules[c->exact[i++]] : &rules[c->generic[j++]];
                if (rule_matches(c, r, tg, take_exact))
                        return r;
        }
        return NULL;
}

/* The template for "@dispvm" from the request's source. */
static void target_resolve_default_dispvm(const Context *c, Target *tg) {
        const char *name = !c->source_is_host && c->source.vm->default_dispvm ? c->source.vm->default_dispvm
                                                                                : c->f->default_dispvm;
        const FactsVm *tmpl = name ? facts_find_vm(c->f, name) : NULL;
        if (tmpl && tmpl->role != POLICY_ROLE_DISPOSABLE_TEMPLATE)
                tmpl = NULL;
        party_init(c->s, &tg->tmpl, tmpl);
}

/* Resolve a rule's target= / default_target= into a Target.  Returns a reason on failure. */
static const char *target_from_token(const Context *c, const PolicyToken *t, Target *tg) {
        *tg = (Target) {};
        switch ((TokenKind) t->kind) {
        case TOKEN_NAME: {
                const FactsVm *vm = facts_find_vm(c->f, t->text);
                if (!vm)
                        return "the rule's target= names a VM that does not exist";
                tg->kind = TARGET_VM;
                party_init(c->s, &tg->vm, vm);
                return NULL;
        }
        case TOKEN_HOST:
                tg->kind = TARGET_HOST;
                return NULL;
        case TOKEN_ACTIVE:
                if (c->f->active == 0)
                        return "the rule's target=@active but no persona is active";
                tg->kind = TARGET_VM;
                party_init(c->s, &tg->vm, &c->f->vms[c->f->active - 1]);
                return NULL;
        case TOKEN_DISPVM:
                tg->kind = TARGET_DISPVM;
                target_resolve_default_dispvm(c, tg);
                return NULL;
        case TOKEN_DISPVM_NAME: {
                const FactsVm *vm = facts_find_vm(c->f, intern_string(&c->s->strings, t->id));
                if (!vm || vm->role != POLICY_ROLE_DISPOSABLE_TEMPLATE)
                        return "the rule's target=@dispvm:NAME does not name a disposable template";
                tg->kind = TARGET_DISPVM_NAME;
                party_init(c->s, &tg->tmpl, vm);
                return NULL;
        }
        default:
                return "invalid redirect";
        }
}

/* Where a call to tg is routed, or NULL (reason set) when it cannot be. */
static const char *target_route(const Target *tg, const char **reason) {
        switch (tg->kind) {
        case TARGET_VM:
                return tg->vm.vm->name;
        case TARGET_HOST:
                return "@host";
        case TARGET_DISPVM:
        case TARGET_DISPVM_NAME:
                if (!tg->tmpl.vm) {
                        *reason = "@dispvm: no default disposable template is set for the caller";
                        return NULL;
                }
                return tg->tmpl.vm->dispvm_token;
        case TARGET_DEFAULT:
        default:
                *reason = "the caller named no target and the rule has no target=";
                return NULL;
        }
}

static bool is_host_token(const char *s) {
        return strcmp(s, "@host") == 0 || strcmp(s, "@adminvm") == 0;
}

static int deny(PolicyDecision *ret, const char *reason, int r) {
        *ret = (PolicyDecision) {
                .action = POLICY_ACTION_DENY,
                .autostart = true,
                .notify = true,
                .reason = reason,
        };
        return r;
}

static int deny_by(PolicyDecision *ret, const PolicyRule *rule, const char *reason) {
        deny(ret, reason, 0);
        ret->rule_file = rule->file;
        ret->rule_line = rule->line;
        ret->notify = rule->notify;
        return 0;
}

int policy_evaluate(const PolicySnapshot *s, const PolicyFacts *f, const PolicyRequest *req, PolicyDecision *ret) {
        if (!ret)
                return -EINVAL;
        if (!s || !f || !req || !req->service || !req->source)
                return deny(ret, "malformed request: missing snapshot, facts, service or source", -EINVAL);

        const char *untrusted_service = req->service, *untrusted_arg = req->arg ? req->arg : "";
        const char *untrusted_source = req->source;
        const char *untrusted_target = req->target && req->target[0] ? req->target : "@default";

        size_t service_len = strlen(untrusted_service), arg_len = strlen(untrusted_arg);
        if (policy_service_invalid_at(untrusted_service, service_len) >= 0)
                return deny(ret, "malformed request: invalid service name", -EINVAL);
        if (policy_arg_invalid_at(untrusted_arg, arg_len) >= 0)
                return deny(ret, "malformed request: invalid argument", -EINVAL);

        Context c = { .s = s, .f = f };
        if (is_host_token(untrusted_source))
                c.source_is_host = true;
        else if (!policy_vm_name_is_valid(untrusted_source, strlen(untrusted_source)))
                return deny(ret, "malformed request: invalid source", -EINVAL);

        Target tg = {};
        const char *tmpl_name = NULL;
        if (strcmp(untrusted_target, "@default") == 0)
                tg.kind = TARGET_DEFAULT;
        else if (is_host_token(untrusted_target))
                tg.kind = TARGET_HOST;
        else if (strcmp(untrusted_target, "@dispvm") == 0)
                tg.kind = TARGET_DISPVM;
        else if (strncmp(untrusted_target, "@dispvm:", 8) == 0) {
                tg.kind = TARGET_DISPVM_NAME;
                tmpl_name = untrusted_target + 8;
                if (!policy_vm_name_is_valid(tmpl_name, strlen(tmpl_name)))
                        return deny(ret, "malformed request: invalid @dispvm: template name", -EINVAL);
        } else if (policy_vm_name_is_valid(untrusted_target, strlen(untrusted_target)))
                tg.kind = TARGET_VM;
        else
                return deny(ret, "malformed request: invalid target", -EINVAL);

        /* The request is well formed; from here on every answer is a decision. */
        if (s->broken)
                return deny(ret, "the policy has errors; every request is denied until they are fixed", 0);

        if (!c.source_is_host) {
                const FactsVm *vm = facts_find_vm(f, untrusted_source);
                if (!vm)
                        return deny(ret, "unknown source VM", 0);
                party_init(s, &c.source, vm);
        }
        switch (tg.kind) {
        case TARGET_VM: {
                const FactsVm *vm = facts_find_vm(f, untrusted_target);
                if (!vm)
                        return deny(ret, "unknown target VM", 0);
                party_init(s, &tg.vm, vm);
                break;
        }
        case TARGET_DISPVM_NAME: {
                const FactsVm *vm = facts_find_vm(f, tmpl_name);
                if (!vm || vm->role != POLICY_ROLE_DISPOSABLE_TEMPLATE)
                        return deny(ret, "the target @dispvm:NAME does not name a disposable template", 0);
                party_init(s, &tg.tmpl, vm);
                break;
        }
        case TARGET_DISPVM:
                target_resolve_default_dispvm(&c, &tg);
                break;
        default:
                break;
        }

        /* Index: service bucket, then the source's exact list. */
        uint32_t svc = intern_lookup_len(&s->strings, untrusted_service, service_len);
        uint32_t b = svc < s->n_service_bucket ? s->service_bucket[svc] : 0;
        const Bucket *bk = &s->buckets[b];
        c.generic = s->pool + bk->generic_offset;
        c.n_generic = bk->n_generic;
        uint32_t key = c.source_is_host ? SOURCE_KEY_HOST : c.source.id;
        if (key != 0) {
                const SourceList *lists = s->lists + bk->lists_offset;
                uint32_t lo = 0, hi = bk->n_lists;
                while (lo < hi) {
                        uint32_t mid = lo + (hi - lo) / 2;
                        if (lists[mid].source < key)
                                lo = mid + 1;
                        else
                                hi = mid;
                }
                if (lo < bk->n_lists && lists[lo].source == key) {
                        c.exact = s->pool + lists[lo].offset;
                        c.n_exact = lists[lo].n;
                }
        }
        c.arg = intern_lookup_len(&s->strings, untrusted_arg, arg_len);
        if (c.arg == 0)
                c.arg = ARG_NOT_IN_POLICY;

        const PolicyRule *rule = find_first(&c, &tg);
        if (!rule)
                return deny(ret, "no rule matches (default deny)", 0);
        if (rule->action == POLICY_ACTION_DENY)
                return deny_by(ret, rule, "denied by policy");

        /* allow / ask: where would the call go? */
        Target eff = tg;
        if (rule->redirect.kind != TOKEN_NONE) {
                const char *why = target_from_token(&c, &rule->redirect, &eff);
                if (why)
                        return deny_by(ret, rule, why);
                /* qubes-issues#8227: a redirect may not land where the policy denies this call. */
                const PolicyRule *check = find_first(&c, &eff);
                if (!check || check->action == POLICY_ACTION_DENY)
                        return deny_by(ret, rule,
                                       "the rule's target= redirect is refused: the policy denies this call to "
                                       "the redirect target");
        }

        PolicyDecision d = {
                .action = (PolicyAction) rule->action,
                .autostart = rule->autostart,
                .notify = rule->notify,
                .rule_file = rule->file,
                .rule_line = rule->line,
        };
        const char *reason = NULL;
        if (rule->action == POLICY_ACTION_ALLOW) {
                d.target = target_route(&eff, &reason);
                if (!d.target)
                        return deny_by(ret, rule, reason);
        } else {
                if (eff.kind != TARGET_DEFAULT) {
                        d.target = target_route(&eff, &reason);
                        if (!d.target)
                                return deny_by(ret, rule, reason);
                }
                if (rule->default_target.kind != TOKEN_NONE) {
                        /* Like Qubes, a default the user could not pick is dropped, not an error. */
                        Target dt;
                        if (!target_from_token(&c, &rule->default_target, &dt)) {
                                const PolicyRule *check = find_first(&c, &dt);
                                if (check && check->action != POLICY_ACTION_DENY)
                                        d.default_target = target_route(&dt, &reason);
                        }
                }
        }
        *ret = d;
        return 0;
}
