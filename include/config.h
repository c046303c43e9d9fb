/* config.h - one option table per program (redis style).
 *
 * Each program describes its options in a table of struct sg_opt (name,
 * type, default, bounds, help, offset into the program's config struct).
 * sg_config_load applies, in order: defaults < file (-c FILE) < environment
 * (PREFIX_KEY, key upper-cased) < command-line flags (--key=value or
 * --key value; '-' and '_' are interchangeable in flag names). Every bad
 * value is reported with its key (all of them, not just the first), and the
 * result is read-only afterwards.
 */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum sg_opt_type {
    SG_OPT_STR,    /* char *, strdup'ed ("" allowed) */
    SG_OPT_INT,    /* long long within [min, max] */
    SG_OPT_SIZE,   /* long long bytes, accepts K/M/G suffixes (powers of 1024), in [min, max] */
    SG_OPT_BOOL,   /* int 0/1: true/false/yes/no/on/off/1/0 */
    SG_OPT_DOUBLE, /* double within [min, max] */
    SG_OPT_LIST,   /* char ** NULL-terminated, comma-separated, elements trimmed */
    SG_OPT_ADDRS,  /* like LIST, each element "host:port" ("[v6]:port"; host numeric, "localhost" or
                      "*") */
    SG_OPT_LOGLEVEL, /* int, see log.h */
};

struct sg_opt {
    const char *name;
    enum sg_opt_type type;
    const char *def; /* default as text, parsed like any other value */
    size_t offset;   /* offsetof(program config struct, field) */
    double min, max; /* numeric bounds (INT, SIZE, DOUBLE) */
    const char *help;
};

/* Parsed command line outcome. */
struct sg_cli {
    const char *config_file; /* -c FILE / --config FILE, or NULL */
    int check_config;        /* --check-config */
    int help;                /* --help / -h */
    int version;             /* --version / -V */
};

/* Loads the configuration. cfg is the program's struct (zeroed by the
 * caller); table ends with an entry whose name is NULL. env_prefix e.g.
 * "STOMPGATE_". default_file is read if it exists and no -c was given (may be
 * NULL). Errors are printed to err, one line each: "config: KEY: reason (got
 * "VALUE")". Returns the number of errors (0 = ok); on return cli is filled. */
int sg_config_load(const struct sg_opt *table, void *cfg, const char *env_prefix,
                   const char *default_file, int argc, char **argv, struct sg_cli *cli, FILE *err);

/* Frees every STR and LIST member per the table. */
void sg_config_free(const struct sg_opt *table, void *cfg);

/* Prints the --help text: usage line plus one line per option with its
 * default and help. */
void sg_config_usage(const struct sg_opt *table, const char *prog, const char *summary,
                     const char *env_prefix, FILE *out);

/* A program's description for sg_config_main. */
struct sg_program {
    const char *name;       /* "stompgate" */
    const char *summary;    /* one paragraph for --help */
    const char *env_prefix; /* "STOMPGATE_" */
    const char *default_file;
    const struct sg_opt *table;
    /* cross-field checks after a clean load: prints "config: KEY: ..." lines,
     * returns the error count (may be NULL) */
    int (*check)(const void *cfg, FILE *err);
};

/* The whole command-line front of a daemon: loads cfg, then answers --help
 * and --version, reports configuration errors (on stderr, one line each)
 * and answers --check-config. Returns:
 *   SG_OK      the program should run: cfg is loaded (the caller frees it
 *              with sg_config_free); *exit_code is 0
 *   SG_DONE    --help, --version or a clean --check-config was answered:
 *              exit with *exit_code (0)
 *   SG_ECONFIG configuration errors were printed: exit with *exit_code (2)
 * On SG_DONE and SG_ECONFIG cfg has been freed. */
int sg_config_main(const struct sg_program *prog, void *cfg, int argc, char **argv, int *exit_code);

/* Splits "host:port" / "[v6]:port" into host (cap bytes, NUL included) and
 * port (0-65535). "*" and "" hosts become "0.0.0.0"; the host is not
 * otherwise validated. Returns SG_OK; SG_ECONFIG for a malformed value (no
 * port, a bad or out-of-range port, an unbracketed IPv6 address); SG_ETOOBIG
 * if the host does not fit cap. On error host and *port are unchanged. */
int sg_config_split_addr(const char *s, char *host, size_t cap, int *port);

#endif
