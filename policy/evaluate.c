/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy_evaluate(): a pure function of (snapshot, facts, request).  It
 * reads the frozen snapshot and facts, writes only *ret and its own stack,
 * and never allocates or locks, so a broker may call it from any thread for
 * as long as it holds references to both.
 *
 * Cost: one hash lookup each for the source and target VM (in the facts),
 * the service and a non-empty argument (in the snapshot); one probe per
 * selected rule list; then a merge-walk over the few rules whose source can
 * match.  VM names and tags are compared as shared ids (policy/intern.h).
 */
#include <errno.h>
#include <string.h>

#include "common/macro.h"
#include "policy/facts.h"
#include "policy/snapshot.h"

#define ARG_NOT_IN_POLICY (UINT32_MAX - 1)
#define MAX_CURSORS 3
#define KNOWN_SOURCE 1u /* every entry of the list matches the request's source */
#define KNOWN_TARGET 2u /* ... its target */

typedef enum TargetKind {
        TARGET_DEFAULT,
        TARGET_HOST,
        TARGET_VM,
        TARGET_DISPVM,      /* "@dispvm", template resolved from the source (tmpl may be NULL) */
        TARGET_DISPVM_NAME, /* "@dispvm:NAME" */
} TargetKind;

typedef struct Target {
        TargetKind kind;
        const FactsVm *vm;   /* TARGET_VM */
        const FactsVm *tmpl; /* TARGET_DISPVM, TARGET_DISPVM_NAME: a disposable template, or NULL */
} Target;

/* One list of index entries being walked. */
typedef struct Cursor {
        const IndexEntry *e;
        uint32_t left; /* entries from e on */
        unsigned known; /* KNOWN_* */
} Cursor;

/* The lists a request selects in its service's bucket. */
typedef struct Walk {
        Cursor c[MAX_CURSORS];
        unsigned n;
} Walk;

typedef struct Context {
        const PolicySnapshot *s;
        const PolicyFacts *f;
        const FactsVm *source; /* NULL: the host */
        uint32_t arg;
        uint32_t bucket;
} Context;

static inline bool vm_has_tag(const FactsVm *vm, uint32_t tag) {
        for (size_t i = 0; i < vm->n_tags; i++)
                if (vm->tag_gids[i] == tag)
                        return true;
        return false;
}

static const FactsVm *template_of(const PolicyFacts *f, const char *name) {
        const FactsVm *t = name ? facts_find_vm(f, name) : NULL;
        return t && t->role == POLICY_ROLE_DISPOSABLE_TEMPLATE ? t : NULL;
}

static bool source_matches(const Context *c, uint8_t kind, int8_t role, uint32_t id) {
        const FactsVm *vm = c->source;
        if (!vm)
                return kind == TOKEN_HOST;
        switch ((TokenKind) kind) {
        case TOKEN_NAME:
                return vm->gid == id;
        case TOKEN_ANYVM:
                return true;
        case TOKEN_TAG:
                return vm_has_tag(vm, id);
        case TOKEN_ROLE:
                return vm->role == role;
        case TOKEN_ACTIVE:
                return facts_vm_is_active(c->f, vm);
        case TOKEN_DISPVM:
                return vm->role == POLICY_ROLE_DISPOSABLE;
        case TOKEN_DISPVM_NAME:
        case TOKEN_DISPVM_TAG: {
                /* a running disposable, matched by the template it was made from */
                if (vm->role != POLICY_ROLE_DISPOSABLE)
                        return false;
                const FactsVm *t = template_of(c->f, vm->default_dispvm);
                return t && (kind == TOKEN_DISPVM_NAME ? t->gid == id : vm_has_tag(t, id));
        }
        default:
                return false;
        }
}

static bool target_matches(const Context *c, uint8_t kind, int8_t role, uint32_t id, const Target *tg) {
        switch ((TokenKind) kind) {
        case TOKEN_NAME:
                return tg->kind == TARGET_VM && tg->vm->gid == id;
        case TOKEN_ANYVM:
                return tg->kind != TARGET_HOST;
        case TOKEN_TAG:
                return tg->kind == TARGET_VM && vm_has_tag(tg->vm, id);
        case TOKEN_ROLE:
                return tg->kind == TARGET_VM && tg->vm->role == role;
        case TOKEN_ACTIVE:
                return tg->kind == TARGET_VM && facts_vm_is_active(c->f, tg->vm);
        case TOKEN_HOST:
                return tg->kind == TARGET_HOST;
        case TOKEN_DEFAULT:
                return tg->kind == TARGET_DEFAULT;
        case TOKEN_DISPVM:
                return tg->kind == TARGET_DISPVM;
        case TOKEN_DISPVM_NAME:
                return (tg->kind == TARGET_DISPVM || tg->kind == TARGET_DISPVM_NAME) && tg->tmpl &&
                       tg->tmpl->gid == id;
        case TOKEN_DISPVM_TAG:
                return (tg->kind == TARGET_DISPVM || tg->kind == TARGET_DISPVM_NAME) && tg->tmpl &&
                       vm_has_tag(tg->tmpl, id);
        default:
                return false;
        }
}

static inline bool entry_matches(const Context *c, const IndexEntry *e, unsigned known, const Target *tg) {
        if (e->arg != RULE_ARG_ANY && e->arg != c->arg)
                return false;
        /* Most rules name their target: reject those cheaply first. */
        if (!(known & KNOWN_TARGET) && e->dst_kind == TOKEN_NAME &&
            (tg->kind != TARGET_VM || tg->vm->gid != e->dst_id))
                return false;
        if (!(known & KNOWN_SOURCE) && !source_matches(c, e->src_kind, e->src_role, e->src_id))
                return false;
        return (known & KNOWN_TARGET) || target_matches(c, e->dst_kind, e->dst_role, e->dst_id, tg);
}

/* Add the bucket's list for key, if there is one. */
static inline void walk_add_list(Walk *w, const PolicySnapshot *s, uint32_t bucket, uint32_t key, unsigned known) {
        for (uint32_t h = list_slot_hash(bucket, key) & s->list_mask;; h = (h + 1) & s->list_mask) {
                const ListSlot *l = &s->list_slots[h];
                if (l->n == 0)
                        return;
                if (l->bucket == bucket && l->key == key) {
                        w->c[w->n++] = (Cursor) { s->entries + l->offset, l->n, known };
                        return;
                }
        }
}

/* The lists that can hold a rule matching (source, tg). */
static void walk_init(Walk *w, const Context *c, const Target *tg) {
        const PolicySnapshot *s = c->s;
        w->n = 0;
        if (!c->source) {
                walk_add_list(w, s, c->bucket, LIST_KEY_HOST, KNOWN_SOURCE); /* no generic source matches @host */
                return;
        }
        walk_add_list(w, s, c->bucket, c->source->gid, KNOWN_SOURCE);
        if (tg->kind == TARGET_VM)
                walk_add_list(w, s, c->bucket, LIST_KEY_TARGET | tg->vm->gid, KNOWN_TARGET);
        const Bucket *bk = &s->buckets[c->bucket];
        if (bk->n_generic > 0)
                w->c[w->n++] = (Cursor) { s->entries + bk->generic_offset, bk->n_generic, 0 };
}

/* First matching rule in rule order: merge-walk the selected lists by rule number. */
static const PolicyRule *find_first(const Context *c, const Target *tg) {
        Walk w;
        walk_init(&w, c, tg);
        while (w.n > 1) {
                unsigned best = 0;
                uint32_t best_rule = w.c[0].e->rule;
                for (unsigned k = 1; k < w.n; k++)
                        if (w.c[k].e->rule < best_rule) {
                                best = k;
                                best_rule = w.c[k].e->rule;
                        }
                Cursor *cur = &w.c[best];
                unsigned known = cur->known;
                const IndexEntry *e = cur->e++;
                if (--cur->left == 0)
                        w.c[best] = w.c[--w.n];
                if (entry_matches(c, e, known, tg))
                        return &c->s->rules[e->rule];
        }
        if (w.n == 1) {
                const IndexEntry *e = w.c[0].e, *end = e + w.c[0].left;
                for (; e < end; e++)
                        if (entry_matches(c, e, w.c[0].known, tg))
                                return &c->s->rules[e->rule];
        }
        return NULL;
}

/* The template for "@dispvm" from the request's source. */
static const FactsVm *default_template(const Context *c) {
        return template_of(c->f, c->source && c->source->default_dispvm ? c->source->default_dispvm
                                                                        : c->f->default_dispvm);
}

/* Resolve a rule's target= / default_target= into a Target.  Returns a reason on failure. */
static const char *target_from_token(const Context *c, const PolicyToken *t, Target *tg) {
        *tg = (Target) { .kind = TARGET_DEFAULT };
        switch ((TokenKind) t->kind) {
        case TOKEN_NAME:
                tg->vm = facts_find_vm(c->f, t->text);
                if (!tg->vm)
                        return "the rule's target= names a VM that does not exist";
                tg->kind = TARGET_VM;
                return NULL;
        case TOKEN_HOST:
                tg->kind = TARGET_HOST;
                return NULL;
        case TOKEN_ACTIVE:
                if (c->f->active == 0)
                        return "the rule's target=@active but no persona is active";
                tg->kind = TARGET_VM;
                tg->vm = &c->f->vms[c->f->active - 1];
                return NULL;
        case TOKEN_DISPVM:
                tg->kind = TARGET_DISPVM;
                tg->tmpl = default_template(c);
                return NULL;
        case TOKEN_DISPVM_NAME:
                tg->tmpl = template_of(c->f, intern_string(&c->s->strings, t->id));
                if (!tg->tmpl)
                        return "the rule's target=@dispvm:NAME does not name a disposable template";
                tg->kind = TARGET_DISPVM_NAME;
                return NULL;
        default:
                return "invalid redirect";
        }
}

/* Where a call to tg is routed, or NULL (reason set) when it cannot be. */
static const char *target_route(const Target *tg, const char **reason) {
        switch (tg->kind) {
        case TARGET_VM:
                return tg->vm->name;
        case TARGET_HOST:
                return "@host";
        case TARGET_DISPVM:
        case TARGET_DISPVM_NAME:
                if (!tg->tmpl) {
                        *reason = "@dispvm: no default disposable template is set for the caller";
                        return NULL;
                }
                return tg->tmpl->dispvm_token;
        case TARGET_DEFAULT:
        default:
                *reason = "the caller named no target and the rule has no target=";
                return NULL;
        }
}

/* The bucket of the rules naming this service (with the '*' rules), or 0: only the '*' rules apply. */
static uint32_t service_find_bucket(const PolicySnapshot *s, const char *service, size_t len) {
        uint32_t h = intern_hash_len(service, len);
        for (uint32_t i = h & s->service_mask;; i = (i + 1) & s->service_mask) {
                const ServiceSlot *slot = &s->service_slots[i];
                if (slot->bucket == 0)
                        return 0;
                if (slot->hash != h)
                        continue;
                const Bucket *bk = &s->buckets[slot->bucket];
                if (bk->name_len == len &&
                    intern_bytes_equal(len < BUCKET_NAME_INLINE ? bk->name_inline : bk->name, service, len))
                        return slot->bucket;
        }
}

static bool is_host_token(const char *s) {
        return s[0] == '@' && (strcmp(s, "@host") == 0 || strcmp(s, "@adminvm") == 0);
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

/*
 * Long: one pass in the order the man page gives (validate the request,
 * find the rule, follow a redirect, build the decision); every early return
 * is a decision with its reason, and splitting the pass would scatter them.
 */
int policy_evaluate(const PolicySnapshot *s, const PolicyFacts *f, const PolicyRequest *req, PolicyDecision *ret) {
        if (!ret)
                return -EINVAL;
        if (!s || !f || !req || !req->service || !req->source)
                return deny(ret, "malformed request: missing snapshot, facts, service or source", -EINVAL);

        const char *untrusted_service = req->service, *untrusted_arg = req->arg ? req->arg : "";
        const char *untrusted_source = req->source;
        const char *untrusted_target = req->target && req->target[0] ? req->target : "@default";
        const FactsVm *source_vm = NULL;
        bool source_is_host = false;

        /* A name the facts know is valid by construction; only unknown ones need the syntax check. */
        if (untrusted_source[0] != '@') {
                source_vm = facts_find_vm(f, untrusted_source);
                if (!source_vm && !policy_vm_name_is_valid(untrusted_source, strlen(untrusted_source)))
                        return deny(ret, "malformed request: invalid source", -EINVAL);
        } else if (is_host_token(untrusted_source))
                source_is_host = true;
        else
                return deny(ret, "malformed request: invalid source", -EINVAL);

        Target tg = { .kind = TARGET_VM };
        const char *tmpl_name = NULL;
        if (untrusted_target[0] != '@') {
                tg.vm = facts_find_vm(f, untrusted_target);
                if (!tg.vm && !policy_vm_name_is_valid(untrusted_target, strlen(untrusted_target)))
                        return deny(ret, "malformed request: invalid target", -EINVAL);
        } else if (strcmp(untrusted_target, "@default") == 0)
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
        } else
                return deny(ret, "malformed request: invalid target", -EINVAL);

        size_t service_len = strlen(untrusted_service);
        if (service_len > POLICY_SERVICE_MAX)
                return deny(ret, "malformed request: invalid service name", -EINVAL);
        uint32_t b = service_find_bucket(s, untrusted_service, service_len);
        if (b == 0 && policy_service_invalid_at(untrusted_service, service_len) >= 0)
                return deny(ret, "malformed request: invalid service name", -EINVAL);
        uint32_t arg;
        if (untrusted_arg[0] == '\0')
                arg = s->empty_arg ? s->empty_arg : ARG_NOT_IN_POLICY;
        else {
                size_t arg_len = strlen(untrusted_arg);
                if (policy_arg_invalid_at(untrusted_arg, arg_len) >= 0)
                        return deny(ret, "malformed request: invalid argument", -EINVAL);
                arg = intern_lookup_len(&s->strings, untrusted_arg, arg_len);
                if (arg == 0)
                        arg = ARG_NOT_IN_POLICY;
        }

        /* The request is well formed; from here on every answer is a decision. */
        if (s->broken)
                return deny(ret, "the policy has errors; every request is denied until they are fixed", 0);
        if (!source_is_host && !source_vm)
                return deny(ret, "unknown source VM", 0);

        Context c;
        c.s = s;
        c.f = f;
        c.source = source_vm;
        c.arg = arg;
        c.bucket = b;

        switch (tg.kind) {
        case TARGET_VM:
                if (!tg.vm)
                        return deny(ret, "unknown target VM", 0);
                break;
        case TARGET_DISPVM_NAME:
                tg.tmpl = template_of(f, tmpl_name);
                if (!tg.tmpl)
                        return deny(ret, "the target @dispvm:NAME does not name a disposable template", 0);
                break;
        case TARGET_DISPVM:
                tg.tmpl = default_template(&c);
                break;
        default:
                break;
        }

        const PolicyRule *rule = find_first(&c, &tg);
        if (!rule)
                return deny(ret, "no rule matches (default deny)", 0);
        if (rule->action == POLICY_ACTION_DENY)
                return deny_by(ret, rule, "denied by policy");

        /* allow / ask: where would the call go? */
        Target redirect;
        const Target *eff = &tg;
        if (rule->redirect.kind != TOKEN_NONE) {
                const char *why = target_from_token(&c, &rule->redirect, &redirect);
                if (why)
                        return deny_by(ret, rule, why);
                eff = &redirect;
                /* qubes-issues#8227: a redirect may not land where the policy denies this call. */
                const PolicyRule *check = find_first(&c, eff);
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
                d.target = target_route(eff, &reason);
                if (!d.target)
                        return deny_by(ret, rule, reason);
        } else {
                if (eff->kind != TARGET_DEFAULT) {
                        d.target = target_route(eff, &reason);
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
