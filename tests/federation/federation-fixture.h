/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fixture of the federation tests on libvirt's in-memory
 * test:///default driver (test-federation*.c): a temporary configuration and
 * state directory, a domain prefix of this run, the connection, the
 * federation and the log of its state changes with the invariant checks
 * (fed-test-util.h).  Teardown removes every domain of this run.
 */
#pragma once

#include <libvirt/libvirt.h>

#include "fed-test-util.h"

typedef struct Fixture {
        char *tmp;
        char *config;
        char *state;
        char *kernel;
        char *prefix;
        virConnectPtr conn;
        Federation *f;
        StateLog log;
} Fixture;

/* main()'s first call: g_test_init(), libvirt and its GLib event loop. */
void fixture_init(int *argc, char ***argv);
void fixture_setup(Fixture *x, gconstpointer data);
void fixture_teardown(Fixture *x, gconstpointer data);
/* Writes vms.d/NAME.vm: Role=ROLE, 256M, the fake kernel, StopTimeout=2, then EXTRA. */
void fixture_write(Fixture *x, const char *name, const char *role, const char *extra);
/* A federation on the fixture's directories (bridge vmfedtest0, TCG, fake passthrough), logged. */
Federation *fixture_federation(Fixture *x);
/*
 * The same with federation_new_async(): asserts it is not loaded at once,
 * calls before (may be NULL) while the adoption's scan is under way, runs the
 * loop until it is loaded.
 */
typedef void (*FixtureBeforeLoad)(Fixture *x, void *userdata);
Federation *fixture_federation_async(Fixture *x, FixtureBeforeLoad before, void *userdata);
/* A netvm, two personas sharing a (fake) GPU, a third persona without devices. */
void fixture_standard(Fixture *x);
/* Start (switch to) NAME and run the loop until it is done: its result. */
int start_and_wait(Fixture *x, const char *name, Result *res);
int switch_and_wait(Fixture *x, const char *name, Result *res);
/* The domain of VM (prefixed), or NULL. */
virDomainPtr lookup(Fixture *x, const char *vm);
