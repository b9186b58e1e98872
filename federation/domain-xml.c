/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/domain-xml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/stream-frame.h"
#include "federation/firmware.h"

const char *disk_image_format(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        char magic[4];

        if (fd >= 0 && read(fd, magic, sizeof magic) == (ssize_t) sizeof magic && memcmp(magic, "QFI\xfb", 4) == 0)
                return "qcow2";
        return "raw";
}

void domain_xml_vm_mac(const char *vm_name, char ret[static DOMAIN_XML_MAC_MAX]) {
        g_autofree char *key = g_strconcat("vmfed-mac:", vm_name, NULL);
        g_autofree char *h = g_compute_checksum_for_string(G_CHECKSUM_SHA256, key, -1);

        snprintf(ret, DOMAIN_XML_MAC_MAX, "52:54:00:%.2s:%.2s:%.2s", h, h + 2, h + 4);
}

void domain_xml_tap_name(const char *domain_name, char ret[static DOMAIN_XML_TAP_MAX]) {
        g_autofree char *h = g_compute_checksum_for_string(G_CHECKSUM_SHA256, domain_name, -1);

        snprintf(ret, DOMAIN_XML_TAP_MAX, "vmf%.8s", h);
}

void domain_xml_stable_uuid(const char *domain_name, char ret[static DOMAIN_XML_UUID_MAX]) {
        g_autofree char *key = g_strconcat("vmfed-uuid:", domain_name, NULL);
        g_autofree char *h = g_compute_checksum_for_string(G_CHECKSUM_SHA256, key, -1);
        static const char variant[] = "89ab";

        /* 8-4-4-4-12; the version nibble 8, the variant bits 10. */
        snprintf(ret, DOMAIN_XML_UUID_MAX, "%.8s-%.4s-8%.3s-%c%.3s-%.12s", h, h + 8, h + 12,
                 variant[g_ascii_xdigit_value(h[15]) & 3], h + 16, h + 19);
}

/* The length of channel_path without its ".sock". */
static int channel_stem(const char *channel_path) {
        size_t n = strlen(channel_path);

        if (n > 5 && strcmp(channel_path + n - 5, ".sock") == 0)
                n -= 5;
        return (int) n;
}

char *domain_xml_netvm_channel_path(const char *channel_path) {
        return g_strdup_printf("%.*s@netvm.sock", channel_stem(channel_path), channel_path);
}

char *domain_xml_stream_channel_path(const char *channel_path, unsigned i) {
        return g_strdup_printf("%.*s.stream.%u.sock", channel_stem(channel_path), channel_path, i);
}

const char *domain_xml_type(const VmSpec *s, const DomainXmlParams *p) {
        if (p->force_tcg || s->accel == VM_ACCEL_TCG)
                return "qemu";
        if (s->accel == VM_ACCEL_KVM)
                return "kvm";
        return p->kvm_available ? "kvm" : "qemu";
}

static const char *role_string(const VmSpec *s, const DomainXmlParams *p) {
        static const char *const names[_VM_ROLE_MAX] = {
                [VM_ROLE_PERSONA] = "persona",
                [VM_ROLE_SERVICE] = "service",
                [VM_ROLE_DISPOSABLE_TEMPLATE] = "disposable-template",
                [VM_ROLE_APP] = "app",
        };
        if (p->role)
                return p->role;
        return s->role >= 0 && s->role < _VM_ROLE_MAX ? names[s->role] : "app";
}

/* A virtio-serial port whose host end QEMU listens on (bind): the broker connects while the VM runs. */
static void append_bind_channel(GString *x, const char *path, const char *port) {
        g_autofree char *e = g_markup_printf_escaped("    <channel type='unix'>\n"
                                                     "      <source mode='bind' path='%s'/>\n"
                                                     "      <target type='virtio' name='%s'/>\n"
                                                     "    </channel>\n",
                                                     path, port);
        g_string_append(x, e);
}

/* The agent channel and, beside it, a netvm's port and the stream ports (none without an agent channel). */
static void append_channels(GString *x, const VmSpec *s, const DomainXmlParams *p) {
        if (!p->channel_path)
                return;
        if (p->channel_mode == DOMAIN_CHANNEL_BIND)
                append_bind_channel(x, p->channel_path, DOMAIN_XML_AGENT_PORT);
        else {
                /* connect: QEMU dials the broker's socket and redials every second after a broker restart. */
                g_autofree char *e = g_markup_printf_escaped("    <channel type='unix'>\n"
                                                             "      <source mode='connect' path='%s'>\n"
                                                             "        <reconnect enabled='yes' timeout='1'/>\n"
                                                             "      </source>\n"
                                                             "      <target type='virtio' name='%s'/>\n"
                                                             "    </channel>\n",
                                                             p->channel_path, DOMAIN_XML_AGENT_PORT);
                g_string_append(x, e);
        }
        /*
         * A netvm (its NIC is the bridge's router port): vmfed-netd's own port, beside the
         * agent's.  QEMU listens there and the broker connects while the netvm runs, so
         * nothing has to listen before the domain starts.
         */
        if (p->bridge && !p->isolated_port) {
                g_autofree char *np = domain_xml_netvm_channel_path(p->channel_path);
                append_bind_channel(x, np, DOMAIN_XML_NETVM_PORT);
        }
        /* The stream ports (docs/streams.md): QEMU listens on these too. */
        for (unsigned i = 0; i < s->streams; i++) {
                g_autofree char *sp = domain_xml_stream_channel_path(p->channel_path, i);
                g_autofree char *port = g_strdup_printf(STREAM_PORT_NAME_PREFIX "%u", i);
                append_bind_channel(x, sp, port);
        }
}

/*
 * Long: the <devices> element in document order (disk, NICs, serial,
 * channels, hostdevs, …); each piece is a short template, and splitting them
 * apart would scatter one XML element over several functions.
 */
static void append_devices(GString *x, const VmSpec *s, const DomainXmlParams *p) {
        const char *disk = p->disk_override ? p->disk_override : s->disk;

        g_string_append(x, "  <devices>\n");
        if (disk) {
                const char *fmt = p->disk_override ? "qcow2" : disk_image_format(disk);
                g_autofree char *e = g_markup_printf_escaped(
                        "    <disk type='file' device='disk'>\n"
                        "      <driver name='qemu' type='%s' discard='unmap'/>\n"
                        "      <source file='%s'/>\n"
                        "      <target dev='vda' bus='virtio'/>\n"
                        "    </disk>\n",
                        fmt, disk);
                g_string_append(x, e);
        }
        if (p->bridge) {
                g_autofree char *e = g_markup_printf_escaped("    <interface type='bridge'>\n"
                                                             "      <source bridge='%s'/>\n",
                                                             p->bridge);
                char mac[DOMAIN_XML_MAC_MAX], tap[DOMAIN_XML_TAP_MAX];
                g_string_append(x, e);
                /* Fixed MAC and tap name: the broker computes the same (addressing, anti-spoofing). */
                if (!p->mac)
                        domain_xml_vm_mac(s->name, mac);
                {
                        g_autofree char *m = g_markup_printf_escaped("      <mac address='%s'/>\n",
                                                                     p->mac ? p->mac : mac);
                        g_string_append(x, m);
                }
                domain_xml_tap_name(p->domain_name, tap);
                g_string_append_printf(x, "      <target dev='%s'/>\n", tap);
                g_string_append(x, "      <model type='virtio'/>\n");
                if (p->isolated_port)
                        g_string_append(x, "      <port isolated='yes'/>\n");
                g_string_append(x, "    </interface>\n");
                /* Tests: the netvm's uplink is a second NIC on a host bridge (production passes a NIC through). */
                if (!p->isolated_port && getenv("VMFED_TEST_UPLINK_BRIDGE") && *getenv("VMFED_TEST_UPLINK_BRIDGE")) {
                        g_autofree char *up_name = g_strconcat(s->name, "/uplink", NULL);
                        g_autofree char *u = g_markup_printf_escaped("    <interface type='bridge'>\n"
                                                                     "      <source bridge='%s'/>\n",
                                                                     getenv("VMFED_TEST_UPLINK_BRIDGE"));
                        domain_xml_vm_mac(up_name, mac);
                        g_string_append(x, u);
                        g_string_append_printf(x, "      <mac address='%s'/>\n"
                                                  "      <model type='virtio'/>\n"
                                                  "    </interface>\n", mac);
                }
        }
        if (p->console_path && getenv("VMFED_TEST_CONSOLE_SOCKET") && strcmp(getenv("VMFED_TEST_CONSOLE_SOCKET"), "1") == 0) {
                /* Tests: the serial console is also a socket (NAME.sock beside NAME.log) a test can type into. */
                size_t n = strlen(p->console_path);
                g_autofree char *sock = g_strdup_printf("%.*s.sock", (int) (n > 4 && g_str_has_suffix(p->console_path, ".log") ? n - 4 : n),
                                                        p->console_path);
                g_autofree char *e = g_markup_printf_escaped("    <serial type='unix'>\n"
                                                             "      <source mode='bind' path='%s'/>\n"
                                                             "      <log file='%s' append='on'/>\n"
                                                             "      <target port='0'/>\n"
                                                             "    </serial>\n",
                                                             sock, p->console_path);
                g_string_append(x, e);
        } else if (p->console_path) {
                g_autofree char *e = g_markup_printf_escaped("    <serial type='file'>\n"
                                                             "      <source path='%s' append='on'/>\n"
                                                             "      <target port='0'/>\n"
                                                             "    </serial>\n",
                                                             p->console_path);
                g_string_append(x, e);
        }
        append_channels(x, s, p);
        for (size_t i = 0; s->devices[i] && !p->fake_passthrough; i++) {
                unsigned dom, bus, slot, fn;
                if (sscanf(s->devices[i], "%x:%x:%x.%x", &dom, &bus, &slot, &fn) != 4)
                        continue;
                g_string_append_printf(x,
                                       "    <hostdev mode='subsystem' type='pci' managed='yes'>\n"
                                       "      <source>\n"
                                       "        <address domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/>\n"
                                       "      </source>\n"
                                       "    </hostdev>\n",
                                       dom, bus, slot, fn);
        }
        firmware_xml_tpm(x, s);
        g_string_append(x, "    <memballoon model='none'/>\n");
        g_string_append(x, "  </devices>\n");
}

int domain_xml_build(const VmSpec *s, const DomainXmlParams *p, char **ret) {
        g_autoptr(GString) body = g_string_new(NULL), x = g_string_new(NULL), meta = g_string_new(NULL);
        g_autofree char *hash = NULL, *name = NULL;
        const char *type = domain_xml_type(s, p);

        if (!p->domain_name || !g_str_has_prefix(p->domain_name, "vmfed-"))
                return -EINVAL;
        if (!s->disk && !s->kernel && !p->disk_override)
                return -EINVAL;

        g_string_append_printf(body, "  <memory unit='KiB'>%" PRIu64 "</memory>\n", s->memory / 1024);
        g_string_append_printf(body, "  <vcpu placement='static'>%u</vcpu>\n", s->vcpus);
        g_string_append(body, "  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n");
        if (firmware_xml_os(body, s, p->ovmf_dir, p->nvram_path) < 0)
                return -EINVAL;
        if (s->kernel) {
                g_autofree char *e = g_markup_printf_escaped("    <kernel>%s</kernel>\n", s->kernel);
                g_string_append(body, e);
                if (s->initrd) {
                        g_autofree char *i = g_markup_printf_escaped("    <initrd>%s</initrd>\n", s->initrd);
                        g_string_append(body, i);
                }
                if (s->cmdline) {
                        g_autofree char *c = g_markup_printf_escaped("    <cmdline>%s</cmdline>\n", s->cmdline);
                        g_string_append(body, c);
                }
        } else
                g_string_append(body, "    <boot dev='hd'/>\n");
        g_string_append(body, "  </os>\n  <features>\n    <acpi/>\n");
        firmware_xml_features(body, s, strcmp(type, "kvm") == 0);
        g_string_append(body, "  </features>\n");
        firmware_xml_cpu(body, s, strcmp(type, "kvm") == 0);
        g_string_append(body, "  <clock offset='utc'/>\n"
                              "  <on_poweroff>destroy</on_poweroff>\n"
                              "  <on_reboot>restart</on_reboot>\n"
                              "  <on_crash>destroy</on_crash>\n");
        append_devices(body, s, p);

        /* The hash covers everything but the metadata: a change means "redefine". */
        {
                g_autofree char *h = g_strdup_printf("%s\n%s\n%s", type, p->domain_name, body->str);
                hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, h, -1);
        }

        name = g_markup_escape_text(p->domain_name, -1);
        g_string_append_printf(meta,
                               "    <" DOMAIN_XML_NS_PREFIX ":vm xmlns:" DOMAIN_XML_NS_PREFIX "='" DOMAIN_XML_NS
                               "'>\n");
        {
                g_autofree char *e = g_markup_printf_escaped(
                        "      <vmfed:name>%s</vmfed:name>\n"
                        "      <vmfed:role>%s</vmfed:role>\n"
                        "      <vmfed:generation>%" PRIu64 "</vmfed:generation>\n"
                        "      <vmfed:config-hash>%s</vmfed:config-hash>\n",
                        s->name, role_string(s, p), p->generation, hash);
                g_string_append(meta, e);
        }
        if (p->template_name) {
                g_autofree char *e = g_markup_printf_escaped("      <vmfed:template>%s</vmfed:template>\n",
                                                             p->template_name);
                g_string_append(meta, e);
        }
        if (p->disk_override) {
                g_autofree char *e = g_markup_printf_escaped("      <vmfed:overlay>%s</vmfed:overlay>\n",
                                                             p->disk_override);
                g_string_append(meta, e);
        }
        for (size_t i = 0; s->devices[i]; i++) {
                g_autofree char *e =
                        p->fake_passthrough
                                ? g_markup_printf_escaped("      <vmfed:device fake='yes'>%s</vmfed:device>\n",
                                                          s->devices[i])
                                : g_markup_printf_escaped("      <vmfed:device>%s</vmfed:device>\n", s->devices[i]);
                g_string_append(meta, e);
        }
        g_string_append(meta, "    </" DOMAIN_XML_NS_PREFIX ":vm>\n");

        g_string_append_printf(x, "<domain type='%s'>\n  <name>%s</name>\n", type, name);
        if (p->uuid) {
                g_autofree char *u = g_markup_escape_text(p->uuid, -1);
                g_string_append_printf(x, "  <uuid>%s</uuid>\n", u);
        }
        g_string_append_printf(x, "  <metadata>\n%s  </metadata>\n%s</domain>\n", meta->str, body->str);
        *ret = g_string_free(steal_pointer(&x), false);
        return 0;
}

/* ---- metadata ---------------------------------------------------------- */

typedef struct MetaParse {
        DomainMetadata *m;
        const char *element;
        bool ours;
} MetaParse;

static const char *local_name(const char *n) {
        const char *c = strrchr(n, ':');
        return c ? c + 1 : n;
}

static void meta_start(GMarkupParseContext *ctx, const char *element, const char **attr_names,
                       const char **attr_values, gpointer userdata, GError **error) {
        MetaParse *mp = userdata;
        const char *l = local_name(element);

        if (strcmp(l, "vm") == 0)
                for (size_t i = 0; attr_names[i]; i++)
                        if ((strcmp(attr_names[i], "xmlns") == 0 || g_str_has_prefix(attr_names[i], "xmlns:")) &&
                            strcmp(attr_values[i], DOMAIN_XML_NS) == 0)
                                mp->ours = true;
        mp->element = l;
}

static void meta_end(GMarkupParseContext *ctx, const char *element, gpointer userdata, GError **error) {
        ((MetaParse *) userdata)->element = NULL;
}

static void meta_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer userdata, GError **error) {
        MetaParse *mp = userdata;
        g_autofree char *t = g_strndup(text, len);
        char **dst = NULL;

        if (!mp->element)
                return;
        g_strstrip(t);
        if (strcmp(mp->element, "name") == 0)
                dst = &mp->m->name;
        else if (strcmp(mp->element, "role") == 0)
                dst = &mp->m->role;
        else if (strcmp(mp->element, "template") == 0)
                dst = &mp->m->template_name;
        else if (strcmp(mp->element, "overlay") == 0)
                dst = &mp->m->overlay;
        else if (strcmp(mp->element, "config-hash") == 0)
                dst = &mp->m->config_hash;
        else if (strcmp(mp->element, "generation") == 0)
                mp->m->generation = g_ascii_strtoull(t, NULL, 10);
        if (dst) {
                g_free(*dst);
                *dst = steal_pointer(&t);
        }
}

int domain_metadata_parse(const char *xml, DomainMetadata *ret) {
        static const GMarkupParser parser = {
                .start_element = meta_start,
                .end_element = meta_end,
                .text = meta_text,
        };
        MetaParse mp = { .m = ret };
        g_autoptr(GMarkupParseContext) ctx = NULL;

        *ret = (DomainMetadata) {};
        ctx = g_markup_parse_context_new(&parser, 0, &mp, NULL);
        if (!g_markup_parse_context_parse(ctx, xml, -1, NULL) || !g_markup_parse_context_end_parse(ctx, NULL) ||
            !ret->name) {
                domain_metadata_done(ret);
                return -EINVAL;
        }
        return 0;
}

void domain_metadata_done(DomainMetadata *m) {
        g_clear_pointer(&m->name, g_free);
        g_clear_pointer(&m->role, g_free);
        g_clear_pointer(&m->template_name, g_free);
        g_clear_pointer(&m->overlay, g_free);
        g_clear_pointer(&m->config_hash, g_free);
}
