/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/generations-iface.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/errors.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/generation.h"

int generations_record(Broker *b, const char *description) {
        uint64_t n = 0;
        int r;

        Federation *f = broker_federation(b);

        /* Through the federation when there is one: it keeps its generation number current. */
        r = f ? federation_record_generation(f, description, &n)
              : generation_record(broker_config_dir(b), broker_state_dir(b), description, &n);
        if (r < 0)
                return log_warning_errno(r, "Cannot record a configuration generation (%s): %m", description);
        if (r == GENERATION_RECORDED)
                log_info("Configuration generation %" PRIu64 " recorded: %s.", n, description);
        return r;
}

/* NotFound for generation n: pruned by KeepGenerations=, or never recorded. */
static int not_found_error(Broker *b, uint32_t n, sd_bus_error *error) {
        if (generation_status(broker_state_dir(b), n) == GENERATION_PRUNED)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "Generation %" PRIu32 " was pruned: only the latest %u are kept "
                                         "(KeepGenerations= in %s/vmfed.conf; ListGenerations shows those there are).",
                                         n, generation_keep(broker_config_dir(b)), broker_config_dir(b));
        return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                 "There is no generation %" PRIu32 " (ListGenerations shows those there are).", n);
}

static int method_list_generations(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autoptr(GPtrArray) list = NULL;
        Broker *b = userdata;
        uint64_t latest;
        int r;

        r = generation_list(broker_state_dir(b), &list);
        if (r < 0)
                return errors_set_errno(error, -EIO, "Cannot read the generations in %s/generations: %s",
                                        broker_state_dir(b), strerror(-r));
        latest = generation_latest(broker_state_dir(b));

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(utsb)");
        if (r < 0)
                return r;
        for (guint i = 0; i < list->len; i++) {
                Generation *g = list->pdata[i];
                r = sd_bus_message_append(reply, "(utsb)", (uint32_t) g->number,
                                          (uint64_t) MAX(g->time_usec, 0), g->description ?: "",
                                          g->number == latest);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static void rollback_done(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who,
                          void *userdata) {
        uint32_t n = GPOINTER_TO_UINT(userdata);
        g_autoptr(GPtrArray) errors = NULL;
        g_autofree char *arg = g_strdup_printf("%" PRIu32, n);
        Federation *f = broker_federation(b);
        uint64_t new_n = 0;
        int r;

        if (!auth_audit_decision(b, m, allowed, how, who, &(AuthAction) {
                        .service = "vmfed.Admin.Rollback",
                        .arg = arg,
                        .activity = "Rolling back the configuration",
                }))
                return;

        /* The library refuses during a switch; without a federation only the files are restored. */
        r = f ? federation_rollback(f, n, &new_n, &errors)
              : generation_rollback(broker_config_dir(b), broker_state_dir(b), n, &new_n);
        g_clear_pointer(&errors, g_ptr_array_unref);
        if (r == -EBUSY) {
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_BUSY,
                                                  "A persona switch is under way; roll back when it is done.");
                return;
        }
        if (r == -ENOENT) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                (void) not_found_error(b, n, &error);
                (void) sd_bus_reply_method_error(m, &error);
                return;
        }
        if (r < 0 && new_n == 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                (void) errors_set_errno(&error, -EIO, "Cannot roll back to generation %" PRIu32 ": %s", n,
                                        strerror(-r));
                (void) sd_bus_reply_method_error(m, &error);
                return;
        }

        /* vms.d/ and policy.d/ are generation n again: load both (VM objects come and go, policy swaps). */
        r = broker_reload(b, &errors);
        if (r < 0) {
                g_autofree char *joined = errors_join(errors);
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_FAILED,
                                                  "Rolled back to generation %" PRIu32 " (now generation %" PRIu64
                                                  "), but it loads with errors: %s",
                                                  n, new_n, joined ? joined : strerror(-r));
                return;
        }
        log_info("Configuration rolled back to generation %" PRIu32 " by %s (now generation %" PRIu64 ").", n, who,
                 new_n);
        (void) sd_bus_reply_method_return(m, "u", (uint32_t) new_n);
}

static int method_rollback(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        g_autoptr(GPtrArray) list = NULL;
        Broker *b = userdata;
        uint32_t untrusted_n;
        bool found = false;
        int r;

        /* parse */
        r = sd_bus_message_read(m, "u", &untrusted_n);
        if (r < 0)
                return r;

        /* validate */
        r = generation_list(broker_state_dir(b), &list);
        if (r < 0)
                return errors_set_errno(error, -EIO, "Cannot read the generations in %s/generations: %s",
                                        broker_state_dir(b), strerror(-r));
        for (guint i = 0; i < list->len; i++)
                if (((Generation *) list->pdata[i])->number == untrusted_n)
                        found = true;
        if (!found)
                return not_found_error(b, untrusted_n, error);
        uint32_t n = untrusted_n;

        /* no-op: the latest generation is what is loaded */
        if (n == generation_latest(broker_state_dir(b)))
                return sd_bus_reply_method_return(m, "u", n);

        /* authorize → act → emit → reply, in rollback_done() */
        auth_check_manage(b, m, rollback_done, GUINT_TO_POINTER(n), NULL);
        return 1;
}

static const sd_bus_vtable generations_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("ListGenerations", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(utsb)", generations),
                                method_list_generations, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Rollback", SD_BUS_ARGS("u", generation), SD_BUS_RESULT("u", new_generation),
                                method_rollback, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int generations_iface_register(Broker *b) {
        return sd_bus_add_object_vtable(broker_bus(b), NULL, BROKER_ROOT_PATH, MANAGER_INTERFACE, generations_vtable,
                                        b);
}
