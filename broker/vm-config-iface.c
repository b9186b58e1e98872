/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/vm-config-iface.h"

#include <errno.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/errors.h"
#include "broker/lifecycle.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/vmspec.h"

#define ERRORS_IN_REPLY 5

typedef struct VmEdit {
        char *name;
        char *text; /* NULL: remove */
} VmEdit;

static void vm_edit_free(void *p) {
        VmEdit *e = p;
        if (!e)
                return;
        g_free(e->name);
        g_free(e->text);
        g_free(e);
}

static int errors_reply(sd_bus_error *error, const char *name, int r, const char *what, GPtrArray *errors) {
        g_autoptr(GString) msg = g_string_new(NULL);

        g_string_append_printf(msg, "Refusing to %s: ", what);
        if (errors && errors->len > 0) {
                for (guint i = 0; i < errors->len && i < ERRORS_IN_REPLY; i++)
                        g_string_append_printf(msg, "%s%s", i > 0 ? "; " : "", (char *) errors->pdata[i]);
                if (errors->len > ERRORS_IN_REPLY)
                        g_string_append_printf(msg, "; and %u more", errors->len - ERRORS_IN_REPLY);
        } else
                g_string_append(msg, strerror(-r));
        (void) sd_bus_error_set(error, name, msg->str);
        return r;
}

/* The federation would load with the edit applied: 0, else InvalidArgs listing FILE:LINE: key K: what. */
static int validate_edit(Broker *b, const VmEdit *e, sd_bus_error *error) {
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        g_autofree char *what = g_strdup_printf("%s vms.d/%s.vm", e->text ? "write" : "remove", e->name);
        VmSpecOverride o = { .name = e->name, .text = e->text };
        int r;

        r = vm_spec_load_dir(broker_config_dir(b), &o, &specs, &errors);
        if (r < 0)
                return errors_reply(error, r == -EINVAL ? VMFED_ERROR_INVALID_ARGS : VMFED_ERROR_FAILED, r, what,
                                    errors);
        return 0;
}

static void edit_authorized(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who,
                            void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        VmEdit *e = userdata;
        const char *reason;
        Federation *f = lifecycle_federation(broker_lifecycle(b), &reason);
        g_autoptr(GPtrArray) errors = NULL;
        g_autofree char *what = g_strdup_printf("%s vms.d/%s.vm", e->text ? "write" : "remove", e->name);
        int r;

        if (!auth_audit_decision(b, m, allowed, how, who, &(AuthAction) {
                        .service = e->text ? "vmfed.Admin.AddVM" : "vmfed.Admin.RemoveVM",
                        .arg = e->name,
                        .activity = "Changing VM definitions",
                }))
                return;
        if (!f) {
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_FAILED, "Cannot %s: %s.", what, reason);
                return;
        }

        /* The library validates again (other edits may have landed), writes atomically, records a generation. */
        r = e->text ? federation_add_vm(f, e->name, e->text, &errors) : federation_remove_vm(f, e->name, &errors);
        if (r < 0) {
                const char *name = r == -EINVAL   ? VMFED_ERROR_INVALID_ARGS
                                   : r == -EBUSY  ? VMFED_ERROR_BUSY
                                   : r == -ENOENT ? VMFED_ERROR_NOT_FOUND
                                                  : VMFED_ERROR_FAILED;
                (void) errors_reply(&error, name, r, what, errors);
                (void) sd_bus_reply_method_error(m, &error);
                return;
        }
        log_info("vms.d/%s.vm %s by %s.", e->name, e->text ? "written" : "removed", who);

        /* VM objects appear/disappear (ObjectManager), facts and channels follow: from the model it wrote. */
        g_clear_pointer(&errors, g_ptr_array_unref);
        if (broker_reload_edited(b, federation_model(f), &errors) < 0)
                log_warning("Reload after changing vms.d/%s.vm had errors.", e->name);
        (void) sd_bus_reply_method_return(m, NULL);
}

static int validate_name(Broker *b, const char *untrusted_name, sd_bus_error *error) {
        if (!vm_spec_name_is_valid(untrusted_name))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "vms.d/%s.vm: '%s' is not a VM name: use [A-Za-z][A-Za-z0-9_.-]*, "
                                         "at most %d bytes.",
                                         ERRORS_EXCERPT(untrusted_name, 64), ERRORS_EXCERPT(untrusted_name, 64),
                                         POLICY_NAME_MAX);
        return 0;
}

static int method_add_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *untrusted_name, *untrusted_config;
        g_autofree char *path = NULL, *current = NULL;
        Broker *b = userdata;
        VmEdit *e;
        int r;

        /* parse */
        r = sd_bus_message_read(m, "ss", &untrusted_name, &untrusted_config);
        if (r < 0)
                return r;

        /* validate */
        r = validate_name(b, untrusted_name, error);
        if (r < 0)
                return r;
        if (strlen(untrusted_config) > VM_CONFIG_MAX)
                return sd_bus_error_setf(error, VMFED_ERROR_TOO_LARGE,
                                         "A VM definition may be at most %d bytes; this one is %zu.", VM_CONFIG_MAX,
                                         strlen(untrusted_config));
        VmEdit check = { .name = (char *) untrusted_name, .text = (char *) untrusted_config };
        r = validate_edit(b, &check, error);
        if (r < 0)
                return r;

        /* no-op: the file already says exactly this */
        path = g_strdup_printf("%s/vms.d/%s.vm", broker_config_dir(b), untrusted_name);
        if (read_full_file(path, VM_CONFIG_MAX, &current, NULL) >= 0 && strcmp(current, untrusted_config) == 0)
                return sd_bus_reply_method_return(m, NULL);

        e = g_new0(VmEdit, 1);
        e->name = g_strdup(untrusted_name);
        e->text = g_strdup(untrusted_config);
        auth_check_manage(b, m, edit_authorized, e, vm_edit_free);
        return 1;
}

static int method_remove_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *untrusted_name;
        Broker *b = userdata;
        Federation *f;
        FederationVmState s;
        VmEdit *e;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_name);
        if (r < 0)
                return r;
        if (strlen(untrusted_name) > POLICY_NAME_MAX || !broker_find_vm(b, untrusted_name))
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "No VM named '%s' is defined in %s/vms.d (ListVMs shows the VMs that "
                                         "are).",
                                         ERRORS_EXCERPT(untrusted_name, 64), broker_config_dir(b));
        f = lifecycle_federation(broker_lifecycle(b), NULL);
        s = f ? federation_vm_state(f, untrusted_name) : FEDERATION_VM_STOPPED;
        if (s == FEDERATION_VM_STARTING || s == FEDERATION_VM_RUNNING || s == FEDERATION_VM_PAUSED ||
            s == FEDERATION_VM_STOPPING)
                return sd_bus_error_setf(error, VMFED_ERROR_BUSY, "%s is %s; stop it before removing it.",
                                         untrusted_name, federation_vm_state_to_string(s));
        VmEdit check = { .name = (char *) untrusted_name, .text = NULL };
        r = validate_edit(b, &check, error);
        if (r < 0)
                return r;

        e = g_new0(VmEdit, 1);
        e->name = g_strdup(untrusted_name);
        auth_check_manage(b, m, edit_authorized, e, vm_edit_free);
        return 1;
}

static const sd_bus_vtable vm_config_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("AddVM", SD_BUS_ARGS("s", name, "s", config), SD_BUS_NO_RESULT, method_add_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveVM", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_remove_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int vm_config_iface_register(Broker *b) {
        return sd_bus_add_object_vtable(broker_bus(b), NULL, BROKER_ROOT_PATH, MANAGER_INTERFACE, vm_config_vtable, b);
}
