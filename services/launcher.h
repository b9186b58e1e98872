/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Launcher: how the agent runs things for the broker — always an argv,
 * never a shell.  Apps are APPID.desktop files (Exec= split into words
 * like a desktop launcher does, field codes dropped, the caller's
 * arguments appended); URLs and files go to a handler command.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "services/service-args.h"

#define launcher_url_is_valid service_args_url_is_valid
#define launcher_app_id_is_valid service_args_app_id_is_valid
#define launcher_args_are_valid service_args_args_are_valid
#define launcher_file_name_is_valid service_args_file_name_is_valid

/* -ENOENT (with *why) when there is no APPS_DIR/APP_ID.desktop or it has no Exec=. */
int launcher_app_argv(const char *apps_dir, const char *app_id, const char *const *args, char ***ret, char **why);

/*
 * Run argv (+ last_arg when not NULL) detached, stdin from /dev/null.  With
 * ret_pid the child is not reaped (use g_child_watch_add).
 */
int launcher_spawn(char **argv, const char *last_arg, GPid *ret_pid, char **why);
