/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl ask: questions the policy left to a person
 * (org.vmfed.Federation1.Ask).
 *
 *   vmfedctl ask [list]              pending questions
 *   vmfedctl ask answer ID [TARGET]  allow, to TARGET (default: the suggested one)
 *   vmfedctl ask deny ID
 *   vmfedctl ask --watch             answer them at the terminal as they come
 *
 * --watch reads one line per question from stdin: a target, an empty line
 * for the suggested target, or "n" to deny; it ends at end of input.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "common/macro.h"
#include "ctl/ctl.h"

#define CTL_ASK_IFACE "org.vmfed.Federation1.Ask"
#define WATCH_MAX 64

typedef struct Question {
        uint64_t id;
        char *source, *service, *default_target;
        char **candidates;
} Question;

static void question_clear(Question *q) {
        free(q->source);
        free(q->service);
        free(q->default_target);
        if (q->candidates)
                for (char **c = q->candidates; *c; c++)
                        free(*c);
        free(q->candidates);
        *q = (Question) {};
}

static int question_read(sd_bus_message *m, Question *q) {
        const char *source, *service, *def;
        char **cands = NULL;
        int r = sd_bus_message_read(m, "tss", &q->id, &source, &service);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &cands);
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &def);
        if (r < 0)
                return r;
        q->source = strdup(source);
        q->service = strdup(service);
        q->default_target = strdup(def);
        q->candidates = cands;
        return 0;
}

static void question_print(FILE *f, const Question *q, bool json) {
        if (json) {
                fprintf(f, "{\"id\":%" PRIu64 ",\"source\":", q->id);
                ctl_json_string(f, q->source);
                fprintf(f, ",\"service\":");
                ctl_json_string(f, q->service);
                fprintf(f, ",\"candidates\":[");
                for (size_t i = 0; q->candidates && q->candidates[i]; i++) {
                        if (i)
                                fputc(',', f);
                        ctl_json_string(f, q->candidates[i]);
                }
                fprintf(f, "],\"default_target\":");
                ctl_json_string(f, q->default_target);
                fprintf(f, "}");
                return;
        }
        fprintf(f, "question %" PRIu64 ": %s asks for %s; targets:", q->id, q->source, q->service);
        for (size_t i = 0; q->candidates && q->candidates[i]; i++)
                fprintf(f, " %s", q->candidates[i]);
        if (*q->default_target)
                fprintf(f, " (default %s)", q->default_target);
        fputc('\n', f);
}

/* The next question of a ListAsks reply (entered with enter_container 'a'): 1, 0 at the end, or -errno. */
static int question_read_next(sd_bus_message *reply, Question *q) {
        int r = sd_bus_message_enter_container(reply, 'r', "tssass");
        if (r <= 0)
                return r;
        r = question_read(reply, q);
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                question_clear(q);
                return r;
        }
        return 1;
}

static int ask_list(sd_bus *bus, bool json) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Question q = {};
        int r, n = 0;

        r = ctl_bus_call(bus, CTL_ASK_IFACE, "ListAsks", "cannot list questions", &reply, NULL);
        if (r < 0)
                return CTL_EXIT_FAILURE;
        r = sd_bus_message_enter_container(reply, 'a', "(tssass)");
        if (json)
                printf("[");
        while (r >= 0 && (r = question_read_next(reply, &q)) > 0) {
                if (json && n)
                        printf(",");
                question_print(stdout, &q, json);
                question_clear(&q);
                n++;
        }
        if (json)
                printf("]\n");
        else if (n == 0)
                printf("no questions pending\n");
        return r < 0 ? ctl_bus_error("bad reply", NULL, r) : CTL_EXIT_OK;
}

static int ask_answer(sd_bus *bus, uint64_t id, const char *target, bool quiet) {
        int r;

        if (target)
                r = ctl_bus_call(bus, CTL_ASK_IFACE, "AnswerAsk", "cannot answer", NULL, "ts", id, target);
        else
                r = ctl_bus_call(bus, CTL_ASK_IFACE, "DenyAsk", "cannot deny", NULL, "t", id);
        if (r < 0)
                return CTL_EXIT_FAILURE;
        if (!quiet)
                printf("question %" PRIu64 ": %s%s\n", id, target ? "allowed" : "denied",
                       target && *target ? "" : "");
        return CTL_EXIT_OK;
}

/* ---- --watch ---------------------------------------------------------- */

typedef struct Watch {
        Question queue[WATCH_MAX];
        size_t n;
        bool prompted; /* queue[0] is on the screen */
} Watch;

static void watch_drop(Watch *w, uint64_t id, const char *outcome) {
        for (size_t i = 0; i < w->n; i++) {
                if (w->queue[i].id != id)
                        continue;
                if (outcome)
                        printf("question %" PRIu64 ": %s\n", id, outcome);
                question_clear(&w->queue[i]);
                memmove(&w->queue[i], &w->queue[i + 1], (w->n - i - 1) * sizeof w->queue[0]);
                w->n--;
                if (i == 0)
                        w->prompted = false;
                return;
        }
}

static void watch_add(Watch *w, Question *q) {
        for (size_t i = 0; i < w->n; i++)
                if (w->queue[i].id == q->id) {
                        question_clear(q);
                        return;
                }
        if (w->n == WATCH_MAX) {
                question_clear(q);
                return;
        }
        w->queue[w->n++] = *q;
        *q = (Question) {};
}

static int on_requested(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Question q = {};
        if (question_read(m, &q) >= 0)
                watch_add(userdata, &q);
        return 0;
}

static int on_finished(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *outcome, *target;
        uint64_t id;
        if (sd_bus_message_read(m, "tss", &id, &outcome, &target) >= 0)
                watch_drop(userdata, id, outcome);
        return 0;
}

static int ask_watch(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Question q = {};
        Watch w = {};
        char line[512];
        size_t len = 0;
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        r = sd_bus_match_signal(bus, NULL, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_ASK_IFACE, "AskRequested", on_requested, &w);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_ASK_IFACE, "AskFinished", on_finished,
                                        &w);
        if (r < 0)
                return ctl_bus_error("cannot subscribe", NULL, r);
        /* What is pending already (after subscribing: nothing falls in between). */
        if (ctl_bus_call(bus, CTL_ASK_IFACE, "ListAsks", "cannot list questions", &reply, NULL) < 0)
                return CTL_EXIT_FAILURE;
        r = sd_bus_message_enter_container(reply, 'a', "(tssass)");
        while (r >= 0 && (r = question_read_next(reply, &q)) > 0)
                watch_add(&w, &q);
        printf("watching for questions (answer: a target, empty for the default, n to deny)\n");

        for (;;) {
                while ((r = sd_bus_process(bus, NULL)) > 0)
                        ;
                if (r < 0)
                        return ctl_bus_error("lost the bus", NULL, r);
                if (w.n > 0 && !w.prompted) {
                        question_print(stdout, &w.queue[0], false);
                        printf("answer> ");
                        fflush(stdout);
                        w.prompted = true;
                }
                struct pollfd p[2] = {
                        { .fd = sd_bus_get_fd(bus), .events = (short) sd_bus_get_events(bus) },
                        { .fd = STDIN_FILENO, .events = POLLIN },
                };
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        return ctl_bus_error("poll", NULL, -errno);
                if (!(p[1].revents & (POLLIN | POLLHUP)))
                        continue;
                ssize_t k = read(STDIN_FILENO, line + len, sizeof line - 1 - len);
                if (k <= 0)
                        return CTL_EXIT_OK;
                len += (size_t) k;
                char *nl;
                while ((nl = memchr(line, '\n', len))) {
                        *nl = 0;
                        char *answer = line;
                        while (*answer == ' ')
                                answer++;
                        if (w.n > 0 && w.prompted) {
                                uint64_t id = w.queue[0].id;
                                if (strcmp(answer, "n") == 0 || strcmp(answer, "no") == 0 || strcmp(answer, "deny") == 0)
                                        (void) ask_answer(bus, id, NULL, false);
                                else
                                        (void) ask_answer(bus, id, answer, false);
                                watch_drop(&w, id, NULL);
                        }
                        size_t used = (size_t) (nl - line) + 1;
                        memmove(line, nl + 1, len - used);
                        len -= used;
                }
                if (len == sizeof line - 1)
                        len = 0; /* an absurd line: drop it */
        }
}

int ctl_ask(int argc, char **argv) {
        static const char usage[] =
                "ask [--address ADDR] [--json] [list | answer ID [TARGET] | deny ID | --watch]";
        static const struct option options[] = {
                { "address", required_argument, NULL, 'A' },
                { "json", no_argument, NULL, 'j' },
                { "watch", no_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *address = NULL;
        bool json = false, watch = false;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'A':
                        address = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'w':
                        watch = true;
                        break;
                case 'h':
                        printf("Usage: vmfedctl %s\n\nQuestions the policy (action ask) left to a person.\n"
                               "--watch answers them as they come: a target, an empty line for the default,\n"
                               "n to deny, one line each.\n",
                               usage);
                        return CTL_EXIT_OK;
                default:
                        fprintf(stderr, "Usage: vmfedctl %s\n", usage);
                        return CTL_EXIT_USAGE;
                }
        char **args = argv + optind;
        int n = argc - optind;
        const char *verb = n > 0 ? args[0] : "list";
        if (ctl_bus_open(address, &bus) < 0)
                return CTL_EXIT_FAILURE;
        if (watch)
                return ask_watch(bus);
        if (strcmp(verb, "list") == 0)
                return ask_list(bus, json);
        if ((strcmp(verb, "answer") == 0 && (n == 2 || n == 3)) || (strcmp(verb, "deny") == 0 && n == 2)) {
                char *end;
                uint64_t id = strtoull(args[1], &end, 10);
                if (*end || end == args[1])
                        return fprintf(stderr, "vmfedctl: ask: bad question id '%s'\n", args[1]), CTL_EXIT_USAGE;
                return ask_answer(bus, id, strcmp(verb, "deny") == 0 ? NULL : n == 3 ? args[2] : "", false);
        }
        fprintf(stderr, "Usage: vmfedctl %s\n", usage);
        return CTL_EXIT_USAGE;
}
