/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VM objects: /org/vmfed/Federation1/vm/<escaped name> with interface
 * org.vmfed.Federation1.VM (Name, Role, Tags, State), served by one fallback
 * vtable and a node enumerator over the broker's model, and announced
 * through org.freedesktop.DBus.ObjectManager on /org/vmfed/Federation1.
 */
#pragma once

#include "broker/broker.h"

#define VM_INTERFACE "org.vmfed.Federation1.VM"

int vm_object_register(Broker *b);

/* Object path of a VM (newly allocated, free()). */
char *vm_object_path(const char *name);

void vm_object_emit_added(Broker *b, const char *name);
void vm_object_emit_removed(Broker *b, const char *name);
/* NULL-terminated property names. */
void vm_object_emit_changed(Broker *b, const char *name, const char *property, ...);
