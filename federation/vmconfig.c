/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/vmconfig.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "policy/name.h"

#define VM_FILE_SUFFIX ".vm"
#define VM_FILE_MAX_SIZE (1024u * 1024u)

static const char *const role_names[_VM_ROLE_MAX] = {
        [VM_ROLE_PERSONA] = "persona",
        [VM_ROLE_SERVICE] = "service",
        [VM_ROLE_DISPOSABLE_TEMPLATE] = "disposable-template",
        [VM_ROLE_APP] = "app",
};

const char *vm_role_to_string(VmRole r) {
        if (r < 0 || r >= _VM_ROLE_MAX)
                return NULL;
        return role_names[r];
}

VmRole vm_role_from_string(const char *s) {
        if (!s)
                return VM_ROLE_INVALID;
        for (int i = 0; i < _VM_ROLE_MAX; i++)
                if (strcmp(role_names[i], s) == 0)
                        return (VmRole) i;
        return VM_ROLE_INVALID;
}

VmConfig *vm_config_free(VmConfig *c) {
        if (!c)
                return NULL;
        g_free(c->name);
        g_free(c->path);
        g_strfreev(c->tags);
        g_free(c->default_dispvm);
        g_free(c->disk);
        g_free(c->netvm);
        g_free(c->accel);
        g_strfreev(c->devices);
        g_free(c);
        return NULL;
}

/* ---- the file's layout: which keys stand on which line ---------------- */

typedef struct KeyLine {
        char *group;
        char *key;
        unsigned line;
} KeyLine;

static void key_line_free(gpointer p) {
        KeyLine *k = p;
        g_free(k->group);
        g_free(k->key);
        g_free(k);
}

typedef struct VmFile {
        const char *rel; /* "vms.d/NAME.vm" */
        GPtrArray *keys; /* KeyLine* in file order */
        GPtrArray *errors;
} VmFile;

static void file_error(VmFile *vf, unsigned line, const char *key, const char *format, ...) _printf_(4, 5);
static void file_error(VmFile *vf, unsigned line, const char *key, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        g_autofree char *msg = g_strdup_vprintf(format, ap);
        va_end(ap);
        if (key)
                g_ptr_array_add(vf->errors, g_strdup_printf("%s:%u: key %s: %s", vf->rel, line, key, msg));
        else
                g_ptr_array_add(vf->errors, g_strdup_printf("%s:%u: %s", vf->rel, line, msg));
}

static unsigned key_line(const VmFile *vf, const char *group, const char *key) {
        for (guint i = 0; i < vf->keys->len; i++) {
                const KeyLine *k = vf->keys->pdata[i];
                if (strcmp(k->group, group) == 0 && strcmp(k->key, key) == 0)
                        return k->line;
        }
        return 0;
}

/*
 * GKeyFile silently merges repeated groups and lets a repeated key win;
 * a definition file should not.  Scan the text for the layout first.
 */
static void scan_layout(VmFile *vf, const char *text) {
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        g_autofree char *group = NULL;
        g_autoptr(GHashTable) groups = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        for (unsigned n = 0; lines[n]; n++) {
                g_autofree char *l = g_strstrip(g_strdup(lines[n]));
                unsigned line = n + 1;
                if (l[0] == '\0' || l[0] == '#')
                        continue;
                if (l[0] == '[') {
                        size_t len = strlen(l);
                        if (len < 3 || l[len - 1] != ']')
                                continue; /* GKeyFile reports it */
                        g_free(group);
                        group = g_strndup(l + 1, len - 2);
                        if (!g_hash_table_add(groups, g_strdup(group)))
                                file_error(vf, line, NULL, "group [%s] appears twice", group);
                        continue;
                }
                char *eq = strchr(l, '=');
                if (!eq || !group)
                        continue;
                *eq = '\0';
                g_strstrip(l);
                if (key_line(vf, group, l) != 0)
                        file_error(vf, line, l, "given twice in [%s] (first on line %u)", group, key_line(vf, group, l));
                KeyLine *k = g_new0(KeyLine, 1);
                k->group = g_strdup(group);
                k->key = g_strdup(l);
                k->line = line;
                g_ptr_array_add(vf->keys, k);
        }
}

/* ---- values ------------------------------------------------------------ */

static bool parse_size(const char *s, guint64 *ret) {
        char *end = NULL;
        if (!g_ascii_isdigit(s[0]))
                return false;
        errno = 0;
        guint64 v = g_ascii_strtoull(s, &end, 10);
        if (errno != 0 || v == 0)
                return false;
        guint64 mult = 1;
        if (*end) {
                switch (g_ascii_toupper(*end)) {
                case 'K':
                        mult = 1024ull;
                        break;
                case 'M':
                        mult = 1024ull * 1024;
                        break;
                case 'G':
                        mult = 1024ull * 1024 * 1024;
                        break;
                case 'T':
                        mult = 1024ull * 1024 * 1024 * 1024;
                        break;
                default:
                        return false;
                }
                end++;
                if (*end == 'i' || *end == 'B')
                        end += *end == 'i' && end[1] == 'B' ? 2 : 1;
                if (*end)
                        return false;
        }
        if (v > G_MAXUINT64 / mult)
                return false;
        *ret = v * mult;
        return true;
}

static bool is_pci_address(const char *s) {
        /* DDDD:BB:DD.F */
        if (strlen(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.')
                return false;
        for (int i = 0; i < 12; i++) {
                if (i == 4 || i == 7 || i == 10)
                        continue;
                if (!g_ascii_isxdigit(s[i]))
                        return false;
        }
        return s[11] >= '0' && s[11] <= '7' && g_ascii_strtoull(s + 8, NULL, 16) <= 0x1f;
}

/* The federation's own keys (vmspec.c validates them strictly) are accepted here too. */
static const char *const vm_keys[] = { "Role",      "Memory",  "VCPUs",   "Disk",         "Tags",
                                       "NetVM",     "Autostart", "Accel", "DefaultDispVM", "Kernel",
                                       "Initrd",    "Cmdline", "DefaultNetVM", "StopTimeout" };

static bool str_in(const char *s, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(s, list[i]) == 0)
                        return true;
        return false;
}

static char *get_string(VmFile *vf, GKeyFile *kf, const char *group, const char *key) {
        g_autoptr(GError) e = NULL;
        if (!g_key_file_has_key(kf, group, key, NULL))
                return NULL;
        char *v = g_key_file_get_string(kf, group, key, &e);
        if (!v)
                file_error(vf, key_line(vf, group, key), key, "%s", e->message);
        return v ? g_strstrip(v) : NULL;
}

static VmConfig *parse_vm(VmFile *vf, const char *name, const char *path, const char *text) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;
        g_autoptr(VmConfig) c = g_new0(VmConfig, 1);
        guint before = vf->errors->len;

        c->name = g_strdup(name);
        c->path = g_strdup(path);
        c->role = VM_ROLE_INVALID;

        if (!g_key_file_load_from_data(kf, text, (gsize) -1, G_KEY_FILE_NONE, &e)) {
                file_error(vf, 0, NULL, "not a valid key file: %s", e->message);
                return NULL;
        }
        scan_layout(vf, text);

        g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
        bool have_vm = false;
        for (char **g = groups; *g; g++) {
                g_auto(GStrv) keys = g_key_file_get_keys(kf, *g, NULL, NULL);
                if (strcmp(*g, "VM") == 0) {
                        have_vm = true;
                        for (char **k = keys; k && *k; k++)
                                if (!str_in(*k, vm_keys, ELEMENTSOF(vm_keys)))
                                        file_error(vf, key_line(vf, *g, *k), *k,
                                                   "unknown key in [VM]; expected one of Role, Memory, VCPUs, Disk, "
                                                   "Kernel, Initrd, Cmdline, Tags, NetVM, DefaultNetVM, Autostart, "
                                                   "Accel, StopTimeout, DefaultDispVM");
                } else if (strcmp(*g, "Passthrough") == 0) {
                        for (char **k = keys; k && *k; k++)
                                if (strcmp(*k, "Devices") != 0)
                                        file_error(vf, key_line(vf, *g, *k), *k,
                                                   "unknown key in [Passthrough]; expected Devices");
                } else if (strcmp(*g, "Firewall") != 0)
                        file_error(vf, 0, NULL, "unknown group [%s]; expected [VM], [Passthrough] or [Firewall]", *g);
        }
        if (!have_vm) {
                file_error(vf, 0, NULL, "no [VM] group");
                return NULL;
        }

        g_autofree char *role = get_string(vf, kf, "VM", "Role");
        if (!role)
                file_error(vf, 0, "Role", "missing; expected persona, service, disposable-template or app");
        else if ((c->role = vm_role_from_string(role)) < 0)
                file_error(vf, key_line(vf, "VM", "Role"), "Role",
                           "unknown role '%s'; expected persona, service, disposable-template or app", role);

        if (g_key_file_has_key(kf, "VM", "Tags", NULL)) {
                gsize n = 0;
                g_auto(GStrv) tags = g_key_file_get_string_list(kf, "VM", "Tags", &n, NULL);
                GPtrArray *clean = g_ptr_array_new();
                for (gsize i = 0; tags && i < n; i++) {
                        char *t = g_strstrip(tags[i]);
                        if (t[0] == '\0')
                                continue;
                        if (policy_tag_invalid_at(t, strlen(t)) >= 0)
                                file_error(vf, key_line(vf, "VM", "Tags"), "Tags",
                                           "invalid tag '%s'; expected letters, digits, '_', '.' and '-' "
                                           "(at most %d)",
                                           t, POLICY_TAG_MAX);
                        else
                                g_ptr_array_add(clean, g_strdup(t));
                }
                if (clean->len > POLICY_MAX_TAGS)
                        file_error(vf, key_line(vf, "VM", "Tags"), "Tags", "more than %d tags", POLICY_MAX_TAGS);
                g_ptr_array_add(clean, NULL);
                c->tags = (char **) g_ptr_array_free(clean, FALSE);
        } else
                c->tags = g_new0(char *, 1);

        c->default_dispvm = get_string(vf, kf, "VM", "DefaultDispVM");
        if (c->default_dispvm && !policy_vm_name_is_valid(c->default_dispvm, strlen(c->default_dispvm)))
                file_error(vf, key_line(vf, "VM", "DefaultDispVM"), "DefaultDispVM", "'%s' is not a valid VM name",
                           c->default_dispvm);

        g_autofree char *memory = get_string(vf, kf, "VM", "Memory");
        if (memory && !parse_size(memory, &c->memory))
                file_error(vf, key_line(vf, "VM", "Memory"), "Memory",
                           "invalid size '%s'; expected a positive number with optional K, M, G or T", memory);

        g_autofree char *vcpus = get_string(vf, kf, "VM", "VCPUs");
        if (vcpus) {
                char *end = NULL;
                guint64 v = g_ascii_strtoull(vcpus, &end, 10);
                if (!g_ascii_isdigit(vcpus[0]) || *end || v == 0 || v > 512)
                        file_error(vf, key_line(vf, "VM", "VCPUs"), "VCPUs",
                                   "invalid count '%s'; expected 1 to 512", vcpus);
                else
                        c->vcpus = (unsigned) v;
        }

        c->disk = get_string(vf, kf, "VM", "Disk");
        if (c->disk && c->disk[0] != '/')
                file_error(vf, key_line(vf, "VM", "Disk"), "Disk", "'%s' is not an absolute path", c->disk);

        c->netvm = get_string(vf, kf, "VM", "NetVM");
        if (c->netvm && c->netvm[0] && !policy_vm_name_is_valid(c->netvm, strlen(c->netvm)))
                file_error(vf, key_line(vf, "VM", "NetVM"), "NetVM",
                           "'%s' is not a valid VM name (leave it empty for no network)", c->netvm);

        if (g_key_file_has_key(kf, "VM", "Autostart", NULL)) {
                g_autoptr(GError) be = NULL;
                c->autostart = g_key_file_get_boolean(kf, "VM", "Autostart", &be);
                if (be)
                        file_error(vf, key_line(vf, "VM", "Autostart"), "Autostart", "expected true or false");
        }

        c->accel = get_string(vf, kf, "VM", "Accel");
        if (c->accel && strcmp(c->accel, "kvm") != 0 && strcmp(c->accel, "tcg") != 0 && strcmp(c->accel, "auto") != 0)
                file_error(vf, key_line(vf, "VM", "Accel"), "Accel", "unknown accelerator '%s'; expected auto, kvm or tcg",
                           c->accel);

        if (g_key_file_has_key(kf, "Passthrough", "Devices", NULL)) {
                gsize n = 0;
                g_auto(GStrv) devs = g_key_file_get_string_list(kf, "Passthrough", "Devices", &n, NULL);
                GPtrArray *clean = g_ptr_array_new();
                for (gsize i = 0; devs && i < n; i++) {
                        char *d = g_strstrip(devs[i]);
                        if (d[0] == '\0')
                                continue;
                        if (!is_pci_address(d))
                                file_error(vf, key_line(vf, "Passthrough", "Devices"), "Devices",
                                           "invalid PCI address '%s'; expected DDDD:BB:DD.F", d);
                        else
                                g_ptr_array_add(clean, g_ascii_strdown(d, -1));
                }
                g_ptr_array_add(clean, NULL);
                c->devices = (char **) g_ptr_array_free(clean, FALSE);
        } else
                c->devices = g_new0(char *, 1);

        if (vf->errors->len != before)
                return NULL;
        return steal_pointer(&c);
}

static void vm_config_destroy(gpointer p) {
        vm_config_free(p);
}

static int compare_name(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int compare_vm(gconstpointer a, gconstpointer b) {
        const VmConfig *x = *(VmConfig *const *) a, *y = *(VmConfig *const *) b;
        return strcmp(x->name, y->name);
}

/* Checks across files: references to other VMs. */
static void check_references(GPtrArray *vms, GPtrArray *errors) {
        g_autoptr(GHashTable) by_name = g_hash_table_new(g_str_hash, g_str_equal);
        for (guint i = 0; i < vms->len; i++) {
                VmConfig *c = vms->pdata[i];
                g_hash_table_insert(by_name, c->name, c);
        }
        for (guint i = 0; i < vms->len; i++) {
                VmConfig *c = vms->pdata[i];
                g_autofree char *rel = g_strconcat("vms.d/", c->name, VM_FILE_SUFFIX, NULL);
                if (c->default_dispvm) {
                        VmConfig *t = g_hash_table_lookup(by_name, c->default_dispvm);
                        if (!t || t->role != VM_ROLE_DISPOSABLE_TEMPLATE)
                                g_ptr_array_add(errors, g_strdup_printf("%s:0: key DefaultDispVM: '%s' is not a VM with "
                                                                        "Role=disposable-template",
                                                                        rel, c->default_dispvm));
                }
                if (c->netvm && c->netvm[0]) {
                        VmConfig *n = g_hash_table_lookup(by_name, c->netvm);
                        if (!n)
                                g_ptr_array_add(errors, g_strdup_printf("%s:0: key NetVM: no VM named '%s'", rel,
                                                                        c->netvm));
                        else if (n == c)
                                g_ptr_array_add(errors,
                                                g_strdup_printf("%s:0: key NetVM: a VM cannot be its own network VM",
                                                                rel));
                }
        }
}

int vm_config_load_dir(const char *config_dir, GPtrArray **ret_vms, GPtrArray **ret_errors) {
        g_return_val_if_fail(config_dir && ret_vms && ret_errors, -EINVAL);
        *ret_vms = NULL;
        *ret_errors = NULL;

        g_autofree char *dir = g_build_filename(config_dir, "vms.d", NULL);
        g_autoptr(GPtrArray) vms = g_ptr_array_new_with_free_func(vm_config_destroy);
        g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);

        DIR *d = opendir(dir);
        if (!d) {
                if (errno == ENOENT) {
                        *ret_vms = steal_pointer(&vms);
                        return 0;
                }
                return negative_errno();
        }
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (de->d_name[0] == '.' || n <= strlen(VM_FILE_SUFFIX) ||
                    strcmp(de->d_name + n - strlen(VM_FILE_SUFFIX), VM_FILE_SUFFIX) != 0)
                        continue;
                g_ptr_array_add(names, g_strdup(de->d_name));
        }
        closedir(d);
        g_ptr_array_sort(names, compare_name);

        for (guint i = 0; i < names->len; i++) {
                const char *file = names->pdata[i];
                g_autofree char *name = g_strndup(file, strlen(file) - strlen(VM_FILE_SUFFIX));
                g_autofree char *rel = g_strconcat("vms.d/", file, NULL);
                g_autofree char *path = g_build_filename(dir, file, NULL);
                VmFile vf = { .rel = rel, .keys = g_ptr_array_new_with_free_func(key_line_free), .errors = errors };

                if (!policy_vm_name_is_valid(name, strlen(name))) {
                        file_error(&vf, 0, NULL,
                                   "'%s' is not a valid VM name; expected a letter then letters, digits, '_', '.' "
                                   "or '-' (at most %d)",
                                   name, POLICY_NAME_MAX);
                        g_ptr_array_unref(vf.keys);
                        continue;
                }
                _cleanup_free_ char *text = NULL;
                int r = read_full_file(path, VM_FILE_MAX_SIZE, &text, NULL);
                if (r < 0)
                        file_error(&vf, 0, NULL, "cannot read: %s", g_strerror(-r));
                else {
                        VmConfig *c = parse_vm(&vf, name, path, text);
                        if (c)
                                g_ptr_array_add(vms, c);
                }
                g_ptr_array_unref(vf.keys);
        }
        g_ptr_array_sort(vms, compare_vm);
        if (errors->len == 0)
                check_references(vms, errors);

        if (errors->len > 0) {
                *ret_errors = steal_pointer(&errors);
                return -EINVAL;
        }
        *ret_vms = steal_pointer(&vms);
        return 0;
}

int vm_config_build_policy_facts(GPtrArray *vms, const char *active_persona, const char *default_dispvm,
                                 PolicyFacts **ret) {
        g_return_val_if_fail(vms && ret, -EINVAL);
        PolicyFacts *f = policy_facts_new();
        const char *only_template = NULL;
        unsigned n_templates = 0;
        int r = 0;

        for (guint i = 0; i < vms->len && r == 0; i++) {
                const VmConfig *c = vms->pdata[i];
                r = policy_facts_add_vm(f, c->name, vm_role_to_string(c->role), (const char *const *) c->tags,
                                        c->default_dispvm);
                if (c->role == VM_ROLE_DISPOSABLE_TEMPLATE) {
                        only_template = c->name;
                        n_templates++;
                }
        }
        if (r == 0)
                r = policy_facts_set_active(f, active_persona);
        if (r == 0)
                r = policy_facts_set_default_dispvm(f, default_dispvm ? default_dispvm
                                                       : n_templates == 1 ? only_template
                                                                          : NULL);
        if (r < 0) {
                policy_facts_unref(f);
                return r;
        }
        policy_facts_freeze(f);
        *ret = f;
        return 0;
}
