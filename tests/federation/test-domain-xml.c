/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Domain XML generated from VM specifications: content checks, metadata
 * round trip, and validation against libvirt's schema with virt-xml-validate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/stream-frame.h"
#include "fed-test-util.h"
#include "federation/domain-xml.h"

static char *tmp, *kernel, *disk;


static void validate(const char *xml) {
        g_autofree char *path = g_build_filename(tmp, "domain.xml", NULL);
        g_autofree char *cmd = g_strdup_printf("virt-xml-validate '%s' domain >&2", path);
        int status;

        write_text(path, xml);
        status = system(cmd);
        if (status != 0)
                g_printerr("%s", xml);
        g_assert_cmpint(status, ==, 0);
}

/* The config-hash of a domain XML, newly allocated. */
static char *xml_hash(const char *xml) {
        const char *b = strstr(xml, "<vmfed:config-hash>"), *e;

        g_assert_nonnull(b);
        b += strlen("<vmfed:config-hash>");
        e = strchr(b, '<');
        g_assert_nonnull(e);
        return g_strndup(b, e - b);
}

static void test_persona(void) {
        g_autofree char *text = g_strdup_printf("[VM]\nRole=persona\nMemory=2G\nVCPUs=2\nDisk=%s\nAccel=auto\n"
                                                "[Passthrough]\nDevices=0000:01:00.0;0000:01:00.1\n",
                                                disk);
        g_autoptr(VmSpec) s = test_vm_spec("gondor", text);
        g_autofree char *xml = NULL, *fake = NULL;
        DomainXmlParams p = {
                .domain_name = "vmfed-gondor",
                .generation = 7,
                .bridge = "vmfedbr0",
                .isolated_port = true,
                .channel_path = "/var/lib/vmfed/channels/gondor.sock",
                .channel_mode = DOMAIN_CHANNEL_BIND,
                .console_path = "/var/lib/vmfed/consoles/gondor.log",
                .kvm_available = true,
        };

        g_assert_cmpint(domain_xml_build(s, &p, &xml), ==, 0);
        g_assert_nonnull(strstr(xml, "<domain type='kvm'>"));
        g_assert_nonnull(strstr(xml, "<name>vmfed-gondor</name>"));
        g_assert_nonnull(strstr(xml, "<memory unit='KiB'>2097152</memory>"));
        g_assert_nonnull(strstr(xml, "<vcpu placement='static'>2</vcpu>"));
        g_assert_nonnull(strstr(xml, "<driver name='qemu' type='qcow2'"));
        g_assert_nonnull(strstr(xml, "<source bridge='vmfedbr0'/>"));
        g_assert_nonnull(strstr(xml, "<port isolated='yes'/>"));
        g_assert_nonnull(strstr(xml, "<source mode='bind' path='/var/lib/vmfed/channels/gondor.sock'/>"));
        g_assert_nonnull(strstr(xml, "<target type='virtio' name='org.vmfed.agent.0'/>"));
        g_assert_nonnull(strstr(xml, "<hostdev mode='subsystem' type='pci' managed='yes'>"));
        g_assert_nonnull(strstr(xml, "<address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/>"));
        g_assert_nonnull(strstr(xml, "<vmfed:role>persona</vmfed:role>"));
        g_assert_nonnull(strstr(xml, "<vmfed:generation>7</vmfed:generation>"));
        g_assert_nonnull(strstr(xml, "<acpi/>"));
        validate(xml);

        /* Forced TCG, faked passthrough, QEMU connecting to the broker. */
        p.force_tcg = true;
        p.fake_passthrough = true;
        p.channel_mode = DOMAIN_CHANNEL_CONNECT;
        p.uuid = "3e3fce45-4f53-4fa7-bb32-11f34168b82b";
        g_assert_cmpint(domain_xml_build(s, &p, &fake), ==, 0);
        g_assert_nonnull(strstr(fake, "<domain type='qemu'>"));
        g_assert_null(strstr(fake, "<hostdev"));
        g_assert_nonnull(strstr(fake, "<vmfed:device fake='yes'>0000:01:00.0</vmfed:device>"));
        g_assert_nonnull(strstr(fake, "<source mode='connect'"));
        g_assert_nonnull(strstr(fake, "<reconnect enabled='yes' timeout='1'/>"));
        g_assert_nonnull(strstr(fake, "<uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>"));
        g_assert_null(strstr(fake, "host-passthrough"));
        validate(fake);
}

static void test_direct_boot_and_escaping(void) {
        g_autofree char *text = g_strdup_printf("[VM]\nRole=service\nMemory=256M\nKernel=%s\nInitrd=%s\n"
                                                "Cmdline=console=ttyS0 vmfed.name=<net> & 'x'\nAccel=kvm\n",
                                                kernel, kernel);
        g_autoptr(VmSpec) s = test_vm_spec("netvm", text);
        g_autofree char *xml = NULL;
        DomainXmlParams p = { .domain_name = "vmfed-netvm", .bridge = "vmfedbr0" };

        g_assert_cmpint(domain_xml_build(s, &p, &xml), ==, 0);
        g_assert_nonnull(strstr(xml, "<domain type='kvm'>"));
        g_assert_nonnull(strstr(xml, "<cmdline>console=ttyS0 vmfed.name=&lt;net&gt; &amp; &apos;x&apos;</cmdline>"));
        g_assert_null(strstr(xml, "<port isolated")); /* the netvm itself is not isolated */
        g_assert_null(strstr(xml, "<channel"));
        g_assert_null(strstr(xml, "<boot dev"));
        validate(xml);

        /* Not ours: refused. */
        p.domain_name = "netvm";
        g_clear_pointer(&xml, g_free);
        g_assert_cmpint(domain_xml_build(s, &p, &xml), ==, -EINVAL);
}

static void test_disposable_and_metadata(void) {
        g_autofree char *text = g_strdup_printf("[VM]\nRole=disposable-template\nDisk=%s\n", disk);
        g_autoptr(VmSpec) s = test_vm_spec("dvm", text);
        g_autofree char *xml = NULL, *xml2 = NULL;
        DomainXmlParams p = {
                .domain_name = "vmfed-disp1234",
                .role = "disposable",
                .template_name = "dvm",
                .disk_override = "/var/lib/vmfed/disposables/disp1234.qcow2",
                .generation = 3,
        };
        DomainMetadata m;
        const char *b, *e;
        g_autofree char *meta = NULL, *hash = NULL;

        g_assert_cmpint(domain_xml_build(s, &p, &xml), ==, 0);
        g_assert_nonnull(strstr(xml, "<source file='/var/lib/vmfed/disposables/disp1234.qcow2'/>"));
        validate(xml);

        b = strstr(xml, "<vmfed:vm");
        e = strstr(xml, "</vmfed:vm>");
        meta = g_strndup(b, e + strlen("</vmfed:vm>") - b);
        g_assert_cmpint(domain_metadata_parse(meta, &m), ==, 0);
        g_assert_cmpstr(m.name, ==, "dvm");
        g_assert_cmpstr(m.role, ==, "disposable");
        g_assert_cmpstr(m.template_name, ==, "dvm");
        g_assert_cmpstr(m.overlay, ==, "/var/lib/vmfed/disposables/disp1234.qcow2");
        g_assert_cmpuint(m.generation, ==, 3);
        g_assert_cmpuint(strlen(m.config_hash), ==, 64);
        hash = g_strdup(m.config_hash);
        domain_metadata_done(&m);
        /* libvirt hands the element back without its prefix. */
        g_assert_cmpint(domain_metadata_parse("<vm><name>x</name><role>app</role></vm>", &m), ==, 0);
        g_assert_cmpstr(m.name, ==, "x");
        domain_metadata_done(&m);
        g_assert_cmpint(domain_metadata_parse("<other/>", &m), ==, -EINVAL);

        /* The hash changes with the configuration, not with the generation. */
        p.generation = 4;
        g_assert_cmpint(domain_xml_build(s, &p, &xml2), ==, 0);
        g_assert_nonnull(strstr(xml2, hash));
        g_clear_pointer(&xml2, g_free);
        s->memory = 2ULL << 30;
        g_assert_cmpint(domain_xml_build(s, &p, &xml2), ==, 0);
        g_assert_null(strstr(xml2, hash));
        /* Without an agent channel, Streams= adds no port: the XML and its hash stay. */
        g_clear_pointer(&xml, g_free);
        s->streams = 3;
        g_assert_cmpint(domain_xml_build(s, &p, &xml), ==, 0);
        g_assert_cmpstr(xml, ==, xml2);
        /* With one, the ports are part of the configuration: another count, another hash. */
        p.channel_path = "/var/lib/vmfed/channels/disp1234.sock";
        g_clear_pointer(&xml, g_free);
        g_clear_pointer(&xml2, g_free);
        g_assert_cmpint(domain_xml_build(s, &p, &xml), ==, 0);
        s->streams = 4;
        g_assert_cmpint(domain_xml_build(s, &p, &xml2), ==, 0);
        {
                g_autofree char *h3 = xml_hash(xml), *h4 = xml_hash(xml2);
                g_assert_cmpstr(h3, !=, h4);
        }
}

/* Count the occurrences of needle in s. */
static unsigned count(const char *s, const char *needle) {
        unsigned n = 0;
        for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

static void test_stream_ports(void) {
        g_autofree char *text = g_strdup_printf("[VM]\nRole=app\nDisk=%s\n", disk);
        g_autoptr(VmSpec) s = test_vm_spec("gondor", text);
        g_autofree char *xml = NULL, *none = NULL, *max = NULL, *nochannel = NULL, *path = NULL;
        DomainXmlParams p = {
                .domain_name = "vmfed-gondor",
                .bridge = "vmfedbr0",
                .isolated_port = true,
                .channel_path = "/var/lib/vmfed/channels/gondor.sock",
        };

        /* The socket beside the agent channel's; a path without ".sock" gets the suffix appended. */
        path = domain_xml_stream_channel_path(p.channel_path, 7);
        g_assert_cmpstr(path, ==, "/var/lib/vmfed/channels/gondor.stream.7.sock");
        g_clear_pointer(&path, g_free);
        path = domain_xml_stream_channel_path("/run/x", 31);
        g_assert_cmpstr(path, ==, "/run/x.stream.31.sock");

        /* The default: ports 0 … 7, QEMU listening on STATE/channels/NAME.stream.I.sock. */
        g_assert_cmpuint(s->streams, ==, STREAM_PORTS_DEFAULT);
        g_assert_cmpint(domain_xml_build(s, &p, &xml), ==, 0);
        for (unsigned i = 0; i < 8; i++) {
                g_autofree char *c = g_strdup_printf(
                        "    <channel type='unix'>\n"
                        "      <source mode='bind' path='/var/lib/vmfed/channels/gondor.stream.%u.sock'/>\n"
                        "      <target type='virtio' name='org.vmfed.stream.%u'/>\n"
                        "    </channel>\n",
                        i, i);
                g_assert_nonnull(strstr(xml, c));
        }
        g_assert_cmpuint(count(xml, "name='" STREAM_PORT_NAME_PREFIX), ==, 8);
        g_assert_null(strstr(xml, "stream.8"));
        g_assert_cmpuint(count(xml, "<channel type='unix'>"), ==, 9); /* and the agent's */
        g_assert_nonnull(strstr(xml, "<source mode='connect' path='/var/lib/vmfed/channels/gondor.sock'>"));
        g_assert_null(strstr(xml, "@netvm")); /* a client, not a netvm */
        validate(xml);

        /* Streams=0: the agent channel only. */
        s->streams = 0;
        g_assert_cmpint(domain_xml_build(s, &p, &none), ==, 0);
        g_assert_null(strstr(none, STREAM_PORT_NAME_PREFIX));
        g_assert_cmpuint(count(none, "<channel type='unix'>"), ==, 1);
        validate(none);

        /* The most, on a netvm: agent, netvm and 28 stream ports: the 30 ports of one virtio-serial controller. */
        s->streams = STREAM_PORTS_MAX;
        p.isolated_port = false;
        g_assert_cmpint(domain_xml_build(s, &p, &max), ==, 0);
        g_assert_cmpuint(count(max, "name='" STREAM_PORT_NAME_PREFIX), ==, 28);
        g_assert_nonnull(strstr(max, "path='/var/lib/vmfed/channels/gondor.stream.27.sock'/>"));
        g_assert_nonnull(strstr(max, "<target type='virtio' name='org.vmfed.stream.27'/>"));
        g_assert_nonnull(strstr(max, "path='/var/lib/vmfed/channels/gondor@netvm.sock'/>"));
        g_assert_cmpuint(count(max, "<channel type='unix'>"), ==, 30);
        validate(max);

        /* No agent channel: no stream ports either. */
        p.channel_path = NULL;
        g_assert_cmpint(domain_xml_build(s, &p, &nochannel), ==, 0);
        g_assert_null(strstr(nochannel, "<channel"));
}

int main(int argc, char *argv[]) {
        g_autofree char *cmd = NULL;
        int r;

        g_test_init(&argc, &argv, NULL);
        tmp = g_dir_make_tmp("vmfed-xml-XXXXXX", NULL);
        kernel = g_build_filename(tmp, "vmlinuz", NULL);
        disk = g_build_filename(tmp, "disk.qcow2", NULL);
        write_text(kernel, "kernel\n");
        cmd = g_strdup_printf("qemu-img create -q -f qcow2 '%s' 16M", disk);
        g_assert_cmpint(system(cmd), ==, 0);
        g_test_add_func("/domain-xml/persona", test_persona);
        g_test_add_func("/domain-xml/direct-boot", test_direct_boot_and_escaping);
        g_test_add_func("/domain-xml/disposable-metadata", test_disposable_and_metadata);
        g_test_add_func("/domain-xml/stream-ports", test_stream_ports);
        r = g_test_run();
        g_free(cmd);
        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        return system(cmd) == 0 ? r : 1;
}
