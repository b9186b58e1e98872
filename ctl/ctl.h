/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl: one command, many verbs.  Each verb lives in the ctl-*.c file of
 * its area and is listed in the table in vmfedctl.c.  A verb gets argv
 * starting at its own name (argv[0] = "eval" for "vmfedctl policy eval") and
 * returns the process exit status.
 */
#pragma once

/* Exit statuses shared by all verbs. */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILURE = 1, /* the operation failed or was refused */
        CTL_EXIT_USAGE = 3,   /* bad command line or broken configuration */
};

typedef int (*CtlVerbFunc)(int argc, char **argv);

typedef struct CtlVerb {
        const char *group;   /* "policy", or NULL for a top-level verb */
        const char *name;    /* "eval" */
        CtlVerbFunc func;
        const char *summary; /* one line for --help */
} CtlVerb;

/* ctl-policy-offline.c: evaluate and lint policy files without a broker. */
int ctl_policy_eval(int argc, char **argv);
int ctl_policy_lint(int argc, char **argv);

/* ctl-bus.c, ctl-bus-policy.c: verbs that talk to a running vmfedd over D-Bus. */
#include <stdbool.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

#define CTL_BUS_NAME "org.vmfed.Federation1"
#define CTL_ROOT_PATH "/org/vmfed/Federation1"
#define CTL_MANAGER_IFACE "org.vmfed.Federation1.Manager"
#define CTL_POLICY_IFACE "org.vmfed.Federation1.Policy"

typedef struct CtlBusOptions {
        const char *address; /* --address, NULL: the system bus */
        bool json;           /* --json */
        const char *etag;    /* --etag, NULL when not given */
        char **args;         /* positional arguments */
        int n_args;
} CtlBusOptions;

/* 1 to go on, 0 after --help, -EINVAL on bad usage (message printed). */
int ctl_bus_parse_common(int argc, char **argv, const char *usage, CtlBusOptions *o);
int ctl_bus_open(const char *address, sd_bus **ret);
/* Print "vmfedctl: WHAT: message (error name)"; returns CTL_EXIT_FAILURE. */
int ctl_bus_error(const char *what, const sd_bus_error *error, int r);
void ctl_json_string(FILE *f, const char *s);
void ctl_table_print(FILE *f, size_t n_columns, const char *const *header, const char *const *cells,
                     size_t n_rows);

int ctl_status(int argc, char **argv);
int ctl_vms(int argc, char **argv);
int ctl_policy_files(int argc, char **argv);
int ctl_policy_get(int argc, char **argv);
int ctl_policy_replace(int argc, char **argv);
int ctl_policy_remove(int argc, char **argv);
int ctl_policy_evaluate(int argc, char **argv);

/* ctl-bus-lifecycle.c: run the federation through vmfedd (progress lines from Manager.Progress). */
int ctl_start(int argc, char **argv);
int ctl_stop(int argc, char **argv);
int ctl_switch(int argc, char **argv);
int ctl_vm_add(int argc, char **argv);
int ctl_vm_remove(int argc, char **argv);
int ctl_generations(int argc, char **argv);
int ctl_rollback(int argc, char **argv);

/* ctl-bus-ask.c: questions the policy left to a person (org.vmfed.Federation1.Ask). */
int ctl_ask(int argc, char **argv);
