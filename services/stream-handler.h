/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * StreamHandler: the program that serves a stream in the target VM
 * (vmfed.services(5)): found as SERVICES_DIR/SERVICE+ARGUMENT, else
 * SERVICES_DIR/SERVICE; run with a clean environment, its stdin and stdout
 * on two pipes (each direction ends on its own), stderr the agent's, no
 * other fd, in a session and process group of its own (so that a stream
 * abort kills whatever it started), as the service user, and killed
 * (PR_SET_PDEATHSIG) if the agent dies.
 *
 * The lookup, the environment and the exit status are pure functions of
 * their inputs (tests/services/test-stream-handler.c).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <glib.h>

#define STREAM_SERVICES_DIR_DEFAULT "/etc/vmfed/services"
#define STREAM_HANDLER_PATH "/usr/local/bin:/usr/bin:/bin"

/*
 * The handler of service (+arg, "" or NULL: none) in dir: 0 and *ret_path;
 * -ENOENT when neither file exists, -EACCES when the first that exists is
 * not an executable regular file (it is not run, and SERVICE is not tried
 * instead: `chmod -x SERVICE+ARG` turns that one argument off).  *ret_why
 * says which (g_free).  service and arg must be valid policy names (no '/').
 */
int stream_handler_find(const char *dir, const char *service, const char *arg, char **ret_path, char **ret_why);

/* Who handlers run as. */
typedef struct StreamUser {
        char *name;
        char *home;
        uid_t uid;
        gid_t gid;
        gid_t *groups; /* supplementary groups, looked up before the fork */
        int n_groups;
        bool change;   /* the agent is root and switches to uid/gid/groups in the child */
} StreamUser;

/*
 * name: the --service-user, NULL for the agent's own user.  When the agent
 * is not root, handlers run as the agent's user whatever name says.
 */
int stream_user_resolve(const char *name, StreamUser *ret, char **ret_why);
void stream_user_done(StreamUser *u);

/* The handler's whole environment (g_strfreev): VMFED_*, PATH, HOME, USER, LOGNAME. */
char **stream_handler_env(const StreamUser *u, const char *source, const char *service, const char *arg,
                          uint64_t stream);

/*
 * A waitpid() status as StreamExited reports it: the exit code (0-255),
 * 128+N with "killed by signal N", -1 otherwise.  *ret_message: NULL for an
 * exit code, else a sentence (g_free).
 */
int stream_handler_status(int wait_status, char **ret_message);

/*
 * The pipes of a handler: ours[0] its stdin (we write), ours[1] its stdout
 * (we read), both non-blocking; child[0] and child[1] the ends it gets.
 * All close-on-exec.  0 or -errno.
 */
int stream_handler_pipes(int ours[2], int child[2]);

/*
 * Start path with envp as u, its stdin and stdout on child_fds (still the
 * caller's to close), its stderr the agent's.  -errno and *ret_why (g_free)
 * when it cannot run.
 */
int stream_handler_spawn_on(const char *path, char **envp, const StreamUser *u, const int child_fds[2],
                            GPid *ret_pid, char **ret_why);
