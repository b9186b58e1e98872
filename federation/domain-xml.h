/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Domain XML: the libvirt domain generated from a VM's specification.
 *
 *   - named "<prefix><vm>" (prefix "vmfed-" or a longer one beginning with
 *     it), so vmfed only ever touches its own domains;
 *   - <metadata> in the vmfed namespace (DOMAIN_XML_NS): VM name, role,
 *     config generation, config hash, and for disposables the template and
 *     overlay path, so a restarted broker can adopt what runs;
 *   - the agent channel: <channel type='unix'> with target
 *     virtio/org.vmfed.agent.0 on a unix socket whose mode is a parameter;
 *     beside it (only with an agent channel) a netvm's port and Streams=
 *     stream ports org.vmfed.stream.I (docs/streams.md), both bind mode;
 *   - a NIC on the netvm's bridge (isolated port for clients);
 *   - <hostdev managed='yes'> per passthrough device unless faked;
 *   - type='qemu' (TCG) when Accel=tcg, when forced, or when Accel=auto and
 *     /dev/kvm is not usable; type='kvm' otherwise;
 *   - Firmware=, TPM=, HideHypervisor= as firmware.h builds them.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "federation/vmspec.h"

#define DOMAIN_XML_NS "https://vmfed.org/xmlns/domain/1"
#define DOMAIN_XML_NS_PREFIX "vmfed"
#define DOMAIN_XML_AGENT_PORT "org.vmfed.agent.0"
/* A netvm's second port: vmfed-netd speaks org.vmfed.NetVM1 there (the agent keeps its own). */
#define DOMAIN_XML_NETVM_PORT "org.vmfed.netvm.0"
#define DOMAIN_XML_MAC_MAX 18 /* "52:54:00:xx:xx:xx" + NUL */
#define DOMAIN_XML_TAP_MAX 12 /* "vmf" + 8 hex + NUL */

typedef enum DomainChannelMode {
        /* The broker listens on the socket, QEMU connects and reconnects every
         * second (broker/channel.h, docs/dbus-api.md "Who listens"): the default. */
        DOMAIN_CHANNEL_CONNECT,
        /* QEMU (libvirt) listens, the other side connects: tests without a broker. */
        DOMAIN_CHANNEL_BIND,
} DomainChannelMode;

typedef struct DomainXmlParams {
        const char *domain_name;   /* required */
        const char *uuid;          /* NULL: libvirt picks one; redefinitions must keep the domain's UUID */
        const char *role;          /* metadata role; NULL: the spec's role ("disposable" for disposables) */
        uint64_t generation;       /* config generation recorded in metadata */
        const char *bridge;        /* NULL: no NIC */
        bool isolated_port;        /* <port isolated='yes'/> (clients of a netvm) */
        const char *mac;           /* NULL: libvirt picks one */
        const char *channel_path;  /* NULL: no agent channel */
        DomainChannelMode channel_mode;
        const char *console_path;  /* NULL: no serial log file */
        const char *disk_override; /* disposables: the overlay replacing Disk= (qcow2) */
        const char *template_name; /* disposables: recorded in metadata */
        bool force_tcg;
        bool fake_passthrough;     /* declare devices in metadata only, no <hostdev> */
        bool kvm_available;        /* for Accel=auto; the caller probes /dev/kvm */
        const char *nvram_path;    /* UEFI: the VM's NVRAM file (required then) */
        const char *ovmf_dir;      /* NULL: FIRMWARE_OVMF_DIR */
} DomainXmlParams;

/*
 * The fixed MAC of a VM's NIC (when DomainXmlParams.mac is NULL):
 * 52:54:00 and three bytes of SHA-256("vmfed-mac:" NAME).  The broker uses
 * the same for addressing and the host's anti-spoofing.
 */
void domain_xml_vm_mac(const char *vm_name, char ret[static DOMAIN_XML_MAC_MAX]);
/* The host tap of a domain's NIC: "vmf" + 8 hex digits of SHA-256(domain name). */
void domain_xml_tap_name(const char *domain_name, char ret[static DOMAIN_XML_TAP_MAX]);
/*
 * The netvm port's socket beside the agent channel: ".../NAME.sock" →
 * ".../NAME@netvm.sock" ('@' is never in a VM name).  A netvm is a VM whose
 * NIC is on a bridge and not isolated; it gets this second channel (target
 * DOMAIN_XML_NETVM_PORT) whenever it has an agent channel, always in bind
 * mode: QEMU listens, the broker connects while the netvm runs.  Tests: with
 * $VMFED_TEST_UPLINK_BRIDGE set, a netvm also gets a second NIC (its
 * uplink, eth1 in the guest) on that host bridge; with
 * $VMFED_TEST_CONSOLE_SOCKET=1 the serial console (still logged to
 * console_path) is also a listening socket, console_path with .log
 * replaced by .sock, for tests that type into a guest's debug shell.
 */
char *domain_xml_netvm_channel_path(const char *channel_path);

/*
 * Stream port i's socket beside the agent channel: ".../NAME.sock" →
 * ".../NAME.stream.I.sock" (so no VM may be named NAME.stream.I:
 * vm_spec_name_is_valid()).  A VM with an agent channel gets Streams= of
 * them, ports 0 … Streams-1, target STREAM_PORT_NAME_PREFIX "I"
 * (common/stream-frame.h), always in bind mode: QEMU listens, the broker
 * connects to a port the first time a stream uses it.  As for the netvm's
 * port, nothing of vmfed creates or removes these sockets: libvirt unlinks
 * a bind socket's path before it binds it (a stale socket of an earlier run
 * is replaced) and again when the domain stops.
 */
char *domain_xml_stream_channel_path(const char *channel_path, unsigned i);

/*
 * The UUID vmfed gives a domain when it first defines it: SHA-256("vmfed-uuid:"
 * DOMAIN-NAME) as an RFC 9562 version 8 UUID.  Stable, so what libvirt keys
 * by UUID (a TPM's state) follows the VM through RemoveVM and AddVM; a domain
 * libvirt already has keeps its own.
 */
#define DOMAIN_XML_UUID_MAX 37
void domain_xml_stable_uuid(const char *domain_name, char ret[static DOMAIN_XML_UUID_MAX]);

/* "qemu" or "kvm" for this spec and parameters. */
const char *domain_xml_type(const VmSpec *s, const DomainXmlParams *p);

/* Build the domain XML.  Returns 0 and a newly allocated string, or -EINVAL. */
int domain_xml_build(const VmSpec *s, const DomainXmlParams *p, char **ret);

/* Disk image format of a file: "qcow2" when it starts with QCOW magic, else "raw". */
const char *disk_image_format(const char *path);

/*
 * The vmfed metadata of a domain (from virDomainGetMetadata's element
 * text): fills what it finds, returns 0, or -EINVAL if it is not ours.
 */
typedef struct DomainMetadata {
        char *name;
        char *role;
        char *template_name;
        char *overlay;
        char *config_hash;
        uint64_t generation;
} DomainMetadata;

int domain_metadata_parse(const char *xml, DomainMetadata *ret);
void domain_metadata_done(DomainMetadata *m);
