/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small sd-bus client for the federation tests and benchmark.
 *
 *   switch-client ADDRESS pair A B
 *       send SwitchPersona(A) and SwitchPersona(B) back to back on one
 *       connection (both are on the wire before the first is answered) and
 *       print one line per call: "ok" or the D-Bus error name.
 *   switch-client ADDRESS bench A B ROUNDS
 *       alternate SwitchPersona(B)/(A) ROUNDS times and print the wall time
 *       of each call in microseconds, one per line, in order.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>

#define BUS "org.vmfed.Federation1"
#define ROOT "/org/vmfed/Federation1"
#define MANAGER "org.vmfed.Federation1.Manager"

static sd_bus *open_bus(const char *address) {
        sd_bus *bus = NULL;
        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, address) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
            sd_bus_start(bus) < 0) {
                fprintf(stderr, "cannot connect to %s\n", address);
                exit(2);
        }
        return bus;
}

typedef struct Result {
        int done;
        char name[256];
} Result;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        Result *res = userdata;
        const sd_bus_error *err = sd_bus_message_get_error(m);
        snprintf(res->name, sizeof res->name, "%s", err ? err->name : "ok");
        res->done = 1;
        return 0;
}

static int pair(sd_bus *bus, const char *a, const char *b) {
        Result res[2] = {};
        const char *names[2] = { a, b };

        for (int i = 0; i < 2; i++) {
                sd_bus_message *m = NULL;
                if (sd_bus_message_new_method_call(bus, &m, BUS, ROOT, MANAGER, "SwitchPersona") < 0 ||
                    sd_bus_message_append(m, "s", names[i]) < 0 ||
                    sd_bus_call_async(bus, NULL, m, on_reply, &res[i], 120 * 1000000ULL) < 0)
                        return 2;
                sd_bus_message_unref(m);
        }
        if (sd_bus_flush(bus) < 0)
                return 2;
        while (!res[0].done || !res[1].done) {
                int r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return 2;
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        return 2;
        }
        printf("%s\n%s\n", res[0].name, res[1].name);
        return 0;
}

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int bench(sd_bus *bus, const char *a, const char *b, int rounds) {
        uint64_t *t = calloc(rounds, sizeof *t);

        for (int i = 0; i < rounds; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                uint64_t t0 = now_us();
                int r = sd_bus_call_method(bus, BUS, ROOT, MANAGER, "SwitchPersona", &error, NULL, "s",
                                           i % 2 ? a : b);
                t[i] = now_us() - t0;
                if (r < 0) {
                        fprintf(stderr, "SwitchPersona: %s\n", error.message ? error.message : strerror(-r));
                        return 1;
                }
                sd_bus_error_free(&error);
        }
        for (int i = 0; i < rounds; i++)
                printf("%" PRIu64 "\n", t[i]);
        free(t);
        return 0;
}

int main(int argc, char **argv) {
        sd_bus *bus;

        int r;

        if (argc == 5 && strcmp(argv[2], "pair") == 0) {
                bus = open_bus(argv[1]);
                r = pair(bus, argv[3], argv[4]);
                sd_bus_flush_close_unref(bus);
                return r;
        }
        if (argc == 6 && strcmp(argv[2], "bench") == 0) {
                bus = open_bus(argv[1]);
                r = bench(bus, argv[3], argv[4], atoi(argv[5]) > 0 ? atoi(argv[5]) : 1);
                sd_bus_flush_close_unref(bus);
                return r;
        }
        fprintf(stderr, "usage: switch-client ADDRESS pair A B | bench A B ROUNDS\n");
        return 2;
}
