/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Placeholder: the federation wiring lands in the next commits. */
#include <errno.h>

#include "broker/broker.h"

int broker_vm_ensure_running(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        if (ret_error)
                *ret_error = g_strdup("the federation is not wired into the broker yet");
        return -ENXIO;
}

int broker_dispvm_start(Broker *b, const char *target, const char *caller, BrokerVmReadyFn cb, void *userdata,
                        char **ret_error) {
        if (ret_error)
                *ret_error = g_strdup("the federation is not wired into the broker yet");
        return -ENXIO;
}

int broker_dispvm_release(Broker *b, const char *name) {
        return -ENOENT;
}

bool broker_dispvm_is_running(Broker *b, const char *name) {
        return false;
}
