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
