/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/netvm-query.h"

#include "federation/federation-internal.h"

const char *federation_vm_template(Federation *f, const char *name) {
        Vm *vm = f ? federation_find_vm(f, name) : NULL;
        return vm && vm->disposable ? vm->template_name : NULL;
}
