/* test_metrics.c - metrics.h: the latency histogram's buckets, the close
 * code and frame slots, the ERROR reason table, and the text exposition
 * (parsed strictly: every sample in a # TYPE'd family, histogram buckets
 * cumulative with +Inf == _count, no series twice, the values where they
 * belong). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "error.h"
#include "metrics.h"
#include "stomp_frame.h"

static struct sg_metrics *metrics_new(void)
{
    struct sg_metrics *m = calloc(1, sizeof *m);
    assert_non_null(m);
    return m;
}

/* ---- histogram */

static void test_latency_buckets(void **state)
{
    (void)state;
    struct sg_metrics *m = metrics_new();
    static const struct {
        uint64_t ns;
        int bucket;
    } v[] = {
        {0, 0},        {100000, 0},     {100001, 1},      {250000, 1},      {250001, 2},
        {999999, 3},   {1000000, 3},    {2500000, 4},     {5000001, 6},     {10000000, 6},
        {99999999, 9}, {500000000, 11}, {1000000000, 12}, {1000000001, 13}, {UINT32_MAX, 13},
    };
    long sum = 0;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        long before[SG_LAT_BOUNDS + 1];
        for (int b = 0; b <= SG_LAT_BOUNDS; b++)
            before[b] = atomic_load(&m->lat_buckets[b]);
        sg_metrics_observe_latency(m, v[i].ns);
        sum += (long)v[i].ns;
        for (int b = 0; b <= SG_LAT_BOUNDS; b++)
            if (atomic_load(&m->lat_buckets[b]) != before[b] + (b == v[i].bucket))
                fail_msg("%llu ns: bucket %d changed, want only %d", (unsigned long long)v[i].ns, b,
                         v[i].bucket);
    }
    assert_int_equal(atomic_load(&m->lat_sum_ns), sum);
    /* the bounds ascend: 0.1 ms .. 1 s */
    assert_int_equal(sg_lat_bounds_ns[0], 100000);
    assert_int_equal(sg_lat_bounds_ns[SG_LAT_BOUNDS - 1], 1000000000);
    for (int b = 1; b < SG_LAT_BOUNDS; b++)
        assert_true(sg_lat_bounds_ns[b] > sg_lat_bounds_ns[b - 1]);
    sg_metrics_observe_latency(NULL, 5); /* no counters: nothing happens */
    free(m);
}

/* ---- slots */

static void test_close_slots(void **state)
{
    (void)state;
    assert_int_equal(sg_metrics_close_slot(1000), 0);
    assert_int_equal(sg_metrics_close_slot(1001), 1);
    assert_int_equal(sg_metrics_close_slot(1015), 15);
    assert_int_equal(sg_metrics_close_slot(0), 5); /* no code: 1005 */
    assert_int_equal(sg_metrics_close_slot(1005), 5);
    for (int c = 1000; c <= 1015; c++)
        assert_int_equal(sg_metrics_close_slot(c), c - 1000);
    int other = SG_CLOSE_SLOTS - 1;
    assert_int_equal(other, 16);
    int odd[] = {-1, 1, 999, 1016, 2999, 3000, 4000, 4999, 65535};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        assert_int_equal(sg_metrics_close_slot(odd[i]), other);
    struct sg_metrics *m = metrics_new();
    sg_metrics_count_close(m, 1, 1000);
    sg_metrics_count_close(m, 1, 1000);
    sg_metrics_count_close(m, 0, 0);
    sg_metrics_count_close(m, 0, 4001);
    assert_int_equal(atomic_load(&m->close_sent[0]), 2);
    assert_int_equal(atomic_load(&m->close_recv[0]), 0);
    assert_int_equal(atomic_load(&m->close_recv[5]), 1);
    assert_int_equal(atomic_load(&m->close_recv[other]), 1);
    sg_metrics_count_close(NULL, 1, 1000);
    free(m);
}

static void test_frame_slots(void **state)
{
    (void)state;
    /* each client command its own slot, in order; server commands "other" */
    int seen[SG_FRAMES_IN_SLOTS] = {0};
    for (int c = SG_STOMP_CONNECT; c <= SG_STOMP_DISCONNECT; c++) {
        int s = sg_metrics_frame_in_slot(c);
        assert_true(s >= 0 && s < SG_FRAMES_IN_SLOTS - 1);
        assert_int_equal(seen[s]++, 0);
    }
    assert_int_equal(sg_metrics_frame_in_slot(SG_STOMP_MESSAGE), SG_FRAMES_IN_SLOTS - 1);
    assert_int_equal(sg_metrics_frame_in_slot(SG_STOMP_NONE), SG_FRAMES_IN_SLOTS - 1);
    assert_int_equal(sg_metrics_frame_in_slot(999), SG_FRAMES_IN_SLOTS - 1);
    assert_int_equal(sg_metrics_frame_out_slot(SG_STOMP_CONNECTED), 0);
    assert_int_equal(sg_metrics_frame_out_slot(SG_STOMP_MESSAGE), 1);
    assert_int_equal(sg_metrics_frame_out_slot(SG_STOMP_RECEIPT), 2);
    assert_int_equal(sg_metrics_frame_out_slot(SG_STOMP_ERROR), 3);
    assert_int_equal(sg_metrics_frame_out_slot(SG_STOMP_SEND), -1);
    assert_int_equal(sg_metrics_frame_out_slot(SG_STOMP_NONE), -1);
}

/* ---- ERROR reasons: the session's own errors by code, the relay's by text */

static void test_error_reasons(void **state)
{
    (void)state;
    static const struct {
        int err;
        const char *msg;
        enum sg_err_reason want;
    } v[] = {
        {SG_ESTOMP, "missing destination header", SG_REASON_PROTOCOL},
        {SG_ESTATE, "expected CONNECT", SG_REASON_PROTOCOL},
        {SG_EVERSION, "Supported protocol versions are 1.0", SG_REASON_PROTOCOL},
        {SG_ETOOBIG, "frame too big", SG_REASON_LIMIT},
        {SG_ETOOMANY, "too many subscriptions", SG_REASON_LIMIT},
        {SG_ELINE, "header line too long", SG_REASON_LIMIT},
        {SG_ELIMIT, "too much data before CONNECTED", SG_REASON_LIMIT},
        {SG_EAUTH, "access refused", SG_REASON_AUTH},
        {SG_EDEST, "invalid destination", SG_REASON_DESTINATION},
        {SG_ETIMEOUT, "heart-beat timeout", SG_REASON_HEARTBEAT},
        {SG_ETIMEOUT, "CONNECT timeout", SG_REASON_TIMEOUT},
        {SG_ENOMEM, "out of memory", SG_REASON_INTERNAL},
        /* relay- and glue-reported failures (sg_stomp_session_fail: SG_EBROKER) */
        {SG_EBROKER, "server shutting down", SG_REASON_SHUTDOWN},
        {SG_EBROKER, "server restarting", SG_REASON_SHUTDOWN},
        {SG_EBROKER, "slow consumer: behind for longer than slow_consumer_timeout_ms",
         SG_REASON_SLOW_CONSUMER},
        {SG_EBROKER, "slow consumer", SG_REASON_SLOW_CONSUMER},
        {SG_EBROKER, "access refused", SG_REASON_AUTH},
        {SG_EBROKER, "subscription to /queue/x failed: ACCESS_REFUSED - access to queue",
         SG_REASON_AUTH},
        {SG_EBROKER, "NOT_FOUND - no exchange 'nx' in vhost '/'", SG_REASON_DESTINATION},
        {SG_EBROKER, "message could not be routed: no such queue", SG_REASON_DESTINATION},
        {SG_EBROKER, "server busy: too many logins in progress", SG_REASON_LIMIT},
        {SG_EBROKER, "too many subscriptions on this broker connection (broker_channel_max)",
         SG_REASON_LIMIT},
        {SG_EBROKER, "out of memory", SG_REASON_INTERNAL},
        {SG_EBROKER, "broker unavailable", SG_REASON_BROKER},
        {SG_EBROKER, "message rejected by the broker (nack)", SG_REASON_BROKER},
        {SG_EBROKER, "PRECONDITION_FAILED - inequivalent arg", SG_REASON_BROKER},
        {SG_EBROKER, NULL, SG_REASON_BROKER},
        {SG_EIO, "whatever", SG_REASON_OTHER},
        {-12345, NULL, SG_REASON_OTHER},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        enum sg_err_reason got = sg_metrics_error_reason(v[i].err, v[i].msg);
        if (got != v[i].want)
            fail_msg("(%d, \"%s\"): %s, want %s", v[i].err, v[i].msg ? v[i].msg : "(null)",
                     sg_metrics_reason_name(got), sg_metrics_reason_name(v[i].want));
    }
    /* every reason has a distinct name of [a-z_] */
    for (int r = 0; r < SG_REASON_COUNT; r++) {
        const char *n = sg_metrics_reason_name((enum sg_err_reason)r);
        assert_true(n[0] && strspn(n, "abcdefghijklmnopqrstuvwxyz_") == strlen(n));
        for (int q = 0; q < r; q++)
            assert_string_not_equal(n, sg_metrics_reason_name((enum sg_err_reason)q));
    }
    assert_string_equal(sg_metrics_reason_name(SG_REASON_COUNT), "other");
}

/* ---- the exposition, parsed */

struct family {
    char name[96], type[16];
    int help, samples;
};

struct parsed {
    struct family fam[128];
    int nfam;
    char series[1024][160];
    int nseries;
};

static struct family *find_family(struct parsed *p, const char *name)
{
    for (int i = 0; i < p->nfam; i++)
        if (!strcmp(p->fam[i].name, name)) return &p->fam[i];
    return NULL;
}

/* The family a sample name belongs to: itself, or for a histogram the name
 * without _bucket/_sum/_count. */
static struct family *sample_family(struct parsed *p, const char *name)
{
    struct family *f = find_family(p, name);
    if (f) return f;
    static const char *const suffix[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(name), sl = strlen(suffix[i]);
        if (n > sl && !strcmp(name + n - sl, suffix[i])) {
            char base[96];
            snprintf(base, sizeof base, "%.*s", (int)(n - sl), name);
            f = find_family(p, base);
            if (f && !strcmp(f->type, "histogram")) return f;
        }
    }
    return NULL;
}

static void parse_exposition(const char *text, struct parsed *p)
{
    memset(p, 0, sizeof *p);
    const char *line = text;
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    long last_bucket = -1;
    char hist[96] = "";
    while (*line) {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        char l[512];
        assert_true((size_t)(eol - line) < sizeof l);
        snprintf(l, sizeof l, "%.*s", (int)(eol - line), line);
        line = eol + 1;
        char name[96], rest[400];
        if (!strncmp(l, "# HELP ", 7)) {
            assert_int_equal(sscanf(l + 7, "%95s %399[^\n]", name, rest), 2);
            struct family *f = find_family(p, name);
            if (!f) {
                f = &p->fam[p->nfam++];
                snprintf(f->name, sizeof f->name, "%s", name);
            }
            assert_int_equal(f->help++, 0);
            continue;
        }
        if (!strncmp(l, "# TYPE ", 7)) {
            char type[16];
            assert_int_equal(sscanf(l + 7, "%95s %15s", name, type), 2);
            struct family *f = find_family(p, name);
            assert_non_null(f); /* HELP first, as we write it */
            assert_string_equal(f->type, "");
            assert_int_equal(f->samples, 0);
            assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
                        !strcmp(type, "histogram"));
            snprintf(f->type, sizeof f->type, "%s", type);
            continue;
        }
        assert_true(l[0] != '#');
        /* name{labels} value */
        char series[160];
        double value;
        assert_int_equal(sscanf(l, "%159s %lf", series, &value), 2);
        size_t nl = strcspn(series, "{");
        snprintf(name, sizeof name, "%.*s", (int)nl, series);
        assert_true(strspn(name, "abcdefghijklmnopqrstuvwxyz_0123456789") == strlen(name));
        assert_true(!strncmp(name, "stompgate_", 10));
        struct family *f = sample_family(p, name);
        if (!f) fail_msg("sample %s outside any # TYPE'd family", series);
        assert_string_not_equal(f->type, "");
        f->samples++;
        if (!strcmp(f->type, "counter") || !strcmp(f->type, "gauge")) {
            assert_string_equal(name, f->name);
        }
        if (strcmp(f->type, "counter") == 0) assert_true(value >= 0);
        for (int i = 0; i < p->nseries; i++)
            if (!strcmp(p->series[i], series)) fail_msg("series %s twice", series);
        snprintf(p->series[p->nseries++], sizeof p->series[0], "%s", series);
        if (!strcmp(f->type, "histogram")) {
            if (strcmp(hist, f->name) != 0) {
                snprintf(hist, sizeof hist, "%s", f->name);
                last_bucket = -1;
            }
            size_t bl = strlen(f->name);
            if (!strcmp(name + bl, "_bucket")) {
                assert_true(strstr(series, "{le=\"") != NULL);
                assert_true((long)value >= last_bucket); /* cumulative */
                last_bucket = (long)value;
                if (strstr(series, "le=\"+Inf\"")) last_bucket = -2 - (long)value;
            } else if (!strcmp(name + bl, "_count")) {
                assert_true(last_bucket <= -2); /* +Inf came, and equals _count */
                assert_int_equal(-2 - last_bucket, (long)value);
            }
        }
    }
    for (int i = 0; i < p->nfam; i++) {
        assert_string_not_equal(p->fam[i].type, "");
        assert_true(p->fam[i].samples > 0);
    }
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return 1;
    return 0;
}

static void test_render_parses_and_reports_values(void **state)
{
    (void)state;
    struct sg_metrics *m = metrics_new();
    atomic_store(&m->stomp_connected, 4);
    atomic_store(&m->sessions[2][0], 3);
    atomic_store(&m->sessions[0][1], 1);
    atomic_store(&m->frames_in[sg_metrics_frame_in_slot(SG_STOMP_SEND)], 7);
    atomic_store(&m->frames_out[sg_metrics_frame_out_slot(SG_STOMP_MESSAGE)], 9);
    atomic_store(&m->errors[SG_REASON_DESTINATION], 2);
    atomic_store(&m->quote_subscriptions, 5);
    atomic_store(&m->subs_temp, 1);
    sg_metrics_count_close(m, 1, 1008);
    sg_metrics_count_close(m, 0, 3000);
    atomic_store(&m->service_up, 2);
    sg_metrics_observe_latency(m, 300000);  /* 0.5 ms bucket */
    sg_metrics_observe_latency(m, 2000000); /* 2.5 ms */
    sg_metrics_observe_latency(m, 5000000000ull);
    struct sg_metrics_extra x = {.buffered_bytes = 123,
                                 .auth_queue_length = 2,
                                 .quote_symbols = 6,
                                 .nworkers = 2,
                                 .uptime_s = 1.5,
                                 .version = "9.9.9"};
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_metrics_render(&b, m, &x), SG_OK);
    assert_int_equal(sg_buf_append(&b, "", 1), SG_OK); /* NUL */
    const char *t = (const char *)b.data;
    struct parsed *p = calloc(1, sizeof *p);
    assert_non_null(p);
    parse_exposition(t, p);
    assert_true(p->nfam > 40);

    assert_true(has_line(t, "stompgate_stomp_sessions 4"));
    assert_true(
        has_line(t, "stompgate_stomp_sessions_by_version{version=\"1.2\",transport=\"ws\"} 3"));
    assert_true(
        has_line(t, "stompgate_stomp_sessions_by_version{version=\"1.0\",transport=\"wss\"} 1"));
    assert_true(
        has_line(t, "stompgate_stomp_sessions_by_version{version=\"1.1\",transport=\"ws\"} 0"));
    assert_true(has_line(t, "stompgate_stomp_frames_received_total{command=\"SEND\"} 7"));
    assert_true(has_line(t, "stompgate_stomp_frames_sent_total{command=\"MESSAGE\"} 9"));
    assert_true(has_line(t, "stompgate_stomp_errors_total{reason=\"destination\"} 2"));
    assert_true(has_line(t, "stompgate_subscriptions{kind=\"quote\"} 5"));
    assert_true(has_line(t, "stompgate_subscriptions{kind=\"temp\"} 1"));
    assert_true(has_line(t, "stompgate_ws_close_sent_total{code=\"1008\"} 1"));
    assert_true(has_line(t, "stompgate_ws_close_received_total{code=\"other\"} 1"));
    assert_true(has_line(t, "stompgate_broker_up 1"));
    assert_true(has_line(t, "stompgate_buffered_bytes 123"));
    assert_true(has_line(t, "stompgate_quote_symbols 6"));
    assert_true(has_line(t, "stompgate_build_info{version=\"9.9.9\"} 1"));
    assert_true(has_line(t, "stompgate_fanout_latency_seconds_bucket{le=\"0.00025\"} 0"));
    assert_true(has_line(t, "stompgate_fanout_latency_seconds_bucket{le=\"0.0005\"} 1"));
    assert_true(has_line(t, "stompgate_fanout_latency_seconds_bucket{le=\"0.0025\"} 2"));
    assert_true(has_line(t, "stompgate_fanout_latency_seconds_bucket{le=\"1\"} 2"));
    assert_true(has_line(t, "stompgate_fanout_latency_seconds_bucket{le=\"+Inf\"} 3"));
    assert_true(has_line(t, "stompgate_fanout_latency_seconds_count 3"));
    assert_true(has_line(t, "stompgate_fanout_latency_seconds_sum 5.002300000"));
    assert_null(find_family(p, "auth_queue_length")); /* every name has the prefix */
    assert_non_null(find_family(p, "stompgate_auth_queue_length"));
    assert_string_equal(find_family(p, "stompgate_fanout_latency_seconds")->type, "histogram");
    assert_string_equal(find_family(p, "stompgate_broker_reconnects_total")->type, "counter");

    /* one worker's service connection down: not up */
    atomic_store(&m->service_up, 1);
    sg_buf_clear(&b);
    assert_int_equal(sg_metrics_render(&b, m, &x), SG_OK);
    assert_int_equal(sg_buf_append(&b, "", 1), SG_OK);
    assert_true(has_line((const char *)b.data, "stompgate_broker_up 0"));
    assert_true(has_line((const char *)b.data, "stompgate_broker_service_connections 1"));

    /* a bounded buffer too small: an error, never an overflow */
    struct sg_buf small;
    sg_buf_init(&small, 256);
    assert_int_equal(sg_metrics_render(&small, m, &x), SG_ETOOBIG);
    assert_true(small.len <= 256);
    sg_buf_reset(&small);
    sg_buf_reset(&b);
    free(p);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latency_buckets),
        cmocka_unit_test(test_close_slots),
        cmocka_unit_test(test_frame_slots),
        cmocka_unit_test(test_error_reasons),
        cmocka_unit_test(test_render_parses_and_reports_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
