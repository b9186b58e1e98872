/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the VM files, vms.d/NAME.vm (vmfed.vm(5)): the input
 * is one or more files separated by a NUL byte; a file may start with a
 * line "@NAME" naming it, else it is named a, b, c, ... in order.  Every
 * file goes through vm_spec_parse() (with its file checks: Disk= etc. must
 * exist), then all of them are written to a temporary vms.d/ and loaded
 * the way the broker and the federation do: vm_spec_load_dir_full() (the
 * cross-file checks of vm_spec_validate_federation()), vm_model_load() (the
 * broker's model, strict, and the linter's, VM_SPEC_NO_FILE_CHECKS) and
 * vm_model_build_policy_facts().
 *
 * Invariants: a failure comes with errors and success with none; every
 * error names its file ("vms.d/NAME.vm:LINE: ..."); the two loaders agree;
 * a loaded federation's NetVM= and DefaultDispVM= point at VMs of the right
 * role and its NetVM chains end; Firmware= and TPM= hold known values,
 * Streams= is at most STREAM_PORTS_MAX, and every VM with a boot source has
 * a domain XML (federation_domain_xml(), what `vmfedctl vm xml` prints)
 * with exactly Streams= stream ports.
 *
 * -Dfuzz=true builds the libFuzzer binary; every build replays the corpus
 * tests/federation/fuzz-corpus-vmspec/ (tests/lib/fuzz-replay.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "common/stream-frame.h"
#include "federation/federation.h"
#include "federation/vm-model.h"
#include "federation/vmspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FILES 8

static char *config_dir, *vms_dir;

static void dirs_init(void) {
        if (config_dir)
                return;
        /* In memory where there is a tmpfs: this target writes up to 8 files per input. */
        config_dir = g_strdup(access("/dev/shm", W_OK) == 0 ? "/dev/shm/vmfed-fuzz-vmspec.XXXXXX"
                                                            : "/tmp/vmfed-fuzz-vmspec.XXXXXX");
        if (!g_mkdtemp(config_dir))
                abort();
        vms_dir = g_build_filename(config_dir, "vms.d", NULL);
        if (g_mkdir(vms_dir, 0700) < 0)
                abort();
}

static void dirs_cleanup(void) {
        g_autoptr(GDir) d = g_dir_open(vms_dir, 0, NULL);
        for (const char *n; d && (n = g_dir_read_name(d));) {
                g_autofree char *p = g_build_filename(vms_dir, n, NULL);
                (void) g_unlink(p);
        }
}

static void __attribute__((destructor)) dirs_remove(void) {
        if (!config_dir)
                return;
        dirs_cleanup();
        (void) g_rmdir(vms_dir);
        (void) g_rmdir(config_dir);
}

static void check_errors(GPtrArray *errors) {
        for (guint i = 0; errors && i < errors->len; i++) {
                const char *e = g_ptr_array_index(errors, i);
                if (!e || !g_str_has_prefix(e, "vms.d/") || !strstr(e, ":"))
                        abort();
        }
}

/* The stream ports of a domain XML. */
static unsigned count_stream_ports(const char *xml) {
        const char *needle = "name='" STREAM_PORT_NAME_PREFIX;
        unsigned n = 0;

        for (const char *p = strstr(xml, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

static void check_federation(GPtrArray *specs) {
        for (guint i = 0; i < specs->len; i++) {
                VmSpec *s = g_ptr_array_index(specs, i);
                if (!vm_spec_name_is_valid(s->name) || !s->tags || !s->devices || vm_role_to_string(s->role) == NULL)
                        abort();
                if (s->memory < VM_SPEC_MEMORY_MIN || s->memory > VM_SPEC_MEMORY_MAX || s->vcpus < 1 ||
                    s->vcpus > VM_SPEC_VCPUS_MAX)
                        abort();
                if (s->netvm) {
                        VmSpec *n = vm_spec_find(specs, s->netvm);
                        if (!n || n == s || n->role != VM_ROLE_SERVICE)
                                abort();
                }
                if (s->default_dispvm) {
                        VmSpec *n = vm_spec_find(specs, s->default_dispvm);
                        if (!n || n->role != VM_ROLE_DISPOSABLE_TEMPLATE)
                                abort();
                }
                VmSpec *n = s;
                for (guint hops = 0; n && n->netvm; hops++) {
                        if (hops > specs->len)
                                abort();
                        n = vm_spec_find(specs, n->netvm);
                }
                if (!vm_firmware_to_string(s->firmware) || !vm_tpm_to_string(s->tpm) || s->streams > STREAM_PORTS_MAX)
                        abort();
                if ((s->disk || s->kernel) && s->role != VM_ROLE_DISPOSABLE_TEMPLATE) {
                        FederationOptions o = { .config_dir = config_dir, .state_dir = config_dir };
                        g_autofree char *xml = NULL, *err = NULL;
                        if (federation_domain_xml(specs, &o, s->name, &xml, &err) < 0 || !xml || err)
                                abort();
                        if ((s->firmware != VM_FIRMWARE_BIOS) != (strstr(xml, "<nvram ") != NULL))
                                abort();
                        if (count_stream_ports(xml) != s->streams)
                                abort();
                }
                for (char **d = s->devices; *d; d++) {
                        g_autofree char *again = pci_address_normalize(*d);
                        if (!again || strcmp(again, *d) != 0)
                                abort();
                }
        }
}

/* One file alone, with the file checks; then into vms.d/ for the loaders. */
static void one_file(const char *name, const char *body) {
        g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
        VmSpec *s = NULL;
        int r = vm_spec_parse(name, "fuzz.vm", body, errors, &s);
        if ((r < 0) != (errors->len > 0) || (r >= 0) != (s != NULL))
                abort();
        check_errors(errors);
        if (s && (strcmp(s->name, name) != 0 || !s->source_text || strcmp(s->source_text, body) != 0))
                abort();
        vm_spec_free(s);

        /* Into vms.d/ for the loaders (names that cannot be file names are left out). */
        if (*name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
            strlen(name) < 200) {
                g_autofree char *fn = g_strdup_printf("%s/%s.vm", vms_dir, name);
                /* Plainly: g_file_set_contents() would fsync. */
                FILE *f = fopen(fn, "we");
                if (!f)
                        abort();
                fputs(body, f);
                if (fclose(f) != 0)
                        abort();
        }
}

/* vm_model_load() as the linter loads (no file checks): fails when the loader did (r) and agrees with its SPECS. */
static void check_model(int r, GPtrArray *specs) {
        VmModel *vms = NULL;
        GPtrArray *vm_errors = NULL;
        int q = vm_model_load(config_dir, NULL, VM_SPEC_NO_FILE_CHECKS, &vms, &vm_errors);
        if ((q < 0) != (r < 0))
                abort();
        if (vms) {
                if (!specs || vm_model_n_vms(vms) != specs->len)
                        abort();
                for (guint i = 0; i < vm_model_n_vms(vms); i++) {
                        const VmSpec *c = vm_model_vm(vms, i);
                        VmSpec *s = g_ptr_array_index(specs, i);
                        if (strcmp(c->name, s->name) != 0 || c->role != s->role || vm_model_find(vms, s->name) != c)
                                abort();
                }
                PolicyFacts *f = NULL;
                const char *persona = NULL;
                for (guint i = 0; i < vm_model_n_vms(vms); i++) {
                        const VmSpec *c = vm_model_vm(vms, i);
                        if (c->role == VM_ROLE_PERSONA)
                                persona = c->name;
                }
                if (vm_model_build_policy_facts(vms, persona, NULL, &f) >= 0)
                        policy_facts_unref(f);
                vm_model_unref(vms);
        }
        if (vm_errors)
                g_ptr_array_unref(vm_errors);
}

/* Loaded with the file checks (the federation) and by the broker's strict model: they agree, and
 * the file checks only add errors to the loader's result r. */
static void check_file_checks(int r) {
        GPtrArray *specs2 = NULL, *errors2 = NULL;
        int r2 = vm_spec_load_dir(config_dir, NULL, &specs2, &errors2);
        if (r2 >= 0 && r < 0)
                abort(); /* the file checks only add errors */
        /* ... and the broker's strict model agrees with them. */
        VmModel *strict = NULL;
        GPtrArray *strict_errors = NULL;
        int r3 = vm_model_load(config_dir, NULL, 0, &strict, &strict_errors);
        if ((r3 < 0) != (r2 < 0) || (strict && (!specs2 || vm_model_n_vms(strict) != specs2->len)))
                abort();
        vm_model_unref(strict);
        if (strict_errors)
                g_ptr_array_unref(strict_errors);
        check_errors(errors2);
        if (specs2) {
                check_federation(specs2);
                g_ptr_array_unref(specs2);
        }
        if (errors2)
                g_ptr_array_unref(errors2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *end = (const char *) data + size;
        const char *p = (const char *) data;
        unsigned n_files = 0;

        if (size > 256 * 1024)
                return 0;
        dirs_init();
        dirs_cleanup();

        while (p <= end && n_files < MAX_FILES) {
                const char *z = memchr(p, 0, end - p);
                size_t len = z ? (size_t) (z - p) : (size_t) (end - p);
                g_autofree char *text = g_strndup(p, len);
                g_autofree char *name = NULL;
                const char *body = text;

                if (text[0] == '@') {
                        const char *nl = strchr(text, '\n');
                        name = g_strndup(text + 1, nl ? (size_t) (nl - text - 1) : strlen(text + 1));
                        body = nl ? nl + 1 : "";
                } else
                        name = g_strdup_printf("%c", 'a' + n_files);

                one_file(name, body);
                n_files++;
                if (!z)
                        break;
                p = z + 1;
        }

        GPtrArray *specs = NULL, *errors = NULL;
        int r = vm_spec_load_dir_full(config_dir, NULL, VM_SPEC_NO_FILE_CHECKS, &specs, &errors);
        if ((r < 0) != (errors != NULL && errors->len > 0) || (r >= 0) != (specs != NULL))
                abort();
        check_errors(errors);
        if (specs)
                check_federation(specs);

        check_model(r, specs);
        check_file_checks(r);

        if (specs)
                g_ptr_array_unref(specs);
        if (errors)
                g_ptr_array_unref(errors);
        return 0;
}
