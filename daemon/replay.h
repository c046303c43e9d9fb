/* replay.h - the replay source: timestamped quotes from a file, replayed.
 *
 * A file is one quote per line, in either form (they may be mixed):
 *   CSV         ts,symbol,price          e.g. 1700000000.5,AAPL,189.91
 *   JSON lines  {"ts":...,"symbol":"AAPL","price":189.91}
 * ts is in seconds (fractional allowed) or ISO-8601 in UTC or with an
 * offset (2024-01-02T15:04:05.25Z, 2024-01-02 15:04:05+01:00; no zone =
 * UTC). CSV fields are trimmed and may be double-quoted. Blank lines and
 * lines starting with '#' are skipped; so is a first line that looks like a
 * header (its first field starts with a letter, e.g. "ts,symbol,price").
 * Any other line that is not a quote (bad timestamp, not a symbol, price
 * not a positive number, wrong field count, bad JSON) is a bad line: it is
 * counted and reported, never fatal. Prices are rounded to cents. The lines
 * need not be in time order: each symbol's quotes are sorted by time
 * (equal times keep file order, so the later line wins).
 *
 * Pure but for sg_replay_load_file's reading of the file; reports go to a
 * callback, the caller logs them.
 */
#ifndef SG_REPLAY_H
#define SG_REPLAY_H

#include "source.h"
#include "work.h"

#include <stddef.h>

struct sg_replay_quote {
    double ts;
    char sym[SG_WORK_SYM_MAX + 1];
    double price;
};

/* Parses one line (len bytes, no newline needed; a trailing \r is fine).
 * Returns SG_OK with *out filled; SG_AGAIN for a line that holds no quote
 * (blank or a '#' comment); SG_EPROTO with *why (a static string) for a bad
 * line. A header is not recognised here (see sg_replay_loader_line). */
int sg_replay_parse_line(const char *line, size_t len, struct sg_replay_quote *out,
                         const char **why);

/* A timestamp: seconds ("1700000000", "-1.5", "1e9") or ISO-8601 as above.
 * Returns SG_OK with *ts in seconds since the epoch, or SG_EPROTO. */
int sg_replay_parse_ts(const char *s, size_t len, double *ts);

struct sg_replay_stats {
    size_t lines;       /* lines read */
    size_t quotes;      /* quotes kept */
    size_t bad;         /* bad lines */
    size_t dropped;     /* good lines past max_quotes (not kept) */
    size_t symbols;     /* distinct symbols (after finish) */
    int header;         /* 1 if a header line was skipped */
    double first, last; /* earliest and latest ts (after finish) */
};

/* Called for each bad line: its number (from 1) and why. */
typedef void (*sg_replay_bad_fn)(void *arg, size_t lineno, const char *why);

struct sg_replay_loader;
struct sg_replay;

/* A loader keeping at most max_quotes quotes (max_quotes >= 1); bad may be
 * NULL. NULL on ENOMEM. */
struct sg_replay_loader *sg_replay_loader_new(size_t max_quotes, sg_replay_bad_fn bad, void *arg);
/* Feeds the next line (borrowed). Returns SG_OK, or SG_ENOMEM (the line is
 * lost, the loader still usable). */
int sg_replay_loader_line(struct sg_replay_loader *l, const char *line, size_t len);
/* Ends the loading (l is freed whatever happens). Returns the replay
 * (owned; sg_replay_free) with *st filled (st may be NULL), or NULL with
 * *err (err may be NULL) SG_ENOKEY if no line held a quote, SG_ENOMEM. */
struct sg_replay *sg_replay_loader_finish(struct sg_replay_loader *l, struct sg_replay_stats *st,
                                          int *err);
/* Loader over a buffer, split at \n. */
struct sg_replay *sg_replay_load_buf(const char *buf, size_t len, size_t max_quotes,
                                     sg_replay_bad_fn bad, void *arg, struct sg_replay_stats *st,
                                     int *err);
/* Loader over a file. NULL with *err SG_EIO (why says what, cap bytes),
 * SG_ENOKEY (no quote in it: why says so) or SG_ENOMEM. */
struct sg_replay *sg_replay_load_file(const char *path, size_t max_quotes, sg_replay_bad_fn bad,
                                      void *arg, struct sg_replay_stats *st, int *err, char *why,
                                      size_t cap);
void sg_replay_free(struct sg_replay *r);

/* The replay clock. With speed > 0 the file plays from its first quote at
 * clock time start, speed seconds of file per second of clock (1.0 = real
 * time); a symbol's price is its latest quote at or before the file time
 * (before its first quote: its first quote, or with loop, after the first
 * round, its last one). With loop the file starts over after its last
 * quote, one average gap between its timestamps later (1 s if it has a
 * single timestamp); without loop it stays at its last quote. With speed 0
 * every request for a symbol takes its next quote (the first request its
 * first), starting over at the end with loop and staying at the last
 * without. A symbol the file does not have gets no price.
 * Takes r over (freed with the source, or now on failure). NULL on ENOMEM. */
struct sg_source *sg_replay_source_new(struct sg_replay *r, double speed, int loop, double start);

/* The file time the source is at for clock time now, and the round (0 for
 * the first pass). For tests and the log. */
double sg_replay_source_file_time(const struct sg_source *s, double now, unsigned long *round);

#endif
