/* test_config.c - the option-table loader (config.h) over a table of our
 * own with one option of each type. Value vectors are fed through every
 * source (file, environment, --key=value, --key value) on top of a
 * different earlier value, so an ignored value is seen; then precedence,
 * file syntax (comments, quotes, CRLF), error reporting and counting, line
 * limits, -c/--config, the cli flags, sg_config_split_addr, sg_config_free
 * and sg_config_main. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "log.h"

#define PREFIX "SGTEST_"
#define GIB 1073741824.0

struct tcfg {
    char *name;
    long long workers;
    long long max_frame;
    int verbose;
    double ratio;
    char **tags;
    char **listen;
    int log_level;
};

#define O(f, type, def, min, max)                                                                  \
    {                                                                                              \
#f, type, def, offsetof(struct tcfg, f), min, max, "help for " #f                          \
    }

static const struct sg_opt table[] = {
    O(name, SG_OPT_STR, "gate", 0, 0),
    O(workers, SG_OPT_INT, "4", 1, 64),
    O(max_frame, SG_OPT_SIZE, "64K", 1, GIB),
    O(verbose, SG_OPT_BOOL, "false", 0, 0),
    O(ratio, SG_OPT_DOUBLE, "0.5", 0, 1),
    O(tags, SG_OPT_LIST, "a, b", 0, 0),
    O(listen, SG_OPT_ADDRS, "127.0.0.1:8181", 0, 0),
    O(log_level, SG_OPT_LOGLEVEL, "info", 0, 0),
    {NULL, SG_OPT_STR, NULL, 0, 0, 0, NULL},
};

/* two different valid values per option, in table order */
static const char *const decoys[][2] = {
    {"decoy1", "decoy2"},
    {"7", "8"},
    {"7", "8"},
    {"true", "false"},
    {"0.75", "0.875"},
    {"d1", "d2"},
    {"10.0.0.7:7", "10.0.0.8:8"},
    {"error", "warn"},
};

/* ---- helpers ---------------------------------------------------------- */

static char tmpdir[64];

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sgtest_config.XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    for (const struct sg_opt *o = table; o->name; o++) {
        char env[64];
        size_t n = (size_t)snprintf(env, sizeof env, "%s", PREFIX);
        for (const char *p = o->name; *p; p++)
            env[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        env[n] = 0;
        unsetenv(env);
    }
    return 0;
}

/* Removes whatever a failed test left behind, then the directory. */
static int group_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char path[sizeof tmpdir + 300];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    return rmdir(tmpdir);
}

static const struct sg_opt *opt(const char *key)
{
    for (const struct sg_opt *o = table; o->name; o++)
        if (strcmp(o->name, key) == 0) return o;
    fail_msg("no option %s in the test table", key);
    return NULL;
}

static void env_name(const char *key, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s", PREFIX);
    for (const char *p = key; *p && n + 1 < cap; p++)
        out[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    out[n] = 0;
}

static void set_env(const char *key, const char *value)
{
    char env[64];
    env_name(key, env, sizeof env);
    assert_int_equal(setenv(env, value, 1), 0);
}

static void unset_env(const char *key)
{
    char env[64];
    env_name(key, env, sizeof env);
    unsetenv(env);
}

/* Writes a temp file (private dir, mkstemp); returns its malloc'ed path. */
static char *write_file(const char *text, size_t len)
{
    char *path = malloc(strlen(tmpdir) + 32);
    assert_non_null(path);
    sprintf(path, "%s/cfg.XXXXXX", tmpdir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static char *write_text(const char *text)
{
    return write_file(text, strlen(text));
}

static void remove_file(char *path)
{
    assert_int_equal(unlink(path), 0);
    free(path);
}

/* A loaded configuration and the text written to err. */
struct run {
    struct tcfg cfg;
    struct sg_cli cli;
    int errors;
    char *err; /* malloc'ed, NUL-terminated */
};

/* Loads with argv = {"prog", args...} (args NULL-terminated). */
static void run_load(struct run *r, const char *default_file, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"prog";
    for (; args && *args; args++) {
        assert_true(argc < 31);
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    memset(r, 0, sizeof *r);
    size_t sz = 0;
    FILE *err = open_memstream(&r->err, &sz);
    assert_non_null(err);
    r->errors = sg_config_load(table, &r->cfg, PREFIX, default_file, argc, argv, &r->cli, err);
    fclose(err);
    assert_non_null(r->err);
}

static void run_free(struct run *r)
{
    sg_config_free(table, &r->cfg);
    free(r->err);
    r->err = NULL;
}

static void render_list(char **l, char *out, size_t cap)
{
    if (!l) {
        snprintf(out, cap, "(null)");
        return;
    }
    size_t n = (size_t)snprintf(out, cap, "[");
    for (char **p = l; *p; p++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", p == l ? "" : "|", *p);
    snprintf(out + n, cap - n, "]");
}

/* One field as text: STR as is, numbers decimal, DOUBLE %g, lists [a|b]. */
static void render(const struct tcfg *c, const char *key, char *out, size_t cap)
{
    const struct sg_opt *o = opt(key);
    const char *field = (const char *)c + o->offset;
    switch (o->type) {
    case SG_OPT_STR:
        snprintf(out, cap, "%s", *(char *const *)field ? *(char *const *)field : "(null)");
        break;
    case SG_OPT_INT:
    case SG_OPT_SIZE:
        snprintf(out, cap, "%lld", *(const long long *)field);
        break;
    case SG_OPT_BOOL:
    case SG_OPT_LOGLEVEL:
        snprintf(out, cap, "%d", *(const int *)field);
        break;
    case SG_OPT_DOUBLE:
        snprintf(out, cap, "%g", *(const double *)field);
        break;
    case SG_OPT_LIST:
    case SG_OPT_ADDRS:
        render_list(*(char **const *)field, out, cap);
        break;
    }
}

static void assert_field(const struct tcfg *c, const char *key, const char *want)
{
    char got[8192];
    render(c, key, got, sizeof got);
    if (strcmp(got, want) != 0) fail_msg("%s: got \"%s\", want \"%s\"", key, got, want);
}

static void assert_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle)) fail_msg("\"%s\" not found in:\n%s", needle, text);
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        if (*text == '\n') n++;
    return n;
}

/* ---- defaults ----------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    struct run r;
    run_load(&r, NULL, NULL);
    assert_int_equal(r.errors, 0);
    assert_string_equal(r.err, "");
    assert_field(&r.cfg, "name", "gate");
    assert_field(&r.cfg, "workers", "4");
    assert_field(&r.cfg, "max_frame", "65536");
    assert_field(&r.cfg, "verbose", "0");
    assert_field(&r.cfg, "ratio", "0.5");
    assert_field(&r.cfg, "tags", "[a|b]");
    assert_field(&r.cfg, "listen", "[127.0.0.1:8181]");
    assert_field(&r.cfg, "log_level", "1");
    assert_null(r.cli.config_file);
    assert_int_equal(r.cli.check_config, 0);
    assert_int_equal(r.cli.help, 0);
    assert_int_equal(r.cli.version, 0);
    run_free(&r);
}

/* ---- every value, through every source --------------------------------- */

struct value_case {
    const char *key;
    const char *value;
    const char *want; /* rendered field; NULL = must be rejected */
};

static const struct value_case value_cases[] = {
    /* STR */
    {"name", "x", "x"},
    {"name", "", ""},
    {"name", "two words", "two words"},
    {"name", "a=b", "a=b"},
    /* INT in [1, 64] */
    {"workers", "1", "1"},
    {"workers", "64", "64"},
    {"workers", "33", "33"},
    {"workers", "0", NULL},
    {"workers", "65", NULL},
    {"workers", "-1", NULL},
    {"workers", "abc", NULL},
    {"workers", "5x", NULL},
    {"workers", "", NULL},
    {"workers", "1.5", NULL},
    {"workers", "4K", NULL}, /* suffixes are for SIZE only */
    {"workers", "99999999999999999999", NULL},
    /* SIZE in [1, 1G], K/M/G = powers of 1024, optional "i" and "B" after */
    {"max_frame", "1", "1"},
    {"max_frame", "1K", "1024"},
    {"max_frame", "1k", "1024"},
    {"max_frame", "3K", "3072"},
    {"max_frame", "2M", "2097152"},
    {"max_frame", "2m", "2097152"},
    {"max_frame", "1G", "1073741824"},
    {"max_frame", "1g", "1073741824"},
    {"max_frame", "1KB", "1024"},
    {"max_frame", "1KiB", "1024"},
    {"max_frame", "1kib", "1024"},
    {"max_frame", "2MB", "2097152"},
    {"max_frame", "2MiB", "2097152"},
    {"max_frame", "1GiB", "1073741824"},
    {"max_frame", "1073741824", "1073741824"},
    {"max_frame", "1048576K", "1073741824"},
    {"max_frame", "0", NULL},
    {"max_frame", "0K", NULL},
    {"max_frame", "1073741825", NULL},
    {"max_frame", "1048577K", NULL},
    {"max_frame", "2G", NULL},
    {"max_frame", "-1K", NULL},
    {"max_frame", "1T", NULL},
    {"max_frame", "1B", NULL},
    {"max_frame", "1KBB", NULL},
    {"max_frame", "1iB", NULL},
    {"max_frame", "1 K", NULL},
    {"max_frame", "K", NULL},
    {"max_frame", "", NULL},
    {"max_frame", "1.5M", NULL},
    {"max_frame", "9000000000000000G", NULL},  /* overflow */
    {"max_frame", "17179869185G", NULL},       /* (2^34 + 1) * 2^30 wraps to 1G */
    {"max_frame", "18014398509481985K", NULL}, /* (2^54 + 1) * 2^10 wraps to 1K */
    /* BOOL */
    {"verbose", "true", "1"},
    {"verbose", "yes", "1"},
    {"verbose", "on", "1"},
    {"verbose", "1", "1"},
    {"verbose", "TRUE", "1"},
    {"verbose", "Yes", "1"},
    {"verbose", "oN", "1"},
    {"verbose", "false", "0"},
    {"verbose", "no", "0"},
    {"verbose", "off", "0"},
    {"verbose", "0", "0"},
    {"verbose", "FALSE", "0"},
    {"verbose", "No", "0"},
    {"verbose", "OFF", "0"},
    {"verbose", "", NULL},
    {"verbose", "2", NULL},
    {"verbose", "y", NULL},
    {"verbose", "n", NULL},
    {"verbose", "t", NULL},
    {"verbose", "01", NULL},
    {"verbose", "enabled", NULL},
    {"verbose", "truee", NULL},
    /* DOUBLE in [0, 1] */
    {"ratio", "0", "0"},
    {"ratio", "1", "1"},
    {"ratio", "0.25", "0.25"},
    {"ratio", "1e-1", "0.1"},
    {"ratio", "-0.1", NULL},
    {"ratio", "1.01", NULL},
    {"ratio", "nan", NULL},
    {"ratio", "inf", NULL},
    {"ratio", "abc", NULL},
    {"ratio", "0.5x", NULL},
    {"ratio", "", NULL},
    /* LIST: comma-separated, trimmed, empty elements dropped */
    {"tags", "x", "[x]"},
    {"tags", "a,b,c", "[a|b|c]"},
    {"tags", "a , b ,, c ", "[a|b|c]"},
    {"tags", "\ta\t,\t b", "[a|b]"},
    {"tags", ",,x,,", "[x]"},
    {"tags", ",,,", "[]"},
    {"tags", "a, ,b", "[a|b]"},
    {"tags", " , \t,", "[]"},
    {"tags", "", "[]"},
    {"tags", "with space, two", "[with space|two]"},
    /* ADDRS */
    {"listen", "127.0.0.1:8181", "[127.0.0.1:8181]"},
    {"listen", "[::1]:80", "[[::1]:80]"},
    {"listen", "localhost:1", "[localhost:1]"},
    {"listen", "*:80", "[*:80]"},
    {"listen", "0.0.0.0:0", "[0.0.0.0:0]"},
    {"listen", "127.0.0.1:65535", "[127.0.0.1:65535]"},
    {"listen", "[::]:443", "[[::]:443]"},
    {"listen", "127.0.0.1:1, [::1]:2 ,*:3", "[127.0.0.1:1|[::1]:2|*:3]"},
    {"listen", "", "[]"},
    {"listen", "notanaddress", NULL},
    {"listen", "1.2.3.4", NULL},
    {"listen", "1.2.3.4:99999", NULL},
    {"listen", "1.2.3.4:65536", NULL},
    {"listen", "::1:80", NULL},
    {"listen", "1.2.3.4:", NULL},
    {"listen", "1.2.3.4:x", NULL},
    {"listen", "1.2.3.4:80x", NULL},
    {"listen", "1.2.3.4:-1", NULL},
    {"listen", "256.1.1.1:80", NULL},
    {"listen", "example.com:80", NULL},
    {"listen", "[::1]", NULL},
    {"listen", "[::1]80", NULL},
    {"listen", "[nothex]:80", NULL},
    {"listen", "127.0.0.1:80, bogus", NULL},
    /* LOGLEVEL */
    {"log_level", "debug", "0"},
    {"log_level", "info", "1"},
    {"log_level", "warn", "2"},
    {"log_level", "error", "3"},
    {"log_level", "none", "4"},
    {"log_level", "DEBUG", "0"},
    {"log_level", "Warn", "2"},
    {"log_level", "warning", NULL},
    {"log_level", "verbose", NULL},
    {"log_level", "5", NULL},
    {"log_level", "", NULL},
};

enum source { SRC_FILE, SRC_ENV, SRC_FLAG_EQ, SRC_FLAG_SEP };
static const char *const source_names[] = {"file", "env", "--key=value", "--key value"};

/* Feeds decoy then value for c->key through one source; checks the count,
 * the field and the error text. Returns 0 if it all matched. */
static int check_value_case(const struct value_case *c, enum source src)
{
    const struct sg_opt *o = opt(c->key);
    const char *const *dec = decoys[o - table];
    char drender[256], got[512];
    /* the earlier value: decoy 0, or decoy 1 when decoy 0 is what the case expects */
    const char *decoy = dec[0];
    for (int d = 0; d < 2; d++) {
        char flag[128];
        snprintf(flag, sizeof flag, "--%s=%s", c->key, dec[d]);
        const char *args[] = {flag, NULL};
        struct run r;
        run_load(&r, NULL, args);
        assert_int_equal(r.errors, 0);
        render(&r.cfg, c->key, drender, sizeof drender);
        run_free(&r);
        decoy = dec[d];
        if (!c->want || strcmp(drender, c->want) != 0) break;
    }
    if (c->want && strcmp(drender, c->want) == 0)
        fail_msg("%s: both decoys equal the value", c->key);

    char *path = NULL, *text = NULL;
    char flag1[128], flag2[256], dashed[64];
    const char *args[8] = {NULL};
    snprintf(dashed, sizeof dashed, "%s", c->key);
    for (char *p = dashed; *p; p++)
        if (*p == '_') *p = '-';
    switch (src) {
    case SRC_FILE:
        text = malloc(strlen(c->value) + 256);
        assert_non_null(text);
        sprintf(text, "%s = %s\n%s = %s\n", c->key, decoy, c->key, c->value);
        path = write_text(text);
        args[0] = "-c", args[1] = path;
        break;
    case SRC_ENV:
        text = malloc(256);
        assert_non_null(text);
        sprintf(text, "%s = %s\n", c->key, decoy);
        path = write_text(text);
        args[0] = "-c", args[1] = path;
        set_env(c->key, c->value);
        break;
    case SRC_FLAG_EQ:
        snprintf(flag1, sizeof flag1, "--%s=%s", c->key, decoy);
        snprintf(flag2, sizeof flag2, "--%s=%s", c->key, c->value);
        args[0] = flag1, args[1] = flag2;
        break;
    case SRC_FLAG_SEP:
        snprintf(flag1, sizeof flag1, "--%s", dashed);
        args[0] = flag1, args[1] = decoy, args[2] = flag1, args[3] = c->value;
        break;
    }
    struct run r;
    run_load(&r, NULL, args);
    if (src == SRC_ENV) unset_env(c->key);
    if (path) remove_file(path);
    free(text);

    int bad = 0;
    render(&r.cfg, c->key, got, sizeof got);
    const char *want = c->want ? c->want : drender; /* rejected: the earlier value stays */
    if (r.errors != (c->want ? 0 : 1) || strcmp(got, want) != 0) bad = 1;
    if (c->want && r.err[0]) bad = 1;
    if (!c->want) {
        char k[96], v[4200];
        snprintf(k, sizeof k, "config: %s: ", c->key);
        snprintf(v, sizeof v, "\"%s\"", c->value);
        if (!strstr(r.err, k) || !strstr(r.err, v) || count_lines(r.err) != 1) bad = 1;
    }
    if (bad)
        print_error("%s = \"%s\" via %s: %d error(s), field \"%s\" (want %d, \"%s\"); err: %s\n",
                    c->key, c->value, source_names[src], r.errors, got, c->want ? 0 : 1, want,
                    r.err[0] ? r.err : "(empty)\n");
    run_free(&r);
    return bad;
}

static void test_values_every_source(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof value_cases / sizeof value_cases[0]; i++)
        for (int s = SRC_FILE; s <= SRC_FLAG_SEP; s++)
            failures += check_value_case(&value_cases[i], (enum source)s);
    if (failures) fail_msg("%d value case(s) failed (see above)", failures);
}

/* ---- the file format ------------------------------------------------------ */

static const char good_file[] = "# a comment\n"
                                "; another comment\n"
                                "\n"
                                "   \t\n"
                                "   # indented comment\n"
                                "name = \"hello world\"\n"
                                "workers=12\n"
                                "  max-frame   =   2M  \n"
                                "\tverbose\t=\tyes\n"
                                "ratio = 0.125\n"
                                "tags = \" x , y ,, z \"\n"
                                "listen = 127.0.0.1:1, [::1]:2\n"
                                "log_level = DEBUG";

static void check_good_file(const char *text, size_t len, const char *variant)
{
    char *path = write_file(text, len);
    const char *args[] = {"-c", path, NULL};
    struct run r;
    run_load(&r, NULL, args);
    if (r.errors) fail_msg("%s: %d errors:\n%s", variant, r.errors, r.err);
    assert_string_equal(r.err, "");
    assert_string_equal(r.cli.config_file, path);
    assert_field(&r.cfg, "name", "hello world");
    assert_field(&r.cfg, "workers", "12");
    assert_field(&r.cfg, "max_frame", "2097152");
    assert_field(&r.cfg, "verbose", "1");
    assert_field(&r.cfg, "ratio", "0.125");
    assert_field(&r.cfg, "tags", "[x|y|z]");
    assert_field(&r.cfg, "listen", "[127.0.0.1:1|[::1]:2]");
    assert_field(&r.cfg, "log_level", "0");
    run_free(&r);
    remove_file(path);
}

/* Replaces every "\n" by "\r\n". */
static char *to_crlf(const char *s)
{
    char *out = malloc(2 * strlen(s) + 1), *o = out;
    assert_non_null(out);
    for (; *s; s++) {
        if (*s == '\n') *o++ = '\r';
        *o++ = *s;
    }
    *o = 0;
    return out;
}

static void test_file_syntax(void **state)
{
    (void)state;
    /* no final newline */
    check_good_file(good_file, strlen(good_file), "LF, no final newline");
    /* with a final newline */
    char *lf = malloc(sizeof good_file + 1);
    assert_non_null(lf);
    sprintf(lf, "%s\n", good_file);
    check_good_file(lf, strlen(lf), "LF");
    /* CRLF throughout */
    char *crlf = to_crlf(lf);
    check_good_file(crlf, strlen(crlf), "CRLF");
    free(crlf);
    free(lf);
}

struct quote_case {
    const char *line; /* the name = ... line */
    const char *want;
};

static const struct quote_case quote_cases[] = {
    {"name = \"\"", ""},
    {"name = \"a\"", "a"},
    {"name = \"  spaced  \"", "  spaced  "},
    {"name = \"a=b # not a comment\"", "a=b # not a comment"},
    {"name = \"a\"b\"", "a\"b"},
    {"name = \"unbalanced", "\"unbalanced"},
    {"name = unbalanced\"", "unbalanced\""},
    {"name = \"", "\""},
    {"name =", ""},
    {"name = a = b", "a = b"},
    {"name=  plain value  ", "plain value"},
};

static void test_file_quoting(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof quote_cases / sizeof quote_cases[0]; i++) {
        for (int crlf = 0; crlf < 2; crlf++) {
            char text[256];
            snprintf(text, sizeof text, "%s%s", quote_cases[i].line, crlf ? "\r\n" : "\n");
            char *path = write_text(text);
            const char *args[] = {"-c", path, NULL};
            struct run r;
            run_load(&r, NULL, args);
            assert_int_equal(r.errors, 0);
            char got[256];
            render(&r.cfg, "name", got, sizeof got);
            if (strcmp(got, quote_cases[i].want) != 0)
                fail_msg("[%s]%s: got \"%s\", want \"%s\"", quote_cases[i].line,
                         crlf ? " CRLF" : "", got, quote_cases[i].want);
            run_free(&r);
            remove_file(path);
        }
    }
}

/* ---- precedence: defaults < file < env < flags ---------------------------- */

static void test_precedence(void **state)
{
    (void)state;
    for (int mask = 0; mask < 8; mask++) {
        int file = mask & 1, env = mask & 2, flag = mask & 4;
        char *path = NULL;
        const char *args[4] = {NULL};
        int n = 0;
        if (file) {
            path = write_text("name = from-file\nworkers = 10\n");
            args[n++] = "-c", args[n++] = path;
        }
        if (env) set_env("name", "from-env");
        if (flag) args[n++] = "--name=from-flag";
        struct run r;
        run_load(&r, NULL, args);
        if (env) unset_env("name");
        if (path) remove_file(path);
        assert_int_equal(r.errors, 0);
        const char *want = flag ? "from-flag" : env ? "from-env" : file ? "from-file" : "gate";
        if (strcmp(r.cfg.name, want) != 0)
            fail_msg("file=%d env=%d flag=%d: name \"%s\", want \"%s\"", !!file, !!env, !!flag,
                     r.cfg.name, want);
        /* a key set only in the file is kept whatever overrides name */
        assert_int_equal(r.cfg.workers, file ? 10 : 4);
        run_free(&r);
    }
    /* each layer overrides only the keys it sets */
    char *path = write_text("workers = 10\nratio = 0.25\nverbose = on\n");
    set_env("workers", "20");
    set_env("max_frame", "2K");
    const char *args[] = {"--config", path, "--max-frame", "3K", "--log-level=warn", NULL};
    struct run r;
    run_load(&r, NULL, args);
    unset_env("workers");
    unset_env("max_frame");
    remove_file(path);
    assert_int_equal(r.errors, 0);
    assert_field(&r.cfg, "name", "gate");
    assert_field(&r.cfg, "workers", "20");
    assert_field(&r.cfg, "max_frame", "3072");
    assert_field(&r.cfg, "verbose", "1");
    assert_field(&r.cfg, "ratio", "0.25");
    assert_field(&r.cfg, "log_level", "2");
    assert_field(&r.cfg, "tags", "[a|b]");
    run_free(&r);
}

/* ---- flags ------------------------------------------------------------------- */

struct flag_case {
    const char *args[7];
    const char *key, *want; /* checked field */
    const char *key2, *want2;
};

static const struct flag_case flag_cases[] = {
    {{"--name=x"}, "name", "x", NULL, NULL},
    {{"--name", "x"}, "name", "x", NULL, NULL},
    {{"--name="}, "name", "", NULL, NULL},
    {{"--name", "a=b"}, "name", "a=b", NULL, NULL},
    {{"--name=a=b"}, "name", "a=b", NULL, NULL},
    {{"--max-frame=2M"}, "max_frame", "2097152", NULL, NULL},
    {{"--max_frame=2M"}, "max_frame", "2097152", NULL, NULL},
    {{"--max-frame", "1G"}, "max_frame", "1073741824", NULL, NULL},
    {{"--log-level", "debug"}, "log_level", "0", NULL, NULL},
    {{"--log_level", "error"}, "log_level", "3", NULL, NULL},
    {{"--name", "-dash"}, "name", "-dash", NULL, NULL},
    {{"--workers=2", "--workers=3"}, "workers", "3", NULL, NULL},
    /* bare boolean: true unless a value follows */
    {{"--verbose"}, "verbose", "1", NULL, NULL},
    {{"--verbose", "--workers=3"}, "verbose", "1", "workers", "3"},
    {{"--verbose", "--workers", "3"}, "verbose", "1", "workers", "3"},
    {{"--workers", "3", "--verbose"}, "verbose", "1", "workers", "3"},
    {{"--verbose=true", "--verbose", "false"}, "verbose", "0", NULL, NULL},
    {{"--verbose=true", "--verbose", "off"}, "verbose", "0", NULL, NULL},
    {{"--verbose=off", "--verbose"}, "verbose", "1", NULL, NULL},
    {{"--verbose=0", "--verbose", "--check-config"}, "verbose", "1", NULL, NULL},
};

static void test_flags(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof flag_cases / sizeof flag_cases[0]; i++) {
        const struct flag_case *c = &flag_cases[i];
        struct run r;
        run_load(&r, NULL, c->args);
        if (r.errors != 0)
            fail_msg("case %zu (%s ...): %d errors, want 0:\n%s", i, c->args[0], r.errors, r.err);
        char got[256];
        render(&r.cfg, c->key, got, sizeof got);
        if (strcmp(got, c->want) != 0)
            fail_msg("case %zu (%s ...): %s = \"%s\", want \"%s\"", i, c->args[0], c->key, got,
                     c->want);
        if (c->key2) assert_field(&r.cfg, c->key2, c->want2);
        run_free(&r);
    }
}

/* `--verbose -c FILE`: a bare boolean followed by the -c short option must
 * not swallow "-c" as its value (the first pass already took -c FILE as the
 * config file). */
static void test_bare_bool_before_short_option(void **state)
{
    (void)state;
    char *path = write_text("workers = 9\n");
    const char *args[] = {"--verbose", "-c", path, NULL};
    struct run r;
    run_load(&r, NULL, args);
    remove_file(path);
    /* copy out and free first, so a failure leaks nothing */
    int errors = r.errors;
    char err[1024], verbose[32], workers[32];
    snprintf(err, sizeof err, "%s", r.err);
    render(&r.cfg, "verbose", verbose, sizeof verbose);
    render(&r.cfg, "workers", workers, sizeof workers);
    run_free(&r);
    if (errors != 0 || strcmp(verbose, "1") != 0 || strcmp(workers, "9") != 0)
        fail_msg("--verbose -c FILE: %d errors, verbose %s, workers %s; want 0 errors, verbose "
                 "1, workers 9 (from FILE):\n%s",
                 errors, verbose, workers, err);
}

/* ---- errors: unknown, missing, counted, all reported ------------------- */

struct error_case {
    const char *file; /* NULL: no -c */
    const char *args[5];
    int errors;
    const char *needles[3]; /* each must appear in err */
};

static const struct error_case error_cases[] = {
    {"bogus = 1\nworkers = 9\n", {NULL}, 1, {"config: bogus: unknown key", ":1)"}},
    {"workers = 9\n\nbogus-key=\"x\"\n", {NULL}, 1, {"bogus-key", "unknown key", ":3)"}},
    {"workers 9\n", {NULL}, 1, {":1: expected key = value"}},
    {"workers = 9\njust some words\n", {NULL}, 1, {":2: expected key = value"}},
    {NULL, {"--bogus=1"}, 1, {"config: bogus: unknown option"}},
    {NULL, {"--bogus"}, 1, {"config: bogus: unknown option"}},
    {NULL, {"--name"}, 1, {"config: name: missing value"}},
    {NULL, {"--workers=9", "--max-frame"}, 1, {"config: max_frame: missing value"}},
    {NULL, {"stray"}, 1, {"unexpected argument \"stray\""}},
    {NULL, {"-x"}, 1, {"unexpected argument \"-x\""}},
    {NULL, {"-c"}, 1, {"-c needs a file name"}},
    {NULL, {"--config"}, 1, {"--config needs a file name"}},
    {NULL, {"-c", "/nonexistent-sgtest/x.conf"}, 1, {"cannot read /nonexistent-sgtest/x.conf"}},
    {NULL, {"--config=/nonexistent-sgtest/y.conf"}, 1, {"cannot read /nonexistent-sgtest/y.conf"}},
    {NULL, {"--bogus=1", "--workers=0", "stray", "--name"}, 4, {"bogus", "workers", "stray"}},
};

static void test_errors_counted(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *c = &error_cases[i];
        char *path = c->file ? write_text(c->file) : NULL;
        const char *args[8] = {NULL};
        int n = 0;
        if (path) args[n++] = "-c", args[n++] = path;
        for (int k = 0; c->args[k]; k++)
            args[n++] = c->args[k];
        struct run r;
        run_load(&r, NULL, args);
        if (path) remove_file(path);
        if (r.errors != c->errors || count_lines(r.err) != c->errors)
            fail_msg("case %zu: %d errors (%d lines), want %d:\n%s", i, r.errors,
                     count_lines(r.err), c->errors, r.err);
        for (int k = 0; k < 3 && c->needles[k]; k++)
            if (!strstr(r.err, c->needles[k]))
                fail_msg("case %zu: \"%s\" not in:\n%s", i, c->needles[k], r.err);
        /* the good parts still apply */
        if (c->file && strstr(c->file, "workers = 9")) assert_field(&r.cfg, "workers", "9");
        run_free(&r);
    }
}

static void test_all_errors_reported(void **state)
{
    (void)state;
    /* three bad lines, good lines around them: three errors, one per key */
    char *path = write_text("workers = 0\n"
                            "name = fine\n"
                            "ratio = 2\n"
                            "verbose = maybe\n"
                            "max_frame = 2K\n");
    const char *args[] = {"-c", path, NULL};
    struct run r;
    run_load(&r, NULL, args);
    assert_int_equal(r.errors, 3);
    assert_int_equal(count_lines(r.err), 3);
    assert_contains(r.err, "config: workers: ");
    assert_contains(r.err, "\"0\"");
    assert_contains(r.err, "config: ratio: ");
    assert_contains(r.err, "\"2\"");
    assert_contains(r.err, "config: verbose: ");
    assert_contains(r.err, "\"maybe\"");
    assert_contains(r.err, ":1)");
    assert_contains(r.err, ":3)");
    assert_contains(r.err, ":4)");
    assert_field(&r.cfg, "name", "fine");
    assert_field(&r.cfg, "max_frame", "2048");
    assert_field(&r.cfg, "workers", "4"); /* the default stays */
    run_free(&r);

    /* and across sources: file (3) + env (1) + flags (2) = 6 */
    set_env("log_level", "loud");
    const char *args2[] = {"-c", path, "--tags=ok", "--listen=nowhere", "--ratio", "-1", NULL};
    run_load(&r, NULL, args2);
    unset_env("log_level");
    remove_file(path);
    assert_int_equal(r.errors, 6);
    assert_int_equal(count_lines(r.err), 6);
    assert_contains(r.err, "config: log_level: ");
    assert_contains(r.err, "\"loud\"");
    assert_contains(r.err, PREFIX "LOG_LEVEL");
    assert_contains(r.err, "config: listen: ");
    assert_contains(r.err, "\"nowhere\"");
    assert_contains(r.err, "\"-1\"");
    assert_field(&r.cfg, "tags", "[ok]");
    run_free(&r);
}

/* A bad default in the table is an error too (every value is parsed). */
static void test_bad_default(void **state)
{
    (void)state;
    static const struct sg_opt bad_table[] = {
        {"workers", SG_OPT_INT, "100", offsetof(struct tcfg, workers), 1, 64, ""},
        {"ratio", SG_OPT_DOUBLE, "x", offsetof(struct tcfg, ratio), 0, 1, ""},
        {NULL, SG_OPT_STR, NULL, 0, 0, 0, NULL},
    };
    struct tcfg c;
    memset(&c, 0, sizeof c);
    struct sg_cli cli;
    char *text = NULL;
    size_t sz = 0;
    FILE *err = open_memstream(&text, &sz);
    char *argv[] = {(char *)"prog", NULL};
    assert_int_equal(sg_config_load(bad_table, &c, PREFIX, NULL, 1, argv, &cli, err), 2);
    fclose(err);
    assert_contains(text, "config: workers: ");
    assert_contains(text, "\"100\"");
    assert_contains(text, "config: ratio: ");
    free(text);
}

/* ---- limits on line and value length ------------------------------------ */

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, ch, n);
    s[n] = 0;
    return s;
}

static void test_long_lines(void **state)
{
    (void)state;
    struct run r;

    /* a 10000-byte line: reported once with its line number; its tail is
     * not read as a line of its own (it would be "...workers=5"); the next
     * line is read */
    char *x = repeat('x', 10000);
    char *text = malloc(20100);
    assert_non_null(text);
    sprintf(text, "name = %sworkers = 5\nratio = 0.25\n", x);
    char *path = write_text(text);
    const char *args[] = {"-c", path, NULL};
    run_load(&r, NULL, args);
    remove_file(path);
    if (r.errors != 1) fail_msg("long line: %d errors, want 1:\n%s", r.errors, r.err);
    assert_contains(r.err, ":1: line too long");
    assert_field(&r.cfg, "name", "gate");
    assert_field(&r.cfg, "workers", "4");
    assert_field(&r.cfg, "ratio", "0.25");
    run_free(&r);

    /* the same as the last line, without a newline */
    sprintf(text, "ratio = 0.25\nname = %s", x);
    path = write_text(text);
    const char *args1[] = {"-c", path, NULL};
    run_load(&r, NULL, args1);
    remove_file(path);
    assert_int_equal(r.errors, 1);
    assert_contains(r.err, ":2: line too long");
    assert_field(&r.cfg, "name", "gate");
    run_free(&r);

    /* a value of 4096 bytes in a line that fits: "value too long", with the key */
    char *v4096 = repeat('v', 4096);
    sprintf(text, "name = %s\n", v4096);
    path = write_text(text);
    const char *args2[] = {"-c", path, NULL};
    run_load(&r, NULL, args2);
    remove_file(path);
    assert_int_equal(r.errors, 1);
    assert_contains(r.err, "config: name: value too long");
    assert_field(&r.cfg, "name", "gate");
    run_free(&r);

    /* 4095 bytes is the longest value, kept whole */
    char *v4095 = repeat('w', 4095);
    sprintf(text, "name = %s\n", v4095);
    path = write_text(text);
    const char *args3[] = {"-c", path, NULL};
    run_load(&r, NULL, args3);
    remove_file(path);
    assert_int_equal(r.errors, 0);
    assert_string_equal(r.cfg.name, v4095);
    run_free(&r);

    /* the same limit for flags and the environment */
    char *flag = malloc(5000);
    assert_non_null(flag);
    sprintf(flag, "--name=%s", v4096);
    set_env("tags", v4096);
    const char *args4[] = {flag, NULL};
    run_load(&r, NULL, args4);
    unset_env("tags");
    assert_int_equal(r.errors, 2);
    assert_contains(r.err, "config: name: value too long");
    assert_contains(r.err, "config: tags: value too long");
    assert_field(&r.cfg, "name", "gate");
    assert_field(&r.cfg, "tags", "[a|b]");
    run_free(&r);

    free(flag);
    free(v4095);
    free(v4096);
    free(text);
    free(x);
}

/* ---- -c / --config, default file, cli flags ------------------------------- */

static void test_config_file_options(void **state)
{
    (void)state;
    char *good = write_text("workers = 11\n");
    char *other = write_text("workers = 0\n"); /* would be an error if read */
    struct run r;

    const char *a1[] = {"-c", good, NULL};
    const char *a2[] = {"--config", good, NULL};
    char eq[256];
    snprintf(eq, sizeof eq, "--config=%s", good);
    const char *a3[] = {eq, NULL};
    const char *const *forms[] = {a1, a2, a3};
    for (int i = 0; i < 3; i++) {
        run_load(&r, other, forms[i]); /* -c wins over the default file */
        if (r.errors) fail_msg("form %d: %d errors:\n%s", i, r.errors, r.err);
        assert_string_equal(r.cli.config_file, good);
        assert_field(&r.cfg, "workers", "11");
        run_free(&r);
    }

    /* the default file is read when there is no -c */
    run_load(&r, good, NULL);
    assert_int_equal(r.errors, 0);
    assert_field(&r.cfg, "workers", "11");
    assert_null(r.cli.config_file);
    run_free(&r);
    run_load(&r, other, NULL);
    assert_int_equal(r.errors, 1);
    assert_contains(r.err, "config: workers: ");
    run_free(&r);

    /* a missing default file is fine; a missing -c file is an error */
    run_load(&r, "/nonexistent-sgtest/default.conf", NULL);
    assert_int_equal(r.errors, 0);
    assert_string_equal(r.err, "");
    run_free(&r);
    const char *a4[] = {"-c", "/nonexistent-sgtest/x.conf", NULL};
    run_load(&r, good, a4);
    assert_int_equal(r.errors, 1);
    assert_contains(r.err, "/nonexistent-sgtest/x.conf");
    assert_field(&r.cfg, "workers", "4"); /* and the default file is not read instead */
    run_free(&r);

    remove_file(good);
    remove_file(other);
}

static void test_cli_flags(void **state)
{
    (void)state;
    struct run r;

    const char *a1[] = {"--check-config", "--workers=5", NULL};
    run_load(&r, NULL, a1);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.cli.check_config, 1);
    assert_int_equal(r.cli.help, 0);
    assert_int_equal(r.cli.version, 0);
    assert_field(&r.cfg, "workers", "5"); /* the rest is still loaded */
    run_free(&r);

    static const char *const help_forms[] = {"--help", "-h"};
    static const char *const version_forms[] = {"--version", "-V"};
    for (int i = 0; i < 2; i++) {
        const char *ah[] = {help_forms[i], NULL};
        run_load(&r, NULL, ah);
        assert_int_equal(r.errors, 0);
        assert_int_equal(r.cli.help, 1);
        assert_int_equal(r.cli.version, 0);
        run_free(&r);
        const char *av[] = {version_forms[i], NULL};
        run_load(&r, NULL, av);
        assert_int_equal(r.errors, 0);
        assert_int_equal(r.cli.version, 1);
        assert_int_equal(r.cli.help, 0);
        run_free(&r);
    }

    /* --help works whatever else is wrong: the file and flags are not read */
    const char *a2[] = {"--bogus=1", "-c", "/nonexistent-sgtest/x.conf", "--help", NULL};
    run_load(&r, NULL, a2);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.cli.help, 1);
    assert_string_equal(r.cli.config_file, "/nonexistent-sgtest/x.conf");
    run_free(&r);
}

/* ---- sg_config_split_addr ------------------------------------------------- */

struct split_case {
    const char *in;
    int rc;
    const char *host;
    int port;
};

static const struct split_case split_cases[] = {
    {"127.0.0.1:8181", SG_OK, "127.0.0.1", 8181},
    {"*:80", SG_OK, "0.0.0.0", 80},
    {":80", SG_OK, "0.0.0.0", 80},
    {"[::1]:443", SG_OK, "::1", 443},
    {"[::]:0", SG_OK, "::", 0},
    {"localhost:1", SG_OK, "localhost", 1},
    {"example.com:65535", SG_OK, "example.com", 65535}, /* split only, no validation */
    {"1.2.3.4", SG_ECONFIG, NULL, 0},
    {"::1:80", SG_ECONFIG, NULL, 0},
    {"[::1]", SG_ECONFIG, NULL, 0},
    {"[::1]x80", SG_ECONFIG, NULL, 0},
    {"[::1:80", SG_ECONFIG, NULL, 0},
    {"h:99999", SG_ECONFIG, NULL, 0},
    {"h:65536", SG_ECONFIG, NULL, 0},
    {"h:-1", SG_ECONFIG, NULL, 0},
    {"h:", SG_ECONFIG, NULL, 0},
    {"h:1x", SG_ECONFIG, NULL, 0},
    {"", SG_ECONFIG, NULL, 0},
};

/* ---- sg_log_level_parse ------------------------------------------------------- */

static void test_log_level_parse(void **state)
{
    (void)state;
    assert_int_equal(sg_log_level_parse("debug"), SG_LOG_DEBUG);
    assert_int_equal(sg_log_level_parse("INFO"), SG_LOG_INFO);
    assert_int_equal(sg_log_level_parse("warn"), SG_LOG_WARN);
    assert_int_equal(sg_log_level_parse("Error"), SG_LOG_ERROR);
    assert_int_equal(sg_log_level_parse("none"), SG_LOG_NONE);
    assert_int_equal(sg_log_level_parse("loudest"), SG_ECONFIG);
    assert_int_equal(sg_log_level_parse(""), SG_ECONFIG);
}

static void test_split_addr(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++) {
        const struct split_case *c = &split_cases[i];
        char host[64];
        int port = -7;
        strcpy(host, "untouched");
        int rc = sg_config_split_addr(c->in, host, sizeof host, &port);
        if (rc != c->rc) fail_msg("\"%s\": rc %d, want %d", c->in, rc, c->rc);
        if (rc != SG_OK && (strcmp(host, "untouched") != 0 || port != -7))
            fail_msg("\"%s\": rc %d but host/port written", c->in, rc);
        if (rc == SG_OK && (strcmp(host, c->host) != 0 || port != c->port))
            fail_msg("\"%s\": %s port %d, want %s port %d", c->in, host, port, c->host, c->port);
    }
    /* cap counts the terminating NUL */
    char host[16];
    int port;
    assert_int_equal(sg_config_split_addr("localhost:1", host, 10, &port), SG_OK);
    assert_string_equal(host, "localhost");
    assert_int_equal(sg_config_split_addr("localhost:1", host, 9, &port), SG_ETOOBIG);
    assert_int_equal(sg_config_split_addr("[::1]:1", host, 4, &port), SG_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(sg_config_split_addr("[::1]:1", host, 3, &port), SG_ETOOBIG);
    assert_int_equal(sg_config_split_addr("*:80", host, 8, &port), SG_OK);
    assert_string_equal(host, "0.0.0.0");
}

/* "*" becomes "0.0.0.0" (8 bytes): with a smaller cap that must be
 * SG_ETOOBIG, as for any host that does not fit, not SG_OK with a cut-off
 * host like "0.0". */
static void test_split_addr_wildcard_small_cap(void **state)
{
    (void)state;
    static const char *const ins[] = {"*:80", ":80"};
    for (int i = 0; i < 2; i++) {
        for (size_t cap = 1; cap < 8; cap++) {
            char host[8];
            memset(host, 'Z', sizeof host);
            int port = -7;
            int rc = sg_config_split_addr(ins[i], host, cap, &port);
            if (rc != SG_ETOOBIG)
                fail_msg("\"%s\" with cap %zu: rc %d and host \"%.*s\", want SG_ETOOBIG "
                         "(\"0.0.0.0\" does not fit)",
                         ins[i], cap, rc, (int)cap, host);
        }
    }
}

/* ---- SIZE arithmetic ---------------------------------------------------------- */

/* A large negative SIZE with a suffix must be rejected (it is below min), not
 * multiplied into a signed overflow: -18014398509481983K is -(2^54 - 1) *
 * 2^10, which wraps to 1024 in 64 bits. Run in a child so an UBSan abort is
 * reported as this test's failure, not the end of the run. */
static void test_size_negative_overflow(void **state)
{
    (void)state;
    static const char *const values[] = {"-18014398509481983K", "-9007199254740992M",
                                         "-9223372036854775807G"};
    int failures = 0;
    for (int i = 0; i < 3; i++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            struct tcfg c;
            memset(&c, 0, sizeof c);
            struct sg_cli cli;
            char flag[64];
            snprintf(flag, sizeof flag, "--max-frame=%s", values[i]);
            char *argv[] = {(char *)"prog", flag, NULL};
            FILE *err = fopen("/dev/null", "w");
            int errors = sg_config_load(table, &c, PREFIX, NULL, 2, argv, &cli, err);
            char out[64];
            int n = snprintf(out, sizeof out, "%d %lld", errors, c.max_frame);
            if (write(fds[1], out, (size_t)n) != n) _exit(99);
            _exit(0);
        }
        close(fds[1]);
        char got[64] = {0};
        ssize_t n = read(fds[0], got, sizeof got - 1);
        close(fds[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        int errors = -1;
        long long v = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n <= 0 ||
            sscanf(got, "%d %lld", &errors, &v) != 2) {
            print_error("--max-frame=%s: the loader died (status 0x%x): signed overflow?\n",
                        values[i], status);
            failures++;
        } else if (errors != 1 || v != 65536) {
            print_error("--max-frame=%s: %d errors, max_frame %lld; want 1 error and the "
                        "default 65536\n",
                        values[i], errors, v);
            failures++;
        }
    }
    if (failures) fail_msg("%d of 3 negative sizes mishandled (see above)", failures);
}

/* ---- sg_config_free --------------------------------------------------------- */

static void test_config_free_nulls(void **state)
{
    (void)state;
    const char *args[] = {"--name=n", "--tags=x,y", "--listen=*:1,[::1]:2", NULL};
    struct run r;
    run_load(&r, NULL, args);
    assert_int_equal(r.errors, 0);
    assert_non_null(r.cfg.name);
    assert_non_null(r.cfg.tags);
    assert_non_null(r.cfg.listen);
    sg_config_free(table, &r.cfg);
    assert_null(r.cfg.name);
    assert_null(r.cfg.tags);
    assert_null(r.cfg.listen);
    /* the other fields are left alone */
    assert_int_equal(r.cfg.workers, 4);
    assert_int_equal(r.cfg.log_level, 1);
    sg_config_free(table, &r.cfg); /* twice is harmless */
    assert_null(r.cfg.name);
    free(r.err);

    /* an all-zero config frees to all-zero */
    struct tcfg zero;
    memset(&zero, 0, sizeof zero);
    sg_config_free(table, &zero);
    assert_null(zero.name);
}

/* ---- sg_config_main ----------------------------------------------------------- */

static int check_calls;
static long long check_saw_workers;
static int check_result;

static int check_cb(const void *cfg, FILE *err)
{
    const struct tcfg *c = cfg;
    check_calls++;
    check_saw_workers = c->workers;
    for (int i = 0; i < check_result; i++)
        fprintf(err, "config: workers: cross-check %d failed\n", i);
    return check_result;
}

static const struct sg_program program = {
    "sgtest", "A test program.", PREFIX, NULL, table, check_cb,
};

struct main_result {
    int rc, exit_code;
    char *out, *err; /* malloc'ed */
};

static char *slurp(int fd)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    lseek(fd, 0, SEEK_SET);
    ssize_t n;
    while ((n = read(fd, s + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
    }
    s[len] = 0;
    return s;
}

static int capture_fd(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/out.XXXXXX", tmpdir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* Runs sg_config_main(&prog, cfg, {"sgtest", args...}) with stdout and
 * stderr captured. */
static void run_main(const struct sg_program *prog, struct tcfg *cfg, const char *const *args,
                     struct main_result *m)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"sgtest";
    for (; args && *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    memset(cfg, 0, sizeof *cfg);
    int out = capture_fd(), err = capture_fd();
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    assert_true(saved_out >= 0 && saved_err >= 0);
    dup2(out, 1);
    dup2(err, 2);
    m->exit_code = -7;
    m->rc = sg_config_main(prog, cfg, argc, argv, &m->exit_code);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    m->out = slurp(out);
    m->err = slurp(err);
    close(out);
    close(err);
}

static void main_free(struct main_result *m)
{
    free(m->out);
    free(m->err);
}

static void assert_cfg_freed(const struct tcfg *c)
{
    assert_null(c->name);
    assert_null(c->tags);
    assert_null(c->listen);
}

static void test_main_version_and_help(void **state)
{
    (void)state;
    struct tcfg c;
    struct main_result m;
    check_calls = 0;
    check_result = 0;

    const char *v[] = {"--version", NULL};
    run_main(&program, &c, v, &m);
    assert_int_equal(m.rc, SG_DONE);
    assert_int_equal(m.exit_code, 0);
    assert_string_equal(m.out, "sgtest " SG_VERSION "\n");
    assert_string_equal(m.err, "");
    assert_cfg_freed(&c);
    main_free(&m);

    const char *v2[] = {"-V", "--workers=0", NULL}; /* --version wins over a bad value */
    run_main(&program, &c, v2, &m);
    assert_int_equal(m.rc, SG_DONE);
    assert_int_equal(m.exit_code, 0);
    assert_string_equal(m.out, "sgtest " SG_VERSION "\n");
    main_free(&m);

    const char *h[] = {"--help", NULL};
    run_main(&program, &c, h, &m);
    assert_int_equal(m.rc, SG_DONE);
    assert_int_equal(m.exit_code, 0);
    assert_contains(m.out, "Usage: sgtest");
    assert_contains(m.out, "A test program.");
    assert_contains(m.out, PREFIX "KEY");
    for (const struct sg_opt *o = table; o->name; o++) {
        assert_contains(m.out, o->name);
        assert_contains(m.out, o->help);
    }
    assert_contains(m.out, "[default: 64K]");
    assert_contains(m.out, "[default: 127.0.0.1:8181]");
    assert_cfg_freed(&c);
    main_free(&m);
    assert_int_equal(check_calls, 0);
}

static void test_main_errors_and_check(void **state)
{
    (void)state;
    struct tcfg c;
    struct main_result m;

    /* a bad value: exit code 2, the error and the count on stderr, check not run */
    check_calls = 0;
    check_result = 0;
    const char *bad[] = {"--workers=0", NULL};
    run_main(&program, &c, bad, &m);
    assert_int_equal(m.rc, SG_ECONFIG);
    assert_int_equal(m.exit_code, 2);
    assert_contains(m.err, "config: workers: ");
    assert_contains(m.err, "\"0\"");
    assert_contains(m.err, "sgtest: 1 configuration error\n");
    assert_string_equal(m.out, "");
    assert_int_equal(check_calls, 0);
    assert_cfg_freed(&c);
    main_free(&m);

    const char *bad2[] = {"--check-config", "--workers=0", "--ratio=9", NULL};
    run_main(&program, &c, bad2, &m);
    assert_int_equal(m.rc, SG_ECONFIG);
    assert_int_equal(m.exit_code, 2);
    assert_contains(m.err, "sgtest: 2 configuration errors\n");
    assert_cfg_freed(&c);
    main_free(&m);

    /* --check-config on a good configuration: 0, "configuration ok", check ran */
    check_calls = 0;
    const char *ok[] = {"--check-config", "--workers=6", NULL};
    run_main(&program, &c, ok, &m);
    assert_int_equal(m.rc, SG_DONE);
    assert_int_equal(m.exit_code, 0);
    assert_contains(m.out, "sgtest: configuration ok");
    assert_string_equal(m.err, "");
    assert_int_equal(check_calls, 1);
    assert_int_equal(check_saw_workers, 6);
    assert_cfg_freed(&c);
    main_free(&m);

    /* a normal run: -1 and the configuration kept for the program */
    check_calls = 0;
    const char *run[] = {"--name=live", NULL};
    run_main(&program, &c, run, &m);
    assert_int_equal(m.rc, SG_OK);
    assert_int_equal(m.exit_code, 0);
    assert_string_equal(m.out, "");
    assert_string_equal(m.err, "");
    assert_int_equal(check_calls, 1);
    assert_non_null(c.name);
    assert_string_equal(c.name, "live");
    assert_non_null(c.tags);
    sg_config_free(table, &c);
    main_free(&m);

    /* the check callback's errors count: 2 of them -> exit 2, "2 errors" */
    check_calls = 0;
    check_result = 2;
    run_main(&program, &c, run, &m);
    assert_int_equal(m.rc, SG_ECONFIG);
    assert_int_equal(m.exit_code, 2);
    assert_int_equal(check_calls, 1);
    assert_contains(m.err, "cross-check 0 failed");
    assert_contains(m.err, "cross-check 1 failed");
    assert_contains(m.err, "sgtest: 2 configuration errors\n");
    assert_cfg_freed(&c);
    main_free(&m);

    const char *chk[] = {"--check-config", NULL};
    check_result = 1;
    run_main(&program, &c, chk, &m);
    assert_int_equal(m.rc, SG_ECONFIG);
    assert_int_equal(m.exit_code, 2);
    assert_contains(m.err, "sgtest: 1 configuration error\n");
    assert_string_equal(m.out, "");
    main_free(&m);
    check_result = 0;

    /* no check callback */
    struct sg_program nocheck = program;
    nocheck.check = NULL;
    run_main(&nocheck, &c, run, &m);
    assert_int_equal(m.rc, SG_OK);
    assert_int_equal(m.exit_code, 0);
    sg_config_free(table, &c);
    main_free(&m);

    /* the program's default file and environment prefix are used */
    char *path = write_text("workers = 13\n");
    nocheck.default_file = path;
    set_env("ratio", "0.375");
    run_main(&nocheck, &c, NULL, &m);
    unset_env("ratio");
    remove_file(path);
    assert_int_equal(m.rc, SG_OK);
    assert_int_equal(m.exit_code, 0);
    assert_int_equal(c.workers, 13);
    assert_true(c.ratio == 0.375);
    sg_config_free(table, &c);
    main_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_every_source),
        cmocka_unit_test(test_file_syntax),
        cmocka_unit_test(test_file_quoting),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_bare_bool_before_short_option),
        cmocka_unit_test(test_errors_counted),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_bad_default),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_config_file_options),
        cmocka_unit_test(test_cli_flags),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_split_addr),
        cmocka_unit_test(test_split_addr_wildcard_small_cap),
        cmocka_unit_test(test_size_negative_overflow),
        cmocka_unit_test(test_config_free_nulls),
        cmocka_unit_test(test_main_version_and_help),
        cmocka_unit_test(test_main_errors_and_check),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
