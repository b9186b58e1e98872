/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Domain XML generated from VM specifications: content checks, metadata
 * round trip, and validation against libvirt's schema with virt-xml-validate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
        r = g_test_run();
        g_free(cmd);
        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        return system(cmd) == 0 ? r : 1;
}
