/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The command-line end of a stream (vmfed-guest run, vmfedctl run): copy
 * stdin to a stream socket (shutdown(SHUT_WR) at its end) and the socket to
 * stdout, until the socket's end of file.  Never blocks writing to the
 * socket while output waits to be read (a service that answers as it reads
 * cannot deadlock it); a service that stops reading ends the input (EPIPE)
 * while its output still comes.
 */
#pragma once

/* 0 when the stream's output ended (or it broke: WaitStream says which), -errno when stdout failed. */
int stdio_stream_copy(int fd);
