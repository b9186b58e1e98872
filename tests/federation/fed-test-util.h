/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the federation tests: temporary config/state dirs,
 * waiting on the main loop, recording callbacks, and the invariant checks
 * run at every state change (never two VMs sharing a device running, at
 * most one persona).
 */
#pragma once

#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "federation/federation.h"
#include "federation/passthrough.h"

typedef struct Result {
        bool done;
        int r;
        char *message;
        GPtrArray *progress;
} Result;

static inline void result_reset(Result *res) {
        res->done = false;
        res->r = 0;
        g_clear_pointer(&res->message, g_free);
        if (res->progress)
                g_ptr_array_set_size(res->progress, 0);
        else
                res->progress = g_ptr_array_new_with_free_func(g_free);
}

static inline void result_progress(const char *line, void *userdata) {
        Result *res = userdata;
        g_ptr_array_add(res->progress, g_strdup(line));
        if (g_getenv("VMFED_TEST_VERBOSE"))
                fprintf(stderr, "  progress: %s\n", line);
}

static inline void result_done(int r, const char *message, void *userdata) {
        Result *res = userdata;
        g_assert_false(res->done); /* exactly once */
        res->done = true;
        res->r = r;
        res->message = g_strdup(message);
        if (g_getenv("VMFED_TEST_VERBOSE"))
                fprintf(stderr, "  done: %d %s\n", r, message ? message : "");
}

static inline FederationCallbacks result_callbacks(Result *res) {
        result_reset(res);
        return (FederationCallbacks) { .progress = result_progress, .done = result_done, .userdata = res };
}

static inline bool result_has_progress(Result *res, const char *needle) {
        for (guint i = 0; i < res->progress->len; i++)
                if (strstr(res->progress->pdata[i], needle))
                        return true;
        return false;
}

/* Run the default main context until *flag or the timeout (seconds); returns *flag. */
static inline bool run_until(const bool *flag, double timeout) {
        gint64 end = g_get_monotonic_time() + (gint64) (timeout * G_USEC_PER_SEC);
        while (!*flag && g_get_monotonic_time() < end)
                if (!g_main_context_iteration(NULL, false))
                        g_usleep(1000);
        return *flag;
}

static inline void run_for(double seconds) {
        bool never = false;
        (void) run_until(&never, seconds);
}

static inline void write_text(const char *path, const char *text) {
        g_autofree char *dir = g_path_get_dirname(path);
        g_assert_cmpint(mkdir_parents(dir, 0755), ==, 0);
        g_assert_cmpint(write_file_atomic(path, text, strlen(text), 0644), ==, 0);
}

static inline void write_vm(const char *config_dir, const char *name, const char *text) {
        g_autofree char *p = g_strdup_printf("%s/vms.d/%s.vm", config_dir, name);
        write_text(p, text);
}

/* ---- state tracking with invariant checks -------------------------------- */

typedef struct StateLog {
        Federation *f;
        GPtrArray *events;         /* "vm state reason" */
        GHashTable *states;        /* vm → state name (last reported) */
        gint64 last_stopped_usec;  /* when a "stopped" was last reported */
        unsigned violations;
} StateLog;

static inline bool state_is_up(FederationVmState s) {
        return s == FEDERATION_VM_STARTING || s == FEDERATION_VM_RUNNING || s == FEDERATION_VM_PAUSED ||
               s == FEDERATION_VM_STOPPING;
}

/* At every event: no two up VMs share a device, at most one persona is up. */
static inline void state_log_check(StateLog *l) {
        g_auto(GStrv) names = federation_list_vms(l->f);
        unsigned personas = 0;

        for (size_t i = 0; names[i]; i++) {
                const VmSpec *a = federation_vm_spec(l->f, names[i]);
                if (!a || !state_is_up(federation_vm_state(l->f, names[i])))
                        continue;
                if (a->role == VM_ROLE_PERSONA)
                        personas++;
                for (size_t j = i + 1; names[j]; j++) {
                        const VmSpec *b = federation_vm_spec(l->f, names[j]);
                        if (b && state_is_up(federation_vm_state(l->f, names[j])) &&
                            passthrough_shared_device(a->devices, b->devices)) {
                                fprintf(stderr, "VIOLATION: %s and %s both up with a shared device\n", names[i],
                                        names[j]);
                                l->violations++;
                        }
                }
        }
        if (personas > 1) {
                fprintf(stderr, "VIOLATION: %u personas up\n", personas);
                l->violations++;
        }
}

static inline void state_log_cb(const char *vm, FederationVmState state, const char *reason, void *userdata) {
        StateLog *l = userdata;
        const char *s = federation_vm_state_to_string(state);
        g_ptr_array_add(l->events, g_strdup_printf("%s %s %s", vm, s, reason ? reason : "-"));
        g_hash_table_replace(l->states, g_strdup(vm), g_strdup(s));
        if (state == FEDERATION_VM_STOPPED || state == FEDERATION_VM_SAVED)
                l->last_stopped_usec = g_get_monotonic_time();
        if (g_getenv("VMFED_TEST_VERBOSE"))
                fprintf(stderr, "  state: %s %s (%s)\n", vm, s, reason ? reason : "-");
        state_log_check(l);
}

static inline void state_log_attach(StateLog *l, Federation *f) {
        if (!l->events) {
                l->events = g_ptr_array_new_with_free_func(g_free);
                l->states = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        }
        l->f = f;
        federation_set_state_callback(f, state_log_cb, l);
}

static inline void state_log_clear(StateLog *l) {
        g_clear_pointer(&l->events, g_ptr_array_unref);
        g_clear_pointer(&l->states, g_hash_table_unref);
}

/* Index of the first event starting with prefix, or -1. */
static inline int state_log_find(StateLog *l, const char *prefix) {
        for (guint i = 0; i < l->events->len; i++)
                if (g_str_has_prefix(l->events->pdata[i], prefix))
                        return (int) i;
        return -1;
}

/* Leave the shared test:///default driver clean: destroy and undefine every domain named PREFIX*. */
static inline void test_remove_domains(virConnectPtr conn, const char *prefix) {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(conn, &doms, 0);
        for (int i = 0; i < n; i++) {
                if (g_str_has_prefix(virDomainGetName(doms[i]), prefix)) {
                        if (virDomainIsActive(doms[i]) == 1)
                                (void) virDomainDestroy(doms[i]);
                        (void) virDomainUndefineFlags(doms[i], VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
                }
                virDomainFree(doms[i]);
        }
        free(doms);
}

/* rm -rf DIR (a test's temporary tree). */
static inline void test_remove_tree(const char *dir) {
        g_autofree char *cmd = g_strdup_printf("/bin/rm -rf '%s'", dir);
        g_assert_cmpint(system(cmd), ==, 0);
}

/* VM file NAME with TEXT (paths as in "/x/vms.d"), parsed strictly: it must parse. */
static inline VmSpec *test_vm_spec(const char *name, const char *text) {
        g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
        VmSpec *s = NULL;
        int r = vm_spec_parse(name, "/x", text, errors, &s);
        for (guint i = 0; i < errors->len; i++)
                g_printerr("%s\n", (char *) errors->pdata[i]);
        g_assert_cmpint(r, ==, 0);
        return s;
}
