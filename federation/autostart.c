/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * federation_autostart(): the VMs with Autostart=yes, service VMs first,
 * one after the other.
 */
#include "federation/federation.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

/* ---- autostart ------------------------------------------------------------ */

typedef struct AutostartCtx {
        GPtrArray *names;
        guint next;
        FederationCallbacks cb;
        int first_r;
        GString *errors;
} AutostartCtx;

static void autostart_step(Federation *f, AutostartCtx *c);

static void autostart_record(AutostartCtx *c, int r, const char *error) {
        if (r >= 0 || r == -EALREADY)
                return;
        if (c->first_r == 0)
                c->first_r = r;
        if (c->errors->len > 0)
                g_string_append(c->errors, "; ");
        g_string_append(c->errors, error);
}

static void autostart_started(Federation *f, int r, const char *error, void *userdata) {
        AutostartCtx *c = userdata;
        autostart_record(c, r, error);
        autostart_step(f, c);
}

static void autostart_step(Federation *f, AutostartCtx *c) {
        while (c->next < c->names->len) {
                const char *name = c->names->pdata[c->next++];
                Vm *vm = federation_find_vm(f, name);
                const VmSpec *s = vm ? vm_get_spec(f, vm) : NULL;
                g_autofree char *err = NULL;
                int r;

                if (!s || vm_is_active(vm))
                        continue;
                r = federation_check_start(f, s, NULL, &err);
                if (r < 0) {
                        progress(&c->cb, "not starting %s: %s", name, err);
                        autostart_record(c, r, err);
                        continue;
                }
                progress(&c->cb, "autostarting %s", name);
                vm_start_async(f, vm, &c->cb, autostart_started, c);
                return;
        }
        federation_events_done(f, &c->cb, c->first_r, c->first_r < 0 ? c->errors->str : NULL);
        g_ptr_array_unref(c->names);
        g_string_free(c->errors, true);
        g_free(c);
}

static void autostart_begin(Federation *f, int r, const char *error, void *userdata) {
        autostart_step(f, userdata);
}

static gint autostart_order(gconstpointer a, gconstpointer b) {
        const VmSpec *x = *(VmSpec *const *) a, *y = *(VmSpec *const *) b;
        bool sx = x->role == VM_ROLE_SERVICE, sy = y->role == VM_ROLE_SERVICE;
        return sx != sy ? (sx ? -1 : 1) : strcmp(x->name, y->name);
}

int federation_autostart(Federation *f, const FederationCallbacks *cb, char **ret_error) {
        FEDERATION_BUSY(f);
        g_autoptr(GPtrArray) order = g_ptr_array_new();
        AutostartCtx *c;

        if (f->sw) {
                if (ret_error)
                        *ret_error = g_strdup("a persona switch is under way");
                return -EBUSY;
        }
        for (guint i = 0; i < f->specs->len; i++)
                if (((VmSpec *) f->specs->pdata[i])->autostart)
                        g_ptr_array_add(order, f->specs->pdata[i]);
        g_ptr_array_sort(order, autostart_order);
        c = g_new0(AutostartCtx, 1);
        c->names = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; i < order->len; i++)
                g_ptr_array_add(c->names, g_strdup(((VmSpec *) order->pdata[i])->name));
        c->cb = cb ? *cb : (FederationCallbacks) {};
        c->errors = g_string_new(NULL);
        federation_complete_later(f, autostart_begin, c, 0, NULL);
        return 0;
}
