/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/vm-object.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"

char *vm_object_path(const char *name) {
        char *path = NULL;
        if (sd_bus_path_encode(BROKER_VM_PATH_PREFIX, name, &path) < 0)
                return NULL;
        return path;
}

static int property_get_name(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const VmObject *o = userdata;
        return sd_bus_message_append(reply, "s", o->spec->name);
}

static int property_get_role(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const VmObject *o = userdata;
        const char *role = vm_role_to_string(o->spec->role);
        return sd_bus_message_append(reply, "s", role ? role : "");
}

static int property_get_tags(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const VmObject *o = userdata;
        return sd_bus_message_append_strv(reply, o->spec->tags);
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const VmObject *o = userdata;
        return sd_bus_message_append(reply, "s", o->state);
}

static const sd_bus_vtable vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Role", "s", property_get_role, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Tags", "as", property_get_tags, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                          void **found, sd_bus_error *error) {
        Broker *b = userdata;
        _cleanup_free_ char *untrusted_name = NULL;
        const VmObject *o;

        if (sd_bus_path_decode(path, BROKER_VM_PATH_PREFIX, &untrusted_name) <= 0)
                return 0;
        o = broker_find_vm(b, untrusted_name);
        if (!o)
                return 0;
        *found = (void *) o; /* the property getters only read it */
        return 1;
}

static int vm_object_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                               sd_bus_error *error) {
        Broker *b = userdata;
        guint n = vm_model_n_vms(broker_model(b));
        char **l = calloc(n + 1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (guint i = 0; i < n; i++) {
                const VmSpec *c = vm_model_vm(broker_model(b), i);
                l[i] = vm_object_path(c->name);
                if (!l[i]) {
                        for (guint j = 0; j < i; j++)
                                free(l[j]);
                        free(l);
                        return -ENOMEM;
                }
        }
        *nodes = l;
        return 1;
}

/* A VM's State changed: PropertiesChanged on its object. */
static void vm_object_on_broker_event(Broker *b, const BrokerEvent *e, void *userdata) {
        if (e->kind == BROKER_EVENT_VM_STATE)
                vm_object_emit_changed(b, e->vm, "State", NULL);
}

int vm_object_register(Broker *b) {
        int r;

        r = sd_bus_add_fallback_vtable(broker_bus(b), NULL, BROKER_VM_PATH_PREFIX, VM_INTERFACE, vm_vtable,
                                       vm_object_find, b);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(broker_bus(b), NULL, BROKER_VM_PATH_PREFIX, vm_object_enumerate, b);
        if (r < 0)
                return r;
        (void) broker_watch_add(b, vm_object_on_broker_event, NULL, NULL);
        return 0;
}

void vm_object_emit_added(Broker *b, const char *name) {
        _cleanup_free_ char *path = vm_object_path(name);
        if (broker_bus(b) && path)
                (void) sd_bus_emit_object_added(broker_bus(b), path);
}

void vm_object_emit_removed(Broker *b, const char *name) {
        _cleanup_free_ char *path = vm_object_path(name);
        if (broker_bus(b) && path)
                (void) sd_bus_emit_object_removed(broker_bus(b), path);
}

void vm_object_emit_changed(Broker *b, const char *name, const char *property, ...) {
        _cleanup_free_ char *path = vm_object_path(name);
        const char *names[8];
        size_t n = 0;
        va_list ap;

        if (!broker_bus(b) || !path)
                return;
        va_start(ap, property);
        for (const char *p = property; p && n < ELEMENTSOF(names) - 1; p = va_arg(ap, const char *))
                names[n++] = p;
        va_end(ap);
        names[n] = NULL;
        (void) sd_bus_emit_properties_changed_strv(broker_bus(b), path, VM_INTERFACE, (char **) names);
}
