/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/vmspec.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "common/stream-frame.h"
#include "policy/name.h"

#define VM_FILE_MAX (64 * 1024)

static const char *const role_names[_VM_ROLE_MAX] = {
        [VM_ROLE_PERSONA] = "persona",
        [VM_ROLE_SERVICE] = "service",
        [VM_ROLE_DISPOSABLE_TEMPLATE] = "disposable-template",
        [VM_ROLE_APP] = "app",
};

const char *vm_role_to_string(VmRole r) {
        return r >= 0 && r < _VM_ROLE_MAX ? role_names[r] : NULL;
}

VmRole vm_role_from_string(const char *s) {
        for (int i = 0; s && i < _VM_ROLE_MAX; i++)
                if (strcmp(role_names[i], s) == 0)
                        return (VmRole) i;
        return VM_ROLE_INVALID;
}

static const char *const accel_names[_VM_ACCEL_MAX] = {
        [VM_ACCEL_AUTO] = "auto",
        [VM_ACCEL_KVM] = "kvm",
        [VM_ACCEL_TCG] = "tcg",
};

const char *vm_accel_to_string(VmAccel a) {
        return a >= 0 && a < _VM_ACCEL_MAX ? accel_names[a] : NULL;
}

VmAccel vm_accel_from_string(const char *s) {
        for (int i = 0; s && i < _VM_ACCEL_MAX; i++)
                if (strcmp(s, accel_names[i]) == 0)
                        return (VmAccel) i;
        return VM_ACCEL_INVALID;
}

VmSpec *vm_spec_free(VmSpec *s) {
        if (!s)
                return NULL;
        g_free(s->name);
        g_free(s->path);
        g_free(s->disk);
        g_free(s->kernel);
        g_free(s->initrd);
        g_free(s->cmdline);
        g_strfreev(s->tags);
        g_free(s->netvm);
        g_free(s->default_dispvm);
        g_strfreev(s->devices);
        g_free(s->source_text);
        g_free(s);
        return NULL;
}

/* "X.stream.N": STATE/channels/X.stream.N.sock is VM X's stream port N (domain-xml.h), not a VM's channel. */
static bool name_is_stream_port(const char *name) {
        const char *n = g_strrstr(name, ".stream.");
        return n && n[8] && n[8 + strspn(n + 8, "0123456789")] == 0;
}

bool vm_spec_name_is_valid(const char *name) {
        return name && policy_vm_name_is_valid(name, strlen(name)) && !name_is_stream_port(name);
}

static bool tag_is_valid(const char *t) {
        return policy_tag_invalid_at(t, strlen(t)) < 0;
}

char *pci_address_normalize(const char *untrusted) {
        unsigned dom, bus, slot, fn;
        int n = 0;

        /* DDDD:BB:DD.F exactly (as lspci -D writes it); case-insensitive. */
        if (!untrusted || strlen(untrusted) != 12 || untrusted[strspn(untrusted, "0123456789abcdefABCDEF:.")] != 0)
                return NULL;
        if (untrusted[4] != ':' || untrusted[7] != ':' || untrusted[10] != '.')
                return NULL;
        if (sscanf(untrusted, "%4x:%2x:%2x.%1x%n", &dom, &bus, &slot, &fn, &n) != 4 || n != 12)
                return NULL;
        if (slot > 0x1f || fn > 7)
                return NULL;
        return g_strdup_printf("%04x:%02x:%02x.%x", dom, bus, slot, fn);
}

/* Line of KEY in GROUP of text, 0 when not found: for error messages only. */
static unsigned key_line(const char *text, const char *group, const char *key) {
        g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);
        bool in_group = group == NULL;

        for (unsigned i = 0; lines[i]; i++) {
                const char *l = lines[i] + strspn(lines[i], " \t");
                if (l[0] == '[') {
                        size_t gl = group ? strlen(group) : 0;
                        in_group = group && strncmp(l + 1, group, gl) == 0 && l[1 + gl] == ']';
                        if (!key && in_group)
                                return i + 1;
                        continue;
                }
                if (in_group && key) {
                        size_t kl = strlen(key);
                        if (strncmp(l, key, kl) == 0 && (l[kl] == '=' || l[kl] == ' ' || l[kl] == '\t'))
                                return i + 1;
                }
        }
        return 0;
}

typedef struct Parser {
        const char *name;
        const char *text;
        VmSpecLoadFlags flags;
        GPtrArray *errors;
        int r;
} Parser;

/*
 * An error on KEY of GROUP (on GROUP's header when key is NULL).  group NULL:
 * the problem is on no line (a missing key), LINE 0.
 */
static void parser_error(Parser *p, const char *group, const char *key, const char *fmt, ...) _printf_(4, 5);
static void parser_error(Parser *p, const char *group, const char *key, const char *fmt, ...) {
        g_autofree char *msg = NULL;
        unsigned line = group ? key_line(p->text, group, key) : 0;
        va_list ap;

        va_start(ap, fmt);
        msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        if (key)
                g_ptr_array_add(p->errors, g_strdup_printf("vms.d/%s.vm:%u: key %s: %s", p->name, line, key, msg));
        else
                g_ptr_array_add(p->errors, g_strdup_printf("vms.d/%s.vm:%u: %s", p->name, line, msg));
        p->r = -EINVAL;
}

/* KEY's value, stripped; NULL when absent, or unreadable (an error then). */
static char *get_string(Parser *p, GKeyFile *kf, const char *group, const char *key) {
        g_autoptr(GError) e = NULL;
        char *v;

        if (!g_key_file_has_key(kf, group, key, NULL))
                return NULL;
        v = g_key_file_get_string(kf, group, key, &e);
        if (!v) {
                parser_error(p, group, key, "%s", e->message);
                return NULL;
        }
        return g_strstrip(v);
}

/* KEY's ';'-separated items, stripped, empty ones left out; never NULL. */
static char **get_list(Parser *p, GKeyFile *kf, const char *group, const char *key) {
        g_autoptr(GError) e = NULL;
        g_auto(GStrv) items = NULL;
        GPtrArray *out = g_ptr_array_new();

        if (g_key_file_has_key(kf, group, key, NULL)) {
                items = g_key_file_get_string_list(kf, group, key, NULL, &e);
                if (!items)
                        parser_error(p, group, key, "%s", e->message);
        }
        for (size_t i = 0; items && items[i]; i++)
                if (g_strstrip(items[i])[0])
                        g_ptr_array_add(out, g_strdup(items[i]));
        g_ptr_array_add(out, NULL);
        return (char **) g_ptr_array_free(out, false);
}

/* "8G", "512M", "1048576K", "2T" (binary units); a unit is required. */
static int parse_size(const char *untrusted, uint64_t *ret) {
        static const struct {
                const char *suffix;
                uint64_t factor;
        } units[] = {
                { "K", 1ULL << 10 }, { "KiB", 1ULL << 10 }, { "M", 1ULL << 20 }, { "MiB", 1ULL << 20 },
                { "G", 1ULL << 30 }, { "GiB", 1ULL << 30 }, { "T", 1ULL << 40 }, { "TiB", 1ULL << 40 },
        };
        char *end = NULL;
        uint64_t v;

        if (!untrusted || !g_ascii_isdigit(untrusted[0]))
                return -EINVAL;
        errno = 0;
        v = g_ascii_strtoull(untrusted, &end, 10);
        if (errno != 0)
                return -ERANGE;
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (strcmp(end, units[i].suffix) == 0) {
                        if (v > UINT64_MAX / units[i].factor)
                                return -ERANGE;
                        *ret = v * units[i].factor;
                        return 0;
                }
        return -EINVAL;
}

static int parse_uint(const char *untrusted, unsigned min, unsigned max, unsigned *ret) {
        char *end = NULL;
        guint64 v;

        if (!untrusted || !g_ascii_isdigit(untrusted[0]))
                return -EINVAL;
        errno = 0;
        v = g_ascii_strtoull(untrusted, &end, 10);
        if (errno != 0 || *end != 0)
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

int vm_bool_from_string(const char *untrusted, bool *ret) {
        /* What g_key_file_get_boolean() accepts, and systemd's yes/no/on/off
         * (users write Autostart=yes as in a unit file). */
        static const char *const yes[] = { "true", "1", "yes", "on" };
        static const char *const no[] = { "false", "0", "no", "off" };

        if (!untrusted)
                return -EINVAL;
        for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
                if (strcmp(untrusted, yes[i]) == 0)
                        return *ret = true, 0;
                if (strcmp(untrusted, no[i]) == 0)
                        return *ret = false, 0;
        }
        return -EINVAL;
}

/* An absolute path to an existing regular file or block device (VM_SPEC_NO_FILE_CHECKS: any absolute path). */
static char *parse_path(Parser *p, const char *group, const char *key, const char *untrusted) {
        struct stat st;

        if (!g_path_is_absolute(untrusted)) {
                parser_error(p, group, key, "'%s' is not an absolute path", untrusted);
                return NULL;
        }
        if (p->flags & VM_SPEC_NO_FILE_CHECKS)
                return g_strdup(untrusted);
        if (stat(untrusted, &st) < 0) {
                parser_error(p, group, key, "'%s': %s", untrusted, g_strerror(errno));
                return NULL;
        }
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
                parser_error(p, group, key, "'%s' is neither a regular file nor a block device", untrusted);
                return NULL;
        }
        return g_strdup(untrusted);
}

static const char *const vm_keys[] = {
        "Role", "Memory", "VCPUs", "Disk", "Kernel", "Initrd", "Cmdline", "Tags", "NetVM", "DefaultNetVM",
        "Autostart", "Accel", "StopTimeout", "DefaultDispVM", "Firmware", "TPM", "HideHypervisor", "Streams", NULL,
};
static const char *const passthrough_keys[] = { "Devices", NULL };

/* Disk=, or Kernel= with Initrd= and Cmdline= (direct boot). */
static void parse_boot_source(Parser *p, GKeyFile *kf, VmSpec *s) {
        g_autofree char *disk = NULL, *kernel = NULL, *initrd = NULL;
        const char *G = "VM";

        disk = get_string(p, kf, G, "Disk");
        kernel = get_string(p, kf, G, "Kernel");
        initrd = get_string(p, kf, G, "Initrd");
        s->cmdline = get_string(p, kf, G, "Cmdline");
        if (disk && disk[0])
                s->disk = parse_path(p, G, "Disk", disk);
        if (kernel && kernel[0])
                s->kernel = parse_path(p, G, "Kernel", kernel);
        if (initrd && initrd[0]) {
                if (!kernel || !kernel[0])
                        parser_error(p, G, "Initrd", "needs Kernel= (direct kernel boot)");
                else
                        s->initrd = parse_path(p, G, "Initrd", initrd);
        }
        if (s->cmdline && (!kernel || !kernel[0]))
                parser_error(p, G, "Cmdline", "needs Kernel= (direct kernel boot)");
        if (s->cmdline && strpbrk(s->cmdline, "\n\r"))
                parser_error(p, G, "Cmdline", "contains a line break");
        if ((!disk || !disk[0]) && (!kernel || !kernel[0]) && !(p->flags & VM_SPEC_NO_FILE_CHECKS))
                parser_error(p, NULL, NULL, "key Disk: missing (a VM needs Disk= or Kernel=)");
}

/*
 * Firmware=, TPM=, HideHypervisor=: what the guest's firmware and CPU show it (federation/firmware.h);
 * Streams=: its stream ports (docs/streams.md).
 */
static void parse_machine(Parser *p, GKeyFile *kf, VmSpec *s) {
        g_autofree char *firmware = NULL, *tpm = NULL, *hide = NULL, *streams = NULL;
        const char *G = "VM";

        firmware = get_string(p, kf, G, "Firmware");
        if (!firmware)
                s->firmware = VM_FIRMWARE_BIOS;
        else if ((s->firmware = vm_firmware_from_string(firmware)) < 0)
                parser_error(p, G, "Firmware", "'%s' is not one of bios, uefi, uefi-secure-boot", firmware);

        tpm = get_string(p, kf, G, "TPM");
        if (!tpm)
                s->tpm = VM_TPM_NONE;
        else if ((s->tpm = vm_tpm_from_string(tpm)) < 0)
                parser_error(p, G, "TPM", "'%s' is not one of none, 2.0", tpm);

        hide = get_string(p, kf, G, "HideHypervisor");
        if (hide && vm_bool_from_string(hide, &s->hide_hypervisor) < 0)
                parser_error(p, G, "HideHypervisor", "'%s' is not a boolean (true or false)", hide);

        streams = get_string(p, kf, G, "Streams");
        s->streams = STREAM_PORTS_DEFAULT;
        if (streams && parse_uint(streams, 0, STREAM_PORTS_MAX, &s->streams) < 0)
                parser_error(p, G, "Streams", "'%s' is not a number of stream ports from 0 to %d", streams,
                             STREAM_PORTS_MAX);
}

static void parse_vm_group(Parser *p, GKeyFile *kf, VmSpec *s) {
        g_autofree char *role = NULL, *memory = NULL, *vcpus = NULL, *netvm = NULL, *dnv = NULL,
                        *autostart = NULL, *accel = NULL, *timeout = NULL, *dispvm = NULL;
        const char *G = "VM";
        int r;

        role = get_string(p, kf, G, "Role");
        if (!role && !g_key_file_has_key(kf, G, "Role", NULL))
                parser_error(p, NULL, NULL, "key Role: missing (persona, service, disposable-template or app)");
        else if (role && (s->role = vm_role_from_string(role)) < 0)
                parser_error(p, G, "Role", "'%s' is not one of persona, service, disposable-template, app", role);

        memory = get_string(p, kf, G, "Memory");
        if (!memory)
                s->memory = 1ULL << 30;
        else if ((r = parse_size(memory, &s->memory)) == -ERANGE)
                parser_error(p, G, "Memory", "'%s' is out of range (32M to 4T)", memory);
        else if (r < 0)
                parser_error(p, G, "Memory", "'%s' is not a size with a unit (e.g. 512M, 8G)", memory);
        else if (s->memory < VM_SPEC_MEMORY_MIN || s->memory > VM_SPEC_MEMORY_MAX)
                parser_error(p, G, "Memory", "'%s' is out of range (32M to 4T)", memory);
        else if (s->memory % (1ULL << 20) != 0)
                parser_error(p, G, "Memory", "'%s' is not a whole number of MiB", memory);

        vcpus = get_string(p, kf, G, "VCPUs");
        if (!vcpus)
                s->vcpus = 1;
        else if (parse_uint(vcpus, 1, VM_SPEC_VCPUS_MAX, &s->vcpus) < 0)
                parser_error(p, G, "VCPUs", "'%s' is not a number from 1 to %d", vcpus, VM_SPEC_VCPUS_MAX);

        parse_boot_source(p, kf, s);
        parse_machine(p, kf, s);

        s->tags = get_list(p, kf, G, "Tags");
        for (size_t i = 0; s->tags[i]; i++)
                if (!tag_is_valid(s->tags[i]))
                        parser_error(p, G, "Tags",
                                     "'%s' is not a valid tag (letters, digits, '_', '.', '-'; at most %d)",
                                     s->tags[i], POLICY_TAG_MAX);
        if (g_strv_length(s->tags) > POLICY_MAX_TAGS)
                parser_error(p, G, "Tags", "more than %d tags", POLICY_MAX_TAGS);

        netvm = get_string(p, kf, G, "NetVM");
        if (netvm) {
                s->netvm_set = true;
                if (netvm[0] && !vm_spec_name_is_valid(netvm))
                        parser_error(p, G, "NetVM", "'%s' is not a valid VM name (leave it empty for no network)",
                                     netvm);
                else if (netvm[0])
                        s->netvm = g_strdup(netvm);
        }

        dnv = get_string(p, kf, G, "DefaultNetVM");
        if (dnv && vm_bool_from_string(dnv, &s->default_netvm) < 0)
                parser_error(p, G, "DefaultNetVM", "'%s' is not a boolean (true or false)", dnv);
        if (s->default_netvm && s->role != VM_ROLE_SERVICE)
                parser_error(p, G, "DefaultNetVM", "only a service VM can be the default netvm");

        autostart = get_string(p, kf, G, "Autostart");
        if (autostart && vm_bool_from_string(autostart, &s->autostart) < 0)
                parser_error(p, G, "Autostart", "'%s' is not a boolean (true or false)", autostart);

        if (s->autostart && s->role == VM_ROLE_DISPOSABLE_TEMPLATE)
                parser_error(p, G, "Autostart", "a disposable template never runs itself");

        accel = get_string(p, kf, G, "Accel");
        if (!accel)
                s->accel = VM_ACCEL_AUTO;
        else if ((s->accel = vm_accel_from_string(accel)) < 0)
                parser_error(p, G, "Accel", "'%s' is not one of auto, kvm, tcg", accel);

        timeout = get_string(p, kf, G, "StopTimeout");
        if (!timeout)
                s->stop_timeout = VM_SPEC_STOP_TIMEOUT_DEFAULT;
        else if (parse_uint(timeout, 1, VM_SPEC_STOP_TIMEOUT_MAX, &s->stop_timeout) < 0)
                parser_error(p, G, "StopTimeout", "'%s' is not a number of seconds from 1 to %d", timeout,
                             VM_SPEC_STOP_TIMEOUT_MAX);

        dispvm = get_string(p, kf, G, "DefaultDispVM");
        if (dispvm && dispvm[0] && !vm_spec_name_is_valid(dispvm))
                parser_error(p, G, "DefaultDispVM", "'%s' is not a valid VM name", dispvm);
        else if (dispvm && dispvm[0])
                s->default_dispvm = g_strdup(dispvm);
}

static void parse_passthrough_group(Parser *p, GKeyFile *kf, VmSpec *s) {
        g_auto(GStrv) devices = get_list(p, kf, "Passthrough", "Devices");
        g_autoptr(GPtrArray) out = g_ptr_array_new();

        for (size_t i = 0; devices[i]; i++) {
                char *a = pci_address_normalize(devices[i]);
                if (!a) {
                        parser_error(p, "Passthrough", "Devices",
                                     "'%s' is not a PCI address (DDDD:BB:DD.F)", devices[i]);
                        continue;
                }
                for (size_t j = 0; j < out->len; j++)
                        if (strcmp(out->pdata[j], a) == 0) {
                                parser_error(p, "Passthrough", "Devices", "%s is listed twice", a);
                                g_clear_pointer(&a, g_free);
                                break;
                        }
                if (a)
                        g_ptr_array_add(out, a);
        }
        if (out->len > 0 && s->role != VM_ROLE_PERSONA && s->role != VM_ROLE_SERVICE)
                parser_error(p, "Passthrough", "Devices", "only persona and service VMs may take devices");
        g_ptr_array_add(out, NULL);
        s->devices = (char **) g_ptr_array_free(steal_pointer(&out), false);
}

/* GKeyFile merges a repeated group and lets a repeated key win silently; a definition must not. */
static void check_repeats(Parser *p) {
        g_auto(GStrv) lines = g_strsplit(p->text, "\n", -1);
        g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL); /* → line */
        g_autofree char *group = NULL;
        guint before = p->errors->len;

        for (unsigned i = 0; lines[i]; i++) {
                g_autofree char *l = g_strstrip(g_strdup(lines[i]));
                g_autofree char *id = NULL;
                bool section = l[0] == '[' && l[strlen(l) - 1] == ']';
                unsigned first;
                char *eq;

                if (!l[0] || l[0] == '#')
                        continue;
                if (section) {
                        g_free(group);
                        group = g_strndup(l + 1, strlen(l) - 2);
                        id = g_strdup_printf("[%s]", group);
                } else {
                        eq = strchr(l, '=');
                        if (!group || !eq)
                                continue;
                        *eq = 0;
                        g_strstrip(l);
                        id = g_strdup_printf("%s/%s", group, l);
                }
                first = GPOINTER_TO_UINT(g_hash_table_lookup(seen, id));
                if (first == 0)
                        g_hash_table_insert(seen, steal_pointer(&id), GUINT_TO_POINTER(i + 1));
                else if (section)
                        g_ptr_array_add(p->errors, g_strdup_printf("vms.d/%s.vm:%u: section [%s] appears twice "
                                                                   "(first on line %u)",
                                                                   p->name, i + 1, group, first));
                else
                        g_ptr_array_add(p->errors, g_strdup_printf("vms.d/%s.vm:%u: key %s: given twice in [%s] "
                                                                   "(first on line %u)",
                                                                   p->name, i + 1, l, group, first));
        }
        if (p->errors->len > before)
                p->r = -EINVAL;
}

static void check_keys(Parser *p, GKeyFile *kf, const char *group, const char *const *allowed) {
        g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);
        g_autofree char *expected = g_strjoinv(", ", (char **) allowed);

        for (size_t i = 0; keys && keys[i]; i++)
                if (!g_strv_contains(allowed, keys[i]))
                        parser_error(p, group, keys[i], "unknown key in [%s]; expected %s%s", group,
                                     allowed[1] ? "one of " : "", expected);
}

static int spec_parse(const char *name, const char *path, const char *untrusted_text, VmSpecLoadFlags flags,
                      GPtrArray *errors, VmSpec **ret) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;
        g_autoptr(VmSpec) s = NULL;
        g_auto(GStrv) groups = NULL;
        Parser p = { .name = name, .text = untrusted_text, .flags = flags, .errors = errors };

        if (!vm_spec_name_is_valid(name)) {
                g_ptr_array_add(errors, g_strdup_printf("vms.d/%s.vm:0: '%s' is not a valid VM name "
                                                        "(a letter, then letters, digits, '_', '.', '-'; at most %d; "
                                                        "not ending in .stream.N, another VM's stream port)",
                                                        name, name, POLICY_NAME_MAX));
                return -EINVAL;
        }
        if (!g_key_file_load_from_data(kf, untrusted_text, (gsize) -1, G_KEY_FILE_NONE, &e)) {
                g_ptr_array_add(errors, g_strdup_printf("vms.d/%s.vm:0: not a valid key file: %s", name, e->message));
                return -EINVAL;
        }
        groups = g_key_file_get_groups(kf, NULL);
        for (size_t i = 0; groups[i]; i++)
                if (!g_str_equal(groups[i], "VM") && !g_str_equal(groups[i], "Passthrough") &&
                    !g_str_equal(groups[i], "Firewall")) /* [Firewall]: the netvm's own parser */
                        parser_error(&p, groups[i], NULL, "unknown section [%s]; expected [VM], [Passthrough] or [Firewall]",
                                     groups[i]);
        if (!g_key_file_has_group(kf, "VM")) {
                g_ptr_array_add(errors, g_strdup_printf("vms.d/%s.vm:0: missing section [VM]", name));
                return -EINVAL;
        }
        check_repeats(&p);
        check_keys(&p, kf, "VM", vm_keys);
        check_keys(&p, kf, "Passthrough", passthrough_keys);

        s = g_new0(VmSpec, 1);
        s->name = g_strdup(name);
        s->path = g_strdup(path);
        s->source_text = g_strdup(untrusted_text);
        s->role = VM_ROLE_INVALID;
        parse_vm_group(&p, kf, s);
        parse_passthrough_group(&p, kf, s);
        if (p.r < 0)
                return p.r;
        *ret = steal_pointer(&s);
        return 0;
}

int vm_spec_parse(const char *name, const char *path, const char *untrusted_text, GPtrArray *errors,
                  VmSpec **ret) {
        return spec_parse(name, path, untrusted_text, 0, errors, ret);
}

VmSpec *vm_spec_find(GPtrArray *specs, const char *name) {
        for (guint i = 0; specs && name && i < specs->len; i++) {
                VmSpec *s = specs->pdata[i];
                if (strcmp(s->name, name) == 0)
                        return s;
        }
        return NULL;
}

static void add_error(GPtrArray *errors, const VmSpec *s, const char *key, const char *fmt, ...) _printf_(4, 5);
static void add_error(GPtrArray *errors, const VmSpec *s, const char *key, const char *fmt, ...) {
        g_autofree char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_ptr_array_add(errors, g_strdup_printf("vms.d/%s.vm:%u: key %s: %s", s->name,
                                                key_line(s->source_text, "VM", key), key, msg));
}

int vm_spec_validate_federation(GPtrArray *specs, GPtrArray *errors) {
        VmSpec *default_netvm = NULL;
        guint before = errors->len;

        for (guint i = 0; i < specs->len; i++) {
                VmSpec *s = specs->pdata[i];
                if (!s->default_netvm)
                        continue;
                if (default_netvm)
                        add_error(errors, s, "DefaultNetVM", "%s already is the default netvm",
                                  default_netvm->name);
                else
                        default_netvm = s;
        }

        for (guint i = 0; i < specs->len; i++) {
                VmSpec *s = specs->pdata[i], *n;

                if (s->netvm) {
                        n = vm_spec_find(specs, s->netvm);
                        if (!n)
                                add_error(errors, s, "NetVM", "no VM named '%s'", s->netvm);
                        else if (n == s)
                                add_error(errors, s, "NetVM", "a VM cannot be its own network VM");
                        else if (n->role != VM_ROLE_SERVICE)
                                add_error(errors, s, "NetVM", "'%s' is a %s VM, not a service VM", s->netvm,
                                          vm_role_to_string(n->role));
                } else if (!s->netvm_set && default_netvm && s != default_netvm && s->role != VM_ROLE_SERVICE)
                        s->netvm = g_strdup(default_netvm->name);

                if (s->default_dispvm) {
                        n = vm_spec_find(specs, s->default_dispvm);
                        if (!n)
                                add_error(errors, s, "DefaultDispVM", "no VM named '%s'", s->default_dispvm);
                        else if (n->role != VM_ROLE_DISPOSABLE_TEMPLATE)
                                add_error(errors, s, "DefaultDispVM", "'%s' is not a disposable-template VM",
                                          s->default_dispvm);
                }
        }

        /* A chain of service VMs must end: netvm → netvm → ... without a loop. */
        for (guint i = 0; i < specs->len; i++) {
                VmSpec *s = specs->pdata[i], *n = s;
                for (guint hops = 0; n && n->netvm; hops++) {
                        n = vm_spec_find(specs, n->netvm);
                        if (hops > specs->len) {
                                add_error(errors, s, "NetVM", "the chain of NetVM= loops");
                                break;
                        }
                }
        }
        return errors->len > before ? -EINVAL : 0;
}

static void spec_destroy(gpointer p) {
        vm_spec_free(p);
}

static gint spec_compare(gconstpointer a, gconstpointer b) {
        const VmSpec *x = *(VmSpec *const *) a, *y = *(VmSpec *const *) b;
        return strcmp(x->name, y->name);
}

int vm_spec_load_dir_full(const char *config_dir, const VmSpecOverride *override, VmSpecLoadFlags flags,
                          GPtrArray **ret_specs, GPtrArray **ret_errors) {
        g_autoptr(GPtrArray) specs = g_ptr_array_new_with_free_func(spec_destroy);
        g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *dir = g_build_filename(config_dir, "vms.d", NULL);
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d && errno != ENOENT) {
                int r = negative_errno();
                g_ptr_array_add(errors, g_strdup_printf("vms.d:0: cannot open %s: %s", dir, g_strerror(-r)));
                *ret_errors = steal_pointer(&errors);
                return r;
        }
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.' || !g_str_has_suffix(de->d_name, ".vm"))
                        continue;
                g_ptr_array_add(names, g_strndup(de->d_name, strlen(de->d_name) - 3));
        }
        if (d)
                closedir(d);
        if (override && override->text && !g_ptr_array_find_with_equal_func(names, override->name, g_str_equal, NULL))
                g_ptr_array_add(names, g_strdup(override->name));

        for (guint i = 0; i < names->len; i++) {
                const char *name = names->pdata[i];
                g_autofree char *path = g_strdup_printf("%s/%s.vm", dir, name);
                g_autofree char *text = NULL;
                VmSpec *s = NULL;
                int r;

                if (override && strcmp(override->name, name) == 0) {
                        if (!override->text)
                                continue;
                        text = g_strdup(override->text);
                } else {
                        r = read_full_file(path, VM_FILE_MAX, &text, NULL);
                        if (r < 0) {
                                g_ptr_array_add(errors, g_strdup_printf("vms.d/%s.vm:0: cannot read: %s", name,
                                                                        g_strerror(-r)));
                                continue;
                        }
                }
                if (spec_parse(name, path, text, flags, errors, &s) >= 0)
                        g_ptr_array_add(specs, s);
        }
        g_ptr_array_sort(specs, spec_compare);
        if (errors->len == 0)
                (void) vm_spec_validate_federation(specs, errors);
        if (errors->len > 0) {
                *ret_errors = steal_pointer(&errors);
                return -EINVAL;
        }
        *ret_specs = steal_pointer(&specs);
        if (ret_errors)
                *ret_errors = NULL;
        return 0;
}

int vm_spec_load_dir(const char *config_dir, const VmSpecOverride *override, GPtrArray **ret_specs,
                     GPtrArray **ret_errors) {
        return vm_spec_load_dir_full(config_dir, override, 0, ret_specs, ret_errors);
}
