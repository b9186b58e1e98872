/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The VM model: one load of vms.d/ (vmfed.vm(5)), an immutable,
 * reference-counted set of VmSpecs (federation/vmspec.h), like policy's
 * PolicySnapshot.  It is the only model of vms.d/: vmfedd loads it once per
 * reload, strictly (flags 0: the boot files must exist), builds its VM
 * objects, ListVMs/GetVM and the policy facts from it and hands the same
 * model to the federation (FederationOptions.model, federation_set_model()),
 * so every VM object is one the federation can start.  It needs no
 * hypervisor connection: the broker loads it while libvirt is away too.
 *
 * Only `vmfedctl policy` (offline linting of a configuration that may come
 * from another machine) loads with VM_SPEC_NO_FILE_CHECKS.
 *
 * Nothing changes a model once loaded; whoever holds a reference may keep
 * pointers to its specs (const VmSpec *) for as long as it holds it.
 */
#pragma once

#include <glib.h>

#include "federation/vmspec.h"
#include "policy/policy.h"

typedef struct VmModel VmModel;

/*
 * Load and validate CONFIG/vms.d/\*.vm (vm_spec_load_dir_full(): every
 * check of vmfed.vm(5), across files too; override and flags as there).
 * Returns 0 with *ret; -EINVAL with *ret_errors ("vms.d/NAME.vm:LINE: key
 * K: what", every error of every file); another negative errno when vms.d/
 * itself cannot be read (*ret_errors may then hold a message).  A missing
 * vms.d/ is an empty model.
 */
int vm_model_load(const char *config_dir, const VmSpecOverride *override, VmSpecLoadFlags flags, VmModel **ret,
                  GPtrArray **ret_errors);

/* A model of specs someone loaded and validated (vm_spec_load_dir()): takes the array (VmSpec*, sorted, owning). */
VmModel *vm_model_new(GPtrArray *specs);

VmModel *vm_model_ref(VmModel *m);
VmModel *vm_model_unref(VmModel *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmModel, vm_model_unref)

/* NULL-safe: a NULL model has no VMs. */
guint vm_model_n_vms(const VmModel *m);
/* Sorted by name. */
const VmSpec *vm_model_vm(const VmModel *m, guint i);
const VmSpec *vm_model_find(const VmModel *m, const char *name);
/* The specs as an array (VmSpec*, sorted, borrowed, never to be changed), for vm_spec_find() and loops. */
GPtrArray *vm_model_specs(const VmModel *m);

/*
 * Build frozen policy facts from the model.  active_persona (may be NULL)
 * must name a persona (-ENOENT / -EINVAL).  default_dispvm NULL means: the
 * one VM with Role=disposable-template when there is exactly one, else
 * none.
 */
int vm_model_build_policy_facts(const VmModel *m, const char *active_persona, const char *default_dispvm,
                                PolicyFacts **ret);
/*
 * The same, with the running disposables: dispvms (may be NULL) maps each
 * one's name to the template it was made from (role "disposable", no
 * tags): rule sources @dispvm and @dispvm:TEMPLATE match them.
 */
int vm_model_build_policy_facts_with(const VmModel *m, const char *active_persona, const char *default_dispvm,
                                     GHashTable *dispvms, PolicyFacts **ret);
