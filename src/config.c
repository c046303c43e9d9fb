/* config.c - option-table configuration loader (see config.h). */
#include "config.h"
#include "error.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_VALUE 4096

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

static const struct sg_opt *find_opt(const struct sg_opt *t, const char *name, size_t len)
{
    for (; t->name; t++) {
        if (strlen(t->name) != len) continue;
        size_t i;
        for (i = 0; i < len; i++) {
            char a = name[i] == '-' ? '_' : name[i];
            if (a != t->name[i]) break;
        }
        if (i == len) return t;
    }
    return NULL;
}

static void free_list(char **l)
{
    if (!l) return;
    for (char **p = l; *p; p++)
        free(*p);
    free(l);
}

int sg_config_split_addr(const char *s, char *host, size_t cap, int *port)
{
    const char *colon;
    size_t hl;
    const char *h = s;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return SG_ECONFIG;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return SG_ECONFIG;
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl)) return SG_ECONFIG; /* bare IPv6 must be bracketed */
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535) return SG_ECONFIG;
    int wildcard = hl == 0 || (hl == 1 && h[0] == '*');
    if ((wildcard ? sizeof "0.0.0.0" : hl + 1) > cap) return SG_ETOOBIG;
    if (wildcard) {
        memcpy(host, "0.0.0.0", sizeof "0.0.0.0");
    } else {
        memcpy(host, h, hl);
        host[hl] = 0;
    }
    *port = (int)p;
    return SG_OK;
}

static int addr_valid(const char *s)
{
    char host[256];
    int port;
    if (sg_config_split_addr(s, host, sizeof host, &port) != SG_OK) return 0;
    unsigned char tmp[16];
    if (strcmp(host, "localhost") == 0) return 1;
    return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

static char **parse_list(const char *v, int addrs, const char **bad)
{
    size_t n = 1;
    for (const char *p = v; *p; p++)
        if (*p == ',') n++;
    char **l = calloc(n + 1, sizeof *l);
    char *copy = strdup(v);
    if (!l || !copy) goto fail;
    size_t k = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = trim(tok);
        if (!*t) continue;
        if (addrs && !addr_valid(t)) {
            *bad = "must be a comma list of host:port with a numeric host, localhost or *";
            goto fail;
        }
        if (!(l[k++] = strdup(t))) goto fail;
    }
    free(copy);
    return l;
fail:
    free(copy);
    free_list(l);
    return NULL;
}

/* Parses and stores one value; on error returns a reason text. */
static const char *set_value(const struct sg_opt *o, void *cfg, const char *v)
{
    char *field = (char *)cfg + o->offset;
    static char reason[160];
    switch (o->type) {
    case SG_OPT_STR: {
        char *d = strdup(v);
        if (!d) return "out of memory";
        free(*(char **)field);
        *(char **)field = d;
        return NULL;
    }
    case SG_OPT_INT:
    case SG_OPT_SIZE: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v) goto badnum;
        if (o->type == SG_OPT_SIZE && *end) {
            long long mul = 0;
            switch (toupper((unsigned char)*end)) {
            case 'K':
                mul = 1024LL;
                break;
            case 'M':
                mul = 1024LL * 1024;
                break;
            case 'G':
                mul = 1024LL * 1024 * 1024;
                break;
            }
            if (!mul) goto badnum;
            end++;
            if (toupper((unsigned char)*end) == 'I') end++;
            if (toupper((unsigned char)*end) == 'B') end++;
            if (x > LLONG_MAX / mul || x < LLONG_MIN / mul) goto badnum;
            x *= mul;
        }
        if (*end) goto badnum;
        if ((double)x < o->min || (double)x > o->max) goto badnum;
        *(long long *)field = x;
        return NULL;
    badnum:
        snprintf(reason, sizeof reason, "must be %s in [%.0f, %.0f]",
                 o->type == SG_OPT_SIZE ? "a size (bytes, K, M, G)" : "an integer", o->min, o->max);
        return reason;
    }
    case SG_OPT_DOUBLE: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || isnan(x) || x < o->min || x > o->max) {
            snprintf(reason, sizeof reason, "must be a number in [%g, %g]", o->min, o->max);
            return reason;
        }
        *(double *)field = x;
        return NULL;
    }
    case SG_OPT_BOOL: {
        static const char *const t[] = {"true", "yes", "on", "1"};
        static const char *const f[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(v, t[i]) == 0) return (*(int *)field = 1, NULL);
            if (strcasecmp(v, f[i]) == 0) return (*(int *)field = 0, NULL);
        }
        return "must be true or false";
    }
    case SG_OPT_LIST:
    case SG_OPT_ADDRS: {
        const char *bad = "out of memory";
        char **l = parse_list(v, o->type == SG_OPT_ADDRS, &bad);
        if (!l) return bad;
        free_list(*(char ***)field);
        *(char ***)field = l;
        return NULL;
    }
    case SG_OPT_LOGLEVEL: {
        int lv = sg_log_level_parse(v);
        if (lv < 0) return "must be debug, info, warn, error or none";
        *(int *)field = lv;
        return NULL;
    }
    }
    return "unknown option type";
}

static int apply(const struct sg_opt *o, void *cfg, const char *v, const char *where, FILE *err)
{
    if (strlen(v) >= MAX_VALUE) {
        fprintf(err, "config: %s: value too long (%s)\n", o->name, where);
        return 1;
    }
    const char *why = set_value(o, cfg, v);
    if (!why) return 0;
    fprintf(err, "config: %s: %s (got \"%s\" from %s)\n", o->name, why, v, where);
    return 1;
}

static int load_file(const struct sg_opt *table, void *cfg, const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "config: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    int errors = 0, lineno = 0;
    char line[MAX_VALUE + 256];
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t ln = strlen(line);
        if (ln == sizeof line - 1 && line[ln - 1] != '\n') {
            fprintf(err, "config: %s:%d: line too long\n", path, lineno);
            errors++;
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n') {
            }
            continue;
        }
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(err, "config: %s:%d: expected key = value\n", path, lineno);
            errors++;
            continue;
        }
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = 0;
            val++;
        }
        const struct sg_opt *o = find_opt(table, key, strlen(key));
        if (!o) {
            fprintf(err, "config: %s: unknown key (%s:%d)\n", key, path, lineno);
            errors++;
            continue;
        }
        char where[300];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        errors += apply(o, cfg, val, where, err);
    }
    fclose(f);
    return errors;
}

int sg_config_load(const struct sg_opt *table, void *cfg, const char *env_prefix,
                   const char *default_file, int argc, char **argv, struct sg_cli *cli, FILE *err)
{
    int errors = 0;
    memset(cli, 0, sizeof *cli);
    for (const struct sg_opt *o = table; o->name; o++)
        if (o->def) errors += apply(o, cfg, o->def, "default", err);

    /* first pass over argv: program flags, config file */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                fprintf(err, "config: %s needs a file name\n", a);
                errors++;
            } else {
                cli->config_file = argv[++i];
            }
        } else if (!strncmp(a, "--config=", 9)) {
            cli->config_file = a + 9;
        } else if (!strcmp(a, "--check-config")) {
            cli->check_config = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli->help = 1;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            cli->version = 1;
        }
    }
    if (cli->help || cli->version) return errors;

    if (cli->config_file) {
        errors += load_file(table, cfg, cli->config_file, err);
    } else if (default_file) {
        FILE *f = fopen(default_file, "r");
        if (f) {
            fclose(f);
            errors += load_file(table, cfg, default_file, err);
        }
    }

    for (const struct sg_opt *o = table; o->name; o++) {
        char env[128];
        size_t n = (size_t)snprintf(env, sizeof env, "%s", env_prefix);
        for (const char *p = o->name; *p && n + 1 < sizeof env; p++)
            env[n++] = (char)toupper((unsigned char)*p);
        env[n] = 0;
        const char *v = getenv(env);
        if (v) errors += apply(o, cfg, v, env, err);
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9) || !strcmp(a, "--check-config")) continue;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(err, "config: unexpected argument \"%s\"\n", a);
            errors++;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const struct sg_opt *o = find_opt(table, name, nl);
        if (!o) {
            fprintf(err, "config: %.*s: unknown option\n", (int)nl, name);
            errors++;
            continue;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (o->type == SG_OPT_BOOL && (i + 1 >= argc || argv[i + 1][0] == '-')) {
            /* a bare boolean flag: the next argument is another option */
            v = "true";
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            fprintf(err, "config: %s: missing value\n", o->name);
            errors++;
            continue;
        }
        errors += apply(o, cfg, v, "command line", err);
    }
    return errors;
}

void sg_config_free(const struct sg_opt *table, void *cfg)
{
    for (const struct sg_opt *o = table; o->name; o++) {
        char *field = (char *)cfg + o->offset;
        if (o->type == SG_OPT_STR) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else if (o->type == SG_OPT_LIST || o->type == SG_OPT_ADDRS) {
            free_list(*(char ***)field);
            *(char ***)field = NULL;
        }
    }
}

void sg_config_usage(const struct sg_opt *table, const char *prog, const char *summary,
                     const char *env_prefix, FILE *out)
{
    fprintf(
        out,
        "Usage: %s [-c FILE] [--KEY=VALUE ...] [--check-config] [--help] [--version]\n"
        "%s\n\n"
        "  -c, --config FILE   read KEY = VALUE lines from FILE\n"
        "  --check-config      validate the configuration, report every bad value, exit 0 or 2\n"
        "  -h, --help          this text\n"
        "  -V, --version       print the version\n\n"
        "Options (file key, --flag, or environment %sKEY); precedence:\n"
        "defaults < file < environment < flags.\n",
        prog, summary, env_prefix);
    for (const struct sg_opt *o = table; o->name; o++)
        fprintf(out, "  %-26s %s [default: %s]\n", o->name, o->help, o->def ? o->def : "");
}

int sg_config_main(const struct sg_program *prog, void *cfg, int argc, char **argv, int *exit_code)
{
    struct sg_cli cli;
    int errors = sg_config_load(prog->table, cfg, prog->env_prefix, prog->default_file, argc, argv,
                                &cli, stderr);
    int rc = SG_OK;
    *exit_code = 0;
    if (cli.help) {
        sg_config_usage(prog->table, prog->name, prog->summary, prog->env_prefix, stdout);
        rc = SG_DONE;
    } else if (cli.version) {
        printf("%s %s\n", prog->name, SG_VERSION);
        rc = SG_DONE;
    } else {
        if (!errors && prog->check) errors += prog->check(cfg, stderr);
        if (errors) {
            fprintf(stderr, "%s: %d configuration error%s\n", prog->name, errors,
                    errors == 1 ? "" : "s");
            rc = SG_ECONFIG;
            *exit_code = 2;
        } else if (cli.check_config) {
            printf("%s: configuration ok\n", prog->name);
            rc = SG_DONE;
        }
    }
    if (rc != SG_OK) sg_config_free(prog->table, cfg);
    return rc;
}
