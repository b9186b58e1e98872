/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest side of many VMs at once, for the load tests (test_load.py):
 * every VM is one peer-to-peer connection on its channel STATE/channels/VM.sock,
 * all of a process' connections on one sd-event loop.
 *
 *   load-client agent STATE_DIR [--hold SRC:N:TOTAL]... VM...
 *       Be the agent of each VM: Hello, then serve org.vmfed.Agent1.OpenURL.
 *       URLs are https://load.test/SRC/SEQ; per source it counts what
 *       arrived, duplicates and malformed ones, and the most requests it held
 *       at once.  --hold: answer SRC's requests only when N are waiting (or
 *       all TOTAL arrived), so N were in flight through the broker at once.
 *       Prints "ready" once every Hello is answered; on SIGTERM prints one
 *       JSON object {"SRC": {"received", "dups", "bad", "max_held"}} and exits.
 *
 *   load-client guests STATE_DIR TARGETS CALLS WINDOW VM...
 *       Each VM calls Guest.OpenURL(https://load.test/VM/SEQ, TARGET) CALLS
 *       times, WINDOW calls in flight (0: no limit, as fast as the
 *       connection takes them); TARGETS is a comma-separated list, VM number i uses
 *       TARGETS[i % n].  Every reply must be the target's name.  Each VM
 *       is also an agent as above (a VM may call another of the same
 *       process).  Prints one JSON object: calls, ok, failed (with the
 *       first error), wrong, p50_us, p99_us, max_in_flight, start_us,
 *       end_us (CLOCK_MONOTONIC), agent (what the agents received).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/macro.h"
#include "tests/lib/bench-echo.h"

#define ROOT "/org/vmfed/Federation1"
#define GUEST "org.vmfed.Federation1.Guest"
#define AGENT1_PATH "/org/vmfed/Agent1"
#define AGENT1_IFACE "org.vmfed.Agent1"
#define URL_PREFIX "https://load.test/"
#define CALL_TIMEOUT_USEC (900ULL * 1000000) /* the test's own timeout ends a hang, not sd-bus */

static sd_event *event;

static sd_bus *connect_channel(const char *state_dir, const char *vm) {
        char path[4200];
        snprintf(path, sizeof path, "%s/channels/%s.sock", state_dir, vm);
        return bench_connect_p2p(path, true, CALL_TIMEOUT_USEC); /* sd-bus's default: fds accepted */
}

static void hello(sd_bus *bus, const char *vm) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name;
        int r = sd_bus_call_method(bus, NULL, ROOT, GUEST, "Hello", &e, &reply, "s", "load-client");
        if (r >= 0)
                r = sd_bus_message_read(reply, "s", &name);
        if (r < 0 || strcmp(name, vm) != 0) {
                fprintf(stderr, "load-client: Hello on %s: %s\n", vm, e.message ? e.message : strerror(-r));
                exit(1);
        }
}

/* ---- agent ------------------------------------------------------------------------------ */

typedef struct Source {
        char *name;
        uint64_t received, dups, bad, max_held;
        uint8_t *seen;              /* bitmap of SEQs */
        uint64_t seen_size;         /* bits */
        uint64_t hold, hold_total;  /* --hold */
        sd_bus_message **held;
        uint64_t n_held;
} Source;

static Source *sources;
static size_t n_sources;

static Source *source_get(const char *name, size_t len) {
        for (size_t i = 0; i < n_sources; i++)
                if (strlen(sources[i].name) == len && memcmp(sources[i].name, name, len) == 0)
                        return &sources[i];
        sources = realloc(sources, (n_sources + 1) * sizeof *sources);
        if (!sources)
                bench_die("realloc", -ENOMEM);
        sources[n_sources] = (Source) { .name = strndup(name, len) };
        return &sources[n_sources++];
}

static void source_mark(Source *s, uint64_t seq) {
        if (seq >= s->seen_size) {
                uint64_t size = s->seen_size ? s->seen_size : 1024;
                while (size <= seq)
                        size *= 2;
                s->seen = realloc(s->seen, size / 8);
                if (!s->seen)
                        bench_die("realloc", -ENOMEM);
                memset(s->seen + s->seen_size / 8, 0, (size - s->seen_size) / 8);
                s->seen_size = size;
        }
        if (s->seen[seq / 8] & (1u << (seq % 8)))
                s->dups++;
        s->seen[seq / 8] |= (uint8_t) (1u << (seq % 8));
}

static void source_release(Source *s) {
        for (uint64_t i = 0; i < s->n_held; i++) {
                int r = sd_bus_reply_method_return(s->held[i], NULL);
                if (r < 0)
                        bench_die("reply", r);
                sd_bus_message_unref(s->held[i]);
        }
        s->n_held = 0;
}

static int agent_open_url(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *url;
        int wait;
        int r = sd_bus_message_read(m, "sb", &url, &wait);
        if (r < 0)
                return r;

        /* https://load.test/SRC/SEQ */
        const char *p = strncmp(url, URL_PREFIX, strlen(URL_PREFIX)) == 0 ? url + strlen(URL_PREFIX) : NULL;
        const char *slash = p ? strchr(p, '/') : NULL;
        char *end = NULL;
        uint64_t seq = slash ? strtoull(slash + 1, &end, 10) : 0;
        if (!slash || slash == p || !end || *end || end == slash + 1 || seq > (1u << 24)) {
                source_get("?", 1)->bad++;
                return sd_bus_error_set(error, "org.vmfed.Load.Bad", "malformed load URL");
        }
        Source *s = source_get(p, (size_t) (slash - p));
        s->received++;
        source_mark(s, seq);
        if (!s->hold)
                return sd_bus_reply_method_return(m, NULL);

        if (!s->held) {
                s->held = calloc(s->hold, sizeof *s->held);
                if (!s->held)
                        bench_die("calloc", -ENOMEM);
        }
        s->held[s->n_held++] = sd_bus_message_ref(m);
        if (s->n_held > s->max_held)
                s->max_held = s->n_held;
        if (s->n_held >= s->hold || s->received >= s->hold_total)
                source_release(s);
        return 1;
}

static const sd_bus_vtable agent1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("OpenURL", "sb", "", agent_open_url, 0),
        SD_BUS_VTABLE_END,
};

static void sources_print(void) {
        printf("{");
        for (size_t i = 0; i < n_sources; i++) {
                Source *src = &sources[i];
                /* A held request that never got its answer was not delivered as far as the caller knows. */
                uint64_t distinct = 0;
                for (uint64_t b = 0; b < src->seen_size; b++)
                        distinct += (src->seen[b / 8] >> (b % 8)) & 1;
                printf("%s\"%s\":{\"received\":%" PRIu64 ",\"distinct\":%" PRIu64 ",\"dups\":%" PRIu64
                       ",\"bad\":%" PRIu64 ",\"max_held\":%" PRIu64 ",\"still_held\":%" PRIu64 "}",
                       i ? "," : "", src->name, src->received, distinct, src->dups, src->bad, src->max_held,
                       src->n_held);
        }
        printf("}");
}

static void sources_free(void) {
        for (size_t i = 0; i < n_sources; i++) {
                source_release(&sources[i]);
                free(sources[i].name);
                free(sources[i].seen);
                free(sources[i].held);
        }
        free(sources);
        sources = NULL;
        n_sources = 0;
}

static int agent_on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        sources_print();
        printf("\n");
        fflush(stdout);
        sources_free();
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int agent_on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        fprintf(stderr, "load-client agent: the broker closed the channel of %s\n", (const char *) userdata);
        exit(1);
}

static int run_agent(const char *state_dir, int argc, char **argv) {
        int r, i;

        for (i = 0; i + 1 < argc && strcmp(argv[i], "--hold") == 0; i += 2) {
                char name[256];
                unsigned long long n, total;
                if (sscanf(argv[i + 1], "%255[^:]:%llu:%llu", name, &n, &total) != 3 || n == 0)
                        bench_die("--hold SRC:N:TOTAL", -EINVAL);
                Source *s = source_get(name, strlen(name));
                s->hold = n;
                s->hold_total = total;
        }
        sd_bus **buses = calloc((size_t) argc, sizeof *buses);
        size_t n_buses = 0;
        if (!buses)
                bench_die("calloc", -ENOMEM);
        for (; i < argc; i++) {
                sd_bus *bus = buses[n_buses++] = connect_channel(state_dir, argv[i]);
                r = sd_bus_add_object_vtable(bus, NULL, AGENT1_PATH, AGENT1_IFACE, agent1_vtable, NULL);
                if (r >= 0)
                        r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local", NULL,
                                                "org.freedesktop.DBus.Local", "Disconnected", agent_on_disconnected,
                                                argv[i]);
                if (r < 0)
                        bench_die("vtable", r);
                hello(bus, argv[i]);
                r = sd_bus_attach_event(bus, event, 0);
                if (r < 0)
                        bench_die("attach", r);
        }
        r = sd_event_add_signal(event, NULL, SIGTERM, agent_on_term, NULL);
        if (r < 0)
                bench_die("signal", r);
        printf("ready\n");
        fflush(stdout);
        r = sd_event_loop(event);
        for (size_t k = 0; k < n_buses; k++)
                sd_bus_flush_close_unref(buses[k]);
        free(buses);
        return r;
}

/* ---- guests ----------------------------------------------------------------------------- */

typedef struct Guest Guest;
typedef struct Call {
        Guest *guest;
        double sent_at;
} Call;

struct Guest {
        char *name;
        const char *target;
        sd_bus *bus;
        uint64_t sent, done, in_flight, max_in_flight;
        Call *calls; /* per SEQ */
};

static uint64_t calls, window, total_done, total_ok, total_failed, total_wrong;
static double *latencies;
static size_t n_latencies;
static char first_error[512];
static size_t n_guests;

static void guest_fill(Guest *g);

static int guest_on_reply(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        Call *c = userdata;
        Guest *g = c->guest;
        const char *vm = NULL;

        g->done++;
        g->in_flight--;
        total_done++;
        latencies[n_latencies++] = bench_now_us() - c->sent_at;
        if (sd_bus_message_is_method_error(m, NULL)) {
                if (!total_failed++)
                        snprintf(first_error, sizeof first_error, "%s: %s: %s", g->name,
                                 sd_bus_message_get_error(m)->name, sd_bus_message_get_error(m)->message);
        } else if (sd_bus_message_read(m, "s", &vm) < 0 || strcmp(vm, g->target) != 0) {
                if (!total_wrong++)
                        snprintf(first_error, sizeof first_error, "%s: reply %s, expected %s", g->name,
                                 vm ? vm : "(unreadable)", g->target);
        } else
                total_ok++;
        if (total_done == calls * n_guests)
                return sd_event_exit(event, 0);
        guest_fill(g);
        return 0;
}

static void guest_send(Guest *g) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        char url[300];
        uint64_t seq = g->sent;
        int r;

        snprintf(url, sizeof url, URL_PREFIX "%s/%" PRIu64, g->name, seq);
        r = sd_bus_message_new_method_call(g->bus, &m, NULL, ROOT, GUEST, "OpenURL");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", url, g->target);
        g->calls[seq] = (Call) { g, bench_now_us() };
        if (r >= 0)
                r = sd_bus_call_async(g->bus, NULL, m, guest_on_reply, &g->calls[seq], CALL_TIMEOUT_USEC);
        if (r < 0)
                bench_die("OpenURL", r);
        g->sent++;
        g->in_flight++;
        if (g->in_flight > g->max_in_flight)
                g->max_in_flight = g->in_flight;
}

/*
 * WINDOW 0: as fast as the connection takes them, no limit on calls in flight;
 * only what the socket does not take at once is queued in sd-bus, which writes before it reads
 * and a client with 100000 calls queued would read no reply for seconds.
 */
#define FLOOD_QUEUED_WRITES 1

static void guest_fill(Guest *g) {
        uint64_t queued = 0;
        while (g->sent < calls && (window == 0 || g->in_flight < window)) {
                if (window == 0 && sd_bus_get_n_queued_write(g->bus, &queued) >= 0 && queued >= FLOOD_QUEUED_WRITES)
                        break;
                guest_send(g);
        }
}

static Guest *guests;

static int guests_fill_all(sd_event_source *s, void *userdata) {
        for (size_t i = 0; i < n_guests; i++)
                guest_fill(&guests[i]);
        return 0;
}

static int guest_on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        Guest *g = userdata;
        fprintf(stderr, "load-client: %s: the broker closed the channel (%" PRIu64 " of %" PRIu64 " done)\n",
                g->name, g->done, calls);
        exit(1);
}

static int run_guests(const char *state_dir, const char *targets_arg, int argc, char **argv) {
        char **targets = NULL;
        size_t n_targets = 0;
        int r;

        _cleanup_free_ char *targets_copy = strdup(targets_arg);
        for (char *t = targets_copy, *save = NULL, *tok; (tok = strtok_r(t, ",", &save)); t = NULL) {
                targets = realloc(targets, (n_targets + 1) * sizeof *targets);
                targets[n_targets++] = tok;
        }
        if (!n_targets)
                bench_die("TARGETS", -EINVAL);
        n_guests = (size_t) argc;
        guests = calloc(n_guests, sizeof *guests);
        latencies = calloc(calls * n_guests + 1, sizeof *latencies);
        if (!guests || !latencies)
                bench_die("calloc", -ENOMEM);

        for (size_t i = 0; i < n_guests; i++) {
                Guest *g = &guests[i];
                g->name = argv[i];
                g->target = targets[i % n_targets];
                g->calls = calloc(calls + 1, sizeof *g->calls);
                if (!g->calls)
                        bench_die("calloc", -ENOMEM);
                g->bus = connect_channel(state_dir, g->name);
                hello(g->bus, g->name);
                /* A VM may be a target too (of another VM in this process, say). */
                r = sd_bus_add_object_vtable(g->bus, NULL, AGENT1_PATH, AGENT1_IFACE, agent1_vtable, NULL);
                if (r >= 0)
                        r = sd_bus_match_signal(g->bus, NULL, "org.freedesktop.DBus.Local", NULL,
                                                "org.freedesktop.DBus.Local", "Disconnected", guest_on_disconnected, g);
                if (r >= 0)
                        r = sd_bus_attach_event(g->bus, event, 0);
                if (r < 0)
                        bench_die("attach", r);
        }
        if (window == 0) {
                r = sd_event_add_post(event, NULL, guests_fill_all, NULL);
                if (r < 0)
                        bench_die("post", r);
        }
        double start = bench_now_us();
        for (size_t i = 0; i < n_guests; i++)
                guest_fill(&guests[i]);
        if (calls > 0) {
                r = sd_event_loop(event);
                if (r < 0)
                        bench_die("loop", r);
        }
        double end = bench_now_us();

        uint64_t max_in_flight = 0;
        for (size_t i = 0; i < n_guests; i++)
                if (guests[i].max_in_flight > max_in_flight)
                        max_in_flight = guests[i].max_in_flight;
        qsort(latencies, n_latencies, sizeof *latencies, bench_cmp_double);
        double p50 = n_latencies ? latencies[n_latencies / 2] : 0;
        double p99 = n_latencies ? latencies[n_latencies * 99 / 100] : 0;
        printf("{\"guests\":%zu,\"calls\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"wrong\":%" PRIu64
               ",\"first_error\":\"",
               n_guests, calls * n_guests, total_ok, total_failed, total_wrong);
        for (const char *c = first_error; *c; c++)
                printf(*c == '"' || *c == '\\' ? "\\%c" : (unsigned char) *c < ' ' ? "?" : "%c", *c);
        printf("\",\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_in_flight\":%" PRIu64 ",\"start_us\":%.0f,\"end_us\":%.0f,"
               "\"agent\":", p50, p99, max_in_flight, start, end);
        sources_print();
        printf("}\n");
        sources_free();
        fflush(stdout);
        for (size_t i = 0; i < n_guests; i++) {
                sd_bus_flush_close_unref(guests[i].bus);
                free(guests[i].calls);
        }
        free(guests);
        free(latencies);
        free(targets);
        return total_ok == calls * n_guests ? 0 : 1;
}

int main(int argc, char **argv) {
        sigset_t mask;
        int r;

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        r = sd_event_default(&event);
        if (r < 0)
                bench_die("sd_event_default", r);

        if (argc >= 4 && strcmp(argv[1], "agent") == 0)
                return run_agent(argv[2], argc - 3, argv + 3) < 0 ? 1 : 0;
        if (argc >= 7 && strcmp(argv[1], "guests") == 0) {
                calls = strtoull(argv[4], NULL, 10);
                window = strtoull(argv[5], NULL, 10);
                return run_guests(argv[2], argv[3], argc - 6, argv + 6);
        }
        fprintf(stderr, "usage: load-client agent STATE_DIR [--hold SRC:N:TOTAL]... VM... | "
                        "load-client guests STATE_DIR TARGETS CALLS WINDOW VM...\n");
        return 2;
}
