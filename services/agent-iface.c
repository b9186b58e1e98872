/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.vmfed.Agent1 on /org/vmfed/Agent1, served only on the broker
 * connection: the broker's calls into this VM after the policy allowed
 * them.  Even so every argument is checked again here (a broker bug must
 * not become a shell injection), and nothing goes through a shell: apps,
 * URL and file handlers are exec'd with an argv.
 */
#include "services/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "services/launcher.h"
#include "services/netconfig.h"
#include "services/stream.h"

#define ERROR_INVALID_ARGS "org.vmfed.Federation1.Error.InvalidArgs"
#define ERROR_NOT_FOUND "org.vmfed.Federation1.Error.NotFound"
#define ERROR_FAILED "org.vmfed.Federation1.Error.Failed"
#define ERROR_TOO_LARGE "org.vmfed.Federation1.Error.TooLarge"

static int method_ping(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(m, NULL);
}

/* With wait=true (a disposable's job) the reply comes when the program exits. */
static void spawned_exited(GPid pid, gint status, gpointer userdata) {
        sd_bus_message *m = userdata;
        g_spawn_close_pid(pid);
        (void) sd_bus_reply_method_return(m, NULL);
        sd_bus_message_unref(m);
}

static int spawn_and_reply(sd_bus_message *m, char **argv, const char *last_arg, bool wait, sd_bus_error *error) {
        GPid pid;
        int r = launcher_spawn(argv, last_arg, wait ? &pid : NULL, NULL);
        if (r < 0)
                return sd_bus_error_setf(error, ERROR_FAILED, "Cannot run %s: %s", argv[0], strerror(-r));
        if (!wait)
                return sd_bus_reply_method_return(m, NULL);
        g_child_watch_add(pid, spawned_exited, sd_bus_message_ref(m));
        return 1;
}

static int method_open_url(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        const char *untrusted_url;
        g_autofree char *why = NULL;
        int wait = 0;
        int r;

        r = sd_bus_message_read(m, "sb", &untrusted_url, &wait);
        if (r < 0)
                return r;
        if (!launcher_url_is_valid(untrusted_url, (const char *const *) a->url_schemes, &why))
                return sd_bus_error_setf(error, ERROR_INVALID_ARGS, "%s", why);
        const char *url = untrusted_url;

        log_info("Opening a URL from the broker with %s.", a->url_handler[0]);
        return spawn_and_reply(m, a->url_handler, url, wait, error);
}

static int method_launch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        const char *untrusted_app_id;
        g_auto(GStrv) untrusted_args = NULL;
        g_auto(GStrv) argv = NULL;
        g_autofree char *why = NULL;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_app_id);
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(m, &untrusted_args);
        if (r < 0)
                return r;
        int wait = 0;
        r = sd_bus_message_read(m, "b", &wait);
        if (r < 0)
                return r;
        if (!launcher_app_id_is_valid(untrusted_app_id) ||
            !launcher_args_are_valid((const char *const *) untrusted_args, &why))
                return sd_bus_error_setf(error, ERROR_INVALID_ARGS, "%s",
                                         why ? why : "Invalid application id.");
        r = launcher_app_argv(a->apps_dir, untrusted_app_id, (const char *const *) untrusted_args, &argv, &why);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, ERROR_NOT_FOUND, "%s", why);
        if (r < 0)
                return sd_bus_error_setf(error, ERROR_FAILED, "%s", why ? why : strerror(-r));
        log_info("Launching %s for the broker.", untrusted_app_id);
        return spawn_and_reply(m, argv, NULL, wait, error);
}

/* ---- OpenFile: put the file in a private directory, run the handler, send it back ---- */

typedef struct OpenFileJob {
        sd_bus_message *call;
        char *dir;
        char *path;
        char *original;
        size_t original_size;
} OpenFileJob;

static void open_file_job_free(OpenFileJob *j) {
        if (!j)
                return;
        if (j->path)
                (void) unlink(j->path);
        if (j->dir)
                (void) rmdir(j->dir);
        sd_bus_message_unref(j->call);
        g_free(j->dir);
        g_free(j->path);
        g_free(j->original);
        g_free(j);
}

static void open_file_done(GPid pid, gint status, gpointer userdata) {
        OpenFileJob *j = userdata;
        _cleanup_free_ char *now = NULL;
        size_t size = 0;
        int r;

        g_spawn_close_pid(pid);
        r = read_full_file(j->path, AGENT_PAYLOAD_MAX, &now, &size);
        if (r < 0) {
                (void) sd_bus_reply_method_errorf(j->call, ERROR_FAILED,
                                                  "The file could not be read back after the viewer exited: %s",
                                                  strerror(-r));
                open_file_job_free(j);
                return;
        }
        bool changed = size != j->original_size || memcmp(now, j->original, size) != 0;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        r = sd_bus_message_new_method_return(j->call, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "b", changed);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', changed ? now : "", changed ? size : 0);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                log_warning_errno(r, "Cannot answer OpenFile: %m");
        log_info("File handler exited (status %d); file %s.", status, changed ? "changed" : "unchanged");
        open_file_job_free(j);
}

static int method_open_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        const char *untrusted_name;
        const void *data;
        size_t size;
        GPid pid;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_name);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(m, 'y', &data, &size);
        if (r < 0)
                return r;
        if (!launcher_file_name_is_valid(untrusted_name))
                return sd_bus_error_set(error, ERROR_INVALID_ARGS,
                                        "Invalid file name: a plain name without '/', not starting with '.' or '-'.");
        if (size > AGENT_PAYLOAD_MAX)
                return sd_bus_error_set(error, ERROR_TOO_LARGE, "File too large.");
        const char *name = untrusted_name;

        OpenFileJob *j = g_new0(OpenFileJob, 1);
        r = mkdir_parents(a->files_dir, 0700);
        if (r >= 0) {
                j->dir = g_build_filename(a->files_dir, "fileXXXXXX", NULL);
                if (!g_mkdtemp(j->dir)) {
                        r = negative_errno();
                        g_clear_pointer(&j->dir, g_free);
                }
        }
        if (r >= 0) {
                j->path = g_build_filename(j->dir, name, NULL);
                r = write_file_atomic(j->path, data, size, 0600);
        }
        if (r < 0) {
                open_file_job_free(j);
                return sd_bus_error_setf(error, ERROR_FAILED, "Cannot store the file: %s", strerror(-r));
        }
        j->original = g_memdup2(data, size);
        j->original_size = size;
        j->call = sd_bus_message_ref(m);

        r = launcher_spawn(a->file_handler, j->path, &pid, NULL);
        if (r < 0) {
                open_file_job_free(j);
                return sd_bus_error_setf(error, ERROR_FAILED, "Cannot run %s: %s", a->file_handler[0],
                                         strerror(-r));
        }
        g_child_watch_add(pid, open_file_done, j);
        return 1;
}

static int method_set_network(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        const char *untrusted_ifname, *untrusted_address, *untrusted_gateway;
        g_auto(GStrv) untrusted_dns = NULL;
        NetConfig nc = {};
        g_autofree char *why = NULL;
        int r;

        r = sd_bus_message_read(m, "sss", &untrusted_ifname, &untrusted_address, &untrusted_gateway);
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(m, &untrusted_dns);
        if (r < 0)
                return r;
        r = net_config_parse(*untrusted_ifname ? untrusted_ifname : a->net_interface, untrusted_address,
                             untrusted_gateway, (const char *const *) untrusted_dns, &nc, &why);
        if (r < 0)
                return sd_bus_error_setf(error, ERROR_INVALID_ARGS, "%s", why);
        r = net_config_apply(&nc, a->resolv_conf, &why);
        if (r == -ENODEV)
                return sd_bus_error_setf(error, ERROR_NOT_FOUND, "%s", why);
        if (r < 0)
                return sd_bus_error_setf(error, ERROR_FAILED, "%s", why ? why : strerror(-r));
        log_info("Network configured by the broker: %s on %s.", untrusted_address, nc.ifname);
        return sd_bus_reply_method_return(m, NULL);
}

/* ---- streams (docs/streams.md): services/stream.h ---- */

static int method_start_service(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        return stream_table_start_service(a->streams, m, error);
}

static int method_stream_ended(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        return stream_table_stream_ended(a->streams, m, error);
}

static int method_stop_stream(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        return stream_table_stop_stream(a->streams, m, error);
}

static const sd_bus_vtable agent1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Ping", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_ping, 0),
        SD_BUS_METHOD_WITH_ARGS("OpenURL", SD_BUS_ARGS("s", url, "b", wait), SD_BUS_NO_RESULT, method_open_url, 0),
        SD_BUS_METHOD_WITH_ARGS("Launch", SD_BUS_ARGS("s", app_id, "as", args, "b", wait), SD_BUS_NO_RESULT,
                                method_launch, 0),
        SD_BUS_METHOD_WITH_ARGS("OpenFile", SD_BUS_ARGS("s", name, "ay", data), SD_BUS_RESULT("b", changed, "ay", data),
                                method_open_file, 0),
        SD_BUS_METHOD_WITH_ARGS("SetNetwork",
                                SD_BUS_ARGS("s", interface, "s", address, "s", gateway, "as", dns),
                                SD_BUS_NO_RESULT, method_set_network, 0),
        SD_BUS_METHOD_WITH_ARGS("StartService",
                                SD_BUS_ARGS("t", stream, "s", service, "s", argument, "s", source, "u", port, "u", tag),
                                SD_BUS_NO_RESULT, method_start_service, 0),
        SD_BUS_METHOD_WITH_ARGS("StreamEnded", SD_BUS_ARGS("t", stream, "i", status, "s", message), SD_BUS_NO_RESULT,
                                method_stream_ended, 0),
        SD_BUS_METHOD_WITH_ARGS("StopStream", SD_BUS_ARGS("t", stream, "s", why), SD_BUS_NO_RESULT, method_stop_stream,
                                0),
        SD_BUS_VTABLE_END,
};

int agent_iface_register(Agent *a, sd_bus *broker) {
        return sd_bus_add_object_vtable(broker, NULL, AGENT1_PATH, AGENT1_INTERFACE, agent1_vtable, a);
}
