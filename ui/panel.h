/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vmfed-panel: one GTK 4 application for a person's controls of the
 * federation (docs/ui.md).  It talks to vmfedd over GDBus (the GLib main
 * loop GTK runs anyway), on the system bus or --address.
 */
#include <gtk/gtk.h>

#define BROKER_NAME "org.vmfed.Federation1"
#define BROKER_PATH "/org/vmfed/Federation1"
#define MANAGER_IFACE "org.vmfed.Federation1.Manager"
#define VM_IFACE "org.vmfed.Federation1.VM"
#define ASK_IFACE "org.vmfed.Federation1.Ask"
#define CLIPBOARD_IFACE "org.vmfed.Federation1.Clipboard"

/* Guest-supplied text is cut to this many characters in labels. */
#define PANEL_TEXT_MAX 200

typedef struct FedView FedView;
typedef struct AskPrompts AskPrompts;
typedef struct Notifier Notifier;
typedef struct GuestView GuestView;

typedef struct Panel {
        GtkApplication *app;
        GDBusConnection *bus;         /* the broker's bus */
        GDBusObjectManager *objects;  /* BROKER_PATH's ObjectManager */
        GDBusProxy *manager;          /* Manager interface (ActivePersona) */
        unsigned ask_timeout;         /* CONFIG/services.conf [Ask] Timeout=, seconds */
        FedView *view;
        AskPrompts *asks;
        Notifier *notifier;
        GuestView *guest;             /* in a persona (--guest-socket) instead of view and asks */
} Panel;

/*
 * What the panel shows, one line per change, as debug messages of domain
 * "vmfed-panel" (G_MESSAGES_DEBUG=vmfed-panel): the tests read them to know
 * what a person sees, beside the screenshots.
 */
#define panel_trace(...) g_log("vmfed-panel", G_LOG_LEVEL_DEBUG, __VA_ARGS__)

/* The role of VM name ("" when unknown), for its colour. */
const char *panel_vm_role(Panel *p, const char *name);
/* The CSS colour of a role (label colour: vms.d/ has no Label= key yet). */
const char *panel_role_colour(const char *role);
