/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl policy eval / lint: the policy engine on files, without a
 * broker.  The same code the broker runs: vm_model_load() and
 * vm_model_build_policy_facts() for the facts, policy_snapshot_load() for
 * the rules, policy_evaluate().  The one difference: vms.d/ is loaded with
 * VM_SPEC_NO_FILE_CHECKS, because the configuration linted here may come
 * from another machine, whose Disk=/Kernel=/Initrd= files are not on this
 * one (vmfedd always loads strictly).  Every other check applies.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "common/macro.h"
#include "ctl/ctl.h"
#include "federation/vm-model.h"
#include "policy/policy.h"

enum {
        EXIT_DECISION_ALLOW = 0,
        EXIT_DECISION_DENY = 1,
        EXIT_DECISION_ASK = 2,
};

typedef struct Options {
        const char *policy_dir;
        const char *config_dir;
        const char *active;
        const char *default_dispvm;
        bool json;
} Options;

static void eval_help(FILE *f) {
        fprintf(f,
                "Usage: vmfedctl policy eval [OPTIONS] SOURCE TARGET SERVICE[+ARG]\n"
                "\n"
                "Decide one request against the policy files, as the broker would.\n"
                "SOURCE is a VM name or @host (the admin side); TARGET a VM name or\n"
                "@default, @dispvm, @dispvm:NAME, @host.\n"
                "\n"
                "  --policy-dir DIR       policy files [CONFIG-DIR/policy.d]\n"
                "  --config-dir DIR       federation configuration with vms.d/ [%s]\n"
                "  --active PERSONA       the running persona (for @active)\n"
                "  --default-dispvm NAME  federation default disposable template [the only\n"
                "                         Role=disposable-template VM, if there is one]\n"
                "  --json                 print one JSON object\n"
                "  -h, --help             this help\n"
                "\n"
                "Exit status: 0 allow, 1 deny, 2 ask, 3 usage or configuration error.\n",
                VMFED_CONFIG_DIR);
}

static void lint_help(FILE *f) {
        fprintf(f,
                "Usage: vmfedctl policy lint [OPTIONS]\n"
                "\n"
                "Report every error in the policy files and the VM definitions, and\n"
                "warn about rules naming VMs, templates or tags that do not exist.\n"
                "\n"
                "  --policy-dir DIR   policy files [CONFIG-DIR/policy.d]\n"
                "  --config-dir DIR   federation configuration with vms.d/ [%s]\n"
                "  -h, --help         this help\n"
                "\n"
                "Exit status: 0 when everything is valid (warnings or not), 1 when\n"
                "there are errors,\n"
                "3 for a usage error.\n",
                VMFED_CONFIG_DIR);
}

/* Returns -1 to continue, else an exit status. */
static int parse_options(int argc, char **argv, Options *o, bool eval) {
        enum { ARG_POLICY_DIR = 0x100, ARG_CONFIG_DIR, ARG_ACTIVE, ARG_DEFAULT_DISPVM, ARG_JSON };
        static const struct option eval_options[] = {
                { "policy-dir", required_argument, NULL, ARG_POLICY_DIR },
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "active", required_argument, NULL, ARG_ACTIVE },
                { "default-dispvm", required_argument, NULL, ARG_DEFAULT_DISPVM },
                { "json", no_argument, NULL, ARG_JSON },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const struct option lint_options[] = {
                { "policy-dir", required_argument, NULL, ARG_POLICY_DIR },
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+h", eval ? eval_options : lint_options, NULL)) >= 0)
                switch (c) {
                case ARG_POLICY_DIR:
                        o->policy_dir = optarg;
                        break;
                case ARG_CONFIG_DIR:
                        o->config_dir = optarg;
                        break;
                case ARG_ACTIVE:
                        o->active = optarg;
                        break;
                case ARG_DEFAULT_DISPVM:
                        o->default_dispvm = optarg;
                        break;
                case ARG_JSON:
                        o->json = true;
                        break;
                case 'h':
                        (eval ? eval_help : lint_help)(stdout);
                        return CTL_EXIT_OK;
                default:
                        (eval ? eval_help : lint_help)(stderr);
                        return CTL_EXIT_USAGE;
                }
        if (!o->config_dir)
                o->config_dir = VMFED_CONFIG_DIR;
        return -1;
}

static void print_vm_errors(GPtrArray *errors, const char *config_dir) {
        for (guint i = 0; errors && i < errors->len; i++)
                fprintf(stderr, "%s/%s\n", config_dir, (const char *) errors->pdata[i]);
}

static void print_diagnostics(const PolicySnapshot *s, const char *policy_dir) {
        for (size_t i = 0; i < policy_snapshot_n_diagnostics(s); i++) {
                g_autofree char *line = policy_diagnostic_format(policy_snapshot_diagnostic(s, i));
                fprintf(stderr, "%s/%s\n", policy_dir, line);
        }
}

static void json_string(GString *out, const char *s) {
        if (!s) {
                g_string_append(out, "null");
                return;
        }
        g_string_append_c(out, '"');
        for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
                if (*c == '"' || *c == '\\')
                        g_string_append_printf(out, "\\%c", *c);
                else if (*c < 0x20)
                        g_string_append_printf(out, "\\u%04x", *c);
                else
                        g_string_append_c(out, (char) *c);
        }
        g_string_append_c(out, '"');
}

/* The facts of o->config_dir's vms.d/, as eval needs them; -EINVAL after saying what is wrong. */
static int eval_load_facts(const Options *o, PolicyFacts **ret) {
        VmModel *vms = NULL;
        GPtrArray *errors = NULL;
        int r = vm_model_load(o->config_dir, NULL, VM_SPEC_NO_FILE_CHECKS, &vms, &errors);
        if (r < 0) {
                if (r != -EINVAL) /* vms.d/ itself unreadable: said below, not as a file's error */
                        g_clear_pointer(&errors, g_ptr_array_unref);
                if (errors)
                        print_vm_errors(errors, o->config_dir);
                else
                        fprintf(stderr, "vmfedctl: cannot read %s/vms.d: %s\n", o->config_dir, g_strerror(-r));
                if (errors)
                        g_ptr_array_unref(errors);
                return -EINVAL;
        }
        r = vm_model_build_policy_facts(vms, o->active, o->default_dispvm, ret);
        vm_model_unref(vms);
        if (r < 0) {
                if (r == -ENOENT && o->active)
                        fprintf(stderr, "vmfedctl: --active %s: no such VM in %s/vms.d\n", o->active, o->config_dir);
                else if (r == -EINVAL && o->active)
                        fprintf(stderr, "vmfedctl: --active %s: not a VM with Role=persona (or bad --default-dispvm)\n",
                                o->active);
                else
                        fprintf(stderr, "vmfedctl: cannot build policy facts: %s\n", g_strerror(-r));
                return -EINVAL;
        }
        return 0;
}

int ctl_policy_eval(int argc, char **argv) {
        Options o = {};
        int r = parse_options(argc, argv, &o, true);
        if (r >= 0)
                return r;
        if (argc - optind != 3) {
                fprintf(stderr, "vmfedctl policy eval: expected SOURCE TARGET SERVICE[+ARG], got %d argument%s\n",
                        argc - optind, argc - optind == 1 ? "" : "s");
                eval_help(stderr);
                return CTL_EXIT_USAGE;
        }
        const char *source = argv[optind], *target = argv[optind + 1], *service_arg = argv[optind + 2];
        g_autofree char *policy_dir = o.policy_dir ? g_strdup(o.policy_dir)
                                                   : g_build_filename(o.config_dir, "policy.d", NULL);

        PolicyFacts *facts = NULL;
        r = eval_load_facts(&o, &facts);
        if (r < 0)
                return CTL_EXIT_USAGE;

        PolicySnapshot *s = NULL;
        r = policy_snapshot_load(policy_dir, NULL, 0, &s);
        if (r < 0) {
                policy_facts_unref(facts);
                fprintf(stderr, "vmfedctl: cannot load policy: %s\n", g_strerror(-r));
                return CTL_EXIT_USAGE;
        }
        if (!policy_snapshot_is_valid(s)) {
                print_diagnostics(s, policy_dir);
                fprintf(stderr, "vmfedctl: the policy has errors; the broker would deny every request\n");
                policy_snapshot_unref(s);
                policy_facts_unref(facts);
                return CTL_EXIT_USAGE;
        }

        g_autofree char *service = g_strdup(service_arg);
        char *plus = strchr(service, '+');
        const char *arg = NULL;
        if (plus) {
                *plus = '\0';
                arg = plus + 1;
        }
        PolicyRequest req = { .service = service, .arg = arg, .source = source, .target = target };
        PolicyDecision d;
        r = policy_evaluate(s, facts, &req, &d);
        int ret;
        if (r < 0) {
                fprintf(stderr, "vmfedctl: %s\n", d.reason ? d.reason : "malformed request");
                ret = CTL_EXIT_USAGE;
        } else {
                g_autofree char *rule = d.rule_file ? g_strdup_printf("%s:%u", d.rule_file, d.rule_line) : NULL;
                if (o.json) {
                        g_autoptr(GString) out = g_string_new("{\"action\": ");
                        json_string(out, policy_action_to_string(d.action));
                        g_string_append(out, ", \"target\": ");
                        json_string(out, d.target);
                        g_string_append(out, ", \"default_target\": ");
                        json_string(out, d.default_target);
                        g_string_append(out, ", \"rule\": ");
                        json_string(out, rule);
                        g_string_append_printf(out, ", \"autostart\": %s, \"notify\": %s, \"reason\": ",
                                               d.autostart ? "true" : "false", d.notify ? "true" : "false");
                        json_string(out, d.reason);
                        g_string_append(out, "}");
                        puts(out->str);
                } else {
                        g_autoptr(GString) out = g_string_new(policy_action_to_string(d.action));
                        if (d.target)
                                g_string_append_printf(out, " target=%s", d.target);
                        if (d.default_target)
                                g_string_append_printf(out, " default_target=%s", d.default_target);
                        if (d.action != POLICY_ACTION_DENY && !d.autostart)
                                g_string_append(out, " autostart=no");
                        if (!d.notify)
                                g_string_append(out, " notify=no");
                        if (d.action == POLICY_ACTION_DENY && d.reason)
                                g_string_append_printf(out, ": %s", d.reason);
                        if (rule)
                                g_string_append_printf(out, " (rule %s)", rule);
                        puts(out->str);
                }
                ret = d.action == POLICY_ACTION_ALLOW ? EXIT_DECISION_ALLOW
                      : d.action == POLICY_ACTION_ASK ? EXIT_DECISION_ASK
                                                      : EXIT_DECISION_DENY;
        }
        policy_snapshot_unref(s);
        policy_facts_unref(facts);
        return ret;
}

typedef struct LintState {
        const char *policy_dir;
        size_t n_warnings;
} LintState;

static void lint_warning(const PolicyDiagnostic *d, void *userdata) {
        LintState *st = userdata;
        fprintf(stderr, "%s/%s:%u:%u: warning: %s\n", st->policy_dir, d->file, d->line, d->column, d->message);
        st->n_warnings++;
}

int ctl_policy_lint(int argc, char **argv) {
        Options o = {};
        int r = parse_options(argc, argv, &o, false);
        if (r >= 0)
                return r;
        if (argc - optind != 0) {
                fprintf(stderr, "vmfedctl policy lint: unexpected argument '%s'\n", argv[optind]);
                lint_help(stderr);
                return CTL_EXIT_USAGE;
        }
        g_autofree char *policy_dir = o.policy_dir ? g_strdup(o.policy_dir)
                                                   : g_build_filename(o.config_dir, "policy.d", NULL);
        size_t n_errors = 0, n_vms = 0;
        LintState st = { .policy_dir = policy_dir };
        PolicyFacts *facts = NULL;

        VmModel *vms = NULL;
        GPtrArray *errors = NULL;
        r = vm_model_load(o.config_dir, NULL, VM_SPEC_NO_FILE_CHECKS, &vms, &errors);
        if (r < 0) {
                if (r != -EINVAL) /* vms.d/ itself unreadable: said below, not as a file's error */
                        g_clear_pointer(&errors, g_ptr_array_unref);
                if (errors) {
                        print_vm_errors(errors, o.config_dir);
                        n_errors += errors->len;
                        g_ptr_array_unref(errors);
                } else {
                        fprintf(stderr, "%s/vms.d: cannot read: %s\n", o.config_dir, g_strerror(-r));
                        n_errors++;
                }
        } else {
                n_vms = vm_model_n_vms(vms);
                if (vm_model_build_policy_facts(vms, NULL, NULL, &facts) < 0)
                        facts = NULL;
                vm_model_unref(vms);
        }

        PolicySnapshot *s = NULL;
        r = policy_snapshot_load(policy_dir, NULL, 0, &s);
        if (r < 0) {
                policy_facts_unref(facts);
                fprintf(stderr, "vmfedctl: cannot load policy: %s\n", g_strerror(-r));
                return CTL_EXIT_FAILURE;
        }
        print_diagnostics(s, policy_dir);
        /* Names that match nothing are likely typos: warnings, not errors. */
        if (facts && policy_snapshot_is_valid(s))
                policy_snapshot_check_facts(s, facts, lint_warning, &st);
        policy_facts_unref(facts);
        n_errors += policy_snapshot_n_diagnostics(s);
        if (!policy_snapshot_is_valid(s) && policy_snapshot_n_diagnostics(s) == 0)
                n_errors++;

        if (n_errors > 0)
                fprintf(stderr, "%zu error%s\n", n_errors, n_errors == 1 ? "" : "s");
        else if (st.n_warnings > 0)
                printf("OK: %zu rules in %zu files, %zu VMs; %zu warning%s\n", policy_snapshot_n_rules(s),
                       policy_snapshot_n_files(s), n_vms, st.n_warnings, st.n_warnings == 1 ? "" : "s");
        else
                printf("OK: %zu rules in %zu files, %zu VMs\n", policy_snapshot_n_rules(s), policy_snapshot_n_files(s),
                       n_vms);
        policy_snapshot_unref(s);
        return n_errors > 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}
