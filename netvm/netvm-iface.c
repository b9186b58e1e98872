/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/netvm-iface.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "common/log.h"
#include "common/macro.h"

#define ERROR_INVALID_ARGS "org.vmfed.Federation1.Error.InvalidArgs"
#define ERROR_NOT_FOUND    "org.vmfed.Federation1.Error.NotFound"
#define ERROR_CONFLICT     "org.vmfed.Federation1.Error.Conflict"
#define ERROR_FAILED       "org.vmfed.Federation1.Error.Failed"

/* Same bound as a state file; sd-bus itself refuses messages over 128 MiB. */
#define STATE_TEXT_MAX (16u * 1024 * 1024)

/*
 * Apply, then turn broken firewalls into an error reply (the state is in
 * force, those clients fail closed).  `client` limits the report to the
 * client the call was about: NULL reports every client, "" none.
 */
static int apply_and_reply(sd_bus_message *m, const NetvmIfaceOps *d, NetState *s, const char *client, sd_bus_error *error) {
        g_autofree char *fw_errors = NULL;
        g_autofree char *err = NULL;

        if (!client)
                fw_errors = netstate_firewall_errors(s);
        else if (*client) {
                NetClient *c = netstate_find_client(s, client);
                if (c && firewall_is_broken(c->firewall))
                        fw_errors = g_strdup(c->firewall->errors->str);
        }

        const NetState *cur = d->get_state(d->userdata);
        if (cur && netstate_equal(cur, s)) {
                netstate_free(s);
                /* Nothing to do, but a broken firewall is still worth saying. */
        } else {
                int r = d->apply(d->userdata, s, &err);
                if (r < 0)
                        return sd_bus_error_setf(error, ERROR_FAILED, "%s", err ? err : "apply failed");
                netvm_iface_emit_changed(sd_bus_message_get_bus(m));
        }
        if (fw_errors)
                return sd_bus_error_setf(error, ERROR_INVALID_ARGS,
                                         "applied, but these firewalls are broken and their clients' traffic is dropped:\n%s",
                                         fw_errors);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_set_state(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const NetvmIfaceOps *d = userdata;
        const char *untrusted_state;
        g_autofree char *errors = NULL;
        NetState *s = NULL;

        int r = sd_bus_message_read(m, "s", &untrusted_state);
        if (r < 0)
                return r;
        if (strlen(untrusted_state) > STATE_TEXT_MAX)
                return sd_bus_error_set(error, ERROR_INVALID_ARGS, "state too large");
        r = netstate_parse("state", untrusted_state, NULL, &s, &errors);
        if (r < 0)
                return sd_bus_error_setf(error, ERROR_INVALID_ARGS, "%s", errors);
        return apply_and_reply(m, d, s, NULL, error);
}

static int method_get_state(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const NetvmIfaceOps *d = userdata;
        const NetState *s = d->get_state(d->userdata);
        g_autofree char *text = s ? netstate_format(s) : g_strdup("");
        return sd_bus_reply_method_return(m, "s", text);
}

static int method_add_client(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const NetvmIfaceOps *d = userdata;
        const char *untrusted_name, *untrusted_mac, *untrusted_rules;
        g_auto(GStrv) untrusted_addrs = NULL;
        g_autofree char *err = NULL;
        NetClient *c = NULL;

        int r = sd_bus_message_read(m, "ss", &untrusted_name, &untrusted_mac);
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(m, &untrusted_addrs);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "s", &untrusted_rules);
        if (r < 0)
                return r;
        if (strlen(untrusted_rules) > STATE_TEXT_MAX)
                return sd_bus_error_set(error, ERROR_INVALID_ARGS, "rules too large");

        r = netclient_new(untrusted_name, untrusted_mac, (const char *const *) untrusted_addrs,
                          *untrusted_rules ? untrusted_rules : NULL, &c, &err);
        if (r < 0)
                return sd_bus_error_setf(error, ERROR_INVALID_ARGS, "%s", err);
        g_autoptr(NetClient) client = c;

        const NetState *cur = d->get_state(d->userdata);
        if (!cur)
                return sd_bus_error_set(error, ERROR_FAILED, "no state yet: call SetState first");
        g_autoptr(NetState) next = netstate_copy(cur);
        r = netstate_put_client(next, client, &err);
        if (r == -EEXIST)
                return sd_bus_error_setf(error, ERROR_CONFLICT, "%s", err);
        if (r < 0)
                return sd_bus_error_setf(error, ERROR_INVALID_ARGS, "%s", err);
        client = NULL; /* owned by next now */
        return apply_and_reply(m, d, steal_pointer(&next), untrusted_name, error);
}

static int method_remove_client(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const NetvmIfaceOps *d = userdata;
        const char *untrusted_name;

        int r = sd_bus_message_read(m, "s", &untrusted_name);
        if (r < 0)
                return r;
        if (!netstate_name_is_valid(untrusted_name))
                return sd_bus_error_set(error, ERROR_INVALID_ARGS, "invalid client name");
        const NetState *cur = d->get_state(d->userdata);
        if (!cur || !netstate_find_client(cur, untrusted_name))
                return sd_bus_error_setf(error, ERROR_NOT_FOUND, "no client %s", untrusted_name);
        g_autoptr(NetState) next = netstate_copy(cur);
        (void) netstate_remove_client(next, untrusted_name);
        return apply_and_reply(m, d, steal_pointer(&next), "", error);
}

static int property_clients(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const NetvmIfaceOps *d = userdata;
        const NetState *s = d->get_state(d->userdata);
        int r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (guint i = 0; s && i < s->clients->len; i++) {
                r = sd_bus_message_append(reply, "s", ((NetClient *) s->clients->pdata[i])->name);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static const sd_bus_vtable netvm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("SetState",
                                SD_BUS_ARGS("s", state),
                                SD_BUS_NO_RESULT,
                                method_set_state, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetState",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("s", state),
                                method_get_state, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddClient",
                                SD_BUS_ARGS("s", name, "s", mac, "as", addresses, "s", rules),
                                SD_BUS_NO_RESULT,
                                method_add_client, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveClient",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_NO_RESULT,
                                method_remove_client, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("Clients", "as", property_clients, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

int netvm_iface_add(sd_bus *bus, const NetvmIfaceOps *ops, sd_bus_slot **ret_slot) {
        return sd_bus_add_object_vtable(bus, ret_slot, NETVM_PATH, NETVM_IFACE, netvm_vtable, (void *) ops);
}

void netvm_iface_emit_changed(sd_bus *bus) {
        int r = sd_bus_emit_properties_changed(bus, NETVM_PATH, NETVM_IFACE, "Clients", NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot emit PropertiesChanged: %m");
}
