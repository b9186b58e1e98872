/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl: one command, many verbs.  Each verb lives in the ctl-*.c file of
 * its area and is listed in the table in vmfedctl.c.  A verb gets argv
 * starting at its own name (argv[0] = "eval" for "vmfedctl policy eval") and
 * returns the process exit status.
 */
#pragma once

#include <stdbool.h>

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
        bool offline;        /* reads local files only: --host does not apply */
} CtlVerb;

/* ctl-policy-offline.c: evaluate and lint policy files without a broker. */
int ctl_policy_eval(int argc, char **argv);
int ctl_policy_lint(int argc, char **argv);

/* ctl-vm-xml.c: the domain XML of a VM, from the configuration directory (offline). */
int ctl_vm_xml(int argc, char **argv);

/* ctl-bus.c, ctl-bus-policy.c: verbs that talk to a running vmfedd over D-Bus. */
#include <stdbool.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

#define CTL_BUS_NAME "org.vmfed.Federation1"
#define CTL_ROOT_PATH "/org/vmfed/Federation1"
#define CTL_MANAGER_IFACE "org.vmfed.Federation1.Manager"
#define CTL_POLICY_IFACE "org.vmfed.Federation1.Policy"

/* Not an exit status: returned by the helpers below when the verb goes on. */
#define CTL_CONTINUE (-1)

/* The options a verb takes besides --address, --json and --help. */
enum {
        CTL_OPT_ETAG = 1 << 0,      /* --etag ETAG */
        CTL_OPT_LIFECYCLE = 1 << 1, /* --help says progress lines go to stderr; --force is known... */
        CTL_OPT_FORCE = 1 << 2,     /* ...and allowed (only with CTL_OPT_LIFECYCLE) */
};

/* n_args for a verb that takes no arguments and says so by name ("vmfedctl vms: no arguments expected"). */
#define CTL_ARGS_NONE (-2)
/* n_args for any number of arguments. */
#define CTL_ARGS_ANY (-1)

typedef struct CtlBusOptions {
        const char *address; /* --address, NULL: the system bus */
        bool json;           /* --json */
        const char *etag;    /* --etag, NULL when not given */
        bool force;          /* --force */
        char **args;         /* positional arguments */
        int n_args;
} CtlBusOptions;

/*
 * Parse the options in flags and expect n_args positional arguments (or
 * CTL_ARGS_*).  CTL_CONTINUE to go on, else the exit status (after --help, or
 * on bad usage with the message printed).
 */
int ctl_bus_parse_common(int argc, char **argv, const char *usage, unsigned flags, int n_args, CtlBusOptions *o);
/*
 * Connect to the bus vmfedd is on: ADDRESS, else the system bus of the host
 * ctl_bus_set_host() named (over ssh to systemd-stdio-bridge), else the
 * local system bus.
 */
int ctl_bus_open(const char *address, sd_bus **ret);
/* vmfedctl --host [USER@]HOST[:PORT]: every bus verb then talks to that host's system bus. */
void ctl_bus_set_host(const char *host);
/* ctl_bus_parse_common(), then ctl_bus_open(): CTL_CONTINUE, or the exit status. */
int ctl_bus_start(int argc, char **argv, const char *usage, unsigned flags, int n_args, CtlBusOptions *o,
                  sd_bus **ret_bus);
/* Print "vmfedctl: WHAT: message (error name)"; returns CTL_EXIT_FAILURE. */
int ctl_bus_error(const char *what, const sd_bus_error *error, int r);
/* Call IFACE.METHOD on vmfedd's root object; on failure print ctl_bus_error(WHAT) and return the error. */
int ctl_bus_call(sd_bus *bus, const char *iface, const char *method, const char *what, sd_bus_message **reply,
                 const char *types, ...);
/* Print an array of records of strings (fields "ss" for a(ss)) as a table, or as JSON objects named by keys. */
int ctl_print_records(sd_bus_message *reply, const char *fields, const char *const *header,
                      const char *const *keys, bool json);
void ctl_json_string(FILE *f, const char *s);
/* Print {"KEY":"VALUE",...} from KEY, VALUE, ..., NULL (no newline). */
void ctl_json_object(FILE *f, ...) __attribute__((sentinel));
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

/* ctl-bus-run.c: a stream from the host to a service in a VM (Manager.RunService). */
int ctl_run(int argc, char **argv);

/* ctl-bus-ask.c: questions the policy left to a person (org.vmfed.Federation1.Ask). */
int ctl_ask(int argc, char **argv);
