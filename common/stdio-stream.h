/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The command-line end of a stream (vmfed-guest run, vmfedctl run): copy
 * stdin to a stream socket (shutdown(SHUT_WR) at its end) and the socket to
 * stdout, until both have ended: the output at the socket's end of file,
 * the input at stdin's end of file or when the service no longer takes it
 * (EPIPE, or the socket hung up after the output ended: the service exited).
 * A service that closes its output and goes on reading gets all of stdin.
 * Never blocks writing to the socket while output waits to be read (a
 * service that answers as it reads cannot deadlock it).
 */
#pragma once

/* 0 when the stream ended both ways (or it broke: WaitStream says which), -errno when stdout failed. */
int stdio_stream_copy(int fd);
