/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The vmfed policy engine: the Qubes-R4.1-compatible policy language of
 * vmfed.policy(5), compiled into an immutable snapshot and evaluated by a pure
 * function of (snapshot, facts, request).
 *
 * Ownership and lifetime:
 *   - PolicySnapshot and PolicyFacts are immutable after construction and
 *     reference counted; a broker swaps in a new snapshot on reload while
 *     requests in flight keep the old one.
 *   - Strings in a PolicyDecision point into the snapshot, the facts or the
 *     request; they stay valid while those do.
 *
 * Fail closed: policy_snapshot_load() always produces a snapshot unless
 * memory runs out.  If any file has any error the snapshot is "broken":
 * it carries every diagnostic and policy_evaluate() denies every request.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef enum PolicyAction {
        POLICY_ACTION_DENY = 0,
        POLICY_ACTION_ALLOW = 1,
        POLICY_ACTION_ASK = 2,
} PolicyAction;

const char *policy_action_to_string(PolicyAction a);

/* ---- diagnostics -------------------------------------------------------- */

typedef struct PolicyDiagnostic {
        char *file;      /* path relative to the policy directory, e.g. "30-user.policy" */
        unsigned line;   /* 1-based; 0 when the error concerns the whole file */
        unsigned column; /* 1-based; 0 when not applicable */
        char *message;   /* what was wrong and what was expected */
} PolicyDiagnostic;

/*
 * "FILE:LINE:COLUMN: MESSAGE" (newly allocated, free with free()); "FILE:LINE:
 * MESSAGE" when column is 0 and "FILE: MESSAGE" when line is 0.  FILE is "."
 * for problems with the policy directory itself.
 */
char *policy_diagnostic_format(const PolicyDiagnostic *d);

/* ---- facts about the federation --------------------------------------- */

/*
 * What the evaluator knows about VMs: name, role, tags, which persona is
 * active and which disposable template each VM uses.  Built by the caller
 * (from vms.d/ and the broker's runtime state) then frozen.
 */
typedef struct PolicyFacts PolicyFacts;

PolicyFacts *policy_facts_new(void);
PolicyFacts *policy_facts_ref(PolicyFacts *f);
PolicyFacts *policy_facts_unref(PolicyFacts *f);

/*
 * role: "persona" | "service" | "disposable-template" | "app" | "disposable"
 * tags: NULL-terminated, may be NULL.  default_dispvm: template used for
 * "@dispvm" requests from this VM, or NULL for the federation default; for
 * a running disposable (role "disposable") it is the template the
 * disposable was made from, which rule sources @dispvm:NAME and
 * @dispvm:@tag:T match against.  References to other VMs are resolved at
 * evaluation time, so VMs may be added in any order.
 * -EEXIST when the name is already known, -EINVAL for a bad name, role or tag,
 * -E2BIG for more than 32 tags.
 */
int policy_facts_add_vm(PolicyFacts *f, const char *name, const char *role,
                        const char *const *tags, const char *default_dispvm);
/* NULL: none.  -ENOENT for an unknown VM, -EINVAL when it is not a persona. */
int policy_facts_set_active(PolicyFacts *f, const char *persona);
int policy_facts_set_default_dispvm(PolicyFacts *f, const char *template_name);
/* After this the facts may be shared; add/set return -EPERM. */
void policy_facts_freeze(PolicyFacts *f);

/* ---- snapshots --------------------------------------------------------- */

typedef struct PolicySnapshot PolicySnapshot;

/*
 * A file replaced in memory before loading: used to validate an edit
 * against the whole policy before it is written.  content == NULL means
 * the file is treated as removed.  name is a plain file name in the
 * top-level policy directory.
 */
typedef struct PolicyOverride {
        const char *name;
        const char *content;
} PolicyOverride;

/*
 * Read policy_dir (files in C-locale order, Qubes' file-name rules,
 * !include / !include-dir), apply the overrides, compile.  Returns 0 and a
 * snapshot (possibly broken, see policy_snapshot_is_valid()), or -ENOMEM.
 */
int policy_snapshot_load(const char *policy_dir, const PolicyOverride *overrides,
                         size_t n_overrides, PolicySnapshot **ret);

/* The same, from one in-memory text (name is used in diagnostics). */
int policy_snapshot_load_string(const char *name, const char *text, PolicySnapshot **ret);

PolicySnapshot *policy_snapshot_ref(PolicySnapshot *s);
PolicySnapshot *policy_snapshot_unref(PolicySnapshot *s);

bool policy_snapshot_is_valid(const PolicySnapshot *s);
size_t policy_snapshot_n_diagnostics(const PolicySnapshot *s);
const PolicyDiagnostic *policy_snapshot_diagnostic(const PolicySnapshot *s, size_t i);
size_t policy_snapshot_n_rules(const PolicySnapshot *s);
/* Number of files read (top-level and included). */
size_t policy_snapshot_n_files(const PolicySnapshot *s);

/*
 * Cross-check a snapshot's rules against facts, for lint: a rule naming a
 * VM the facts do not know (a typo never matches anything), @dispvm:NAME
 * where NAME is not a disposable template, @tag:T that no VM has.  These
 * are warnings, not errors: the policy stays valid.  func is called once
 * per finding, in rule order; the diagnostic lives for the call only.
 * Returns the number of findings.
 */
typedef void (*PolicyWarningFunc)(const PolicyDiagnostic *d, void *userdata);
size_t policy_snapshot_check_facts(const PolicySnapshot *s, const PolicyFacts *f, PolicyWarningFunc func,
                                   void *userdata);

/* ---- evaluation -------------------------------------------------------- */

typedef struct PolicyRequest {
        const char *service; /* "vmfed.OpenURL", "vmfed.Clipboard.Paste", ... */
        const char *arg;     /* argument without the '+', or NULL/"" for none */
        const char *source;  /* a VM name, or "@host" for the admin side */
        const char *target;  /* a VM name or "@default", "@dispvm", "@dispvm:NAME", "@host" */
} PolicyRequest;

typedef struct PolicyDecision {
        PolicyAction action;
        /*
         * allow: where to route the call, after any target= redirect, with
         * "@dispvm" resolved to "@dispvm:TEMPLATE"; NULL otherwise.
         * ask: the target the caller named (or the redirect), resolved the
         * same way; NULL when the caller named none (@default).
         */
        const char *target;
        const char *default_target; /* ask: the suggested target, or NULL (also when the policy would deny it) */
        bool autostart;             /* false when the rule says autostart=no */
        bool notify;                /* false when the rule says notify=no */
        const char *rule_file;      /* rule that decided, NULL for the default deny */
        unsigned rule_line;
        const char *reason;         /* static English text for a deny, NULL otherwise */
} PolicyDecision;

/*
 * Pure: the result depends only on the arguments.  Returns 0 with *ret
 * filled (deny included), or -EINVAL when the request itself is malformed
 * (then *ret is a deny with a reason).  Never allocates.
 */
int policy_evaluate(const PolicySnapshot *s, const PolicyFacts *f,
                    const PolicyRequest *req, PolicyDecision *ret);
