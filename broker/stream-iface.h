/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Manager.RunService(s vm, s service, s argument) -> (h fd, t stream) and
 * Manager.WaitStream(t stream) -> (i status, s message): a stream from the
 * host (`vmfedctl run`), see broker/stream-iface.c and docs/streams.md.
 */
#pragma once

#include "broker/broker.h"

int stream_iface_register(Broker *b);
