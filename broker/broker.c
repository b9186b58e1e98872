/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/broker.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"

uint64_t broker_next_request_id(Broker *b) {
        return b->next_request_id++;
}

VmObject *broker_find_vm(Broker *b, const char *name) {
        return g_hash_table_lookup(b->vm_objects, name);
}

void broker_set_vm_state(Broker *b, const char *name, const char *state) {
        VmObject *o = broker_find_vm(b, name);

        if (!o || strcmp(o->state, state) == 0)
                return;
        log_info("VM %s: %s -> %s.", name, o->state, state);
        g_free(o->state);
        o->state = g_strdup(state);
        b->hooks.vm_state_changed(b, name);
}

void broker_set_active_persona(Broker *b, const char *name) {
        if (g_strcmp0(b->active_persona, name) == 0)
                return;
        log_info("Active persona: %s -> %s.", b->active_persona ?: "(none)", name ?: "(none)");
        g_free(b->active_persona);
        b->active_persona = g_strdup(name);
        (void) broker_rebuild_facts(b);
        b->hooks.persona_changed(b);
}

void broker_set_policy(Broker *b, PolicySnapshot *s) {
        policy_snapshot_unref(b->policy);
        b->policy = policy_snapshot_ref(s);
        b->policy_revision++;
        if (!policy_snapshot_is_valid(s))
                log_error("Policy in %s is broken: every request is denied until it is fixed.", b->policy_dir);
        b->hooks.policy_changed(b);
}

int broker_rebuild_facts(Broker *b) {
        PolicyFacts *f = NULL;
        int r = vm_model_build_policy_facts(b->model, b->active_persona, NULL, &f);
        if (r < 0)
                return log_error_errno(r, "Cannot build policy facts from the VM definitions: %m");
        policy_facts_unref(b->facts);
        b->facts = f;
        return 0;
}

/* model NULL: load vms.d/ (the reload's one load); else take this one, loaded by the federation's edit. */

int broker_reload(Broker *b, GPtrArray **ret_errors) {
        return b->hooks.reload(b, NULL, ret_errors);
}

int broker_reload_edited(Broker *b, VmModel *model, GPtrArray **ret_errors) {
        g_return_val_if_fail(model, -EINVAL);
        return b->hooks.reload(b, model, ret_errors);
}

int broker_vm_ensure_running(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        return b->hooks.vm_ensure_running(b, name, cb, userdata, ret_error);
}

int broker_dispvm_start(Broker *b, const char *target, const char *caller, BrokerVmReadyFn cb, void *userdata,
                        char **ret_error) {
        return b->hooks.dispvm_start(b, target, caller, cb, userdata, ret_error);
}

int broker_dispvm_release(Broker *b, const char *name) {
        return b->hooks.dispvm_release(b, name);
}

bool broker_dispvm_is_running(Broker *b, const char *name) {
        return b->hooks.dispvm_is_running(b, name);
}
