/* fuzz_stockd_json.c - libFuzzer target for stockd's input parsers: the
 * work message (daemon/work.c) and the replay file (daemon/replay.c).
 *
 * Every input goes through all of them. Checks:
 *  - sg_work_parse: on success the symbols are valid, unique, at most
 *    the entries and max_symbols; the result encoding of them (each given
 *    a price) parses back as the contract's array, in the same order; on
 *    failure *w is zeroed and the reason is one non-empty line;
 *  - sg_replay_parse_line on each line: a quote has a valid symbol, a
 *    finite ts and a positive price in cents; a bad line has a reason;
 *  - sg_replay_load_buf over the whole input: the counts add up, and a
 *    replay source over it answers only symbols it holds, with its prices.
 * Plain C: also linked with replay_main.c under gcc.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "replay.h"
#include "work.h"

#define SG_FZ_CHECK(x)                                                                             \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fz_work(const char *data, size_t size)
{
    struct sg_work w;
    char why[160];
    size_t max_symbols = 1 + (size % 50);
    int rc = sg_work_parse(data, size, 1 << 16, max_symbols, &w, why, sizeof why);
    if (rc != SG_OK) {
        SG_FZ_CHECK(rc == SG_EPROTO || rc == SG_ETOOBIG || rc == SG_ETOOMANY || rc == SG_ENOMEM);
        SG_FZ_CHECK(w.q == NULL && w.n == 0 && w.entries == 0);
        SG_FZ_CHECK(why[0] && strchr(why, '\n') == NULL);
        return;
    }
    SG_FZ_CHECK(w.n >= 1 && w.n <= w.entries && w.entries <= max_symbols);
    for (size_t i = 0; i < w.n; i++) {
        SG_FZ_CHECK(sg_work_symbol_valid(w.q[i].sym, strlen(w.q[i].sym)));
        SG_FZ_CHECK(!w.q[i].have);
        for (size_t j = 0; j < i; j++)
            SG_FZ_CHECK(strcmp(w.q[i].sym, w.q[j].sym) != 0);
        w.q[i].price = 0.01 + (double)i * 1.37;
        w.q[i].have = 1;
    }
    size_t len, count;
    char *res = sg_work_result_encode(w.q, w.n, &len, &count);
    SG_FZ_CHECK(res != NULL && strlen(res) == len && count == w.n);
    json_error_t err;
    json_t *a = json_loads(res, 0, &err);
    SG_FZ_CHECK(json_is_array(a) && json_array_size(a) == w.n);
    for (size_t i = 0; i < w.n; i++) {
        json_t *e = json_array_get(a, i);
        SG_FZ_CHECK(json_object_size(e) == 2);
        SG_FZ_CHECK(!strcmp(json_string_value(json_object_get(e, "symbol")), w.q[i].sym));
        double p = json_number_value(json_object_get(e, "price"));
        SG_FZ_CHECK(fabs(p - round(w.q[i].price * 100) / 100) < 1e-9);
    }
    json_decref(a);
    free(res);
    sg_work_free(&w);
}

static void fz_replay(const char *data, size_t size)
{
    size_t lines = 0, good = 0, start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n') continue;
        struct sg_replay_quote q;
        const char *why = NULL;
        int rc = sg_replay_parse_line(data + start, i - start, &q, &why);
        if (rc == SG_OK) {
            SG_FZ_CHECK(sg_work_symbol_valid(q.sym, strlen(q.sym)));
            SG_FZ_CHECK(isfinite(q.ts) && isfinite(q.price) && q.price >= 0.01);
            SG_FZ_CHECK(fabs(q.price * 100 - round(q.price * 100)) < 1e-6 * fmax(1, q.price));
            good++;
        } else {
            SG_FZ_CHECK(rc == SG_AGAIN || (rc == SG_EPROTO && why && *why));
        }
        lines++;
        start = i + 1;
    }
    /* the loader sees no line after a final \n, nor in an empty input */
    if (size == 0 || data[size - 1] == '\n') lines--;
    struct sg_replay_stats st;
    int err;
    struct sg_replay *r = sg_replay_load_buf(data, size, 64, NULL, NULL, &st, &err);
    SG_FZ_CHECK(st.lines == lines);
    SG_FZ_CHECK(st.quotes + st.dropped <= good);
    SG_FZ_CHECK(st.quotes + st.dropped + st.bad + (size_t)st.header <= lines);
    if (!r) {
        SG_FZ_CHECK(err == SG_ENOKEY || err == SG_ENOMEM);
        return;
    }
    SG_FZ_CHECK(st.quotes >= 1 && st.quotes <= 64 && st.symbols >= 1 && st.first <= st.last);
    struct sg_source *s = sg_replay_source_new(r, (double)(size % 4), size % 2, 0);
    SG_FZ_CHECK(s != NULL);
    struct sg_src_quote q[3];
    memset(q, 0, sizeof q);
    strcpy(q[0].sym, "AAPL");
    strcpy(q[1].sym, "A");
    strcpy(q[2].sym, "NOT.IN.FILE");
    for (int k = 0; k < 3; k++) {
        sg_source_quote(s, q, 3, k * 0.7);
        for (int i = 0; i < 3; i++)
            SG_FZ_CHECK(!q[i].have || q[i].price >= 0.01);
    }
    sg_source_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_work((const char *)data, size);
    fz_replay((const char *)data, size);
    return 0;
}
