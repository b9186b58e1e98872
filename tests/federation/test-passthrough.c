/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Passthrough safety checks against sysfs fixtures of real layouts (fixtures/make-fixtures.sh). */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "federation/passthrough.h"

static char *fixture(const char *layout) {
        return g_build_filename(g_getenv("VMFED_SOURCE_ROOT"), "tests/federation/fixtures", layout, "sys", NULL);
}

static int check(const char *layout, const char *const *devices, char **reason) {
        g_autofree char *root = fixture(layout);
        return passthrough_check(root, "gondor", (char *const *) devices, reason);
}

static void test_ok(void) {
        const char *gpu[] = { "0000:01:00.0", "0000:01:00.1", NULL };
        const char *usb[] = { "0000:00:14.0", NULL };
        const char *sata[] = { "0000:00:17.0", NULL }; /* reset file, no reset_method */
        const char *nic[] = { "0000:03:00.0", "0000:03:00.1", NULL };
        char *reason = NULL;

        g_assert_cmpint(check("gpu-ok", gpu, &reason), ==, 0);
        g_assert_cmpint(check("gpu-ok", usb, &reason), ==, 0);
        g_assert_cmpint(check("gpu-ok", sata, &reason), ==, 0);
        g_assert_cmpint(check("gpu-ok", nic, &reason), ==, 0);
        g_assert_null(reason);
        /* No devices: nothing to check, even without an IOMMU. */
        g_assert_cmpint(check("no-iommu", (const char *const[]) { NULL }, &reason), ==, 0);
}

static void test_group_split(void) {
        /* The GPU without its audio function: the audio would stay on the host in the same group. */
        const char *gpu[] = { "0000:01:00.0", NULL };
        const char *nic[] = { "0000:03:00.1", NULL };
        g_autofree char *r1 = NULL, *r2 = NULL;

        g_assert_cmpint(check("gpu-ok", gpu, &r1), ==, -EBUSY);
        g_assert_nonnull(strstr(r1, "shares IOMMU group 1 with 0000:01:00.1"));
        g_assert_cmpint(check("gpu-ok", nic, &r2), ==, -EBUSY);
        g_assert_nonnull(strstr(r2, "0000:03:00.0"));
}

static void test_shared_group(void) {
        const char *usb[] = { "0000:00:14.0", NULL };
        g_autofree char *reason = NULL;

        g_assert_cmpint(check("shared-group", usb, &reason), ==, -EBUSY);
        g_assert_nonnull(strstr(reason, "0000:00:14.2"));
        g_assert_nonnull(strstr(reason, "neither given to gondor nor a PCI bridge"));
}

static void test_no_iommu(void) {
        const char *gpu[] = { "0000:01:00.0", "0000:01:00.1", NULL };
        g_autofree char *reason = NULL;

        g_assert_cmpint(check("no-iommu", gpu, &reason), ==, -EPERM);
        g_assert_nonnull(strstr(reason, "IOMMU is off"));
}

static void test_no_reset(void) {
        const char *gpu[] = { "0000:01:00.0", "0000:01:00.1", NULL };
        g_autofree char *reason = NULL;

        g_assert_cmpint(check("gpu-no-reset", gpu, &reason), ==, -EOPNOTSUPP);
        g_assert_nonnull(strstr(reason, "0000:01:00.1 has no reset method"));
}

static void test_missing_device(void) {
        const char *gpu[] = { "0000:05:00.0", NULL };
        g_autofree char *reason = NULL;

        g_assert_cmpint(check("gpu-ok", gpu, &reason), ==, -ENODEV);
        g_assert_nonnull(strstr(reason, "0000:05:00.0 does not exist"));
}

static void test_shared_device(void) {
        const char *a[] = { "0000:01:00.0", "0000:00:14.0", NULL };
        const char *b[] = { "0000:03:00.0", "0000:00:14.0", NULL };
        const char *c[] = { "0000:03:00.1", NULL };

        g_assert_cmpstr(passthrough_shared_device((char *const *) a, (char *const *) b), ==, "0000:00:14.0");
        g_assert_null(passthrough_shared_device((char *const *) a, (char *const *) c));
        g_assert_null(passthrough_shared_device(NULL, (char *const *) c));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/passthrough/ok", test_ok);
        g_test_add_func("/passthrough/group-split", test_group_split);
        g_test_add_func("/passthrough/shared-group", test_shared_group);
        g_test_add_func("/passthrough/no-iommu", test_no_iommu);
        g_test_add_func("/passthrough/no-reset", test_no_reset);
        g_test_add_func("/passthrough/missing-device", test_missing_device);
        g_test_add_func("/passthrough/shared-device", test_shared_device);
        return g_test_run();
}
